"""The sweep: fire due deadlines and restart actions that have no live workflow.

Runs as a DBOS scheduled workflow (once per tick across all workers). A case's action may lack a
live workflow because the process died between the commit and the enqueue, the enqueue failed, a
poll is due, or the workflow was left on another application version. A workflow left PENDING on
a worker that died is first handed back to its queue (`closeout.ops.services`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings

from closeout.closures import bulk, dispatch, services, states
from closeout.closures.models import ClosureCase
from closeout.common import clock

log = logging.getLogger(__name__)

DEAD = ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
LIVE = ("ENQUEUED", "PENDING", "DELAYED")
BATCH = 500
SETTLE_GRACE = timedelta(seconds=30)


def _housekeeping(now) -> None:
    """Jobs that ride on the sweep tick; one failing never stops the others or the sweep."""
    from closeout.appointments.services import appointment_reminders_send, counter_intakes_complete
    from closeout.integrations import simulators
    from closeout.notifications.services import notices_retry_due
    from closeout.ops.pruning import old_records_delete
    from closeout.ops.services import stale_executors_recover

    jobs = [
        ("recovering dead workers", lambda: stale_executors_recover(now=now)),
        ("simulator tick", simulators.tick),
        ("appointment reminders", appointment_reminders_send),
        ("counter intakes", counter_intakes_complete),
        # Handed to the worker's notifier threads, so a relay that times out does not hold the sweep.
        ("notices left undelivered", lambda: notices_retry_due(now=now, limit=100)),
        ("expired sessions", lambda: expired_sessions_delete(now=now)),
        ("old records", lambda: old_records_delete(now=now)),
    ]
    for name, job in jobs:
        try:
            job()
        except Exception:  # noqa: BLE001 - the next tick retries; the cases below still matter
            log.exception("%s failed", name)


def expired_sessions_delete(*, now, limit: int = 1000) -> int:
    """Delete sessions past their expiry, a batch a tick: a portal session keeps what a customer
    typed into a refused form (sealed) and the staff console's sign-in, neither of which should
    outlive it. Django only deletes them when asked (`clearsessions`)."""
    from django.contrib.sessions.models import Session

    keys = list(Session.objects.filter(expire_date__lt=now).values_list("session_key", flat=True)[:limit])
    return Session.objects.filter(session_key__in=keys).delete()[0] if keys else 0


def sweep_once(now=None) -> int:
    """Run one pass; return how many actions were (re)enqueued."""
    now = now or clock.now()
    _housekeeping(now)
    for reference in ClosureCase.objects.filter(
        state=states.AWAITING_RETURN, deadline_at__lte=now
    ).values_list("reference", flat=True)[:BATCH]:
        services.closure_deadline_passed(reference=reference)
    for reference in ClosureCase.objects.filter(
        state=states.DEACTIVATING, next_action="", deadline_at__lte=now
    ).values_list("reference", flat=True)[:BATCH]:
        services.esim_deletion_timeout(reference=reference)

    due = list(
        ClosureCase.objects.exclude(next_action_id="")
        .filter(next_action_due_at__lte=now)
        .order_by("next_action_due_at")
        .values_list("reference", "next_action", "next_action_id", "updated_at")[:BATCH]
    )
    batches = bulk.due_batches(now, BATCH)
    if not due and not batches:
        return 0
    client = dispatch.client()
    return _restart_cases(client, due, now) + _restart_batches(client, batches)


def _workflows(client, ids: list[str]) -> dict:
    if not ids:
        return {}
    return {w.workflow_id: w for w in client.list_workflows(workflow_ids=ids, load_input=False, load_output=False)}


def _needs_restart(client, status) -> bool:
    """Clear a dead or stale workflow so its id can run again; say whether to enqueue."""
    if status is None:
        return True
    if status.status in DEAD:
        client.delete_workflow(status.workflow_id)
        return True
    if status.status in LIVE and status.app_version != settings.DBOS_APPLICATION_VERSION:
        client.cancel_workflow(status.workflow_id)
        client.delete_workflow(status.workflow_id)
        return True
    return False


def _restart_batches(client, batches) -> int:
    found = _workflows(client, [b[2] for b in batches])
    restarted = 0
    for batch_id, action, workflow_id in batches:
        if _needs_restart(client, found.get(workflow_id)) and dispatch.enqueue(
                batch_id, action, workflow_id, workflow_name=bulk.BATCH_WORKFLOW):
            restarted += 1
    return restarted


def _restart_cases(client, due, now) -> int:
    found = _workflows(client, [d[2] for d in due])
    restarted = 0
    for reference, action, workflow_id, updated_at in due:
        status = found.get(workflow_id)
        if status is not None and status.status == "SUCCESS":
            if updated_at < now - SETTLE_GRACE:
                services.closure_action_failed(
                    reference=reference, workflow_id=workflow_id, error=f"{action} ended without a result"
                )
            continue
        if _needs_restart(client, status) and dispatch.enqueue(reference, action, workflow_id):
            restarted += 1
            log.info("sweep restarted %s", workflow_id)
    return restarted
