"""The worker process: launches DBOS with a stable executor id and a pinned application version,
registers one queue per external system, schedules the sweep, and shuts down cleanly."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings

log = logging.getLogger(__name__)


class UnableToLaunch(Exception):
    """DBOS could not launch (its system database unreachable or unusable): the worker stops."""

_current_executor: str | None = None
_pump = None  # the dispatch pump of a launched worker


def current_executor_id() -> str | None:
    """The executor id DBOS runs under in this process (None where DBOS is not launched)."""
    return _current_executor


def dbos_config(*, executor_id: str | None = None) -> dict:
    config = {
        "name": "closeout",
        "system_database_url": settings.DBOS_SYSTEM_DATABASE_URL,
        "application_version": settings.DBOS_APPLICATION_VERSION,
        "executor_id": executor_id or settings.DBOS_EXECUTOR_ID,
        "notification_listener_polling_interval_sec": 0.2,
        "scheduler_polling_interval_sec": 1.0,
        "log_level": "WARNING",
        "sys_db_pool_size": settings.DBOS_SYS_DB_POOL_SIZE,
    }
    if settings.DBOS_SYSTEM_DATABASE_URL.startswith("postgresql"):
        # No `SELECT 1` at each checkout: `common.postgresql.pool` looks at the socket instead.
        config["db_engine_kwargs"] = {"pool_pre_ping": False}
    return config


def launch(*, executor_id: str | None = None):
    """Launch DBOS in this process and return the DBOS instance."""
    from dbos import DBOS

    from closeout.certificates.services import signing_key_ensure
    from closeout.closures import dispatch, workflow
    from closeout.common.postgresql import pool
    from closeout.notifications import services as notifications
    from closeout.ops import capacity

    global _current_executor
    limits = dispatch.queue_limits()
    signing_key_ensure()
    capacity.connections_check()
    pool.check_on_checkout()
    dbos = DBOS(config=dbos_config(executor_id=executor_id))
    DBOS.launch()
    _current_executor = executor_id or settings.DBOS_EXECUTOR_ID
    for name, limit in limits.items():
        DBOS.register_queue(name, worker_concurrency=limit.per_worker, global_concurrency=limit.overall,
                            polling_interval_sec=dispatch.polling_interval(name))
    DBOS.apply_schedules(
        [{"schedule_name": "closeout-sweep", "workflow_fn": workflow.sweep, "schedule": settings.SWEEP_SCHEDULE}]
    )
    global _pump
    _pump = dispatch.Pump(settings.DBOS_POLLING_INTERVAL).start()
    notifications.notifier_start()
    return dbos


def shutdown(*, drain_sec: int = 0) -> None:
    """Stop DBOS, first letting running workflows finish for up to `drain_sec` seconds."""
    from dbos import DBOS

    from closeout.closures import dispatch
    from closeout.notifications import services as notifications

    global _current_executor, _pump
    if _pump is not None:
        _pump.stop()
        _pump = None
    dispatch.reset_client()
    DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=drain_sec)
    notifications.notifier_stop()  # after the last steps, whose notices it still sends
    _current_executor = None


def migrate_system_database() -> None:
    """Create the DBOS system database and tables (a client never does)."""
    from dbos import DBOS

    DBOS.migrate(settings.DBOS_SYSTEM_DATABASE_URL)


def _from_dbos(exc: BaseException) -> bool:
    """Whether a launch failure came from DBOS or its system database (not closeout's own start-up)."""
    import sqlalchemy.exc

    seen = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.SQLAlchemyError) or type(seen).__module__.startswith(("dbos", "psycopg")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _system_database() -> str:
    """Where the DBOS system database is, without a password."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.DBOS_SYSTEM_DATABASE_URL)
    if url.get_backend_name() == "sqlite":
        return url.database or "?"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _destroy_quietly() -> None:
    """Stop what a failed launch left running (DBOS's threads would keep the process alive)."""
    from dbos import DBOS

    try:
        DBOS.destroy(destroy_registry=False)
    except Exception:  # noqa: BLE001 - nothing was running: nothing to stop
        log.debug("nothing to destroy after a failed launch", exc_info=True)


DEFAULT_ID_SLOTS = 64  # workers one machine may run under its default id: -2 to -64 after the first


def default_executor_ids() -> list[str]:
    """The ids a worker started without one may take, in order: the machine's default, then
    `<default>-2`, `<default>-3`, ..."""
    base = settings.DBOS_EXECUTOR_ID
    suffixes = [f"-{n}" for n in range(2, DEFAULT_ID_SLOTS + 1)]
    return [base] + [f"{base[:120 - len(suffix)]}{suffix}" for suffix in suffixes]


def _heartbeat_claim(executor_id: str | None):
    """Claim `executor_id` and start beating under it. Without an id, claim the first of
    `default_executor_ids()` that no live worker holds: several plain `closeout worker` processes
    share one database, and a restarted one takes back the lowest id free (its own, or that of a
    worker gone from this machine, whose workflows it then resumes).

    :raises ExecutorIdInUse: when a live worker holds the named id, or every default id.
    """
    from closeout.ops.heartbeat import Heartbeat
    from closeout.ops.services import ExecutorIdInUse

    candidates = [executor_id] if executor_id else default_executor_ids()
    for candidate in candidates[:-1]:
        try:
            return Heartbeat(executor_id=candidate, interval=settings.HEARTBEAT_SEC).start()
        except ExecutorIdInUse:
            continue
    return Heartbeat(executor_id=candidates[-1], interval=settings.HEARTBEAT_SEC).start()


def run_forever(*, executor_id: str | None = None, metrics_port: int | None = None) -> None:
    from closeout.closures import dispatch

    dispatch.queue_limits()  # a bad CLOSEOUT_QUEUE_LIMITS stops the worker before it claims its id
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    # Beat before launching: a worker that recovers its own workflows must already look alive,
    # or another worker's sweep could take them at the same moment. Claiming a named id refuses to
    # start (ExecutorIdInUse, nothing launched) while another live worker holds it.
    named = executor_id or (settings.DBOS_EXECUTOR_ID if settings.DBOS_EXECUTOR_ID_NAMED else None)
    heartbeat = _heartbeat_claim(named)
    executor_id = heartbeat.executor_id
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if metrics_port:
        from prometheus_client import start_http_server

        from closeout.ops.observe import LOCAL

        start_http_server(metrics_port, addr="127.0.0.1", registry=LOCAL)
    try:
        launch(executor_id=executor_id)
    except BaseException as exc:
        # Said stopped, not left beating: a worker restarted in a loop by its supervisor must not
        # look like one that runs the closures (`/readyz`, `closeout_workers_live`).
        heartbeat.stop(clean=True)
        _destroy_quietly()
        if isinstance(exc, Exception) and _from_dbos(exc):
            raise UnableToLaunch(f"could not launch on the DBOS system database ({_system_database()}, "
                                 f"CLOSEOUT_DBOS_DATABASE_URL): {_first_line(exc)}") from exc
        raise
    heartbeat.beat()  # launched: it counts as running from now on
    log.info("worker %s running (version %s)", executor_id, settings.DBOS_APPLICATION_VERSION)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        shutdown(drain_sec=settings.WORKER_DRAIN_SEC)
        heartbeat.stop(clean=True)
        log.info("worker %s stopped", executor_id)
