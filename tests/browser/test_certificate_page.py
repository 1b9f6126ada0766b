"""A person scanning the certificate's QR code sees the verification page in their language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.aftercare_support import close_card

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; the ORM calls in the test are still
    # plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        if __import__("os").environ.get("CI") == "true":
            pytest.fail("Chromium is required under CI")
        pytest.skip("no Chromium")
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield instance
        instance.close()


@pytest.mark.parametrize("locale,heading,verdict", [("zh-CN", "注销证明", "有效"), ("en-GB", "Closure certificate", "Valid")])
def test_the_qr_code_opens_a_page_that_says_valid(live_server, settings, browser, make_card, locale, heading, verdict):
    case = close_card(make_card("YKT", balance=45000, bindings=["maps-app"]))
    facts = json.loads(case.certificate.facts)
    # The QR code encodes PUBLIC_URL/verify/<id>; here the public URL is the live server.
    url = facts["verify_url"].replace(settings.PUBLIC_URL, live_server.url)

    context = browser.new_context(locale=locale, extra_http_headers={"Accept-Language": locale})
    page = context.new_page()
    page.goto(url)
    assert page.locator("h1").inner_text() == heading
    assert page.locator("[data-valid]").get_attribute("data-valid") == "true"
    assert verdict in page.locator("[data-valid]").inner_text()
    assert page.locator("[data-field=reference]").inner_text() == case.reference
    RESULTS.mkdir(exist_ok=True)
    page.screenshot(path=str(RESULTS / f"verify-{locale}.png"), full_page=True)

    response = page.request.get(live_server.url + f"/api/v1/certificates/{case.certificate.id}")
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    context.close()


def test_the_api_docs_work_without_the_internet(live_server, browser):
    """The interactive API docs load their viewer from this server (a machine without internet
    access, or a strict proxy, still shows them)."""
    page = browser.new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith((live_server.url, "data:")) else None)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/api/v1/docs")
    page.get_by_text("Request a closure").first.wait_for(timeout=15000)
    RESULTS.mkdir(exist_ok=True)
    page.screenshot(path=str(RESULTS / "api-docs.png"))
    assert outside == [] and errors == []
