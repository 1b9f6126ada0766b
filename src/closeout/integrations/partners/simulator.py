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
    """What a partner's endpoint does with one request; returns the HTTP status it answers."""
    from closeout.integrations.partners import services

    mode = take_fault("partners", partner) or take_fault("partners", "unbind")
    if mode == "timeout":
        raise TransientError(f"partner {partner}: timed out")
    lowered = {k.lower(): v for k, v in headers.items()}
    valid = False
    for secret in services.partner_secrets(code=partner):
        try:
            signing.verify(secret=secret, body=body, headers=lowered)
            valid = True
            break
        except signing.WebhookVerificationError:
            continue
    status = 401 if not valid else 503 if mode == "error_5xx" else 200
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {}
    SimPartnerDelivery.objects.create(
        partner=partner, message_id=lowered.get("webhook-id", "")[:120], event_type=str(parsed.get("type", ""))[:40],
        body=parsed if isinstance(parsed, dict) else {}, signature_valid=valid,
        signatures=len(lowered.get("webhook-signature", "").split()), status_code=status,
    )
    return status


class SimulatedPartnerNotifier:
    def send(self, delivery: Delivery) -> DeliveryResult:
        headers = signing.headers(message_id=delivery.message_id, body=delivery.body, secrets=delivery.secrets)
        status = partner_endpoint_receive(partner=delivery.partner, body=delivery.body.encode(), headers=headers)
        ok = 200 <= status < 300
        return DeliveryResult(acknowledged=ok, status_code=status, error="" if ok else f"answered {status}")
