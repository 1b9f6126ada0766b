"""Hand actions to DBOS: the case row is the outbox, the worker's pump empties it.

A transition writes the next action's workflow id on the case, in its own transaction, and
nothing else: no request waits for the DBOS system database. Each worker runs a pump that, every
`DBOS_POLLING_INTERVAL` seconds (and at once after a commit in its own process), enqueues the due
actions whose id it has not handed over yet and marks them handed over. A process dying between
commit and hand-over loses nothing: the next pump, in any worker, finds the action. Enqueueing
the same workflow id twice runs it once, so two workers pumping at once are harmless. The sweep
still restarts actions whose workflow died or was left on another application version.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from closeout.common.text import ascii_digits
from closeout.integrations.faults import crash_point

log = logging.getLogger(__name__)

WORKFLOW_NAME = "closeout.run_action"
# One queue per external system, so that a slow or failing system holds up only its own calls; the
# batched bulk actions have queues of their own beside them, so that a run of a million cards does
# not make single customers' cases wait behind its files.
QUEUE_FOR_ACTION = {
    "verify": "internal",
    "settle": "internal",
    "return_label": "shipping",
    "refund": "payments",
    "refund_status": "payments",
    "deactivate": "card_system",
    "deactivate_number": "card_system",
    "release_profile": "smdp",
    "unbind": "partners",
    "bulk_settle": "bulk",
    "bulk_refund": "bulk_payments",
    "bulk_block": "bulk_card_system",
}


@dataclass(frozen=True)
class QueueLimit:
    """How many workflows of one queue run at once: in each worker, and over all workers together
    (`overall`, the external system's own limit on parallel calls; None for no such limit)."""

    per_worker: int
    overall: int | None = None


DEFAULT_QUEUE_LIMITS = {
    "internal": QueueLimit(8),
    "payments": QueueLimit(4, 16),
    "card_system": QueueLimit(4, 16),
    "smdp": QueueLimit(4, 8),
    "partners": QueueLimit(4, 16),
    "shipping": QueueLimit(2, 8),
    "bulk": QueueLimit(1),
    "bulk_payments": QueueLimit(1, 2),
    "bulk_card_system": QueueLimit(1, 2),
}


# Each poll of a queue is a few statements on the DBOS system database, in every worker, whether
# or not it finds work. Queues whose work is rare (eSIM profiles, partner apps, return labels) or long (a bulk
# batch runs for seconds) are polled less often: this many times CLOSEOUT_QUEUE_POLL_SEC.
POLL_FACTOR = {"smdp": 2.5, "partners": 2.5, "shipping": 2.5, "bulk": 5.0, "bulk_payments": 5.0, "bulk_card_system": 5.0}


def polling_interval(queue: str) -> float:
    """Seconds between two polls of `queue` by a worker."""
    return settings.DBOS_POLLING_INTERVAL * POLL_FACTOR.get(queue, 1.0)


class BadQueueLimits(ValueError):
    """CLOSEOUT_QUEUE_LIMITS names an unknown queue or a limit that is not a positive whole number."""


def parse_queue_limits(text: str) -> dict[str, QueueLimit]:
    """Read `name=per_worker[/overall]` entries, comma-separated, e.g. `payments=2/6,smdp=1`.

    :raises BadQueueLimits: naming the entry and what is wrong with it.
    """
    limits = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.partition("=")
        name = name.strip()
        if name not in DEFAULT_QUEUE_LIMITS:
            raise BadQueueLimits(f"CLOSEOUT_QUEUE_LIMITS entry {entry!r}: no queue {name!r} "
                                 f"(queues: {', '.join(DEFAULT_QUEUE_LIMITS)})")
        per_worker, _, overall = value.partition("/")
        numbers = [per_worker.strip()] + ([overall.strip()] if overall.strip() else [])
        if not sep or not all(ascii_digits(n) and int(n) > 0 for n in numbers):
            raise BadQueueLimits(f"CLOSEOUT_QUEUE_LIMITS entry {entry!r}: expected {name}=PER_WORKER or "
                                 f"{name}=PER_WORKER/OVERALL, each a whole number above 0")
        limits[name] = QueueLimit(int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else None)
    return limits


def queue_limits() -> dict[str, QueueLimit]:
    """The limits in force: the defaults, with CLOSEOUT_QUEUE_LIMITS over them."""
    return {**DEFAULT_QUEUE_LIMITS, **parse_queue_limits(getattr(settings, "CLOSEOUT_QUEUE_LIMITS", ""))}


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


def wake_pump_on_commit() -> None:
    """The case row already names the action: at commit, wake this process's pump if it runs one."""
    transaction.on_commit(_wake.set)


_wake = threading.Event()
PUMP_BATCH = 500


def pump_once(now=None) -> int:
    """Hand every due, not yet handed-over case action to DBOS; return how many were handed over."""
    from django.db.models import F

    from closeout.closures.models import ClosureCase
    from closeout.common import clock

    due = list(
        ClosureCase.objects.filter(next_action_due_at__lte=now or clock.now())
        .exclude(next_action_id="").exclude(next_action_id=F("next_action_queued"))
        .order_by("next_action_due_at").values_list("reference", "next_action", "next_action_id")[:PUMP_BATCH]
    )
    handed = [workflow_id for reference, action, workflow_id in due if enqueue(reference, action, workflow_id)]
    if handed:
        # Workflow ids are unique per case and run: a case that moved on meanwhile is not matched.
        # A case locked right now is running the action just handed over (or another writer has
        # it): it is skipped rather than waited for; if it still names this action the next round
        # hands it over again, which runs nothing twice.
        with transaction.atomic():
            free = list(ClosureCase.objects.select_for_update(skip_locked=True)
                        .filter(next_action_id__in=handed).values_list("id", flat=True))
            ClosureCase.objects.filter(id__in=free, next_action_id__in=handed).update(
                next_action_queued=F("next_action_id"))
    return len(handed)


class Pump:
    """The worker's thread that runs `pump_once` every `interval` seconds or when woken, and then
    seals the audit events written since (`audit.services.audit_seal`)."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeout-pump", daemon=True)

    def start(self) -> Pump:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        _wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from django.db import close_old_connections

        from closeout.audit.services import audit_seal

        while not self._stop.is_set():
            _wake.wait(self.interval)
            _wake.clear()
            if self._stop.is_set():
                return
            close_old_connections()
            try:
                while pump_once() == PUMP_BATCH:
                    pass
                audit_seal()
            except Exception:  # noqa: BLE001 - the next round retries; the rows keep the actions
                log.warning("the pump failed; retrying", exc_info=True)
