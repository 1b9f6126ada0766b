"""The holder is told when the card kept for them goes back to them: posted back, with the
carrier's tracking reference, or collected at a branch counter, and on which day. Email over real
SMTP (the aiosmtpd server of the notice tests) and SMS through the simulator, in the case's
language, once per hand-back, and only once the hand-back commits."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction
from django.utils import dateformat, timezone, translation

from closeout.closures.models import ClosureCase
from closeout.identity import vault
from closeout.integrations.sms.models import SimSmsMessage
from closeout.notifications import services as notices
from closeout.notifications.models import Notice
from closeout.returns import services as returns
from closeout.returns.models import HandBack
from tests.fixtures import HKID
from tests.integration import test_console_support as support
from tests.integration import test_notifications as notice_tests
from tests.integration.test_notifications import Inbox, _free_port
from tests.integration.test_returns_hand_back import TRACKING, _kept_on_the_shelf, _queued_after_withdrawal

staff_client = support.staff_client
smtp_server = notice_tests.smtp_server
pytestmark = pytest.mark.django_db(transaction=True)  # notices leave on commit

HOLDER_EMAIL, HOLDER_PHONE = "holder@example.test", "+85291234567"
POSTED = {"en": ("We posted your card", "Tracking reference"),
          "zh-hans": ("我们已于", "将卡片", "寄回给您", "运单号"),
          "zh-hant": ("我們已於", "將卡片", "寄回給你", "郵件追蹤編號")}
POSTED_SUBJECT = {"en": "We posted your card", "zh-hans": "我们已将卡片", "zh-hant": "我們已將卡片"}
POSTED_SMS = {"en": "we posted your card", "zh-hans": "寄回给您，运单号：", "zh-hant": "寄回給你，郵件追蹤編號："}


@pytest.fixture(autouse=True)
def _no_dispatch(settings):
    settings.CLOSEOUT_DISPATCH = False


def _fresh(inbox: Inbox) -> None:
    """Forget what setting the case up sent (its receipt): what follows is the hand-back's."""
    with inbox.arrived:
        inbox.messages.clear()
        inbox.envelopes.clear()
    SimSmsMessage.objects.all().delete()


def _in_language(kept, language: str):
    ClosureCase.objects.filter(id=kept.case_id).update(language=language)
    return kept


def _handed_back_notices():
    return Notice.objects.filter(template="card_handed_back")


def _day(record: HandBack, language: str) -> str:
    """The day of the hand-back in Hong Kong, as the customer's language writes it."""
    day = timezone.localtime(record.handed_back_at)
    if language != "en":
        return f"{day.year}年{day.month}月{day.day}日"
    with translation.override("en"):  # month names follow the active language, which an earlier test may have left
        return dateformat.format(day, "N j, Y")


@pytest.mark.parametrize(("language", "tag"), [("en", "en"), ("zh-hans", "zh-Hans"), ("zh-hant", "zh-Hant")])
def test_a_card_posted_back_is_told_by_email_and_sms_in_the_case_language_with_the_tracking_reference(
        smtp_server, make_card, language, tag):
    kept = _in_language(_kept_on_the_shelf(make_card), language)
    _fresh(smtp_server)

    record = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")

    [message] = smtp_server.wait(1)
    text, html = Inbox.text(message), Inbox.html(message)
    assert smtp_server.envelopes[0][1] == [HOLDER_EMAIL]
    assert POSTED_SUBJECT[language] in message["Subject"] and message["Content-Language"] == tag
    for part in (text, html):
        assert all(words in part for words in POSTED[language]), part
        assert TRACKING in part and kept.case.reference in part and _day(record, language) in part
        assert f"•••• {kept.card.number[-4:]}" in part and kept.card.number not in part
    assert f'<td align="right" id="tracking-ref">{TRACKING}</td>' in html
    [sms] = SimSmsMessage.objects.all()
    assert POSTED_SMS[language] in sms.body and TRACKING in sms.body
    assert sms.to_hash == vault.lookup_hash("phone", HOLDER_PHONE)
    sent = {n.channel: n for n in _handed_back_notices()}
    assert {n.key for n in sent.values()} == {f"hand_back:{record.id}:email", f"hand_back:{record.id}:sms"}
    assert all(n.status == "sent" and n.case_id == kept.case_id and n.card_id == kept.card_id
               and n.language == language for n in sent.values())
    assert sent["email"].provider_ref == message["Message-ID"]


@pytest.mark.parametrize(("language", "said", "sms"), [
    ("en", "You collected your card", "you collected your card"),
    ("zh-hans", "您已于 {day} 在营业厅柜台取回卡片", "您已于 {day} 在营业厅柜台取回卡片"),
    ("zh-hant", "你已於 {day} 在客務中心櫃位取回卡片", "你已於 {day} 在客務中心櫃位取回卡片"),
])
def test_a_card_collected_at_the_counter_is_told_with_the_day_and_no_tracking_reference(
        smtp_server, make_card, language, said, sms):
    kept = _in_language(_kept_on_the_shelf(make_card, stopped_by="rejected"), language)
    _fresh(smtp_server)

    record = returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:wh", desk="三號枱")

    [message] = smtp_server.wait(1)
    day = _day(record, language)
    for part in (message["Subject"], Inbox.text(message), Inbox.html(message)):
        assert not [label for label in ("Tracking reference", "运单号", "郵件追蹤編號") if label in part]
    for part in (Inbox.text(message), Inbox.html(message)):
        assert said.format(day=day) in part and day in part and kept.case.reference in part
    [text_message] = SimSmsMessage.objects.values_list("body", flat=True)
    assert sms.format(day=day) in text_message and day in text_message


def test_a_card_handed_back_from_the_exception_queue_is_told_against_its_own_case(smtp_server, make_card):
    queued = _queued_after_withdrawal(make_card)
    _in_language(queued.checkin, "zh-hant")
    _fresh(smtp_server)

    returns.return_exception_hand_back(exception_id=queued.id, method="POST", tracking_ref=TRACKING,
                                       actor="staff:wh")

    [message] = smtp_server.wait(1)
    assert "我們已將卡片" in message["Subject"] and TRACKING in Inbox.text(message)
    assert queued.case.reference in Inbox.text(message)
    assert set(_handed_back_notices().values_list("case_id", flat=True)) == {queued.case_id}


def test_a_card_nobody_asked_to_close_is_told_in_the_holders_language_without_a_reference(smtp_server, make_card):
    card = make_card("OCTO")
    card.holder.language = "zh-hans"
    card.holder.save(update_fields=["language"])
    queued = returns.return_check_in(code=card.number, actor="staff:wh").exception
    _fresh(smtp_server)

    returns.return_exception_hand_back(exception_id=queued.id, method="COUNTER", actor="staff:wh")

    [message] = smtp_server.wait(1)
    text = Inbox.text(message)
    assert "您已于" in text and "营业厅柜台" in text
    assert "申请编号" not in text and "/zh-hans/" not in text  # no case to follow
    assert set(_handed_back_notices().values_list("case_id", "card_id")) == {(None, card.id)}


def test_a_second_hand_back_or_a_replayed_notice_sends_nothing_more(smtp_server, make_card):
    kept = _kept_on_the_shelf(make_card)
    _fresh(smtp_server)
    record = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")
    first = sorted(_handed_back_notices().values_list("id", flat=True))

    with pytest.raises(returns.CardHandedBackAlready):
        returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:other")
    replayed = notices.notice_card_handed_back(hand_back=HandBack.objects.get(id=record.id))

    assert sorted(n.id for n in replayed) == first and len(first) == 2
    assert len(smtp_server.wait(1)) == 1 and SimSmsMessage.objects.count() == 1
    assert SimSmsMessage.objects.get().request_count == 1


def test_a_hand_back_rolled_back_sends_nothing(smtp_server, make_card):
    kept = _kept_on_the_shelf(make_card)
    _fresh(smtp_server)

    with pytest.raises(RuntimeError), transaction.atomic():
        returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")
        assert _handed_back_notices().count() == 2  # written with the hand-back, waiting for its commit
        raise RuntimeError("the desk's request failed after the hand-back")

    assert not HandBack.objects.exists() and not _handed_back_notices().exists()
    assert smtp_server.messages == [] and not SimSmsMessage.objects.exists()


def test_a_holder_who_prefers_sms_gets_only_the_text_message(smtp_server, make_card):
    kept = _in_language(_kept_on_the_shelf(lambda code: make_card(code, email="")), "zh-hant")
    _fresh(smtp_server)

    returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")

    [sms] = SimSmsMessage.objects.all()
    assert "郵件追蹤編號：" + TRACKING in sms.body and sms.to_masked == "+852••••••67"
    assert list(_handed_back_notices().values_list("channel", "status")) == [("sms", "sent")]
    assert smtp_server.messages == []


@pytest.mark.parametrize("how", ["no contact", "shredded"])
def test_a_holder_with_no_contact_on_file_is_sent_nothing_and_the_hand_back_is_recorded(smtp_server, make_card,
                                                                                      how):
    from closeout.aftercare.retention import holder_shred

    kept = _kept_on_the_shelf(lambda code: make_card(code, **({"email": "", "phone": ""} if how == "no contact"
                                                              else {})))
    if how == "shredded":
        holder_shred(holder_id=kept.card.holder_id)
    _fresh(smtp_server)

    record = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING, actor="staff:wh")

    assert HandBack.objects.get() == record
    assert not _handed_back_notices().exists()
    assert smtp_server.messages == [] and not SimSmsMessage.objects.exists()


def test_a_mail_relay_that_is_down_fails_no_hand_back_and_logs_no_contact(make_card, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port()  # nothing listens there
    kept = _kept_on_the_shelf(make_card)

    with caplog.at_level(logging.INFO):
        record = returns.card_hand_back(checkin_id=kept.id, method="POST", tracking_ref=TRACKING,
                                        actor="staff:wh")

    assert HandBack.objects.get() == record
    email = _handed_back_notices().get(channel="email")
    assert email.status == "failed" and email.error == "ConnectionRefusedError"
    assert _handed_back_notices().get(channel="sms").status == "sent"
    assert f"notice {email.id} (card_handed_back by email) failed" in caplog.text
    for secret in (HOLDER_EMAIL, "91234567", HKID, kept.card.number):
        assert secret not in caplog.text
        assert secret not in str(list(_handed_back_notices().values()))


def test_the_case_page_lists_the_hand_back_notice_in_the_staff_members_language(staff_client, make_card):
    client, _ = staff_client("supervisor")
    kept = _kept_on_the_shelf(make_card)
    returns.card_hand_back(checkin_id=kept.id, method="COUNTER", actor="staff:wh")

    pages = {language: client.get(f"/console/cases/{kept.case.reference}/", HTTP_ACCEPT_LANGUAGE=language)
             .content.decode().split('id="notices"')[1].split("</table>")[0]
             for language in ("en", "zh-hans", "zh-hant")}

    for language, kind in {"en": "Handed back to the customer", "zh-hans": "已交还客户",
                           "zh-hant": "已交還客戶"}.items():
        assert pages[language].count(kind) == 2, pages[language]  # by email and by SMS
    assert HOLDER_EMAIL not in pages["en"] and "91234567" not in pages["en"]
