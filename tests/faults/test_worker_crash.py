"""Kill -9 the worker process at every step boundary; after a restart every case still closes with
exactly one refund at the provider, one refund posting and one block."""

from __future__ import annotations

import os
import signal

import pytest

from closeout.audit.services import audit_verify
from closeout.closures import services, states
from closeout.closures.models import ClosureCase
from closeout.integrations.models import SimCardBlock, SimRefund
from closeout.ledger.models import Posting
from tests.fixtures import WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CRASH_POINTS = [
    "after_commit",  # a transition committed, its action not yet enqueued
    "before:closure_verify",
    "after:closure_verify",
    "after:closure_settle",
    "before:refund_order",
    "before:refund",  # about to call the payment provider
    "after:refund",  # the provider refunded; the answer is not recorded yet
    "before:refund_record",
    "after:refund_record",
    "before:block",
    "after:block",  # the card system blocked the card; not recorded yet
    "after:closure_deactivated",
    "after:send",  # the partner acknowledged the unbind webhook; not recorded yet
    "before:unbind_record",
    "after:unbind_record",
]


# The whole matrix runs on PostgreSQL (as production); SQLite runs the points where money or an
# external system moved without being recorded, plus the lost hand-over.
SQLITE_POINTS = ["after_commit", "after:refund", "after:block", "after:send"]
POINTS = CRASH_POINTS if os.environ.get("CLOSEOUT_TEST_ENGINE") == "postgres" else SQLITE_POINTS
# The suite kills once at each point; `make crash-matrix` runs each point CLOSEOUT_CRASH_RUNS times.
RUNS = int(os.environ.get("CLOSEOUT_CRASH_RUNS", "1"))


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("run", range(1, RUNS + 1), ids=lambda run: f"run{run}")  # every point once, then again
def test_killed_worker_resumes_and_closes_every_case_once(point, run, dbos_system, make_card, tmp_path):
    cards = [make_card("YKT", balance=30000), make_card("YKT", balance=100, bindings=["maps-app"])]
    cases = [services.closure_request(card=c, channel="web", requester="customer:web") for c in cards]

    worker = WorkerProcess(dbos_system, tmp_path).start(CLOSEOUT_CRASH_AT=point, CLOSEOUT_CRASH_DIR=str(tmp_path))
    try:
        assert worker.wait_killed(timeout=60) == -signal.SIGKILL, f"worker did not die at {point}"
        worker.start()
        for case in cases:
            wait_for(lambda ref=case.reference: ClosureCase.objects.get(reference=ref).state == states.CLOSED,
                     timeout=60)
    finally:
        worker.stop()

    for case, card in zip(cases, cards, strict=True):
        refunds = SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund")
        assert refunds.count() == 1
        assert refunds.get().amount_minor == case.quote["refund"]
        assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
        assert SimCardBlock.objects.filter(card_number=card.number).count() == 1
    assert SimRefund.objects.count() == len(cases)
    assert audit_verify() is None
