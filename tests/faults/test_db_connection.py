"""Persistent PostgreSQL connections: one the server dropped is replaced before the next request
uses it, and a healthy one is checked without a round trip (`closeout.common.postgresql`)."""

from __future__ import annotations

import contextlib
import select

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connection

from closeout.cards.models import Card

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fresh_connection():
    """A connection opened now: one that outlived CONN_MAX_AGE would be closed at request end."""
    connection.close()


def _server_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _admin():
    db = settings.DATABASES["default"]
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                           dbname="postgres", autocommit=True)


def test_a_request_after_the_server_dropped_the_connection_gets_a_new_one():
    before = _server_pid()
    close_old_connections()  # the end of a request: the connection is kept for the next one
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [before])
    select.select([connection.connection.fileno()], [], [], 5)  # the server's goodbye has arrived

    close_old_connections()  # the start of the next request
    assert Card.objects.count() == 0  # would raise "terminating connection" on the old one
    assert _server_pid() != before


def test_a_healthy_idle_connection_is_checked_without_a_query():
    before = _server_pid()
    close_old_connections()
    raw = connection.connection

    def no_queries(*args, **kwargs):
        raise AssertionError("the health check sent a query")

    raw.cursor = no_queries
    try:
        connection.close_if_health_check_failed()
    finally:
        del raw.cursor
    assert connection.connection is raw and connection.health_check_done
    assert _server_pid() == before


def test_a_worker_says_at_start_when_the_server_has_no_room_for_it(settings, caplog):
    from closeout.ops import capacity

    allowed, in_use, need = capacity.connections_check()
    assert 0 < in_use < allowed and need == capacity.worker_connections()

    settings.DBOS_SYS_DB_POOL_SIZE = allowed  # a pool alone larger than the server allows
    with caplog.at_level("WARNING", logger="closeout.ops.capacity"):
        capacity.connections_check()
    assert f"PostgreSQL allows {allowed} client connections" in caplog.text
    assert "Raise max_connections" in caplog.text


def _sqlalchemy_engine():
    """An engine built as DBOS builds its system-database one, with the worker's settings."""
    import sqlalchemy

    from closeout.common.postgresql import pool
    from closeout.worker import dbos_config

    db = settings.DATABASES["default"]
    url = sqlalchemy.engine.URL.create("postgresql+psycopg", username=db["USER"],
                                       host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                                       database=db["NAME"])
    pool.check_on_checkout()
    return sqlalchemy.create_engine(url, pool_size=1, max_overflow=0,
                                    **dbos_config().get("db_engine_kwargs", {}))


def _sqlalchemy_pid(engine) -> int:
    import sqlalchemy

    with engine.connect() as conn:
        return conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one()


def test_the_worker_pool_replaces_a_connection_the_server_dropped(settings):
    settings.DBOS_SYSTEM_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
    engine = _sqlalchemy_engine()
    assert engine.pool._pre_ping is False  # the worker's pool sends no `SELECT 1` of its own
    try:
        before = _sqlalchemy_pid(engine)
        raw = engine.pool._pool.queue[0].dbapi_connection
        with _admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [before])
        select.select([raw.fileno()], [], [], 5)

        after = _sqlalchemy_pid(engine)  # would raise "terminating connection" on the old one
        assert after != before
    finally:
        engine.dispose()


def test_the_worker_pool_hands_out_a_healthy_connection_without_a_query(settings):
    settings.DBOS_SYSTEM_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
    engine = _sqlalchemy_engine()
    try:
        before = _sqlalchemy_pid(engine)
        raw = engine.pool._pool.queue[0].dbapi_connection

        def no_queries(*args, **kwargs):
            raise AssertionError("the checkout sent a query")

        raw.cursor = no_queries
        try:
            with engine.connect():
                pass
        finally:
            del raw.cursor
        assert _sqlalchemy_pid(engine) == before  # the same connection, kept
    finally:
        engine.dispose()


def test_a_worker_stopping_after_the_server_dropped_its_connection_still_records_a_clean_stop(settings):
    # Otherwise a clean stop reads as a crash: `stale` after 30 s, and its work handed on only then.
    from closeout.ops.heartbeat import Heartbeat
    from closeout.ops.models import WorkerHeartbeat

    heartbeat = Heartbeat(executor_id="worker-dropped", interval=60).start()  # claims on this thread
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the main thread's connection, kept after the claim
    before = _server_pid()
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [before])
    select.select([connection.connection.fileno()], [], [], 5)

    heartbeat.stop(clean=True)

    assert WorkerHeartbeat.objects.get(executor_id="worker-dropped").stopped_at is not None


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_worker_step_whose_connection_is_cut_runs_again_on_a_new_one(monkeypatch, in_transaction):
    """A failover or a restart of PostgreSQL mid-step: the step runs again once the database
    answers, instead of sending the case to staff with "server closed the connection"."""
    from django.db import transaction

    from closeout.closures import workflow

    monkeypatch.setattr(workflow.time, "sleep", lambda seconds: None)
    servers = []

    def count_cards():
        with transaction.atomic(durable=False) if in_transaction else contextlib.nullcontext():
            servers.append(_server_pid())
            if len(servers) == 1:
                with _admin() as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", [servers[0]])
                select.select([connection.connection.fileno()], [], [], 5)
            return Card.objects.count()

    assert workflow._db(count_cards) == 0
    assert len(servers) == 2 and servers[0] != servers[1]
