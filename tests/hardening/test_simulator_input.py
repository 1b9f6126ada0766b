"""The simulators and the operations endpoints answer bad input and wrong methods with a 4xx
application/problem+json naming what is wrong, never a 500 or an HTML page, and store nothing
they were not meant to."""

from __future__ import annotations

import json

import pytest

from closeout.integrations.models import SimFault, SimPartnerDelivery
from closeout.integrations.partners import services as partners
from closeout.integrations.partners import signing
from tests.hardening.test_input import assert_problem

pytestmark = pytest.mark.django_db


def _fault(client, **body):
    return client.post("/sim/faults", data=json.dumps({"system": "sms", "operation": "send", "mode": "error_5xx",
                                                       **body}), content_type="application/json")


def _raw_fault(client, raw: str):
    return client.post("/sim/faults", data=raw, content_type="application/json")


# --- POST /sim/faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("remaining", ["1e309", "-1e309", "NaN", "1.5", "true", '"3"', "0", "-1", "1001",
                                       "null", "[1]", "1" + "0" * 400])
def test_a_fault_count_that_is_not_a_whole_number_from_1_to_1000_is_refused_by_name(client, remaining):
    raw = f'{{"system": "sms", "operation": "send", "mode": "error_5xx", "remaining": {remaining}}}'

    problem = assert_problem(_raw_fault(client, raw), 422, "remaining")

    assert "remaining" in problem["detail"] and "system" not in problem["detail"]
    assert not SimFault.objects.exists()


@pytest.mark.parametrize("system,operation", [("sms", "x"), ("payments", "send"), ("card_system", "refund"),
                                              ("partners", "nobody-registered"), ("sms", ["send"])])
def test_an_operation_the_simulator_never_asks_about_is_refused_by_name(client, system, operation):
    problem = assert_problem(_fault(client, system=system, operation=operation), 422, "operation")

    assert "operation" in problem["detail"]
    assert not SimFault.objects.exists()


@pytest.mark.parametrize("field,value", [("system", "mainframe"), ("system", ["sms"]), ("mode", "explode"),
                                         ("mode", None)])
def test_an_unknown_system_or_mode_is_refused_by_name(client, field, value):
    assert_problem(_fault(client, **{field: value}), 422, field)
    assert not SimFault.objects.exists()


@pytest.mark.parametrize("system,operation,mode", [("smdp", "cancel_order", "decline"),
                                                   ("partners", "unbind", "lost_response"),
                                                   ("shipping", "create_label", "pending"),
                                                   ("card_system", "block", "duplicate_webhook")])
def test_a_mode_the_system_s_simulator_does_not_act_on_is_refused_naming_those_it_does(client, system, operation,
                                                                                       mode):
    # Taken from the list by the next call and ignored, it would look like an outage that never came.
    problem = assert_problem(_fault(client, system=system, operation=operation, mode=mode), 422, "mode")

    assert f"{system} takes the modes" in problem["detail"] and "error_5xx" in problem["detail"]
    assert not SimFault.objects.exists()


@pytest.mark.parametrize("raw", ["null", "[]", '"sms"', "{", "1e309"])
def test_a_fault_that_is_not_a_json_object_is_a_bad_request(client, raw):
    assert_problem(_raw_fault(client, raw), 400)


@pytest.mark.parametrize("body,operation", [({"remaining": 3}, "send"), ({"operation": "*"}, "*"), ({}, "send")])
def test_a_well_formed_fault_is_scripted(client, body, operation):
    response = _fault(client, **body)

    assert response.status_code == 201, response.content
    fault = SimFault.objects.get()
    assert (fault.system, fault.operation, fault.mode, fault.remaining) == (
        "sms", operation, "error_5xx", body.get("remaining", 1))


def test_faults_still_to_fire_are_listed_and_cleared_by_system_or_all(client):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)  # as curl meets it
    assert _fault(client, system="payments", operation="refund", remaining=1000).status_code == 201
    assert _fault(client, system="partners", operation="unbind", mode="timeout", remaining=3).status_code == 201
    SimFault.objects.create(system="sms", operation="send", mode="error_5xx", remaining=0)  # used up

    listed = browser.get("/sim/faults").json()
    assert [(f["system"], f["operation"], f["mode"], f["remaining"]) for f in listed] == [
        ("payments", "refund", "error_5xx", 1000), ("partners", "unbind", "timeout", 3)]

    assert browser.delete("/sim/faults?system=payments").json() == {"cleared": 1}
    assert [f["system"] for f in browser.get("/sim/faults").json()] == ["partners"]
    assert_problem(browser.delete("/sim/faults?system=mainframe"), 422, "system")
    assert browser.delete("/sim/faults").json() == {"cleared": 1}
    assert browser.get("/sim/faults").json() == []


def test_a_fault_may_name_a_registered_partners_endpoint(client):
    partners.partner_register(code="maps-app", name="Maps", endpoint_url="http://testserver/sim/partners/maps-app/"
                              "webhook", actor="test")

    assert _fault(client, system="partners", operation="maps-app").status_code == 201
    assert _fault(client, system="partners", operation="unbind").status_code == 201


# --- POST /sim/partners/<code>/webhook ------------------------------------------------------------


@pytest.fixture
def secret():
    _, secret = partners.partner_register(code="maps-app", name="Maps", actor="test",
                                          endpoint_url="http://testserver/sim/partners/maps-app/webhook")
    return secret


def _deliver(client, raw: str | bytes, secrets: tuple[str, ...]):
    raw = raw.encode() if isinstance(raw, str) else raw
    headers = signing.headers(message_id="m-1", body=raw.decode("latin-1"), secrets=secrets)
    return client.post("/sim/partners/maps-app/webhook", data=raw, content_type="application/json",
                       **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})


@pytest.mark.parametrize("raw", ["null", "[]", '"unbind"', "not json", '{"x": 1e309}', '{"x": NaN}',
                                 '{"x": "\\u0000"}', '{"x": ' + "[" * 50_000 + "]" * 50_000 + "}"])
def test_a_signed_body_that_is_not_a_json_object_is_a_bad_request(client, secret, raw):
    assert_problem(_deliver(client, raw, (secret,)), 400)

    delivery = SimPartnerDelivery.objects.get()
    assert (delivery.signature_valid, delivery.status_code, delivery.body) == (True, 400, {})


@pytest.mark.parametrize("raw", ["null", "[]", '{"x": 1e309}', '{"type": "card.unbind"}', b"\xff\xfe"])
def test_an_unsigned_body_is_refused_before_it_is_read(client, secret, raw):
    response = _deliver(client, raw, ("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",))

    assert_problem(response, 401)
    delivery = SimPartnerDelivery.objects.get()
    assert (delivery.signature_valid, delivery.status_code, delivery.body, delivery.event_type) == (False, 401, {}, "")


@pytest.mark.parametrize("signature", ["v1", "v1,not-base64!", "", "v1,YQ== v2"])
def test_a_malformed_signature_header_is_refused(client, secret, signature):
    response = client.post("/sim/partners/maps-app/webhook", data="{}", content_type="application/json",
                           HTTP_WEBHOOK_ID="m-1", HTTP_WEBHOOK_TIMESTAMP="1", HTTP_WEBHOOK_SIGNATURE=signature)

    assert_problem(response, 401)


def test_a_signed_json_object_is_acknowledged(client, secret):
    response = _deliver(client, '{"type": "card.unbind"}', (secret,))

    assert response.status_code == 200 and response.json() == {"received": True}
    assert SimPartnerDelivery.objects.get().body == {"type": "card.unbind"}


# --- methods --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,allow", [
    ("put", "/sim/faults", "GET, HEAD, POST, DELETE"),
    ("patch", "/sim/faults", "GET, HEAD, POST, DELETE"),
    ("post", "/sim/payments/refunds", "GET, HEAD"),
    ("delete", "/sim/sms/messages", "GET, HEAD, POST"),
    ("patch", "/sim/cards/transactions", "GET, HEAD, POST"),
    ("get", "/sim/partners/maps-app/webhook", "POST"),
    ("post", "/healthz", "GET, HEAD"),
    ("put", "/healthz", "GET, HEAD"),
    ("delete", "/readyz", "GET, HEAD"),
    ("post", "/metrics", "GET, HEAD"),
])
def test_a_method_an_address_does_not_take_is_a_405_problem_naming_the_allowed_ones(method, path, allow):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # as a browser or curl meets it, not the test client's pass

    response = getattr(client, method)(path)

    assert_problem(response, 405)
    assert response["Allow"] == allow


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/sim/payments/refunds", "/sim/sms/messages",
                                  "/sim/cards/transactions"])
def test_head_is_answered_wherever_get_is(client, path):
    get, head = client.get(path), client.head(path)

    assert head.status_code == get.status_code and head["Content-Type"] == get["Content-Type"]
    assert head.content == b""
