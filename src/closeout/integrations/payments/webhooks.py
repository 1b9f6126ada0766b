"""Inbound settlement webhooks: verify, drop replays, and record the refund through the closure
service (which is idempotent and only acts while the case waits for the refund)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import IntegrityError, transaction

from closeout.closures import services
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.integrations import crypto, registry
from closeout.integrations.models import WebhookReceipt
from closeout.integrations.payments.port import FINAL

log = logging.getLogger(__name__)


class WebhookRejected(Exception):
    """The webhook's signature or timestamp did not check out (answer 401)."""


def payment_webhook_receive(*, body: bytes, headers: Mapping[str, str]) -> str:
    """Apply one settlement webhook at most once; return what happened.

    Outcomes: `applied`, `duplicate`, `ignored` (not a final refund event), `unknown_case`,
    `amount_mismatch` (kept for staff, the case is not moved).

    :raises WebhookRejected: for a bad signature or a stale or future timestamp.
    """
    try:
        event = registry.port("payments").parse_webhook(body=body, headers=headers)
    except crypto.SignatureInvalid as exc:
        raise WebhookRejected(str(exc))
    if event is None:
        return "ignored"
    with transaction.atomic():
        try:
            with transaction.atomic():
                receipt = WebhookReceipt.objects.create(source="payments", event_id=event.event_id[:120],
                                                        received_at=clock.now())
        except IntegrityError:
            return "duplicate"
        receipt.outcome = _apply(event)
        receipt.save(update_fields=["outcome"])
        return receipt.outcome


def _apply(event) -> str:
    parts = services.refund_key_parts(event.idempotency_key)
    if parts is None:
        return "ignored"
    reference = parts[0]
    case = ClosureCase.objects.filter(reference=reference).first()
    if case is None:
        return "unknown_case"
    if event.result.status not in FINAL:
        return "ignored"
    if event.idempotency_key != services.current_refund_key(case):
        return "ignored"  # about a request declined before the case asked again (`closure_resume`)
    quote = case.quote or {}
    if event.amount is not None and (event.amount.minor, event.amount.currency) != (
            quote.get("refund"), quote.get("currency")):
        log.warning("refund webhook for %s carries another amount; left for staff", reference)
        return "amount_mismatch"
    services.refund_record(reference=reference, workflow_id=f"{reference}:webhook:{event.event_id[-24:]}",
                           result=event.result.as_json() | {"idempotency_key": event.idempotency_key})
    return "applied"


def receive(body: bytes, headers: dict) -> int:
    """Inline delivery target for the simulator's outbox: the HTTP status the view would answer."""
    try:
        payment_webhook_receive(body=body, headers=headers)
    except WebhookRejected:
        return 401
    return 200
