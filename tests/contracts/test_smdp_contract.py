"""The SM-DP+ (ES2+) contract, held by the simulator in-process and by the ES2+ client talking
to the simulator's HTTP surface."""

from __future__ import annotations

import pytest

from closeout.integrations.errors import TransientError
from closeout.integrations.models import SimFault
from closeout.integrations.smdp import port
from closeout.integrations.smdp.adapter import Es2PlusClient
from closeout.integrations.smdp.simulator import SimulatedSmdpPlus, profile_seed

pytestmark = pytest.mark.django_db
ICCID = "8985202000000000017"


@pytest.fixture(params=["simulator", "es2plus"])
def smdp(request):
    if request.param == "simulator":
        return SimulatedSmdpPlus()
    return Es2PlusClient(base_url="http://testserver/sim/smdp", transport=request.getfixturevalue("wsgi_transport"))


@pytest.mark.parametrize("state", ["ALLOCATED", "CONFIRMED", "RELEASED", "DELETED"])
def test_cancel_order_ends_a_profile_that_is_on_no_device(smdp, state):
    profile_seed(iccid=ICCID, state=state)

    result = smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-1:release")

    assert result.executed and result.profile_state == "UNAVAILABLE"
    assert smdp.profile_status(iccid=ICCID) == "UNAVAILABLE"


@pytest.mark.parametrize("state", ["DOWNLOADED", "INSTALLED", "ENABLED"])
def test_cancel_order_is_refused_while_the_profile_is_on_a_device(smdp, state):
    profile_seed(iccid=ICCID, state=state)

    result = smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-2:release")

    assert not result.executed
    assert (result.subject_code, result.reason_code) == (port.SUBJECT_ICCID, port.REASON_INSTALLED)
    assert smdp.profile_status(iccid=ICCID) == state


def test_a_repeated_function_call_id_returns_the_first_answer(smdp):
    profile_seed(iccid=ICCID, state="ENABLED")
    first = smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-3:release")
    from closeout.integrations.smdp.simulator import device_delete

    device_delete(iccid=ICCID)

    replay = smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-3:release")
    fresh = smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-3:release:2")

    assert replay == first and not replay.executed
    assert fresh.executed and fresh.profile_state == "UNAVAILABLE"


def test_release_profile_makes_a_confirmed_profile_downloadable(smdp):
    profile_seed(iccid=ICCID, state="CONFIRMED")

    assert smdp.release_profile(iccid=ICCID, function_call_id="op-1").executed
    assert smdp.profile_status(iccid=ICCID) == "RELEASED"
    assert not smdp.release_profile(iccid=ICCID.replace("17", "25"), function_call_id="op-2").executed


def test_a_5xx_is_transient_and_changes_nothing(smdp):
    profile_seed(iccid=ICCID, state="RELEASED")
    SimFault.objects.create(system="smdp", operation="cancel_order", mode="error_5xx")

    with pytest.raises(TransientError):
        smdp.cancel_order(iccid=ICCID, final_profile_status="Unavailable", function_call_id="CL-4:release")

    assert smdp.profile_status(iccid=ICCID) == "RELEASED"


def test_es2_requests_without_the_header_identifiers_are_refused(client):
    response = client.post("/sim/smdp/gsma/rsp2/es2plus/cancelOrder", {"iccid": ICCID},
                           content_type="application/json")

    assert response.status_code == 400
