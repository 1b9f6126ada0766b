"""Each role's main task in the staff console, in Chromium (Playwright), with screenshots under
test-results/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from closeout.closures import states
from closeout.closures.models import ClosureCase, RefundApproval
from tests.conftest import IN_CI
from tests.fixtures import HKID
from tests.integration import test_console_support as support
from tests.integration.test_console_support import PASSWORD, case_in_state, make_staff, totp_code

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM set-up beside Playwright's loop
branch = support.branch
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-results"

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not IN_CI:
        pytest.skip("Debian Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-GB", viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15000)
    # The questions asked before an action that cannot be undone, answered yes unless a test says no.
    opened.dialogs, opened.answer_yes = [], True

    def answer(dialog):
        opened.dialogs.append(dialog.message)
        dialog.accept() if opened.answer_yes else dialog.dismiss()

    opened.on("dialog", answer)
    yield opened
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def sign_in(page, live_server, role: str, **extra):
    profile, device, _ = make_staff(role, **extra)
    page.goto(f"{live_server.url}/console/")
    page.get_by_label("Email").fill(profile.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code from your authenticator app").fill(totp_code(device))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Staff console").wait_for()
    return profile


def test_agent_opens_a_case_for_a_caller(page, live_server, make_card):
    card = make_card("YKT", balance=45000)
    sign_in(page, live_server, "agent")
    page.get_by_role("link", name="Open a case for a customer").click()
    page.get_by_label("Channel").select_option("phone")
    page.get_by_label("Call, email or chat reference").fill("CALL-7781")
    page.get_by_label("Card number", exact=True).fill(card.number)
    page.get_by_label("Holder name", exact=True).fill("陈大文")
    page.get_by_label("Phone or email on file").fill("+852 9123 4567")
    page.get_by_label("ID document", exact=True).select_option("hkid")
    page.get_by_label("ID document number", exact=True).fill(HKID)
    for label in ("Card number read back and confirmed", "Holder name confirmed", "Contact confirmed",
                  "ID document confirmed"):
        page.get_by_label(label).check()
    shot(page, "agent-identity")
    page.get_by_role("button", name="Check identity").click()
    page.get_by_role("heading", name="Read the quote to the customer").wait_for()
    shot(page, "agent-quote")
    page.get_by_label("The customer heard the quote and agreed to close the card").check()
    page.get_by_role("button", name="Record consent and open the case").click()
    page.locator("[data-state=submitted]").wait_for()
    shot(page, "agent-case")
    case = ClosureCase.objects.get(card=card)
    assert (case.channel, case.channel_ref) == ("phone", "CALL-7781")
    assert HKID not in page.content()


def test_branch_clerk_serves_a_customer_at_the_counter(page, live_server, make_card, branch):
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    sign_in(page, live_server, "branch_clerk", branch_code="HK-CEN")
    page.get_by_role("link", name="Serve at the counter").click()
    page.get_by_label("Case reference").fill(case.reference)
    page.get_by_label("ID document", exact=True).select_option("hkid")
    page.get_by_label("ID document number", exact=True).fill(HKID)
    page.get_by_label("I have seen the original document (not a copy)").check()
    page.get_by_label("The photo matches the person at the counter").check()
    page.get_by_role("button", name="Record the ID check").click()
    page.get_by_label("Destruction method").select_option("CUT")
    page.get_by_role("button", name="Card taken and destroyed").click()
    shot(page, "clerk-customer-screen")
    page.get_by_role("button", name="I confirm that I want to close this card").click()
    page.locator("[data-confirmed=yes]").wait_for()
    shot(page, "clerk-confirmed")
    assert ClosureCase.objects.get(id=case.id).state == states.REFUND_PENDING
    with page.expect_popup() as popup:
        page.get_by_role("link", name="Print the receipt (PDF)").click()
    assert popup.value.url.endswith("receipt.pdf")


def test_warehouse_checks_in_a_returned_card(page, live_server, make_card):
    from closeout.returns.services import return_label_issue

    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = return_label_issue(reference=case.reference)
    sign_in(page, live_server, "warehouse")
    page.get_by_role("link", name="Warehouse check-in").click()
    page.get_by_label("Return label code or card number").fill(label.code)
    page.get_by_role("button", name="Check in").click()
    page.get_by_text(f"Received: case {case.reference}").wait_for()
    page.get_by_label("Return label code or card number").fill("RL20260000000")  # a digit misread
    page.get_by_role("button", name="Check in").click()
    page.get_by_text("scan it again or type it").wait_for()
    page.get_by_label("Return label code or card number").fill("RL20260000003")  # right, but nobody's label
    page.get_by_role("button", name="Check in").click()
    page.get_by_text("Unknown label or card").wait_for()
    received = page.get_by_label(f"{case.reference} · •••• {case.card.number[-4:]}")
    assert not received.is_checked()  # the supervisor picks each card: none is ticked for them
    page.get_by_role("button", name="Select all cards that may be destroyed").click()
    assert received.is_checked()
    witness, device, _ = make_staff("warehouse")  # a second person watches the batch go into the shredder
    page.get_by_label("Witness: another staff member's email").fill(witness.user.email)
    page.get_by_label("Witness's code from their authenticator app").fill(totp_code(device))
    page.get_by_role("button", name="Record destruction").click()
    page.get_by_text(f"1 card recorded as destroyed, witnessed by {witness.user.email}").wait_for()
    shot(page, "warehouse")
    assert ClosureCase.objects.get(id=case.id).state == states.REFUND_PENDING


def test_refund_approver_approves_a_refund(page, live_server, make_card):
    case = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    sign_in(page, live_server, "refund_approver")
    page.get_by_role("link", name="Refunds to approve").click()
    row = page.locator(f"tr[data-reference='{case.reference}']")
    shot(page, "approver-queue")
    row.get_by_label("Note").fill("amount checked against the ledger")
    row.get_by_role("button", name="Approve refund").click()
    page.get_by_text(f"The refund of case {case.reference} is approved").wait_for()
    shot(page, "approver-done")
    assert RefundApproval.objects.get(case=case).decision == "approved"


def test_approving_a_refund_asks_first(page, live_server, make_card):
    case = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    sign_in(page, live_server, "refund_approver")
    page.get_by_role("link", name="Refunds to approve").click()
    button = page.locator(f"tr[data-reference='{case.reference}']").get_by_role("button", name="Approve refund")

    page.answer_yes = False  # the approver changes their mind
    button.click()
    assert page.dialogs == ["Approve this refund? It is paid out and cannot be taken back."]
    page.wait_for_timeout(300)
    assert RefundApproval.objects.get(case=case).decision == ""

    page.answer_yes = True
    button.click()
    page.get_by_text(f"The refund of case {case.reference} is approved").wait_for()
    assert RefundApproval.objects.get(case=case).decision == "approved"


def test_supervisor_reads_the_sla_dashboard_and_waives_a_fee(page, live_server, make_card):
    card = make_card("OCTO", charges=[("overdraft", 800)])
    case = case_in_state(card, "submitted")
    sign_in(page, live_server, "supervisor")
    page.get_by_role("link", name="SLA dashboard").click()
    page.locator("svg").first.wait_for()
    shot(page, "supervisor-sla")
    page.goto(f"{live_server.url}/console/cases/{case.reference}/")
    page.locator("input[id^=waive-]").fill("goodwill after complaint")
    page.get_by_role("button", name="Waive the fee").click()
    page.get_by_text("The charge was waived").wait_for()
    shot(page, "supervisor-waive")
    assert card.charges.get().settled_how == "waived"


def test_admin_unlocks_a_staff_account(page, live_server):
    from datetime import timedelta

    from closeout.common import clock
    from closeout.console.models import StaffProfile

    locked, _, _ = make_staff("agent")
    StaffProfile.objects.filter(id=locked.id).update(locked_until=clock.now() + timedelta(minutes=15))
    sign_in(page, live_server, "admin")
    page.get_by_role("link", name="Staff accounts").click()
    page.get_by_role("button", name="Unlock").click()
    page.get_by_text("The account is unlocked").wait_for()
    shot(page, "admin-staff")
    assert StaffProfile.objects.get(id=locked.id).locked_until is None


def test_console_speaks_traditional_chinese(page, live_server):
    sign_in(page, live_server, "supervisor")
    page.get_by_role("button", name="繁體中文").click()
    page.get_by_role("heading", name="員工控制台").wait_for()
    shot(page, "home-zh-hant")
    assert page.get_attribute("html", "lang") == "zh-Hant"


def test_the_language_picker_is_one_tap_per_language_each_named_in_its_own(page, live_server):
    """Buttons as on the portal: the current language is marked for screen readers, and each name
    is read in its own language's voice; a list and a Change button took three steps."""
    sign_in(page, live_server, "agent")
    page.get_by_role("link", name="Open a case for a customer").click()
    picker = page.locator("header form.lang button[name=language]")
    assert page.evaluate("""() => [...document.querySelectorAll('header form.lang button[name=language]')]
        .map(b => [b.textContent, b.getAttribute('lang'), b.getAttribute('aria-current')])""") == [
        ["简体中文", "zh-Hans", None], ["繁體中文", "zh-Hant", None], ["English", "en", "true"]]
    for box in (picker.nth(i).bounding_box() for i in range(3)):
        assert box["height"] >= 44 and box["width"] >= 44
    assert page.get_attribute("html", "lang") == "en"
    shot(page, "language-picker-en")

    page.get_by_role("button", name="简体中文").click()
    page.get_by_role("heading", name="为客户办理注销").wait_for()
    assert page.url.endswith("/console/open/") and page.get_attribute("html", "lang") == "zh-Hans"
    assert page.get_attribute("header form.lang button[aria-current=true]", "lang") == "zh-Hans"
    shot(page, "language-picker-zh-hans")


def _open_scanning(page):
    """Open the warehouse page the way the worker does, and wait until the scan field has the cursor."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Warehouse check-in").click()
    expect(page.get_by_label("Return label code or card number")).to_be_focused()


def _posts_to(page, ending: str) -> list:
    sent = []
    page.on("request", lambda request: sent.append(request.url)
            if request.method == "POST" and request.url.endswith(ending) else None)
    return sent


def test_a_double_click_on_approve_sends_one_decision(page, live_server, make_card):
    case = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    sign_in(page, live_server, "refund_approver")
    page.get_by_role("link", name="Refunds to approve").click()
    sent = _posts_to(page, "/approve")

    page.locator(f"tr[data-reference='{case.reference}']").get_by_role("button", name="Approve refund").dblclick()

    page.get_by_text(f"The refund of case {case.reference} is approved").wait_for()
    assert len(sent) == 1, sent
    assert len(page.dialogs) == 1  # asked once, not once per click


def test_a_scanners_second_enter_checks_the_card_in_once(page, live_server, make_card):
    from closeout.returns.models import CheckIn
    from closeout.returns.services import return_label_issue

    case = case_in_state(make_card("OCTO"), "awaiting_return")
    label = return_label_issue(reference=case.reference)
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    sent = _posts_to(page, "/console/warehouse/")

    page.keyboard.type(label.code)
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")

    page.get_by_text(f"Received: case {case.reference}").wait_for()
    assert len(sent) == 1, sent
    assert CheckIn.objects.filter(case=case).count() == 1


# Records each beep the page plays: its frequency, so a test can tell the answers apart by ear.
RECORD_TONES = """
window.tones = [];
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.tones.push(this.frequency.value);
  return start.apply(this, args);
};
"""


def test_scans_in_quick_succession_all_go_in_and_each_answer_is_seen_and_heard(page, live_server, make_card):
    from closeout.returns.models import CheckIn
    from closeout.returns.services import return_label_issue

    cases = [case_in_state(make_card("OCTO"), "awaiting_return") for _ in range(3)]
    labels = [return_label_issue(reference=case.reference).code for case in cases]
    page.add_init_script(RECORD_TONES)
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    scan_field = page.get_by_label("Return label code or card number")

    for code in labels:  # envelope after envelope, without waiting for the screen
        page.keyboard.type(code)
        page.keyboard.press("Enter")
    page.locator("td[data-outcome=RECEIVED]").nth(2).wait_for()

    assert CheckIn.objects.filter(outcome="RECEIVED").count() == 3
    assert scan_field.evaluate("field => field === document.activeElement && field.value === ''")
    answer = page.locator(".messages li")
    assert answer.get_attribute("data-kind") == "scan-ok" and cases[2].reference in answer.inner_text()
    shot(page, "warehouse-received")

    page.keyboard.type(labels[0])  # the same envelope again
    page.keyboard.press("Enter")
    page.get_by_text("Nothing changed").wait_for()
    again_colour = answer.evaluate("item => getComputedStyle(item).backgroundColor")
    page.keyboard.type("RL20260000003")  # nobody's label
    page.keyboard.press("Enter")
    page.get_by_text("Unknown label or card").wait_for()
    queued_colour = answer.evaluate("item => getComputedStyle(item).backgroundColor")
    shot(page, "warehouse-exception")
    page.keyboard.type("RL20260000000")  # a digit misread
    page.keyboard.press("Enter")
    page.get_by_text("scan it again").wait_for()
    page.wait_for_timeout(100)

    tones = page.evaluate("window.tones")
    assert tones == [880] * 3 + [660, 660] + [220] + [200] * 3, tones
    assert len({again_colour, queued_colour, answer.evaluate("item => getComputedStyle(item).backgroundColor")}) == 3
    assert scan_field.evaluate("field => field === document.activeElement")


def test_a_reference_typed_from_a_torn_envelope_asks_for_the_card_number_without_the_mouse(page, live_server,
                                                                                           make_card):
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)

    page.keyboard.type(case.reference)
    page.keyboard.press("Enter")
    page.get_by_text("also scan or type the card number").wait_for()
    assert page.get_by_label("Return label code or card number").input_value() == case.reference
    page.keyboard.type(card.number)  # the cursor waits in the card number field
    page.keyboard.press("Enter")

    page.get_by_text(f"Received: case {case.reference}").wait_for()
    assert ClosureCase.objects.get(id=case.id).state == states.REFUND_PENDING


def test_staff_sign_in_with_the_keyboard_alone(page, live_server):
    from playwright.sync_api import expect

    profile, device, _ = make_staff("warehouse")
    page.goto(f"{live_server.url}/console/")

    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(profile.user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Code from your authenticator app")).to_be_focused()
    page.keyboard.type(totp_code(device))
    page.keyboard.press("Enter")

    page.get_by_role("heading", name="Staff console").wait_for()


def test_a_scan_keeps_the_cards_the_supervisor_ticked_for_destruction(page, live_server, make_card):
    """Scans go on while the supervisor fills in the batch: each answer brings the lists up to
    date and leaves alone what they ticked and typed."""
    from closeout.returns.services import return_check_in, return_label_issue

    shelf = [case_in_state(make_card("OCTO"), "awaiting_return") for _ in range(3)]
    for case in shelf:
        return_check_in(code=case.card.number, actor="staff:wh")
    arriving = case_in_state(make_card("OCTO"), "awaiting_return")
    label = return_label_issue(reference=arriving.reference).code
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    boxes = [page.get_by_label(f"{case.reference} · •••• {case.card.number[-4:]}") for case in shelf]
    boxes[0].check()
    boxes[2].check()
    page.get_by_label("Batch").fill("WH-NIGHT-7")
    page.get_by_label("Destruction method").select_option("PUNCH")
    page.get_by_label("Witness: another staff member's email").fill("lead@staff.example.test")

    page.get_by_label("Return label code or card number").fill(label)
    page.get_by_label("Return label code or card number").press("Enter")
    page.get_by_text(f"Received: case {arriving.reference}").wait_for()

    new = page.get_by_label(f"{arriving.reference} · •••• {arriving.card.number[-4:]}")
    shot(page, "warehouse-ticks-kept")
    assert [box.is_checked() for box in boxes] == [True, False, True] and not new.is_checked()
    assert page.get_by_label("Batch").input_value() == "WH-NIGHT-7"
    assert page.get_by_label("Destruction method").input_value() == "PUNCH"
    assert page.get_by_label("Witness: another staff member's email").input_value() == "lead@staff.example.test"
    assert page.locator("td[data-outcome=RECEIVED]").count() == 4  # the lists did follow the scan


def test_admin_names_a_member_of_staff_and_the_console_shows_the_name(page, live_server):
    from closeout.console.models import StaffProfile

    agent, _, _ = make_staff("agent")
    sign_in(page, live_server, "admin")
    page.get_by_role("link", name="Staff accounts").click()
    page.get_by_label(f"Name of {agent.user.email}").fill("陳小文")
    page.locator(f"tr[data-staff='{agent.id}']").get_by_role("button", name="Set name").click()
    page.get_by_text(f"{agent.user.email} is now shown as 陳小文.").wait_for()
    shot(page, "admin-staff-name")
    assert StaffProfile.objects.get(id=agent.id).name == "陳小文"


def test_a_desk_named_in_chinese_is_kept_by_the_browser_and_recorded_with_each_scan(page, live_server, make_card):
    from closeout.returns.models import CheckIn

    card = make_card("OCTO")
    case_in_state(card, "awaiting_return")
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    page.get_by_label("Desk name").fill("三號枱")
    page.get_by_role("button", name="Name this desk").click()
    page.get_by_text("This browser now scans as desk 三號枱.").wait_for()
    page.reload()

    assert page.locator("strong[data-desk]").inner_text() == "三號枱"
    page.get_by_label("Return label code or card number").fill(card.number)
    page.get_by_label("Return label code or card number").press("Enter")
    page.locator("td[data-desk]", has_text="三號枱").wait_for()
    shot(page, "warehouse-desk")
    assert CheckIn.objects.get().desk == "三號枱"


def test_warehouse_hands_a_kept_card_back_and_a_scan_keeps_what_was_typed(page, live_server, make_card):
    """A card whose closure was withdrawn goes back to its holder by post; a scan made while the
    tracking reference is typed leaves it in its field."""
    from django.utils import timezone

    from closeout.closures.services import closure_withdraw
    from closeout.returns.models import CheckIn, HandBack

    card = make_card("OCTO")
    kept_case = case_in_state(card, "awaiting_return")
    closure_withdraw(reference=kept_case.reference, actor="customer:web")
    kept = CheckIn.objects.create(at=timezone.now(), staff="staff:wh", scanned_masked=card.number[-4:],
                                  case=kept_case, card=card, outcome=CheckIn.Outcome.RECEIVED)
    arriving = case_in_state(make_card("OCTO"), "awaiting_return")
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    row = page.locator(f"li[data-hand-back='{kept.id}']")
    row.get_by_label("How the card goes back").select_option("POST")
    row.get_by_label("Tracking reference (posted back)").fill("RR123456785HK")

    page.get_by_label("Return label code or card number").fill(arriving.card.number)
    page.get_by_label("Return label code or card number").press("Enter")
    page.get_by_text(f"Received: case {arriving.reference}").wait_for()
    assert row.get_by_label("Tracking reference (posted back)").input_value() == "RR123456785HK"
    shot(page, "warehouse-hand-back-form")

    row.get_by_role("button", name="Record hand-back").click()
    page.get_by_text(f"Recorded: the card of case {kept_case.reference} went back to the customer.").wait_for()
    shot(page, "warehouse-handed-back")
    assert page.locator(f"li[data-hand-back='{kept.id}']").count() == 0
    assert page.dialogs == ["Record that this card went back to the customer? It then leaves the warehouse list."]
    assert HandBack.objects.get().tracking_ref == "RR123456785HK"


def test_warehouse_hands_back_a_card_from_the_exception_queue_and_shows_errors_beside_it(page, live_server,
                                                                                          make_card):
    """A card whose closure was withdrawn while it was in the post lands in the exception queue; it
    is handed back from the warehouse page: an error shows beside it as typed, a scan leaves what
    was typed, and the hand-back resolves the exception."""
    from closeout.closures.services import closure_withdraw
    from closeout.returns.models import HandBack, ReturnException
    from closeout.returns.services import return_check_in

    card = make_card("OCTO")
    withdrawn = case_in_state(card, "awaiting_return")
    closure_withdraw(reference=withdrawn.reference, actor="customer:web")
    queued = return_check_in(code=card.number, actor="staff:wh").exception
    arriving = case_in_state(make_card("OCTO"), "awaiting_return")
    sign_in(page, live_server, "warehouse")
    _open_scanning(page)
    row = page.locator(f"li[data-exception-hand-back='{queued.id}']")
    row.get_by_label("How the card goes back").select_option("COUNTER")
    row.get_by_label("Tracking reference (posted back)").fill("RR123456785HK")
    row.get_by_role("button", name="Record hand-back").click()
    row.locator(".errorlist").wait_for()
    shot(page, "warehouse-exception-hand-back-error")
    assert "A card collected at a counter has no tracking reference" in row.locator(".errorlist").inner_text()
    assert row.get_by_label("Tracking reference (posted back)").input_value() == "RR123456785HK"
    assert ReturnException.objects.get(id=queued.id).resolved_at is None

    row.get_by_label("How the card goes back").select_option("POST")
    page.get_by_label("Return label code or card number").fill(arriving.card.number)
    page.get_by_label("Return label code or card number").press("Enter")
    page.get_by_text(f"Received: case {arriving.reference}").wait_for()
    assert row.get_by_label("How the card goes back").input_value() == "POST"
    assert row.get_by_label("Tracking reference (posted back)").input_value() == "RR123456785HK"
    shot(page, "warehouse-exception-hand-back-form")

    row.get_by_role("button", name="Record hand-back").click()
    page.get_by_text(f"Recorded: card •••• {card.number[-4:]} went back to the customer, and its exception is "
                     "resolved.").wait_for()
    shot(page, "warehouse-exception-handed-back")
    assert page.locator(f"li[data-exception-hand-back='{queued.id}']").count() == 0
    assert page.dialogs[-1] == "Record that this card went back to the customer? Its exception is then resolved."
    assert HandBack.objects.get().checkin_id == queued.checkin_id
    assert ReturnException.objects.get(id=queued.id).resolved_at is not None


def test_on_a_phone_wide_tables_scroll_on_their_own_and_the_page_stays_the_screens_width(page, live_server,
                                                                                         make_card):
    case = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, "refund_approver")

    for path in ("/console/refunds/", f"/console/cases/{case.reference}/"):
        page.goto(f"{live_server.url}{path}")
        shot(page, "phone-" + path.strip("/").replace("/", "-"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(f"{live_server.url}/console/refunds/")
    queue = page.locator("table.list")
    assert queue.evaluate("table => table.scrollWidth > table.clientWidth")  # its columns are there, sideways
    queue.locator(f"tr[data-reference='{case.reference}']").get_by_role("button", name="Approve refund").click()
    page.get_by_text(f"The refund of case {case.reference} is approved").wait_for()
    assert RefundApproval.objects.get(case=case).decision == "approved"
