"""The portal for a traveller closing a travel SIM from abroad on a phone, and for a customer who
uses a screen reader or only a keyboard: every page of the journey fits a 390px screen, every
control is a tap target of at least 44px, headings come in order, each step's title says which step
it is, fields bring up the right keyboard, refused forms say what is wrong where a screen reader
reads it and put the focus on it, the language picker takes one tap, and Chinese dates, times and
phone numbers do not break across lines. Screenshots go to test-results/portal/ (mobile-*.png)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.test_portal import (  # noqa: F401 - fixtures
    _branch_for_browser,
    _catalogs_compiled,
    _dispatch_off,
    chromium,
    latest_sms_code,
    off_the_loop,
)
from tests.fixtures import HKID

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only, pytest.mark.django_db(transaction=True)]

SHOTS = Path("test-results/portal")
DEVICES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
              "has_touch": True},
    "small-phone": {"viewport": {"width": 320, "height": 568}, "device_scale_factor": 2, "is_mobile": True,
                    "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
LOCALES = {"en": "en-GB", "zh-hans": "zh-CN", "zh-hant": "zh-HK"}
HTML_LANG = {"en": "en", "zh-hans": "zh-Hans", "zh-hant": "zh-Hant"}
ERROR_TITLE = {"en": "Error: ", "zh-hans": "错误：", "zh-hant": "錯誤："}
TAP = 44  # px, the smallest target a thumb hits reliably (WCAG 2.5.5)


@pytest.fixture
def device(chromium, live_server):  # noqa: F811
    contexts = []

    def open_(language: str, kind: str = "phone"):
        context = chromium.new_context(
            **DEVICES[kind], locale=LOCALES[language], extra_http_headers={"Accept-Language": LOCALES[language]},
            accept_downloads=True, base_url=live_server.url)
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"mobile-{name}.png"), full_page=True)


def _submit(page, selector="main form[data-once] button[type=submit]"):
    with page.expect_navigation():
        page.click(selector)


def _sign_in(page, card, language):
    page.goto(f"/{language}/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    _submit(page)
    page.fill("#id_code", latest_sms_code(page))
    _submit(page)
    assert page.url.endswith(f"/{language}/account/")


@pytest.mark.parametrize("language", ["zh-hant", "zh-hans", "en"])
def test_each_page_names_its_language_as_screen_readers_expect(device, language):
    """"zh-Hant", not "zh-hant": screen readers choose their voice, and browsers their Chinese
    font, by the script as BCP 47 writes it."""
    page = device(language)
    for path in (f"/{language}/", f"/{language}/check/", f"/{language}/no-such-page/"):
        page.goto(path)
        assert page.get_attribute("html", "lang") == HTML_LANG[language], path


def test_the_language_picker_takes_one_tap_on_a_phone(device):
    page = device("zh-hant")
    page.goto("/zh-hant/check/")
    picker = page.locator("header form.lang button[name=language]")
    assert picker.count() == 3
    assert page.evaluate("""() => [...document.querySelectorAll('header form.lang button[name=language]')]
        .map(b => [b.value, b.getAttribute('lang'), b.getAttribute('aria-current')])""") == [
        ["zh-hans", "zh-Hans", None], ["zh-hant", "zh-Hant", "true"], ["en", "en", None]]
    for box in (picker.nth(i).bounding_box() for i in range(3)):
        assert box["height"] >= TAP and box["width"] >= TAP
    shot(page, "zh-hant-phone-language-picker")
    page.tap("header form.lang button[value=en]")
    page.wait_for_url("**/en/check/")
    assert page.get_attribute("html", "lang") == "en"
    assert page.evaluate("document.documentElement.scrollWidth") <= DEVICES["phone"]["viewport"]["width"]


def _described(page, selector: str) -> str:
    """The text a screen reader reads after the field's label: what aria-describedby points at."""
    return page.evaluate("""s => (document.querySelector(s).getAttribute('aria-describedby') || '').split(/\\s+/)
        .filter(Boolean).map(id => { const e = document.getElementById(id); return e ? e.textContent : '#MISSING:' + id; })
        .join(' ')""", selector)


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id")


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_a_refused_form_puts_the_focus_on_what_is_wrong_and_says_why(device, make_card, language):
    card = make_card("TSIM", balance=8800, plan_days_left=20)
    page = device(language)
    page.goto(f"/{language}/")
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", "A1234")
    _submit(page)
    assert page.title().startswith(ERROR_TITLE[language])
    assert _focused(page) == "id_id_number"
    message = page.inner_text("#id_id_number_error")
    assert message and message in _described(page, "#id_id_number") and "#MISSING" not in _described(
        page, "#id_id_number")
    assert page.get_attribute("#id_id_number", "aria-invalid") == "true"
    # The list at the top names the field and leads to it.
    page.click("#form-error a[href='#id_id_number']")
    assert _focused(page) == "id_id_number"
    shot(page, f"{language}-phone-focus-sign-in-refused")

    page.fill("#id_card_number", "8101 0000 0000 0002")  # a wrong check digit: the card number is first
    page.fill("#id_id_number", HKID)
    _submit(page)
    assert _focused(page) == "id_card_number"
    assert page.inner_text("#id_card_number_error") in _described(page, "#id_card_number")
    page.fill("#id_card_number", card.number)
    _submit(page)

    right = latest_sms_code(page)
    page.fill("#id_code", f"{(int(right) + 1) % 10**6:06d}")
    _submit(page)
    assert page.title().startswith(ERROR_TITLE[language])
    assert _focused(page) == "id_code" and page.get_attribute("#id_code", "aria-invalid") == "true"
    assert page.inner_text("#code-error").strip() in _described(page, "#id_code")
    shot(page, f"{language}-phone-focus-code-refused")
    page.fill("#id_code", right)
    _submit(page)

    page.goto(f"/{language}/quote/")
    page.check("input[name=destination][value=ewallet]")
    page.fill("#id_wallet_id", "x")
    _submit(page, "#submit-closure")
    assert _focused(page) == "id_wallet_id"
    assert page.inner_text("#id_wallet_id_error") in _described(page, "#id_wallet_id")
    assert page.inner_text("#id_consent_error") in _described(page, "#id_consent")
    shot(page, f"{language}-phone-focus-quote-refused")
    page.click("#form-error a[href='#id_consent']")
    assert _focused(page) == "id_consent"

    page.check("input[name=destination][value=original]")
    _submit(page, "#submit-closure")  # only the tick is missing now
    assert _focused(page) == "id_consent"
    assert page.title().startswith(ERROR_TITLE[language])


def test_an_unknown_card_number_on_the_fee_check_takes_the_focus(device):
    page = device("zh-hans")
    page.goto("/zh-hans/check/")
    page.fill("#id_card_number", "4111 1111 1111 1111")  # a valid check digit, but not one of ours
    _submit(page, "main form button[type=submit]")
    assert _focused(page) == "unknown-product"
    assert page.title().startswith(ERROR_TITLE["zh-hans"])


@pytest.mark.parametrize("language", ["zh-hant", "en"])
def test_fields_bring_up_the_keyboard_they_need(device, make_card, language):
    """The digits keypad for numbers, the code offered from the SMS, capitals for ID and account
    numbers, and no autofill or spelling fixes on numbers that are not the customer's own to keep."""
    card = make_card("TSIM", balance=8800, plan_days_left=20)
    page = device(language)
    page.goto(f"/{language}/")

    def attrs(selector):
        return page.evaluate("""s => { const e = document.querySelector(s); return {type: e.type,
            inputmode: e.getAttribute('inputmode'), autocomplete: e.getAttribute('autocomplete'),
            autocapitalize: e.getAttribute('autocapitalize'), spellcheck: e.getAttribute('spellcheck')}; }""", selector)

    assert attrs("#id_card_number") == {"type": "text", "inputmode": "numeric", "autocomplete": "off",
                                        "autocapitalize": None, "spellcheck": "false"}
    assert attrs("#id_id_number") == {"type": "text", "inputmode": None, "autocomplete": "off",
                                      "autocapitalize": "characters", "spellcheck": "false"}
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", HKID)
    _submit(page)
    assert attrs("#id_code") == {"type": "text", "inputmode": "numeric", "autocomplete": "one-time-code",
                                 "autocapitalize": None, "spellcheck": None}
    page.fill("#id_code", latest_sms_code(page))
    _submit(page)
    page.goto(f"/{language}/quote/")
    for selector in ("#id_bank_code", "#id_account_number"):
        assert attrs(selector)["autocapitalize"] == "characters" and attrs(selector)["autocomplete"] == "off"
    assert attrs("#id_wallet_id")["autocomplete"] == "off"


SMALL_TARGETS = """tap => {
    const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
        && getComputedStyle(e).visibility !== 'hidden'; };
    // A link inside a sentence is exempt (WCAG 2.5.5): its paragraph has words besides the links.
    const inSentence = a => !a.closest('footer') && /[\\p{L}\\p{N}]/u.test([...a.parentElement.childNodes]
        .filter(n => !(n.nodeType === 1 && n.matches('a, button'))).map(n => n.textContent).join(''));
    const controls = [...document.querySelectorAll(
        'button, select, summary, a[href], input:not([type=hidden]):not([type=radio]):not([type=checkbox])')]
        .filter(e => !(e.matches('a') && inSentence(e)));
    // A radio button or a tick box is tapped through its label.
    const labels = [...document.querySelectorAll('input[type=radio], input[type=checkbox]')].flatMap(i => [...i.labels]);
    return [...controls, ...labels].filter(shown).map(e => [e, e.getBoundingClientRect()])
        .filter(([e, r]) => r.height < tap - 0.5 || r.width < tap - 0.5)
        .map(([e, r]) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${e.textContent.trim().slice(0, 30)}"`
             + ` ${Math.round(r.width)}x${Math.round(r.height)}`);
}"""

HEADINGS = """() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => [Number(h.tagName[1]),
    parseFloat(getComputedStyle(h).fontSize), h.closest('footer') !== null])"""


def check_page(page, language: str, kind: str, name: str, titles: dict | None = None) -> None:
    """What every page must do on this device: the screenshot, then the checks."""
    shot(page, f"{language}-{kind}-{name}")
    if titles is not None:
        titles[name] = page.title()
    assert page.get_attribute("html", "lang") == HTML_LANG[language], name
    # A phone's browser widens the page to what overflows and zooms out: measure against the screen.
    width = DEVICES[kind]["viewport"]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"
    headings = page.evaluate(HEADINGS)
    levels = [level for level, _size, _foot in headings]
    assert levels and levels[0] == 1 and levels.count(1) == 1, f"{name}: one h1, first: {levels}"
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), f"{name}: heading levels skip: {levels}"
    h1 = headings[0][1]
    assert all(size < h1 for level, size, foot in headings[1:] if not foot), f"{name}: a heading outsizes the h1"
    assert page.title().endswith(" · closeout") and page.title() != " · closeout"
    if kind == "phone":
        assert page.evaluate(SMALL_TARGETS, TAP) == [], f"{name}: targets under {TAP}px"


def _sign_out(page):
    _submit(page, "header form button[type=submit].link")


# Every language on a phone, where space runs out; one on a desktop, for the wide layout (the
# three languages share it, and desktop pages in all three took a minute of every run).
@pytest.mark.parametrize(("language", "kind"), [
    ("zh-hant", "phone"), ("zh-hans", "phone"), ("en", "phone"), ("zh-hant", "desktop")])
def test_every_page_of_the_journey_fits_the_screen_and_the_thumb(device, make_card, language, kind):
    from closeout.closures.models import ClosureCase
    from tests.aftercare_support import close_card

    page = device(language, kind)
    card = make_card("TSIM", balance=8800, plan_days_left=20, charges=[("unpaid_fee", 3000)])
    titles = {}

    page.goto(f"/{language}/")
    check_page(page, language, kind, "01-sign-in", titles)
    page.fill("#id_card_number", card.number)
    page.select_option("#id_id_type", "hkid")
    page.fill("#id_id_number", "A1234")
    _submit(page)
    check_page(page, language, kind, "01b-sign-in-refused")
    page.fill("#id_id_number", HKID)
    _submit(page)
    check_page(page, language, kind, "02-code", titles)
    right = latest_sms_code(page)
    page.fill("#id_code", f"{(int(right) + 1) % 10**6:06d}")
    _submit(page)
    check_page(page, language, kind, "02b-code-refused")
    page.fill("#id_code", right)
    _submit(page)

    check_page(page, language, kind, "03-account-fees", titles)
    _submit(page, "#pay")
    check_page(page, language, kind, "03b-account-paid")
    page.click("#to-quote")
    page.wait_for_url(f"**/{language}/quote/")
    for destination in ("original", "bank", "ewallet", "cash"):
        page.check(f"input[name=destination][value={destination}]")
        check_page(page, language, kind, f"04-quote-{destination}", titles)
    page.check("input[name=destination][value=bank]")
    _submit(page, "#submit-closure")
    check_page(page, language, kind, "04b-quote-refused")
    page.fill("#id_bank_code", "004")
    page.fill("#id_account_number", "123-456789-001")
    page.check("#id_consent")
    _submit(page, "#submit-closure")
    check_page(page, language, kind, "05-receipt", titles)
    page.reload()
    check_page(page, language, kind, "06-case", titles)
    # Each step's title says which step it is (the tab, and the first thing a screen reader reads).
    steps = [titles[n] for n in ("01-sign-in", "02-code", "03-account-fees", "04-quote-bank", "05-receipt", "06-case")]
    assert len(set(steps)) == len(steps), steps
    _sign_out(page)

    # A physical card goes back in the post with a prepaid label.
    octo = make_card("OCTO", balance=12000)
    _sign_in(page, octo, language)
    page.click("#to-quote")
    page.wait_for_url(f"**/{language}/quote/")
    page.check("#id_consent")
    _submit(page, "#submit-closure")
    with page.expect_download() as download:
        page.click("#label-link")
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    page.reload()
    check_page(page, language, kind, "07-return-label")
    assert ClosureCase.objects.filter(card__in=[card, octo]).count() == 2
    _sign_out(page)

    # Or the customer closes the card at a branch counter.
    _branch_for_browser()
    _sign_in(page, make_card("YKT", balance=5000), language)
    page.click("#to-branch")
    page.wait_for_url(f"**/{language}/branch/")
    check_page(page, language, kind, "08-branch")
    _submit(page, "#slots button.slot >> nth=0")
    check_page(page, language, kind, "08b-branch-booked")

    closed = off_the_loop(close_card, make_card("YKT", balance=4500, bindings=["maps-app"]))
    page.goto(f"/verify/{closed.certificate.id}?lang={language}")
    check_page(page, language, kind, "09-verify")
    page.goto(f"/{language}/check/")
    check_page(page, language, kind, "10-check")
    page.goto(f"/{language}/no-such-page/")
    check_page(page, language, kind, "11-404")
    page.goto(f"/{language}/")
    page.context.clear_cookies()  # the session and its CSRF cookie are gone: the form is refused
    page.fill("#id_card_number", card.number)
    with page.expect_navigation() as navigation:
        page.click("main form[data-once] button[type=submit]")
    response = navigation.value
    assert response.status == 403
    check_page(page, language, kind, "12-403")


def _on_one_line(page, selector: str, phrase: str) -> bool:
    """Whether `phrase` inside the element shows on a single line (its text boxes share one top)."""
    tops = page.evaluate("""([s, phrase]) => {
        const root = document.querySelector(s);
        const text = root.textContent, start = text.indexOf(phrase);
        if (start < 0) return null;
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        const range = document.createRange();
        let seen = 0, node, started = false;
        while ((node = walker.nextNode())) {
            const end = seen + node.length;
            if (!started && start < end) { range.setStart(node, start - seen); started = true; }
            if (started && start + phrase.length <= end) { range.setEnd(node, start + phrase.length - seen); break; }
            seen = end;
        }
        return [...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top));
    }""", [selector, phrase])
    assert tops is not None, f"{phrase!r} is not in {selector}"
    return len(set(tops)) == 1


def test_chinese_dates_times_and_phone_numbers_stay_on_one_line(device, make_card):
    """At 390px a traditional Chinese line broke inside "2026年12月10日", "（香港時間）" and the
    customer service number, and left "間" of "時間" alone on the last line of the branch's times."""
    from django.utils import formats, timezone

    from closeout.closures.models import ClosureCase

    _branch_for_browser()
    card = make_card("TSIM", balance=8800, plan_days_left=20)
    page = device("zh-hant")
    _sign_in(page, card, "zh-hant")
    page.click("#to-branch")
    page.wait_for_url("**/zh-hant/branch/")
    assert _on_one_line(page, "#slots legend", "時間")  # no last line of one character
    shot(page, "zh-hant-phone-lines-branch")
    page.goto("/zh-hant/account/")
    page.click("#to-quote")
    page.wait_for_url("**/zh-hant/quote/")
    assert _on_one_line(page, "footer", "+852 3000 1234")
    assert _on_one_line(page, "footer", "09:00–21:00")
    expected = re.search(r"\d{4}年\d{1,2}月\d{1,2}日", page.inner_text("#expected"))[0]
    assert _on_one_line(page, "#expected", expected)
    shot(page, "zh-hant-phone-lines-quote")
    page.check("#id_consent")
    _submit(page, "#submit-closure")
    case = ClosureCase.objects.get(card=card)
    from django.utils import translation

    with translation.override("zh-hant"):
        received = formats.date_format(timezone.localtime(case.created_at), "DATETIME_FORMAT")
    assert _on_one_line(page, "#receipt", received)
    assert _on_one_line(page, "#receipt", "（香港時間）")
    for step in page.locator("#timeline .expected").all():
        date = re.search(r"\d{4}年\d{1,2}月\d{1,2}日", step.inner_text())[0]
        assert _on_one_line(page, f"#timeline li[data-state='{step.locator('xpath=..').get_attribute('data-state')}']",
                            date)
    shot(page, "zh-hant-phone-lines-receipt")


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_the_receipt_fits_the_smallest_phone(device, make_card, language):
    """On a 320px screen the receipt's labels ("Expected completion") took the width its values
    needed, and a four-digit refund pushed the page sideways."""
    card = make_card("OCTO", balance=290000)  # a refund of HK$2,950.00: an amount does not wrap
    page = device(language, "small-phone")
    _sign_in(page, card, language)
    page.goto(f"/{language}/quote/")
    page.check("input[name=destination][value=bank]")
    page.fill("#id_bank_code", "004")
    page.fill("#id_account_number", "123-456789-001")
    page.check("#id_consent")
    _submit(page, "#submit-closure")
    assert page.locator("#receipt").count() == 1
    shot(page, f"{language}-small-phone-receipt")
    assert page.evaluate("document.documentElement.scrollWidth") <= DEVICES["small-phone"]["viewport"]["width"]
