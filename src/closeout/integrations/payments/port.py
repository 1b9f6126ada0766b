from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from closeout.common.money import Money

FINAL = ("succeeded", "failed")


@dataclass(frozen=True)
class RefundResult:
    status: str  # succeeded | pending | failed
    provider_ref: str
    failure_reason: str = ""

    def as_json(self) -> dict:
        return {"status": self.status, "provider_ref": self.provider_ref, "failure_reason": self.failure_reason}


@dataclass(frozen=True)
class RefundEvent:
    """A verified settlement webhook: which refund (by our idempotency key) reached which state."""

    event_id: str
    idempotency_key: str
    amount: Money | None
    result: RefundResult


@dataclass(frozen=True)
class ProviderRefund:
    """A refund as the provider's own records hold it: what reconcile compares with the ledger."""

    idempotency_key: str
    provider_ref: str
    amount: Money
    status: str  # succeeded | pending | failed


@dataclass(frozen=True)
class PaymentResult:
    status: str  # succeeded | failed
    provider_ref: str
    failure_reason: str = ""

    def as_json(self) -> dict:
        return {"status": self.status, "provider_ref": self.provider_ref, "failure_reason": self.failure_reason}


class PaymentProvider(Protocol):
    def pay(self, *, idempotency_key: str, amount: Money, description: str) -> PaymentResult:
        """Take a payment from the customer once per idempotency key; a repeated key returns the
        first payment, a repeated key with another amount is refused.

        :raises TransientError: when the outcome is unknown (retry with the same key).
        :raises PermanentError: when the key was used with other parameters.
        """

    def refund(self, *, idempotency_key: str, amount: Money, destination: dict) -> RefundResult:
        """Refund once per idempotency key; a repeated key returns the first refund.

        `destination` is `{type: original|bank|ewallet, ...}`.

        :raises TransientError: when the outcome is unknown (retry with the same key).
        :raises PermanentError: when the provider refuses the request itself.
        """

    def refund_status(self, *, idempotency_key: str, provider_ref: str = "") -> RefundResult:
        """Return the current state of a refund made with this key."""

    def refunds_of(self, *, reference: str, destination: dict) -> list[ProviderRefund]:
        """The refunds the provider holds for a case (idempotency keys `<reference>:...`), read
        from its own records, so that a second refund or another amount shows.

        :raises TransientError: when the provider did not answer.
        :raises PermanentError: when the provider cannot look refunds up for this destination.
        """

    def refund_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, RefundResult]:
        """Refund many at once (a refund file); items carry idempotency_key, amount, currency and
        destination. Returns a result per key; an item the provider refuses comes back failed.

        :raises TransientError: when the outcome is unknown (repeating the keys pays nothing twice).
        """

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> RefundEvent | None:
        """Verify a settlement webhook and return its refund event (None for other event types).

        :raises SignatureInvalid: for a bad signature or a timestamp outside the tolerance.
        """
