"""A closure runs through the DBOS worker to `closed`, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from closeout.closures import services, states
from closeout.closures.models import ClosureCase
from closeout.integrations.models import SimCardBlock, SimFault, SimRefund
from closeout.ledger.models import Posting
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _state(reference):
    return ClosureCase.objects.get(reference=reference).state


def test_card_without_return_closes_with_one_refund_and_one_block(dbos_worker, make_card):
    card = make_card("YKT", balance=45000, bindings=["maps-app"])
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _state(case.reference) == states.CLOSED)

    refunds = SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund")
    assert [(r.amount_minor, r.currency, r.status) for r in refunds] == [(47000, "CNY", "succeeded")]
    assert SimCardBlock.objects.filter(card_number=card.number).count() == 1
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
    card.refresh_from_db()
    assert card.status == "closed"
    assert card.bindings.filter(unbound_at__isnull=True).count() == 0


def test_physical_card_waits_for_return_then_closes(dbos_worker, make_card):
    card = make_card("OCTO", balance=12000, days_old=30)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    wait_for(lambda: _state(case.reference) == states.AWAITING_RETURN)
    assert not SimRefund.objects.exists()

    services.closure_card_received(reference=case.reference, actor="staff:warehouse")
    wait_for(lambda: _state(case.reference) == states.CLOSED)

    # Octopus-like: HK$11 handling fee within 90 days of issue; HK$50 deposit back.
    assert SimRefund.objects.get().amount_minor == 12000 + 5000 - 1100


def test_a_timed_out_refund_is_retried_with_the_same_key_and_paid_once(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="timeout", remaining=2)
    card = make_card("YKT", balance=900)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _state(case.reference) == states.CLOSED)

    # The settlement webhook may close the case before the retries end; the workflow still asks
    # again with the same key after each lost answer, and the provider pays once.
    wait_for(lambda: SimRefund.objects.get().request_count == 3)
    assert SimRefund.objects.count() == 1
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1


def test_a_declined_refund_goes_to_staff_and_is_not_retried(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="decline", remaining=1)
    card = make_card("YKT", balance=900)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _state(case.reference) == states.FAILED)

    case.refresh_from_db()
    assert case.attention_reason == "refund failed"
    assert SimRefund.objects.get().request_count == 1


def test_the_holder_gets_a_receipt_and_is_told_once_when_the_refund_is_paid_and_when_the_case_closes(
        dbos_worker, make_card):
    from django.core import mail

    from closeout.notifications.models import Notice

    card = make_card("YKT", balance=45000)
    case = services.closure_request(card=card, channel="partner_api", requester="partner:bank")

    wait_for(lambda: _state(case.reference) == states.CLOSED)
    wait_for(lambda: Notice.objects.filter(case=case, status="sent").count() == 6)

    told = sorted((n.context["state"], n.channel) for n in Notice.objects.filter(case=case, template="status"))
    assert told == [("closed", "email"), ("closed", "sms"), ("refunded", "email"), ("refunded", "sms")]
    assert sorted(Notice.objects.filter(case=case, template="receipt").values_list("channel", flat=True)) == [
        "email", "sms"]
    mine = [m for m in mail.outbox if case.reference in m.subject and "Status: " in m.body]
    assert sorted(m.body.split("Status: ")[1].split("\n")[0] for m in mine) == ["Closed", "Refunded"]
    assert [m.subject for m in mail.outbox if case.reference in m.subject and m not in mine] == [
        f"We received your closure request {case.reference}"]
    assert all(card.number not in m.body for m in mine)
