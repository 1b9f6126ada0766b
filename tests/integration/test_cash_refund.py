"""A refund in cash waits for the customer at a branch counter: nothing is paid until a clerk has
checked the holder's ID document and handed the money over from the branch's till."""

from __future__ import annotations

import json

import pytest

from closeout.aftercare.reconcile import reconcile_run
from closeout.closures import services, states
from closeout.closures.models import ClosureCase, Refund
from closeout.integrations.models import SimRefund
from closeout.ledger import services as ledger
from closeout.notifications.models import Notice
from tests.aftercare_support import close_card, run_to_end
from tests.fixtures import HKID
from tests.integration.test_console_support import staff_client  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db
CASH = {"type": "cash"}
HAND_OVER = {"id_type": "hkid", "id_number": HKID, "original_seen": "on", "cash_counted": "on"}


def _state(case) -> str:
    return ClosureCase.objects.get(id=case.id).state


def test_the_refund_waits_at_the_counter_and_the_customer_is_told_where_to_collect_it(make_card, client):
    case = close_card(make_card("YKT", balance=45000), destination=CASH)

    assert _state(case) == states.REFUND_PENDING and not ClosureCase.objects.get(id=case.id).next_action
    assert Refund.objects.get(case=case).status == "pending" and not SimRefund.objects.exists()
    assert sorted(Notice.objects.filter(case=case, template="cash_ready").values_list("channel", flat=True)) == [
        "email", "sms"]
    assert ledger.account_balance(ledger.refunds_payable_account(case.reference), "CNY").minor == 47000  # still owed


def test_a_clerk_hands_the_cash_over_after_the_id_check_and_the_case_closes(make_card, staff_client):  # noqa: F811
    case = close_card(make_card("YKT", balance=45000), destination=CASH)
    client, clerk = staff_client("branch_clerk", branch_code="HK-CEN")
    page = f"/console/cases/{case.reference}/"
    assert "waits to be collected in cash" in client.get(page).content.decode()

    wrong = client.post(f"{page}cash", {**HAND_OVER, "id_number": "B1234560"}, follow=True).content.decode()
    assert "Do not hand over the cash" in wrong and _state(case) == states.REFUND_PENDING
    unticked = client.post(f"{page}cash", {**HAND_OVER, "cash_counted": ""}, follow=True).content.decode()
    assert "tick both boxes" in unticked and _state(case) == states.REFUND_PENDING

    done = client.post(f"{page}cash", HAND_OVER, follow=True).content.decode()
    assert "Cash handed over" in done and _state(case) == states.DEACTIVATING
    refund = Refund.objects.get(case=case)
    assert (refund.status, refund.provider_ref) == ("succeeded", "cash:HK-CEN") and not SimRefund.objects.exists()
    assert ledger.account_balance(ledger.branch_cash_account("HK-CEN", "CNY"), "CNY").minor == 47000  # out of the till
    assert ledger.account_balance(ledger.refunds_payable_account(case.reference), "CNY").minor == 0
    assert "No cash refund" in client.post(f"{page}cash", HAND_OVER, follow=True).content.decode()  # not twice

    closed = run_to_end(case.reference)
    assert closed.state == states.CLOSED and json.loads(closed.certificate.facts)["refund"]["destination"]["type"] == "cash"
    assert [m for m in reconcile_run(references=[case.reference])] == []


def test_cash_is_never_handed_over_for_a_refund_paid_another_way(make_card):
    case = close_card(make_card("YKT", balance=900))
    with pytest.raises(services.UnableToHandOver):
        services.refund_cash_hand_over(reference=case.reference, clerk="staff:clerk", branch_code="HK-CEN",
                                       id_type="hkid", id_number=HKID)


def test_only_a_clerk_of_a_branch_hands_cash_over_and_a_wrong_id_is_on_record(make_card, staff_client):  # noqa: F811
    from closeout.audit.models import AuditEvent

    case = close_card(make_card("YKT", balance=45000), destination=CASH)
    client, _ = staff_client("branch_clerk")  # an account without a branch
    page = client.post(f"/console/cases/{case.reference}/cash", {**HAND_OVER, "branch": "HK-CEN"},
                       follow=True).content.decode()
    assert "your account has none" in page and _state(case) == states.REFUND_PENDING

    with pytest.raises(services.IdentityNotVerified):
        services.refund_cash_hand_over(reference=case.reference, clerk="staff:clerk", branch_code="HK-CEN",
                                       id_type="hkid", id_number="B1234566")  # someone else's
    refused = AuditEvent.objects.get(action="closure.refund.cash_refused")
    assert refused.subject == case.reference and "B1234566" not in str(refused.data) + refused.reason


def test_a_cash_refund_the_provider_already_paid_is_recorded_as_paid_not_handed_out_again(make_card):
    """Cash refunds went to the payment provider before they waited at the counter: a provider's
    answer for such a case is a provider refund, never cash to hand over as well."""
    card = make_card("YKT", balance=45000)
    case = services.closure_request(card=card, channel="web", requester="customer:web", refund_destination=CASH)
    run_to_end(case.reference)  # waits for approval, approved, then the cash is made ready...
    ClosureCase.objects.filter(id=case.id).update(next_action="refund", next_action_id=f"{case.reference}:old")
    Refund.objects.filter(case=case).delete()  # ...as if the old version had sent it to the provider instead
    services.refund_record(reference=case.reference, workflow_id=f"{case.reference}:old",
                           result={"status": "succeeded", "provider_ref": "re_old"})

    refund = Refund.objects.get(case=case)
    assert (refund.status, refund.provider_ref) == ("succeeded", "re_old")
    assert services.cash_awaiting_collection(ClosureCase.objects.get(id=case.id)) is None
    assert _state(case) == states.DEACTIVATING


def test_the_case_timeline_shows_a_refused_and_a_done_hand_over(make_card, staff_client):  # noqa: F811
    from closeout.appointments.models import Branch

    Branch.objects.create(code="HK-CEN", name="Central", name_zh_hant="中環客務中心", calendar="HK")
    case = close_card(make_card("YKT", balance=45000), destination=CASH)
    clerk, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    page = f"/console/cases/{case.reference}/"
    clerk.post(f"{page}cash", {**HAND_OVER, "id_number": "B1234566"})  # a valid HKID, not the holder's
    clerk.post(f"{page}cash", HAND_OVER)

    supervisor, _ = staff_client("supervisor")
    timeline = supervisor.get(page, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode().split('<ol class="timeline">')[1]
    refused = timeline.index('data-kind="cash_refused"')
    handed = timeline.index('data-kind="cash_handed_over"')
    assert refused < handed and "中環客務中心" in timeline[refused:handed]
    assert "B1234566" not in timeline and "cash_refused<" not in timeline
