"""The public certificate endpoints and the verification page need no API key."""

from __future__ import annotations

import uuid

import pytest

from closeout.api.keys import apikey_create
from tests.aftercare_support import close_card

pytestmark = pytest.mark.django_db


def test_anyone_can_download_and_verify_a_certificate(client, make_card):
    case = close_card(make_card("YKT", balance=45000))
    certificate_id = case.certificate.id

    pdf = client.get(f"/api/v1/certificates/{certificate_id}")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    verify = client.get(f"/api/v1/certificates/{certificate_id}/verify")
    assert verify.status_code == 200
    body = verify.json()
    assert body["valid"] is True
    assert body["key_id"].startswith("ed25519-")
    assert body["facts"]["reference"] == case.reference
    assert body["facts"]["refund"] == {**body["facts"]["refund"], "amount": 47000, "currency": "CNY"}

    keys = client.get("/api/v1/certificates/keys").json()
    assert body["key_id"] in keys["keys"]


def test_the_closure_api_links_the_certificate(client, make_card):
    _, token = apikey_create(name="ops", scope="operator")
    case = close_card(make_card("YKT"))
    body = client.get(f"/api/v1/closures/{case.reference}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert body["certificate"]["id"] == str(case.certificate.id)
    assert body["certificate"]["verify_url"].endswith(f"/verify/{case.certificate.id}")


@pytest.mark.parametrize("certificate_id", [str(uuid.uuid4()), "not-a-uuid", "1' OR '1'='1"])
def test_an_unknown_certificate_is_a_problem_404(client, certificate_id):
    for path in (f"/api/v1/certificates/{certificate_id}", f"/api/v1/certificates/{certificate_id}/verify"):
        response = client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
    page = client.get(f"/verify/{certificate_id}", HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert page.status_code == 404 and 'data-valid="false"' in page.content.decode()
    assert "不存在這個編號的證明書" in page.content.decode()


@pytest.mark.parametrize("language,heading,valid_word", [
    ("zh-hans", "注销证明", "有效"), ("zh-hant", "註銷證明書", "有效"), ("en", "Closure certificate", "Valid"),
])
def test_the_verification_page_speaks_the_readers_language(client, make_card, language, heading, valid_word):
    case = close_card(make_card("YKT", balance=45000))
    page = client.get(f"/verify/{case.certificate.id}", HTTP_ACCEPT_LANGUAGE=language)
    assert page.status_code == 200
    html = page.content.decode()
    assert heading in html and valid_word in html
    assert 'data-valid="true"' in html and case.reference in html
    assert case.card.number not in html


def test_the_verification_page_says_not_valid_for_a_tampered_certificate(client, make_card):
    from closeout.certificates.models import Certificate

    case = close_card(make_card("YKT", balance=900))
    Certificate.objects.filter(id=case.certificate.id).update(
        facts=case.certificate.facts.replace(case.reference, "CL-2026-999999"))
    html = client.get(f"/verify/{case.certificate.id}", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-valid="false"' in html
    assert client.get(f"/api/v1/certificates/{case.certificate.id}/verify").json()["valid"] is False


@pytest.mark.parametrize("language,card_line,sim_line", [
    ("zh-hans", "卡片已停用并列入黑名单", "号码已停用"),
    ("zh-hant", "卡片已停用並列入黑名單", "號碼已停用"),
    ("en", "Card blocked and put on the hotlist", "Number taken out of service"),
])
def test_the_verification_page_says_what_was_taken_out_of_service(client, make_card, language, card_line,
                                                                   sim_line):
    card_case = close_card(make_card("YKT", balance=900))
    sim_case = close_card(make_card("TSIM", balance=0, plan_days_left=10))

    card_page = client.get(f"/verify/{card_case.certificate.id}", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    sim_page = client.get(f"/verify/{sim_case.certificate.id}", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert card_line in card_page and sim_line not in card_page
    assert sim_line in sim_page and card_line not in sim_page
    kind_and_name = {"zh-hans": "远游卡 · 跨境旅行 SIM 卡", "zh-hant": "遠遊卡 · 跨境旅遊 SIM 卡",
                     "en": "Travel SIM · Cross-border travel SIM"}[language]
    assert kind_and_name in sim_page  # the kind and the product's name, both in the reader's words


def test_the_link_from_the_status_page_keeps_its_language(client, make_card):
    case = close_card(make_card("OCTO", balance=12000))
    page = client.get(f"/verify/{case.certificate.id}", {"lang": "zh-hant"}, HTTP_ACCEPT_LANGUAGE="en")
    assert page["Content-Language"] == "zh-hant" and "註銷證明書" in page.content.decode()
    assert client.get(f"/verify/{case.certificate.id}", {"lang": "xx"}, HTTP_ACCEPT_LANGUAGE="en")[
        "Content-Language"] == "en"


def test_the_verification_page_names_fees_in_the_readers_words(client, make_card):
    case = close_card(make_card("OCTO", balance=12000, days_old=30))  # within 90 days: a handling fee
    page = client.get(f"/verify/{case.certificate.id}", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "手續費" in page and "(handling)" not in page
