"""The partner-notifier contract, held by the simulated partner in-process and by the HTTPS
adapter posting to the simulated partner endpoint: Standard Webhooks signatures, 2xx = ack."""

from __future__ import annotations

import pytest

from closeout.integrations.errors import TransientError
from closeout.integrations.models import SimFault, SimPartnerDelivery
from closeout.integrations.partners import services as partners
from closeout.integrations.partners.adapter import HttpPartnerNotifier
from closeout.integrations.partners.port import Delivery
from closeout.integrations.partners.simulator import SimulatedPartnerNotifier

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["simulator", "http"])
def notifier(request):
    if request.param == "simulator":
        return SimulatedPartnerNotifier()
    # The WSGI transport stands for the network; "testserver" resolves to loopback as a name would.
    return HttpPartnerNotifier(transport=request.getfixturevalue("wsgi_transport"),
                               resolver=lambda host, port: ["127.0.0.1"])


@pytest.fixture
def partner():
    partners.partner_register(code="maps-app", name="Maps", endpoint_url="http://testserver/sim/partners/maps-app/webhook",
                              actor="test")
    return "maps-app"


def _delivery(secrets, message_id="CL-2026-000001:unbind:maps-app") -> Delivery:
    return Delivery(partner="maps-app", endpoint_url="http://testserver/sim/partners/maps-app/webhook",
                    message_id=message_id, body='{"type":"card.unbind","data":{"binding_ref":"b-1"}}',
                    secrets=tuple(secrets))


def test_a_correctly_signed_unbind_is_acknowledged(notifier, partner):
    result = notifier.send(_delivery(partners.partner_secrets(code=partner)))

    assert result.acknowledged and result.status_code == 200
    received = SimPartnerDelivery.objects.get()
    assert (received.signature_valid, received.message_id, received.event_type) == (
        True, "CL-2026-000001:unbind:maps-app", "card.unbind")


def test_a_message_signed_with_another_secret_is_refused(notifier, partner):
    result = notifier.send(_delivery(["whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"]))

    assert not result.acknowledged and result.status_code == 401
    assert SimPartnerDelivery.objects.get().signature_valid is False


def test_a_partner_outage_is_not_an_acknowledgement(notifier, partner):
    SimFault.objects.create(system="partners", operation="maps-app", mode="error_5xx")

    result = notifier.send(_delivery(partners.partner_secrets(code=partner)))

    assert not result.acknowledged and result.status_code == 503


def test_a_partner_timeout_is_transient(notifier, partner):
    SimFault.objects.create(system="partners", operation="maps-app", mode="timeout")

    try:
        result = notifier.send(_delivery(partners.partner_secrets(code=partner)))
    except TransientError:
        return
    assert result.status_code == 504 and not result.acknowledged


def test_the_simulated_partners_list_what_they_received(client, partner):
    SimulatedPartnerNotifier().send(_delivery(partners.partner_secrets(code=partner)))

    listed = client.get("/sim/partners/deliveries").json()

    assert [(d["partner"], d["signature_valid"], d["status_code"]) for d in listed] == [("maps-app", True, 200)]


def test_a_moved_endpoint_answers_a_redirect_that_is_not_followed(notifier, partner):
    SimFault.objects.create(system="partners", operation="maps-app", mode="moved")

    result = notifier.send(_delivery(partners.partner_secrets(code=partner)))

    assert not result.acknowledged and result.status_code == 308
    assert SimPartnerDelivery.objects.count() == 1  # one request: the new address was not posted to
