"""Security: CSRF on every form, no CSRF-exempt page outside the bearer-token API, session
fixation, cookie flags, no card enumeration (status, body, headers and timing), body size and
content type limits, security headers."""

from __future__ import annotations

import re
import statistics
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from closeout.identity.documents import hkid_check_digit
from tests.fixtures import HKID
from tests.integration import test_console_support as console_support

PORTAL_LANGUAGES = ("en", "zh-hans", "zh-hant")
START_PAGES = [f"/{lang}/" for lang in PORTAL_LANGUAGES] + ["/console/", "/"]
SKIP_PREFIXES = ("/static/", "/api/", "/sim/", "/console/logout")
# Views that take POSTs without a CSRF token, and why: the API authenticates with bearer tokens
# (no cookies), the simulators are test doubles of other companies' systems, and the inbound
# webhooks (payment provider, SM-DP+ ES9+ notifications) are authenticated by their signatures.
CSRF_EXEMPT_ALLOWED = ("api/", "sim/", "webhooks/", "gsma/rsp2/es9plus/")
OTHER_HKID = "B987654" + hkid_check_digit("B", "987654")  # valid, and nobody's


# --- helpers -------------------------------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attrs.get("method") or "get").lower(), "action": attrs.get("action") or "",
                               "inputs": {}})
        elif tag in ("input", "select", "textarea") and self.forms and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value") or ""
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def crawl(client: Client, start: list[str], limit: int = 60) -> dict[str, str]:
    """Fetch same-site pages reachable from `start` (GET only); return {path: html}."""
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen or path.startswith(SKIP_PREFIXES):
            continue
        response = client.get(path, follow=True)
        final = response.redirect_chain[-1][0] if response.redirect_chain else path
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            seen[path] = ""
            continue
        html = response.content.decode()
        seen[path] = html
        for link in parse(html).links:
            target = urlsplit(urljoin(final, link))
            if not target.netloc and target.path.startswith("/"):
                queue.append(target.path)
    return seen


def post_forms(pages: dict[str, str]) -> list[tuple[str, dict]]:
    forms = []
    for path, html in pages.items():
        for form in parse(html).forms:
            if form["method"] == "post":
                forms.append((urljoin(path, form["action"]) if form["action"] else path, form))
    return forms


def portal_sign_in(client, card, capture):
    """Identify the card and enter the one-time code sent by SMS; return the code step's answer."""
    from closeout.integrations.sms.models import SimSmsMessage

    with capture(execute=True):  # the code leaves when the request's transaction commits
        response = client.post("/en/", {"card_number": card.number, "id_type": "hkid", "id_number": HKID,
                                        "channel": "sms"})
    assert response.status_code == 302, "the portal did not accept a valid card and ID"
    code = re.search(r"\d{6}", SimSmsMessage.objects.order_by("id").last().body)[0]
    return client.post("/en/code/", {"code": code})


@pytest.fixture
def identified(client, make_card, django_capture_on_commit_callbacks):
    """A portal session signed in for a card (the quote page with its form is reachable)."""
    card = make_card("YKT", balance=5000)
    response = portal_sign_in(client, card, django_capture_on_commit_callbacks)
    assert response.status_code == 302, "the portal did not accept the one-time code"
    return card


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_form_carries_a_csrf_token_and_fails_without_it(client, identified):
    pages = crawl(client, START_PAGES + ["/en/quote/"])
    forms = post_forms(pages)
    assert len(forms) >= 3, f"the crawl found too few forms: {[p for p in pages if pages[p]]}"

    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies  # the same session, without the token in the body
    for action, form in forms:
        assert "csrfmiddlewaretoken" in form["inputs"], f"form posting to {action} has no CSRF token"
        data = {k: v for k, v in form["inputs"].items() if k != "csrfmiddlewaretoken"}
        response = strict.post(action, data)
        assert response.status_code == 403, f"POST {action} without a CSRF token answered {response.status_code}"


staff_client = console_support.staff_client  # signs a staff member in with password + TOTP


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["supervisor", "branch_clerk", "warehouse"])
def test_every_console_form_carries_a_csrf_token_and_fails_without_it(staff_client, make_card, role):
    from closeout.closures import services

    card = make_card("OCTO", balance=150000)
    services.closure_request(card=card, channel="phone", requester="staff:agent", refund_destination={"type": "cash"})
    client, _ = staff_client(role)
    pages = crawl(client, ["/console/"], limit=40)
    forms = post_forms(pages)
    assert any(path.startswith("/console/") for path, _ in forms), f"no console form found: {list(pages)}"

    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    for action, form in forms:
        assert "csrfmiddlewaretoken" in form["inputs"], f"form posting to {action} has no CSRF token"
        response = strict.post(action, {k: v for k, v in form["inputs"].items() if k != "csrfmiddlewaretoken"})
        assert response.status_code == 403, f"POST {action} without a CSRF token answered {response.status_code}"


def _patterns(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_no_view_outside_the_bearer_token_api_that_can_change_anything_is_csrf_exempt():
    # A view that takes only GET and HEAD (/healthz, /metrics, the hotlist feed) is exempt so that
    # a POST gets its 405 rather than the CSRF failure page; Django never checks CSRF on those
    # two methods, so the exemption lets nothing through.
    exempt = [route for route, view in _patterns(get_resolver())
              if getattr(view, "csrf_exempt", False) and not route.startswith(CSRF_EXEMPT_ALLOWED)
              and not set(getattr(view, "allowed_methods", ["POST"])) <= {"GET", "HEAD"}]
    assert exempt == []


# --- sessions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_identifying_a_card_gives_a_new_session_key_and_voids_a_planted_one(client, make_card,
                                                                          django_capture_on_commit_callbacks):
    card = make_card("YKT")
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key

    response = portal_sign_in(client, card, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key and new_key != planted.session_key
    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert attacker.get("/en/quote/")["Location"].rstrip("/").endswith("/en"), "the planted session sees the card"


@pytest.mark.django_db
def test_session_cookie_is_httponly_samesite_and_short_lived(client, make_card,
                                                            django_capture_on_commit_callbacks):
    card = make_card("YKT")
    response = portal_sign_in(client, card, django_capture_on_commit_callbacks)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert 0 < int(cookie["max-age"]) <= 30 * 60


@pytest.mark.django_db
def test_a_session_cannot_read_a_case_it_did_not_open(client, identified):
    from closeout.closures.models import ClosureCase

    client.post("/en/quote/", {"destination": "original", "consent": "on"})
    reference = ClosureCase.objects.get(card=identified).reference
    assert client.get(f"/en/case/{reference}/").status_code == 200
    stranger = Client().get(f"/en/case/{reference}/")
    assert stranger.status_code in (302, 404)  # sent to sign in, or not found: never the case
    assert reference.encode() not in stranger.content


@pytest.mark.django_db
def test_console_sign_in_renews_the_session_and_sign_out_voids_it():
    from tests.integration.test_console_support import make_staff, sign_in

    profile, device, _ = make_staff("agent")
    client = Client()
    client.get("/console/login/")
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    sign_in(client, profile, device)
    signed_in_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in_key != planted.session_key
    assert client.get("/console/").status_code == 200

    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert attacker.get("/console/").status_code == 302, "the planted session is signed in"

    assert client.post("/console/logout/").status_code == 302
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = signed_in_key
    response = replay.get("/console/")
    assert response.status_code == 302 and "/console/login/" in response["Location"], "the old cookie still works"


@pytest.mark.django_db
def test_portal_sign_out_voids_the_session(client, identified):
    signed_in_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.get("/en/quote/").status_code == 200
    assert client.post("/en/sign-out/").status_code == 302
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = signed_in_key
    assert replay.get("/en/quote/").status_code == 302, "the old cookie still opens the quote"


# --- enumeration ---------------------------------------------------------------------------


def _unknown_card_like(number: str) -> str:
    from closeout.identity.documents import luhn_check_digit

    body = number[:-5] + f"{(int(number[-5:-1]) + 7919) % 10000:04d}"
    return body + luhn_check_digit(body)


def test_known_and_unknown_cards_get_the_same_api_answer_in_the_same_time(closeout_server):
    # Wrong documents lock a card number after 10 tries (known or not, alike): spread the tries
    # over the demo's cards, at most 2 each, and as many unknown numbers shaped like them.
    cards = [c for c in closeout_server.demo_cards if c["product_kind"] == "stored_value"]
    known_numbers = {c["number"] for c in closeout_server.demo_cards}
    unknowns = [_unknown_card_like(c["number"]) for c in cards]
    assert not set(unknowns) & known_numbers and len(cards) >= 35
    wrong_id = {"type": "hkid", "number": OTHER_HKID}
    assert all(c["id_document"] != wrong_id for c in cards)

    session = requests.Session()

    def ask(number, index):
        started = time.perf_counter()
        response = session.post(closeout_server.url + "/api/v1/closures", json={
            "card_number": number, "holder_name": cards[0]["holder_name"], "id_document": wrong_id,
        }, headers=closeout_server.headers(scope="partner", **{"Idempotency-Key": f"enum-{index}"}))
        return response, time.perf_counter() - started

    for i in range(10):  # warm both paths up (connections, caches)
        ask(cards[i]["number"], f"w{i}")
        ask(unknowns[i], f"wu{i}")
    known, absent = [], []
    for i in range(60):  # interleaved, so drift in machine load hits both alike
        card = 10 + i % (len(cards) - 10)
        known.append(ask(cards[card]["number"], f"k{i}"))
        absent.append(ask(unknowns[card], f"u{i}"))

    first_known, first_absent = known[0][0], absent[0][0]
    assert first_known.status_code == first_absent.status_code == 422
    assert {r.content for r, _ in known + absent} == {first_known.content}

    def headers(r):
        return {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("date", "content-length")}

    assert headers(first_known) == headers(first_absent)
    delta_ms = (statistics.median(t for _, t in known) - statistics.median(t for _, t in absent)) * 1000
    print(f"\nenumeration: median known-card {statistics.median(t for _, t in known) * 1000:.2f} ms, "
          f"unknown-card {statistics.median(t for _, t in absent) * 1000:.2f} ms, delta {delta_ms:+.2f} ms")
    assert abs(delta_ms) <= 10


@pytest.mark.django_db
def test_known_and_unknown_cards_get_the_same_portal_page(client, make_card):
    card = make_card("YKT")
    unknown = _unknown_card_like(card.number)

    def page(number):
        response = Client().post("/en/", {"card_number": number, "id_type": "hkid", "id_number": OTHER_HKID},
                                 follow=True)
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
        return response.status_code, html.replace(number, "<the number typed>")

    assert page(card.number) == page(unknown)
    assert page(card.number)[0] == 200


# --- body limits and content types ---------------------------------------------------------


@pytest.mark.parametrize("headers,body,status", [
    ({"Content-Type": "application/json"}, b'{"card_number": "' + b"1" * 300_000 + b'"}', 413),
    ({"Content-Type": "text/plain"}, b'{"card_number": "4111"}', 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"card_number=4111", 415),
    ({"Content-Type": "application/xml"}, b"<closure/>", 415),
    ({"Content-Type": "application/json"}, b'{"card_number": ', 400),
    ({"Content-Type": "application/json"}, b"\xff\xfe\x00", 400),
    ({"Content-Type": "application/json"}, b"[]", 422),
])
def test_api_refuses_oversized_and_foreign_bodies_with_a_problem(closeout_server, headers, body, status):
    response = requests.post(closeout_server.url + "/api/v1/closures", data=body, headers=closeout_server.headers(
        scope="partner", **{"Idempotency-Key": f"body-{status}-{len(body)}"}, **headers), timeout=30)
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_api_refuses_an_oversized_chunked_body(closeout_server):
    def chunks():
        for _ in range(40):
            yield b"1" * 10_000

    response = requests.post(closeout_server.url + "/api/v1/closures", data=chunks(), headers=closeout_server.headers(
        scope="partner", **{"Idempotency-Key": "chunked", "Content-Type": "application/json"}), timeout=30)
    assert response.status_code == 411, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
def test_portal_refuses_an_oversized_form(client):
    response = client.post("/en/", {"card_number": "1" * 300_000, "id_type": "hkid", "id_number": "x"})
    assert 400 <= response.status_code < 500


# --- headers -------------------------------------------------------------------------------


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/en/", "/zh-hant/", "/en/case/CL-2026-999999/", "/api/v1/closures/CL-1",
                                  "/api/v1/openapi.json"])
def test_security_headers_on_pages_and_answers(client, path):
    response = client.get(path)
    csp = _csp(response)
    assert csp["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert "Strict-Transport-Security" not in response, "HSTS over plain HTTP"
    if response["Content-Type"].startswith("text/html"):
        assert csp["default-src"] == "'self'" and "'unsafe-inline'" not in csp["script-src"]
        assert csp["object-src"] == "'none'" and csp["form-action"] == "'self'"
    else:
        assert csp["default-src"] == "'none'"


@pytest.mark.django_db
def test_hsts_only_over_tls(client):
    response = client.get("/en/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_the_live_server_sends_the_headers_on_errors_too(closeout_server):
    response = requests.post(closeout_server.url + "/api/v1/closures", data=b"x", headers={
        "Content-Type": "text/plain"}, timeout=30)
    assert response.status_code in (401, 415)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    page = requests.get(closeout_server.url + "/en/", timeout=30)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "no-store" in page.headers["Cache-Control"]


@pytest.mark.parametrize("path,headers,status,detail", [
    ("/api/v1/closures/" + "9" * 5000, {}, 414,
     "The request line (method, address and query) may be at most 4094 bytes."),
    ("/en/?q=" + "x" * 5000, {}, 414, "The request line (method, address and query) may be at most 4094 bytes."),
    ("/api/v1/openapi.json", {"X-Padding": "x" * 9000}, 431, "Each header field may be at most 8190 bytes."),
    ("/api/v1/openapi.json", {f"X-Padding-{n}": "x" for n in range(101)}, 431,
     "A request may carry at most 100 header fields."),
])
def test_requests_over_the_server_s_limits_get_a_problem_with_the_security_headers(closeout_server, path, headers,
                                                                                  status, detail):
    response = requests.get(closeout_server.url + path, headers=headers, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {"type": f"https://closeout.dev/problems/{response.reason.lower().replace(' ', '-')}",
                               "title": response.reason, "status": status, "detail": detail}
    assert _csp(response)["default-src"] == "'none'" and _csp(response)["frame-ancestors"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_live_server_answers_head_with_headers_only_and_logs_no_warning(closeout_server):
    for path in ("/api/v1/openapi.json", "/api/v1/certificates/keys", "/healthz"):
        got = requests.get(closeout_server.url + path, timeout=30)
        head = requests.head(closeout_server.url + path, timeout=30)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(got.content))
    assert "no-body response" not in closeout_server.log_path.read_text()


def test_no_page_runs_inline_script_and_the_policy_allows_none(client):
    """The language pickers are buttons, so no inline handler is left for the CSP to allow by hash."""
    for path in ("/en/", "/console/login/"):
        response = Client().get(path)
        assert not re.findall(r'\son[a-z]+="', response.content.decode()), path
        assert _csp(response)["script-src"] == "'self'", path
