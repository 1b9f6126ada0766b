from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from closeout.common.money import Money


@dataclass(frozen=True)
class RefundResult:
    status: str  # succeeded | pending | failed
    provider_ref: str
    failure_reason: str = ""

    def as_json(self) -> dict:
        return {"status": self.status, "provider_ref": self.provider_ref, "failure_reason": self.failure_reason}


class PaymentProvider(Protocol):
    def refund(self, *, idempotency_key: str, amount: Money, destination: dict) -> RefundResult:
        """Refund once per idempotency key; a repeated key returns the first refund.

        :raises TransientError: when the outcome is unknown (retry with the same key).
        """

    def refund_status(self, *, idempotency_key: str) -> RefundResult:
        """Return the current state of a refund made with this key."""

    def refund_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, RefundResult]:
        """Refund many at once (a refund file); items carry idempotency_key, amount, currency."""
