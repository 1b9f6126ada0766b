"""Closure services without the worker: each step called as the workflow would call it."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from closeout.audit.services import audit_verify
from closeout.cards.models import Card
from closeout.closures import services, states
from closeout.closures.models import CaseEvent, ClosureCase, RefundApproval
from closeout.ledger.models import Line
from closeout.ledger.services import account_balance, card_value_account

pytestmark = pytest.mark.django_db


def run_next(case: ClosureCase) -> ClosureCase:
    """Run the case's next action inline, as the workflow would."""
    case.refresh_from_db()
    wid = case.next_action_id
    if case.next_action == "verify":
        services.closure_verify(reference=case.reference, workflow_id=wid)
    elif case.next_action == "settle":
        services.closure_settle(reference=case.reference, workflow_id=wid)
    elif case.next_action == "refund":
        order = services.refund_order(reference=case.reference, workflow_id=wid)
        assert order is not None
        services.refund_record(reference=case.reference, workflow_id=wid,
                               result={"status": "succeeded", "provider_ref": "re_1"})
    elif case.next_action == "deactivate":
        services.closure_deactivated(reference=case.reference, workflow_id=wid, result={})
    elif case.next_action == "unbind":
        services.closure_unbound(reference=case.reference, workflow_id=wid, results={"maps-app": "acknowledged"})
    else:
        raise AssertionError(f"no action in {case.state}")
    case.refresh_from_db()
    return case


def request(card, **kw):
    return services.closure_request(card=card, channel="web", requester=kw.pop("requester", "customer:web"), **kw)


def test_one_open_case_per_card(make_card):
    card = make_card("YKT")
    first = request(card)
    with pytest.raises(services.CaseAlreadyOpen) as caught:
        request(card)
    assert caught.value.reference == first.reference


def test_replayed_step_changes_nothing(make_card):
    case = request(make_card("YKT"))
    wid = ClosureCase.objects.get(id=case.id).next_action_id
    services.closure_verify(reference=case.reference, workflow_id=wid)
    events = CaseEvent.objects.filter(case=case).count()
    services.closure_verify(reference=case.reference, workflow_id=wid)  # a step rerun after a crash
    assert CaseEvent.objects.filter(case=case).count() == events


def test_the_ledger_is_balanced_and_the_card_is_emptied_after_closing(make_card):
    card = make_card("YKT", balance=12345, bindings=["maps-app"])
    case = request(card)
    while case.state != states.CLOSED:
        case = run_next(case)

    assert Line.objects.aggregate(s=Sum("amount_minor"))["s"] == 0
    assert account_balance(card_value_account(card.id), "CNY").minor == 0
    assert account_balance(f"payable:{case.reference}", "CNY").minor == 0
    card.refresh_from_db()
    assert card.status == Card.Status.CLOSED
    assert audit_verify() is None


def test_debts_the_refund_cannot_cover_keep_the_case_waiting(make_card):
    card = make_card("YKT", balance=100, charges=[("overdraft", 5000)])
    case = run_next(run_next(request(card)))

    assert case.state == states.VERIFIED
    assert case.next_action == ""
    assert "waiting for payment" in case.events.last().note


def test_withdrawal_reverses_the_settlement_and_reactivates_the_card(make_card):
    card = make_card("OCTO", balance=5000, days_old=30)
    case = run_next(run_next(request(card)))
    assert case.state == states.AWAITING_RETURN

    services.closure_withdraw(reference=case.reference, actor="customer:web")

    card.refresh_from_db()
    assert card.status == Card.Status.ACTIVE
    assert account_balance(card_value_account(card.id), "HKD").minor == 5000
    with pytest.raises(states.IllegalTransition):
        services.closure_card_received(reference=case.reference, actor="staff:w")


def test_withdrawal_is_refused_after_the_refund(make_card):
    case = request(make_card("YKT"))
    for _ in range(3):  # verify, settle, refund
        case = run_next(case)
    assert case.state == states.DEACTIVATING
    with pytest.raises(states.IllegalTransition):
        services.closure_withdraw(reference=case.reference, actor="customer:web")


def test_large_refund_waits_for_a_second_person(make_card):
    card = make_card("YKT", balance=90000)
    case = run_next(run_next(request(card, requester="staff:agent@op.test")))

    assert case.state == states.REFUND_PENDING and case.next_action == ""
    assert services.refund_order(reference=case.reference, workflow_id=case.next_action_id) is None
    with pytest.raises(services.UnableToApprove):
        services.refund_approve(reference=case.reference, approver="staff:agent@op.test")

    services.refund_approve(reference=case.reference, approver="staff:checker@op.test")
    case.refresh_from_db()
    assert case.next_action == "refund"
    assert RefundApproval.objects.get(case=case).decided_by == "staff:checker@op.test"
    assert run_next(case).state == states.DEACTIVATING


def test_refund_to_a_bank_account_needs_approval_and_keeps_the_account_sealed(make_card):
    card = make_card("YKT", balance=100)
    case = request(card, refund_destination={"type": "bank", "account_number": "012-345-678901", "bank_code": "004"})
    assert case.refund_destination == {"type": "bank", "bank_code": "004", "account_masked": "••••8901"}
    assert "678901" not in case.refund_destination_sealed
    case = run_next(run_next(case))
    assert RefundApproval.objects.get(case=case).reason == "other_destination"

    services.refund_reject(reference=case.reference, approver="staff:checker@op.test", reason="name mismatch")
    case.refresh_from_db()
    assert case.state == states.ON_HOLD
    services.closure_resume(reference=case.reference, actor="staff:sup@op.test")
    case.refresh_from_db()
    assert case.state == states.REFUND_PENDING and case.next_action == ""
    assert RefundApproval.objects.get(case=case).decision == ""


def test_hold_and_resume_rerun_the_action_with_a_new_workflow_id(make_card):
    case = request(make_card("YKT"))
    first_id = ClosureCase.objects.get(id=case.id).next_action_id
    services.closure_hold(reference=case.reference, actor="staff:s", reason="customer called")
    services.closure_resume(reference=case.reference, actor="staff:s")
    case.refresh_from_db()
    assert case.state == states.SUBMITTED
    assert case.next_action_id == f"{case.reference}:verify:2" != first_id


def test_a_product_takes_requests_only_through_its_channels_and_all_when_it_names_none(make_card):
    card = make_card("YKT", balance=5000)
    card.product.allowed_channels = ["web"]
    card.product.save()

    with pytest.raises(services.ChannelNotAllowed):
        services.closure_request(card=card, channel="chat", requester="staff:agent")
    card.refresh_from_db()
    assert card.status == "active" and not ClosureCase.objects.exists()

    card.product.allowed_channels = []
    card.product.save()
    assert services.closure_request(card=card, channel="chat", requester="staff:agent").channel == "chat"


def test_a_bulk_closure_is_the_operators_own_and_never_refused_by_channel(make_card):
    card = make_card("YKT", balance=5000)
    card.product.allowed_channels = ["web"]
    card.product.save()

    assert services.closure_request(card=card, channel="bulk", requester="staff:ops").channel == "bulk"
