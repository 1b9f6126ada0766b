"""A workflow step whose transaction PostgreSQL chose as a deadlock (or serialization) victim
runs again; any other database error goes up at once, to be recorded on the case."""

from __future__ import annotations

import psycopg.errors
import pytest
from django.db import IntegrityError, OperationalError, transaction

from closeout.closures import workflow

# A step opens fresh connections around its work, so every test here may touch the database.
pytestmark = pytest.mark.django_db(transaction=True)


def _failing(times: int, error: type[psycopg.Error]):
    calls = []

    def record_outcome():
        calls.append(1)
        if len(calls) <= times:
            wrapped = OperationalError if issubclass(error, psycopg.OperationalError) else IntegrityError
            raise wrapped("from the database") from error("from the database")
        return "recorded"

    return record_outcome, calls


@pytest.mark.parametrize("error", [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure])
def test_a_deadlock_victim_runs_again(error):
    step, calls = _failing(workflow.DB_ATTEMPTS - 1, error)
    assert workflow._db(step) == "recorded"
    assert len(calls) == workflow.DB_ATTEMPTS


def test_a_victim_every_time_gives_up_after_the_last_attempt():
    step, calls = _failing(workflow.DB_ATTEMPTS, psycopg.errors.DeadlockDetected)
    with pytest.raises(OperationalError):
        workflow._db(step)
    assert len(calls) == workflow.DB_ATTEMPTS


def test_other_database_errors_are_not_repeated():
    step, calls = _failing(1, psycopg.errors.UniqueViolation)
    with pytest.raises(IntegrityError):
        workflow._db(step)
    assert len(calls) == 1


def test_a_step_run_inside_a_callers_transaction_is_not_repeated():
    # Its failure has doomed the caller's whole transaction: running it again there cannot help.
    step, calls = _failing(1, psycopg.errors.DeadlockDetected)
    with pytest.raises(OperationalError), transaction.atomic():
        workflow._db(step)
    assert len(calls) == 1


@pytest.mark.parametrize("error", [AttributeError("no refund_batch"), TypeError("unexpected keyword"),
                                   workflow.PermanentError("refused")])
def test_a_bug_or_a_refusal_in_an_external_call_is_not_retried(error):
    assert not workflow.worth_another_attempt(error)


def test_a_transient_error_in_an_external_call_is_retried():
    from closeout.integrations.errors import TransientError

    assert workflow.worth_another_attempt(TransientError("timed out"))
    assert workflow.RETRY["should_retry"] is workflow.worth_another_attempt


# psycopg.OperationalError itself, with no SQLSTATE: "server closed the connection unexpectedly".
@pytest.mark.parametrize("error", [psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow,
                                   psycopg.errors.ConnectionFailure, psycopg.errors.TooManyConnections,
                                   psycopg.OperationalError])
def test_a_step_whose_database_went_away_waits_for_it_with_growing_pauses(error, monkeypatch):
    pauses = []
    monkeypatch.setattr(workflow.time, "sleep", pauses.append)
    step, calls = _failing(5, error)

    assert workflow._db(step) == "recorded"

    assert len(calls) == 6
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_database_away_for_longer_than_the_patience_fails_the_step(monkeypatch):
    pauses = []
    monkeypatch.setattr(workflow.time, "sleep", pauses.append)
    step, calls = _failing(1000, psycopg.errors.AdminShutdown)

    with pytest.raises(OperationalError):
        workflow._db(step)

    assert sum(pauses) >= workflow.DB_PATIENCE and max(pauses) == workflow.DB_PAUSE_MAX
    assert sum(pauses[:-1]) < workflow.DB_PATIENCE


def test_an_operational_error_on_a_healthy_connection_is_not_repeated():
    # A lock timeout, say: the statement failed, the connection is fine; staff should see it.
    step, calls = _failing(1, psycopg.errors.LockNotAvailable)
    with pytest.raises(OperationalError):
        workflow._db(step)
    assert len(calls) == 1


def test_a_locked_sqlite_database_is_not_taken_for_a_lost_connection():
    import sqlite3

    calls = []

    def locked():
        calls.append(1)
        raise OperationalError("database is locked") from sqlite3.OperationalError("database is locked")

    with pytest.raises(OperationalError):
        workflow._db(locked)
    assert len(calls) == 1
