"""Refund events in the shape both Stripe and the simulator send them."""

from __future__ import annotations

from closeout.common.money import Money
from closeout.integrations.payments.port import RefundEvent, RefundResult

REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
STATUS = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed", "pending": "pending",
          "requires_action": "pending"}


def refund_status(raw: str) -> str:
    return STATUS.get(raw, "pending")


def refund_event(event: dict) -> RefundEvent | None:
    """Map a `refund.*` event to a RefundEvent; None for events closeout does not act on."""
    if event.get("type") not in REFUND_EVENTS:
        return None
    refund = (event.get("data") or {}).get("object") or {}
    key = (refund.get("metadata") or {}).get("idempotency_key", "")
    if not key or not event.get("id"):
        return None
    amount = None
    if isinstance(refund.get("amount"), int) and refund.get("currency"):
        amount = Money(refund["amount"], str(refund["currency"]).upper())
    result = RefundResult(status=refund_status(refund.get("status", "")), provider_ref=str(refund.get("id", "")),
                          failure_reason=str(refund.get("failure_reason") or ""))
    return RefundEvent(event_id=str(event["id"]), idempotency_key=key, amount=amount, result=result)
