"""Shared fixtures. The suite runs once per engine: CLOSEOUT_TEST_ENGINE=sqlite (default) or
postgres (DATABASE_URL set by scripts/run_tests.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_DATA = Path(tempfile.mkdtemp(prefix="closeout-test-"))
os.environ.setdefault("CLOSEOUT_DATA_DIR", str(_DATA))
os.environ.setdefault("CLOSEOUT_DISPATCH", "0")  # tests that need the worker turn it on
os.environ.setdefault("CLOSEOUT_SWEEP_SCHEDULE", "* * * * * *")

ENGINE = os.environ.get("CLOSEOUT_TEST_ENGINE", "sqlite")
IN_CI = os.environ.get("CI") == "true"

pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ENGINE != "sqlite" and item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(reason="runs on the SQLite pass"))
        if ENGINE != "postgres" and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="PostgreSQL pass only"))
