"""Fixtures for adapter contract tests: the simulators' HTTP surface in-process (no sockets) and
a localstripe server started for the Stripe adapter."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI


def _unavailable(reason: str):
    """Skip locally; in CI an adapter test that cannot run is a failure."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def wsgi_transport(db):
    """An httpx transport into closeout's own WSGI app, sharing the test's database transaction."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield httpx.WSGITransport(app=WSGIHandler())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory):
    """Start `localstripe` on a free loopback port for the session; skip with the reason if it cannot run."""
    exe = shutil.which("localstripe") or str(Path(sys.executable).with_name("localstripe"))
    if not Path(exe).exists():
        _unavailable("localstripe is not installed (pip install localstripe)")
    port = _free_port()
    log = tmp_path_factory.mktemp("localstripe") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "--port", str(port), "--from-scratch"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _unavailable(f"localstripe exited at start: {log.read_text()[-300:]}")
        try:
            httpx.get(f"{url}/v1/customers", auth=("sk_test_contract", ""), timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        _unavailable("localstripe did not start within 20 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
