"""The payment provider contract, held by the built-in simulator and by the Stripe adapter
(against a localstripe server): one refund per idempotency key, its status, and signed webhooks
(bad signatures and stale timestamps refused)."""

from __future__ import annotations

import json
import time

import pytest

from closeout.common.money import Money
from closeout.integrations import crypto
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.models import SimFault, SimRefund
from closeout.integrations.payments.simulator import SimulatedPaymentProvider, webhook_secret

pytestmark = pytest.mark.django_db
STRIPE_KEY = "sk_test_contract"
STRIPE_SECRET = "whsec_contract_secret"


class SimulatorSide:
    name = "simulator"
    currency = "HKD"

    def __init__(self):
        self.provider = SimulatedPaymentProvider()
        self.secret = webhook_secret()

    def destination(self, amount: int) -> dict:
        return {"type": "original"}

    def side_effects(self, key: str) -> int:
        return SimRefund.objects.filter(idempotency_key=key).count()


class StripeSide:
    name = "stripe"
    currency = "HKD"

    def __init__(self, url: str):
        import stripe

        from closeout.integrations.payments.adapter import StripePaymentProvider

        self.client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": url})
        self.provider = StripePaymentProvider(api_key=STRIPE_KEY, api_base=url, webhook_secret=STRIPE_SECRET)
        self.secret = STRIPE_SECRET
        self.payments = {}

    def destination(self, amount: int) -> dict:
        method = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
        charge = self.client.v1.charges.create(params={"amount": amount * 2, "currency": "hkd", "source": method.id})
        return {"type": "original", "payment_ref": charge.id}

    def side_effects(self, key: str) -> int:
        refunds = self.client.v1.refunds.list(params={"limit": 100}).data
        return sum(1 for r in refunds if r.metadata.to_dict().get("idempotency_key") == key)


@pytest.fixture(params=["simulator", "stripe"])
def side(request):
    if request.param == "simulator":
        return SimulatorSide()
    return StripeSide(request.getfixturevalue("localstripe_url"))


def _key(side, n: int) -> str:
    return f"CL-2026-{side.name[:3]}{time.time_ns() % 10**9}{n}:refund"


def test_a_repeated_idempotency_key_returns_the_first_refund_and_moves_money_once(side):
    key = _key(side, 1)
    destination = side.destination(4500)

    first = side.provider.refund(idempotency_key=key, amount=Money(4500, side.currency), destination=destination)
    again = side.provider.refund(idempotency_key=key, amount=Money(4500, side.currency), destination=destination)

    assert first.status == "succeeded"
    assert again.provider_ref == first.provider_ref
    assert side.side_effects(key) == 1


def test_the_status_of_a_refund_is_read_back_by_its_key(side):
    key = _key(side, 2)
    made = side.provider.refund(idempotency_key=key, amount=Money(1200, side.currency),
                                destination=side.destination(1200))

    status = side.provider.refund_status(idempotency_key=key, provider_ref=made.provider_ref)

    assert (status.status, status.provider_ref) == ("succeeded", made.provider_ref)


def test_the_refunds_of_a_case_are_read_from_the_providers_records(side):
    reference = _key(side, 3).removesuffix(":refund")
    destination = side.destination(2500)
    made = side.provider.refund(idempotency_key=f"{reference}:refund", amount=Money(2500, side.currency),
                                destination=destination)
    side.provider.refund(idempotency_key=f"{reference}9:refund", amount=Money(100, side.currency),
                         destination=destination)  # another case whose reference starts the same

    [held] = side.provider.refunds_of(reference=reference, destination=destination)

    assert (held.idempotency_key, held.provider_ref, held.status) == (f"{reference}:refund", made.provider_ref,
                                                                       "succeeded")
    assert held.amount == Money(2500, side.currency)


def _refund_event(key: str, status: str = "succeeded", amount: int = 700) -> bytes:
    return json.dumps({"id": f"evt_{time.time_ns()}", "object": "event", "type": "refund.updated",
                       "created": int(time.time()), "data": {"object": {
                           "id": "re_contract", "object": "refund", "amount": amount, "currency": "hkd",
                           "status": status, "metadata": {"idempotency_key": key}}}}).encode()


def test_a_signed_settlement_webhook_is_read_as_a_refund_event(side):
    body = _refund_event("CL-2026-000001:refund")
    headers = {"Stripe-Signature": crypto.timestamped_sign(side.secret, body)}

    event = side.provider.parse_webhook(body=body, headers=headers)

    assert event.idempotency_key == "CL-2026-000001:refund"
    assert event.amount == Money(700, "HKD")
    assert (event.result.status, event.result.provider_ref) == ("succeeded", "re_contract")


@pytest.mark.parametrize("problem", ["wrong_secret", "stale", "future", "tampered", "missing"])
def test_a_webhook_with_a_bad_signature_or_timestamp_is_refused(side, problem):
    body = _refund_event("CL-2026-000001:refund")
    at = int(time.time()) + {"stale": -301, "future": 301}.get(problem, 0)
    secret = "whsec_someone_else" if problem == "wrong_secret" else side.secret
    header = crypto.timestamped_sign(secret, body, at=at)
    if problem == "tampered":
        body = body.replace(b"700", b"900")
    headers = {} if problem == "missing" else {"Stripe-Signature": header}

    with pytest.raises(crypto.SignatureInvalid):
        side.provider.parse_webhook(body=body, headers=headers)


def test_a_refund_to_an_unsupported_destination_is_refused_for_good(side):
    with pytest.raises(PermanentError):
        side.provider.refund(idempotency_key=_key(side, 3), amount=Money(100, side.currency),
                             destination={"type": "gift_card"})


class TestSimulatorFaults:
    def test_a_5xx_moves_no_money_and_a_retry_with_the_same_key_pays_once(self):
        SimFault.objects.create(system="payments", operation="refund", mode="error_5xx")
        provider = SimulatedPaymentProvider()
        with pytest.raises(TransientError):
            provider.refund(idempotency_key="CL-X:refund", amount=Money(100, "HKD"), destination={})
        assert not SimRefund.objects.exists()

        provider.refund(idempotency_key="CL-X:refund", amount=Money(100, "HKD"), destination={})
        assert SimRefund.objects.get().request_count == 1

    def test_a_timeout_after_the_money_moved_is_replayed_not_repeated(self):
        SimFault.objects.create(system="payments", operation="refund", mode="timeout")
        provider = SimulatedPaymentProvider()
        with pytest.raises(TransientError):
            provider.refund(idempotency_key="CL-Y:refund", amount=Money(100, "HKD"), destination={})

        replay = provider.refund(idempotency_key="CL-Y:refund", amount=Money(100, "HKD"), destination={})

        assert replay.status == "succeeded"
        assert SimRefund.objects.get().request_count == 2

    def test_the_same_key_with_another_amount_is_an_error(self):
        provider = SimulatedPaymentProvider()
        provider.refund(idempotency_key="CL-Z:refund", amount=Money(100, "HKD"), destination={})
        with pytest.raises(PermanentError):
            provider.refund(idempotency_key="CL-Z:refund", amount=Money(999, "HKD"), destination={})


class TestStripeOnly:
    def test_stripe_refunds_only_to_the_original_payment(self, localstripe_url):
        side = StripeSide(localstripe_url)
        for destination in ({"type": "bank", "account_masked": "••••1234"}, {"type": "original"}):
            with pytest.raises(PermanentError):
                side.provider.refund(idempotency_key=_key(side, 4), amount=Money(100, "HKD"),
                                     destination=destination)

    def test_an_unreachable_stripe_is_a_transient_error(self):
        from closeout.integrations.payments.adapter import StripePaymentProvider

        provider = StripePaymentProvider(api_key=STRIPE_KEY, api_base="http://127.0.0.1:9", webhook_secret="x")
        with pytest.raises(TransientError):
            provider.refund(idempotency_key="CL-W:refund", amount=Money(100, "HKD"),
                            destination={"type": "original", "payment_ref": "ch_missing"})


def test_a_refund_batch_pays_each_item_once_per_key(side):
    items = [{"idempotency_key": _key(side, 10 + n), "amount": 300 + n, "currency": side.currency,
              "destination": side.destination(300 + n)} for n in range(2)]

    first = side.provider.refund_batch(batch_key="b1:bulk_refund", items=items)
    again = side.provider.refund_batch(batch_key="b1:bulk_refund", items=items)

    assert {k: r.status for k, r in first.items()} == {i["idempotency_key"]: "succeeded" for i in items}
    assert {k: r.provider_ref for k, r in again.items()} == {k: r.provider_ref for k, r in first.items()}
    assert [side.side_effects(i["idempotency_key"]) for i in items] == [1, 1]


class TestStripeBatch:
    def test_an_item_without_its_original_payment_fails_alone(self, localstripe_url):
        side = StripeSide(localstripe_url)
        good, bad = _key(side, 20), _key(side, 21)

        results = side.provider.refund_batch(batch_key="b2:bulk_refund", items=[
            {"idempotency_key": bad, "amount": 100, "currency": "HKD", "destination": {"type": "original"}},
            {"idempotency_key": good, "amount": 100, "currency": "HKD", "destination": side.destination(100)}])

        assert (results[bad].status, results[good].status) == ("failed", "succeeded")
        assert "original payment" in results[bad].failure_reason
