"""Old operational records, deleted a batch at a time on the sweep's tick.

The workers write records that are needed for a while and then only fill the disk: DBOS keeps every
finished workflow with its steps' outputs (the sweep alone finishes one every 5 seconds, 17,280 a
day), idempotency records answer replays, one-time codes and their send and failure counts keep the
portal's limits, and refusal marks keep a re-run step from counting twice. None of them is evidence:
the case, its timeline, the audit trail, the ledger and the certificate hold what happened, and are
never deleted here (personal data has its own retention, `closeout retention run`).

Each kind is kept for `settings.RECORDS_KEEP_DAYS` (30 by default) after it stopped mattering, at
least a day for idempotency records (their replays are promised for 24 hours). A finished workflow
whose id a case or batch still names as its next action is kept whatever its age: the sweep would
take a missing one for a lost hand-over and run the action again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings

log = logging.getLogger(__name__)

BATCH = 1000  # rows of each kind per tick: a backlog drains over a few ticks, never in one long statement
OTP_CHALLENGE_GRACE = timedelta(days=1)  # an expired code is still told apart from a wrong one that long


def records_keep() -> timedelta:
    return timedelta(days=max(1, settings.RECORDS_KEEP_DAYS))


def old_records_delete(*, now: datetime, limit: int = BATCH) -> dict[str, int]:
    """Delete up to `limit` old records of each kind; return how many of each went."""
    deleted = {
        "workflows": finished_workflows_delete(now=now, limit=limit),
        "refusal marks": _old_rows_delete("ops.RefusalCounted", "counted_at", now - records_keep(), limit),
        "idempotency records": _old_rows_delete("api.IdempotencyRecord", "created_at", now - records_keep(), limit),
        "one-time codes": _old_rows_delete("identity.OtpChallenge", "expires_at", now - OTP_CHALLENGE_GRACE, limit),
        "code sends and failures": _old_rows_delete("identity.OtpEvent", "at", now - _otp_history(), limit),
    }
    if any(deleted.values()):
        log.info("old records deleted: %s", ", ".join(f"{count} {kind}" for kind, count in deleted.items() if count))
    return deleted


def finished_workflows_delete(*, now: datetime, limit: int = BATCH) -> int:
    """Delete DBOS workflows that succeeded more than the keep period ago, with their inputs, outputs
    and recorded steps. Failed and cancelled ones stay for whoever looks into them (the sweep deletes
    a case's own when it runs the action again)."""
    from closeout.closures import dispatch

    client = dispatch.client()
    finished = [w.workflow_id for w in client.list_workflows(
        status="SUCCESS", completed_before=(now - records_keep()).isoformat(), limit=limit,
        load_input=False, load_output=False)]
    doomed = sorted(set(finished) - _named_as_next_action(finished))
    if doomed:
        client.delete_workflows(doomed)
    return len(doomed)


def _named_as_next_action(workflow_ids: list[str]) -> set[str]:
    """Those of `workflow_ids` a case or batch names as its next action (`next_action_queued` only
    remembers the last one handed over: the pump and the sweep go by `next_action_id`)."""
    from closeout.closures.models import BulkBatch, ClosureCase

    return {workflow_id for model in (ClosureCase, BulkBatch)
            for workflow_id in model.objects.filter(next_action_id__in=workflow_ids)
            .values_list("next_action_id", flat=True)}


def _old_rows_delete(model_label: str, field: str, before: datetime, limit: int) -> int:
    """Delete those of the `limit` first rows (by id) whose `field` is before `before`. Rows are
    written in time order, so the first ones are the oldest; reading them by primary key needs no
    index on `field`, and costs the same whether the table is small or not (the idempotency
    records' inserts are on the API's hottest path and get no second index for this)."""
    from django.apps import apps

    model = apps.get_model(model_label)
    ids = [row_id for row_id, at in model.objects.order_by("id").values_list("id", field)[:limit] if at < before]
    return model.objects.filter(id__in=ids).delete()[0] if ids else 0


def _otp_history() -> timedelta:
    """How far back the portal's code limits look, plus the keep period's margin of a day."""
    from closeout.identity import rules

    limits = (rules.SEND_LIMITS_SUBJECT + rules.SEND_LIMITS_CLIENT + rules.FAILURE_LIMITS_SUBJECT
              + rules.FAILURE_LIMITS_CLIENT)
    return rules.history_span(limits) + timedelta(days=1)
