"""Several `closeout worker` processes share one database: the work spreads over them, and when one
is killed with SIGKILL and never comes back, the others finish its cases with exactly one refund."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from closeout.audit.models import AuditEvent
from closeout.audit.services import audit_verify
from closeout.closures import dispatch, services, states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.integrations.models import SimCardBlock, SimRefund
from closeout.ledger.models import Posting
from closeout.ops.models import WorkerHeartbeat
from tests.fixtures import WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST_BEATS = dict(CLOSEOUT_HEARTBEAT_SEC="0.5", CLOSEOUT_HEARTBEAT_STALE_SEC="3", CLOSEOUT_WORKER_DRAIN_SEC="0")


def _open_cases(make_card, n):
    cards = [make_card("YKT", balance=1000 * (i + 1), bindings=["maps-app"] if i % 2 else ()) for i in range(n)]
    return cards, [services.closure_request(card=c, channel="web", requester="customer:web") for c in cards]


def _wait_closed(cases, timeout):
    for case in cases:
        wait_for(lambda ref=case.reference: ClosureCase.objects.get(reference=ref).state == states.CLOSED,
                 timeout=timeout)


def _assert_each_case_closed_once(cards, cases):
    for case, card in zip(cases, cards, strict=True):
        refunds = SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund")
        assert refunds.count() == 1, case.reference
        assert refunds.get().amount_minor == case.quote["refund"]
        assert Posting.objects.filter(key=f"{case.reference}:refund").count() == 1
        assert SimCardBlock.objects.filter(card_number=card.number).count() == 1
    assert SimRefund.objects.count() == len(cases)
    assert audit_verify() is None


def _executors_that_ran_actions() -> set[str]:
    done = dispatch.client().list_workflows(name="closeout.run_action", status="SUCCESS", load_input=False,
                                            load_output=False)
    return {w.executor_id for w in done}


def test_two_workers_share_the_cases(dbos_system, make_card, tmp_path):
    # The cases wait until both workers beat and have had time to start their queues: a worker
    # still launching would leave all the work to the other.
    cards, cases = _open_cases(make_card, 24)
    refs = [c.reference for c in cases]
    ClosureCase.objects.filter(reference__in=refs).update(next_action_due_at=clock.now() + timedelta(days=1))
    workers = [WorkerProcess(dbos_system, tmp_path, executor_id=name).start(**FAST_BEATS)
               for name in ("worker-a", "worker-b")]
    try:
        wait_for(lambda: WorkerHeartbeat.objects.count() == 2, timeout=30)
        time.sleep(3)
        ClosureCase.objects.filter(reference__in=refs).update(next_action_due_at=clock.now())
        _wait_closed(cases, timeout=120)
    finally:
        for w in workers:
            w.stop()

    _assert_each_case_closed_once(cards, cases)
    assert _executors_that_ran_actions() == {"worker-a", "worker-b"}
    assert set(WorkerHeartbeat.objects.values_list("executor_id", flat=True)) == {"worker-a", "worker-b"}
    assert all(b.stopped_at for b in WorkerHeartbeat.objects.all())  # a clean stop is recorded


def test_a_worker_killed_mid_refund_and_never_restarted_loses_nothing(dbos_system, make_card, tmp_path):
    victim = WorkerProcess(dbos_system, tmp_path, executor_id="worker-a")
    survivor = WorkerProcess(dbos_system, tmp_path, executor_id="worker-b")
    victim.start(CLOSEOUT_CRASH_AT="after:refund", CLOSEOUT_CRASH_DIR=str(tmp_path), **FAST_BEATS)
    try:
        wait_for(lambda: WorkerHeartbeat.objects.count() == 1, timeout=30)
        cards, cases = _open_cases(make_card, 8)
        # The provider refunded for worker-a, which died before recording it: its workflow is
        # PENDING on a dead executor that nobody restarts. The survivor, started only now, never
        # saw worker-a alive: it takes over from the stale heartbeat alone.
        assert victim.wait_killed(timeout=60) == -signal.SIGKILL
        survivor.start(**FAST_BEATS)
        _wait_closed(cases, timeout=90)
        # The refund's settlement webhook may move the case on before the sweep notices the dead
        # worker; the stranded workflow must still be taken over (and then find nothing to do).
        wait_for(lambda: WorkerHeartbeat.objects.get(executor_id="worker-a").recovered_at is not None,
                 timeout=30)
        wait_for(lambda: not dispatch.client().list_workflows(status=["PENDING", "ENQUEUED"], executor_id="worker-a",
                                                              load_input=False), timeout=30)
    finally:
        survivor.stop()
        victim.stop()

    _assert_each_case_closed_once(cards, cases)
    dead = WorkerHeartbeat.objects.get(executor_id="worker-a")
    assert dead.recovered_workflows >= 1
    assert dead.stopped_at is None  # it never said goodbye: the stale beat gave it away
    assert dispatch.client().list_workflows(status="PENDING", executor_id="worker-a", load_input=False) == []
    assert AuditEvent.objects.filter(action="worker.recovered", subject="worker:worker-a", actor="system").exists()


def _recover_cli(env, *extra):
    return subprocess.run([sys.executable, "-m", "closeout.cli", "worker", "recover", "--executor-id", "worker-a",
                           *extra], env=env, capture_output=True, text=True, timeout=60)


# Automatic recovery off in effect: an hour before a silent worker counts as dead.
SLOW_BEATS = dict(FAST_BEATS, CLOSEOUT_HEARTBEAT_STALE_SEC="3600")


def _one_case_whose_worker_dies_before_refund(dbos_system, make_card, tmp_path):
    """One case, and worker-a started to die before it calls the provider for it (so no settlement
    webhook can move the case on); worker-b, not started, is to take over. Returns
    (victim, survivor, cards, cases)."""
    victim = WorkerProcess(dbos_system, tmp_path, executor_id="worker-a")
    survivor = WorkerProcess(dbos_system, tmp_path, executor_id="worker-b")
    cards, cases = _open_cases(make_card, 1)
    victim.start(CLOSEOUT_CRASH_AT="before:refund", CLOSEOUT_CRASH_DIR=str(tmp_path), **SLOW_BEATS)
    return victim, survivor, cards, cases


def test_operator_recovers_a_named_dead_worker(dbos_system, make_card, tmp_path):
    # Automatic recovery is off (an hour before a silent worker counts as dead): only the
    # operator's command can move worker-a's refund on. The worker dies before it calls the
    # provider, so no settlement webhook can move the case either.
    victim, survivor, cards, cases = _one_case_whose_worker_dies_before_refund(dbos_system, make_card, tmp_path)
    try:
        assert victim.wait_killed(timeout=60) == -signal.SIGKILL
        # On another machine: no pid here tells that it is gone, only its silence would.
        WorkerHeartbeat.objects.filter(executor_id="worker-a").update(host="another-host.example")
        survivor.start(**SLOW_BEATS)
        wait_for(lambda: WorkerHeartbeat.objects.filter(executor_id="worker-b").exists(), timeout=30)
        time.sleep(3)  # several sweeps run on worker-b meanwhile
        assert ClosureCase.objects.get(reference=cases[0].reference).state == states.REFUND_PENDING

        refused = _recover_cli(survivor.env(**SLOW_BEATS))
        assert refused.returncode == 2 and "looks alive" in refused.stderr

        done = _recover_cli(survivor.env(**FAST_BEATS))
        assert done.returncode == 0, done.stderr
        # Its refund, and the sweep it was running if the kill came mid-sweep (sweeps run every second here).
        handed = re.search(r"(\d+) workflows of worker-a handed back", done.stdout)
        assert handed and int(handed[1]) in (1, 2), done.stdout
        _wait_closed(cases, timeout=60)
    finally:
        survivor.stop()
        victim.stop()

    _assert_each_case_closed_once(cards, cases)
    assert SimRefund.objects.get().request_count == 1  # asked once, by the worker that took over
    event = AuditEvent.objects.get(action="worker.recovered", subject="worker:worker-a")
    assert event.actor.startswith("operator:") and event.data == {"workflows": int(handed[1])}


def test_a_worker_killed_on_the_same_host_is_taken_over_without_waiting_for_its_silence(dbos_system, make_card,
                                                                                        tmp_path):
    # A silent worker counts as dead only after an hour here; one killed on this host is seen gone
    # by its pid, so the survivor's sweep hands its refund on at its next pass.
    victim, survivor, cards, cases = _one_case_whose_worker_dies_before_refund(dbos_system, make_card, tmp_path)
    try:
        assert victim.wait_killed(timeout=60) == -signal.SIGKILL
        survivor.start(**SLOW_BEATS)
        _wait_closed(cases, timeout=60)
    finally:
        survivor.stop()
        victim.stop()

    _assert_each_case_closed_once(cards, cases)
    assert SimRefund.objects.get().request_count == 1
    event = AuditEvent.objects.get(action="worker.recovered", subject="worker:worker-a")
    assert event.actor == "system" and event.reason == "process gone on this host"
