"""PostgreSQL connections checked without a round trip: Django's backend (`base`) and DBOS's
SQLAlchemy pool (`pool`) share one look at the socket."""

from __future__ import annotations

import select


def something_arrived(connection) -> bool:
    """Whether an idle psycopg connection has bytes waiting on its socket (True too when the socket
    cannot be polled).

    A server that drops a connection (restart, `pg_terminate_backend`, an idle timeout) sends a
    FATAL message or closes the socket; an idle connection with nothing waiting is as usable as
    `SELECT 1` would have found it a moment later.
    """
    try:
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
