"""Worker liveness and recovery of a dead worker's workflows.

DBOS resumes a worker's PENDING workflows only when a process with the same executor id starts
again. When a machine is gone for good, its workflows would sit PENDING forever. Each worker
therefore beats into `WorkerHeartbeat`; the sweep (once per tick across all workers) finds a worker
whose beat went stale, or that stopped, and hands its PENDING workflows back to their queues, where
any live worker dequeues them and resumes them from their last completed step. The operator command
`closeout worker recover --executor-id ID` does the same for one named worker.

Handing back is safe to repeat: only rows still PENDING *and* owned by the dead executor move, so a
workflow another worker already took is never touched. If a "dead" worker was only paused and wakes
up, both may run a step of the same workflow; the steps' idempotency keys and state checks make
that harmless (one refund per case is a database constraint).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from closeout.audit.services import audit_record
from closeout.common import clock
from closeout.ops.models import WorkerHeartbeat

log = logging.getLogger(__name__)


class UnableToRecover(Exception):
    """The named worker is alive (or is this process); recovering it would run its work twice."""


class UnknownExecutor(Exception):
    """No worker ever ran under this id: a typo would otherwise "recover" nothing and look done."""

    def __init__(self, executor_id: str, known: list[str]):
        self.executor_id = executor_id
        self.known = known
        super().__init__(f"no worker has run as {executor_id!r}; known workers: {', '.join(known) or 'none'}")


class ExecutorIdInUse(Exception):
    """Another live worker already runs under this executor id; two would share (and strand) its work."""

    def __init__(self, beat: WorkerHeartbeat, now):
        self.executor_id = beat.executor_id
        self.host = beat.host
        self.pid = beat.pid
        self.age = max(0.0, (now - beat.beat_at).total_seconds())
        super().__init__(
            f"a worker with executor id {beat.executor_id!r} is already running "
            f"(host {beat.host or '?'}, pid {beat.pid}, last beat {int(self.age)} s ago)")


def stale_after() -> timedelta:
    return timedelta(seconds=settings.HEARTBEAT_STALE_SEC)


def heartbeat_start(*, executor_id: str, now=None) -> WorkerHeartbeat:
    """Register this process as the live worker `executor_id` (a restart clears `stopped_at`)."""
    now = now or clock.now()
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        executor_id=executor_id,
        defaults=dict(app_version=settings.DBOS_APPLICATION_VERSION, host=this_host(), pid=os.getpid(),
                      pid_space=pid_space(), started_at=now, beat_at=now, stopped_at=None),
    )
    return beat


def this_host() -> str:
    return socket.gethostname()[:255]


@functools.cache
def pid_space() -> str:
    """This process's pid space: the kernel's boot id and the pid namespace (empty where /proc does
    not tell). Two processes may look each other's pids up only when theirs are the same."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"[:120]
    except OSError:
        return ""


def on_this_host(beat: WorkerHeartbeat) -> bool:
    """Whether the row's pid can be looked up here: same host, same pid space."""
    return beat.host == this_host() and bool(beat.pid_space) and beat.pid_space == pid_space()


def _is_this_process(beat: WorkerHeartbeat) -> bool:
    """The row was written by this very process (same host, pid space and pid)."""
    return on_this_host(beat) and beat.pid == os.getpid()


def process_gone(beat: WorkerHeartbeat) -> bool:
    """The row's process ran in this pid space and no longer exists: killed, or crashed."""
    if not on_this_host(beat) or beat.pid <= 0:
        return False
    try:
        os.kill(beat.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def heartbeat_claim(*, executor_id: str, now=None) -> WorkerHeartbeat:
    """Register this process as worker `executor_id`, refusing when another live worker holds the id.

    A worker holds its id while its beat is fresh and it has not stopped. A restart under the same
    id (the design: a restarted worker resumes its own workflows) is allowed once the previous
    process stopped, went stale, or is known gone (same host, its pid no longer exists).

    :raises ExecutorIdInUse: when another live worker beats under `executor_id`.
    """
    now = now or clock.now()
    with transaction.atomic():
        beat = WorkerHeartbeat.objects.select_for_update().filter(executor_id=executor_id).first()
        if beat is None:
            try:
                with transaction.atomic():
                    return WorkerHeartbeat.objects.create(
                        executor_id=executor_id, app_version=settings.DBOS_APPLICATION_VERSION,
                        host=this_host(), pid=os.getpid(), pid_space=pid_space(), started_at=now,
                        beat_at=now)
            except IntegrityError:  # another worker claimed the id at the same moment
                beat = WorkerHeartbeat.objects.select_for_update().get(executor_id=executor_id)
        if _is_alive(beat, now) and not _is_this_process(beat) and not process_gone(beat):
            raise ExecutorIdInUse(beat, now)
        return heartbeat_start(executor_id=executor_id, now=now)


def heartbeat_beat(*, executor_id: str, now=None) -> None:
    """Record that `executor_id` is alive now."""
    now = now or clock.now()
    if not WorkerHeartbeat.objects.filter(executor_id=executor_id).update(beat_at=now, stopped_at=None):
        heartbeat_start(executor_id=executor_id, now=now)


def heartbeat_stop(*, executor_id: str, now=None) -> None:
    """Record a clean shutdown: the sweep may hand this worker's leftovers on at once."""
    WorkerHeartbeat.objects.filter(executor_id=executor_id).update(stopped_at=now or clock.now())


def handed_on(beat: WorkerHeartbeat) -> bool:
    """Whether the worker's workflows were handed to the others after its last beat."""
    return beat.recovered_at is not None and beat.recovered_at >= beat.beat_at


def _is_alive(beat: WorkerHeartbeat | None, now) -> bool:
    """The worker holds its id: it beats and has not stopped (it may still be launching)."""
    return beat is not None and beat.stopped_at is None and beat.beat_at >= now - stale_after()


def launched(beat: WorkerHeartbeat) -> bool:
    """Whether the worker has beaten since it started: it beats once DBOS runs in it
    (`worker.run_forever`), so one still launching, or one that died launching, has not."""
    return beat.beat_at > beat.started_at


def running(*, now=None) -> Q:
    """Workers that run the closures: launched, beating, not stopped (`/readyz`, `/metrics`)."""
    return Q(stopped_at__isnull=True, beat_at__gte=(now or clock.now()) - stale_after(), beat_at__gt=F("started_at"))


def executor_recover(*, executor_id: str, actor: str, force: bool = False, now=None) -> int:
    """Hand the PENDING workflows of worker `executor_id` back to their queues; return how many moved.

    :raises UnknownExecutor: when no worker has ever beaten under `executor_id` (`force` or not).
    :raises UnableToRecover: when the worker's heartbeat is fresh (unless `force`) or when it is
        this very process.
    """
    from closeout import worker

    now = now or clock.now()
    if executor_id == worker.current_executor_id():
        raise UnableToRecover(f"{executor_id} is this process")
    beat = WorkerHeartbeat.objects.filter(executor_id=executor_id).first()
    if beat is None:
        raise UnknownExecutor(executor_id, list(WorkerHeartbeat.objects.order_by("executor_id")
                                                .values_list("executor_id", flat=True)))
    if _is_alive(beat, now) and not process_gone(beat) and not force:
        raise UnableToRecover(
            f"{executor_id} beat {int((now - beat.beat_at).total_seconds())} s ago; it looks alive")
    moved = _reenqueue_pending(executor_id)
    with transaction.atomic():
        WorkerHeartbeat.objects.filter(executor_id=executor_id).update(
            recovered_at=now, recovered_workflows=F("recovered_workflows") + moved)
        if moved or actor != "system":
            audit_record(actor=actor, action="worker.recovered", subject=f"worker:{executor_id}",
                         reason=_recovery_reason(beat, now) if actor == "system" else "operator request",
                         data={"workflows": moved})
    if moved:
        log.warning("handed %d workflows of worker %s back to their queues", moved, executor_id)
    return moved


def _recovery_reason(beat: WorkerHeartbeat, now) -> str:
    if beat.stopped_at is not None:
        return "stopped"
    return "stale heartbeat" if beat.beat_at < now - stale_after() else "process gone on this host"


def stale_executors_recover(*, now=None) -> dict[str, int]:
    """Recover every worker that went stale or stopped since it was last recovered, and at once a
    worker of this host whose process no longer exists (killed, crashed) though its beat is fresh."""
    from closeout import worker

    now = now or clock.now()
    not_recovered = (WorkerHeartbeat.objects.filter(Q(recovered_at__isnull=True) | Q(recovered_at__lt=F("beat_at")))
                     .exclude(executor_id=worker.current_executor_id() or ""))
    dead = list(not_recovered.filter(Q(beat_at__lt=now - stale_after()) | Q(stopped_at__isnull=False))
                .values_list("executor_id", flat=True))
    dead += [beat.executor_id for beat in not_recovered.filter(
        stopped_at__isnull=True, beat_at__gte=now - stale_after(), host=this_host())
        if process_gone(beat)]
    return {executor_id: executor_recover(executor_id=executor_id, actor="system", now=now)
            for executor_id in dead}


def _reenqueue_pending(executor_id: str) -> int:
    # DBOS's own recovery primitive (what its Conductor calls for a dead executor): the row goes
    # back to ENQUEUED on its queue, keeping its recorded steps, only while it is still PENDING on
    # `executor_id`. It is not part of DBOSClient's public surface, hence this one narrow use.
    from dbos._utils import INTERNAL_QUEUE_NAME

    from closeout.closures import dispatch

    client = dispatch.client()
    pending = client.list_workflows(status="PENDING", executor_id=executor_id, load_input=False,
                                    load_output=False)
    moved = 0
    for status in pending:
        if client._sys_db.reenqueue_for_recovery(status.workflow_id, [executor_id], INTERNAL_QUEUE_NAME):
            moved += 1
    return moved
