"""How many PostgreSQL connections a worker may open, and whether the server has room for them.

A worker runs each workflow on a thread of its own, and each such thread keeps a Django
connection for `CLOSEOUT_DB_CONN_MAX_AGE` seconds; at full load that is one per unit of queue
concurrency per worker (`closures.dispatch.queue_limits`), plus the pump, heartbeat and scheduler threads, plus the
DBOS system database pool and the pump's DBOS client. PostgreSQL's default `max_connections` is
100, so a few workers at full load can exhaust it and fail with "too many clients". A worker
checks at start and says in its log, naming the figures, when the server has fewer connections
left than it may open.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

BACKGROUND_THREADS = 6  # main, pump, heartbeat, DBOS scheduler, the email and SMS notifiers
CLIENT_POOL = 2  # the DBOSClient the pump enqueues through (DBOS's default client pool)


def worker_connections() -> int:
    """PostgreSQL connections one worker may hold at full load (application and DBOS databases)."""
    from closeout.closures.dispatch import queue_limits

    return sum(limit.per_worker for limit in queue_limits().values()) + BACKGROUND_THREADS + settings.DBOS_SYS_DB_POOL_SIZE + CLIENT_POOL


def connections_check() -> tuple[int, int, int] | None:
    """Warn when the connections left on the server now are fewer than this worker may open.

    Other workers below their own peak may still grow, so no warning is no guarantee. Return
    (connections allowed to clients, client connections open, this worker's need), or None on
    SQLite.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - COALESCE(current_setting('reserved_connections', true), '0')::int,"  # PostgreSQL 16+
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")
        allowed, in_use = cursor.fetchone()
    need = worker_connections()
    if allowed - in_use < need:
        log.warning(
            "PostgreSQL allows %d client connections and %d are open; this worker may open %d at full load. "
            "Raise max_connections, lower CLOSEOUT_DBOS_POOL_SIZE or run fewer workers per server.",
            allowed, in_use, need)
    return allowed, in_use, need
