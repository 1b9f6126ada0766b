"""DBOS's pool of system-database connections, checked at checkout the way Django's are.

DBOS creates its SQLAlchemy engine with `pool_pre_ping`, which sends `SELECT 1` at every checkout:
a worker checks a connection out for each step's checkpoint, each workflow status change and each
queue poll, so a closure paid some thirty extra round trips for it. The worker turns the ping off
(`worker.dbos_config`) and checks each connection here instead: an idle connection with nothing
waiting on its socket is handed out as it is; one that is closed, broken, not idle, or has
something waiting (the server's goodbye) is given up, and the pool opens a new one in its place.
DBOS also runs its system-database calls again after a connection error, so a connection dropped
silently on the way (where even this look sees nothing) costs a retry, not a lost step.
"""

from __future__ import annotations

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import event, exc, pool

from closeout.common.postgresql import something_arrived


def check_on_checkout() -> None:
    """Check every psycopg connection SQLAlchemy's pools hand out in this process (once)."""
    if not event.contains(pool.Pool, "checkout", _checkout):
        event.listen(pool.Pool, "checkout", _checkout)


def _checkout(dbapi_connection, connection_record, connection_proxy) -> None:
    if not isinstance(dbapi_connection, psycopg.Connection):
        return  # SQLite: nothing on the way to lose
    if (dbapi_connection.closed or dbapi_connection.broken
            or dbapi_connection.info.transaction_status != TransactionStatus.IDLE
            or something_arrived(dbapi_connection)):
        raise exc.DisconnectionError("the server closed the connection or has something to say on it")
