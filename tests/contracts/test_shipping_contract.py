"""The carrier contract, held by the simulated carrier in-process and by the REST adapter."""

from __future__ import annotations

import pytest

from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.models import SimFault, SimShipment
from closeout.integrations.shipping.adapter import HttpCarrier
from closeout.integrations.shipping.simulator import SimulatedCarrier, shipment_event_add

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["simulator", "http"])
def carrier(request):
    if request.param == "simulator":
        return SimulatedCarrier()
    return HttpCarrier(base_url="http://testserver/sim/shipping/api", transport=request.getfixturevalue("wsgi_transport"))


def test_one_key_gets_one_prepaid_label(carrier):
    first = carrier.create_return_label(idempotency_key="CL-1:return_label", reference="CL-1")
    again = carrier.create_return_label(idempotency_key="CL-1:return_label", reference="CL-1")

    assert first == again
    assert first.label_number.startswith("RL") and first.tracking_number.startswith("SP")
    assert SimShipment.objects.count() == 1


def test_tracking_events_come_back_in_order(carrier):
    label = carrier.create_return_label(idempotency_key="CL-2:return_label", reference="CL-2")
    shipment_event_add(tracking_number=label.tracking_number, code="PICKED_UP", location="Kowloon")
    shipment_event_add(tracking_number=label.tracking_number, code="DELIVERED", location="Warehouse")

    events = carrier.tracking_events(tracking_number=label.tracking_number)

    assert [e["code"] for e in events] == ["LABEL_CREATED", "PICKED_UP", "DELIVERED"]


def test_an_unknown_shipment_is_a_permanent_error(carrier):
    with pytest.raises(PermanentError):
        carrier.tracking_events(tracking_number="SP000000000")


def test_a_carrier_5xx_is_transient(carrier):
    SimFault.objects.create(system="shipping", operation="create_label", mode="error_5xx")
    with pytest.raises(TransientError):
        carrier.create_return_label(idempotency_key="CL-3:return_label", reference="CL-3")
    assert not SimShipment.objects.exists()
