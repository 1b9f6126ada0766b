"""Payment provider faults against the real worker: timeouts, 5xx, declines, duplicate,
out-of-order, lost and forged webhooks. None may pay twice, lose a case, or leave a case stuck
anywhere but the staff's needs-attention queue."""

from __future__ import annotations

import json
import time

import pytest

from closeout.aftercare.reconcile import reconcile_run
from closeout.audit.models import AuditEvent
from closeout.closures import services, states
from closeout.closures.models import ClosureCase, Refund
from closeout.integrations import crypto
from closeout.integrations.models import SimFault, SimOutbox, SimRefund, WebhookReceipt
from closeout.integrations.payments.simulator import webhook_secret
from closeout.ledger.models import Posting
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _case(reference) -> ClosureCase:
    return ClosureCase.objects.get(reference=reference)


def _paid_once(reference: str) -> None:
    assert SimRefund.objects.filter(idempotency_key=f"{reference}:refund").count() == 1
    assert SimRefund.objects.count() == 1
    assert Posting.objects.filter(key=f"{reference}:refund").count() == 1


def _workflow_ended(workflow_id: str) -> bool:
    from closeout.closures import dispatch

    found = dispatch.client().list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
    return bool(found) and found[0].status in ("SUCCESS", "ERROR")


def _open(make_card, **kwargs):
    card = make_card("YKT", balance=kwargs.pop("balance", 900), **kwargs)
    return services.closure_request(card=card, channel="web", requester="customer:web")


def test_timeouts_that_outlast_the_retries_park_the_case_and_a_resume_pays_nothing_more(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="timeout", remaining=5)
    SimFault.objects.create(system="payments", operation="webhook", mode="drop_webhook", remaining=10)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    parked = _case(case.reference)
    assert parked.resume_to == states.REFUND_PENDING and "refund" in parked.attention_reason
    assert SimRefund.objects.get().request_count == 5  # the money moved on the first call

    services.closure_resume(reference=case.reference, actor="staff:lee", note="provider back")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    _paid_once(case.reference)
    assert SimRefund.objects.get().request_count == 6


def test_a_provider_outage_that_outlasts_the_retries_names_the_provider_s_answer(dbos_worker, make_card, caplog):
    # Staff and the on-call engineer see why the case stopped, not that "a step exceeded its retries".
    SimFault.objects.create(system="payments", operation="refund", mode="error_5xx", remaining=5)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.FAILED)
    reason = _case(case.reference).attention_reason
    assert reason == "refund failed: payment provider answered 503 (after 5 attempts)"
    assert "DBOS" not in reason and "retries" not in reason
    assert any(r.name == "closeout.closures.workflow" and "payment provider answered 503" in r.getMessage()
               for r in caplog.records)
    assert not SimRefund.objects.exists()


def test_a_refund_whose_every_answer_timed_out_is_settled_once_by_its_webhook(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="timeout", remaining=5)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    wait_for(lambda: _workflow_ended(f"{case.reference}:refund"))  # the retries ran out meanwhile

    _paid_once(case.reference)
    assert WebhookReceipt.objects.get().outcome == "applied"
    assert _case(case.reference).state == states.CLOSED  # the exhausted retries did not park it


def test_a_5xx_before_the_money_moved_is_retried_with_the_same_key(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="error_5xx", remaining=2)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    _paid_once(case.reference)
    assert SimRefund.objects.get().request_count == 1


def test_a_declined_refund_goes_to_staff_with_the_reason_and_a_resume_asks_the_provider_afresh_once(
        dbos_worker, make_card):
    # The provider answers a key it has seen with its first answer: resumed under the declined
    # refund's key, the refund would be declined again forever. A declined refund moved no money,
    # so the resume asks for a new one, under a key of its own, and pays exactly once.
    SimFault.objects.create(system="payments", operation="refund", mode="decline")
    case = _open(make_card)
    wait_for(lambda: _case(case.reference).state == states.FAILED)
    assert any("destination account closed" in n for n in _case(case.reference).events.values_list("note", flat=True))
    declined = Refund.objects.get(case__reference=case.reference)
    assert declined.failure_reason == "destination account closed"

    services.closure_resume(reference=case.reference, actor="staff:lee", note="customer says the account is open")
    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    by_key = dict(SimRefund.objects.values_list("idempotency_key", "status"))
    assert by_key == {f"{case.reference}:refund": "failed", f"{case.reference}:refund:2": "succeeded"}
    assert SimRefund.objects.get(idempotency_key=f"{case.reference}:refund").request_count == 1
    refund = Refund.objects.get(case__reference=case.reference)
    assert (refund.idempotency_key, refund.status) == (f"{case.reference}:refund:2", "succeeded")
    assert refund.provider_ref == SimRefund.objects.get(status="succeeded").provider_ref
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
    retried = AuditEvent.objects.get(action="closure.refund.retried", subject=case.reference)
    assert retried.actor == "staff:lee" and retried.data["declined"] == f"{case.reference}:refund"
    assert reconcile_run(references=[case.reference]) == []  # a declined attempt is no second refund


def test_a_late_failure_webhook_of_a_declined_refund_does_not_stop_its_retry(client, make_card, settings):
    settings.CLOSEOUT_DISPATCH = False  # the steps are run by hand, in the order a slow webhook allows
    case = _open(make_card)
    ClosureCase.objects.filter(id=case.id).update(state=states.REFUND_PENDING, next_action="refund",
                                                  next_action_id=f"{case.reference}:refund")
    services.refund_record(reference=case.reference, workflow_id=f"{case.reference}:refund",
                           result={"status": "failed", "provider_ref": "re_1", "failure_reason": "card expired",
                                   "idempotency_key": f"{case.reference}:refund"})
    services.closure_resume(reference=case.reference, actor="staff:lee")

    # The provider's webhook for the declined refund arrives only now, while the new one is asked.
    body, headers = _signed_event(case.reference, amount=case.quote["refund"], status="failed")
    answer = client.post("/webhooks/payments", body, content_type="application/json", **headers)

    assert answer.json() == {"outcome": "ignored"}
    assert _case(case.reference).state == states.REFUND_PENDING  # still asking, not parked again
    order = services.refund_order(reference=case.reference, workflow_id=_case(case.reference).next_action_id)
    assert order["idempotency_key"] == f"{case.reference}:refund:2"
    services.refund_record(reference=case.reference, workflow_id=_case(case.reference).next_action_id,
                           result={"status": "succeeded", "provider_ref": "re_2",
                                   "idempotency_key": order["idempotency_key"]})
    assert _case(case.reference).state == states.DEACTIVATING
    assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1


def test_a_refund_failed_without_the_provider_s_word_is_resumed_under_its_own_key(client, make_card, settings):
    # "No answer" is not "declined": the provider may hold that refund, so a new key could pay twice.
    settings.CLOSEOUT_DISPATCH = False
    case = _open(make_card)
    ClosureCase.objects.filter(id=case.id).update(state=states.REFUND_PENDING, next_action="refund",
                                                  next_action_id=f"{case.reference}:refund")
    services.refund_record(reference=case.reference, workflow_id=f"{case.reference}:refund",
                           result={"status": "failed", "failure_reason": "no answer in refund file"})
    services.closure_resume(reference=case.reference, actor="staff:lee")

    order = services.refund_order(reference=case.reference, workflow_id=_case(case.reference).next_action_id)
    assert order["idempotency_key"] == f"{case.reference}:refund"


def test_duplicated_settlement_webhooks_settle_the_refund_once(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="pending")
    SimFault.objects.create(system="payments", operation="webhook", mode="duplicate_webhook", remaining=5)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    wait_for(lambda: not SimOutbox.objects.filter(system="payments", delivered_at__isnull=True).exists())

    _paid_once(case.reference)
    assert SimOutbox.objects.filter(system="payments", attempts__gte=2).exists()
    outcomes = list(WebhookReceipt.objects.values_list("outcome", flat=True))
    assert len(outcomes) == SimOutbox.objects.filter(system="payments").count()  # duplicates left no receipt


def test_a_stale_pending_webhook_arriving_after_the_settlement_changes_nothing(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="pending")
    SimFault.objects.create(system="payments", operation="webhook", mode="out_of_order_webhook", remaining=1)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED)
    wait_for(lambda: WebhookReceipt.objects.count() == 2, timeout=20)

    _paid_once(case.reference)
    created = SimOutbox.objects.filter(system="payments").order_by("id").first()
    stale = WebhookReceipt.objects.get(event_id=json.loads(created.body)["id"])
    assert stale.outcome == "ignored"
    assert _case(case.reference).state == states.CLOSED


def test_a_lost_webhook_is_covered_by_polling(dbos_worker, make_card):
    SimFault.objects.create(system="payments", operation="refund", mode="pending")
    SimFault.objects.create(system="payments", operation="webhook", mode="drop_webhook", remaining=10)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED, timeout=40)

    _paid_once(case.reference)
    assert not WebhookReceipt.objects.exists()


def test_a_refund_the_provider_reports_pending_is_polled_again_later_until_it_reports_it_paid(dbos_worker, make_card,
                                                                                               monkeypatch):
    # The `pending` fault on refund_status had no effect: the first poll found the refund paid.
    from datetime import timedelta

    from closeout.closures import services
    from closeout.ops import observe

    monkeypatch.setattr(services, "REFUND_POLL", timedelta(seconds=1))  # the first wait (5 s, then longer)

    def polls() -> float:
        return sum(sample.value for family in observe.LOCAL.collect() for sample in family.samples
                   if sample.name == "closeout_step_duration_seconds_count"
                   and sample.labels.get("step") == "refund_status")

    before = polls()
    SimFault.objects.create(system="payments", operation="refund", mode="pending")
    SimFault.objects.create(system="payments", operation="webhook", mode="drop_webhook", remaining=10)
    SimFault.objects.create(system="payments", operation="refund_status", mode="pending", remaining=2)
    case = _open(make_card)

    wait_for(lambda: _case(case.reference).state == states.CLOSED, timeout=90)

    assert polls() - before == 3  # "pending", "pending", then paid
    assert not SimFault.objects.filter(operation="refund_status", remaining__gt=0).exists()
    _paid_once(case.reference)
    waits = _case(case.reference).events.filter(note="refund accepted, waiting for settlement")
    assert waits.count() == 1  # the wait is told once, not at every poll


def _signed_event(reference: str, *, amount: int, status="succeeded", at=None, secret=None) -> tuple[bytes, dict]:
    body = json.dumps({"id": f"evt_{time.time_ns()}", "type": "refund.updated", "created": int(time.time()),
                       "data": {"object": {"id": "re_x", "object": "refund", "amount": amount, "currency": "cny",
                                           "status": status, "metadata": {"idempotency_key": f"{reference}:refund"}}}})
    body = body.encode()
    return body, {"HTTP_STRIPE_SIGNATURE": crypto.timestamped_sign(secret or webhook_secret(), body, at=at)}


@pytest.mark.django_db
def test_forged_stale_and_replayed_webhooks_move_nothing(client, make_card):
    case = _open(make_card)  # dispatch is off: the case waits in `submitted`

    forged = _signed_event(case.reference, amount=case.quote["refund"], secret="whsec_forger")
    stale = _signed_event(case.reference, amount=case.quote["refund"], at=int(time.time()) - 600)
    for body, headers in (forged, stale):
        response = client.post("/webhooks/payments", body, content_type="application/json", **headers)
        assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    assert not WebhookReceipt.objects.exists()

    wrong_amount = _signed_event(case.reference, amount=1)
    first = client.post("/webhooks/payments", wrong_amount[0], content_type="application/json", **wrong_amount[1])
    replay = client.post("/webhooks/payments", wrong_amount[0], content_type="application/json", **wrong_amount[1])

    assert (first.json(), replay.json()) == ({"outcome": "amount_mismatch"}, {"outcome": "duplicate"})
    assert _case(case.reference).state == states.SUBMITTED
    assert not Refund.objects.exists()


def test_a_refund_the_provider_holds_pending_is_polled_ever_less_often_and_shows_its_age(
        client, make_card, settings, monkeypatch):
    # A bank transfer may stay pending for days. Polled every 5 s with an event and an audit
    # record each time, it wrote thousands a day to the case's timeline and the audit chain, and
    # each poll made the case look freshly moved; nothing said how long the provider had held it.
    from closeout.common import clock

    settings.CLOSEOUT_DISPATCH = False
    case = _open(make_card)
    ClosureCase.objects.filter(id=case.id).update(state=states.REFUND_PENDING, next_action="refund",
                                                  next_action_id=f"{case.reference}:refund")
    pending = {"status": "pending", "provider_ref": "re_1", "idempotency_key": f"{case.reference}:refund"}
    services.refund_record(reference=case.reference, workflow_id=f"{case.reference}:refund", result=pending)
    asked = _case(case.reference)
    assert asked.next_action == "refund_status"

    waits = []
    for _ in range(12):  # each poll answers "still pending" when it falls due
        polled = _case(case.reference)
        waits.append((polled.next_action_due_at - (clock.now())).total_seconds())
        due = polled.next_action_due_at
        monkeypatch.setattr(clock, "now", lambda at=due: at)
        services.refund_record(reference=case.reference, workflow_id=polled.next_action_id, result=pending)
        # The same answer recorded twice (a step run again) schedules nothing more.
        again = _case(case.reference).next_action_id
        services.refund_record(reference=case.reference, workflow_id=polled.next_action_id, result=pending)
        assert _case(case.reference).next_action_id == again

    assert waits[0] <= 5 and waits == sorted(waits) and waits[-1] == 3600
    held = _case(case.reference)
    assert held.state == states.REFUND_PENDING and held.next_action == "refund_status"
    assert held.updated_at == asked.updated_at  # polling is not moving: the case's age shows
    assert held.events.filter(note="refund accepted, waiting for settlement").count() == 1
    assert AuditEvent.objects.filter(subject=case.reference, action="closure.refund_status.scheduled").count() == 1

    metrics = client.get("/metrics").content.decode()
    age = next(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("closeout_refund_oldest_pending_seconds "))
    assert age == (clock.now() - Refund.objects.get(case=held).created_at).total_seconds() > 3600
