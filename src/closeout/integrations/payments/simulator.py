"""A payment provider that behaves like the real thing: idempotency keys, request/parameter
mismatch errors, asynchronous settlement announced by signed webhooks (Stripe's event shape and
`t=…,v1=…` signature), and scripted faults (timeouts after the money moved, 5xx before it did,
declines, slow answers)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F

from closeout.common import clock
from closeout.common.money import Money
from closeout.integrations import crypto
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimPayment, SimRefund
from closeout.integrations.outbox import outbox_add
from closeout.integrations.payments import events
from closeout.integrations.payments.port import PaymentResult, ProviderRefund, RefundEvent, RefundResult

DESTINATIONS = ("original", "bank", "ewallet", "cash")
SETTLE_DELAY = timedelta(seconds=2)
WEBHOOK_PATH = "/webhooks/payments"


def webhook_secret() -> str:
    return crypto.kept_secret("payments_webhook_secret")


def sign_webhook(body: bytes) -> dict:
    """Headers of one delivery attempt (signed at send time, as real providers do)."""
    return {"Content-Type": "application/json", "Stripe-Signature": crypto.timestamped_sign(webhook_secret(), body)}


def _result(row: SimRefund) -> RefundResult:
    return RefundResult(status=row.status, provider_ref=row.provider_ref, failure_reason=row.failure_reason)


def _emit(row: SimRefund, event_type: str) -> None:
    event = {
        "id": "evt_" + secrets.token_hex(12), "object": "event", "type": event_type, "created": int(time.time()),
        "data": {"object": {
            "id": row.provider_ref, "object": "refund", "amount": row.amount_minor, "currency": row.currency.lower(),
            "status": row.status, "failure_reason": row.failure_reason or None,
            "metadata": {"idempotency_key": row.idempotency_key},
        }},
    }
    outbox_add(system="payments", path=WEBHOOK_PATH, body=event, headers={})


def _settle(row: SimRefund) -> None:
    row.status = "succeeded"
    row.save(update_fields=["status"])
    _emit(row, "refund.updated")


def settle_due() -> int:
    """Settle every pending refund whose time has come; each announces itself by webhook."""
    settled = 0
    due = SimRefund.objects.filter(status="pending", settle_after__lte=clock.now()).values_list("id", flat=True)
    for row_id in list(due):
        with transaction.atomic():
            row = SimRefund.objects.select_for_update().get(id=row_id)
            if row.status == "pending":
                _settle(row)
                settled += 1
    return settled


def _take_once(model, idempotency_key: str, amount: Money, **fields):
    """Record a request once per idempotency key, as a provider does: a repeat with the same
    amount counts as another request for the first row; with another amount it is refused.

    Returns the row and whether this call created it.
    """
    with transaction.atomic():
        row = model.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
        if row is not None:
            if (row.amount_minor, row.currency) != (amount.minor, amount.currency):
                raise PermanentError("idempotency key reused with other parameters")
            row.request_count += 1
            row.save(update_fields=["request_count"])
            return row, False
        try:
            with transaction.atomic():
                return model.objects.create(idempotency_key=idempotency_key, amount_minor=amount.minor,
                                            currency=amount.currency, **fields), True
        except IntegrityError:
            raise TransientError("concurrent request with the same idempotency key")


class SimulatedPaymentProvider:
    def pay(self, *, idempotency_key: str, amount: Money, description: str) -> PaymentResult:
        mode = take_fault("payments", "pay")
        if mode == "error_5xx":
            raise TransientError("payment provider answered 503")
        status, reason = ("failed", "card declined") if mode == "decline" else ("succeeded", "")
        row, _ = _take_once(SimPayment, idempotency_key, amount, provider_ref="py_" + secrets.token_hex(8),
                            description=description[:200], status=status, failure_reason=reason)
        if mode in ("timeout", "lost_response"):
            raise TransientError("payment provider timed out after taking the payment")
        return PaymentResult(status=row.status, provider_ref=row.provider_ref, failure_reason=row.failure_reason)

    def refund(self, *, idempotency_key: str, amount: Money, destination: dict) -> RefundResult:
        kind = (destination or {}).get("type", "original")
        if kind not in DESTINATIONS:
            raise PermanentError(f"refund destination {kind!r} is not supported")
        mode = take_fault("payments", "refund")
        if mode == "error_5xx":
            raise TransientError("payment provider answered 503")
        status, reason, settle_after = "succeeded", "", None
        if mode == "decline":
            status, reason = "failed", "destination account closed"
        elif mode == "pending":
            status, settle_after = "pending", clock.now() + SETTLE_DELAY
        with transaction.atomic():
            row, created = _take_once(SimRefund, idempotency_key, amount, provider_ref="re_" + secrets.token_hex(8),
                                      destination={"type": kind}, status=status, failure_reason=reason,
                                      settle_after=settle_after)
            if created:
                _emit(row, "refund.failed" if status == "failed" else "refund.created")
        if mode in ("timeout", "lost_response"):
            raise TransientError("payment provider timed out after accepting the refund")
        return _result(row)

    def refund_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, RefundResult]:
        """Submit a refund file: one call for many refunds, each with its own idempotency key.

        Keys already known return their first refund (a resubmitted file pays nothing twice).
        """
        mode = take_fault("payments", "refund_batch")
        if mode == "error_5xx":
            raise TransientError("payment provider answered 503 to the refund file")
        keys = [item["idempotency_key"] for item in items]
        with transaction.atomic():
            known = {r.idempotency_key: r for r in SimRefund.objects.select_for_update().filter(idempotency_key__in=keys)}
            for item in items:
                row = known.get(item["idempotency_key"])
                if row is not None and (row.amount_minor, row.currency) != (item["amount"], item["currency"]):
                    raise PermanentError("idempotency key reused with other parameters")
            SimRefund.objects.filter(idempotency_key__in=list(known)).update(request_count=F("request_count") + 1)
            fresh = [
                SimRefund(idempotency_key=item["idempotency_key"], provider_ref="re_" + secrets.token_hex(8),
                          amount_minor=item["amount"], currency=item["currency"],
                          destination={"type": item.get("destination", {}).get("type", "original"), "batch": batch_key},
                          status="succeeded")
                for item in items if item["idempotency_key"] not in known
            ]
            SimRefund.objects.bulk_create(fresh, batch_size=2000)
        if mode in ("timeout", "lost_response"):
            raise TransientError("payment provider timed out after accepting the refund file")
        rows = {**known, **{r.idempotency_key: r for r in fresh}}
        return {key: _result(rows[key]) for key in keys}

    def refund_status(self, *, idempotency_key: str, provider_ref: str = "") -> RefundResult:
        mode = take_fault("payments", "refund_status")
        if mode in ("timeout", "error_5xx"):
            raise TransientError("payment provider did not answer the status request")
        with transaction.atomic():
            row = SimRefund.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row is None:
                raise PermanentError("no refund with this idempotency key")
            if mode == "pending":  # the provider has not made up its mind yet, whatever its ledger says
                return RefundResult(status="pending", provider_ref=row.provider_ref)
            if row.status == "pending" and row.settle_after and row.settle_after <= clock.now():
                _settle(row)
        return _result(row)

    def refunds_of(self, *, reference: str, destination: dict) -> list[ProviderRefund]:
        if take_fault("payments", "refunds_of") in ("timeout", "error_5xx"):
            raise TransientError("payment provider did not answer the refund list request")
        return [ProviderRefund(idempotency_key=row.idempotency_key, provider_ref=row.provider_ref,
                               amount=Money(row.amount_minor, row.currency), status=row.status)
                for row in SimRefund.objects.filter(idempotency_key__startswith=f"{reference}:").order_by("id")]

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> RefundEvent | None:
        crypto.timestamped_verify(webhook_secret(), body, _header(headers, "Stripe-Signature"))
        try:
            event = json.loads(body)
        except ValueError:
            raise crypto.SignatureInvalid("body is not JSON")
        return events.refund_event(event)


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")
