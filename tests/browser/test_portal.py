"""The customer portal in Debian's Chromium: the whole journey in each language on a phone and a
desktop viewport, against a live server with the DBOS worker, a real SMTP server and the SMS
simulator. Screenshots go to test-results/portal/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.fixtures import HKID, drop_dbos_database, unique_dbos_url, wait_for
from tests.integration.test_notifications import Inbox, smtp_server  # noqa: F401 - fixture

# Playwright's sync API keeps an event loop on this thread; the ORM calls made by the test
# itself (fixtures, assertions) are synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only, pytest.mark.django_db(transaction=True)]

@pytest.fixture(scope="module", autouse=True)
def _catalogs_compiled():
    """Pages are read in Chinese: make sure the .mo files match the .po files."""
    from closeout.i18n import compile_catalogs

    compile_catalogs()


@pytest.fixture(autouse=True)
def _dispatch_off(settings):
    """Cases stay where the test puts them unless a test starts the worker (dbos_worker)."""
    settings.CLOSEOUT_DISPATCH = False


CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("test-results/portal")
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
ACCEPT = {"en": "en-GB,en;q=0.9", "zh-hans": "zh-CN,zh;q=0.9", "zh-hant": "zh-HK,zh;q=0.9"}
# Words that stay in Latin letters in every language: names, units, codes.
LATIN_OK = re.compile(r"closeout|HK\$|CN¥|SWIFT|eSIM|SIM|PDF|JSON|GB|UTC|AlipayHK|PayMe|ID|CL-\d{4}-\d{6}|"
                      r"[\w.+-]*•+[\w.+-]*@[\w.-]+|help@closeout\.invalid|English|简体中文|繁體中文")


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing at /usr/bin/chromium")
        pytest.skip("Chromium is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, live_server):
    contexts = []

    def open_(language="en", viewport="desktop", javascript=True):
        context = chromium.new_context(
            viewport=VIEWPORTS[viewport], locale={"en": "en-GB", "zh-hans": "zh-CN", "zh-hant": "zh-HK"}[language],
            extra_http_headers={"Accept-Language": ACCEPT[language]}, java_script_enabled=javascript,
            accept_downloads=True, is_mobile=viewport == "phone", has_touch=viewport == "phone",
            base_url=live_server.url,
        )
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def off_the_loop(fn, *args, **kwargs):
    """Run fn on a fresh thread: Playwright keeps an event loop running on the test thread, and
    DBOS refuses some calls (register_queue, enqueue) when it sees one."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def worker(transactional_db, settings, tmp_path):
    """The DBOS worker in this process (launched off Playwright's event loop), on a fresh system DB."""
    from closeout import worker as closeout_worker
    from closeout.closures import dispatch

    url = unique_dbos_url(tmp_path)
    settings.DBOS_SYSTEM_DATABASE_URL = url
    settings.CLOSEOUT_DISPATCH = True
    dispatch.reset_client()
    off_the_loop(closeout_worker.migrate_system_database)
    off_the_loop(closeout_worker.launch, executor_id="test-worker")
    yield url
    off_the_loop(closeout_worker.shutdown)
    dispatch.reset_client()
    drop_dbos_database(url)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def assert_page_ok(page, language: str) -> None:
    """Every input has a label; a Chinese page shows no English left untranslated."""
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && !el.disabled && el.labels.length === 0 && !el.getAttribute('aria-label'))
        .map(el => el.name || el.id)""")
    assert unlabelled == [], f"inputs without a label: {unlabelled}"
    if language != "en":
        text = LATIN_OK.sub("", page.inner_text("body"))
        leftovers = re.findall(r"[A-Za-z]{3,}(?:\s+[A-Za-z]{2,})*", text)
        assert leftovers == [], f"untranslated text on {page.url}: {leftovers}"


def latest_sms_code(page) -> str:
    messages = page.request.get("/sim/sms/messages").json()
    return re.search(r"\b(\d{6})\b", messages[-1]["body"])[1]


def sign_in(page, card, *, language, channel, inbox=None, viewport="desktop"):
    page.goto("/")
    assert page.url.endswith(f"/{language}/")
    assert_page_ok(page, language)
    page.fill("#id_card_number", card.number[:-1])
    page.type("#id_card_number", card.number[-1])  # the last digit is typed: the check runs as you type
    assert page.get_attribute("#id_card_number", "aria-invalid") is None
    assert page.inner_text("#card-number-live") == page.get_attribute("#card-number-live", "data-ok")
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", "A123456(3)")
    page.check(f"input[name=channel][value={channel}]")
    shot(page, f"{language}-{viewport}-1-sign-in")
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url(f"**/{language}/code/")
    assert_page_ok(page, language)
    if channel == "sms":
        code = latest_sms_code(page)
    else:
        message = inbox.wait(1)[-1]
        code = re.search(r"\b(\d{6})\b", Inbox.text(message))[1]
    page.fill("#id_code", code)
    shot(page, f"{language}-{viewport}-2-code")
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url(f"**/{language}/account/")


JOURNEYS = {
    # language: (product, channel, destination, charge)
    "en": ("OCTO", "email", "bank", ("overdraft", 1500)),
    "zh-hans": ("TSIM", "sms", "ewallet", ("unpaid_fee", 3000)),
    "zh-hant": ("OCTO", "sms", "original", ("overdraft", 800)),
}


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("language", ["en", "zh-hans", "zh-hant"])
def test_the_whole_journey(language, viewport, open_page, make_card, worker, smtp_server, monkeypatch):  # noqa: F811
    from closeout.closures import selectors as closure_selectors
    from closeout.closures import services
    from closeout.closures.models import ClosureCase

    product, channel, destination, charge = JOURNEYS[language]
    plan = {"plan_days_left": 20} if product == "TSIM" else {}
    card = make_card(product, balance=12000 if product == "OCTO" else 0, days_old=30, charges=[charge],
                     bindings=["maps-app"], **plan)
    page = open_page(language, viewport)
    sign_in(page, card, language=language, channel=channel, inbox=smtp_server, viewport=viewport)

    # Account check: the open fee is shown with its reason and paid through the payment simulator.
    assert_page_ok(page, language)
    assert page.locator("#charges tbody tr").count() == 1
    shot(page, f"{language}-{viewport}-3-account")
    page.click("#pay")
    page.wait_for_selector("#nothing-owed")
    assert page.locator(".msg.success").count() == 1
    payments = page.request.get("/sim/payments/payments").json()
    assert [(p["amount"], p["status"]) for p in payments] == [(charge[1], "succeeded")]
    page.click("#to-quote")
    page.wait_for_url(f"**/{language}/quote/")

    # Quote: balance, deposit, plan, fees with reasons, refund, expected date; consent unticked.
    assert_page_ok(page, language)
    assert not page.is_checked("#id_consent")
    if product == "TSIM":
        assert page.locator("tr.plan").count() == 1
    else:
        assert page.locator("tr.fee").count() == 1  # HK$11 within 90 days of issue
    refund_text = page.inner_text("#refund-amount")
    page.check(f"input[name=destination][value={destination}]")
    if destination == "bank":
        assert page.is_visible("#id_bank_code") and not page.is_visible("#id_wallet_id")
        page.fill("#id_bank_code", "004")
        page.fill("#id_account_number", "123-456789-001")
    elif destination == "ewallet":
        page.select_option("#id_wallet_provider", "alipayhk")
        page.fill("#id_wallet_id", "+85291234567")
    shot(page, f"{language}-{viewport}-4-quote")
    page.check("#id_consent")
    page.click("#submit-closure")
    page.wait_for_selector("#receipt")

    # Receipt on screen, by email and SMS.
    case = ClosureCase.objects.get(card=card)
    assert case.reference in page.inner_text("#receipt") and refund_text in page.inner_text("#receipt")
    assert_page_ok(page, language)
    shot(page, f"{language}-{viewport}-5-receipt")
    receipts = [m for m in smtp_server.wait(2 if channel == "email" else 1) if case.reference in m["Subject"]]
    assert len(receipts) == 1
    assert any(case.reference in m["body"] for m in page.request.get("/sim/sms/messages").json())

    # Physical card: the prepaid return label.
    if product == "OCTO":
        with page.expect_download() as download:
            page.click("#label-link")
        assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
        wait_for(lambda: ClosureCase.objects.get(id=case.id).state == "awaiting_return")
        page.click("#refresh")
        assert page.locator("#todo-post").count() == 1
        shot(page, f"{language}-{viewport}-6-awaiting-return")
        off_the_loop(services.closure_card_received, reference=case.reference, actor="staff:warehouse")

    # A refund to another account waits for a second member of staff (maker-checker).
    if destination != "original":
        wait_for(lambda: ClosureCase.objects.get(id=case.id).state == "refund_pending"
                 and hasattr(ClosureCase.objects.get(id=case.id), "refund_approval"))
        page.click("#refresh")
        assert page.locator("#approval-waiting").count() == 1
        assert_page_ok(page, language)
        off_the_loop(services.refund_approve, reference=case.reference, approver="staff:checker")

    # The worker takes the case to closed; the timeline shows every step done.
    monkeypatch.setattr(closure_selectors, "case_certificate", lambda c: {
        "id": "cert-test", "verify_url": "http://testserver/verify/cert-test"} if c.state == "closed" else None)
    wait_for(lambda: ClosureCase.objects.get(id=case.id).state == "closed", timeout=60)
    page.click("#refresh")
    assert page.get_attribute("p.state", "data-state") == "closed"
    statuses = page.eval_on_selector_all("#timeline li", "els => els.map(e => e.className)")
    assert statuses and all("done" in s for s in statuses)
    assert page.locator("#certificate-link").count() == 1
    assert page.locator("#withdraw").count() == 0 and page.locator("#label-link").count() == 0
    assert_page_ok(page, language)
    shot(page, f"{language}-{viewport}-7-closed")


def test_five_wrong_codes_use_the_code_up(open_page, make_card):
    card = make_card("YKT")
    page = open_page("zh-hant")
    page.goto("/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url("**/code/")
    right = latest_sms_code(page)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        page.fill("#id_code", wrong)
        with page.expect_navigation():
            page.click("form[data-once] button[type=submit]")
        assert f"{left} 次" in page.inner_text("#code-error")
    page.fill("#id_code", wrong)
    with page.expect_navigation():
        page.click("form[data-once] button[type=submit]")
    assert "失效" in page.inner_text("#code-error")
    page.fill("#id_code", right)
    with page.expect_navigation():
        page.click("form[data-once] button[type=submit]")
    assert "失效" in page.inner_text("#code-error") and page.url.endswith("/code/")
    assert_page_ok(page, "zh-hant")
    shot(page, "error-wrong-code-5-times")


def test_an_expired_code_is_refused(open_page, make_card):
    from closeout.common import clock
    from closeout.identity.models import OtpChallenge

    card = make_card("YKT")
    page = open_page("en", "phone")
    page.goto("/en/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url("**/code/")
    OtpChallenge.objects.update(expires_at=clock.now())  # ten minutes have passed
    page.fill("#id_code", latest_sms_code(page))
    with page.expect_navigation():
        page.click("form[data-once] button[type=submit]")
    assert "This code has expired" in page.inner_text("#code-error")
    shot(page, "error-expired-code")


def test_a_bad_card_number_is_flagged_as_you_type_and_by_the_server(open_page):
    page = open_page("zh-hans", "phone")
    page.goto("/zh-hans/")
    page.type("#id_card_number", "8101 0000 0000 0002")
    assert page.get_attribute("#id_card_number", "aria-invalid") == "true"
    assert page.inner_text("#card-number-live") == "卡号无效，请检查数字。"
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    with page.expect_navigation():
        page.click("form[data-once] button[type=submit]")
    assert page.url.endswith("/zh-hans/") and "卡号无效" in page.inner_text(".has-error")
    assert page.inner_text(".has-error").count("卡号无效") == 1  # the server says it once, the live check waits
    assert_page_ok(page, "zh-hans")
    shot(page, "error-bad-card-number")
    page.type("#id_card_number", "1")  # typing again: the live check speaks, the server's message goes
    assert "卡号无效" not in page.inner_text(".has-error") and "请继续输入" in page.inner_text("#card-number-live")


def test_unsettled_fees_block_the_quote(open_page, make_card):
    card = make_card("YKT", charges=[("overdraft", 2500)])
    page = open_page("en")
    sign_in(page, card, language="en", channel="sms")
    page.goto("/en/quote/")
    assert page.url.endswith("/en/account/") and page.locator("#charges").count() == 1
    assert page.locator("#to-quote").count() == 0
    shot(page, "error-unsettled-fees")


@pytest.mark.parametrize("javascript", [True, False], ids=["with-js", "without-js"])
def test_a_double_click_and_the_back_button_open_one_case(open_page, make_card, javascript):
    from closeout.closures.models import ClosureCase

    card = make_card("YKT")
    page = open_page("en", javascript=javascript)
    sign_in(page, card, language="en", channel="sms") if javascript else _sign_in_without_js(page, card)
    page.goto("/en/quote/")
    page.check("#id_consent")
    page.dblclick("#submit-closure")
    try:
        page.wait_for_url("**/case/**")
    except PlaywrightError:
        # Without JavaScript the second click submits again and aborts the first navigation;
        # the second answer is the case page all the same.
        page.wait_for_load_state()
        page.wait_for_url("**/case/**")
    page.wait_for_load_state("networkidle")
    assert ClosureCase.objects.filter(card=card).count() == 1
    page.go_back()
    page.wait_for_load_state()
    assert "/case/" in page.url  # the quote page sends you back to the case
    if "/quote/" in page.url:
        page.click("#submit-closure")
    assert ClosureCase.objects.filter(card=card).count() == 1
    shot(page, f"error-double-submit-{'js' if javascript else 'nojs'}")


def _sign_in_without_js(page, card):
    page.goto("/en/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url("**/code/")
    page.fill("#id_code", latest_sms_code(page))
    page.click("form[data-once] button[type=submit]")
    page.wait_for_url("**/account/")


def _tab_to(page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element matching `selector` has the focus; its focus must be visible."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"no visible focus on {selector}"
            return
    raise AssertionError(f"could not reach {selector} with the Tab key")


def test_the_journey_works_with_the_keyboard_only(open_page, make_card):
    from closeout.closures.models import ClosureCase

    card = make_card("YKT", charges=[("overdraft", 900)])
    page = open_page("zh-hant")
    page.goto("/zh-hant/")
    _tab_to(page, "#id_card_number")
    page.keyboard.type(card.number)
    _tab_to(page, "#id_id_type")
    page.keyboard.press("ArrowDown")  # Mainland resident ID -> HKID
    _tab_to(page, "#id_id_number")
    page.keyboard.type(HKID)
    _tab_to(page, "input[name=channel]:checked")
    _tab_to(page, "form[data-once] button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/zh-hant/code/")
    _tab_to(page, "#id_code")
    page.keyboard.type(latest_sms_code(page))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/zh-hant/account/")
    _tab_to(page, "#pay")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#nothing-owed")
    _tab_to(page, "#to-quote")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/zh-hant/quote/")
    _tab_to(page, "input[name=destination]:checked")
    page.keyboard.press("ArrowDown")  # original -> bank account
    assert page.is_checked("input[name=destination][value=bank]")
    _tab_to(page, "#id_bank_code")
    page.keyboard.type("004")
    _tab_to(page, "#id_account_number")
    page.keyboard.type("123456789001")
    _tab_to(page, "#id_consent")
    page.keyboard.press("Space")
    _tab_to(page, "#submit-closure")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#receipt")
    case = ClosureCase.objects.get(card=card)
    assert case.refund_destination["type"] == "bank"
    _tab_to(page, "details.withdraw summary, .withdraw summary")
    page.keyboard.press("Enter")
    _tab_to(page, "#withdraw")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    case.refresh_from_db()
    assert case.state == "withdrawn"
    shot(page, "keyboard-only-withdrawn")


def test_the_language_picker_keeps_the_page(open_page):
    page = open_page("en")
    page.goto("/en/check/")
    page.click(".lang button[value=zh-hant]")
    page.wait_for_url("**/zh-hant/check/")
    assert page.get_attribute("html", "lang") == "zh-Hant"
    assert_page_ok(page, "zh-hant")


@pytest.mark.parametrize("language", ["en", "zh-hans", "zh-hant"])
def test_the_calculator_needs_no_sign_in(open_page, make_card, language):
    card = make_card("OCTO")
    page = open_page(language, "phone")
    page.goto(f"/{language}/check/")
    page.fill("#id_card_number", card.number)
    page.click("main form button[type=submit]")
    page.wait_for_selector("#policy")
    assert page.locator("#policy li").count() >= 4
    assert_page_ok(page, language)
    shot(page, f"{language}-phone-calculator")


@pytest.mark.parametrize("language,viewport", [("zh-hant", "phone"), ("en", "desktop")])
def test_a_customer_books_a_branch_visit_on_a_phone(open_page, make_card, language, viewport):
    from datetime import datetime

    from closeout.appointments.models import Appointment

    _branch_for_browser()
    card = make_card("YKT", balance=5000)
    page = open_page(language, viewport)
    sign_in(page, card, language=language, channel="sms", viewport=viewport)
    page.click("#to-branch")
    page.wait_for_url(f"**/{language}/branch/")
    assert_page_ok(page, language)
    shot(page, f"branch-{language}-{viewport}-1-times")
    first = page.locator("#slots button.slot").first
    when = first.get_attribute("value")
    first.click()
    page.wait_for_url(f"**/{language}/account/")
    assert_page_ok(page, language)
    assert page.locator("#appointment").is_visible()
    shot(page, f"branch-{language}-{viewport}-2-booked")

    booked = Appointment.objects.get(card=card, status="BOOKED")
    assert (booked.starts_at, booked.language) == (datetime.fromisoformat(when), language)


def _branch_for_browser():
    from datetime import time

    from closeout.appointments.models import Branch, Counter, OpeningHours

    made = Branch.objects.create(code="HK-CEN", name="Central customer service centre", name_zh_hans="中环客务中心",
                                 name_zh_hant="中環客務中心", address="G/F, 1 Sample Street, Central", address_zh_hans="中环样本街1号地下",
                                 address_zh_hant="中環樣本街1號地下", calendar="HK",
                                 slot_minutes=30)
    for weekday in range(7):
        OpeningHours.objects.create(branch=made, weekday=weekday, opens=time(9), closes=time(17))
    Counter.objects.create(branch=made, label="A")
    return made


def test_a_traveller_is_told_to_delete_the_esim_on_a_phone_in_hong_kong_time(open_page, make_card):
    """A zh-hant customer abroad closes an eSIM on a phone: the receipt's time says whose clock it
    is, and when the SM-DP+ waits for the phone to delete the profile the page says what to do and by
    when, without overflowing the phone's width."""
    from closeout.closures.models import ClosureCase
    from tests.integration.test_portal import _esim_waiting_for_deletion

    card = make_card("ESIM", balance=2000, plan_days_left=20, physical=False)
    page = open_page("zh-hant", "phone")
    sign_in(page, card, language="zh-hant", channel="sms", viewport="phone")
    page.goto("/zh-hant/quote/")
    page.check("#id_consent")
    page.click("#submit-closure")
    page.wait_for_selector("#receipt")
    assert "（香港時間）" in page.inner_text("#receipt")
    assert "所有時間均為香港時間（UTC+8）" in page.inner_text("#time-zone")

    case = _esim_waiting_for_deletion(ClosureCase.objects.get(card=card))
    page.click("#refresh")
    todo = page.inner_text("#todo-esim")
    assert "前從手機刪除 eSIM 設定檔" in todo and f"{case.deadline_at.astimezone().year}年" in todo
    assert page.locator("#todo-nothing").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS["phone"]["width"]  # not zoomed out
    assert_page_ok(page, "zh-hant")
    shot(page, "zh-hant-phone-esim-delete")


def _submit(page, selector="form[data-once] button[type=submit]"):
    with page.expect_navigation():
        page.click(selector)


def _back(page) -> bool:
    """Press Back; False when there is nothing to go back to. Back must show a page of the portal,
    never the browser's "Confirm form resubmission" (net::ERR_CACHE_MISS in Chromium)."""
    try:
        response = page.go_back(wait_until="load")
    except PlaywrightError as exc:
        raise AssertionError(f"Back failed: {exc}") from None
    if response is None and not page.url.startswith("chrome-error:"):
        return False
    assert not page.url.startswith("chrome-error:"), "Back showed the browser's resubmission page"
    assert "ERR_CACHE_MISS" not in page.content()
    assert page.locator("header.top .brand").count() == 1, page.url  # a page of ours
    return True


def test_back_after_a_form_error_never_asks_to_resubmit(open_page, make_card):
    """Each step of the journey refused once, then done right; Back then walks the steps again."""
    from closeout.closures.models import ClosureCase

    card = make_card("YKT")
    page = open_page("en")
    page.goto("/en/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", "A1234")  # not a valid HKID
    _submit(page)
    assert page.locator("#id_id_number_error").count() == 1
    assert page.input_value("#id_card_number") == card.number  # what was typed is kept
    page.fill("#id_id_number", HKID)
    _submit(page)
    assert page.url.endswith("/en/code/")

    right = latest_sms_code(page)
    page.fill("#id_code", f"{(int(right) + 1) % 10**6:06d}")
    _submit(page)
    assert page.locator("#code-error").count() == 1 and page.url.endswith("/en/code/")
    page.fill("#id_code", right)
    _submit(page)
    assert page.url.endswith("/en/account/")

    page.click("#to-quote")
    page.wait_for_url("**/en/quote/")
    page.check("input[name=destination][value=bank]")
    page.fill("#id_bank_code", "4")  # too short
    page.fill("#id_account_number", "123456789001")
    _submit(page, "#submit-closure")
    assert page.locator("#form-error").count() == 1 and page.url.endswith("/en/quote/")
    assert page.is_checked("input[name=destination][value=bank]")
    assert page.input_value("#id_account_number") == "123456789001"
    page.fill("#id_bank_code", "004")
    page.check("#id_consent")
    _submit(page, "#submit-closure")
    page.wait_for_selector("#receipt")
    reference = ClosureCase.objects.get(card=card).reference

    seen = []
    for _ in range(12):
        if not _back(page):
            break
        seen.append(page.url.removeprefix(page.url.split("/en/")[0]))
    # The quote and account pages send an open case to its page; the code page of a finished
    # sign-in sends to the start; nothing asks to send a form again.
    assert seen[-1] == "/en/" and f"/en/case/{reference}/" in seen, seen
    assert ClosureCase.objects.filter(card=card).count() == 1
