"""The SMS simulator's HTTP surface: the messages it was asked to send, and the gateway protocol
the HTTP adapter speaks (POST {to, body} with an Idempotency-Key header)."""

from __future__ import annotations

import json

from django.http import JsonResponse

from closeout.api.problems import methods_allowed, problem
from closeout.common.text import ascii_digits
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.sms.models import SimSmsMessage
from closeout.integrations.sms.simulator import SimulatedSmsGateway


@methods_allowed("GET", "POST")
def messages(request):
    if request.method == "POST":
        return _send(request)
    rows = SimSmsMessage.objects.order_by("id")
    since = request.GET.get("since", "")
    if ascii_digits(since):
        rows = rows.filter(id__gt=int(since))
    return JsonResponse(
        [{"id": r.id, "message_ref": r.message_ref, "to_masked": r.to_masked, "to_hash": r.to_hash, "body": r.body,
          "idempotency_key": r.idempotency_key, "status": r.status, "request_count": r.request_count,
          "at": r.created_at.isoformat()} for r in rows],
        safe=False,
    )


def _send(request):
    key = request.headers.get("Idempotency-Key", "")
    try:
        body = json.loads(request.body or b"{}")
        to, text = str(body["to"]), str(body["body"])
    except (ValueError, KeyError, TypeError):
        return problem(400, "bad-sms", "Invalid message", "Send JSON {to, body}.")
    if not key or len(key) > 120:
        return problem(400, "idempotency-key", "Idempotency-Key missing", "Send an Idempotency-Key header.")
    try:
        result = SimulatedSmsGateway().send(to=to, body=text[:1600], idempotency_key=key)
    except PermanentError as exc:
        return problem(422, "sms-refused", "Message refused", str(exc))
    except TransientError:
        return problem(503, "sms-unavailable", "Gateway unavailable", "Try again with the same Idempotency-Key.")
    return JsonResponse({"id": result.message_ref, "status": result.status}, status=201)
