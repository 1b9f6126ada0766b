"""A payment provider that behaves like the real thing: idempotency keys, request/parameter
mismatch errors, asynchronous settlement, and scripted faults (timeouts after the money moved,
5xx before it did, declines)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F

from closeout.common import clock
from closeout.common.money import Money
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimRefund
from closeout.integrations.payments.port import RefundResult


def _result(row: SimRefund) -> RefundResult:
    return RefundResult(status=row.status, provider_ref=row.provider_ref, failure_reason=row.failure_reason)


class SimulatedPaymentProvider:
    def refund(self, *, idempotency_key: str, amount: Money, destination: dict) -> RefundResult:
        mode = take_fault("payments", "refund")
        if mode == "error_5xx":
            raise TransientError("payment provider answered 503")
        with transaction.atomic():
            row = SimRefund.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row is not None:
                if (row.amount_minor, row.currency) != (amount.minor, amount.currency):
                    raise PermanentError("idempotency key reused with other parameters")
                row.request_count += 1
                row.save(update_fields=["request_count"])
            else:
                status, reason = "succeeded", ""
                settle_after = None
                if mode == "decline":
                    status, reason = "failed", "destination account closed"
                elif mode == "pending":
                    status, settle_after = "pending", clock.now() + timedelta(seconds=2)
                try:
                    with transaction.atomic():
                        row = SimRefund.objects.create(
                            idempotency_key=idempotency_key, provider_ref="re_" + secrets.token_hex(8),
                            amount_minor=amount.minor, currency=amount.currency,
                            destination={"type": destination.get("type", "original")},
                            status=status, failure_reason=reason, settle_after=settle_after,
                        )
                except IntegrityError:
                    raise TransientError("concurrent request with the same idempotency key")
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

    def refund_status(self, *, idempotency_key: str) -> RefundResult:
        with transaction.atomic():
            row = SimRefund.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row is None:
                raise PermanentError("no refund with this idempotency key")
            if row.status == "pending" and row.settle_after and row.settle_after <= clock.now():
                row.status = "succeeded"
                row.save(update_fields=["status"])
        return _result(row)
