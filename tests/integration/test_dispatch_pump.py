"""The case row is the outbox: a request only commits the case; a worker's pump hands the action to
DBOS once, even when two pumps run or the marking is lost."""

from __future__ import annotations

import pytest

from closeout.closures import dispatch, services
from closeout.closures.models import ClosureCase

pytestmark = pytest.mark.django_db(transaction=True)


def _workflows(ids):
    return {w.workflow_id: w.status for w in dispatch.client().list_workflows(workflow_ids=ids, load_input=False)}


def test_a_request_enqueues_nothing_until_the_pump_hands_the_action_over(dbos_system, make_card):
    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web")
    assert _workflows([case.next_action_id]) == {}

    assert dispatch.pump_once() == 1
    assert _workflows([case.next_action_id]) == {case.next_action_id: "ENQUEUED"}
    case.refresh_from_db()
    assert case.next_action_queued == case.next_action_id
    assert dispatch.pump_once() == 0  # a second pump (or worker) finds nothing left to hand over


def test_a_lost_mark_hands_the_same_workflow_over_again_and_it_still_exists_once(dbos_system, make_card):
    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web")
    dispatch.pump_once()
    ClosureCase.objects.filter(id=case.id).update(next_action_queued="")  # died between enqueue and mark

    assert dispatch.pump_once() == 1
    listed = dispatch.client().list_workflows(workflow_ids=[case.next_action_id], load_input=False)
    assert [w.workflow_id for w in listed] == [case.next_action_id]


def test_an_action_due_later_waits_for_its_time(dbos_system, make_card):
    from datetime import timedelta

    from closeout.common import clock

    case = services.closure_request(card=make_card("YKT"), channel="web", requester="customer:web")
    later = clock.now() + timedelta(minutes=5)
    ClosureCase.objects.filter(id=case.id).update(next_action_due_at=later)

    assert dispatch.pump_once() == 0
    assert dispatch.pump_once(now=later) == 1
