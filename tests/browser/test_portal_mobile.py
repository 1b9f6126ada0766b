"""The portal in a phone's browser and with a screen reader: each page names its language as
screen readers expect it, and the language picker takes one tap. Screenshots go to
test-results/portal/ (mobile-*.png)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_portal import (  # noqa: F401 - fixtures
    _catalogs_compiled,
    _dispatch_off,
    chromium,
)

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only, pytest.mark.django_db(transaction=True)]

SHOTS = Path("test-results/portal")
DEVICES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
              "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
LOCALES = {"en": "en-GB", "zh-hans": "zh-CN", "zh-hant": "zh-HK"}
HTML_LANG = {"en": "en", "zh-hans": "zh-Hans", "zh-hant": "zh-Hant"}
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
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
