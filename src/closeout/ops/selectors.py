"""Reads for operators: which workers exist and whether they are alive."""

from __future__ import annotations

from closeout.common import clock
from closeout.ops.models import WorkerHeartbeat
from closeout.ops.services import handed_on, launched, on_this_host, process_gone, stale_after

CHECKED_BY = {True: "pid: runs on this host", False: "heartbeat: runs on another host, gone once silent for {stale} s"}


def workers_status(*, now=None) -> list[dict]:
    """Return every known worker with its state: `live`, `starting` (it holds its id and has not
    launched yet: one that stays so is failing to start), `stale` (it stopped beating and its
    workflows are not handed on yet), `gone` (its process on this host no longer exists, seen at
    once; or it stopped beating and its workflows were handed to the live workers since) or
    `stopped` (it stopped cleanly, or could not launch). `checked_by` says which: a worker on
    another host is judged by its heartbeat alone."""
    now = now or clock.now()
    rows = []
    for beat in WorkerHeartbeat.objects.order_by("executor_id"):
        if beat.stopped_at is not None:
            state = "stopped"
        elif process_gone(beat):  # killed (kill -9, a crash): no beat for up to HEARTBEAT_STALE_SEC yet
            state = "gone"
        elif beat.beat_at < now - stale_after():
            state = "gone" if handed_on(beat) else "stale"
        else:
            state = "live" if launched(beat) else "starting"
        local = on_this_host(beat) and beat.pid > 0
        rows.append({
            "executor_id": beat.executor_id, "state": state, "host": beat.host, "pid": beat.pid,
            "checked_by": CHECKED_BY[local].format(stale=int(stale_after().total_seconds())),
            "app_version": beat.app_version, "beat_age_seconds": round((now - beat.beat_at).total_seconds(), 1),
            "recovered_at": beat.recovered_at.isoformat() if beat.recovered_at else None,
            "recovered_workflows": beat.recovered_workflows,
            "workflows_handed_on": handed_on(beat),
        })
    return rows
