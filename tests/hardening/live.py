"""A real closeout (gunicorn via `closeout serve`) on a free port with its own data directory and,
in the PostgreSQL pass, its own PostgreSQL database. Used by the fuzzing and timing tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STARTED: list[LiveServer] = []  # every server of this run, for the log scan


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class LiveServer:
    """One running closeout. `url` is its root; `log_path` collects everything it writes."""

    data_dir: Path
    engine: str
    port: int = field(default_factory=free_port)
    url: str = ""
    log_path: Path | None = None
    operator_key: str = ""
    partner_key: str = ""
    demo_cards: list[dict] = field(default_factory=list)
    database: str = ""
    _process: subprocess.Popen | None = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLOSEOUT_DBOS_DATABASE_URL")}
        env.update(CLOSEOUT_DATA_DIR=str(self.data_dir), CLOSEOUT_DISPATCH="1", CLOSEOUT_LOG_LEVEL="DEBUG",
                   PYTHONUNBUFFERED="1")
        if self.engine == "postgres":
            env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{self.database}"
        return env

    def cli(self, *args: str) -> str:
        """Run `closeout ARGS --data-dir DIR` against this server's databases and return stdout."""
        with open(self.log_path, "a") as log:
            done = subprocess.run([sys.executable, "-m", "closeout.cli", *args], env=self.env(), check=True,
                                  stdout=subprocess.PIPE, stderr=log, text=True, timeout=300)
        return done.stdout

    def start(self) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "server.log"
        if self.engine == "postgres":
            self.database = f"closeout_live_{uuid.uuid4().hex[:8]}"
            _pg_admin(f'CREATE DATABASE "{self.database}"')
        self.cli("demo-data")
        self.operator_key = self.cli("apikey", "create", "--name", "hardening-operator", "--scope", "operator").strip()
        self.partner_key = self.cli("apikey", "create", "--name", "hardening-partner").strip()
        self.demo_cards = json.loads(self.cli("demo-data", "--list-json"))
        return self.serve()

    def serve(self) -> LiveServer:
        """Start `closeout serve` on the prepared databases (again, after a stop or a kill)."""
        log = open(self.log_path, "a")  # noqa: SIM115 - kept open for the server's lifetime
        self._process = subprocess.Popen(
            [sys.executable, "-m", "closeout.cli", "serve", "--port", str(self.port), "--workers", "2"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"closeout serve exited with {self._process.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/api/v1/openapi.json", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"closeout serve did not answer within 90 s; see {self.log_path}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self.engine == "postgres" and self.database:
            for name in (self.database, f"{self.database}_dbos"):
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.database = ""

    def headers(self, *, scope: str = "operator", **extra: str) -> dict:
        key = self.operator_key if scope == "operator" else self.partner_key
        return {"Authorization": f"Bearer {key}", **extra}
