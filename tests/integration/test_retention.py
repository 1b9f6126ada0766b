"""Retention: after a product's retention period the holder's PII is crypto-shredded; amounts,
audit events and certificates stay verifiable. Customers can download everything held."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from pypdf import PdfReader

from closeout import cli
from closeout.aftercare.export import case_export
from closeout.aftercare.reconcile import reconcile_run
from closeout.aftercare.retention import add_years, mask_name, retention_run
from closeout.audit.models import AuditEvent
from closeout.audit.services import audit_verify
from closeout.cards.models import Holder
from closeout.catalog.models import Product
from closeout.certificates.selectors import certificate_verification
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.identity import vault
from closeout.ledger import services as ledger
from closeout.ledger.models import Line
from tests.aftercare_support import close_card

pytestmark = pytest.mark.django_db
BANK = {"type": "bank", "account_number": "6222020200112233", "bank_code": "ICBKCNBJ"}


def _closed_years_ago(case, years: float) -> ClosureCase:
    ClosureCase.objects.filter(id=case.id).update(closed_at=clock.now() - timedelta(days=int(365.25 * years)))
    return ClosureCase.objects.select_related("card__holder", "card__product").get(id=case.id)


def test_a_holder_is_shredded_only_after_the_retention_period(make_card):
    case = close_card(make_card("YKT", balance=45000), destination=BANK)
    holder = case.card.holder
    closed_at = case.closed_at

    early = retention_run(now=add_years(closed_at, 5) - timedelta(days=1))
    assert early.due == [] and Holder.objects.get(id=holder.id).data_key

    dry = retention_run(now=add_years(closed_at, 5) + timedelta(days=1), dry_run=True)
    assert dry.due == [holder.id] and dry.shredded == 0
    assert Holder.objects.get(id=holder.id).shredded_at is None

    report = retention_run(now=add_years(closed_at, 5) + timedelta(days=1))
    assert report.due == [holder.id] and report.shredded == 1


def test_shredding_destroys_the_key_but_keeps_amounts_audit_and_certificate(make_card):
    case = close_card(make_card("YKT", balance=45000), destination=BANK)
    holder = Holder.objects.get(id=case.card.holder_id)
    value_before = {line.id: line.amount_minor for line in Line.objects.all()}
    ciphertexts = [(holder.id_encrypted, "id"), (holder.email_encrypted, "email"), (holder.phone_encrypted, "phone")]
    old_key = holder.data_key
    assert vault.decrypt(old_key, holder.email_encrypted, context="email") == "holder@example.test"

    retention_run(now=add_years(case.closed_at, 5) + timedelta(days=1))

    holder.refresh_from_db()
    assert holder.data_key is None and holder.shredded_at is not None
    assert holder.name == mask_name("陈大文") == "陈**"
    assert holder.email_masked == "h•••@example.test" and holder.id_masked  # masked fields stay
    for token, context in ciphertexts:
        with pytest.raises(vault.KeyDestroyed):
            vault.decrypt(holder.data_key, token, context=context)
    case.refresh_from_db()
    with pytest.raises(vault.KeyDestroyed):
        vault.decrypt(holder.data_key, case.refund_destination_sealed, context="bank")
    # What must stay provable, does.
    assert {line.id: line.amount_minor for line in Line.objects.all()} == value_before
    assert ledger.account_balance(ledger.refunds_payable_account(case.reference), "CNY").minor == 0
    assert audit_verify() is None
    assert AuditEvent.objects.filter(action="holder.shredded", subject=f"holder:{holder.id}").count() == 1
    assert certificate_verification(case.certificate)["valid"]
    assert reconcile_run() == []
    # Running again does nothing more.
    assert retention_run(now=add_years(case.closed_at, 6)).due == []


def test_retention_is_configurable_per_product(make_card):
    Product.objects.filter(code="OCTO").update(retention_years=1)
    short = _closed_years_ago(close_card(make_card("OCTO", balance=12000, days_old=30)), 1.5)
    long = _closed_years_ago(close_card(make_card("YKT", balance=900)), 1.5)
    report = retention_run()
    assert report.due == [short.card.holder_id]
    assert Holder.objects.get(id=long.card.holder_id).data_key


def test_a_holder_with_another_live_card_is_kept(make_card, products):
    from closeout.cards import services as cards
    from closeout.common.money import Money
    from tests.fixtures import card_number

    case = _closed_years_ago(close_card(make_card("YKT", balance=900)), 6)
    cards.card_issue(number=card_number("8103"), product=products["YKT"], holder=case.card.holder,
                     issued_at=clock.now(), balance=Money(100, "CNY"))
    report = retention_run()
    assert report.due == [] and report.kept == 1


def test_retention_command_with_dry_run(make_card, capsys):
    case = _closed_years_ago(close_card(make_card("YKT", balance=900)), 6)
    assert cli.main(["retention", "run", "--dry-run"]) == 0
    assert "would crypto-shred 1 holder(s)" in capsys.readouterr().out
    assert Holder.objects.get(id=case.card.holder_id).data_key
    assert cli.main(["retention", "run"]) == 0
    assert "crypto-shredded 1 holder(s)" in capsys.readouterr().out
    assert Holder.objects.get(id=case.card.holder_id).data_key is None


def _portal_session(client, *references):
    session = client.session
    session["portal_cases"] = list(references)
    session.save()


def test_a_customer_downloads_everything_held_about_their_case(client, make_card):
    from closeout.cards.services import authorization_decide
    from closeout.common.money import Money

    case = close_card(make_card("YKT", balance=45000, bindings=["maps-app"]), destination=BANK)
    authorization_decide(card_number=case.card.number, amount=Money(300, "CNY"), source="gate-4")
    _portal_session(client, case.reference)

    response = client.get(f"/zh-hans/case/{case.reference}/export.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="{case.reference}.json"'
    data = json.loads(response.content)
    assert data["case"]["reference"] == case.reference and data["case"]["state"] == "closed"
    assert data["holder"]["email"] == "holder@example.test" and data["holder"]["name"] == "陈大文"
    assert data["refund"]["amount"] == 47000 and data["case"]["refund_destination"]["account_masked"] == "••••2233"
    assert [t["state"] for t in data["timeline"]][-1] == "closed"
    assert data["linked_apps"][0]["partner"] == "maps-app" and data["linked_apps"][0]["unbound_at"]
    assert data["authorization_attempts"][0]["source"] == "gate-4"
    assert data["certificate"]["id"] == str(case.certificate.id)
    assert {s["kind"] for s in data["marketing_suppression"]} == {"email", "phone"}
    assert any(p["key"] == f"{case.reference}:refund" for p in data["ledger"])
    assert any(e["action"] == "closure.transition" for e in data["audit_events"])
    # The refund to a bank account was approved by a member of staff, named as staff: their sign-in
    # address is theirs, not something held about the holder.
    assert "staff" in {e["actor"] for e in data["audit_events"]}
    raw = response.content.decode()
    assert "staff:" not in raw
    assert case.card.number not in raw and "6222020200112233" not in raw

    pdf = client.get(f"/en/case/{case.reference}/export.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    text = _pdf_text(pdf.content)
    assert case.reference in text and "陈大文" in text and "gate-4" in text
    assert "Charges tried after closing" in text and "Bank account ICBKCNBJ" in text
    assert "Refund: CN¥470.00" in text and "Status: Closed" in text and "Reason: the card is closed" in text


@pytest.mark.parametrize(("language", "expected"), [
    ("zh-hans", ["我们持有的您的注销申请资料", "退款：¥470.00", "状态：已注销", "注销后的交易尝试", "卡片已注销",
                 "产品：一卡通式城市交通卡", "注销结算", "应退还您的款项",
                 "身份已核实·已核对身份和卡片", "所有时间均为香港时间（UTC+8）", "已退款·已退款¥470.00"]),
    ("zh-hant", ["我們持有的你的註銷申請資料", "退款：CN¥470.00", "狀態：已註銷", "註銷證明書", "卡片已註銷", "應退還你的款項",
                 "身份已核實·已核對身份及卡片", "所有時間均為香港時間（UTC+8）", "已退款·已退款CN¥470.00"]),
])
def test_the_pdf_copy_speaks_the_language_of_the_page(client, make_card, language, expected):
    case, text = _closed_case_export(client, make_card, language)
    flat = "".join(text.split())  # the text layer breaks lines where Chinese and Latin fonts meet
    missing = [words for words in expected if words not in flat]
    assert missing == []
    # No field names, account codes or minor units where the customer reads words and amounts.
    assert "refund_destination" not in text and "47000" not in text
    assert "payable:" not in text and f"card:{case.card_id}:" not in text and "clearing:" not in text


AUDIT_CODES = ["closure.transition", "card.status", "suppression.added", "certificate.issued",
               "authorization.declined", "closure.refund.scheduled", "customer:web", "staff:checker", "system ·",
               "refund_pending", "draft", "closure_submitted", "card_closed", "active → closing",
               "identity and card checked", "refund waits for approval"]


@pytest.mark.parametrize(("language", "expected"), [
    ("zh-hans", ["客户（网上自助服务）·状态变更·草稿→已提交·经网上自助服务申请",
                 "closeout（自动）·状态变更·已提交→身份已核实·已核对身份和卡片",
                 "卡片状态变更·使用中→注销中", "已停止推广信息·已申请注销", "已签发注销证明",
                 "我们的职员·已安排下一步：退款·退款处理中→退款处理中", "gate-4·交易已拒绝·卡片已注销"]),
    ("zh-hant", ["客戶（網上自助服務）·狀態變更·草稿→已提交", "卡片狀態變更·使用中→註銷中",
                 "已簽發註銷證明書", "我們的職員·已安排下一步：退款", "gate-4·交易已拒絕·卡片已註銷"]),
])
def test_the_pdf_copy_tells_the_audit_trail_in_the_language_of_the_page(client, make_card, language, expected):
    _, text = _closed_case_export(client, make_card, language)
    audit = "".join(text.split("审计记录" if language == "zh-hans" else "審計記錄", 1)[1].split())
    missing = [words for words in expected if words not in audit]
    assert missing == []
    left_in_english = [code for code in AUDIT_CODES if "".join(code.split()) in audit]
    assert left_in_english == []
    assert "checker" not in audit  # our staff, never named or addressed


def _closed_case_export(client, make_card, language: str):
    """A closed card's case, a gate's charge tried after it, and the text of its PDF copy."""
    from closeout.cards.services import authorization_decide
    from closeout.common.money import Money

    case = close_card(make_card("YKT", balance=45000), destination=BANK)
    authorization_decide(card_number=case.card.number, amount=Money(300, "CNY"), source="gate-4")
    _portal_session(client, case.reference)
    return case, _pdf_text(client.get(f"/{language}/case/{case.reference}/export.pdf").content)


def _pdf_text(content: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_the_export_needs_the_portal_session_of_that_case(client, make_card):
    mine = close_card(make_card("YKT", balance=900))
    other = close_card(make_card("YKT", balance=900))
    assert client.get(f"/en/case/{mine.reference}/export.json").status_code == 404
    _portal_session(client, mine.reference)
    assert client.get(f"/en/case/{other.reference}/export.json").status_code == 404
    assert client.get(f"/en/case/{mine.reference}/export.xml").status_code == 404
    assert client.get(f"/en/case/{mine.reference}/export.json").status_code == 200


def test_an_export_after_shredding_holds_only_masked_contacts(make_card):
    case = _closed_years_ago(close_card(make_card("YKT", balance=900)), 6)
    retention_run()
    json_bytes, pdf_bytes = case_export(ClosureCase.objects.select_related("card__holder").get(id=case.id))
    data = json.loads(json_bytes)
    assert data["holder"]["email"] == "h•••@example.test" and data["holder"]["shredded_at"]
    assert "holder@example.test" not in json_bytes.decode() and "陈大文" not in json_bytes.decode()
    assert pdf_bytes.startswith(b"%PDF")
