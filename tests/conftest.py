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
