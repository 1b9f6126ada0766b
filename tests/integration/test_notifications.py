"""Notices: email over real SMTP (an aiosmtpd server started here), SMS through the simulator,
in three languages, with the address kept only masked and hashed."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading

import pytest

from closeout.identity import vault
from closeout.integrations.models import SimFault
from closeout.integrations.sms.models import SimSmsMessage
from closeout.notifications import services as notices
from closeout.notifications.models import Notice

pytestmark = pytest.mark.django_db(transaction=True)  # notices leave on commit


class Inbox:
    """What an SMTP server received, parsed."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        assert len(self.messages) >= count, f"expected {count} emails, got {len(self.messages)}"
        return self.messages

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(message) -> str:
        return message.get_body(preferencelist=("html",)).get_content()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free local port; settings point Django's SMTP backend at it."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    try:
        yield inbox
    finally:
        controller.stop()


RECEIPT = {"reference": "CL-2026-000042", "refund": 16900, "currency": "HKD", "destination": "bank",
           "sla_due": "2026-12-09", "card_masked": "•••• 1234", "return_required": False, "working_days": 7}


@pytest.mark.parametrize(("language", "tag", "words", "amount", "day", "face"), [
    ("en", "en", "We received your request to close card", "HK$169.00", "Dec. 9, 2026", "system-ui,sans-serif"),
    ("zh-hans", "zh-Hans", "我们已收到您注销卡", "HK$169.00", "2026年12月9日", "'PingFang SC'"),
    ("zh-hant", "zh-Hant", "我們已收到你註銷卡", "HK$169.00", "2026年12月9日", "'PingFang HK'"),
])
def test_a_receipt_email_arrives_over_smtp_in_the_customers_language(smtp_server, language, tag, words, amount,
                                                                      day, face):
    notice = notices.notice_send(channel="email", to="Chan.Tai.Man@Example.test", template="receipt",
                                 language=language, context=RECEIPT)

    message = smtp_server.wait()[0]
    text, html = Inbox.text(message), Inbox.html(message)
    assert smtp_server.envelopes[0][1] == ["chan.tai.man@example.test"]
    assert "CL-2026-000042" in message["Subject"]
    for part in (text, html):
        assert words in part and amount in part and day in part and "CL-2026-000042" in part
    # The language as BCP 47 writes it ("zh-Hant", not "zh-hant"): mail readers pick the font and
    # screen readers the voice by it, for the HTML part and for the text part alike.
    assert f'<html lang="{tag}">' in html and message["Content-Language"] == tag
    assert text.rstrip().endswith(f"/{language}/")  # the link still opens the portal in that language
    # Set in a face of the reader's own script (a simplified face shows traditional text in
    # mainland glyph shapes); the figures are a data table read row by row, label first.
    assert face in html and ("'PingFang SC'" in html) is (language == "zh-hans")
    assert '<th scope="row" align="left">' in html and 'role="presentation" cellpadding="6"' not in html
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.sent_at is not None
    assert notice.to_masked == "c•••@example.test"
    assert notice.to_hash == vault.lookup_hash("email", "chan.tai.man@example.test")
    assert "tai.man" not in str(Notice.objects.values().get()).lower()
    assert notice.provider_ref == message["Message-ID"]


@pytest.mark.parametrize(("language", "destination", "expected"), [
    ("en", "HK$169.00 (bank account)", "within 7 working days after we receive your card"),
    ("zh-hant", "HK$169.00（銀行戶口）", "收到卡片後 7 個工作天內"),
])
def test_a_receipt_for_a_card_to_post_back_promises_days_after_it_arrives(smtp_server, language, destination,
                                                                           expected):
    notices.notice_send(channel="email", to="holder@example.test", template="receipt", language=language,
                        context={**RECEIPT, "return_required": True})

    message = smtp_server.wait()[0]
    text, html = Inbox.text(message), Inbox.html(message)
    assert expected in text and expected in html
    assert "2026" not in text.split(RECEIPT["reference"], 1)[1].split("\n\n")[0]  # no date promised
    assert destination in text  # on one line with the amount, not broken before the bracket
    sms = notices.render(Notice(channel="sms", template="receipt", language=language,
                                context={**RECEIPT, "return_required": True}), {})["text"]
    assert expected.replace("within ", "") in sms and "Dec" not in sms and "12月" not in sms  # as the email says


def test_an_sms_goes_through_the_simulator_and_is_listed_for_tests(client):
    notice = notices.notice_send(channel="sms", to="+852 9123 4567", template="otp", language="zh-hant",
                                 context={"minutes": 10}, secrets={"code": "493817"})

    listed = client.get("/sim/sms/messages").json()
    assert [m["to_masked"] for m in listed] == ["+852••••••67"]
    assert "493817" in listed[0]["body"] and "驗證碼" in listed[0]["body"]
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.provider_ref == listed[0]["message_ref"]
    assert "493817" not in str(Notice.objects.values().get())
    assert listed[0]["to_hash"] == vault.lookup_hash("phone", "+85291234567")


def test_a_notice_with_a_key_is_sent_once(smtp_server):
    first = notices.notice_send(channel="email", to="a@example.test", template="receipt", language="en",
                                context=RECEIPT, key="CL-2026-000042:receipt:email")
    second = notices.notice_send(channel="email", to="a@example.test", template="receipt", language="en",
                                 context=RECEIPT, key="CL-2026-000042:receipt:email")
    assert first.id == second.id
    smtp_server.wait(1)
    assert Notice.objects.count() == 1 and len(smtp_server.messages) == 1


def test_an_unreachable_smtp_server_marks_the_notice_failed_without_raising(settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port()
    notice = notices.notice_send(channel="email", to="someone@example.test", template="otp", language="en",
                                 context={"minutes": 10}, secrets={"code": "111222"})
    notice.refresh_from_db()
    assert notice.status == "failed" and notice.error == "ConnectionRefusedError"
    assert "someone@example.test" not in caplog.text and "111222" not in caplog.text
    with pytest.raises(notices.CannotResend):
        notices.notice_retry(notice=notice)


def test_a_failed_receipt_is_retried_to_the_holder_address_on_file(make_card, settings, smtp_server):
    card = make_card("YKT", email="holder@example.test")
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = _free_port()
    [email_notice, sms_notice] = notices.notice_send_holder(holder=card.holder, template="receipt", language="en",
                                                            context=RECEIPT, card=card)
    email_notice.refresh_from_db()
    assert email_notice.status == "failed"
    settings.EMAIL_PORT = good_port
    assert notices.notice_retry(notice=email_notice).status == "sent"
    assert smtp_server.wait()[0]["To"] == "holder@example.test"
    sms_notice.refresh_from_db()
    assert sms_notice.status == "sent"


def test_a_gateway_outage_marks_the_sms_failed_and_a_retry_sends_it_once(make_card):
    card = make_card("YKT")
    SimFault.objects.create(system="sms", operation="send", mode="error_5xx", remaining=1)
    [notice] = notices.notice_send_holder(holder=card.holder, template="receipt", language="en", context=RECEIPT,
                                          card=card, channels=("sms",))
    notice.refresh_from_db()
    assert notice.status == "failed" and SimSmsMessage.objects.count() == 0
    notices.notice_retry(notice=notice)
    notices.notice_retry(notice=notice)
    assert SimSmsMessage.objects.count() == 1


def test_bad_addresses_and_unknown_templates_are_refused():
    with pytest.raises(notices.InvalidAddress):
        notices.notice_send(channel="sms", to="12", template="otp", language="en")
    with pytest.raises(notices.UnknownTemplate):
        notices.notice_send(channel="email", to="a@example.test", template="marketing", language="en")


@pytest.mark.parametrize("language", ["en", "zh-hans", "zh-hant"])
@pytest.mark.parametrize("template", notices.TEMPLATES)
def test_every_template_renders_in_every_language_without_leftover_english(template, language):
    notice = Notice(channel="email", template=template, language=language, context=RECEIPT | {
        "minutes": 10, "amount": 500, "payment_ref": "py_1", "delete_by": "2026-12-10T02:00:00+00:00",
        "handed_back_at": "2026-12-10T02:00:00+00:00"})
    parts = notices.render(notice, {"code": "123456"})
    notice.channel = "sms"
    parts["sms"] = notices.render(notice, {"code": "123456"})["text"]
    assert all(parts.values())
    if language != "en":
        visible = re.sub(r"<[^>]+>|closeout|https?://\S+|CL-\d{4}-\d{6}|HK\$|py_1|\bGB\b|\beSIM\b", "",
                         parts["text"] + parts["sms"] + parts["subject"])
        assert not re.search(r"[A-Za-z]{4,}", visible), visible


def test_staff_can_resend_the_status_notice_in_the_case_language(make_card):
    from closeout.closures import services

    card = make_card("YKT", email="")
    case = services.closure_request(card=card, channel="web", requester="customer:web", language="zh-hans")
    [notice] = notices.notice_resend(reference=case.reference)
    body = SimSmsMessage.objects.get(idempotency_key=f"notice:{notice.id}").body
    assert case.reference in body and "已提交" in body


def test_the_closed_notice_promises_no_date_and_the_submitted_one_does(make_card):
    from closeout.closures import services
    from tests.aftercare_support import close_card

    open_case = services.closure_request(card=make_card("YKT", phone=""), channel="web", requester="customer:web")
    closed_case = close_card(make_card("YKT", phone=""))
    [submitted] = notices.notice_case_state(case=open_case, key="t:open")
    [closed] = notices.notice_case_state(case=closed_case, key="t:closed")

    assert "Expected completion" in notices.render(submitted, {})["text"]
    assert "Expected completion" not in notices.render(closed, {})["text"]


@pytest.mark.parametrize(("language", "words"), [("en", "Your card works as before"), ("zh-hant", "你的卡片可照常使用")])
def test_a_rejection_tells_the_customer_the_card_still_works(make_card, language, words):
    from closeout.closures import services

    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web", language=language)
    case.state = "rejected"
    email, sms = notices.notice_case_state(case=case, key="t:rejected")
    assert words in notices.render(email, {})["text"] and words in notices.render(email, {})["html"]
    assert words in notices.render(sms, {})["text"]


def test_an_appointment_reminder_is_sent_once_per_appointment_time(make_card, smtp_server):
    from datetime import UTC, datetime, timedelta

    from closeout.appointments.models import Appointment, Branch, Counter
    from closeout.common import clock

    card = make_card("OCTO", phone="")
    branch = Branch.objects.create(code="KT", name="Kwun Tong", name_zh_hant="觀塘客務中心", address="1 Hoi Yuen Rd")
    counter = Counter.objects.create(branch=branch, label="A")
    starts = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)  # 10:30 in Hong Kong
    appointment = Appointment.objects.create(branch=branch, counter=counter, card=card, starts_at=starts,
                                             ends_at=starts + timedelta(minutes=30), booked_by="customer:web",
                                             booked_at=clock.now(), language="zh-hant")
    notices.appointment_reminder_send(appointment_id=appointment.id)
    notices.appointment_reminder_send(appointment_id=appointment.id)
    [message] = smtp_server.wait(1)
    text = Inbox.text(message)
    assert "觀塘客務中心" in text and "2026年12月3日 10:30" in text and "身份證明文件" in text
    assert Notice.objects.filter(template="appointment_reminder").count() == 1


def test_every_channel_gets_one_receipt_in_the_case_language(dbos_worker, smtp_server, make_card, client):
    """A partner's API request, a phone call taken in the console and the portal each leave the
    holder one receipt, by email and SMS; the portal's is sent at once, the others as the case is
    verified, and the verify step does not send the portal's twice."""
    import json

    from closeout.api.keys import apikey_create
    from closeout.closures import services, states
    from closeout.closures.models import ClosureCase
    from closeout.portal.services import portal_closure_request
    from tests.fixtures import wait_for

    api_card, phone_card, web_card = make_card("YKT"), make_card("YKT"), make_card("YKT")
    response = client.post(
        "/api/v1/closures", content_type="application/json", HTTP_IDEMPOTENCY_KEY="receipt-1",
        HTTP_AUTHORIZATION=f"Bearer {apikey_create(name='partner-a')[1]}",
        data=json.dumps({"card_number": api_card.number, "holder_name": "陈大文",
                         "id_document": {"type": "hkid", "number": "A123456(3)"}, "channel": "partner_api",
                         "refund_destination": {"type": "original"}}))
    assert response.status_code == 201, response.content
    by_api = response.json()["reference"]
    by_phone = services.closure_request(card=phone_card, channel="phone", requester="staff:clerk",
                                        language="zh-hant").reference
    by_web = portal_closure_request(card=web_card, refund_destination={"type": "original"},
                                    language="zh-hans").reference
    assert Notice.objects.filter(case__reference=by_web, template="receipt").count() == 2  # before any step

    references = (by_api, by_phone, by_web)
    wait_for(lambda: ClosureCase.objects.filter(reference__in=references, state=states.CLOSED).count() == 3)
    subjects = [m["Subject"] for m in smtp_server.wait(9)]  # per case: receipt, refunded, closed; no stray fold
    assert f"We received your closure request {by_api}" in subjects
    assert f"我們已收到你的註銷申請 {by_phone}" in subjects
    for reference in references:
        receipts = Notice.objects.filter(case__reference=reference, template="receipt")
        assert sorted(receipts.values_list("channel", "status")) == [("email", "sent"), ("sms", "sent")]
        assert len([s for s in subjects if reference in s]) == 3
        assert len([m for m in SimSmsMessage.objects.all() if reference in m.body
                    and ("收到" in m.body or "received" in m.body)]) == 1


def test_a_stale_copy_of_a_sent_notice_is_not_sent_again(make_card, smtp_server):
    from django.db import transaction

    card = make_card("YKT", phone="")
    with transaction.atomic():
        [notice] = notices.notice_send_holder(holder=card.holder, template="status", card=card, key="CL-1:closed",
                                             context={"reference": "CL-1", "state": "closed"})
        stale = Notice.objects.get(id=notice.id)  # read before the delivery at commit
    smtp_server.wait(1)

    assert notice.status == "sent" and stale.status == "queued"
    assert notices.notice_retry(notice=stale).status == "sent"
    assert Notice.objects.get(id=notice.id).attempts == 1
    assert len(smtp_server.messages) == 1


def test_the_sweep_sends_again_what_a_relay_outage_left_failed_then_stops(make_card, smtp_server, settings):
    from datetime import timedelta

    from closeout.aftercare.retention import holder_shred
    from closeout.common import clock

    card, shredded = make_card("YKT", phone=""), make_card("YKT", phone="")
    relay = settings.EMAIL_PORT
    settings.EMAIL_PORT = _free_port()  # nothing listens there
    [notice] = notices.notice_send_holder(holder=card.holder, template="status", card=card, key="CL-1:closed",
                                         context={"reference": "CL-1", "state": "closed"})
    [gone] = notices.notice_send_holder(holder=shredded.holder, template="status", card=shredded, key="CL-2:closed",
                                       context={"reference": "CL-2", "state": "closed"})
    otp = notices.notice_send(channel="email", to="holder@example.test", template="otp", language="en", card=card,
                              secrets={"code": "123456"}, context={"minutes": 10})
    assert {n.status for n in Notice.objects.all()} == {"failed"}
    settings.EMAIL_PORT = relay
    holder_shred(holder_id=shredded.holder_id)
    start = notice.created_at

    assert notices.notices_retry_due(now=start + timedelta(minutes=6)) == 0  # a second attempt waits 10 minutes
    assert notices.notices_retry_due(now=start + timedelta(minutes=11)) == 1
    assert [m["Subject"] for m in smtp_server.wait(1)] == ["Closure request CL-1: status"]
    assert notices.notices_retry_due(now=start + timedelta(hours=1)) == 0
    assert Notice.objects.get(id=notice.id).status == "sent" and Notice.objects.get(id=otp.id).status == "failed"
    assert Notice.objects.get(id=gone.id).attempts == notices.NOTICE_ATTEMPTS  # given up, not tried each tick
    assert len(smtp_server.messages) == 1 and clock.now() < start + timedelta(minutes=6)


# What it holds (a notifier thread apart from the steps) does not depend on the database engine,
# and it waits 30 s for the relay's timeouts: the SQLite pass runs it.
@pytest.mark.sqlite_only
def test_a_mail_relay_that_stalls_holds_up_no_case(dbos_worker, make_card, settings):
    """The worker's notifier thread sends the notices its steps write: a relay that accepts the
    connection and never answers costs the case nothing; its notices fail after the timeout."""
    from closeout.closures import services, states
    from closeout.closures.models import ClosureCase
    from tests.fixtures import wait_for

    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)  # connections wait in the backlog: no greeting ever comes
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = stalled.getsockname()
    settings.EMAIL_TIMEOUT = 10
    try:
        case = services.closure_request(card=make_card("YKT"), channel="phone", requester="staff:clerk")
        # Three emails (receipt, refunded, closed) sent inside the steps would take 30 s.
        wait_for(lambda: ClosureCase.objects.get(id=case.id).state == states.CLOSED, timeout=12)
        # The text messages go out on their own thread, each a moment after its step.
        wait_for(lambda: Notice.objects.filter(case=case, channel="sms", status="sent").count() == 3, timeout=5)
        wait_for(lambda: Notice.objects.filter(case=case, channel="email", status="failed").count() == 3, timeout=45)
        # smtplib reads the greeting that never comes until the timeout, then gives up on the server.
        assert set(Notice.objects.filter(case=case, channel="email").values_list("error", flat=True)) == {
            "SMTPServerDisconnected"}
    finally:
        stalled.close()


@pytest.mark.parametrize(("language", "sms", "line"), [
    ("en", "Refunded HK$100.00 (e-wallet)", "Refund: HK$100.00 (e-wallet)"),
    ("zh-hant", "已退款 HK$100.00（電子錢包）", "退款：HK$100.00（電子錢包）"),
    ("zh-hans", "已退款 HK$100.00（电子钱包）", "退款：HK$100.00（电子钱包）"),
])
def test_the_refunded_notice_says_how_much_went_where(make_card, language, sms, line):
    """"Status: Refunded" alone left a traveller checking every account for an unknown amount."""
    from closeout.closures import services
    from tests.aftercare_support import run_to_end

    card = make_card("OCTO", balance=5000, days_old=400)  # and the HK$50 deposit
    case = services.closure_request(card=card, channel="web", requester="customer:web", language=language,
                                    refund_destination={"type": "ewallet", "provider": "payme",
                                                        "wallet_id": "98765432"})
    run_to_end(case.reference)

    [email_notice] = Notice.objects.filter(case=case, template="status", channel="email",
                                           context__state="refunded")
    text = notices.render(email_notice, {})["text"]
    assert line in text and "\n\n\n" not in text
    bodies = list(SimSmsMessage.objects.values_list("body", flat=True))
    assert any(case.reference in body and sms in body for body in bodies), bodies


def test_the_sweep_deletes_sessions_past_their_expiry_and_keeps_live_ones(client, make_card):
    """A portal session may hold what a customer typed into a refused form (sealed); it goes
    once it has expired, without anyone running `clearsessions`."""
    from datetime import timedelta

    from django.contrib.sessions.models import Session

    from closeout.closures import sweeper
    from closeout.common import clock

    client.post("/en/", {"card_number": make_card().number, "id_type": "hkid", "id_number": "", "channel": "sms"})
    live = Session.objects.get()
    Session.objects.create(session_key="x" * 32, session_data="", expire_date=clock.now() - timedelta(minutes=1))

    sweeper.sweep_once()

    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_staff_resending_after_an_outage_delivers_what_the_customer_missed_and_clears_the_given_up_count(
        client, make_card, settings):
    # The runbook sends staff to "Resend the notice" for notices given up during an outage. That
    # sent a fresh status notice: the receipt the customer never got stayed given up, and so did
    # closeout_notices_undelivered{status="given_up"}, whatever staff did.
    from closeout.closures import services
    from closeout.console import services as console

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # the relay is down
    case = services.closure_request(card=make_card("YKT", phone=""), channel="web", requester="customer:web")
    notices.notice_receipt(case=case)
    receipt = Notice.objects.get(case=case, template="receipt")
    Notice.objects.filter(id=receipt.id).update(attempts=notices.NOTICE_ATTEMPTS)  # its retries are spent

    def given_up() -> float:
        text = client.get("/metrics").content.decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("closeout_notices_undelivered{") and 'status="given_up"' in line)

    assert given_up() == 1

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the relay is back
    console.notice_resend(reference=case.reference, actor="staff:lee")

    receipt.refresh_from_db()
    assert receipt.status == "sent" and receipt.attempts == notices.NOTICE_ATTEMPTS + 1
    assert given_up() == 0
    assert not Notice.objects.filter(case=case, template="status").exists()  # what they missed, not more


def test_staff_resending_with_nothing_undelivered_sends_the_current_state_again(make_card, settings):
    from closeout.closures import services
    from closeout.console import services as console

    case = services.closure_request(card=make_card("YKT", phone=""), channel="web", requester="customer:web")
    console.notice_resend(reference=case.reference, actor="staff:lee")

    assert Notice.objects.get(case=case, template="status").status == "sent"
