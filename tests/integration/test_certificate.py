"""Closure certificates: issued when a case closes, signed, rendered in Chinese and English,
verifiable online and offline, across key rotations."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from closeout.certificates import fonts, pdf, signing
from closeout.certificates.models import Certificate, SigningKey
from closeout.certificates.selectors import certificate_pdf, certificate_verification
from closeout.certificates.services import certificate_issue, public_keys, signing_key_rotate
from closeout.closures import services
from closeout.closures.selectors import case_public
from tests.aftercare_support import close_card, run_to_end

pytestmark = pytest.mark.django_db
RESULTS = Path(__file__).resolve().parents[2] / "test-results"


def test_a_closed_case_gets_one_signed_certificate_with_its_facts(make_card):
    card = make_card("YKT", balance=45000, bindings=["maps-app", "city-pay"])
    case = close_card(card, destination={"type": "bank", "account_number": "6222020200112233", "bank_code": "ICBKCNBJ"})

    certificate = case.certificate
    facts = json.loads(certificate.facts)
    assert facts["reference"] == case.reference
    assert facts["card"]["number_masked"] == "•••• " + card.number[-4:]
    assert card.number not in certificate.facts
    assert (facts["refund"]["amount"], facts["refund"]["currency"]) == (47000, "CNY")
    assert facts["refund"]["destination"] == {"type": "bank", "bank_code": "ICBKCNBJ", "account_masked": "••••2233"}
    assert [u["partner"] for u in facts["unbound"]] == ["city-pay", "maps-app"]
    assert facts["deactivated"][0]["what"] == "card" and facts["deactivated"][0]["ref"].startswith("blk-")
    assert "陈大文" not in certificate.facts and "holder@example.test" not in certificate.facts
    assert certificate_verification(certificate)["valid"] is True
    # The closure API now points at it; issuing again changes nothing.
    assert case_public(case)["certificate"]["id"] == str(certificate.id)
    assert certificate_issue(case=case).id == certificate.id
    assert Certificate.objects.count() == 1


def test_a_travel_sim_certificate_says_its_number_was_taken_out_of_service_not_hotlisted(make_card):
    case = close_card(make_card("TSIM", balance=0, plan_days_left=10))

    facts = json.loads(case.certificate.facts)
    assert [(d["what"], d["status"]) for d in facts["deactivated"]] == [("number", "deactivated")]
    assert facts["deactivated"][0]["ref"].startswith("num-") and "hotlist" not in facts["deactivated"][0]
    text = pdf.page_text(certificate_pdf(case.certificate))
    assert "Number taken out of service" in text and "hotlist" not in text
    assert case.events.filter(note="number taken out of service").exists()
    assert not case.events.filter(note__contains="card blocked").exists()


@pytest.mark.parametrize("state,profile", [("RELEASED", "cancelled"), ("ENABLED", "deleted")])
def test_an_esim_certificate_says_what_happened_to_the_number_and_the_profile(make_card, state, profile):
    from closeout.integrations.outbox import outbox_deliver
    from closeout.integrations.smdp import simulator as smdp

    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    smdp.profile_seed(iccid=card.number, state=state)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    case = run_to_end(case.reference)
    if state == "ENABLED":  # on the phone: closing waits for the device to delete it
        assert case.state == "deactivating" and case.deadline_at is not None
        smdp.device_delete(iccid=card.number)
        outbox_deliver(system="smdp")  # the device's signed deletion notification
        case = run_to_end(case.reference)

    assert case.state == "closed"
    facts = json.loads(case.certificate.facts)
    assert [(d["what"], d["status"]) for d in facts["deactivated"]] == [("number", "deactivated"),
                                                                       ("esim_profile", profile)]
    text = pdf.page_text(certificate_pdf(case.certificate))
    assert pdf.DEACTIVATIONS[("esim_profile", profile)][2] in text and "hotlist" not in text


def test_an_open_case_gets_no_certificate(make_card):
    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web")
    with pytest.raises(Exception, match="submitted"):
        certificate_issue(case=case)
    assert case_public(case)["certificate"] is None


def test_a_changed_fact_breaks_the_signature(make_card):
    case = close_card(make_card("YKT", balance=900))
    certificate = case.certificate
    Certificate.objects.filter(id=certificate.id).update(facts=certificate.facts.replace('"amount":2900', '"amount":9900'))
    certificate.refresh_from_db()
    assert '"amount":9900' in certificate.facts
    result = certificate_verification(certificate)
    assert result["valid"] is False and "signature" in result["reason"]


def test_old_certificates_still_verify_after_the_key_rotates(make_card):
    first = close_card(make_card("YKT", balance=900)).certificate
    old_key = first.key.key_id
    new_key = signing_key_rotate(actor="staff:security")
    second = close_card(make_card("YKT", balance=1200)).certificate

    assert second.key.key_id == new_key.key_id != old_key
    retired = SigningKey.objects.get(key_id=old_key)
    assert not retired.active and retired.private_key_sealed == ""  # the old private key is gone
    assert certificate_verification(first)["valid"] and certificate_verification(second)["valid"]
    assert set(public_keys()) == {old_key, new_key.key_id}


def _render_png(pdf_bytes: bytes, name: str):
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(pdf_bytes)
    image = document[0].render(scale=2).to_pil().convert("L")
    RESULTS.mkdir(exist_ok=True)
    image.save(RESULTS / name)
    return image


def _ink(image, box) -> int:
    crop = image.crop(box)
    return sum(1 for value in crop.getdata() if value < 128)


def test_the_pdf_shows_chinese_and_english_and_a_qr_code(make_card):
    case = close_card(make_card("OCTO", balance=12000, days_old=30, bindings=["transit-wallet"]))
    data = certificate_pdf(case.certificate)

    text = pdf.page_text(data)
    assert "注销证明" in text and "註銷證明書" in text and "Closure certificate" in text
    assert case.reference in text and str(case.certificate.id) in text
    assert "HKD 159.00" in text  # 120.00 + 50.00 deposit − 11.00 handling fee
    assert case.card.number[-4:] in text and case.card.number not in text  # masked card number
    flat = "".join(text.split())
    assert "八达通式交通卡·八達通式交通卡" in flat and "Octopus-liketransitcard(OCTO)" in flat  # the product
    assert "手续费·手續費" in flat and "HandlingfeeHKD11.00" in flat and "handlingHKD" not in flat  # its fee

    image = _render_png(data, "certificate.png")
    width, height = image.size
    # The Chinese title (top left) must be drawn, not just present as text.
    title_ink = _ink(image, (int(width * 0.08), int(height * 0.045), int(width * 0.35), int(height * 0.095)))
    if fonts.cjk_fonts().embedded:
        assert title_ink > 500, "the Chinese title did not render"
    elif os.environ.get("CI") == "true":
        pytest.fail("CI must embed a CJK font (fonts-droid-fallback)")
    # The QR code (bottom right) is drawn and decodes to the verification page's address.
    qr_ink = _ink(image, (int(width * 0.75), int(height * 0.74), int(width * 0.92), int(height * 0.89)))
    assert qr_ink > 2000


def test_the_qr_code_points_at_the_verification_page(make_card, settings):
    case = close_card(make_card("YKT"))
    facts = json.loads(case.certificate.facts)
    assert facts["verify_url"] == f"{settings.PUBLIC_URL}/verify/{case.certificate.id}"
    # The QR drawn in the PDF encodes exactly that address.
    import segno

    drawn = []

    class Recorder:
        def setFillColor(self, *_):
            pass

        def rect(self, x, y, w, h, stroke=0, fill=0):
            drawn.append((round(x, 3), round(y, 3)))

    pdf.draw_qr(Recorder(), facts["verify_url"], 0, 0, 110)
    expected = segno.make(facts["verify_url"], error="m")
    dark = sum(sum(1 for cell in row if cell) for row in expected.matrix)
    assert len(drawn) == dark + 1  # the white background, then one square per dark module


def test_the_pdf_verifies_offline_with_the_public_keys(make_card, tmp_path, capsys):
    from closeout import cli

    case = close_card(make_card("YKT", balance=900))
    certificate_path = tmp_path / "certificate.pdf"
    certificate_path.write_bytes(certificate_pdf(case.certificate))
    keys_path = tmp_path / "keys.json"
    assert cli.main(["certificate", "keys", "--out", str(keys_path)]) == 0

    assert cli.main(["certificate", "verify", str(certificate_path), "--keys", str(keys_path)]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and case.reference in out and "CNY 29.00" in out

    # The same PDF with a forged fact in its attachment is refused.
    envelope = pdf.read_envelope(certificate_path.read_bytes())
    forged = dict(envelope, facts=envelope["facts"].replace('"amount":2900', '"amount":290000'))
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(certificate_path.read_bytes())).pages:
        writer.add_page(page)
    writer.add_attachment(pdf.ATTACHMENT, json.dumps(forged).encode())
    forged_path = tmp_path / "forged.pdf"
    with forged_path.open("wb") as handle:
        writer.write(handle)
    assert cli.main(["certificate", "verify", str(forged_path), "--keys", str(keys_path)]) == 1
    assert "signature does not match" in capsys.readouterr().err

    # A key list without the signing key cannot vouch for it.
    other = signing.key_id_of(base64.b64decode(SigningKey.objects.get().public_key))
    keys_path.write_text(json.dumps({"keys": {other + "x": "AAAA"}}))
    assert cli.main(["certificate", "verify", str(certificate_path), "--keys", str(keys_path)]) == 1
    assert "unknown signing key" in capsys.readouterr().err


def test_verifying_offline_needs_no_database(make_card, tmp_path):
    """Another machine with only the PDF and the published keys can check the certificate."""
    import subprocess
    import sys

    case = close_card(make_card("YKT", balance=900))
    (tmp_path / "certificate.pdf").write_bytes(certificate_pdf(case.certificate))
    (tmp_path / "keys.json").write_text(json.dumps({"keys": public_keys()}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLOSEOUT_DATA_DIR")}
    env.update(CLOSEOUT_DATA_DIR=str(elsewhere), CLOSEOUT_SECRET_KEY="x" * 50, CLOSEOUT_PII_KEY="y" * 50)
    done = subprocess.run([sys.executable, "-m", "closeout.cli", "certificate", "verify",
                           str(tmp_path / "certificate.pdf"), "--keys", str(tmp_path / "keys.json")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"VALID: certificate {case.certificate.id}" in done.stdout
    assert not (elsewhere / "closeout.sqlite3").exists()


def test_a_pdf_without_certificate_data_is_not_valid(tmp_path, capsys):
    from closeout import cli

    plain = tmp_path / "plain.pdf"
    from reportlab.pdfgen.canvas import Canvas

    canvas = Canvas(str(plain))
    canvas.drawString(72, 720, "Closure certificate CL-2026-000001")
    canvas.save()
    assert cli.main(["certificate", "verify", str(plain)]) == 1
    assert "no closeout certificate data" in capsys.readouterr().err
    (tmp_path / "junk.pdf").write_bytes(b"not a pdf")
    assert cli.main(["certificate", "verify", str(tmp_path / "junk.pdf")]) == 1


def test_certificate_issued_inside_the_closing_transaction(make_card):
    """The certificate exists the moment the case reads closed (same transaction)."""
    card = make_card("YKT", balance=900)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    case = run_to_end(case.reference)
    assert case.state == "closed"
    assert Certificate.objects.filter(case=case).exists()


def test_a_closing_that_missed_the_first_key_being_made_uses_it_rather_than_retiring_it():
    from closeout.certificates import services as certificates

    made = certificates._first_key()  # another process's closing created and committed it
    seen = certificates._first_key()  # this closing looked for a key a moment before that commit

    made.refresh_from_db()
    assert seen.pk == made.pk and SigningKey.objects.count() == 1
    assert made.active and made.private_key_sealed  # still able to sign: not rotated away


def test_making_sure_of_the_first_signing_key_twice_keeps_the_one_key():
    from closeout.certificates.services import signing_key_ensure

    signing_key_ensure()
    signing_key_ensure()

    key = SigningKey.objects.get()
    assert key.active and key.private_key_sealed


def test_without_an_embedded_font_traditional_chinese_uses_the_traditional_character_map(make_card,
                                                                                         monkeypatch):
    """MSung-Light holds Adobe-CNS1 glyphs: under the GB character map a viewer draws wrong ones."""
    case = close_card(make_card("OCTO", balance=12000, days_old=30))
    monkeypatch.setenv("CLOSEOUT_CJK_FONT", "/nonexistent/font.ttf")
    monkeypatch.setattr(fonts, "_fonts", None)

    data = certificate_pdf(case.certificate)

    assert not fonts.cjk_fonts().embedded
    assert b"/MSung-Light" in data and b"UniCNS-UCS2-H" in data  # the traditional lines
    assert b"/STSong-Light" in data and b"UniGB-UCS2-H" in data  # the simplified ones
    assert "註銷證明書" in pdf.page_text(data)


@pytest.mark.parametrize("language,words", [("en", "Unused plan refunded"), ("zh-hant", "剩餘套餐退款"),
                                            ("zh-hans", "剩余套餐退款")])
def test_the_verify_page_of_a_sim_card_shows_the_plan_refund_so_the_amounts_add_up(make_card, client, language,
                                                                                       words):
    from django.utils import translation

    from closeout.common.templatetags.closeout import money

    case = close_card(make_card("TSIM", balance=2000, plan_days_left=10))
    facts = json.loads(case.certificate.facts)
    assert facts["plan_refund"] > 0 and facts["balance"] + facts["deposit"] + facts["plan_refund"] == \
        facts["refund"]["amount"]

    page = client.get(f"/verify/{case.certificate.id}?lang={language}").content.decode()

    with translation.override(language):
        amount = money(facts["plan_refund"], facts["currency"])
    assert words in page and f'data-field="plan-refund">{amount}<' in page


@pytest.mark.parametrize("language,caption,first", [("en", "What the certificate states", "Case reference"),
                                                    ("zh-hant", "註銷證明書所載事項", "申請編號")])
def test_the_verify_page_reads_as_a_table_of_facts_to_a_screen_reader(make_card, client, language, caption, first):
    """Each fact is announced with its label ("Refund: HK$…"), and the table names what it holds."""
    from tests.tables import data_table_problems, data_tables

    case = close_card(make_card("OCTO", balance=45000))

    page = client.get(f"/verify/{case.certificate.id}?lang={language}").content.decode()

    assert data_table_problems(page) == []
    (facts,) = data_tables(page)
    assert facts["caption"] == caption
    assert [(cell["tag"], cell["scope"]) for cell in facts["rows"][0]] == [("th", "row"), ("td", None)]
    assert facts["rows"][0][0]["text"] == first and facts["rows"][0][1]["text"] == case.reference
