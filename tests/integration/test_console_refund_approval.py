"""The refund approver's queue: what they decide on, and decisions that must not count (their own
request, a refund that changed since they read it, one another approver decided first)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from closeout.closures import services, states
from closeout.closures.models import ClosureCase, RefundApproval
from tests.integration import test_console_support as support
from tests.integration.test_console_support import make_staff, sign_in

staff_client = support.staff_client
pytestmark = pytest.mark.django_db

BANK = {"type": "bank", "bank_code": "004", "account_number": "123456789012"}


def _waiting(make_card, *, requester: str = "customer:web", destination=None, **card) -> ClosureCase:
    """A case whose refund waits for a second person (to a bank account unless told otherwise)."""
    made = make_card("YKT", **({"balance": 45000} | card))
    case = services.closure_request(card=made, channel="web", requester=requester,
                                    refund_destination=destination or BANK)
    services.closure_verify(reference=case.reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    services.closure_settle(reference=case.reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    case.refresh_from_db()
    assert case.state == states.REFUND_PENDING and RefundApproval.objects.filter(case=case, decision="").exists()
    return case


def _row(page: str, reference: str) -> str:
    return re.search(rf'<tr data-reference="{reference}">.*?</tr>\s*(?=<tr data-reference|{{% empty|</tbody>)',
                     page, re.S)[0]


def _seen(client: Client, reference: str) -> str:
    """The version of the refund the approver's queue shows ("" when it shows none)."""
    found = re.search(r'name="seen" value="([0-9a-f]+)"', _row(client.get("/console/refunds/").content.decode(),
                                                                reference))
    return found[1] if found else ""


def test_the_queue_shows_the_holder_how_the_refund_adds_up_and_where_it_goes_recognisably(staff_client,
                                                                                           make_card):
    case = _waiting(make_card, requester="api:k3y9prefix", balance=45000, charges=[("overdraft", 300)])
    client, _ = staff_client("refund_approver")

    row = _row(client.get("/console/refunds/").content.decode(), case.reference)

    assert "陈大文" in row and f"•••• {case.card.number[-4:]}" in row
    assert '<th scope="row">Balance</th><td>CN¥450.00</td>' in row and '<th scope="row">Deposit</th><td>CN¥20.00</td>' in row
    assert '<th scope="row">Overdraft</th><td>−CN¥3.00</td>' in row  # paid off from the refund
    assert '<tr class="total"><th scope="row">Refund</th><td>CN¥467.00</td>' in row
    assert "Bank account 004 ••••9012" in row and "123456789012" not in row
    assert "API key k3y9prefix" in row and "api:" not in row


def test_the_case_page_shows_the_bank_code_beside_the_masked_account(staff_client, make_card):
    case = _waiting(make_card)
    client, _ = staff_client("refund_approver")

    page = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert "（銀行戶口 004 ••••9012）" in page and "data-breakdown" in page


def test_a_refund_asked_for_again_since_the_page_was_shown_is_not_approved_on_the_old_page(staff_client,
                                                                                            make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    seen = _seen(approver, case.reference)  # the approver reads the queue ...
    other, _ = staff_client("refund_approver")
    other.post(f"/console/refunds/{case.reference}/reject",
               {"reason": "account holder name differs", "seen": _seen(other, case.reference)})
    supervisor, _ = staff_client("supervisor")
    supervisor.post(f"/console/cases/{case.reference}/resume", {"reason": "customer confirmed the account"})
    assert RefundApproval.objects.get(case=case).decision == ""  # ... and it waits again, asked for anew

    answer = approver.post(f"/console/refunds/{case.reference}/approve", {"seen": seen}, follow=True)

    assert "This refund changed since your page was shown" in answer.content.decode()
    assert RefundApproval.objects.get(case=case).decision == ""
    assert not ClosureCase.objects.get(id=case.id).next_action
    # Read again, it can be decided.
    approver.post(f"/console/refunds/{case.reference}/approve", {"seen": _seen(approver, case.reference)})
    assert RefundApproval.objects.get(case=case).decision == "approved"


def test_a_refund_whose_destination_changed_is_not_decided_on_the_old_page(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    seen = _seen(approver, case.reference)
    ClosureCase.objects.filter(id=case.id).update(
        refund_destination={"type": "bank", "bank_code": "024", "account_masked": "••••9012"})

    for action, data in (("approve", {}), ("reject", {"reason": "looks wrong"})):
        answer = approver.post(f"/console/refunds/{case.reference}/{action}", data | {"seen": seen}, follow=True)
        assert "This refund changed since your page was shown" in answer.content.decode()
    assert RefundApproval.objects.get(case=case).decision == ""
    assert ClosureCase.objects.get(id=case.id).state == states.REFUND_PENDING


def test_a_decision_without_the_version_read_is_not_taken(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")

    approver.post(f"/console/refunds/{case.reference}/approve", {"note": "ok"})

    assert RefundApproval.objects.get(case=case).decision == ""


def test_whoever_put_a_rejected_refund_back_in_the_queue_cannot_approve_it_themself(staff_client, make_card):
    case = _waiting(make_card)
    checker, _ = staff_client("refund_approver")
    checker.post(f"/console/refunds/{case.reference}/reject",
                 {"reason": "account holder name differs", "seen": _seen(checker, case.reference)})
    supervisor, profile = staff_client("supervisor")
    supervisor.post(f"/console/cases/{case.reference}/resume", {"reason": "I checked it"})

    queue = supervisor.get("/console/refunds/").content.decode()
    row = _row(queue, case.reference)
    assert "data-own-request" in row and "/approve" not in row
    assert profile.user.email in row  # named as the one who asked
    answer = supervisor.post(f"/console/refunds/{case.reference}/approve",
                             {"seen": _seen(checker, case.reference)}, follow=True)

    assert "another approver must decide it" in answer.content.decode()
    assert RefundApproval.objects.get(case=case).decision == ""


def test_the_staff_member_who_opened_the_case_cannot_approve_it_after_a_resume_either(make_card):
    maker, maker_device, _ = make_staff("supervisor")
    case = _waiting(make_card, requester=maker.actor)
    checker, checker_device, _ = make_staff("refund_approver")
    checker_client = sign_in(Client(), checker, checker_device)
    checker_client.post(f"/console/refunds/{case.reference}/reject",
                        {"reason": "wrong account", "seen": _seen(checker_client, case.reference)})
    other, other_device, _ = make_staff("supervisor")
    sign_in(Client(), other, other_device).post(f"/console/cases/{case.reference}/resume", {"reason": "fixed"})

    maker_client = sign_in(Client(), maker, maker_device)
    maker_client.post(f"/console/refunds/{case.reference}/approve", {"seen": _seen(checker_client, case.reference)})

    assert RefundApproval.objects.get(case=case).decision == ""


def test_an_approver_who_comes_second_is_told_who_approved_first(staff_client, make_card):
    case = _waiting(make_card)
    first, first_profile = staff_client("refund_approver")
    second, _ = staff_client("refund_approver")
    seen = _seen(second, case.reference)  # both read the queue
    first.post(f"/console/refunds/{case.reference}/approve", {"seen": _seen(first, case.reference)})

    answer = second.post(f"/console/refunds/{case.reference}/approve", {"seen": seen}, follow=True).content.decode()

    assert f"{first_profile.user.email} already approved this refund" in answer
    assert "is approved and will be paid" not in answer
    assert RefundApproval.objects.get(case=case).decided_by == first_profile.actor


def test_approving_twice_in_a_row_says_approved_both_times(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    seen = _seen(approver, case.reference)

    answers = [approver.post(f"/console/refunds/{case.reference}/approve", {"seen": seen}, follow=True)
               for _ in range(2)]

    assert all(f"The refund of case {case.reference} is approved and will be paid" in a.content.decode()
               for a in answers)
    assert RefundApproval.objects.get(case=case).decision == "approved"


def test_rejecting_twice_in_a_row_says_it_was_already_rejected_not_that_nothing_waits(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    data = {"reason": "account holder name differs", "seen": _seen(approver, case.reference)}

    approver.post(f"/console/refunds/{case.reference}/reject", data)
    again = approver.post(f"/console/refunds/{case.reference}/reject", data, follow=True).content.decode()

    assert "You already rejected this refund at" in again and "not waiting for a decision" not in again
    assert ClosureCase.objects.get(id=case.id).state == states.ON_HOLD


def test_the_home_page_says_how_many_refunds_wait_for_the_approver(staff_client, make_card):
    for _ in range(2):
        _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    agent, _ = staff_client("agent")

    home = approver.get("/console/").content.decode()

    link = home.split('data-action="refund.approve"')[1].split("</li>")[0]
    assert 'data-waiting="2"> (2)</strong>' in link
    assert "data-waiting" not in agent.get("/console/").content.decode()  # works neither queue


def test_a_rejection_without_a_reason_on_the_case_page_stays_on_the_case_page(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")
    seen = re.search(r'name="seen" value="([0-9a-f]+)"',
                     approver.get(f"/console/cases/{case.reference}/").content.decode())[1]

    answer = approver.post(f"/console/refunds/{case.reference}/reject", {"reason": "   ", "seen": seen,
                                                                         "back": "case"})

    assert answer.status_code == 302 and answer["Location"] == f"/console/cases/{case.reference}/"
    assert "Give a reason." in approver.get(answer["Location"]).content.decode()
    assert RefundApproval.objects.get(case=case).decision == ""


def test_an_approval_with_a_note_reads_as_an_approval_on_the_case_page(staff_client, make_card):
    case = _waiting(make_card)
    approver, _ = staff_client("refund_approver")

    approver.post(f"/console/refunds/{case.reference}/approve", {"note": "account name checked",
                                                                 "seen": _seen(approver, case.reference)})

    english = approver.get(f"/console/cases/{case.reference}/").content.decode()
    chinese = approver.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "refund approved: account name checked" in english
    assert re.search(r'data-approval="approved">Approved by [^<]+: account name checked</p>', english)
    assert "退款已批准：account name checked" in chinese


def test_a_decision_from_the_queue_says_which_case_it_was_made_on(staff_client, make_card):
    approved, rejected = _waiting(make_card), _waiting(make_card)
    approver, _ = staff_client("refund_approver")

    english = approver.post(f"/console/refunds/{approved.reference}/approve",
                            {"seen": _seen(approver, approved.reference)}, follow=True).content.decode()
    chinese = approver.post(f"/console/refunds/{rejected.reference}/reject",
                            {"reason": "account holder name differs", "seen": _seen(approver, rejected.reference)},
                            follow=True, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert f"The refund of case {approved.reference} is approved and will be paid." in english
    assert f"申請 {rejected.reference} 的退款已駁回，申請已暫停處理。" in chinese


def test_the_case_page_says_when_the_refund_was_approved_or_rejected(staff_client, make_card):
    from django.utils import timezone

    approved, rejected = _waiting(make_card), _waiting(make_card)
    approver, profile = staff_client("refund_approver")
    approver.post(f"/console/refunds/{approved.reference}/approve", {"seen": _seen(approver, approved.reference)})
    approver.post(f"/console/refunds/{rejected.reference}/reject",
                  {"reason": "account holder name differs", "seen": _seen(approver, rejected.reference)})

    def shown(case, language):
        page = approver.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        return re.search(r'<p data-approval="\w+">(.*?)</p>', page, re.S)[1]

    def at(case):  # the minute of the decision, in Hong Kong as the rest of the page
        return f"{timezone.localtime(RefundApproval.objects.get(case=case).decided_at):%Y-%m-%d %H:%M}"

    who = profile.user.email
    assert shown(approved, "en") == f"Approved by {who} at {at(approved)}"
    assert shown(rejected, "en") == f"Rejected by {who} at {at(rejected)}: account holder name differs"
    assert shown(approved, "zh-hant") == f"由 {who} 於 {at(approved)} 批准"
    assert shown(rejected, "zh-hans") == f"由 {who} 于 {at(rejected)} 驳回：account holder name differs"


def test_an_e_wallet_shows_its_last_four_characters_as_a_bank_account_does(staff_client, make_card):
    wallet = _waiting(make_card, destination={"type": "ewallet", "provider": "payme", "wallet_id": "98765432"})
    bank = _waiting(make_card)
    client, _ = staff_client("refund_approver")

    page = client.get("/console/refunds/").content.decode()

    assert "payme ••••5432" in _row(page, wallet.reference) and "98765432" not in page
    assert "004 ••••9012" in _row(page, bank.reference)
