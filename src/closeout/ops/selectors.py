"""Reads for operators: which workers exist and whether they are alive."""

from __future__ import annotations

from closeout.common import clock
from closeout.ops.models import WorkerHeartbeat
from closeout.ops.services import handed_on, launched, stale_after


def workers_status(*, now=None) -> list[dict]:
    """Return every known worker with its state: `live`, `starting` (it holds its id and has not
    launched yet: one that stays so is failing to start), `stale` (it stopped beating and its
    workflows are not handed on yet), `gone` (stopped beating, and its workflows were handed to
    the live workers since) or `stopped` (it stopped cleanly, or could not launch)."""
    now = now or clock.now()
    rows = []
    for beat in WorkerHeartbeat.objects.order_by("executor_id"):
        if beat.stopped_at is not None:
            state = "stopped"
        elif beat.beat_at < now - stale_after():
            state = "gone" if handed_on(beat) else "stale"
        else:
            state = "live" if launched(beat) else "starting"
        rows.append({
            "executor_id": beat.executor_id, "state": state, "host": beat.host, "pid": beat.pid,
            "app_version": beat.app_version, "beat_age_seconds": round((now - beat.beat_at).total_seconds(), 1),
            "recovered_at": beat.recovered_at.isoformat() if beat.recovered_at else None,
            "recovered_workflows": beat.recovered_workflows,
        })
    return rows
