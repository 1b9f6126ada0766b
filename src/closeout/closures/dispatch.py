"""Hand actions to the worker through the DBOS system database (web and worker alike).

The case row is the truth: if the hand-over fails or the process dies right after commit, the
sweep finds the case's action without a live workflow and enqueues it again. Enqueueing the same
workflow id twice runs it once.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import transaction

from closeout.integrations.faults import crash_point

log = logging.getLogger(__name__)

WORKFLOW_NAME = "closeout.run_action"
QUEUE_FOR_ACTION = {
    "verify": "internal",
    "settle": "internal",
    "refund": "payments",
    "refund_status": "payments",
    "deactivate": "card_system",
    "deactivate_number": "card_system",
    "release_profile": "smdp",
    "unbind": "partners",
    "bulk_settle": "bulk",
    "bulk_refund": "bulk",
    "bulk_block": "bulk",
}
QUEUES = {"internal": 8, "payments": 4, "card_system": 4, "smdp": 4, "partners": 4, "notifications": 4,
          "bulk": 2}

_client = None
_client_lock = threading.Lock()


def client():
    global _client
    with _client_lock:
        if _client is None:
            from dbos import DBOSClient

            _client = DBOSClient(system_database_url=settings.DBOS_SYSTEM_DATABASE_URL)
        return _client


def reset_client() -> None:
    global _client
    with _client_lock:
        if _client is not None:
            try:
                _client.destroy()
            except Exception:  # noqa: BLE001 - closing a broken client must not fail the caller
                log.debug("closing the DBOS client failed", exc_info=True)
        _client = None


def enabled() -> bool:
    return getattr(settings, "CLOSEOUT_DISPATCH", True)


def enqueue(reference: str, action: str, workflow_id: str, *, workflow_name: str = WORKFLOW_NAME) -> bool:
    """Enqueue the action's workflow; return False (and leave it to the sweep) when that fails.

    `reference` is the case reference, or the batch id for the batched bulk actions.
    """
    if not enabled():
        return False
    crash_point("after_commit")
    options = {
        "workflow_name": workflow_name,
        "queue_name": QUEUE_FOR_ACTION.get(action, "internal"),
        "workflow_id": workflow_id,
        "app_version": settings.DBOS_APPLICATION_VERSION,
    }
    try:
        client().enqueue(options, reference, action, workflow_id)
    except Exception:  # noqa: BLE001 - the sweep retries; the case row already holds the action
        log.warning("could not enqueue %s; the sweep will retry", workflow_id, exc_info=True)
        return False
    return True


def enqueue_on_commit(reference: str, action: str, workflow_id: str) -> None:
    transaction.on_commit(lambda: enqueue(reference, action, workflow_id))
