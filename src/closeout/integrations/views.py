"""HTTP surfaces: the built-in simulators under /sim/<system>/ (what they were asked, scripted
faults, and the same protocols the real-protocol adapters speak), closeout's own inbound
endpoints (payment webhooks, ES9+ notifications) and the signed hotlist feed."""

from __future__ import annotations

import json
import tempfile

from django.http import FileResponse, HttpResponse, JsonResponse

from closeout.api.keys import apikey_check
from closeout.api.models import ApiKey
from closeout.api.problems import methods_allowed, problem
from closeout.integrations.card_system import hotlist
from closeout.integrations.card_system.simulator import Refused, SimulatedCardSystem
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import SYSTEM_MODES, fault_field_errors
from closeout.integrations.models import (
    SimCardBlock,
    SimEsimProfile,
    SimFault,
    SimNumberDeactivation,
    SimPartnerDelivery,
    SimPayment,
    SimRefund,
    SimShipment,
)
from closeout.integrations.partners.simulator import partner_endpoint_receive
from closeout.integrations.payments.webhooks import WebhookRejected, payment_webhook_receive
from closeout.integrations.shipping import simulator as carrier
from closeout.integrations.smdp import port as smdp_port
from closeout.integrations.smdp import simulator as smdp
from closeout.integrations.smdp.notifications import NotificationRejected, esim_notification_receive


def _json_body(request) -> dict | None:
    if not request.content_type.startswith("application/json") and request.body:
        return None
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _transient(exc: Exception):
    return problem(503, "unavailable", "Service unavailable", str(exc)[:120])


def _refused(exc: Exception):
    return problem(422, "refused", "Refused", str(exc)[:120])


# --- lists of what the simulators were asked ------------------------------------------------------


def _listing(model, shape):
    """A GET view listing every row of a simulator's model, oldest first, each as `shape(row)`."""

    @methods_allowed("GET")
    def view(request):
        return JsonResponse([shape(row) for row in model.objects.order_by("id")], safe=False)

    return view


payment_refunds = _listing(SimRefund, lambda r: {
    "idempotency_key": r.idempotency_key, "amount": r.amount_minor, "currency": r.currency,
    "destination": r.destination, "status": r.status, "provider_ref": r.provider_ref,
    "request_count": r.request_count})
payment_payments = _listing(SimPayment, lambda p: {
    "idempotency_key": p.idempotency_key, "amount": p.amount_minor, "currency": p.currency,
    "description": p.description, "status": p.status, "provider_ref": p.provider_ref,
    "request_count": p.request_count})
cards_blocked = _listing(SimCardBlock, lambda r: {
    "card_number": r.card_number, "idempotency_key": r.idempotency_key, "request_count": r.request_count,
    "at": r.created_at.isoformat()})
numbers_deactivated = _listing(SimNumberDeactivation, lambda r: {
    "iccid": r.iccid, "idempotency_key": r.idempotency_key, "request_count": r.request_count,
    "at": r.created_at.isoformat()})
smdp_profiles = _listing(SimEsimProfile, lambda p: {
    "iccid": p.iccid, "eid": p.eid, "state": p.state, "notifications_sent": p.notification_seq, "calls": p.calls})
partner_deliveries = _listing(SimPartnerDelivery, lambda d: {
    "partner": d.partner, "message_id": d.message_id, "type": d.event_type, "body": d.body,
    "signature_valid": d.signature_valid, "signatures": d.signatures, "status_code": d.status_code,
    "at": d.received_at.isoformat()})
shipments = _listing(SimShipment, lambda s: {
    "reference": s.reference, "label_number": s.label_number, "tracking_number": s.tracking_number,
    "events": s.events, "request_count": s.request_count})


@methods_allowed("GET", "POST", "DELETE")
def faults(request):
    """Script a fault: {"system": "payments", "operation": "refund", "mode": "timeout", "remaining": 1};
    GET lists the faults still to fire, DELETE clears them (`?system=` one system's only)."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return _faults_pending(request)
    body = _json_body(request)
    if body is None:
        return problem(400, "bad-fault", "Invalid fault",
                       "Send a JSON object with system, mode and optionally operation and remaining.")
    system, operation, mode = body.get("system"), body.get("operation", "*"), body.get("mode")
    remaining = body.get("remaining", 1)
    errors = fault_field_errors(system=system, operation=operation, mode=mode, remaining=remaining)
    if errors:
        detail = "; ".join(f"{e['field']} {e['message']}" for e in errors) + "."
        return problem(422, "bad-fault", "Invalid fault", detail, errors=errors)
    fault = SimFault.objects.create(system=system, operation=operation, mode=mode, remaining=remaining)
    return JsonResponse({"id": fault.id}, status=201)


def _faults_pending(request):
    # A rehearsal's fault left behind (a count of 1000 that a quiet system never uses up) looks
    # like a real outage to whoever comes next: they can be seen and cleared.
    pending = SimFault.objects.filter(remaining__gt=0).order_by("id")
    system = request.GET.get("system")
    if system is not None:
        if system not in SYSTEM_MODES:
            return problem(422, "bad-fault", "Invalid fault", f"system must be one of {', '.join(SYSTEM_MODES)}.",
                           errors=[{"field": "system", "message": f"must be one of {', '.join(SYSTEM_MODES)}"}])
        pending = pending.filter(system=system)
    if request.method == "DELETE":
        return JsonResponse({"cleared": pending.update(remaining=0)})
    return JsonResponse([{"id": f.id, "system": f.system, "operation": f.operation, "mode": f.mode,
                          "remaining": f.remaining, "created_at": f.created_at.isoformat()} for f in pending],
                        safe=False)


# --- the card management system's protocol ----------------------------------------------------------


def _keyed_call(request, call):
    """Answer a card-system command that needs an Idempotency-Key: `call(key)`'s answer, or the
    refusal or outage it raised."""
    key = request.headers.get("Idempotency-Key", "")
    if not key or len(key) > 120:
        return problem(400, "idempotency-key", "Idempotency-Key header required")
    try:
        return JsonResponse(call(key))
    except Refused as exc:
        return _refused(exc)
    except TransientError as exc:
        return _transient(exc)


@methods_allowed("POST")
def cms_block(request, number: str):
    return _keyed_call(request, lambda key: SimulatedCardSystem().block(card_number=number, idempotency_key=key))


@methods_allowed("POST")
def cms_deactivate_number(request, iccid: str):
    return _keyed_call(request, lambda key: SimulatedCardSystem().deactivate_number(iccid=iccid,
                                                                                     idempotency_key=key))


@methods_allowed("GET")
def cms_card(request, number: str):
    try:
        return JsonResponse(SimulatedCardSystem().card_info(card_number=number).as_json())
    except Refused as exc:
        return _refused(exc)
    except PermanentError:
        return problem(404, "unknown-card", "Unknown card")
    except TransientError as exc:
        return _transient(exc)


# --- the SM-DP+ (ES2+) and its simulated devices ----------------------------------------------------


def _es2_answer(result, **extra) -> JsonResponse:
    status = {"status": result.status}
    if not result.executed:
        status["statusCodeData"] = {"subjectCode": result.subject_code, "reasonCode": result.reason_code,
                                    "message": result.message}
    response = JsonResponse({"header": {"functionExecutionStatus": status}, "profileState": result.profile_state,
                             **extra})
    response["X-Admin-Protocol"] = "gsma/rsp/v2.5.0"
    return response


@methods_allowed("POST")
def es2_function(request, function: str):
    body = _json_body(request)
    header = (body or {}).get("header") or {}
    call_id = str(header.get("functionCallIdentifier", ""))[:80]
    if body is None or not call_id or not header.get("functionRequesterIdentifier"):
        return problem(400, "es2-header", "ES2+ header with requester and call identifiers required")
    simulator = smdp.SimulatedSmdpPlus()
    try:
        if function == "cancelOrder":
            result = simulator.cancel_order(iccid=str(body.get("iccid", "")),
                                            final_profile_status=str(body.get("finalProfileStatusIndicator", "")),
                                            function_call_id=call_id)
        elif function == "releaseProfile":
            result = simulator.release_profile(iccid=str(body.get("iccid", "")), function_call_id=call_id)
        elif function == "getProfileStatus":
            iccids = [str(i) for i in (body.get("iccidList") or [])][:50]
            states = [{"iccid": i, "state": simulator.profile_status(iccid=i)} for i in iccids]
            return _es2_answer(smdp_port.Es2Result(smdp_port.SUCCESS, ""), profileStatusList=states)
        else:
            return problem(404, "es2-function", "Unknown ES2+ function")
    except PermanentError as exc:
        return _es2_answer(smdp_port.Es2Result(smdp_port.FAILED, "", smdp_port.SUBJECT_ICCID,
                                               smdp_port.REASON_UNKNOWN, str(exc)[:120]))
    except TransientError as exc:
        return _transient(exc)
    return _es2_answer(result)


@methods_allowed("POST")
def sim_device_delete(request, iccid: str):
    """The simulated customer deletes the eSIM profile on the phone."""
    sent = smdp.device_delete(iccid=iccid)
    if not sent:
        return problem(409, "not-on-device", "The profile is not on a device")
    return JsonResponse({"iccid": iccid, "state": "DELETED"}, status=202)


# --- partner endpoints ----------------------------------------------------------------------------


@methods_allowed("POST")
def sim_partner_webhook(request, code: str):
    try:
        status = partner_endpoint_receive(partner=code, body=request.body, headers=dict(request.headers))
    except TransientError as exc:
        return problem(504, "timeout", "Gateway timeout", str(exc)[:120])
    if status in PARTNER_REFUSALS:
        return problem(status, *PARTNER_REFUSALS[status])
    response = JsonResponse({"received": status < 300}, status=status)
    if 300 <= status < 400:
        response["Location"] = request.build_absolute_uri(f"/sim/partners/{code}/v2/webhooks")
    return response


PARTNER_REFUSALS = {
    400: ("bad-body", "Invalid body", "The signed body must be a JSON object."),
    401: ("bad-signature", "Webhook signature rejected",
          "No webhook-signature matches a secret of this partner (or the timestamp is more than 5 minutes off)."),
    503: ("unavailable", "Service unavailable", "The partner's endpoint is down (a scripted fault)."),
}


# --- the carrier ----------------------------------------------------------------------------------


@methods_allowed("POST")
def carrier_label(request):
    key = request.headers.get("Idempotency-Key", "")
    body = _json_body(request)
    if not key or len(key) > 120 or body is None or not body.get("reference"):
        return problem(400, "bad-label-request", "Idempotency-Key header and reference required")
    try:
        label = carrier.SimulatedCarrier().create_return_label(idempotency_key=key,
                                                               reference=str(body["reference"])[:40])
    except TransientError as exc:
        return _transient(exc)
    return JsonResponse(label.as_json(), status=201)


@methods_allowed("GET", "POST")
def carrier_events(request, tracking_number: str):
    try:
        if request.method == "POST":
            body = _json_body(request) or {}
            event = carrier.shipment_event_add(tracking_number=tracking_number, code=str(body.get("code", "")),
                                               location=str(body.get("location", "")))
            return JsonResponse(event, status=201)
        return JsonResponse({"events": carrier.SimulatedCarrier().tracking_events(tracking_number=tracking_number)})
    except PermanentError as exc:
        return problem(404 if "unknown" in str(exc) else 422, "shipment", "Shipment problem", str(exc))
    except TransientError as exc:
        return _transient(exc)


# --- closeout's inbound endpoints -----------------------------------------------------------------


@methods_allowed("POST")
def payments_webhook(request):
    try:
        outcome = payment_webhook_receive(body=request.body, headers=dict(request.headers))
    except WebhookRejected as exc:
        return problem(401, "bad-signature", "Webhook signature rejected", str(exc)[:120])
    return JsonResponse({"outcome": outcome})


@methods_allowed("POST")
def es9_handle_notification(request):
    try:
        esim_notification_receive(body=request.body)
    except NotificationRejected as exc:
        return problem(400, "bad-notification", "Notification rejected", str(exc)[:120])
    return HttpResponse(status=204)


def _gate_key_problem(request) -> HttpResponse | None:
    """The hotlist lists full card numbers, so only an operator-scope API key (the one gates and
    readers are provisioned with) may download it: 401 without a valid key, 403 for a partner's."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    key = apikey_check(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if key is None:
        response = problem(401, "unauthorized", "Unauthorized", "Send an operator API key as 'Authorization: Bearer <key>'.")
        response["WWW-Authenticate"] = 'Bearer realm="closeout"'
        return response
    if key.scope != ApiKey.Scope.OPERATOR:
        return problem(403, "forbidden", "Forbidden", "The hotlist needs an operator-scope API key.")
    return None


@methods_allowed("GET")
def hotlist_feed(request):
    """GET /feeds/hotlist?since=VERSION&format=csv|bin – the signed hotlist for gates and readers.

    The export streams into a temporary file (flat memory) that is then streamed out; the headers
    carry the signed statement (`bin` also carries it in its trailer).
    """
    refused = _gate_key_problem(request)
    if refused:
        return refused
    try:
        since = int(request.GET.get("since", "0"))
        if since < 0:
            raise ValueError
    except ValueError:
        return problem(400, "bad-since", "since must be a non-negative version number")
    fmt = request.GET.get("format", "csv")
    if fmt not in hotlist.FORMATS:
        return problem(400, "bad-format", "format must be csv or bin")
    body = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it
    try:
        document = hotlist.hotlist_export_to(body, since=since, fmt=fmt)
        body.seek(0)
    except BaseException:
        body.close()
        raise
    response = FileResponse(body, content_type="text/csv" if fmt == "csv" else "application/octet-stream")
    for field in ("since", "version", "count", "sha256", "signature", "public_key"):
        response[f"X-Hotlist-{field.replace('_', '-').title()}"] = str(document[field])
    return response
