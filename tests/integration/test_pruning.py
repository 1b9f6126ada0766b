"""Old operational records go on the sweep's tick, a batch at a time; what a case, the ledger or
the audit trail needs stays, and nothing that was deleted makes an action run again."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest

from closeout.api.keys import apikey_create
from closeout.api.models import IdempotencyRecord
from closeout.audit.models import AuditEvent
from closeout.closures import dispatch, services, states, sweeper
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.identity import services as otp
from closeout.identity.models import OtpChallenge, OtpEvent
from closeout.integrations.models import SimRefund
from closeout.ops import pruning
from closeout.ops.models import RefusalCounted
from tests.fixtures import HKID, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

KEEP = timedelta(days=30)  # settings.RECORDS_KEEP_DAYS by default


@pytest.fixture
def no_dbos():
    """For the tests of the database's own records: no DBOS system database is set up for them."""
    with mock.patch.object(pruning, "finished_workflows_delete", return_value=0):
        yield


def _workflows(prefix: str) -> dict[str, str]:
    listed = dispatch.client().list_workflows(workflow_id_prefix=prefix, load_input=False, load_output=False)
    return {w.workflow_id: w.status for w in listed}


def _closed(card) -> ClosureCase:
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(id=case.id).state == states.CLOSED)
    wait_for(lambda: set(_workflows(case.reference).values()) == {"SUCCESS"})
    return ClosureCase.objects.get(id=case.id)


def test_a_closed_cases_workflows_go_after_the_keep_period_and_the_sweep_runs_none_again(dbos_worker, make_card):
    case = _closed(make_card("YKT", balance=900))
    finished = _workflows(case.reference)
    assert len(finished) >= 2, finished  # the case's actions, each a workflow

    assert pruning.old_records_delete(now=clock.now() + KEEP - timedelta(hours=1))["workflows"] == 0
    assert _workflows(case.reference) == finished

    later = clock.now() + KEEP + timedelta(hours=1)
    assert pruning.finished_workflows_delete(now=later, limit=10_000) >= len(finished)
    assert _workflows(case.reference) == {}

    assert sweeper.sweep_once(now=later) == 0
    assert SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund").count() == 1
    assert ClosureCase.objects.get(id=case.id).state == states.CLOSED
    assert AuditEvent.objects.filter(subject=case.reference).exists()  # the record of what happened stays


def test_a_finished_workflow_a_case_still_names_as_its_next_action_is_kept(dbos_worker, make_card):
    case = _closed(make_card("YKT", balance=900))
    named, *others = sorted(_workflows(case.reference))
    ClosureCase.objects.filter(id=case.id).update(next_action_id=named)

    pruning.finished_workflows_delete(now=clock.now() + KEEP + timedelta(hours=1), limit=10_000)

    assert _workflows(case.reference) == {named: "SUCCESS"}


def test_a_workflow_still_to_run_is_never_deleted(dbos_system, make_card):
    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web")
    dispatch.pump_once()  # handed to DBOS; no worker here runs it

    assert pruning.finished_workflows_delete(now=clock.now() + timedelta(days=3650)) == 0
    assert _workflows(case.reference) == {case.next_action_id: "ENQUEUED"}


def test_idempotency_records_replay_within_the_keep_period_and_go_after_it(dbos_system, client, make_card):
    key = apikey_create(name="partner-a")[1]
    card = make_card("YKT")
    body = json.dumps({"card_number": card.number, "holder_name": "陈大文",
                       "id_document": {"type": "hkid", "number": HKID}, "contact": {"email": "holder@example.test"},
                       "refund_destination": {"type": "original"}, "channel": "partner_api"})

    def post():
        return client.post("/api/v1/closures", data=body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="close-once")

    first = post()
    assert first.status_code == 201, first.content
    pruning.old_records_delete(now=clock.now() + KEEP - timedelta(hours=1))
    assert post().content == first.content

    pruning.old_records_delete(now=clock.now() + KEEP + timedelta(hours=1))
    assert not IdempotencyRecord.objects.exists()
    again = post()  # answered as a new request: the card has its case
    assert (again.status_code, again["Content-Type"]) == (409, "application/problem+json"), again.content
    assert ClosureCase.objects.filter(card=card).count() == 1  # the case itself is untouched


def test_one_time_codes_and_their_counts_go_once_the_portals_limits_no_longer_look_at_them(no_dbos, make_card):
    card = make_card("YKT")
    otp.otp_request(card_number=card.number, id_type="hkid", id_number=HKID, channel="sms",
                    client_address="198.51.100.7", language="en")
    assert OtpChallenge.objects.count() == 1 and OtpEvent.objects.count() == 1

    pruning.old_records_delete(now=clock.now() + timedelta(hours=12))
    assert OtpChallenge.objects.count() == 1  # an expired code is still told apart from a wrong one
    assert OtpEvent.objects.count() == 1  # the day's send limit still counts it

    pruning.old_records_delete(now=clock.now() + timedelta(days=2, hours=1))
    assert OtpChallenge.objects.count() == 0
    assert OtpEvent.objects.count() == 0


def test_refusal_marks_go_after_the_keep_period(no_dbos):
    now = clock.now()
    for step_id, at in enumerate([now - KEEP - timedelta(days=1), now - KEEP + timedelta(days=1)]):
        RefusalCounted.objects.create(workflow_id="CL-1:refund", step_id=step_id, system="payments",
                                      call="refund", counted_at=at)

    deleted = pruning.old_records_delete(now=now)

    assert deleted["refusal marks"] == 1
    assert list(RefusalCounted.objects.values_list("step_id", flat=True)) == [1]


def test_a_backlog_goes_a_batch_at_a_time_oldest_first(no_dbos):
    start = clock.now() - KEEP - timedelta(days=10)
    for step_id in range(5):
        RefusalCounted.objects.create(workflow_id="CL-1:refund", step_id=step_id, system="payments",
                                      call="refund", counted_at=start + timedelta(hours=step_id))

    assert pruning.old_records_delete(now=clock.now(), limit=2)["refusal marks"] == 2
    assert list(RefusalCounted.objects.order_by("step_id").values_list("step_id", flat=True)) == [2, 3, 4]
    assert pruning.old_records_delete(now=clock.now(), limit=2)["refusal marks"] == 2
    assert pruning.old_records_delete(now=clock.now(), limit=2)["refusal marks"] == 1
