"""Stripe, through the official SDK.

Refunds go back to the original payment (a PaymentIntent `pi_…` or Charge `ch_…` named in the
destination as `payment_ref`); Stripe has no refund to a bank account or e-wallet the customer
names afterwards, so those destinations are refused (the case goes to staff, who pay it another
way). Every call carries the Idempotency-Key `<reference>:refund` (`<reference>:refund:2`, … when staff
resume a case whose refund Stripe declined); Stripe forgets keys after 24 h,
so before creating a refund the adapter also looks for one carrying the key in its metadata.
Settlement comes by `refund.*` webhooks signed with the endpoint secret, checked by the SDK.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import stripe

from closeout.common.money import Money
from closeout.integrations import crypto
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.payments import events
from closeout.integrations.payments.port import ProviderRefund, RefundEvent, RefundResult

TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError)


def _key_of(refund) -> str | None:
    metadata = getattr(refund, "metadata", None)
    if metadata is None:
        return None
    data = metadata.to_dict() if hasattr(metadata, "to_dict") else dict(metadata)
    return data.get("idempotency_key")


def _result(refund) -> RefundResult:
    return RefundResult(status=events.refund_status(refund.status), provider_ref=refund.id,
                        failure_reason=getattr(refund, "failure_reason", None) or "")


class StripePaymentProvider:
    def __init__(self, *, api_key: str | None = None, api_base: str | None = None, webhook_secret: str | None = None,
                 max_network_retries: int = 0):
        api_key = api_key or os.environ.get("CLOSEOUT_STRIPE_API_KEY", "")
        if not api_key:
            raise PermanentError("CLOSEOUT_STRIPE_API_KEY is not set")
        api_base = api_base or os.environ.get("CLOSEOUT_STRIPE_API_BASE")
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None, max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret or os.environ.get("CLOSEOUT_STRIPE_WEBHOOK_SECRET", "")

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TRANSIENT as exc:
            raise TransientError(f"stripe: {type(exc).__name__}") from exc
        except stripe.IdempotencyError as exc:
            raise PermanentError("stripe: idempotency key reused with other parameters") from exc
        except stripe.APIError as exc:
            if (exc.http_status or 500) >= 500:
                raise TransientError(f"stripe answered {exc.http_status}") from exc
            raise PermanentError(f"stripe: {exc.user_message or type(exc).__name__}") from exc
        except stripe.StripeError as exc:
            if exc.http_status and exc.http_status >= 500:
                raise TransientError(f"stripe answered {exc.http_status}") from exc
            raise PermanentError(f"stripe: {exc.user_message or type(exc).__name__}") from exc

    @staticmethod
    def _payment(destination: dict) -> dict:
        kind = (destination or {}).get("type", "original")
        if kind != "original":
            raise PermanentError(f"stripe refunds go to the original payment only, not to {kind}")
        ref = str((destination or {}).get("payment_ref", ""))
        if ref.startswith("pi_"):
            return {"payment_intent": ref}
        if ref.startswith("ch_"):
            return {"charge": ref}
        raise PermanentError("the original payment is not on record")

    def _existing(self, payment: dict, idempotency_key: str):
        refunds = self._call(self._client.v1.refunds.list, params={**payment, "limit": 100})
        for refund in refunds.data:
            if _key_of(refund) == idempotency_key:
                return refund
        return None

    def refund(self, *, idempotency_key: str, amount: Money, destination: dict) -> RefundResult:
        payment = self._payment(destination)
        refund = self._existing(payment, idempotency_key)
        if refund is None:
            refund = self._call(
                self._client.v1.refunds.create,
                params={**payment, "amount": amount.minor, "metadata": {"idempotency_key": idempotency_key}},
                options={"idempotency_key": idempotency_key},
            )
        if (refund.amount, refund.currency.upper()) != (amount.minor, amount.currency):
            raise PermanentError("a refund with this key exists for another amount")
        return _result(refund)

    def refund_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, RefundResult]:
        """Refund many, one Stripe refund per item with the item's own idempotency key (Stripe has
        no refund file). An item Stripe refuses comes back failed; the others still go.

        :raises TransientError: when an outcome is unknown (retry the whole call: paid items replay).
        """
        results = {}
        for item in items:
            key = item["idempotency_key"]
            try:
                results[key] = self.refund(idempotency_key=key, amount=Money(item["amount"], item["currency"]),
                                           destination=item.get("destination") or {})
            except PermanentError as exc:
                results[key] = RefundResult(status="failed", provider_ref="", failure_reason=str(exc)[:200])
        return results

    def refund_status(self, *, idempotency_key: str, provider_ref: str = "") -> RefundResult:
        if not provider_ref.startswith("re_"):
            raise PermanentError("no Stripe refund id on record for this refund")
        refund = self._call(self._client.v1.refunds.retrieve, provider_ref)
        if _key_of(refund) not in (idempotency_key, None):
            raise PermanentError("the refund on record belongs to another case")
        return _result(refund)

    def refunds_of(self, *, reference: str, destination: dict) -> list[ProviderRefund]:
        """The case's refunds of its original payment, by the key closeout put in their metadata."""
        refunds = self._call(self._client.v1.refunds.list, params={**self._payment(destination), "limit": 100})
        return [ProviderRefund(idempotency_key=key, provider_ref=refund.id,
                               amount=Money(refund.amount, refund.currency.upper()), status=_result(refund).status)
                for refund in refunds.data if (key := _key_of(refund) or "").startswith(f"{reference}:")]

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> RefundEvent | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        if not self._webhook_secret:
            raise crypto.SignatureInvalid("no webhook secret configured")
        try:
            stripe.WebhookSignature.verify_header(body, lowered.get("stripe-signature"), self._webhook_secret,
                                                  tolerance=crypto.TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError as exc:
            raise crypto.SignatureInvalid(str(exc).split(".")[0]) from exc
        # The SDK only refuses old timestamps; a clock skew into the future is refused too.
        crypto.timestamped_verify(self._webhook_secret, body, lowered.get("stripe-signature", ""))
        try:
            return events.refund_event(json.loads(body))
        except ValueError:
            raise crypto.SignatureInvalid("body is not JSON")
