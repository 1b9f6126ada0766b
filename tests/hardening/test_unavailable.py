"""A database that cannot be reached or has no connection left answers 503 with Retry-After (a
page for people, a problem for machines), so clients and load balancers try again; any other
unhandled error is still a 500."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import Client

from tests.fixtures import HKID

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def _no_connection_left(*args, **kwargs):
    raise OperationalError('connection failed: FATAL:  sorry, too many clients already')


def test_a_customer_gets_a_try_again_page_when_the_database_is_out_of_connections(client, make_card, monkeypatch):
    from closeout.identity import services as otp

    card = make_card("YKT")
    monkeypatch.setattr(otp, "otp_request", _no_connection_left)

    response = client.post("/en/", {"card_number": card.number, "id_type": "hkid", "id_number": HKID,
                                    "channel": "sms"})

    assert response.status_code == 503 and response["Retry-After"] == "5"
    page = response.content.decode()
    assert "try again in a moment" in page and "请稍后再试" in page
    assert "too many clients" not in page and card.number not in page


def test_an_api_client_gets_a_503_problem_to_retry_with_the_same_key(client, make_card, monkeypatch):
    from closeout.api.keys import apikey_create
    from closeout.closures import services

    card = make_card("YKT")
    monkeypatch.setattr(services, "closure_request", _no_connection_left)
    key = apikey_create(name="partner-a")[1]

    response = client.post("/api/v1/closures", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}",
                           HTTP_IDEMPOTENCY_KEY="k-1", data={
                               "card_number": card.number, "holder_name": "陈大文",
                               "id_document": {"type": "hkid", "number": HKID}, "channel": "partner_api"})

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/service-unavailable")


def test_any_other_unhandled_error_is_still_a_500(client, make_card, monkeypatch):
    from closeout.identity import services as otp

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    card = make_card("YKT")
    monkeypatch.setattr(otp, "otp_request", broken)

    response = client.post("/en/", {"card_number": card.number, "id_type": "hkid", "id_number": HKID,
                                    "channel": "sms"})

    assert response.status_code == 500 and "Retry-After" not in response
