"""Hardening fixtures: a live server, and a log file that records every log line the whole suite
writes (this process and every server it starts), scanned for PII by the last test of the run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.conftest import ENGINE

DATA_DIR = Path(os.environ["CLOSEOUT_DATA_DIR"])
LOG_DIR = DATA_DIR / "logs"
SUITE_LOG = LOG_DIR / "suite.log"
LOG_SCAN_TEST = "test_no_pii_in_any_log_line_of_the_suite"


def _install_suite_log() -> None:
    """Send every record of this process to a file, from collection until the end of the run."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if any(getattr(h, "_closeout_suite_log", False) for h in root.handlers):
        return
    handler = logging.FileHandler(SUITE_LOG, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._closeout_suite_log = True
    root.addHandler(handler)
    # closeout's own debug lines are written too: a leak at DEBUG is still a leak.
    logging.getLogger("closeout").setLevel(logging.DEBUG)


_install_suite_log()


def pytest_collection_modifyitems(config, items):
    """Run the log scan last, after every other test of the session has logged what it logs."""
    last = [item for item in items if item.name == LOG_SCAN_TEST]
    if last:
        items[:] = [item for item in items if item.name != LOG_SCAN_TEST] + last


@pytest.fixture(scope="session")
def closeout_server():
    """One real closeout for the session, with the demo data loaded and two API keys."""
    from tests.hardening import live

    server = live.LiveServer(data_dir=LOG_DIR / f"live-{ENGINE}", engine=ENGINE).start()
    live.STARTED.append(server)
    yield server
    server.stop()
