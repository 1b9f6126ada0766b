"""Warehouse check-in by label code or card number, the exception queue, destruction records,
and the counter: ID check, card taken and destroyed, customer confirmation, receipt."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from closeout.appointments import services as appointments
from closeout.appointments.models import Appointment
from closeout.audit.models import AuditEvent
from closeout.closures import services as closures
from closeout.closures import states, workflow
from closeout.closures.models import ClosureCase
from closeout.integrations.models import SimShipment
from closeout.returns import services as returns
from closeout.returns.models import CheckIn, Destruction, ReturnException
from tests.fixtures import HKID
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state, local, next_working_day

branch = support.branch
staff_client = support.staff_client
pytestmark = pytest.mark.django_db


def _state(case):
    return ClosureCase.objects.get(id=case.id).state


def test_scanning_the_label_checks_the_card_in_and_the_refund_follows(make_card):
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    assert returns.return_label_issue(reference=case.reference) == label

    checkin = returns.return_check_in(code=label.code, actor="staff:wh")

    assert checkin.outcome == CheckIn.Outcome.RECEIVED
    assert _state(case) == states.REFUND_PENDING
    # A second scan of the same envelope changes nothing.
    assert returns.return_check_in(code=label.code, actor="staff:wh") == checkin
    assert CheckIn.objects.count() == 1


def test_scanning_the_card_number_works_too(make_card):
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    returns.return_check_in(code=card.number, actor="staff:wh")
    assert _state(case) == states.REFUND_PENDING


def test_a_case_reference_typed_from_the_envelope_works_too(make_card):
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")

    checkin = returns.return_check_in(code=case.reference.lower(), actor="staff:wh", card_number=card.number)

    assert checkin.outcome == CheckIn.Outcome.RECEIVED and checkin.scanned_masked == case.reference.replace("-", "")
    assert _state(case) == states.REFUND_PENDING


def test_a_case_reference_alone_checks_nothing_in(make_card):
    """References have no check digit: a typo would release another case's refund."""
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    with pytest.raises(returns.ReferenceNeedsCard):
        returns.return_check_in(code=case.reference, actor="staff:wh")
    assert _state(case) == states.AWAITING_RETURN and not CheckIn.objects.exists()


def test_a_label_code_of_a_seven_digit_reference_still_scans(make_card):
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    ClosureCase.objects.filter(id=case.id).update(reference="CL-2026-1000003")
    label = returns.return_label_issue(reference="CL-2026-1000003")
    assert returns.return_check_in(code=label.code, actor="staff:wh").outcome == CheckIn.Outcome.RECEIVED


@pytest.mark.parametrize("scan", ["RL20260000003", "8101000000000001"])
def test_unknown_codes_go_to_the_exception_queue(scan):
    checkin = returns.return_check_in(code=scan, actor="staff:wh")
    assert checkin.outcome == CheckIn.Outcome.EXCEPTION
    assert checkin.exception.reason == ReturnException.Reason.UNKNOWN


@pytest.mark.parametrize("scan", ["RL20260000000", "8101000000000000", "not a code"])
def test_a_misread_code_is_scanned_again_not_queued(scan):
    with pytest.raises(returns.MisreadCode):
        returns.return_check_in(code=scan, actor="staff:wh")
    assert not CheckIn.objects.exists() and not ReturnException.objects.exists()


def test_scanning_a_queued_card_again_queues_it_once(staff_client, make_card):
    client, _ = staff_client("warehouse")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    closures.closure_withdraw(reference=case.reference, actor="customer:web")
    first = client.post("/console/warehouse/", {"code": label.code, "card_number": ""}, follow=True).content.decode()
    assert f"Case {case.reference} (Withdrawn) is not waiting for this card" in first
    again = client.post("/console/warehouse/", {"code": label.code, "card_number": ""}, follow=True).content.decode()
    assert "Already in the exception queue since" in again
    unknown = "RL20260000003"
    for _ in range(2):
        client.post("/console/warehouse/", {"code": unknown, "card_number": ""})
    assert ReturnException.objects.filter(scanned_code=label.code).count() == 1
    assert ReturnException.objects.filter(scanned_code=unknown).count() == 1
    assert CheckIn.objects.count() == 2


def test_a_card_that_does_not_match_its_label_is_an_exception(make_card):
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    stranger = make_card("OCTO")

    checkin = returns.return_check_in(code=label.code, card_number=stranger.number, actor="staff:wh")

    assert checkin.exception.reason == ReturnException.Reason.MISMATCH
    assert _state(case) == states.AWAITING_RETURN


def test_a_label_scanned_with_another_card_inside_records_the_card_that_came_back(staff_client, make_card):
    """The envelope is the label's; what the warehouse holds is the card inside it. That card is
    what the check-in records (the one to trace, keep or destroy), and the exception names both."""
    client, _ = staff_client("warehouse")
    labelled_card = make_card("OCTO")
    labelled = case_in_state(labelled_card, "awaiting_return")
    label = returns.return_label_issue(reference=labelled.reference)
    inside = make_card("OCTO")  # still in use: nobody asked to close it

    said = client.post("/console/warehouse/", {"code": label.code, "card_number": inside.number},
                       follow=True).content.decode()

    checkin = CheckIn.objects.get()
    assert checkin.card == inside and checkin.case == labelled
    assert (checkin.exception.case, checkin.exception.card_number) == (labelled, inside.number)
    told = said.split('data-kind="scan-exception"')[1].split("</li>")[0]
    assert f"•••• {inside.number[-4:]}" in told and f"•••• {labelled_card.number[-4:]}" in told
    assert labelled.reference in told and "This card is in use: keep it for the customer" in told
    queue = client.get("/console/warehouse/exceptions/").content.decode()
    row = queue.split(f'data-exception="{checkin.exception.id}"')[1].split("</tr>")[0]
    assert f"Card inside: •••• {inside.number[-4:]}" in row and f"Label's card: •••• {labelled_card.number[-4:]}" in row
    assert "data-card-in-use" in row  # the card in hand still works
    assert inside.number not in queue and labelled_card.number not in queue
    assert _state(labelled) == states.AWAITING_RETURN


def test_a_card_number_inside_read_wrong_is_scanned_again_not_queued(make_card):
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)

    with pytest.raises(returns.MisreadCode):
        returns.return_check_in(code=label.code, card_number="8101000000000000", actor="staff:wh")

    assert not CheckIn.objects.exists() and not ReturnException.objects.exists()
    assert _state(case) == states.AWAITING_RETURN


def test_a_card_nobody_waits_for_is_an_exception_and_can_be_matched_later(make_card):
    from closeout.closures.models import ClosureCase

    card = make_card("OCTO")
    case = case_in_state(card, "submitted")
    checkin = returns.return_check_in(code=card.number, actor="staff:wh", desk="Desk 2")
    assert checkin.exception.reason == ReturnException.Reason.NOT_EXPECTED

    with pytest.raises(returns.UnableToResolve):
        returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup", resolution="x",
                                         reference="CL-2000-000001")
    ClosureCase.objects.filter(id=case.id).update(state=states.AWAITING_RETURN)  # its fees settled since
    returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup",
                                     resolution="arrived before its fees were paid", reference=case.reference)
    assert _state(case) == states.REFUND_PENDING
    received = CheckIn.objects.get(outcome=CheckIn.Outcome.RECEIVED)
    assert (received.card, received.case, received.desk) == (card, case, "Desk 2")
    with pytest.raises(returns.UnableToResolve):
        returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup", resolution="again")


def test_an_exception_is_not_resolved_by_naming_the_case_of_another_card(staff_client, make_card):
    """A card whose number was read is that card: checking it in for another card's case would
    refund a closure whose card never came back (and leave its own case waiting)."""
    client, _ = staff_client("warehouse")
    card = make_card("OCTO")
    case_in_state(card, "submitted")
    checkin = returns.return_check_in(code=card.number, actor="staff:wh")
    other = case_in_state(make_card("OCTO"), "awaiting_return")

    said = client.post(f"/console/warehouse/exceptions/{checkin.exception.id}/resolve",
                       {"resolution": "matched by the letter inside", "reference": other.reference},
                       follow=True).content.decode()

    assert f"The card in hand (•••• {card.number[-4:]}) is not the card of case {other.reference}" in said
    assert card.number not in said
    assert _state(other) == states.AWAITING_RETURN and not CheckIn.objects.filter(case=other).exists()
    checkin.exception.refresh_from_db()
    assert checkin.exception.resolved_at is None  # still waits in the queue


def test_a_wrong_envelope_queued_before_check_ins_named_the_card_inside_is_matched_by_that_card(make_card):
    # Such a check-in holds the label's card; the exception's card number is the card inside.
    labelled = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=labelled.reference)
    inside = make_card("OCTO")
    waiting = case_in_state(inside, "awaiting_return")
    checkin = returns.return_check_in(code=label.code, actor="staff:wh", card_number=inside.number)
    CheckIn.objects.filter(id=checkin.id).update(card=labelled.card)

    with pytest.raises(returns.NotTheCasesCard):
        returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup", resolution="x",
                                         reference=labelled.reference)
    returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup",
                                     resolution="its own case", reference=waiting.reference)
    assert _state(waiting) == states.REFUND_PENDING and _state(labelled) == states.AWAITING_RETURN


def test_a_torn_label_with_no_card_read_is_matched_by_what_staff_find(make_card):
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    checkin = returns.return_check_in(code="RL20269999999", actor="staff:wh")  # a label we never issued
    assert checkin.exception.reason == ReturnException.Reason.UNKNOWN
    returns.return_exception_resolve(exception_id=checkin.exception.id, actor="staff:sup",
                                     resolution="label torn; matched by the letter inside", reference=case.reference)
    assert _state(case) == states.REFUND_PENDING


def test_destruction_is_recorded_once_with_who_when_method_and_batch(make_card):
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    checkin = returns.return_check_in(code=card.number, actor="staff:wh")

    [record] = returns.destruction_batch(checkin_ids=[checkin.id], method="SHRED", batch="WH-2026-11-02",
                                         actor="staff:wh", witness="staff:lead")

    assert (record.card, record.case, record.method, record.batch, record.destroyed_by, record.place) == (
        card, case, "SHRED", "WH-2026-11-02", "staff:wh", "warehouse")
    assert record.witnessed_by == "staff:lead" and record.destroyed_at is not None
    with pytest.raises(returns.UnableToDestroy):
        returns.destruction_batch(checkin_ids=[checkin.id], method="SHRED", batch="again", actor="staff:wh",
                                  witness="staff:lead")
    [event] = AuditEvent.objects.filter(action="card.destroyed")
    assert event.data["witness"] == "staff:lead"


def test_nobody_destroys_a_batch_alone(make_card):
    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    checkin = returns.return_check_in(code=card.number, actor="staff:wh")

    for witness in ("", "staff:wh"):
        with pytest.raises(returns.UnableToDestroy):
            returns.destruction_batch(checkin_ids=[checkin.id], method="SHRED", batch="B-1", actor="staff:wh",
                                      witness=witness)
    assert not Destruction.objects.exists()


def test_warehouse_scans_and_destroys_from_the_console(staff_client, make_card):
    client, clerk = staff_client("warehouse")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)

    done = client.post("/console/warehouse/", {"code": label.code}, follow=True).content.decode()
    assert f"Received: case {case.reference}" in done
    again = client.post("/console/warehouse/", {"code": label.code}, follow=True).content.decode()
    assert "Already received on" in again and "Nothing changed" in again
    odd = client.post("/console/warehouse/", {"code": "RL20261234569"}, follow=True).content.decode()
    assert "exception queue" in odd
    misread = client.post("/console/warehouse/", {"code": "RL20261234560"}, follow=True).content.decode()
    assert "scan it again" in misread
    checkin = CheckIn.objects.get(case=case)
    witness, device, _ = support.make_staff("warehouse")
    destroyed = client.post("/console/warehouse/destroy", {
        "checkin": [checkin.id], "method": "PUNCH", "batch": "B-7", "witness_email": witness.user.email,
        "witness_code": support.totp_code(device)}, follow=True).content.decode()
    assert f"1 card recorded as destroyed, witnessed by {witness.user.email}." in destroyed
    assert (Destruction.objects.get(card=card).destroyed_by, Destruction.objects.get(card=card).witnessed_by) == (
        clerk.actor, witness.actor)
    assert "RL20261234569" in client.get("/console/warehouse/exceptions/").content.decode()
    scans = client.get("/console/warehouse/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert 'data-outcome="RECEIVED">已收到<' in scans  # the scan's outcome, not the portal's "time received"
    exceptions = client.get("/console/warehouse/exceptions/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "無法識別的標籤或卡片" in exceptions and "Unknown label" not in exceptions


def test_a_counter_without_any_branch_says_so_instead_of_ignoring_the_form(staff_client, make_card):
    client, _ = staff_client("branch_clerk")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    page = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                             "original_seen": "on", "photo_matches": "on"})
    assert page.status_code == 200 and "No branch is set up yet" in page.content.decode()
    assert _state(case) == states.AWAITING_RETURN


def test_a_clerk_serves_only_at_the_counter_of_their_own_branch(staff_client, make_card, branch):
    from closeout.appointments.models import Branch, CounterVisit

    Branch.objects.create(code="HK-MKK", name="Mong Kok", calendar="HK")
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    form = {"reference": case.reference, "id_type": "hkid", "id_number": HKID, "original_seen": "on",
            "photo_matches": "on"}
    assert 'name="branch"' not in client.get("/console/counter/?branch=HK-MKK").content.decode()
    client.post("/console/counter/?branch=HK-MKK", form | {"branch": "HK-MKK"})
    assert CounterVisit.objects.get(case=case).branch.code == "HK-CEN"  # not the till named in the request

    nobody, _ = staff_client("branch_clerk")  # a clerk's account without a branch
    page = nobody.post("/console/counter/", form | {"branch": "HK-CEN"})
    assert page.status_code == 200 and "belongs to no open branch" in page.content.decode()
    assert CounterVisit.objects.filter(case=case).count() == 1


def test_counter_visit_checks_id_takes_the_card_and_the_customer_confirms(staff_client, make_card, branch):
    client, clerk = staff_client("branch_clerk", branch_code="HK-CEN")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    appointment = appointments.appointment_book(card=card, branch=branch, starts_at=local(next_working_day(), 10),
                                                actor="customer:web", case=case)

    wrong = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid",
                                              "id_number": "B1234560", "original_seen": "on", "photo_matches": "on"})
    assert "Do not take the card" in wrong.content.decode() or "not valid" in wrong.content.decode()
    started = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                                "original_seen": "on", "photo_matches": "on"})
    visit_url = started["Location"]
    client.post(visit_url, {"method": "CUT"})
    screen = client.get(visit_url + "confirm").content.decode()
    assert "I confirm" in screen and HKID not in screen
    assert clerk.user.email not in screen  # turned towards the customer: no sign-in address
    client.post(visit_url + "confirm", {"confirm": "yes"})

    assert _state(case) == states.REFUND_PENDING
    destruction = Destruction.objects.get(card=card)
    assert (destruction.method, destruction.place, destruction.destroyed_by) == ("CUT", "branch:HK-CEN", clerk.actor)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SERVED
    pdf = client.get(visit_url + "receipt.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    drawn = []  # (text, font) as the PDF sets them: Latin in a font with Latin glyphs
    PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text(visitor_text=lambda text, cm, tm, font, size: drawn.append(
        (text, str((font or {}).get("/BaseFont", "")))))
    latin = "".join(text for text, font in drawn if "Helvetica" in font)
    assert case.reference in latin and "HKID" in latin and "Cut through chip" in latin and "hkid" not in latin


def test_a_booking_made_before_the_case_was_opened_is_served_with_the_case(staff_client, make_card, branch):
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    card = make_card("OCTO")
    appointment = appointments.appointment_book(card=card, branch=branch, starts_at=local(next_working_day(), 10),
                                                actor="staff:clerk")  # booked for the card: no case yet
    case = closures.closure_request(card=card, channel="branch", requester="staff:clerk")  # opened at the counter
    for _ in range(6):
        case = ClosureCase.objects.get(id=case.id)
        if not case.next_action:
            break
        workflow.ACTIONS[case.next_action](case.reference, case.next_action_id)
    assert case.state == states.AWAITING_RETURN

    started = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                                "original_seen": "on", "photo_matches": "on"})
    client.post(started["Location"], {"method": "CUT"})
    client.post(started["Location"] + "confirm", {"confirm": "yes"})

    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SERVED and appointment.visit.case == case


def test_the_counter_speaks_the_customers_language_to_the_customer(staff_client, make_card, branch):
    """The clerk works in simplified Chinese; the customer's case is in traditional Chinese: the
    screen turned towards the customer and the receipt speak the customer's, the clerk's own
    controls the clerk's."""
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    ClosureCase.objects.filter(id=case.id).update(language="zh-hant")
    hans = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    start = client.get("/console/counter/", **hans).content.decode()
    assert "中环营业厅" in start and "Central" not in start
    started = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                                "original_seen": "on", "photo_matches": "on"}, **hans)
    visit_url = started["Location"]
    client.post(visit_url, {"method": "PUNCH"}, **hans)
    screen = client.get(visit_url + "confirm", **hans).content.decode()
    customer = screen.split('class="customer-screen"', 1)[1]
    assert '<html lang="zh-Hans">' in screen and customer.startswith(' lang="zh-Hant">')  # each read in its voice
    assert "請確認" in customer and "你的卡片已交回並銷毀（晶片打孔）。" in customer
    assert "请确认" not in customer and "Chip punched" not in customer
    assert "退出登录" in screen  # the clerk's sign-out stays in the clerk's language
    confirmed = client.post(visit_url + "confirm", {"confirm": "yes"}, follow=True, **hans).content.decode()
    assert "已確認，謝謝。" in confirmed and "謝謝，註銷已記錄。" in confirmed and "谢谢" not in confirmed
    pdf = client.get(visit_url + "receipt.pdf", **hans)
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "中環客務中心" in text and "中环营业厅" not in text and "Central" not in text
    assert "註銷收據" in text and "注销回执" not in text
    assert "（原付款方式退回）" in text  # how the refund comes back


def test_an_english_speaking_customer_gets_english_from_a_chinese_speaking_clerk(staff_client, make_card, branch):
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    case = case_in_state(make_card("OCTO"), "awaiting_return")  # the case is in English
    hant = {"HTTP_ACCEPT_LANGUAGE": "zh-hant"}
    started = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                                "original_seen": "on", "photo_matches": "on"}, **hant)
    visit_url = started["Location"]
    client.post(visit_url, {"method": "CUT"}, **hant)
    screen = client.get(visit_url + "confirm", **hant).content.decode()
    customer = screen.split('class="customer-screen"', 1)[1]
    assert "I confirm that I want to close this card" in customer and "請確認" not in customer
    assert "登出" in screen
    client.post(visit_url + "confirm", {"confirm": "yes"}, **hant)
    text = PdfReader(io.BytesIO(client.get(visit_url + "receipt.pdf", **hant).content)).pages[0].extract_text()
    assert "Closure receipt" in text and "Central" in text and "Cut through chip" in text
    assert "註銷收據" not in text and "中環客務中心" not in text


def test_the_counter_receipt_tells_a_cash_customer_to_collect_the_refund(staff_client, make_card, branch):
    from closeout.closures.models import ClosureCase

    client, clerk = staff_client("branch_clerk", branch_code="HK-CEN")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    ClosureCase.objects.filter(id=case.id).update(refund_destination={"type": "cash"})
    started = client.post("/console/counter/", {"reference": case.reference, "id_type": "hkid", "id_number": HKID,
                                                "original_seen": "on", "photo_matches": "on"})
    client.post(started["Location"], {"method": "CUT"})
    client.post(started["Location"] + "confirm", {"confirm": "yes"})
    pdf = client.get(started["Location"] + "receipt.pdf")
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "(Cash at a branch)" in text
    # The clerk is "our staff" until they have a name; their sign-in address is never printed.
    assert "Served by our staff" in " ".join(text.split()) and clerk.user.email not in text
    clerk.name = "Wong Siu Ming"
    clerk.save(update_fields=["name"])
    text = PdfReader(io.BytesIO(client.get(started["Location"] + "receipt.pdf").content)).pages[0].extract_text()
    assert "Wong Siu Ming" in text and clerk.user.email not in text


def test_a_card_taken_before_the_case_waits_for_it_is_received_by_the_sweep(make_card, branch):
    card = make_card("OCTO")
    case = case_in_state(card, "submitted")
    visit = appointments.counter_id_check(reference=case.reference, branch=branch, clerk="staff:clerk",
                                          id_type="hkid", id_number=HKID, original_seen=True, photo_matches=True)
    appointments.counter_card_take(visit_id=visit.id, method="CUT", clerk="staff:clerk")
    appointments.counter_customer_confirm(visit_id=visit.id, clerk="staff:clerk")
    assert appointments.counter_intakes_complete() == 0

    case.refresh_from_db()
    closures.closure_verify(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    closures.closure_settle(reference=case.reference, workflow_id=case.next_action_id)
    assert _state(case) == states.AWAITING_RETURN
    case.refresh_from_db()
    workflow.ACTIONS["return_label"](case.reference, case.next_action_id)  # the card is at the branch already
    assert not SimShipment.objects.exists() and ClosureCase.objects.get(id=case.id).next_action == ""

    assert appointments.counter_intakes_complete() == 1
    assert _state(case) == states.REFUND_PENDING
    assert appointments.counter_intakes_complete() == 0


def test_the_counter_refuses_an_unseen_original(make_card, branch):
    case = case_in_state(make_card("OCTO"), "submitted")
    with pytest.raises(appointments.UnableToServe):
        appointments.counter_id_check(reference=case.reference, branch=branch, clerk="staff:clerk", id_type="hkid",
                                      id_number=HKID, original_seen=False, photo_matches=True)


@pytest.mark.parametrize("scan,shown", [("RL20260000003", "Unknown label or card"),
                                        ("CL-2026-999999", "also scan or type the card number")])
def test_the_console_says_why_a_scan_went_to_the_exception_queue(staff_client, scan, shown):
    client, _ = staff_client("warehouse")
    page = client.post("/console/warehouse/", {"code": scan, "card_number": ""}, follow=True).content.decode()
    assert shown in page


def test_a_typed_reference_stays_while_the_card_number_is_asked_for(staff_client, make_card):
    client, _ = staff_client("warehouse")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    page = client.post("/console/warehouse/", {"code": case.reference, "card_number": ""}).content.decode()
    assert "also scan or type the card number" in page
    assert f'value="{case.reference}"' in page
    card_input = page.split('name="card_number"')[1].split(">")[0]
    assert "autofocus" in card_input
    assert _state(case) == states.AWAITING_RETURN


def test_each_exception_row_has_its_own_labelled_fields(staff_client):
    import re

    client, _ = staff_client("warehouse")
    for code in ("RL20260000003", "RL20260000011"):
        client.post("/console/warehouse/", {"code": code, "card_number": ""})
    page = client.get("/console/warehouse/exceptions/").content.decode()
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)) and len([i for i in ids if i.startswith("id_resolution")]) == 2
    for target in re.findall(r'<label for="([^"]+)"', page):
        assert f' id="{target}"' in page


def test_the_console_says_when_the_card_does_not_match_its_label(staff_client, make_card):
    client, _ = staff_client("warehouse")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    page = client.post("/console/warehouse/", {"code": label.code, "card_number": make_card("OCTO").number},
                       follow=True).content.decode()
    assert "The card does not match the label" in page


def test_the_console_names_a_card_nobody_waits_for(staff_client, make_card):
    client, _ = staff_client("warehouse")
    card = make_card("OCTO")
    page = client.post("/console/warehouse/", {"code": card.number, "card_number": ""}, follow=True).content.decode()
    assert "No case is waiting for this card" in page


def test_the_refund_is_due_within_the_working_days_after_the_card_arrives(make_card):
    from datetime import timedelta

    from django.utils import timezone

    from closeout.common import calendars, clock

    today = timezone.localdate(clock.now())  # the operator's day, as due dates count (not UTC's)
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    promised_at_request = today - timedelta(days=20)  # the card took weeks in the post
    ClosureCase.objects.filter(id=case.id).update(sla_due_date=promised_at_request)

    returns.return_check_in(code=card.number, actor="staff:wh")

    product = card.product
    arrived = calendars.add_working_days(today, product.sla_working_days, product.calendar)
    assert ClosureCase.objects.get(id=case.id).sla_due_date == arrived


@pytest.mark.django_db(transaction=True)
def test_one_envelope_scanned_at_two_desks_at_once_is_received_once_and_destroyed_in_one_batch(make_card):
    from tests.hardening.test_concurrency import kinds, race

    cards = [make_card("OCTO") for _ in range(2)]
    cases = [case_in_state(card, "awaiting_return") for card in cards]
    label = returns.return_label_issue(reference=cases[0].reference)

    outcomes = race(6, lambda i: returns.return_check_in(code=label.code, actor=f"staff:desk{i % 2}"))

    assert all(isinstance(o, CheckIn) for o in outcomes), kinds(outcomes)
    assert CheckIn.objects.filter(case=cases[0]).count() == 1
    assert sum(not getattr(o, "again", False) for o in outcomes) == 1  # one desk is told it is new
    returns.return_check_in(code=cards[1].number, actor="staff:desk0")
    batch = [c.id for c in CheckIn.objects.filter(outcome=CheckIn.Outcome.RECEIVED)]
    assert len(returns.destruction_batch(checkin_ids=batch, method="SHRED", batch="B-1", actor="staff:desk0",
                                         witness="staff:desk1")) == 2


@pytest.mark.django_db(transaction=True)
def test_a_card_nobody_waits_for_scanned_at_two_desks_at_once_is_queued_once(make_card):
    from tests.hardening.test_concurrency import kinds, race

    card = make_card("OCTO")

    outcomes = race(6, lambda i: returns.return_check_in(code=card.number, actor=f"staff:desk{i % 2}"))

    assert all(isinstance(o, CheckIn) for o in outcomes), kinds(outcomes)
    assert ReturnException.objects.filter(card_number=card.number).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("card_number", ["", "8101000000000001"])
def test_an_unknown_label_scanned_at_two_desks_at_once_is_queued_once(card_number):
    """Nothing in the database stands for an unknown label (no case, no card to lock): only the
    queue itself can keep the second desk from queueing it again."""
    from tests.hardening.test_concurrency import kinds, race

    unknown = "RL20260000003"

    outcomes = race(6, lambda i: returns.return_check_in(code=unknown, card_number=card_number,
                                                         actor=f"staff:desk{i % 2}"))

    assert all(isinstance(o, CheckIn) for o in outcomes), kinds(outcomes)
    assert ReturnException.objects.filter(scanned_code=unknown).count() == 1
    assert CheckIn.objects.count() == 1 and {o.id for o in outcomes} == {CheckIn.objects.get().id}
    assert sum(not getattr(o, "again", False) for o in outcomes) == 1  # the others are told it was queued before


def test_a_card_whose_closure_was_withdrawn_is_named_with_its_case_and_kept_not_destroyed(staff_client, make_card):
    client, _ = staff_client("warehouse")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    closures.closure_withdraw(reference=case.reference, actor="customer:web")

    said = client.post("/console/warehouse/", {"code": label.code}, follow=True).content.decode()

    assert f"Case {case.reference} (Withdrawn) is not waiting for this card" in said
    assert "This card is in use: keep it for the customer, do not destroy it." in said
    again = client.post("/console/warehouse/", {"code": label.code}, follow=True).content.decode()
    assert "Already in the exception queue" in again and "do not destroy it" in again
    assert f"d-{CheckIn.objects.get(card=card).id}" not in said  # not offered for destruction
    queue = client.get("/console/warehouse/exceptions/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'data-case-state="withdrawn">已撤回<' in queue and "data-card-in-use" in queue
    assert f'href="/console/cases/{case.reference}/"' not in queue  # the warehouse cannot open cases


def test_a_card_of_a_closed_case_is_named_with_its_case_and_not_called_in_use(staff_client, make_card):
    client, _ = staff_client("supervisor")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    returns.return_check_in(code=card.number, actor="staff:wh")
    ClosureCase.objects.filter(id=case.id).update(state=states.CLOSED)
    card.refresh_from_db()
    assert card.status != "active"
    ReturnException.objects.all().delete()
    CheckIn.objects.all().delete()
    checkin = returns.return_check_in(code=card.number, actor="staff:wh")

    queue = client.get("/console/warehouse/exceptions/").content.decode()

    assert checkin.exception.reason == ReturnException.Reason.NOT_EXPECTED
    assert 'data-case-state="closed">Closed<' in queue and "data-card-in-use" not in queue
    assert f'href="/console/cases/{case.reference}/"' in queue


def _received_card_of_a_withdrawn_closure(make_card) -> CheckIn:
    """A card on the warehouse shelf whose customer withdrew the closure: it goes back to them."""
    from closeout.cards.models import Card

    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    closures.closure_withdraw(reference=case.reference, actor="customer:web")
    assert Card.objects.get(id=card.id).status == Card.Status.ACTIVE
    return CheckIn.objects.create(at=case.updated_at, staff="staff:wh", scanned_masked=card.number[-4:], case=case,
                                  card=card, outcome=CheckIn.Outcome.RECEIVED)


def test_no_card_is_ticked_for_destruction_until_the_supervisor_ticks_it(staff_client, make_card):
    client, _ = staff_client("warehouse")
    cards = [make_card("OCTO") for _ in range(2)]
    for card in cards:
        case_in_state(card, "awaiting_return")
        returns.return_check_in(code=card.number, actor="staff:wh")
    first, second = CheckIn.objects.order_by("id")
    witness, device, _ = support.make_staff("supervisor")

    page = client.get("/console/warehouse/").content.decode()

    boxes = re.findall(r'<input type="checkbox" name="checkin"[^>]*>', page)
    assert len(boxes) == 2 and not any("checked" in box for box in boxes)
    assert "data-select-all" in page  # ticking them all is a choice of its own
    nothing = client.post("/console/warehouse/destroy", {"method": "SHRED", "batch": "B-1",
                                                         "witness_email": witness.user.email,
                                                         "witness_code": support.totp_code(device)},
                          follow=True).content.decode()
    assert "Select at least one received card" in nothing and not Destruction.objects.exists()
    client.post("/console/warehouse/destroy", {"checkin": [second.id], "method": "SHRED", "batch": "B-1",
                                               "witness_email": witness.user.email,
                                               "witness_code": support.totp_code(device, steps_ahead=1)})
    assert list(Destruction.objects.values_list("card", flat=True)) == [second.card_id]
    left = client.get("/console/warehouse/").content.decode()
    assert f'id="d-{first.id}"' in left and f'id="d-{second.id}"' not in left


def test_a_card_to_keep_for_the_customer_cannot_be_ticked_nor_destroyed(staff_client, make_card):
    client, _ = staff_client("warehouse")
    kept = _received_card_of_a_withdrawn_closure(make_card)
    witness, device, _ = support.make_staff("supervisor")

    page = client.get("/console/warehouse/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    forged = client.post("/console/warehouse/destroy", {"checkin": [kept.id], "method": "SHRED", "batch": "B-1",
                                                        "witness_email": witness.user.email,
                                                        "witness_code": support.totp_code(device)},
                         follow=True).content.decode()

    assert f'id="d-{kept.id}"' not in page and f'data-keep="{kept.id}"' in page and "請為客戶保留，切勿銷毀" in page
    assert f"The card of case {kept.case.reference} is to be kept for the customer" in forged
    assert not Destruction.objects.exists()


@pytest.mark.parametrize("state", ["withdrawn", "rejected", "returned", "on_hold"])
def test_a_batch_with_one_card_to_keep_destroys_none(make_card, state):
    from closeout.cards.models import Card

    keep = _received_card_of_a_withdrawn_closure(make_card)
    ClosureCase.objects.filter(id=keep.case_id).update(state=state, resume_to="awaiting_return")
    Card.objects.filter(id=keep.card_id).update(status=Card.Status.CLOSING)
    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    received = returns.return_check_in(code=card.number, actor="staff:wh")

    with pytest.raises(returns.UnableToDestroy, match="kept for the customer"):
        returns.destruction_batch(checkin_ids=[received.id, keep.id], method="SHRED", batch="B-1", actor="staff:wh",
                                  witness="staff:lead")

    assert not Destruction.objects.exists()


@pytest.mark.parametrize("who", ["themself", "wrong code", "nobody"])
def test_a_destruction_without_a_real_second_person_records_nothing(staff_client, make_card, who):
    client, clerk = staff_client("warehouse")
    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    checkin = returns.return_check_in(code=card.number, actor=clerk.actor)
    witness, device, _ = support.make_staff("supervisor")
    email, code = {"themself": (clerk.user.email, "123456"),
                   "wrong code": (witness.user.email, f"{(int(support.totp_code(device)) + 1) % 10**6:06d}"),
                   "nobody": ("nobody@staff.example.test", support.totp_code(device))}[who]

    page = client.post("/console/warehouse/destroy", {"checkin": [checkin.id], "method": "SHRED", "batch": "B-1",
                                                      "witness_email": email, "witness_code": code},
                       follow=True).content.decode()

    assert "The witness must be another member of staff" in page and "Nothing was recorded" in page
    assert not Destruction.objects.exists()
    if who == "wrong code":
        witness.refresh_from_db()
        assert witness.failed_logins == 1  # towards their lockout, as a wrong code at sign-in


def test_the_exception_queue_names_the_card_inside_a_wrong_envelope_and_the_case_waiting_for_it(staff_client,
                                                                                               make_card):
    client, _ = staff_client("supervisor")
    labelled = case_in_state(make_card("OCTO"), "awaiting_return")
    label = returns.return_label_issue(reference=labelled.reference)
    other_card = make_card("OCTO")
    other = case_in_state(other_card, "awaiting_return")
    returns.return_check_in(code=label.code, card_number=other_card.number, actor="staff:wh")

    queue = client.get("/console/warehouse/exceptions/").content.decode()

    inside = queue.split("data-inside>")[1].split("</span>")[0]
    assert f"Card inside: •••• {other_card.number[-4:]}" in inside and f"case {other.reference} waits for it" in inside
    assert other_card.number not in queue


def local_time(moment) -> str:
    from django.utils import timezone

    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _fate(page: str) -> str:
    return page.split("data-card-fate=")[1].split("</p>")[0]


def test_the_case_page_shows_when_the_card_came_back_and_how_it_was_destroyed(staff_client, make_card):
    desk, clerk = staff_client("warehouse")
    supervisor, _ = staff_client("supervisor")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    desk.post("/console/warehouse/", {"code": label.code, "card_number": ""})
    page = supervisor.get(f"/console/cases/{case.reference}/").content.decode()
    received = page.split('id="card-return"')[1]
    assert 'data-checkin="RECEIVED"' in received and clerk.user.email in received
    assert local_time(CheckIn.objects.get(case=case).at) in received
    assert "At the warehouse, to be destroyed in a batch" in _fate(page)

    witness, device, _ = support.make_staff("warehouse")
    desk.post("/console/warehouse/destroy", {"checkin": [CheckIn.objects.get(case=case).id], "method": "SHRED",
                                             "batch": "WH-2026-11-02", "witness_email": witness.user.email,
                                             "witness_code": support.totp_code(device)})
    pages = {language: supervisor.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE=language)
             .content.decode().split('id="card-return"')[1].split("<h2")[0]
             for language in ("en", "zh-hans", "zh-hant")}

    destroyed = Destruction.objects.get(card=card)
    for language, words in {"en": ("Destroyed", "Shredded", "Witness"), "zh-hans": ("已销毁", "碎卡", "见证人"),
                            "zh-hant": ("已銷毀", "碎卡", "見證人")}.items():
        section = pages[language]
        assert all(word in section for word in words), (language, section)
        assert "WH-2026-11-02" in section and local_time(destroyed.destroyed_at) in section
        assert f"<td data-witness>{witness.user.email}</td>" in section and clerk.user.email in section
        assert "holder@example.test" not in section and "91234567" not in section and card.number not in section
        assert card.holder.email_masked not in section and HKID not in section
    assert "Received at" in pages["en"] and "接收地点" in pages["zh-hans"] and "接收地點" in pages["zh-hant"]
    assert "仓库" in pages["zh-hans"] and "貨倉" in pages["zh-hant"] and "Destroyed" not in pages["zh-hant"]


def test_the_case_page_says_a_card_of_a_withdrawn_closure_is_kept(staff_client, make_card):
    supervisor, _ = staff_client("supervisor")
    kept = _received_card_of_a_withdrawn_closure(make_card)

    page = supervisor.get(f"/console/cases/{kept.case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert "请为客户保留，切勿销毁。" in _fate(page) and "data-destruction" not in page


def test_the_case_page_names_the_branch_and_the_customer_as_witness_of_a_card_destroyed_at_the_counter(
        staff_client, make_card, branch):
    supervisor, _ = staff_client("supervisor")
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    visit = appointments.counter_id_check(reference=case.reference, branch=branch, clerk="staff:clerk@staff.example.test",
                                          id_type="hkid", id_number=HKID, original_seen=True, photo_matches=True)
    appointments.counter_card_take(visit_id=visit.id, method="CUT", clerk="staff:clerk@staff.example.test")

    page = supervisor.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    section = page.split('id="card-return"')[1]

    assert "data-counter-visit" in section and "在櫃位收回" in section and "clerk@staff.example.test" in section
    assert "中環客務中心" in section and "剪斷晶片" in section
    assert "<td data-witness>客戶本人（櫃位）</td>" in section and "已銷毀" in _fate(page)


def test_a_case_whose_card_never_came_back_shows_no_return_section(staff_client, make_card):
    supervisor, _ = staff_client("supervisor")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    assert 'id="card-return"' not in supervisor.get(f"/console/cases/{case.reference}/").content.decode()


def _desk_shown(page: str) -> str:
    return page.split("<strong data-desk>")[1].split("</strong>")[0]


def test_a_desk_named_once_on_a_browser_is_recorded_with_each_scan_and_shown_on_the_case(staff_client, make_card):
    desk, _ = staff_client("warehouse")
    supervisor, _ = staff_client("supervisor")
    cases = [case_in_state(make_card("OCTO"), "awaiting_return") for _ in range(2)]
    labels = [returns.return_label_issue(reference=case.reference).code for case in cases]

    assert _desk_shown(desk.get("/console/warehouse/").content.decode()) == "—"
    desk.post("/console/warehouse/", {"code": labels[0]})
    named = desk.post("/console/warehouse/desk", {"desk": "  三號 枱  "}, follow=True).content.decode()
    assert "This browser now scans as desk 三號 枱." in named and _desk_shown(named) == "三號 枱"
    desk.post("/console/warehouse/", {"code": labels[1]})
    desk.post("/console/warehouse/", {"code": "RL20260000003"})  # nobody's label

    assert [c.desk for c in CheckIn.objects.order_by("id")] == ["", "三號 枱", "三號 枱"]
    assert AuditEvent.objects.get(action="return.exception").data == {"desk": "三號 枱"}
    recent = desk.get("/console/warehouse/").content.decode().split("<tbody>")[1].split("</tbody>")[0]
    assert recent.count("<td data-desk>三號 枱</td>") == 2 and recent.count("<td data-desk>—</td>") == 1
    for case, shown in zip(cases, ["—", "三號 枱"], strict=True):
        section = supervisor.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant"
                                 ).content.decode().split('id="card-return"')[1].split("<h2")[0]
        assert "工作枱" in section and f"<td data-desk>{shown}</td>" in section
    kept = desk.cookies["closeout_desk"]
    assert kept["max-age"] and kept["path"] == "/console/" and kept["httponly"]


def test_a_desk_name_survives_signing_out_and_can_be_taken_off(make_card):
    from django.test import Client

    profile, device, _ = support.make_staff("warehouse")
    browser = support.sign_in(Client(), profile, device)
    browser.post("/console/warehouse/desk", {"desk": "Desk 4"})
    browser.post("/console/logout/")
    support.sign_in(browser, profile, device, steps_ahead=1)

    assert _desk_shown(browser.get("/console/warehouse/").content.decode()) == "Desk 4"
    cleared = browser.post("/console/warehouse/desk", {"desk": " "}, follow=True).content.decode()
    assert "This browser scans without a desk name." in cleared and _desk_shown(cleared) == "—"


@pytest.mark.parametrize(("desk", "language", "said"), [
    ("D" * 41, "en", "Use at most 40 characters (this has 41)."),
    ("Desk\u202e4", "zh-hans", "只可使用字母、数字、空格和标点符号。"),
])
def test_a_desk_name_that_cannot_be_shown_is_refused_in_the_workers_language(staff_client, desk, language, said):
    client, _ = staff_client("warehouse")
    client.post("/console/warehouse/desk", {"desk": "Desk 1"})

    page = client.post("/console/warehouse/desk", {"desk": desk}, follow=True,
                       HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert said in page and _desk_shown(page) == "Desk 1"


def test_a_desk_cookie_not_set_by_the_desk_form_names_no_desk(staff_client, make_card):
    client, _ = staff_client("warehouse")
    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    client.cookies["closeout_desk"] = "Forged"

    page = client.get("/console/warehouse/").content.decode()
    client.post("/console/warehouse/", {"code": card.number})

    assert _desk_shown(page) == "—" and CheckIn.objects.get().desk == ""
