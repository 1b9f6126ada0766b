"""Simulated partner endpoints: they check the Standard Webhooks signature against the secrets
the partner was given, remember what they received (GET /sim/partners/deliveries), and answer
2xx; scripted faults make them slow, time out, fail with 5xx or ignore the message."""

from __future__ import annotations

import json

from closeout.integrations.errors import TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimPartnerDelivery
from closeout.integrations.partners import signing
from closeout.integrations.partners.port import Delivery, DeliveryResult


def partner_endpoint_receive(*, partner: str, body: bytes, headers: dict) -> int:
    """What a partner's endpoint does with one request; returns the HTTP status it answers.

    The signature is checked before the body is read: an unsigned body is never parsed or kept
    (the delivery is listed with its verdict only), and a signed one must be a JSON object.
    """
    mode = take_fault("partners", partner) or take_fault("partners", "unbind")
    if mode == "timeout":
        raise TransientError(f"partner {partner}: timed out")
    lowered = {k.lower(): v for k, v in headers.items()}
    valid = _signed_by_partner(partner=partner, body=body, headers=lowered)
    parsed = _json_object(body) if valid else None
    # A refusal ("decline") is the partner's 422: it does not know the binding or will not act on it.
    # "moved": the partner moved its endpoint and answers with a permanent redirect to the new one.
    status = (308 if mode == "moved" else 401 if not valid else 400 if parsed is None
              else 503 if mode == "error_5xx" else 422 if mode == "decline" else 200)
    kept = parsed or {}
    SimPartnerDelivery.objects.create(
        partner=partner, message_id=lowered.get("webhook-id", "")[:120], event_type=str(kept.get("type", ""))[:40],
        body=kept, signature_valid=valid, signatures=len(lowered.get("webhook-signature", "").split()),
        status_code=status,
    )
    return status


def _signed_by_partner(*, partner: str, body: bytes, headers: dict) -> bool:
    from closeout.integrations.partners import services

    for secret in services.partner_secrets(code=partner):
        try:
            signing.verify(secret=secret, body=body, headers=headers)
            return True
        except signing.WebhookVerificationError:
            continue
    return False


def _json_object(body: bytes) -> dict | None:
    """The body as a JSON object both databases store as it is, or None.

    None for what is not JSON or not an object, and for what a JSON column refuses: NaN or
    1e309 (read as infinity), nesting deeper than the parser's stack, and NUL characters
    (PostgreSQL's jsonb has none).
    """
    try:
        parsed = json.loads(body)
        stored = json.dumps(parsed, allow_nan=False)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) and "\\u0000" not in stored else None


class SimulatedPartnerNotifier:
    def send(self, delivery: Delivery) -> DeliveryResult:
        headers = signing.headers(message_id=delivery.message_id, body=delivery.body, secrets=delivery.secrets)
        status = partner_endpoint_receive(partner=delivery.partner, body=delivery.body.encode(), headers=headers)
        ok = 200 <= status < 300
        return DeliveryResult(acknowledged=ok, status_code=status, error="" if ok else f"answered {status}")
