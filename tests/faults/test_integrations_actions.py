"""Faults of the card system, the SM-DP+ and the partner apps against the real worker: retried
with the same keys, never done twice, and a case that cannot go on is always in the staff's
needs-attention queue, from where a resume finishes it."""

from __future__ import annotations

import pytest

from closeout.aftercare.reconcile import reconcile_run
from closeout.closures import services, states
from closeout.closures.models import ClosureCase
from closeout.integrations.models import (
    EsimDeletionProof,
    SimCardBlock,
    SimFault,
    SimNumberDeactivation,
    SimPartnerDelivery,
    SimRefund,
    UnbindDelivery,
)
from closeout.integrations.smdp import simulator as smdp
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_retries(settings, monkeypatch):
    settings.UNBIND_RETRY_BASE_SECONDS = 0
    monkeypatch.setattr(services, "UNBIND_ROUNDS", 3)
    monkeypatch.setenv("CLOSEOUT_SIM_ESIM_DEVICE_DELETES_AFTER", "off")


def _case(reference) -> ClosureCase:
    return ClosureCase.objects.get(reference=reference)


def test_a_partner_outage_is_retried_with_the_same_message_until_acknowledged(dbos_worker, make_card):
    SimFault.objects.create(system="partners", operation="maps-app", mode="error_5xx", remaining=4)
    card = make_card("YKT", balance=500, bindings=["maps-app"])
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    received = SimPartnerDelivery.objects.filter(partner="maps-app")
    assert {d.message_id for d in received} == {f"{case.reference}:unbind:maps-app"}
    assert [d.status_code for d in received.order_by("id")] == [503, 503, 503, 503, 200]
    delivery = UnbindDelivery.objects.get(case__reference=case.reference)
    assert (delivery.status, delivery.attempts) == ("ACKNOWLEDGED", 2)
    assert SimRefund.objects.count() == 1


def test_a_partner_that_never_answers_puts_the_case_in_needs_attention_and_a_resume_finishes_it(
        dbos_worker, make_card):
    fault = SimFault.objects.create(system="partners", operation="transit-wallet", mode="error_5xx", remaining=100)
    card = make_card("YKT", balance=500, bindings=["maps-app", "transit-wallet"])
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    parked = _case(case.reference)
    assert parked.attention_reason == "unbind: no acknowledgement from transit-wallet"
    assert parked.resume_to == states.UNBINDING
    by_partner = {d.partner: (d.status, d.attempts) for d in UnbindDelivery.objects.all()}
    assert by_partner == {"maps-app": ("ACKNOWLEDGED", 1), "transit-wallet": ("FAILED", 3)}

    SimFault.objects.filter(id=fault.id).update(remaining=0)
    services.closure_resume(reference=case.reference, actor="staff:lee", note="partner fixed their endpoint")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    assert SimPartnerDelivery.objects.filter(partner="maps-app").count() == 1  # not told twice
    assert SimRefund.objects.count() == 1


def test_a_card_system_refusal_parks_the_case_at_once_naming_it_and_a_resume_blocks_the_card_once(
        dbos_worker, make_card):
    SimFault.objects.create(system="card_system", operation="block", mode="decline")
    card = make_card("YKT", balance=500)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    parked = _case(case.reference)
    assert parked.attention_reason == "deactivate failed: card system refused to block the card"
    assert parked.resume_to == states.DEACTIVATING
    assert not SimCardBlock.objects.exists()  # a refusal is not retried: it would say no again

    services.closure_resume(reference=case.reference, actor="staff:lee", note="card system fixed")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    assert SimCardBlock.objects.get().card_number == card.number
    assert SimRefund.objects.count() == 1


def test_a_travel_sim_whose_number_the_card_system_refused_is_taken_out_of_service_on_resume(
        dbos_worker, make_card):
    # A SIM is closed by taking its number out of service, not by blocking it like a stored-value
    # card: resuming must run the SIM's own action, or the number stays live behind a closed case.
    SimFault.objects.create(system="card_system", operation="deactivate_number", mode="decline")
    card = make_card("TSIM", balance=0, plan_days_left=8)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    wait_for(lambda: _case(case.reference).state == states.FAILED)
    assert _case(case.reference).attention_reason.startswith("deactivate_number failed")

    services.closure_resume(reference=case.reference, actor="staff:lee", note="card system fixed")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    assert SimNumberDeactivation.objects.get().iccid == card.number
    assert not SimCardBlock.objects.exists()
    assert reconcile_run(references=[case.reference]) == []


def test_number_deactivation_timeouts_are_retried_under_one_key(dbos_worker, make_card):
    SimFault.objects.create(system="card_system", operation="deactivate_number", mode="timeout", remaining=2)
    card = make_card("TSIM", balance=0, plan_days_left=8)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    row = SimNumberDeactivation.objects.get()
    assert (row.idempotency_key, row.request_count) == (f"{case.reference}:deactivate_number", 3)


def test_an_smdp_outage_parks_the_esim_case_and_a_resume_releases_it_once(dbos_worker, make_card):
    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    smdp.profile_seed(iccid=card.number, state="RELEASED")
    fault = SimFault.objects.create(system="smdp", operation="cancel_order", mode="error_5xx", remaining=100)
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    assert _case(case.reference).attention_reason.startswith("release_profile failed")
    assert SimRefund.objects.count() == 1

    SimFault.objects.filter(id=fault.id).update(remaining=0)
    services.closure_resume(reference=case.reference, actor="staff:lee")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    assert SimRefund.objects.count() == 1
    assert smdp.SimEsimProfile.objects.get(iccid=card.number).state == "UNAVAILABLE"
    # The resume asked the SM-DP+ again; the number, out of service already, was left alone.
    assert SimNumberDeactivation.objects.get().request_count == 1
    assert not SimCardBlock.objects.exists()
    assert reconcile_run(references=[case.reference]) == []


def test_duplicated_and_delayed_deletion_notices_close_the_case_once(dbos_worker, make_card):
    SimFault.objects.create(system="smdp", operation="webhook", mode="out_of_order_webhook", remaining=1)
    SimFault.objects.create(system="smdp", operation="webhook", mode="duplicate_webhook", remaining=3)
    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    wait_for(lambda: _case(case.reference).deadline_at is not None)

    smdp.device_delete(iccid=card.number)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    assert EsimDeletionProof.objects.count() == 1
    assert _case(case.reference).events.filter(to_state=states.CLOSED).count() == 1
