"""The REST contract: idempotency, auth, field errors, no enumeration."""

from __future__ import annotations

import json

import pytest

from closeout.api.keys import apikey_create
from closeout.closures.models import ClosureCase
from tests.fixtures import CN_ID, card_number

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(db):
    return apikey_create(name="partner-a")[1]


@pytest.fixture
def client_for(client):
    def post(path, body, *, key=None, idem="idem-1", **headers):
        if key:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        if idem is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = idem
        return client.post(path, data=json.dumps(body), content_type="application/json", **headers)

    return post


def body_for(card, **over):
    body = {
        "card_number": card.number, "holder_name": "陈大文",
        "id_document": {"type": "hkid", "number": "A123456(3)"},
        "contact": {"email": "holder@example.test"}, "refund_destination": {"type": "original"},
        "channel": "partner_api", "reason": "moving abroad",
    }
    body.update(over)
    return body


def test_a_closure_is_created_with_its_quote(client_for, key, make_card):
    card = make_card("YKT", balance=12345)
    response = client_for("/api/v1/closures", body_for(card), key=key)

    assert response.status_code == 201
    data = response.json()
    assert data["reference"].startswith("CL-")
    assert data["state"] == "submitted"
    assert data["quote"]["currency"] == "CNY"
    assert data["quote"]["refund"] == 12345 + 2000
    assert data["sla_due"]


def test_same_key_and_body_replays_the_first_answer_byte_for_byte(client_for, key, make_card):
    card = make_card("YKT")
    first = client_for("/api/v1/closures", body_for(card), key=key)
    second = client_for("/api/v1/closures", body_for(card), key=key)

    assert second.status_code == 201 and second.content == first.content
    assert ClosureCase.objects.count() == 1


def test_same_key_with_another_body_is_422(client_for, key, make_card):
    card = make_card("YKT")
    client_for("/api/v1/closures", body_for(card), key=key)
    other = client_for("/api/v1/closures", body_for(card, reason="changed my mind"), key=key)

    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["type"].endswith("idempotency-key-reused")


def test_same_key_for_another_card_is_422_and_opens_nothing(client_for, key, make_card):
    first, second = make_card("YKT"), make_card("YKT")
    client_for("/api/v1/closures", body_for(first), key=key)
    other = client_for("/api/v1/closures", body_for(second), key=key)

    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    second.refresh_from_db()
    assert second.status == "active" and not ClosureCase.objects.filter(card=second).exists()


def test_a_replay_after_the_case_moved_on_still_gets_the_first_answer(client_for, key, make_card):
    card = make_card("YKT")
    first = client_for("/api/v1/closures", body_for(card), key=key)
    ClosureCase.objects.filter(card=card).update(state="closed")
    card.status = "closed"
    card.save(update_fields=["status"])

    again = client_for("/api/v1/closures", body_for(card), key=key)
    assert again.status_code == 201 and again.content == first.content


def test_keys_are_scoped_per_client(client_for, key, make_card):
    other_key = apikey_create(name="partner-b")[1]
    card = make_card("YKT")
    assert client_for("/api/v1/closures", body_for(card), key=key).status_code == 201
    # Another client using the same key string is a different request: the card already has a case.
    response = client_for("/api/v1/closures", body_for(card), key=other_key)
    assert response.status_code == 409


@pytest.mark.parametrize("idem", [None, ""])
def test_a_missing_or_empty_idempotency_key_is_400(client_for, key, make_card, idem):
    response = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key, idem=idem)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency-key-missing") and not ClosureCase.objects.exists()


@pytest.mark.parametrize("idem", ["first-key,second-key", "with space", "tab\there", "ключ", "k" * 201])
def test_two_idempotency_keys_or_one_with_spaces_are_refused_naming_the_header(client_for, key, make_card, idem):
    response = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key, idem=idem)
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    rule = "Idempotency-Key must be 1 to 200 visible ASCII characters, without spaces or commas."
    assert response.json()["detail"] == rule
    assert response.json()["errors"] == [{"field": "Idempotency-Key", "message": rule}]
    assert "pattern" not in response.content.decode() and not ClosureCase.objects.exists()


def test_a_200_character_idempotency_key_is_taken(client_for, key, make_card):
    response = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key, idem="~" * 200)
    assert response.status_code == 201


def test_openapi_declares_the_form_of_an_idempotency_key(client):
    operation = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/closures"]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["required"] is True
    assert header["schema"]["minLength"] == 1 and header["schema"]["maxLength"] == 200
    assert header["schema"]["pattern"] == "^[\\x21-\\x2b\\x2d-\\x7e]+$"


@pytest.mark.parametrize("raw,detail", [
    ('{"card_number": "8103 1136" "holder_name": "陈大文"}',
     "The body is not valid JSON: Expecting ',' delimiter at line 1 column 29."),
    ('{\n  "card_number": "8103113636000036",\n  "holder_name": 陈大文\n}',
     "The body is not valid JSON: Expecting value at line 3 column 18."),
    ('{"card_number": "8103113636000036"', "The body is not valid JSON: Expecting ',' delimiter at line 1 column 35."),
    ('{"card_number": ' + "[" * 50_000 + "]" * 50_000 + "}",
     "The body is not valid JSON that can be read: arrays or objects are nested too deeply."),
])
def test_a_body_that_is_not_json_is_400_saying_where_without_echoing_it(client, key, raw, detail):
    response = client.post("/api/v1/closures", data=raw.encode(), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="broken")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-json") and problem["title"] == "Request body is not valid JSON"
    assert problem["detail"] == detail
    assert "8103" not in response.content.decode() and "陈大文" not in response.content.decode()


def test_a_body_that_is_not_utf8_is_400_naming_the_byte(client, key):
    response = client.post("/api/v1/closures", data=b'{"holder_name": "\xe9"}', content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="latin-1")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "The body is not valid JSON: it is not UTF-8 text (invalid continuation byte at byte 17)."


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer co_deadbeef_wrong", "Basic abc"])
def test_missing_or_bad_api_key_is_401(client, make_card, auth):
    headers = {"HTTP_IDEMPOTENCY_KEY": "x"}
    if auth:
        headers["HTTP_AUTHORIZATION"] = auth
    response = client.post("/api/v1/closures", data=json.dumps(body_for(make_card("YKT"))),
                           content_type="application/json", **headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("override, field", [
    ({"card_number": "8101000000000002"}, "card_number"),
    ({"card_number": "12ab"}, "card_number"),
    ({"id_document": {"type": "hkid", "number": "A1234567"}}, "id_document.number"),
    ({"id_document": {"type": "cn_resident_id", "number": "110101199003078031"}}, "id_document.number"),
    ({"id_document": {"type": "driving_licence", "number": "X"}}, "id_document.type"),
    ({"refund_destination": {"type": "bank", "account_number": "12"}}, "refund_destination.account_number"),
    ({"contact": {"email": "holder-at-example.test"}}, "contact.email"),
    ({"contact": {"phone": "12"}}, "contact.phone"),
    ({"contact": {}}, "contact"),
    ({"contact": {"email": None, "phone": ""}}, "contact"),
])
def test_malformed_input_is_422_naming_the_field(client_for, key, make_card, override, field):
    response = client_for("/api/v1/closures", body_for(make_card("YKT"), **override), key=key)

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]]
    assert "A1234567" not in response.content.decode()  # the submitted ID is never echoed


def test_unknown_card_answers_exactly_like_a_wrong_id(client_for, key, make_card):
    card = make_card("YKT")
    wrong_id = client_for("/api/v1/closures",
                          body_for(card, id_document={"type": "cn_resident_id", "number": CN_ID}), key=key,
                          idem="a")
    unknown = client_for("/api/v1/closures", body_for(card, card_number=card_number("8103")), key=key, idem="b")

    assert wrong_id.status_code == unknown.status_code == 422
    assert wrong_id.content == unknown.content
    assert ClosureCase.objects.count() == 0


@pytest.mark.parametrize("name", ["CHAN Tai Man", "chan tai man", "Tai Man CHAN", "CHAN, Tai-man", "Chan Taiman",
                                  "ＣＨＡＮ　Ｔａｉ　Ｍａｎ"])
def test_the_holder_name_may_be_written_as_forms_and_passports_write_it(client_for, key, make_card, name):
    card = make_card("YKT", holder_name="CHAN Tai Man")
    assert client_for("/api/v1/closures", body_for(card, holder_name=name), key=key).status_code == 201


def test_another_name_answers_exactly_like_a_wrong_id_and_counts_towards_the_lock(client_for, key, make_card):
    from closeout.identity.models import OtpEvent

    card = make_card("YKT", holder_name="CHAN Tai Man")
    other_name = client_for("/api/v1/closures", body_for(card, holder_name="CHAN Tai"), key=key, idem="a")
    wrong_id = client_for("/api/v1/closures", body_for(card, holder_name="CHAN Tai Man",
                                                       id_document={"type": "cn_resident_id", "number": CN_ID}),
                          key=key, idem="b")
    assert other_name.status_code == wrong_id.status_code == 422
    assert other_name.content == wrong_id.content  # which of the two was wrong is not told
    assert "CHAN" not in other_name.content.decode() and not ClosureCase.objects.exists()
    assert OtpEvent.objects.count() == 2


def test_a_failed_request_does_not_burn_the_idempotency_key(client_for, key, make_card):
    card = make_card("YKT")
    bad = client_for("/api/v1/closures", body_for(card, card_number="8101000000000002"), key=key)
    assert bad.status_code == 422
    good = client_for("/api/v1/closures", body_for(card), key=key)
    assert good.status_code == 201


def test_reading_a_closure_shows_its_timeline(client, client_for, key, make_card):
    reference = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key).json()["reference"]
    response = client.get(f"/api/v1/closures/{reference}", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200
    data = response.json()
    assert [item["state"] for item in data["timeline"]] == ["submitted"]
    assert data["certificate"] is None


@pytest.mark.parametrize("balance,instant", [(12345, True), (2_000_000, False)])
def test_reading_a_closure_shows_the_quote_it_was_created_with(client, client_for, key, make_card, balance, instant):
    created = client_for("/api/v1/closures", body_for(make_card("YKT", balance=balance)), key=key).json()
    read = client.get(f"/api/v1/closures/{created['reference']}", HTTP_AUTHORIZATION=f"Bearer {key}").json()

    assert read["quote"] == created["quote"]
    assert read["quote"]["instant"] is instant  # the Yikatong-like product's instant-refund cap is 500.00


def test_openapi_declares_every_field_of_the_quote(client, client_for, key, make_card):
    created = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key).json()
    declared = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["QuoteOut"]

    assert set(created["quote"]) == set(declared["properties"])
    assert declared["properties"]["instant"]["type"] == "boolean" and "instant" in declared["required"]


def test_head_answers_like_get_without_the_body(client, client_for, key, make_card):
    reference = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key).json()["reference"]
    got = client.get(f"/api/v1/closures/{reference}", HTTP_AUTHORIZATION=f"Bearer {key}")
    head = client.head(f"/api/v1/closures/{reference}", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert head.status_code == 200 and head.content == b""
    assert head["Content-Type"] == got["Content-Type"] == "application/json; charset=utf-8"
    assert head["Content-Length"] == str(len(got.content))
    assert "frame-ancestors 'none'" in head["Content-Security-Policy"]
    missing = client.head("/api/v1/closures/CL-2026-999999", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"
    assert client.head(f"/api/v1/closures/{reference}").status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/certificates/keys"])
def test_head_works_on_the_public_get_addresses(client, path):
    response = client.head(path)
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Length"] == str(len(client.get(path).content))


def test_an_address_that_takes_get_lists_head_as_allowed_too(client, key):
    posted = client.post("/api/v1/certificates/keys", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert posted.status_code == 405 and posted["Allow"] == "GET, HEAD"
    head = client.head("/api/v1/closures", HTTP_AUTHORIZATION=f"Bearer {key}")  # POST only
    assert head.status_code == 405 and head["Allow"] == "POST"


def test_another_partners_case_is_not_found(client, client_for, key, make_card):
    reference = client_for("/api/v1/closures", body_for(make_card("YKT")), key=key).json()["reference"]
    other = apikey_create(name="partner-b")[1]
    response = client.get(f"/api/v1/closures/{reference}", HTTP_AUTHORIZATION=f"Bearer {other}")
    missing = client.get("/api/v1/closures/CL-2026-999999", HTTP_AUTHORIZATION=f"Bearer {other}")

    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content


def test_card_received_needs_operator_scope(client, client_for, key, make_card):
    reference = client_for("/api/v1/closures", body_for(make_card("OCTO")), key=key).json()["reference"]
    response = client.post(f"/api/v1/closures/{reference}/card-received", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 403


def test_a_closing_card_is_declined(client, client_for, key, make_card):
    card = make_card("YKT", balance=50000)
    approve = client_for("/api/v1/authorizations", {"card_number": card.number, "amount": 100, "currency": "CNY"},
                         key=key, idem=None)
    assert approve.json() == {"decision": "approved", "reason": "ok"}

    client_for("/api/v1/closures", body_for(card), key=key)
    declined = client_for("/api/v1/authorizations", {"card_number": card.number, "amount": 100, "currency": "CNY"},
                          key=key, idem=None)
    assert declined.json() == {"decision": "declined", "reason": "card_closing"}


def test_wrong_content_type_is_415_and_huge_body_413(client, key):
    response = client.post("/api/v1/closures", data="card=1", content_type="application/x-www-form-urlencoded",
                           HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="x")
    assert response.status_code == 415
    huge = client.post("/api/v1/closures", data="{" + " " * 300_000 + "}", content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="y")
    assert huge.status_code == 413


def test_openapi_is_served_with_each_key_once(client):
    repeated = []

    def no_repeats(pairs):
        keys = [key for key, _ in pairs]
        repeated.extend(key for key in set(keys) if keys.count(key) > 1)
        return dict(pairs)

    spec = json.loads(client.get("/api/v1/openapi.json").content, object_pairs_hook=no_repeats)
    assert "/api/v1/closures" in spec["paths"]
    assert repeated == []  # a viewer (Swagger UI) refuses a document with a key twice


def test_a_revoked_key_is_refused(client, key):
    from closeout.api.keys import apikey_revoke

    assert client.get("/api/v1/closures/CL-2026-000001", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404
    apikey_revoke(prefix=key.split("_")[1])
    assert client.get("/api/v1/closures/CL-2026-000001", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_a_key_left_unanswered_by_an_earlier_version_is_409_not_an_empty_answer(client_for, key, make_card):
    from closeout.api.models import IdempotencyRecord

    card = make_card("YKT")
    first = client_for("/api/v1/closures", body_for(card), key=key)
    IdempotencyRecord.objects.update(status_code=None, body="")  # as the old claim-first code left it

    again = client_for("/api/v1/closures", body_for(card), key=key)
    assert first.status_code == 201
    assert again.status_code == 409 and again.json()["type"].endswith("idempotency-key-in-flight")


def test_repeated_wrong_id_documents_for_a_card_lock_it_for_a_while(client_for, key, make_card):
    from datetime import timedelta

    from django.db.models import F

    from closeout.identity.models import OtpEvent

    card = make_card("YKT")
    wrong = {"type": "cn_resident_id", "number": CN_ID}
    answers = [client_for("/api/v1/closures", body_for(card, id_document=wrong), key=key, idem=f"w{i}").status_code
               for i in range(10)]
    assert answers == [422] * 10

    locked = client_for("/api/v1/closures", body_for(card), key=key, idem="right")  # even the right document
    assert locked.status_code == 429 and locked["Content-Type"] == "application/problem+json"
    assert 0 < int(locked["Retry-After"]) <= 15 * 60
    assert card.number not in locked.content.decode() and not ClosureCase.objects.exists()
    assert client_for("/api/v1/closures", body_for(make_card("YKT")), key=key, idem="other").status_code == 201

    OtpEvent.objects.update(at=F("at") - timedelta(minutes=16))  # the lock has run out
    assert client_for("/api/v1/closures", body_for(card), key=key, idem="later").status_code == 201


def test_identity_checks_still_in_flight_count_towards_the_lock(make_card):
    """Twelve checks sent at once for one card: the ten the lock allows run, two are refused at once."""
    from closeout.identity import services as identity

    number = make_card("YKT").number
    taken = [identity.identity_attempt_begin(card_number=number, client_address="api:x") for _ in range(12)]

    assert [until is None for _, until in taken] == [True] * 10 + [False] * 2
    for attempt, _ in taken[:10]:  # the checks pass after all: the card is free again
        identity.identity_attempt_void(attempt)
    assert identity.identity_attempt_begin(card_number=number, client_address="api:x")[1] is None


@pytest.mark.parametrize("raw", ["123", "[1, 2]", "null", '"note"'])
def test_card_received_with_a_body_that_is_not_an_object_moves_nothing(client, client_for, key, make_card, raw):
    from tests.integration.test_console_support import case_in_state

    operator = apikey_create(name="warehouse", scope="operator")[1]
    reference = case_in_state(make_card("OCTO"), "awaiting_return").reference

    response = client.post(f"/api/v1/closures/{reference}/card-received", data=raw, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {operator}")

    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert ClosureCase.objects.get(reference=reference).state == "awaiting_return"
    moved = client.post(f"/api/v1/closures/{reference}/card-received", data='{"note": "box 7"}',
                        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {operator}")
    assert moved.status_code == 200 and moved.json()["state"] != "awaiting_return"


def test_a_card_reported_received_through_the_api_is_checked_in_at_the_warehouse_once(client, make_card):
    """The operator's warehouse system reports arrivals through the API: the card is then held like
    a scanned one, listed for the destruction batch and on the case's page, and a repeated report
    checks nothing in twice."""
    from closeout.returns import selectors as return_selectors
    from closeout.returns.models import CheckIn
    from tests.integration.test_console_support import case_in_state

    operator = apikey_create(name="warehouse", scope="operator")[1]
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    for _ in range(2):
        response = client.post(f"/api/v1/closures/{case.reference}/card-received", data='{"note": "box 7"}',
                               content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {operator}")
        assert response.status_code == 200

    checkin = CheckIn.objects.get()
    assert (checkin.case, checkin.card, checkin.outcome) == (case, case.card, CheckIn.Outcome.RECEIVED)
    assert checkin.staff.startswith("api:") and case.card.number not in checkin.scanned_masked
    assert [c.id for c in return_selectors.received_not_destroyed()] == [checkin.id]
    assert return_selectors.card_return(case=case)["checkins"] == [checkin]


def test_a_card_number_typed_with_dashes_is_declined_once_closing(client_for, key, make_card):
    card = make_card("YKT", balance=50000)
    client_for("/api/v1/closures", body_for(card), key=key)
    grouped = "-".join(card.number[i:i + 4] for i in range(0, 16, 4))

    declined = client_for("/api/v1/authorizations", {"card_number": grouped, "amount": 100, "currency": "CNY"},
                          key=key, idem=None)

    assert declined.json() == {"decision": "declined", "reason": "card_closing"}


def test_reading_a_closure_shows_what_the_customer_still_owes(client, client_for, key, make_card):
    card = make_card("YKT", balance=0, charges=[("overdraft", 3000)])
    created = client_for("/api/v1/closures", body_for(card), key=key).json()

    read = client.get(f"/api/v1/closures/{created['reference']}", HTTP_AUTHORIZATION=f"Bearer {key}").json()

    assert read["quote"]["uncovered"] == created["quote"]["uncovered"] == 1000  # 30.00 owed, 20.00 deposit
    assert read["quote"]["refund"] == 0


def test_a_product_that_takes_no_partner_closures_refuses_them_and_the_card_keeps_working(client_for, key, make_card):
    card = make_card("YKT", balance=12345)
    card.product.allowed_channels = ["web", "phone", "branch"]
    card.product.save()

    response = client_for("/api/v1/closures", body_for(card), key=key)

    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("channel-not-allowed")
    assert "partner_api" in response.json()["detail"]
    card.refresh_from_db()
    assert card.status == "active" and not ClosureCase.objects.exists()


def test_a_partner_key_cannot_get_round_a_products_channels_by_naming_another(client_for, key, make_card):
    """The product takes web requests but no partner ones: a partner key naming `web` is still a
    partner's request. An operator-scope key (the operator's own IVR or CRM) may name the channel."""
    card = make_card("YKT", balance=12345)
    card.product.allowed_channels = ["web", "phone", "branch"]
    card.product.save()

    refused = client_for("/api/v1/closures", body_for(card) | {"channel": "web"}, key=key)

    assert refused.status_code == 422 and refused.json()["type"].endswith("channel-not-allowed")
    assert "partner_api" in refused.json()["detail"] and not ClosureCase.objects.exists()
    operator = apikey_create(name="ivr", scope="operator")[1]
    accepted = client_for("/api/v1/closures", body_for(card) | {"channel": "phone"}, key=operator, idem="idem-2")
    assert accepted.status_code == 201 and ClosureCase.objects.get().channel == "phone"


def test_a_partner_naming_the_branch_channel_is_recorded_as_the_partner_it_is(client_for, key, make_card):
    """A partner is no branch counter: its case is not taken for one handed in at a branch (which
    would order no return label), and the console sees what it named."""
    card = make_card("YKT", balance=12345)

    created = client_for("/api/v1/closures", body_for(card) | {"channel": "branch"}, key=key)

    assert created.status_code == 201
    case = ClosureCase.objects.get()
    assert (case.channel, case.channel_ref) == ("partner_api", "named branch")


def test_an_operator_can_keep_authorizations_to_its_own_keys(client_for, key, make_card, settings):
    """An authorization says whether a card exists and covers an amount: with
    CLOSEOUT_AUTHORIZATIONS_SCOPE=operator a partner key cannot probe balances."""
    card = make_card("YKT", balance=12345)
    ask = {"card_number": card.number, "amount": 100, "currency": "CNY"}
    assert client_for("/api/v1/authorizations", ask, key=key, idem=None).json()["decision"] == "approved"

    settings.AUTHORIZATIONS_SCOPE = "operator"
    refused = client_for("/api/v1/authorizations", ask, key=key, idem=None)
    assert refused.status_code == 403 and refused["Content-Type"] == "application/problem+json"
    assert "operator-scope" in refused.json()["detail"] and card.number not in refused.content.decode()
    operator = apikey_create(name="gates", scope="operator")[1]
    assert client_for("/api/v1/authorizations", ask, key=operator, idem=None).json()["decision"] == "approved"
