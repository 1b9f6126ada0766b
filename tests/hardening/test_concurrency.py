"""Races: many requests at the same instant must still give one case, one decision, one refund.

Service-level races use real threads with their own database connections (row locks on
PostgreSQL, BEGIN IMMEDIATE on SQLite); HTTP races go to the live server.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from closeout.closures import services, states
from closeout.closures.models import CaseEvent, ClosureCase, Refund, RefundApproval
from closeout.common.money import Money
from closeout.integrations.models import SimRefund
from closeout.integrations.payments.simulator import SimulatedPaymentProvider
from closeout.ledger.models import Posting
from tests.integration import test_console_support as console_support

PARALLEL = 50
branch = console_support.branch  # a branch with two counters, open 09:00-17:00


def race(count: int, fn) -> list:
    """Run fn(i) in `count` threads released at once; return each result or the exception raised."""
    barrier = threading.Barrier(count)

    def run(index):
        try:
            barrier.wait(timeout=60)
            return fn(index)
        except Exception as exc:  # noqa: BLE001 - the caller inspects every outcome
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def kinds(outcomes) -> Counter:
    return Counter(type(o).__name__ for o in outcomes)


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_submissions_for_one_card_open_one_case(make_card):
    card = make_card("YKT", balance=9000)

    outcomes = race(PARALLEL, lambda i: services.closure_request(
        card=card, channel="web", requester=f"customer:{i}"))

    created = [o for o in outcomes if isinstance(o, ClosureCase)]
    refused = [o for o in outcomes if isinstance(o, services.CaseAlreadyOpen)]
    assert len(created) == 1, kinds(outcomes)
    assert len(refused) == PARALLEL - 1, kinds(outcomes)
    assert {o.reference for o in refused} == {created[0].reference}
    assert ClosureCase.objects.filter(card=card).count() == 1
    card.refresh_from_db()
    assert card.status == "closing"


def _waiting_for_approval(make_card) -> ClosureCase:
    card = make_card("YKT", balance=9000)
    case = services.closure_request(card=card, channel="phone", requester="staff:maker",
                                    refund_destination={"type": "bank", "bank_code": "004", "account_number": "0123456789"})
    services.closure_verify(reference=case.reference, workflow_id=f"{case.reference}:verify")
    services.closure_settle(reference=case.reference, workflow_id=f"{case.reference}:settle")
    case.refresh_from_db()
    assert case.state == states.REFUND_PENDING and not case.next_action
    assert RefundApproval.objects.filter(case=case, decision="").exists()
    return case


def _pay(reference: str, workflow_id: str) -> str:
    """The refund action's steps, as the worker runs them."""
    order = services.refund_order(reference=reference, workflow_id=workflow_id)
    if order is None:
        return "skipped"
    result = SimulatedPaymentProvider().refund(
        idempotency_key=order["idempotency_key"], amount=Money(order["amount"], order["currency"]),
        destination=order["destination"])
    return services.refund_record(reference=reference, workflow_id=workflow_id, result=result.as_json())


@pytest.mark.django_db(transaction=True)
def test_parallel_refund_approvals_schedule_and_pay_one_refund(make_card):
    case = _waiting_for_approval(make_card)

    outcomes = race(PARALLEL, lambda i: services.refund_approve(
        reference=case.reference, approver=("staff:alice", "staff:bob")[i % 2]))

    assert all(isinstance(o, ClosureCase) for o in outcomes), kinds(outcomes)
    approval = RefundApproval.objects.get(case=case)
    assert approval.decision == "approved"
    assert CaseEvent.objects.filter(case=case, key__startswith="approve:").count() == 1
    case.refresh_from_db()
    assert case.next_action == "refund"

    # Every worker that heard about the approval runs the action: still one refund.
    outcomes = race(8, lambda i: _pay(case.reference, case.next_action_id))
    assert not [o for o in outcomes if isinstance(o, Exception) and not _transient(o)], kinds(outcomes)
    _pay(case.reference, case.next_action_id)  # a retry after any lost race
    assert SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund").count() == 1
    assert Refund.objects.filter(case=case).count() == 1
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
    assert ClosureCase.objects.get(id=case.id).state == states.DEACTIVATING


@pytest.mark.django_db(transaction=True)
def test_clerks_at_two_counters_hand_one_cash_refund_over_once(make_card):
    from tests.aftercare_support import close_card
    from tests.fixtures import HKID

    case = close_card(make_card("YKT", balance=9000), destination={"type": "cash"})
    assert services.cash_awaiting_collection(case) is not None

    outcomes = race(8, lambda i: services.refund_cash_hand_over(
        reference=case.reference, clerk=f"staff:clerk{i}", branch_code=("HK-CEN", "HK-MKK")[i % 2],
        id_type="hkid", id_number=HKID))

    assert kinds(outcomes) == {"ClosureCase": 1, "UnableToHandOver": 7}, kinds(outcomes)
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
    assert Refund.objects.get(case=case).status == "succeeded"
    assert ClosureCase.objects.get(id=case.id).state == states.DEACTIVATING


def _transient(exc: Exception) -> bool:
    from closeout.integrations.errors import TransientError

    return isinstance(exc, TransientError)  # the provider's "same key in flight": the step retries


@pytest.mark.django_db(transaction=True)
def test_parallel_approve_and_reject_leave_one_decision(make_card):
    case = _waiting_for_approval(make_card)

    def decide(i):
        if i % 2:
            return services.refund_approve(reference=case.reference, approver="staff:alice")
        return services.refund_reject(reference=case.reference, approver="staff:bob", reason="wrong destination")

    outcomes = race(20, decide)

    assert set(kinds(outcomes)) <= {"ClosureCase", "UnableToApprove"}, kinds(outcomes)
    approval = RefundApproval.objects.get(case=case)
    case.refresh_from_db()
    if approval.decision == "approved":
        assert case.state == states.REFUND_PENDING and case.next_action == "refund"
        assert not CaseEvent.objects.filter(case=case, key__startswith="refund_rejected:").exists()
    else:
        assert approval.decision == "rejected" and case.state == states.ON_HOLD
        assert not CaseEvent.objects.filter(case=case, key__startswith="approve:").exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_bookings_never_overbook_a_slot(make_card, branch):
    """Two counters, one slot, 50 customers at once (and 10 of them also racing for a second
    slot): two bookings per slot, one booking per card, everyone else told the slot is full."""
    from closeout.appointments import services as appointments
    from closeout.appointments.models import Appointment
    from tests.integration.test_console_support import local, next_working_day

    day = next_working_day()
    slot, other = local(day, 11), local(day, 14)
    cards = [make_card("YKT") for _ in range(PARALLEL)]

    def book(i):
        starts_at = other if i >= PARALLEL - 10 and i % 2 else slot
        return appointments.appointment_book(card=cards[i % (PARALLEL - 5)], branch=branch, starts_at=starts_at,
                                             actor="customer:web")

    outcomes = race(PARALLEL, book)

    assert set(kinds(outcomes)) <= {"Appointment", "SlotFull", "CardAlreadyBooked"}, kinds(outcomes)
    for starts_at in (slot, other):
        booked = Appointment.objects.filter(starts_at=starts_at, status="BOOKED")
        assert sorted(booked.values_list("counter__label", flat=True)) == ["A", "B"]
    per_card = Counter(Appointment.objects.filter(status="BOOKED").values_list("card_id", flat=True))
    assert set(per_card.values()) == {1}


def _post_closure(server, card, key):
    return requests.post(server.url + "/api/v1/closures", json={
        "card_number": card["number"], "holder_name": card["holder_name"], "id_document": card["id_document"],
    }, headers=server.headers(scope="partner", **{"Idempotency-Key": key}), timeout=60)


def _free_demo_card(server, index):
    """One of the last demo cards, which the fuzzing leaves alone (RESERVED_FOR_RACES)."""
    active = [c for c in server.demo_cards if c["status"] == "active"]
    return [c for c in active[-6:] if not c["outstanding_fees"]][-1 - index]


def test_fifty_parallel_http_requests_for_one_card_open_one_case(closeout_server):
    card = _free_demo_card(closeout_server, 0)
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        responses = list(pool.map(lambda i: _post_closure(closeout_server, card, f"race-card-{i}"), range(PARALLEL)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: PARALLEL - 1}, statuses
    assert {r.json()["type"].rsplit("/", 1)[1] for r in responses if r.status_code == 409} == {"closure-already-open"}


def test_parallel_requests_with_one_idempotency_key_create_one_case(closeout_server):
    card = _free_demo_card(closeout_server, 1)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda i: _post_closure(closeout_server, card, "race-same-key"), range(20)))

    # The losers wait for the card, find its open case and replay the winner's stored answer.
    assert Counter(r.status_code for r in responses) == {201: 20}
    assert len({r.content for r in responses}) == 1  # replays are byte for byte the first answer


def _deactivating(make_card) -> ClosureCase:
    case = services.closure_request(card=make_card("YKT", balance=3000), channel="web", requester="customer:web")
    services.closure_verify(reference=case.reference, workflow_id=f"{case.reference}:verify")
    services.closure_settle(reference=case.reference, workflow_id=f"{case.reference}:settle")
    case.refresh_from_db()
    _pay(case.reference, case.next_action_id)
    case.refresh_from_db()
    assert case.state == states.DEACTIVATING, case.state
    return case


@pytest.mark.django_db(transaction=True)
def test_the_first_closings_at_one_instant_share_one_new_signing_key(make_card):
    from closeout.certificates.models import Certificate, SigningKey

    cases = [_deactivating(make_card) for _ in range(8)]
    assert not SigningKey.objects.exists()

    outcomes = race(len(cases), lambda i: services.closure_deactivated(
        reference=cases[i].reference, workflow_id=cases[i].next_action_id, result={"status": "blocked"}))

    assert outcomes == [states.CLOSED] * len(cases), kinds(outcomes)
    key = SigningKey.objects.get()  # one key: no closing retired another's key as a "rotation"
    assert key.active and key.private_key_sealed
    assert set(Certificate.objects.values_list("key_id", flat=True)) == {key.id}
