"""Assisted closures, search, the case page and its actions, through the console."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from closeout.audit.models import AuditEvent
from closeout.cards.models import CardCharge
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.console.models import AssistedCheck, CaseNote
from closeout.identity.documents import hkid_check_digit
from tests.fixtures import HKID
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state

staff_client = support.staff_client
pytestmark = pytest.mark.django_db

CHECKS = {"check_card_number": "on", "check_name": "on", "check_contact": "on", "check_id_document": "on"}


def _identify(client, card, **overrides):
    data = {"channel": "phone", "channel_ref": "CALL-2026-0042", "card_number": card.number,
            "holder_name": "陈大文", "contact": "+852 9123 4567", "id_type": "hkid", "id_number": "A123456(3)",
            **CHECKS}
    data.update(overrides)
    return client.post("/console/open/", data)


def test_agent_opens_a_phone_case_with_checklist_quote_and_consent(staff_client, make_card):
    client, agent = staff_client("agent")
    card = make_card("YKT", balance=45000)

    response = _identify(client, card)
    assert response.status_code == 302 and response["Location"] == "/console/open/quote/"
    quote = client.get("/console/open/quote/").content.decode()
    assert 'data-refund="47000"' in quote  # balance + deposit, read out to the caller
    response = client.post("/console/open/quote/", {"destination": "original", "consent_ref": "CALL-2026-0042",
                                                    "consent": "on"})

    case = ClosureCase.objects.get(card=card)
    assert response["Location"] == f"/console/cases/{case.reference}/"
    assert (case.channel, case.channel_ref, case.requester) == ("phone", "CALL-2026-0042", agent.actor)
    assert case.state == states.SUBMITTED
    check = AssistedCheck.objects.get(case=case)
    assert check.staff == agent and check.id_document_confirmed
    assert AuditEvent.objects.filter(action="closure.consent", subject=case.reference).exists()


def test_the_quote_read_to_the_caller_names_each_fee_in_the_staff_members_language(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("OCTO", balance=180000, days_old=30, charges=[("overdraft", 1500)])  # handling fee: issued < 90 days
    _identify(client, card)
    quote = client.get("/console/open/quote/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "手續費" in quote and "負值" in quote
    assert "handling" not in quote and "overdraft" not in quote


def test_the_case_page_says_where_the_refund_goes(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT", balance=45000)
    _identify(client, card)
    client.post("/console/open/quote/", {"destination": "bank", "bank_code": "004", "account_number": "123456789012",
                                         "consent_ref": "CALL-2026-0042", "consent": "on"})
    case = ClosureCase.objects.get(card=card)
    page = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "（銀行戶口 004 ••••9012）" in page and "123456789012" not in page


def test_a_wrong_id_gets_one_answer_and_the_id_is_never_shown(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT")

    other_id = "B123456" + hkid_check_digit("B", "123456")  # valid, but not the holder's
    wrong = _identify(client, card, id_number=other_id)
    page = wrong.content.decode()

    assert wrong.status_code == 200
    assert "do not match" in page
    assert other_id not in page and "B123456" not in page
    assert not ClosureCase.objects.filter(card=card).exists()


def test_name_and_contact_must_be_the_holders(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT")

    assert "holder name does not match" in _identify(client, card, holder_name="Someone Else").content.decode()
    assert "does not match the one on file" in _identify(client, card, contact="+85290000000").content.decode()
    assert "does not match the one on file" not in _identify(client, card, contact="holder@example.test").content.decode()
    for local in ("91234567", "9123 4567", "９１２３ ４５６７"):  # a Hong Kong number as the caller says it
        assert _identify(client, card, contact=local)["Location"] == "/console/open/quote/"
    assert _identify(client, card, holder_name="陳大文")["Location"] == "/console/open/quote/"  # 陈大文, traditional


def test_a_bank_code_that_is_no_bank_code_is_refused_naming_it(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT", balance=45000)
    _identify(client, card)
    consent = {"destination": "bank", "account_number": "0123456789", "consent_ref": "CALL-2026-0042", "consent": "on"}
    page = client.post("/console/open/quote/", {**consent, "bank_code": "abc"}).content.decode()
    assert "3-digit bank code or an 8 or 11 character SWIFT code" in page and not ClosureCase.objects.exists()
    assert client.post("/console/open/quote/", {**consent, "bank_code": "hsbc hk hh"}).status_code == 302
    assert ClosureCase.objects.get().refund_destination["bank_code"] == "HSBCHKHH"


def test_every_item_of_the_checklist_must_be_ticked(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT")
    response = _identify(client, card, check_id_document="")
    assert response.status_code == 200
    assert client.get("/console/open/quote/").status_code == 302  # no identified card in the session


def test_search_by_reference_card_and_phone_shows_masked_results(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("OCTO", phone="+85261234567", email="chan.tm@example.test")
    case = case_in_state(card, "submitted")
    other = case_in_state(make_card("OCTO", phone="+85269999999", email="other@example.test"), "submitted")

    for query in (case.reference, card.number, "+852 6123 4567", "6123 4567", "Chan.TM@example.test"):
        page = client.post("/console/cases/", {"q": query}).content.decode()
        assert case.reference in page and other.reference not in page, query
        assert card.number not in page.replace(f'value="{card.number}"', "")
        assert "+85261234567" not in page.replace('value="+852 6123 4567"', "")
        assert "chan.tm@example.test" not in page.lower().replace('value="chan.tm@example.test"', "")
        assert "•••• " + card.number[-4:] in page
    assert "No case found" in client.post("/console/cases/", {"q": "not a thing"}).content.decode()
    # The form posts: the number typed never becomes part of a URL.
    assert 'method="post"' in client.get("/console/cases/").content.decode()


def test_search_by_a_reference_read_out_a_label_code_or_part_of_the_name(staff_client, make_card):
    from closeout.returns.services import return_label_issue

    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO", holder_name="Chan Tai Man"), "submitted")
    other = case_in_state(make_card("OCTO", holder_name="陳小明"), "submitted")
    label = return_label_issue(reference=case.reference)
    year, seq = case.reference.split("-")[1:]

    def found(query: str) -> set[str]:
        page = client.post("/console/cases/", {"q": query}).content.decode()
        return {ref for ref in (case.reference, other.reference) if ref in page.split("</form>", 1)[-1]}

    for query in (f"cl{year}{seq}", f"CL {year} {seq}", label.code, "tai  man", "chan tai"):
        assert found(query) == {case.reference}, query
    assert found("小明") == {other.reference}
    assert found("陈小明") == {other.reference}  # registered in traditional script, typed in simplified
    assert found("Wong") == set()
    short = client.post("/console/cases/", {"q": "ch"}).content.decode()
    assert 'id="search-too-short"' in short and case.reference not in short  # would list holders


def test_a_look_up_by_name_is_on_record_without_the_name(staff_client, make_card):
    from closeout.audit.models import AuditEvent

    client, agent = staff_client("agent")
    case = case_in_state(make_card("OCTO", holder_name="Chan Tai Man"), "submitted")
    client.post("/console/cases/", {"q": case.reference})  # not by name: nothing to record

    client.post("/console/cases/", {"q": "Tai Man"})

    event = AuditEvent.objects.get(action="case.searched_by_name")
    assert event.actor == agent.actor and event.data == {"shown": [case.reference], "matches": 1}
    assert "Tai" not in str(event.data) + event.reason + event.before + event.after


def test_a_name_search_and_the_case_page_show_the_same_masked_details_as_before(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("OCTO", holder_name="Chan Tai Man", phone="+85261234567", email="chan.tm@example.test")
    case = case_in_state(card, "submitted")

    results = client.post("/console/cases/", {"q": "tai man"}).content.decode().split("</form>", 1)[1]
    page = client.get(f"/console/cases/{case.reference}/").content.decode()
    for shown in (results, page):
        assert case.reference in shown and "Chan Tai Man" in shown and "•••• " + card.number[-4:] in shown
        assert card.number not in shown and card.number[:-4] not in shown
        assert "61234567" not in shown.replace(" ", "") and "chan.tm@" not in shown.lower()
        assert HKID not in shown and "A123456(3)" not in shown and "123456" not in shown
    assert "Showing the" not in results  # every match is listed: nothing to narrow


def test_a_name_search_matching_many_cases_says_how_many_it_shows_of_how_many(staff_client, make_card,
                                                                               monkeypatch):
    from closeout.console import selectors

    monkeypatch.setattr(selectors, "SEARCH_LIMIT", 3)
    client, _ = staff_client("agent")
    cases = [case_in_state(make_card("OCTO", holder_name=f"Chan Tai Man {n}"), "submitted") for n in range(5)]
    case_in_state(make_card("OCTO", holder_name="Wong Siu Ming"), "submitted")

    page = client.post("/console/cases/", {"q": "chan tai"}).content.decode()
    results = page.split("</form>", 1)[1]
    assert "Showing the 3 newest of 5 matching cases" in results and "narrow the search" in results
    assert [c.reference in results for c in cases] == [False, False, True, True, True]
    chinese = client.post("/console/cases/", {"q": "chan tai"}, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "5 宗" in chinese and "最新的 3 宗" in chinese
    few = client.post("/console/cases/", {"q": "Chan Tai Man 4"}).content.decode()
    assert cases[4].reference in few and "Showing the" not in few


def test_case_page_masks_the_id_and_shows_the_timeline(staff_client, make_card):
    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")
    page = client.get(f"/console/cases/{case.reference}/").content.decode()
    assert HKID not in page
    assert "A•••••63" in page
    assert "Submitted" in page and "requested via Web portal" in page


def test_hold_resume_note_and_resend_are_recorded(staff_client, make_card):
    client, agent = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")
    base = f"/console/cases/{case.reference}"

    client.post(f"{base}/hold", {"reason": "customer will call back"})
    assert ClosureCase.objects.get(id=case.id).state == states.ON_HOLD
    client.post(f"{base}/resume", {})
    assert ClosureCase.objects.get(id=case.id).state == states.SUBMITTED
    client.post(f"{base}/note", {"text": "customer prefers email"})
    client.post(f"{base}/resend", {})

    kinds = set(CaseNote.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds == {"NOTE", "NOTICE"}
    page = client.get(f"{base}/").content.decode()
    assert "customer will call back" in page and "customer prefers email" in page


def test_hold_without_a_reason_changes_nothing(staff_client, make_card):
    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")
    response = client.post(f"/console/cases/{case.reference}/hold", {"reason": "  "}, follow=True)
    assert "Give a reason" in response.content.decode()
    assert ClosureCase.objects.get(id=case.id).state == states.SUBMITTED


def test_a_note_or_reason_too_long_is_called_too_long_not_empty(staff_client, make_card):
    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")
    base = f"/console/cases/{case.reference}"
    page = client.post(f"{base}/note", {"text": "x" * 1001}, follow=True).content.decode()
    assert "at most 1000 characters" in page and "The note is empty" not in page
    page = client.post(f"{base}/hold", {"reason": "y" * 301}, follow=True).content.decode()
    assert "at most 300 characters" in page and "Give a reason" not in page
    assert ClosureCase.objects.get(id=case.id).state == states.SUBMITTED and not CaseNote.objects.exists()


def test_supervisor_rejects_with_a_reason_and_the_card_works_again(staff_client, make_card):
    client, _ = staff_client("supervisor")
    card = make_card("OCTO")
    case = case_in_state(card, "submitted")
    client.post(f"/console/cases/{case.reference}/reject", {"reason": "duplicate request"})
    case.refresh_from_db()
    card.refresh_from_db()
    assert case.state == states.REJECTED and card.status == "active"
    assert case.events.last().note == "duplicate request"


def test_an_illegal_transition_is_a_message_not_an_error(staff_client, make_card):
    client, _ = staff_client("supervisor")
    case = case_in_state(make_card("OCTO"), "submitted")
    client.post(f"/console/cases/{case.reference}/reject", {"reason": "x"})
    response = client.post(f"/console/cases/{case.reference}/hold", {"reason": "again"}, follow=True)
    assert response.status_code == 200
    assert "cannot do that in its current state" in response.content.decode()


def test_waiving_the_debt_a_case_waits_for_lets_it_settle(staff_client, make_card):
    client, supervisor = staff_client("supervisor")
    # The overdraft is larger than the whole refund: the case waits in verified for payment.
    card = make_card("YKT", balance=0, charges=[("overdraft", 5000)])
    case = case_in_state(card, "verified")
    from closeout.closures import services

    services.closure_settle(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    assert case.state == states.VERIFIED and case.next_action == ""
    charge = CardCharge.objects.get(card=card)

    client.post(f"/console/charges/{charge.id}/waive", {"reason": "hardship, approved by phone"})

    charge.refresh_from_db()
    assert (charge.settled_how, charge.settled_note) == ("waived", "hardship, approved by phone")
    case.refresh_from_db()
    assert case.state == states.VERIFIED and case.next_action == "settle"
    services.closure_settle(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    assert case.state == states.REFUND_PENDING
    assert AuditEvent.objects.filter(action="charge.waived", actor=supervisor.actor).count() == 1
    chinese = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "透支金额 — 上次乘车后余额为负" in chinese and "已豁免" in chinese  # the charge, in the reader's words
    assert "费用已豁免：hardship, approved by phone" in chinese and "fee waived" not in chinese
    assert "一卡通式城市交通卡" in chinese and ">YKT<" not in chinese and "customer:web" not in chinese


def test_a_settled_charge_cannot_be_waived_twice(staff_client, make_card):
    client, _ = staff_client("supervisor")
    card = make_card("OCTO", charges=[("overdraft", 500)])
    case = case_in_state(card, "submitted")
    charge = CardCharge.objects.get(card=card)
    client.post(f"/console/charges/{charge.id}/waive", {"reason": "goodwill"})
    again = client.post(f"/console/charges/{charge.id}/waive", {"reason": "goodwill"}, follow=True)
    assert "not outstanding" in again.content.decode()
    assert AuditEvent.objects.filter(action="charge.waived", subject=f"card:{card.id}").count() == 1
    assert case.reference in again.content.decode()


def test_the_case_page_lists_what_the_customer_was_sent_and_what_failed(staff_client, make_card,
                                                                      django_capture_on_commit_callbacks):

    from closeout.integrations.models import SimFault

    client, _ = staff_client("agent")
    SimFault.objects.create(system="sms", operation="send", mode="error_5xx", remaining=1)
    with django_capture_on_commit_callbacks(execute=True):
        case = case_in_state(make_card("OCTO"), "verified")

    page = client.get(f"/console/cases/{case.reference}/").content.decode()
    rows = {re.sub(r"<[^>]+>", " ", row).split()[1]: status
            for status, row in re.findall(r'<tr data-notice="(\w+)">(.*?)</tr>', page, re.S)}
    assert rows == {"Email": "sent", "SMS": "failed"}  # the receipt, by both channels
    assert "h•••@example.test" in page and "holder@example.test" not in page and "91234567" not in page
    assert "sent again automatically" in page
    chinese = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "發給客戶的通知" in chinese and "發送失敗" in chinese and "短訊" in chinese and "收據" in chinese
    simplified = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "发给客户的通知" in simplified and "发送失败" in simplified and "短信" in simplified and "回执" in simplified


def test_the_case_page_names_state_channel_and_id_document_in_the_staff_members_language(staff_client,
                                                                                          make_card):
    from tests.aftercare_support import close_card

    client, _ = staff_client("supervisor")
    case = close_card(make_card("YKT", balance=900, id_type="hkid"), channel="web")

    english = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    chinese = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    board = client.get("/console/sla/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert "<strong>Closed</strong>" in english and "Web portal" in english and "HKID" in english
    assert "cn_resident_id" not in english and ">closed<" not in english and "hkid" not in english
    assert f"Closed on {timezone.localtime(case.closed_at):%Y-%m-%d}" in english  # the day in Hong Kong
    assert "working days left" not in english
    assert "<strong>已註銷</strong>" in chinese and "網上自助服務" in chinese and "working days left" not in chinese
    assert "經網上自助服務申請" in chinese and "已核對身份及卡片" in chinese and "卡片已停用" in chinese
    assert "requested via web" not in chinese and "identity and card checked" not in chinese
    assert "Closed" not in board.split("<svg")[1].split("</svg>")[0]  # the chart's states in Chinese


def test_why_a_case_waits_for_staff_and_what_the_customer_was_asked_read_in_the_staff_members_language(
        staff_client, make_card):
    from closeout.closures.models import CaseEvent
    from closeout.notifications.services import notice_esim_delete_request

    client, _ = staff_client("supervisor")
    case = case_in_state(make_card("ESIM"), "verified")
    notice_esim_delete_request(case=case)
    for key, note in (("counter", "card to be handed in at a branch: no carrier label"),
                      ("smdp", "SM-DP+ refused the release: profile in use")):
        CaseEvent.objects.create(case=case, key=key, at=timezone.now(), actor="system", from_state=case.state,
                                 to_state=case.state, note=note)
    ClosureCase.objects.filter(id=case.id).update(state=states.FAILED, attention_reason="eSIM release refused")

    chinese = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    board = client.get("/console/sla/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    english = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "<strong>需人手處理</strong> — <span class=\"error\">eSIM 設定檔釋放被拒</span>" in chinese
    assert "需人手處理 — eSIM 設定檔釋放被拒" in board and "eSIM release refused" not in chinese + board
    assert "請求刪除 eSIM" in chinese and "esim_delete_request" not in chinese
    assert "卡片將在客務中心交回：無需速遞標籤" in chinese and "SM-DP+ 拒絕釋放：profile in use" in chinese
    assert "no carrier label" not in chinese and "refused the release" not in chinese
    assert "eSIM release refused" in english and "Request to delete the eSIM" in english


def test_the_console_says_email_in_the_words_of_the_rest_of_the_product(staff_client, make_card):
    client, _ = staff_client("supervisor")
    case = case_in_state(make_card("OCTO"), "submitted")
    chinese = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "電郵" in chinese and "電子信箱" not in chinese  # not Django's own word for the sign-in field


def test_a_role_with_no_action_on_a_case_sees_no_empty_actions_section(staff_client, make_card):
    case = case_in_state(make_card("OCTO"), "submitted")
    approver, _ = staff_client("refund_approver")
    agent, _ = staff_client("agent")
    assert "<h2>Actions</h2>" not in approver.get(f"/console/cases/{case.reference}/").content.decode()
    assert "<h2>Actions</h2>" in agent.get(f"/console/cases/{case.reference}/").content.decode()


def test_a_product_that_takes_no_phone_closures_is_refused_before_the_quote(staff_client, make_card):
    client, _ = staff_client("agent")
    card = make_card("YKT", balance=45000)
    card.product.allowed_channels = ["web", "branch"]
    card.product.save()

    page = _identify(client, card).content.decode()

    assert "does not take closure requests by Phone" in page
    assert client.get("/console/open/quote/")["Location"] == "/console/open/"  # nothing was kept to go on with
    assert not ClosureCase.objects.filter(card=card).exists()


def test_a_case_resumed_with_a_note_reads_as_a_resume_in_the_timeline(staff_client, make_card):
    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")
    base = f"/console/cases/{case.reference}"
    client.post(f"{base}/hold", {"reason": "customer will call back"})

    client.post(f"{base}/resume", {"reason": "customer called back"})

    english = client.get(f"{base}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    chinese = client.get(f"{base}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "<strong>Submitted</strong> — resumed: customer called back" in english
    assert "<strong>已提交</strong> — 已恢復處理：customer called back" in chinese


def test_the_chinese_case_page_sets_asides_in_full_width_brackets_and_latin_words_apart(staff_client, make_card):
    from tests.aftercare_support import close_card

    client, _ = staff_client("supervisor")
    case = close_card(make_card("YKT", balance=900), channel="partner_api")

    pages = {language: client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
             for language in ("zh-hant", "zh-hans", "en")}

    assert "<small>（closeout（自動））</small>" in pages["zh-hant"]
    assert "<small>（closeout（自动））</small>" in pages["zh-hans"]
    assert "狀態更新（已退款）" in pages["zh-hant"] and "状态更新（已退款）" in pages["zh-hans"]
    assert "經合作夥伴 API 申請" in pages["zh-hant"] and "经合作伙伴 API 申请" in pages["zh-hans"]
    for language in ("zh-hant", "zh-hans"):
        timeline = pages[language].split('<ol class="timeline">')[1]
        notices = pages[language].split('id="notices"')[1].split("</table>")[0]
        assert "(" not in re.sub(r"<[^>]+>", "", timeline + notices), language
    assert "<small> (closeout (automatic))</small>" in pages["en"] and "Status update (Refunded)" in pages["en"]
    assert "requested via Partner API" in pages["en"]


@pytest.mark.parametrize("language,note", [
    ("en", "Times are Hong Kong Time (UTC+08:00); logs are in UTC."),
    ("zh-hans", "页面时间均为香港时间（UTC+08:00）；日志使用 UTC。"),
    ("zh-hant", "頁面時間均為香港時間（UTC+08:00）；日誌使用 UTC。"),
])
def test_the_console_says_which_clock_its_times_read(staff_client, make_card, language, note):
    client, _ = staff_client("agent")
    case = case_in_state(make_card("OCTO"), "submitted")

    page = client.get(f"/console/cases/{case.reference}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert f'<footer class="foot" data-time-zone="Asia/Hong_Kong"><small>{note}</small></footer>' in page
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00">', page)


def test_the_clock_the_console_names_is_the_operators_own(staff_client, settings):
    client, _ = staff_client("agent")

    settings.TIME_ZONE = "Europe/London"
    london = client.get("/console/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    settings.TIME_ZONE = "UTC"
    utc = client.get("/console/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert re.search(r"Times are British Time \(UTC[+]0[01]:00\); logs are in UTC\.", london)
    assert "頁面時間均為 UTC，與日誌相同。" in utc
