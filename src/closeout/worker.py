"""The worker process: launches DBOS with a stable executor id and a pinned application version,
registers one queue per external system, schedules the sweep, and shuts down cleanly."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings

log = logging.getLogger(__name__)


def dbos_config(*, executor_id: str | None = None) -> dict:
    return {
        "name": "closeout",
        "system_database_url": settings.DBOS_SYSTEM_DATABASE_URL,
        "application_version": settings.DBOS_APPLICATION_VERSION,
        "executor_id": executor_id or settings.DBOS_EXECUTOR_ID,
        "notification_listener_polling_interval_sec": 0.2,
        "scheduler_polling_interval_sec": 1.0,
        "log_level": "WARNING",
    }


def launch(*, executor_id: str | None = None):
    """Launch DBOS in this process and return the DBOS instance."""
    from dbos import DBOS

    from closeout.closures import dispatch, workflow

    dbos = DBOS(config=dbos_config(executor_id=executor_id))
    DBOS.launch()
    for name, concurrency in dispatch.QUEUES.items():
        DBOS.register_queue(name, worker_concurrency=concurrency, polling_interval_sec=settings.DBOS_POLLING_INTERVAL)
    DBOS.apply_schedules(
        [{"schedule_name": "closeout-sweep", "workflow_fn": workflow.sweep, "schedule": settings.SWEEP_SCHEDULE}]
    )
    return dbos


def shutdown() -> None:
    from dbos import DBOS

    from closeout.closures import dispatch

    dispatch.reset_client()
    DBOS.destroy(destroy_registry=False)


def migrate_system_database() -> None:
    """Create the DBOS system database and tables (a client never does)."""
    from dbos import DBOS

    DBOS.migrate(settings.DBOS_SYSTEM_DATABASE_URL)


def run_forever(*, executor_id: str | None = None) -> None:
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    launch(executor_id=executor_id)
    log.info("worker %s running (version %s)", executor_id or settings.DBOS_EXECUTOR_ID,
             settings.DBOS_APPLICATION_VERSION)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        shutdown()
        log.info("worker stopped")
