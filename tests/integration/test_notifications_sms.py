"""The SMS port: the built-in simulator and the HTTP adapter (speaking to the simulator's own
gateway endpoint on a live server) behave alike."""

from __future__ import annotations

import pytest

from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.models import SimFault
from closeout.integrations.sms.adapter import HttpSmsGateway
from closeout.integrations.sms.models import SimSmsMessage
from closeout.integrations.sms.simulator import SimulatedSmsGateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["simulator", "http"])
def gateway(request):
    if request.param == "simulator":
        return SimulatedSmsGateway()
    live_server = request.getfixturevalue("live_server")
    return HttpSmsGateway(url=f"{live_server.url}/sim/sms/messages", timeout=5)


def test_a_message_is_sent_once_per_idempotency_key(gateway):
    first = gateway.send(to="+85291234567", body="hello", idempotency_key="notice:1")
    again = gateway.send(to="+85291234567", body="hello", idempotency_key="notice:1")
    assert first.status == "accepted" and first.message_ref == again.message_ref
    row = SimSmsMessage.objects.get()
    assert row.request_count == 2 and row.to_masked == "+852••••••67" and "91234567" not in row.to_hash


def test_an_outage_is_transient_and_sends_nothing(gateway):
    SimFault.objects.create(system="sms", operation="send", mode="error_5xx")
    with pytest.raises(TransientError):
        gateway.send(to="+85291234567", body="hello", idempotency_key="notice:2")
    assert not SimSmsMessage.objects.exists()


def test_a_refused_number_is_permanent(gateway):
    with pytest.raises(PermanentError):
        gateway.send(to="not a number", body="hello", idempotency_key="notice:3")
