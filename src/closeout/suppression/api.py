"""Partners ask whether a contact may receive marketing (API key required).

`POST /check` takes the email addresses and phone numbers themselves in the body (never in a URL)
and answers for each, with its `contact_hash`; `GET /{contact_hash}` answers for a hash a partner
kept from an earlier check. The hash is closeout's keyed HMAC, so only closeout can make one.

A partner learns whether it may send marketing, nothing more: why a contact is suppressed (the
holder closed an account) and since when are for operator keys only.
"""

from __future__ import annotations

import re

from django.conf import settings
from ninja import Field, Router, Schema

from closeout.api.models import ApiKey
from closeout.api.problems import problem
from closeout.api.schemas import Problem, Text
from closeout.identity import documents, vault
from closeout.suppression.selectors import suppression_status, suppression_statuses

router = Router(tags=["suppressions"])
HASH = re.compile(r"^[0-9a-f]{64}$")


class SuppressionOut(Schema):
    contact_hash: str
    suppressed: bool
    kind: str | None
    reason: str | None
    since: str | None


class ContactCheckIn(Schema):
    email: Text | None = Field(None, max_length=254)
    phone: Text | None = Field(None, max_length=24)


class SuppressionCheckIn(Schema):
    contacts: list[ContactCheckIn] = Field(..., min_length=1, max_length=1000)


class SuppressionCheckOut(Schema):
    results: list[SuppressionOut]


def _for_caller(request, status: dict) -> dict:
    if request.auth.scope == ApiKey.Scope.OPERATOR:
        return status
    return {**status, "reason": None, "since": None}


def _contact_hash(contact: ContactCheckIn) -> str:
    """The keyed hash of one contact, normalised as a holder's is when stored.

    :raises documents.InvalidDocument: for a malformed address or number, or not exactly one given.
    """
    if bool(contact.email) == bool(contact.phone):
        raise documents.InvalidDocument("contact", "Give either an email address or a phone number.")
    if contact.email:
        return vault.lookup_hash("email", documents.normalize_email(contact.email))
    return vault.lookup_hash("phone", documents.normalize_phone(contact.phone,
                                                                local_country=settings.PHONE_COUNTRY_CODE))


@router.post("/check", response={200: SuppressionCheckOut, 422: Problem}, summary="Are these contacts suppressed?")
def suppression_check(request, payload: SuppressionCheckIn):
    """Answer for up to 1000 contacts at once, in the order given; the contacts are not echoed."""
    hashes, errors = [], []
    for index, contact in enumerate(payload.contacts):
        try:
            hashes.append(_contact_hash(contact))
        except documents.InvalidDocument as exc:
            field = exc.field.rpartition(".")[2]
            errors.append({"field": f"contacts.{index}" + ("" if field == "contact" else f".{field}"),
                           "message": exc.message})
    if errors:
        return problem(422, "validation-error", "Invalid request", "Some contacts are invalid.", errors=errors)
    return 200, {"results": [_for_caller(request, status) for status in suppression_statuses(hashes)]}


# After /check: a path parameter would otherwise take "check" as a hash (and refuse the POST).
@router.get("/{contact_hash}", response={200: SuppressionOut}, summary="Is this contact suppressed?")
def suppression_read(request, contact_hash: str):
    wanted = contact_hash.strip().lower()
    if not HASH.match(wanted):
        return problem(422, "validation-error", "Invalid request", "contact_hash must be 64 hex characters.",
                       errors=[{"field": "contact_hash", "message": "must be 64 hex characters"}])
    return 200, _for_caller(request, suppression_status(wanted))
