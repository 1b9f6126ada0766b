"""REST API v1: thin routers over the closure services. Errors are application/problem+json."""

from __future__ import annotations

import hashlib
import json
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from ninja import Header
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from closeout.api import idempotency, schemas
from closeout.api.keys import apikey_check
from closeout.api.models import ApiKey, IdempotencyRecord
from closeout.api.openapi import ProblemNinjaAPI
from closeout.api.problems import field_errors_from_ninja, problem, unreadable_json_detail
from closeout.cards.services import authorization_decide
from closeout.certificates.api import router as certificates_router
from closeout.closures import selectors, services
from closeout.closures.models import ClosureCase
from closeout.closures.states import IllegalTransition
from closeout.common import clock
from closeout.common.fastinsert import insert_one
from closeout.common.money import Money, exponent
from closeout.identity import documents
from closeout.identity import services as identity
from closeout.identity.documents import InvalidDocument
from closeout.returns import services as returns
from closeout.suppression.api import router as suppressions_router


class BearerKey(HttpBearer):
    def authenticate(self, request, token):
        return apikey_check(token)


api = ProblemNinjaAPI(
    title="closeout API",
    version="1",
    urls_namespace="api-v1",
    auth=BearerKey(),
    openapi_url="/openapi.json",
    docs_url="/docs",
)

REFERENCE = re.compile(r"CL-[0-9]{4}-[0-9]{6,12}")
PROBLEMS = {400: schemas.Problem, 401: schemas.Problem, 404: schemas.Problem, 409: schemas.Problem,
            422: schemas.Problem}


@api.exception_handler(ValidationError)
def on_validation_error(request, exc):
    return problem(422, "validation-error", "Invalid request", "Some fields are invalid.",
                   errors=field_errors_from_ninja(exc.errors))


@api.exception_handler(AuthenticationError)
def on_auth_error(request, exc):
    response = problem(401, "unauthorized", "Unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
    response["WWW-Authenticate"] = 'Bearer realm="closeout API"'  # RFC 9110: a 401 names the scheme it wants
    return response


@api.exception_handler(HttpError)
def on_http_error(request, exc):
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # ninja's "Cannot parse request body", raised from what json.loads raised
        return problem(400, "invalid-json", "Request body is not valid JSON", unreadable_json_detail(exc.__cause__))
    return problem(exc.status_code, "http-error", str(exc) or "Error")


def _invalid_field(field: str, message: str) -> HttpResponse:
    return problem(422, "validation-error", "Invalid request", message, errors=[{"field": field, "message": message}])


def _not_verified() -> HttpResponse:
    return problem(422, "identity-not-verified", "Identity not verified",
                   "We could not match the card number with this holder name and ID document.")


def _json_object(body: bytes) -> bool:
    """Whether a request body is a JSON object (ninja reads `123` or `[1]` as no fields at all)."""
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _client(request) -> str:
    return f"api:{request.auth.prefix}"


def _body_hash(request: HttpRequest) -> str:
    try:
        canonical = json.dumps(json.loads(request.body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = request.body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(request, key: str, digest: str) -> HttpResponse | None:
    """The first answer given to (client, key), or a 422 when that request had another body."""
    first = IdempotencyRecord.objects.filter(client=_client(request), key=key).first()
    if first is None:
        return None
    if first.request_hash != digest:
        return problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                       "This Idempotency-Key was used with a different request body.")
    if first.status_code is None:  # claimed by an earlier version that never stored an answer
        return problem(409, "idempotency-key-in-flight", "Request in progress",
                       "The first request with this Idempotency-Key never finished; use a new key.")
    return HttpResponse(first.body, status=first.status_code, content_type="application/json")


@api.post("/closures", response={201: schemas.ClosureCreated, **PROBLEMS, 429: schemas.Problem},
          summary="Request a closure")
def closure_create(request, payload: schemas.ClosureIn, idempotency_key: str = Header(
        None, alias=idempotency.HEADER,
        description="One key per closure request: visible ASCII without spaces or commas, at most 200.")):
    """Open a case, or replay the answer already given to this Idempotency-Key.

    The answer is stored in the transaction that opens the case, so a case never exists without
    it. A failed request stores nothing: the client may fix the body and retry with the same key.
    A first request is not slowed by looking for an earlier answer: a repeated one fails to open
    a case (the card already has one, or the key is taken) and only then finds the answer to
    replay. A parallel request with the same key waits for the card and replays the same way.
    """
    invalid = idempotency.key_problem(idempotency_key)
    if invalid:
        return invalid
    digest = _body_hash(request)

    def remember(body: str) -> None:
        insert_one(IdempotencyRecord(client=_client(request), key=idempotency_key, request_hash=digest,
                                     status_code=201, body=body, created_at=clock.now()))

    try:
        response = _create(request, payload, remember)
    except IntegrityError:  # the key was taken by another request (another body, or a parallel one)
        replayed = _replay(request, idempotency_key, digest)
        if replayed is None:
            raise
        return replayed
    if response.status_code != 201:
        return _replay(request, idempotency_key, digest) or response
    return response


def _create(request, payload: schemas.ClosureIn, remember) -> HttpResponse:
    """Open the case and `remember` the answer in the same transaction; the identity check runs
    before it, outside the write lock that SQLite takes at BEGIN."""
    try:
        number = documents.normalize_card_number(payload.card_number)
        if payload.contact:
            _contact_check(payload.contact)
        attempt, until = identity.identity_attempt_begin(card_number=number, client_address=_client(request))
        if until is not None:
            return _locked(until)
        try:
            card = services.identity_check(card_number=number, id_type=payload.id_document.type,
                                           id_number=payload.id_document.number)
            if not documents.same_name(payload.holder_name, card.holder.name):
                raise services.IdentityNotVerified("the name is not the holder's")
        except services.IdentityNotVerified:
            raise  # the attempt stays written: it is the failure
        except BaseException:
            identity.identity_attempt_void(attempt)
            raise
        identity.identity_attempt_void(attempt)
        # A partner's request is a partner_api request whatever channel it names (its app may relay
        # what a customer said on the phone; it is no branch counter): the channel the product must
        # take, and the one recorded. Only the operator's own systems (operator scope) name another.
        channel, channel_ref = payload.channel, ""
        if request.auth.scope != ApiKey.Scope.OPERATOR and channel != ClosureCase.Channel.PARTNER_API:
            channel, channel_ref = ClosureCase.Channel.PARTNER_API, f"named {payload.channel}"
        with transaction.atomic():
            case = services.closure_request(
                card=card, channel=channel, channel_ref=channel_ref, requester=_client(request), reason=payload.reason,
                refund_destination=payload.refund_destination.dict(exclude_none=True) if payload.refund_destination else {},
                language=card.holder.language,
            )
            body = json.dumps(selectors.case_summary(case), ensure_ascii=False)
            remember(body)
    except InvalidDocument as exc:
        return _invalid_field(exc.field, exc.message)
    except services.InvalidDestination as exc:
        return _invalid_field(exc.field, str(exc))
    except services.IdentityNotVerified:
        return _not_verified()
    except services.CaseAlreadyOpen:
        return problem(409, "closure-already-open", "Closure already open",
                       "A closure is already in progress for this card.")
    except services.CardNotClosable:
        return problem(409, "card-not-closable", "Card cannot be closed", "This card is not active.")
    except services.ChannelNotAllowed as exc:
        return problem(422, "channel-not-allowed", "Channel not allowed",
                       f"This card's product does not take closure requests through the {exc.channel} channel.")
    return HttpResponse(body, status=201, content_type="application/json")


def _contact_check(contact: schemas.ContactIn) -> None:
    """:raises InvalidDocument: for a contact without an email address or phone number, or a
        malformed one (naming it)."""
    if not (contact.email or contact.phone):
        raise InvalidDocument("contact", "Give an email address or a phone number, or leave contact out.")
    if contact.email:
        documents.normalize_email(contact.email)
    if contact.phone:
        documents.normalize_phone(contact.phone)


def _locked(until) -> HttpResponse:
    seconds = max(int((until - clock.now()).total_seconds()) + 1, 1)
    response = problem(429, "identity-checks-locked", "Too many failed identity checks",
                       "Too many ID documents did not match for this card; try again later.")
    response["Retry-After"] = str(seconds)
    return response


def _visible_case(request, reference: str) -> ClosureCase | None:
    if not REFERENCE.fullmatch(reference):
        return None  # never hand the database a string no reference looks like (e.g. with NUL)
    case = ClosureCase.objects.filter(reference=reference).first()
    if case is None:
        return None
    if request.auth.scope != ApiKey.Scope.OPERATOR and case.requester != _client(request):
        return None  # another partner's case looks exactly like a missing one
    return case


@api.get("/closures/{reference}", response={200: schemas.ClosureOut, **PROBLEMS}, summary="Read a closure")
def closure_read(request, reference: str):
    case = _visible_case(request, reference)
    if case is None:
        return problem(404, "not-found", "Not found", "No closure with this reference.")
    return 200, selectors.case_public(case)


@api.post("/closures/{reference}/card-received", response={200: schemas.ClosureOut, 403: schemas.Problem,
                                                           **PROBLEMS}, summary="Warehouse check-in")
def closure_card_received(request, reference: str, payload: schemas.CardReceivedIn | None = None):
    if request.auth.scope != ApiKey.Scope.OPERATOR:
        return problem(403, "forbidden", "Forbidden", "This call needs an operator-scope API key.")
    if request.body.strip() and not _json_object(request.body):
        return _invalid_field("body", "Send a JSON object such as {\"note\": \"...\"}, or no body.")
    if _visible_case(request, reference) is None:
        return problem(404, "not-found", "Not found", "No closure with this reference.")
    try:
        case = returns.return_reported(reference=reference, actor=_client(request),
                                       note=payload.note if payload else "")
    except IllegalTransition as exc:
        return problem(409, "illegal-transition", "Not waiting for the card", f"The closure is {exc.current}.")
    return 200, selectors.case_public(case)


@api.post("/authorizations", response={200: schemas.AuthorizationOut, **PROBLEMS, 403: schemas.Problem},
          summary="Authorize a charge")
def authorization(request, payload: schemas.AuthorizationIn):
    if settings.AUTHORIZATIONS_SCOPE == ApiKey.Scope.OPERATOR and request.auth.scope != ApiKey.Scope.OPERATOR:
        return problem(403, "forbidden", "Forbidden", "Authorizations need an operator-scope API key here.")
    currency = payload.currency.upper()
    try:
        exponent(currency)
    except ValueError:
        return _invalid_field("currency", "Unknown currency.")
    attempt = authorization_decide(card_number=documents.without_separators(payload.card_number),
                                   amount=Money(payload.amount, currency), source=payload.source)
    return 200, {"decision": attempt.decision, "reason": attempt.reason}


# Certificates are public (their routes say auth=None); suppressions need a partner or operator key.
api.add_router("/certificates", certificates_router)
api.add_router("/suppressions", suppressions_router)
