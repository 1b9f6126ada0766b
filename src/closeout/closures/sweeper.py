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

from closeout.closures import dispatch, services, states
from closeout.closures.models import ClosureCase
from closeout.common import clock

log = logging.getLogger(__name__)

DEAD = ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
LIVE = ("ENQUEUED", "PENDING", "DELAYED")
BATCH = 500
SETTLE_GRACE = timedelta(seconds=30)


def _recover_dead_workers(now) -> None:
    """Hand the PENDING workflows of workers that stopped beating to the live ones."""
    from closeout.ops.services import stale_executors_recover

    try:
        stale_executors_recover(now=now)
    except Exception:  # noqa: BLE001 - the rest of the sweep still matters; the next tick retries
        log.exception("recovering dead workers failed")


def sweep_once(now=None) -> int:
    """Run one pass; return how many actions were (re)enqueued."""
    now = now or clock.now()
    _recover_dead_workers(now)
    for reference in ClosureCase.objects.filter(
        state=states.AWAITING_RETURN, deadline_at__lte=now
    ).values_list("reference", flat=True)[:BATCH]:
        services.closure_deadline_passed(reference=reference)

    due = list(
        ClosureCase.objects.exclude(next_action_id="")
        .filter(next_action_due_at__lte=now)
        .order_by("next_action_due_at")
        .values_list("reference", "next_action", "next_action_id", "updated_at")[:BATCH]
    )
    if not due:
        return 0
    client = dispatch.client()
    found = {
        w.workflow_id: w
        for w in client.list_workflows(workflow_ids=[d[2] for d in due], load_input=False, load_output=False)
    }
    restarted = 0
    for reference, action, workflow_id, updated_at in due:
        status = found.get(workflow_id)
        if status is None:
            pass
        elif status.status in DEAD:
            client.delete_workflow(workflow_id)
        elif status.status in LIVE and status.app_version != settings.DBOS_APPLICATION_VERSION:
            client.cancel_workflow(workflow_id)
            client.delete_workflow(workflow_id)
        elif status.status == "SUCCESS" and updated_at < now - SETTLE_GRACE:
            services.closure_action_failed(
                reference=reference, workflow_id=workflow_id, error=f"{action} ended without a result"
            )
            continue
        else:
            continue
        if dispatch.enqueue(reference, action, workflow_id):
            restarted += 1
            log.info("sweep restarted %s", workflow_id)
    return restarted
