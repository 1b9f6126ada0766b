"""Django's PostgreSQL backend with a cheaper connection health check.

With persistent connections, Django checks a reused connection at the start of each request by
sending `SELECT 1`: one round trip per request, which on a short API call (an authorization is
one read and one insert) is a third of its trips to the server. A server that drops a connection
(restart, `pg_terminate_backend`, an idle timeout) sends a FATAL message or closes the socket, so
an idle connection with bytes waiting on its socket is one to look at; one with nothing waiting
is as usable as `SELECT 1` would have found it a moment later. The check therefore polls the
socket without blocking and sends `SELECT 1` only when something did arrive, when the connection
is inside a transaction, or after an error.

What it cannot see is a connection dropped silently on the way (a NAT or firewall forgetting an
idle flow, with no reset sent): `SELECT 1` would have replaced that one unnoticed, while here the
request's first query fails and the connection is replaced for the next request. Keep
`CLOSEOUT_DB_CONN_MAX_AGE` below such idle timeouts.
"""

from __future__ import annotations

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper
from psycopg.pq import TransactionStatus

from closeout.common.postgresql import something_arrived


class DatabaseWrapper(PostgresDatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if self.errors_occurred or connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        return super().is_usable() if something_arrived(connection) else True
