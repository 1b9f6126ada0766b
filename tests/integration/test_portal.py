"""The portal through Django's test client: sign-in, fees, quote, confirm, status, withdraw,
label, calculator, CSRF and what never appears in a URL."""

from __future__ import annotations

import base64
import io
import re
import zlib

import pytest
from django.test import Client
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.html import strip_tags

from closeout.cards.models import CardCharge
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.integrations.models import SimFault, SimPayment
from closeout.integrations.sms.models import SimSmsMessage
from closeout.notifications.models import Notice
from tests.fixtures import HKID
from tests.integration import test_console_support as support

pytestmark = pytest.mark.django_db(transaction=True)  # notices leave on commit
branch = support.branch

@pytest.fixture(scope="module", autouse=True)
def _catalogs_compiled():
    """Pages are read in Chinese: make sure the .mo files match the .po files."""
    from closeout.i18n import compile_catalogs

    compile_catalogs()


@pytest.fixture(autouse=True)
def _dispatch_off(settings):
    """Cases stay where the test puts them unless a test starts the worker (dbos_worker)."""
    settings.CLOSEOUT_DISPATCH = False



class Visitor:
    """A browser-like client that records every URL it was sent to."""

    def __init__(self, client: Client, language: str = "en"):
        self.client, self.language, self.urls = client, language, []

    def url(self, path: str) -> str:
        return f"/{self.language}/{path}"

    def get(self, path, **kw):
        return self._follow(self.client.get(self.url(path), **kw), self.url(path))

    def post(self, path, data, **kw):
        return self._follow(self.client.post(self.url(path), data, **kw), self.url(path))

    def _follow(self, response, url):
        self.urls.append(url)
        while response.status_code in (301, 302):
            url = response["Location"]
            self.urls.append(url)
            response = self.client.get(url)
        response.final_url = url
        return response

    def sign_in(self, card, channel="sms", id_number=HKID):
        before = SimSmsMessage.objects.count()
        response = self.post("", {"card_number": card.number, "id_type": "hkid", "id_number": id_number,
                                  "channel": channel})
        assert response.final_url == self.url("code/")
        messages = list(SimSmsMessage.objects.order_by("id")[before:])
        if messages:
            code = re.search(r"\d{6}", messages[-1].body)[0]
            return self.post("code/", {"code": code})
        return response


@pytest.fixture
def visitor(client):
    return Visitor(client)


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_a_customer_typing_full_width_characters_signs_in_and_closes(make_card, client):
    """Chinese keyboards type "８１０３…" and "Ａ１２３４５６（３）": read as the ASCII forms."""
    visitor = Visitor(client, "zh-hant")
    card = make_card("YKT", balance=45000)
    grouped = "\u3000".join(card.number[i:i + 4] for i in range(0, 16, 4))  # ideographic spaces
    response = visitor.post("", {"card_number": _full_width(grouped), "id_type": "hkid",
                                 "id_number": _full_width(HKID), "channel": "sms"})
    assert response.final_url == visitor.url("code/"), response.content.decode()[:2000]
    code = re.search(r"\d{6}", SimSmsMessage.objects.order_by("-id").first().body)[0]
    assert visitor.post("code/", {"code": _full_width(code)}).final_url == visitor.url("account/")

    visitor.post("quote/", {"destination": "ewallet", "wallet_provider": "payme",
                            "wallet_id": _full_width("98765432"), "consent": "on"})

    case = ClosureCase.objects.get(card=card)
    assert case.refund_destination["wallet_masked"] == "••••5432"


@pytest.mark.parametrize("language,heading", [("zh-hans", "找不到页面"), ("zh-hant", "找不到頁面"),
                                              ("en", "Page not found")])
def test_a_wrong_address_gets_a_page_in_the_readers_language_with_a_way_back(client, language, heading):
    response = client.get(f"/{language}/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404 and heading in page and f'href="/{language}/"' in page
    # Each language is offered in its own words.
    assert ">简体中文</button>" in page and ">繁體中文</button>" in page and ">English</button>" in page


def test_the_root_picks_the_language_from_accept_language(client):
    assert client.get("/", HTTP_ACCEPT_LANGUAGE="zh-TW,zh;q=0.9")["Location"] == "/zh-hant/"
    assert client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")["Location"] == "/zh-hans/"
    assert client.get("/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")["Location"] == "/en/"


def test_a_customer_pays_the_fees_then_closes_the_card_and_gets_a_receipt(visitor, make_card, settings):
    card = make_card("YKT", balance=45000, charges=[("overdraft", 1500)])

    account = visitor.sign_in(card)
    assert account.final_url == "/en/account/"
    assert "Overdraft" in account.content.decode() and "negative value after the last ride" in account.content.decode()
    assert visitor.get("quote/").final_url == "/en/account/"  # cannot skip the fees

    paid = visitor.post("account/pay/", {})
    visitor.post("account/pay/", {})  # a second click pays nothing more
    assert "Payment of CN¥15.00 received" in paid.content.decode()
    assert [(p.amount_minor, p.status) for p in SimPayment.objects.all()] == [(1500, "succeeded")]
    assert CardCharge.objects.get(card=card).settled_how == "paid"

    quote = visitor.get("quote/")
    assert "CN¥470.00" in quote.content.decode()  # ¥450 balance + ¥20 deposit, no fees
    done = visitor.post("quote/", {"destination": "bank", "bank_code": "012", "account_number": "0123-4567-8901",
                                   "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    assert done.final_url == f"/en/case/{case.reference}/"
    page = done.content.decode()
    assert 'id="receipt"' in page and case.reference in page and "••••8901" in page
    assert case.refund_destination == {"type": "bank", "bank_code": "012", "account_masked": "••••8901"}
    assert "0123456789" not in str(ClosureCase.objects.filter(id=case.id).values().get())
    assert sorted(Notice.objects.filter(case=case, template="receipt").values_list("channel", flat=True)) == [
        "email", "sms"]
    assert 'id="receipt"' not in visitor.get(f"case/{case.reference}/").content.decode()  # shown once


def test_closure_cannot_be_submitted_while_fees_are_open(visitor, make_card):
    card = make_card("YKT", charges=[("unpaid_fee", 3000)])
    visitor.sign_in(card)
    response = visitor.post("quote/", {"destination": "original", "consent": "on"})
    assert response.final_url == "/en/account/"
    assert not ClosureCase.objects.exists()


def test_a_declined_payment_settles_nothing(visitor, make_card):
    card = make_card("YKT", charges=[("overdraft", 800)])
    visitor.sign_in(card)
    SimFault.objects.create(system="payments", operation="pay", mode="decline")
    response = visitor.post("account/pay/", {})
    assert "The payment was declined" in response.content.decode()
    assert CardCharge.objects.get(card=card).settled_at is None


def test_after_a_decline_the_customer_can_pay_again_and_is_charged_once(visitor, make_card):
    card = make_card("YKT", charges=[("overdraft", 800)])
    visitor.sign_in(card)
    SimFault.objects.create(system="payments", operation="pay", mode="decline", remaining=1)
    assert "The payment was declined" in visitor.post("account/pay/", {}).content.decode()
    visitor.post("account/pay/", {})
    visitor.post("account/pay/", {})  # a reload after paying: nothing left to pay
    assert CardCharge.objects.get(card=card).settled_how == "paid"
    assert sorted(SimPayment.objects.values_list("status", flat=True)) == ["failed", "succeeded"]


def test_a_decline_replayed_to_a_second_click_counts_once_so_the_next_try_has_one_key(make_card):
    from closeout.audit.models import AuditEvent
    from closeout.common.money import Money
    from closeout.portal import services as portal

    card = make_card("YKT", charges=[("overdraft", 800)])
    first_key = f"charges:{card.id}:{CardCharge.objects.get(card=card).id}"
    SimFault.objects.create(system="payments", operation="pay", mode="decline", remaining=1)
    with pytest.raises(portal.PaymentDeclined):
        portal.card_charges_pay(card=card, actor="customer:web")
    # A second click sent before that decline was written asked with the same key: the provider
    # replays the decline, and it is written once.
    with pytest.raises(portal.PaymentDeclined):
        portal._declined(card, "customer:web", first_key, first_key, Money(800, "CNY"), "card declined")
    assert AuditEvent.objects.filter(action=portal.DECLINED).count() == 1

    portal.card_charges_pay(card=card, actor="customer:web")
    assert SimPayment.objects.get(status="succeeded").idempotency_key == f"{first_key}:2"


def test_a_payment_whose_answer_was_lost_is_retried_with_the_same_key_and_taken_once(visitor, make_card):
    card = make_card("YKT", charges=[("overdraft", 800)])
    visitor.sign_in(card)
    SimFault.objects.create(system="payments", operation="pay", mode="timeout", remaining=1)
    visitor.post("account/pay/", {})
    payment = SimPayment.objects.get()
    assert payment.request_count == 2 and CardCharge.objects.get(card=card).settled_how == "paid"


def test_submitting_twice_opens_one_case_and_shows_it(visitor, make_card):
    card = make_card("YKT")
    visitor.sign_in(card)
    first = visitor.post("quote/", {"destination": "original", "consent": "on"})
    second = visitor.post("quote/", {"destination": "original", "consent": "on"})
    assert ClosureCase.objects.count() == 1
    assert first.final_url == second.final_url
    assert "already has a closure request" in second.content.decode()


def test_consent_is_never_pre_ticked_and_is_required(visitor, make_card):
    card = make_card("YKT")
    visitor.sign_in(card)
    page = visitor.get("quote/").content.decode()
    consent = re.search(r'<input[^>]*name="consent"[^>]*>', page)[0]
    assert "checked" not in consent
    response = visitor.post("quote/", {"destination": "original"})
    assert "Please confirm that you want to close this card." in response.content.decode()
    assert not ClosureCase.objects.exists()


@pytest.mark.parametrize(("fields", "message"), [
    ({"destination": "bank", "bank_code": "12", "account_number": "0123456789"}, "3-digit bank code"),
    ({"destination": "bank", "bank_code": "012", "account_number": "12-34"}, "6 to 34 letters or digits"),
    ({"destination": "bank", "bank_code": "HSBCHKHH", "account_number": "GB82WEST12345698765433"},
     "6 to 34 letters or digits"),  # IBAN with a wrong check
    ({"destination": "ewallet", "wallet_provider": "payme", "wallet_id": "ab"}, "3 to 64 characters"),
])
def test_a_malformed_refund_destination_is_a_form_error(visitor, make_card, fields, message):
    card = make_card("YKT")
    visitor.sign_in(card)
    response = visitor.post("quote/", {**fields, "consent": "on"})
    assert response.status_code == 200 and message in response.content.decode()
    assert not ClosureCase.objects.exists()


@pytest.mark.parametrize("language,words", [("zh-hant", "天內投入任何郵筒"), ("zh-hans", "天内投入任何邮筒")])
def test_a_chinese_return_label_prints_the_address_tracking_and_numbers_too(make_card, client, language, words):
    """The Chinese font has no Latin letters: the address, the numbers and the tracking number are
    set in a Latin font beside it, so the label can be posted."""
    from pypdf import PdfReader

    from closeout.closures import workflow
    from closeout.returns.models import ReturnLabel
    from tests.integration.test_console_support import case_in_state

    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    case.refresh_from_db()
    workflow.ACTIONS["return_label"](case.reference, case.next_action_id)
    visitor = Visitor(client, language)
    visitor.sign_in(card)
    pdf = visitor.client.get(f"/{language}/case/{case.reference}/return-label.pdf").content
    drawn = []  # (text, font) as the PDF sets them
    for page in PdfReader(io.BytesIO(pdf)).pages:
        page.extract_text(visitor_text=lambda text, cm, tm, font, size: drawn.append(
            (text, str((font or {}).get("/BaseFont", "")))))
    latin = "".join(text for text, font in drawn if "Helvetica" in font)
    flat = "".join("".join(text for text, _ in drawn).split())
    tracking = ReturnLabel.objects.get(case=case).tracking_ref
    for printed in ("Kwun Tong, Hong Kong", "Freepost RTRN-CLOS", case.reference, tracking, "30", "5."):
        assert printed in latin, printed  # in a font that has Latin glyphs
    assert words in flat
    status = visitor.get(f"case/{case.reference}/").content.decode()
    assert 'id="tracking"' in status and tracking in status  # the customer can follow the parcel


def test_the_status_page_shows_the_timeline_and_what_to_do_for_a_physical_card(visitor, make_card):
    card = make_card("OCTO", balance=12000, days_old=30)
    visitor.sign_in(card)
    visitor.post("quote/", {"destination": "original", "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    page = visitor.get(f"case/{case.reference}/").content.decode()
    steps = re.findall(r'data-state="(\w+)"', page.split('id="timeline"')[1])
    assert steps == ["submitted", "verified", "settled", "awaiting_return", "returned", "refund_pending",
                     "refunded", "deactivating", "closed"]
    assert 'aria-current="step"' in page and "Withdraw my request" in page
    assert "Download the prepaid return label" in page

    pdf = visitor.client.get(f"/en/case/{case.reference}/return-label.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    text = _pdf_text(pdf.content)
    assert case.reference.encode() in text
    # The barcode carries the label code the warehouse scans, and the scan finds this case.
    from closeout.returns import services as returns
    from closeout.returns.models import ReturnLabel

    code = ReturnLabel.objects.get(case=case).code
    assert code.encode() in text
    assert returns.return_check_in(code=code, actor="staff:wh").case_id == case.id


def test_a_card_to_post_back_is_promised_days_after_it_arrives_not_a_date_before(visitor, make_card):
    card = make_card("OCTO", balance=12000, days_old=30)
    visitor.sign_in(card)
    quote = visitor.get("quote/").content.decode()
    assert "working days after we receive your card" in quote

    page = visitor.post("quote/", {"destination": "original", "consent": "on"}).content.decode()
    case = ClosureCase.objects.get(card=card)

    assert 'id="todo-post"' in page and 'id="todo-nothing"' not in page  # post it now: the label is ready
    assert "working days after we receive your card" in page.split('id="receipt"')[1].split("</section>")[0]
    timeline = page.split('id="timeline"')[1]
    return_by = timezone.localdate(closures.return_deadline(case.created_at, card.product.calendar))
    awaiting = timeline.split('data-state="awaiting_return"')[1].split('data-state="returned"')[0]
    assert f"post the card by {date_format(return_by, 'DATE_FORMAT')}" in strip_tags(awaiting)  # not "by today"
    after = timeline.split('data-state="returned"')[1]
    assert "expected by" not in after  # nothing from the card's arrival on is promised before it arrives
    # Still so once the case waits for the card (the step has started: its time, and the deadline).
    ClosureCase.objects.filter(id=case.id).update(state="awaiting_return")
    case.events.create(key="test:awaiting", at=case.created_at, actor="system", from_state="settled",
                       to_state="awaiting_return", note="waiting for the card")
    timeline = visitor.get(f"case/{case.reference}/").content.decode().split('id="timeline"')[1]
    awaiting = timeline.split('data-state="awaiting_return"')[1].split('data-state="returned"')[0]
    assert "<time" in awaiting and f"post the card by {date_format(return_by, 'DATE_FORMAT')}" in strip_tags(awaiting)
    assert "expected by" not in timeline.split('data-state="returned"')[1]


def _pdf_text(pdf: bytes) -> bytes:
    """The page content streams of a ReportLab PDF (ASCII85 + Flate), concatenated."""
    out = b""
    for raw in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            out += zlib.decompress(base64.a85decode(raw.strip(), adobe=True))
        except (ValueError, zlib.error):
            continue
    return out


def test_a_request_withdrawn_while_waiting_for_the_card_does_not_show_the_card_as_done(visitor, make_card):
    from tests.integration.test_console_support import case_in_state

    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return", actor="customer:web")
    visitor.sign_in(card)
    visitor.post(f"case/{case.reference}/withdraw/", {})
    page = visitor.get(f"case/{case.reference}/").content.decode()
    shown = re.findall(r'<li class="step (\w+)" data-state="(\w+)"', page)
    assert shown == [("done", "submitted"), ("done", "verified"), ("done", "settled"), ("stopped", "withdrawn")]


@pytest.mark.parametrize("destination,words", [
    ({"destination": "original", "consent": "on"}, "Larger refunds are checked"),
    ({"destination": "bank", "bank_code": "004", "account_number": "0123456789", "consent": "on"},
     "Refunds to an account other than the original payment method"),
])
def test_the_status_page_says_why_a_refund_waits_for_a_second_person(visitor, make_card, destination, words):
    card = make_card("YKT", balance=150000)  # above the product's approval threshold
    visitor.sign_in(card)
    visitor.post("quote/", destination)
    case = ClosureCase.objects.get(card=card)
    closures.closure_verify(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    closures.closure_settle(reference=case.reference, workflow_id=case.next_action_id)
    page = visitor.get(f"case/{case.reference}/").content.decode()
    assert words in page and page.count('id="approval-waiting"') == 1


def test_a_customer_can_withdraw_before_the_refund_but_not_after(visitor, make_card):
    card = make_card("YKT")
    visitor.sign_in(card)
    visitor.post("quote/", {"destination": "original", "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    response = visitor.post(f"case/{case.reference}/withdraw/", {})
    case.refresh_from_db()
    card.refresh_from_db()
    assert case.state == states.WITHDRAWN and card.status == "active"
    assert "Your request was withdrawn" in response.content.decode()
    assert Notice.objects.filter(case=case, template="withdrawn").count() == 2

    visitor.post("quote/", {"destination": "original", "consent": "on"})
    second = ClosureCase.objects.exclude(id=case.id).get()
    ClosureCase.objects.filter(id=second.id).update(state=states.REFUND_PENDING)
    response = visitor.post(f"case/{second.reference}/withdraw/", {})
    assert "can no longer be withdrawn" in response.content.decode()
    assert ClosureCase.objects.get(id=second.id).state == states.REFUND_PENDING


def test_another_cards_case_is_not_found(visitor, make_card, client):
    mine, theirs = make_card("YKT"), make_card("YKT")
    other = Visitor(Client())
    other.sign_in(theirs)
    other.post("quote/", {"destination": "original", "consent": "on"})
    reference = ClosureCase.objects.get(card=theirs).reference
    visitor.sign_in(mine)
    assert visitor.client.get(f"/en/case/{reference}/").status_code == 404
    assert visitor.client.get(f"/en/case/{reference}/return-label.pdf").status_code == 404
    assert visitor.client.post(f"/en/case/{reference}/withdraw/").status_code == 404


def test_pages_behind_sign_in_send_you_to_sign_in(client):
    for path in ("account/", "quote/", "case/CL-2026-000001/"):
        assert client.get(f"/en/{path}")["Location"] == "/en/"


def test_no_personal_data_ever_appears_in_a_url(visitor, make_card):
    card = make_card("OCTO", charges=[("overdraft", 500)], email="mei.tanaka@example.test", phone="+85261234567")
    visitor.sign_in(card)
    visitor.post("account/pay/", {})
    visitor.post("quote/", {"destination": "bank", "bank_code": "004", "account_number": "987654321012",
                            "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    visitor.get(f"case/{case.reference}/")
    visitor.post("check/", {"card_number": card.number})
    secrets = [card.number, card.number[-8:], HKID, "A123456", "mei.tanaka", "61234567", "987654321012"]
    assert visitor.urls and not [u for u in visitor.urls for s in secrets if s in u]


def test_every_form_needs_its_csrf_token(make_card):
    card = make_card("YKT")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/zh-hant/", {"card_number": card.number, "id_type": "hkid", "id_number": HKID,
                                         "channel": "sms"})
    assert response.status_code == 403 and "請重試" in response.content.decode()
    assert not SimSmsMessage.objects.exists()
    page = strict.get("/en/").content.decode()
    assert page.count("<form") == page.count('name="csrfmiddlewaretoken"') >= 2


def test_the_session_cookie_is_http_only_and_secure_when_configured(make_card, settings):
    settings.SESSION_COOKIE_SECURE = True
    card = make_card("YKT")
    visitor = Visitor(Client())
    visitor.sign_in(card)
    cookie = visitor.client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"


def test_signed_in_pages_are_not_cached(visitor, make_card):
    card = make_card("YKT")
    visitor.sign_in(card)
    response = visitor.client.get("/en/quote/")
    assert "no-store" in response["Cache-Control"]


def test_the_calculator_explains_the_policy_without_any_balance(client, make_card):
    card = make_card("OCTO", balance=98765)
    page = client.post("/en/check/", {"card_number": card.number}, follow=True).content.decode()
    assert "Stored-value card" in page and "HK$50.00 is refunded" in page
    assert "Handling fee: HK$11.00, charged when the card is returned within 90 days of issue" in page
    assert "987.65" not in page and "98,765" not in page
    sim = client.post("/zh-hans/check/", {"card_number": "8985201000000000001"}, follow=True).content.decode()
    assert "远游卡" in sim and "按比例退款" in sim and "10%" in sim
    bad = client.post("/en/check/", {"card_number": "8101000000000002"}, follow=True).content.decode()
    assert 'id="id_card_number_error">This card number is not valid' in bad and 'id="policy"' not in bad


@pytest.mark.parametrize("language,words", [("en", "you delete the eSIM from your phone"),
                                            ("zh-hant", "請從手機刪除 eSIM"), ("zh-hans", "请从手机删除 eSIM")])
def test_the_calculator_tells_an_esim_holder_the_phone_must_delete_it(client, make_card, language, words):
    esim = make_card("ESIM", physical=False)
    page = client.post(f"/{language}/check/", {"card_number": esim.number}, follow=True).content.decode()
    assert 'id="esim-delete"' in page and words in page
    sim = client.post(f"/{language}/check/", {"card_number": make_card("TSIM").number}, follow=True).content.decode()
    assert 'id="esim-delete"' not in sim


def test_a_sim_quote_shows_the_remaining_plan_and_its_pro_rata_refund(visitor, make_card):
    card = make_card("TSIM", balance=0, plan_days_left=15)
    visitor.sign_in(card)
    page = visitor.get("quote/").content.decode()
    # HK$300 for 30 days; the day under way is not counted, so 14 whole days are left:
    # HK$140 unused, 10% administration fee HK$14, refund HK$126.
    assert "14 of 30 days left" in page and "10.0 GB data left" in page
    assert "HK$140.00" in page and "−HK$14.00" in page and 'id="refund-amount">HK$126.00' in page


def test_with_nothing_to_refund_no_destination_or_zero_fee_is_asked_for(visitor, make_card):
    card = make_card("TSIM", balance=0, plan_days_left=0)
    visitor.sign_in(card)
    page = visitor.get("quote/").content.decode()

    assert 'id="refund-amount">HK$0.00' in page and 'id="no-refund"' in page
    assert 'name="destination" value="bank"' not in page and "Plan administration fee" not in page

    visitor.post("quote/", {"destination": "original", "consent": "on"})
    assert ClosureCase.objects.get(card=card).refund_destination == {"type": "original"}


def test_chinese_pages_put_a_full_width_colon_after_a_label(visitor, make_card, client):
    card = make_card("OCTO", balance=12000, days_old=30)
    visitor.sign_in(card)
    visitor.post("quote/", {"destination": "original", "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    chinese = Visitor(client, "zh-hant").get(f"case/{case.reference}/").content.decode()
    english = visitor.get(f"case/{case.reference}/").content.decode()
    assert "狀態：<strong>" in chinese and "客戶服務（電話／電郵／網上客服）：" in chinese
    assert "Status: <strong>" in english


@pytest.mark.parametrize("language,empty,long", [
    ("zh-hans", "请填写此项。", "内容太长：最多 40 个字符。"),
    ("zh-hant", "請填寫此項。", "內容太長：最多 40 個字元。"),
    ("en", "Please fill in this field.", "This is too long: at most 40 characters."),
])
def test_empty_and_over_long_fields_get_a_plain_message_in_the_page_language(client, language, empty, long):
    page = client.post(f"/{language}/", {"card_number": "", "id_type": "hkid", "id_number": "A" * 5000,
                                         "channel": "sms"}, follow=True).content.decode()
    assert empty in page and long in page
    assert "变量" not in page and "Ensure this value" not in page


def test_sentences_follow_a_chinese_full_stop_without_a_space(make_card, client):
    visitor = Visitor(client, "zh-hant")
    visitor.sign_in(make_card("OCTO", balance=12000, days_old=30))
    expected = visitor.get("quote/").content.decode().split('id="expected">')[1].split("</p>")[0]
    assert "。 " not in expected and expected.count("。") == 2


@pytest.mark.parametrize("channels,says", [(["phone", "branch"], "close it at one of our branch counters"),
                                           (["phone"], "Please call us.")])
def test_a_product_not_closed_online_says_how_else_and_takes_no_request(visitor, make_card, channels, says):
    card = make_card("YKT", balance=5000)
    card.product.allowed_channels = channels
    card.product.save()

    page = visitor.sign_in(card).content.decode()
    assert "cannot be closed online" in page and says in page and 'id="to-quote"' not in page
    response = visitor.post("quote/", {"destination": "original", "consent": "on"})

    assert response.final_url == "/en/account/"
    assert not ClosureCase.objects.exists()



def _slot_on(page: str, day) -> str:
    return re.search(rf'name="starts_at" value="({day.isoformat()}T[^"]+)"', page)[1]


def test_a_customer_books_a_branch_visit_moves_it_and_cancels_it(visitor, make_card, branch):
    from closeout.appointments.models import Appointment
    from tests.integration.test_console_support import local, next_working_day

    card = make_card("YKT", balance=5000)
    account = visitor.sign_in(card).content.decode()
    assert 'id="to-branch"' in account
    day = next_working_day()

    page = visitor.get(f"branch/?branch=HK-CEN&day={day.isoformat()}").content.decode()
    assert "Central" in page and f'data-slot="{local(day, 9).isoformat()}"' in page
    booked = visitor.post("branch/", {"branch": "HK-CEN", "starts_at": local(day, 10).isoformat()})

    assert booked.final_url == "/en/account/"
    text = booked.content.decode()
    assert "Your appointment is booked" in text and "Change or cancel it" in text
    appointment = Appointment.objects.get(card=card, status="BOOKED")
    assert (appointment.starts_at, appointment.booked_by, appointment.language) == (local(day, 10), "customer:web", "en")
    assert Notice.objects.filter(template="appointment_booked", card=card).count() == 2  # email and SMS

    visitor.post("branch/", {"branch": "HK-CEN", "starts_at": local(day, 11).isoformat()})
    assert list(Appointment.objects.filter(card=card).values_list("starts_at", "status")) == [
        (local(day, 11), "BOOKED")]  # moved, not booked twice

    visitor.post("branch/", {"action": "cancel"})
    assert Appointment.objects.get(card=card).status == "CANCELLED"
    assert 'id="to-branch"' in visitor.get("account/").content.decode()


def test_a_time_taken_meanwhile_is_explained_and_nothing_changes(visitor, make_card, branch):
    from closeout.appointments import services as appointments
    from closeout.appointments.models import Appointment
    from tests.integration.test_console_support import local, next_working_day

    day = next_working_day()
    for _ in range(2):  # both counters
        appointments.appointment_book(card=make_card("YKT"), branch=branch, starts_at=local(day, 10), actor="staff:a")
    card = make_card("YKT", balance=5000)
    visitor.sign_in(card)

    for starts_at, says in ((local(day, 10).isoformat(), "was just taken"), ("yesterday", "times listed"),
                            (local(day, 10, 10).isoformat(), "times listed"), (local(day, 20).isoformat(), "closed")):
        page = visitor.post("branch/", {"branch": "HK-CEN", "starts_at": starts_at}).content.decode()
        assert says in page
    assert not Appointment.objects.filter(card=card).exists()


def test_the_branch_page_speaks_the_customers_language(client, make_card, branch):
    from tests.integration.test_console_support import next_working_day

    visitor = Visitor(client, "zh-hant")
    card = make_card("YKT", balance=5000)
    visitor.sign_in(card)
    day = next_working_day()

    page = visitor.get(f"branch/?day={day.isoformat()}").content.decode()

    assert "中環客務中心" in page and "Close your card at a branch" not in page
    assert _slot_on(page, day)


def test_a_booking_raced_from_another_tab_is_explained(visitor, make_card, branch, monkeypatch):
    from closeout.appointments import services as appointments
    from tests.integration.test_console_support import local, next_working_day

    card = make_card("YKT", balance=5000)
    visitor.sign_in(card)

    def booked_meanwhile(**kwargs):
        raise appointments.CardAlreadyBooked("this card already has an appointment")

    monkeypatch.setattr(appointments, "appointment_book", booked_meanwhile)
    page = visitor.post("branch/", {"branch": "HK-CEN", "starts_at": local(next_working_day(), 10).isoformat()})

    assert "already has an appointment" in page.content.decode()


def _esim_waiting_for_deletion(case: ClosureCase) -> ClosureCase:
    """Take a submitted eSIM case through the worker's steps to the SM-DP+ refusing the release
    because the profile is still on the phone."""
    from closeout.integrations.smdp import port as smdp

    reference = case.reference
    closures.closure_verify(reference=reference, workflow_id=case.next_action_id)
    closures.closure_settle(reference=reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    closures.refund_record(reference=reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id,
                           result={"status": "succeeded", "provider_ref": "re_test"})
    closures.closure_deactivated(reference=reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id,
                                 result={})
    closures.esim_release_record(reference=reference,
                                 workflow_id=ClosureCase.objects.get(id=case.id).next_action_id,
                                 result={"status": smdp.FAILED, "reason_code": smdp.REASON_INSTALLED})
    case = ClosureCase.objects.get(id=case.id)
    assert case.state == states.DEACTIVATING and case.deadline_at and not case.next_action
    return case


@pytest.mark.parametrize("language,words,sms_words", [
    ("en", "Delete the eSIM from your phone by", "delete the eSIM"),
    ("zh-hans", "前从手机删除 eSIM 配置文件", "删除 eSIM"),
    ("zh-hant", "前從手機刪除 eSIM 設定檔", "刪除 eSIM"),
])
def test_an_esim_still_on_the_phone_asks_the_customer_to_delete_it(make_card, client, language, words, sms_words):
    """The closure waits for the phone to report the profile deleted: the status page, an email
    and a text message tell the customer to do it, and by when; otherwise the wait runs out."""
    visitor = Visitor(client, language)
    card = make_card("ESIM", balance=0, plan_days_left=20, physical=False)
    visitor.sign_in(card)
    visitor.post("quote/", {"destination": "original", "consent": "on"})
    case = _esim_waiting_for_deletion(ClosureCase.objects.get(card=card))

    page = visitor.get(f"case/{case.reference}/").content.decode()
    todo = page.split('id="todo-title"')[1].split("</section>")[0]
    with translation.override(language):
        deadline = date_format(timezone.localdate(case.deadline_at), "DATE_FORMAT")
    assert 'id="todo-esim"' in todo and words in todo and deadline in todo
    assert 'id="todo-nothing"' not in todo

    notices = Notice.objects.filter(case=case, template="esim_delete_request")
    assert sorted(notices.values_list("channel", flat=True)) == ["email", "sms"]
    assert set(notices.values_list("language", flat=True)) == {language}
    text = SimSmsMessage.objects.order_by("-id").first().body
    assert sms_words in text and case.reference in text


@pytest.mark.parametrize("language,received,note,chat", [
    ("en", " (Hong Kong time)", "All times are Hong Kong time (UTC+8).", "09:00–21:00 every day (Hong Kong time)"),
    ("zh-hans", "（香港时间）", "所有时间均为香港时间（UTC+8）。", "09:00–21:00（香港时间）"),
    ("zh-hant", "（香港時間）", "所有時間均為香港時間（UTC+8）。", "09:00–21:00（香港時間）"),
])
def test_times_on_the_status_page_say_they_are_hong_kong_time(make_card, client, language, received, note, chat):
    """A traveller abroad reads "02:33" as their own time unless the page says whose clock it is."""
    visitor = Visitor(client, language)
    card = make_card("TSIM", balance=2000, plan_days_left=10)
    visitor.sign_in(card)
    page = visitor.post("quote/", {"destination": "original", "consent": "on"}).content.decode()
    case = ClosureCase.objects.get(card=card)
    with translation.override(language):
        at = date_format(timezone.localtime(case.created_at), "DATETIME_FORMAT")
    receipt = page.split('id="receipt"')[1].split("</section>")[0]
    assert f"<dd>{at}{received}</dd>" in re.sub(r"</?span[^>]*>", "", receipt)  # a date kept on one line
    assert note in page.split('id="timeline"')[1] and chat in strip_tags(page)


def test_chinese_quotes_put_asides_in_full_width_brackets(make_card, client):
    """"剩餘 6 / 30 天; 剩餘數據 10.0 GB" between ASCII brackets reads as a typo in Chinese."""
    card = make_card("TSIM", balance=0, plan_days_left=15, charges=[("unpaid_fee", 300)])
    chinese = Visitor(client, "zh-hant")
    chinese.sign_in(card)
    account = chinese.get("account/").content.decode()
    assert re.search(r"<small>（[^<（）()]+）</small>", account.split('id="charges"')[1])
    assert "<small>(" not in account
    CardCharge.objects.filter(card=card).update(settled_at=timezone.now(), settled_how="waived")
    quote = chinese.get("quote/").content.decode()
    aside = quote.split('class="plan"')[1].split("</small>")[0]
    assert "剩餘 14 / 30 天；剩餘數據 10.0 GB）" in aside and "計劃<small>（" in quote
    assert "<small>(" not in quote and "; " not in aside

    english = Visitor(Client(), "en")
    english.sign_in(card)
    assert "Remaining plan<small> (14 of 30 days left; 10.0 GB data left)</small>" in \
        english.get("quote/").content.decode()


@pytest.mark.parametrize("stop", ["withdraw", "reject"])
def test_a_withdrawn_or_rejected_request_promises_no_refund(visitor, make_card, stop):
    """"Refund: HK$489.00 · Cash at a branch" under "Withdrawn" sent customers to a counter for
    money they were never going to get."""
    card = make_card("OCTO", balance=45000)
    visitor.sign_in(card)
    visitor.post("quote/", {"destination": "original", "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    assert 'id="refund-summary"' in visitor.get(f"case/{case.reference}/").content.decode()

    if stop == "withdraw":
        visitor.post(f"case/{case.reference}/withdraw/", {})
    else:
        closures.closure_reject(reference=case.reference, actor="staff:supervisor", reason="card reported stolen")
    page = visitor.get(f"case/{case.reference}/").content.decode()

    assert 'id="refund-summary"' not in page and "HK$" not in page.split("<main")[1]
    assert "Your card works as before." in page


@pytest.mark.parametrize("language,channel", [("zh-hant", "sms"), ("zh-hans", "email"), ("en", "sms")])
def test_the_code_page_hint_has_no_space_after_a_chinese_full_stop(make_card, client, language, channel):
    visitor = Visitor(client, language)
    card = make_card("TSIM", balance=2000)
    visitor.post("", {"card_number": card.number, "id_type": "hkid", "id_number": HKID, "channel": channel})
    hint = visitor.get("code/").content.decode().split('id="code-hint">')[1].split("</p>")[0]
    if language == "en":
        assert ". The code is valid" in hint
    else:
        # A SIM's code sent by SMS also went by email: one sentence more says why.
        assert "。 " not in hint and hint.count("。") == (3 if channel == "sms" else 2)


def test_the_branch_page_reads_two_weeks_in_as_many_queries_as_two_days(visitor, make_card, branch, monkeypatch):
    """Opening hours, counters and bookings are read once for all the days the page lists, not
    once a day."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from closeout.appointments import services as appointments
    from closeout.portal import selectors as portal_selectors
    from tests.integration.test_console_support import local, next_working_day

    day = next_working_day()
    for _ in range(2):  # both counters: that slot is not offered
        appointments.appointment_book(card=make_card("YKT"), branch=branch, starts_at=local(day, 10), actor="staff:a")
    visitor.sign_in(make_card("YKT", balance=5000))

    def shown(days: int) -> tuple[int, str]:
        monkeypatch.setattr(portal_selectors, "BOOKING_DAYS", days)
        with CaptureQueriesContext(connection) as queries:
            page = visitor.get(f"branch/?branch=HK-CEN&day={day.isoformat()}")
        assert page.status_code == 200
        return len(queries), page.content.decode()

    shown(1)  # the session settles
    few, _ = shown(2)
    many, page = shown(14)
    assert many == few
    assert _slot_on(page, day) and f'value="{local(day, 10).isoformat()}"' not in page
    assert f'value="{local(day, 10, 30).isoformat()}"' in page


@pytest.mark.parametrize("language,expected", [
    ("en", ["by SMS to the phone number on file and to the email address on file",
            "the SIM you are closing may no longer be in your phone"]),
    ("zh-hans", ["SIM 卡可能已不在手机中"]),
    ("zh-hant", ["SIM 卡可能已不在手機內"]),
])
def test_a_travel_sims_code_goes_by_email_too_and_the_code_page_says_so(make_card, client, language, expected):
    """The phone on file may be the SIM being closed: the code also goes to the email address."""
    visitor = Visitor(client, language)
    card = make_card("TSIM", balance=2000)
    visitor.post("", {"card_number": card.number, "id_type": "hkid", "id_number": HKID, "channel": "sms"})
    hint = visitor.get("code/").content.decode().split('id="code-hint">')[1].split("</p>")[0]

    assert sorted(Notice.objects.filter(template="otp", card=card).values_list("channel", flat=True)) == [
        "email", "sms"]
    assert [words for words in expected if words not in hint] == []


def test_the_code_page_is_the_same_whether_or_not_the_details_matched_a_card(make_card, client):
    """Naming where the code went would tell a stranger that the ID number they tried is the
    holder's: the page reads the same either way, and names no contact."""
    card = make_card("TSIM", balance=2000)
    pages = []
    for id_number in (HKID, "C6681539"):  # the holder's, then a valid one that is not
        visitor = Visitor(Client(), "en")
        visitor.post("", {"card_number": card.number, "id_type": "hkid", "id_number": id_number, "channel": "sms"})
        page = visitor.get("code/").content.decode()
        pages.append(page.split('id="code-hint">')[1].split("</p>")[0])
    assert pages[0] == pages[1] and "•" not in pages[0]


def test_a_new_code_keeps_the_customer_on_the_code_page_of_the_same_sign_in(make_card, client):
    from datetime import timedelta
    from unittest import mock

    from closeout.common import clock

    visitor = Visitor(client, "zh-hant")
    card = make_card("YKT")
    visitor.post("", {"card_number": card.number, "id_type": "hkid", "id_number": HKID, "channel": "sms"})
    first_code = re.search(r"\d{6}", SimSmsMessage.objects.latest("id").body)[0]

    too_soon = visitor.post("code/new/", {})
    assert too_soon.final_url == visitor.url("code/") and "秒後可再次索取" in too_soon.content.decode()
    assert SimSmsMessage.objects.count() == 1

    with mock.patch("closeout.common.clock.now", return_value=clock.now() + timedelta(minutes=1)):
        page = visitor.post("code/new/", {})
    assert page.final_url == visitor.url("code/") and visitor.url("") not in visitor.urls[1:]
    assert "我們已向你發送新的驗證碼" in page.content.decode()
    assert 'id="id_card_number"' not in page.content.decode()  # nothing to type again
    new_code = re.search(r"\d{6}", SimSmsMessage.objects.latest("id").body)[0]
    assert SimSmsMessage.objects.count() == 2

    if new_code != first_code:  # the code sent before no longer works
        assert "驗證碼不正確" in visitor.post("code/", {"code": first_code}).content.decode()
    assert visitor.post("code/", {"code": new_code}).final_url == visitor.url("account/")


def _filled(page: str) -> dict:
    """The values a page's form fields show: text inputs, the checked radio or box, the selected option."""
    from html.parser import HTMLParser

    values: dict = {}

    class Fields(HTMLParser):
        select = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "input" and a.get("type") in ("radio", "checkbox"):
                if "checked" in a:
                    values[a["name"]] = a.get("value", "on")
            elif tag == "input" and a.get("name") and a.get("type") != "hidden":
                values[a["name"]] = a.get("value", "")
            elif tag == "select":
                self.select = a.get("name")
            elif tag == "option" and self.select and "selected" in a:
                values[self.select] = a.get("value")

        def handle_endtag(self, tag):
            if tag == "select":
                self.select = None

    Fields().feed(page.split("<main", 1)[1])
    return values


def _session_text(client) -> str:
    from django.contrib.sessions.models import Session

    return "".join(str(Session.objects.get(session_key=client.cookies["sessionid"].value).get_decoded().values()))


@pytest.mark.parametrize("path,data,shown", [
    ("", {"card_number": "8101 0000 0000 0002", "id_type": "hkid", "id_number": "Z9", "channel": "sms"},
     ["This card number is not valid", "This ID document number is not valid", 'value="Z9"']),
    ("check/", {"card_number": "8101000000000002"}, ["This card number is not valid", 'value="8101000000000002"']),
])
def test_a_refused_form_redirects_to_its_page_which_shows_the_errors_and_what_was_typed(client, path, data, shown):
    """Post/Redirect/Get on errors too: Back or reload never asks to send the form again."""
    response = client.post(f"/en/{path}", data)
    assert response.status_code == 302 and response["Location"] == f"/en/{path}"
    page = client.get(f"/en/{path}").content.decode()
    assert [words for words in shown if words not in page] == []
    again = client.get(f"/en/{path}").content.decode()  # shown once: a reload is a fresh page
    assert 'class="error"' not in again


def test_a_wrong_code_and_a_refused_quote_redirect_and_keep_no_id_or_account_number_in_clear(make_card, client):
    visitor = Visitor(client)
    card = make_card("YKT")
    client.post("/en/", {"card_number": card.number, "id_type": "hkid", "id_number": HKID, "channel": "sms"})
    wrong = client.post("/en/code/", {"code": "000000" if "000000" not in SimSmsMessage.objects.get().body
                                      else "111111"})
    assert wrong.status_code == 302 and wrong["Location"] == "/en/code/"
    assert 'id="code-error"' in client.get("/en/code/").content.decode()
    assert HKID not in _session_text(client) and card.number not in _session_text(client)

    visitor.sign_in(card)
    refused = client.post("/en/quote/", {"destination": "bank", "bank_code": "004",
                                         "account_number": "123456789001"})  # consent not ticked
    assert refused.status_code == 302 and refused["Location"] == "/en/quote/"
    assert "123456789001" not in _session_text(client)
    page = client.get("/en/quote/").content.decode()
    assert "Please confirm that you want to close this card." in page and 'value="123456789001"' in page


def test_the_code_page_leads_back_to_the_card_details_as_they_were_typed(make_card, client):
    visitor = Visitor(client, "zh-hans")
    card = make_card("YKT")
    visitor.post("", {"card_number": card.number, "id_type": "hkid", "id_number": HKID, "channel": "email"})
    code_page = visitor.get("code/").content.decode()
    assert 'href="/zh-hans/?back=1" id="back-to-sign-in"' in code_page and "返回卡片资料" in code_page

    home = _filled(visitor.get("?back=1").content.decode())
    assert home == {"card_number": card.number, "id_type": "hkid", "id_number": "", "channel": "email"}  # typed again
    assert card.number not in visitor.get("").content.decode()  # the next person at a shared device

    visitor.sign_in(card)  # signed in: the details are no longer kept
    assert card.number not in visitor.get("").content.decode()


def test_the_quote_page_leads_back_to_the_account_check_keeping_the_refund_destination(make_card, visitor):
    card = make_card("YKT")
    visitor.sign_in(card)
    back = visitor.post("quote/", {"destination": "ewallet", "wallet_provider": "payme", "wallet_id": "98765432",
                                   "consent": "on", "step": "back"})
    assert back.final_url == visitor.url("account/") and not ClosureCase.objects.exists()

    shown = _filled(visitor.get("quote/").content.decode())
    assert shown["destination"] == "ewallet" and shown["wallet_provider"] == "payme"
    assert shown["wallet_id"] == "98765432" and "consent" not in shown  # consent is given again
    visitor.post("quote/", {"destination": "ewallet", "wallet_provider": "payme", "wallet_id": "98765432",
                            "consent": "on"})
    assert ClosureCase.objects.get(card=card).refund_destination["wallet_masked"] == "••••5432"


def test_a_refused_booking_redirects_back_to_the_same_branch_and_day(visitor, make_card, branch):
    from closeout.appointments import services as appointments
    from tests.integration.test_console_support import local, next_working_day

    day = next_working_day()
    for _ in range(2):  # both counters
        appointments.appointment_book(card=make_card("YKT"), branch=branch, starts_at=local(day, 10), actor="staff:a")
    visitor.sign_in(make_card("YKT", balance=5000))

    response = visitor.client.post("/en/branch/", {"branch": "HK-CEN", "day": day.isoformat(),
                                                   "starts_at": local(day, 10).isoformat()})
    assert response.status_code == 302 and response["Location"] == f"/en/branch/?branch=HK-CEN&day={day.isoformat()}"
    page = visitor.client.get(response["Location"]).content.decode()
    assert "was just taken" in page and 'aria-current="date"' in page and _slot_on(page, day)
    assert "was just taken" not in visitor.client.get(response["Location"]).content.decode()
