"""Shared fixtures. The suite runs once per engine: CLOSEOUT_TEST_ENGINE=sqlite (default) or
postgres (DATABASE_URL set by scripts/run_tests.py)."""

from __future__ import annotations

import os

import pytest

ENGINE = os.environ.get("CLOSEOUT_TEST_ENGINE", "sqlite")
IN_CI = os.environ.get("CI") == "true"

pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ENGINE != "sqlite" and item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(reason="runs on the SQLite pass"))
        if ENGINE != "postgres" and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="PostgreSQL pass only"))


def pytest_configure(config):
    # The suite reads translated pages: make sure every app's catalog is compiled.
    from closeout.i18n import compile_catalogs

    compile_catalogs()


STRAY_THREAD_WAIT_SEC = 30
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config):
    """A thread a test left running (a workflow step retrying against a database that was dropped)
    would keep the process from exiting after the results are out, and the run would hang until
    CI's time runs out. Give such threads a moment, then name them and exit with the run's own
    status, marked failed if it had passed."""
    import sys
    import threading
    import time

    deadline = time.monotonic() + STRAY_THREAD_WAIT_SEC
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stray = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
             and t.is_alive()]
    if stray:
        print(f"\nthreads still running after the tests, which would keep this run from ending: {stray}",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(config.stash.get(_EXIT_STATUS, 1) or 1)

