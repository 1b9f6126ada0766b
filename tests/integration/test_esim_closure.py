"""Travel SIM and eSIM closures through the worker: pro-rata plan refund, number deactivation,
eSIM release at the SM-DP+, waiting for the device's signed deletion notification (kept as
proof), staff override after the wait, and closure."""

from __future__ import annotations

import base64
import json

import pytest

from closeout.closures import services, states
from closeout.closures.models import ClosureCase
from closeout.integrations.models import EsimDeletionProof, SimEsimProfile, SimNumberDeactivation, SimRefund
from closeout.integrations.smdp import simulator as smdp
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def devices_wait(monkeypatch):
    """Simulated customers delete their eSIM only when a test says so."""
    monkeypatch.setenv("CLOSEOUT_SIM_ESIM_DEVICE_DELETES_AFTER", "off")


def _case(reference) -> ClosureCase:
    return ClosureCase.objects.get(reference=reference)


def _notes(reference) -> list[str]:
    return list(_case(reference).events.values_list("note", flat=True))


def test_a_travel_sim_gets_its_unused_plan_back_and_its_number_deactivated(dbos_worker, make_card):
    card = make_card("TSIM", balance=0, plan_days_left=10)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    assert case.quote["plan_refund"] > 0

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    refund = SimRefund.objects.get()
    assert (refund.idempotency_key, refund.amount_minor) == (f"{case.reference}:refund", case.quote["refund"])
    assert SimNumberDeactivation.objects.filter(iccid=card.number).count() == 1
    assert not SimEsimProfile.objects.exists()


def test_an_esim_on_a_phone_closes_only_after_the_signed_deletion_notice(dbos_worker, make_card, client):
    card = make_card("ESIM", balance=0, plan_days_left=20, physical=False)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).deadline_at is not None)
    waiting = _case(case.reference)
    assert waiting.state == states.DEACTIVATING and waiting.next_action == ""
    assert "waiting for the eSIM profile to be deleted on the device" in _notes(case.reference)
    assert SimEsimProfile.objects.get(iccid=card.number).state == "ENABLED"

    assert client.post(f"/sim/smdp/devices/{card.number}/delete").status_code == 202
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    proof = EsimDeletionProof.objects.get(iccid=card.number)
    assert proof.operation == "notificationDelete" and proof.signature
    assert SimEsimProfile.objects.get(iccid=card.number).state == "UNAVAILABLE"
    assert SimRefund.objects.get().amount_minor == case.quote["refund"]
    closed = _case(case.reference).events.get(to_state=states.CLOSED)
    assert closed.data["deletion_proof"] == proof.id
    assert _case(case.reference).deadline_at is None


def test_an_esim_never_downloaded_is_released_without_waiting(dbos_worker, make_card):
    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    smdp.profile_seed(iccid=card.number, state="RELEASED")
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    assert SimEsimProfile.objects.get(iccid=card.number).state == "UNAVAILABLE"
    assert "eSIM profile released (never downloaded)" in _notes(case.reference)
    assert not EsimDeletionProof.objects.exists()


def test_a_device_that_never_deletes_sends_the_case_to_staff_who_may_close_it_with_a_reason(
        dbos_worker, make_card, settings):
    settings.ESIM_DELETION_WAIT_SECONDS = 1
    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    assert _case(case.reference).attention_reason == services.ATTENTION_ESIM

    with pytest.raises(services.UnableToOverride):
        services.esim_deletion_override(reference=case.reference, actor="staff:lee", reason="")
    services.esim_deletion_override(reference=case.reference, actor="staff:lee",
                                    reason="customer's phone was lost; operator confirmed")

    closed = _case(case.reference)
    assert closed.state == states.CLOSED
    assert any("customer's phone was lost" in note for note in _notes(case.reference))


def test_a_deletion_notice_arriving_after_the_timeout_takes_the_case_out_of_needs_attention(
        dbos_worker, make_card, settings):
    settings.ESIM_DELETION_WAIT_SECONDS = 1
    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    wait_for(lambda: _case(case.reference).state == states.FAILED)

    smdp.device_delete(iccid=card.number)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    assert EsimDeletionProof.objects.filter(iccid=card.number).count() == 1


@pytest.mark.django_db
def test_a_forged_or_uncertified_deletion_notice_is_refused(client, make_card):
    card = make_card("ESIM", balance=0, physical=False)
    smdp.profile_seed(iccid=card.number, state="ENABLED")
    smdp.device_delete(iccid=card.number)
    from closeout.integrations.models import SimOutbox

    genuine = json.loads(SimOutbox.objects.get(system="smdp").body)
    forged = json.loads(json.dumps(genuine))
    forged["pendingNotification"]["otherSignedNotification"]["tbsOtherNotification"]["iccid"] = "8985202999999999990"
    rogue = json.loads(json.dumps(genuine))
    rogue["pendingNotification"]["otherSignedNotification"]["euiccCertificate"]["signature"] = base64.b64encode(
        b"\0" * 64).decode()

    for body in (forged, rogue, {"pendingNotification": {}}):
        response = client.post("/gsma/rsp2/es9plus/handleNotification", body, content_type="application/json")
        assert response.status_code == 400
    assert not EsimDeletionProof.objects.exists()

    for _ in range(2):  # the genuine one, twice: recorded once
        response = client.post("/gsma/rsp2/es9plus/handleNotification", genuine, content_type="application/json")
        assert response.status_code == 204
    assert EsimDeletionProof.objects.count() == 1
