"""Shared pieces of the benchmarks: a throwaway database, the server as `closeout serve` runs it,
a bounded loopback load generator, and worker processes.

Every figure is printed next to a baseline measured in the same run on the same machine: the
machine is shared, so only ratios mean something.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("CLOSEOUT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


class BenchDatabase:
    """A fresh data dir and database (SQLite file or a new PostgreSQL database), dropped at close."""

    def __init__(self, engine: str):
        self.engine = engine
        self.data_dir = Path(tempfile.mkdtemp(prefix="closeout-bench-"))
        self.name = f"closeout_bench_{uuid.uuid4().hex[:8]}"
        if engine == "postgres":
            self.url = f"{PG_SERVER}/{self.name}"
            self.dbos_url = f"{PG_SERVER}/{self.name}_dbos"
            self._admin(f'CREATE DATABASE "{self.name}"')
        else:
            self.url = f"sqlite:///{self.data_dir / 'closeout.sqlite3'}"
            self.dbos_url = f"sqlite:///{self.data_dir / 'dbos_sys.sqlite3'}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            CLOSEOUT_DATA_DIR=str(self.data_dir), DATABASE_URL=self.url, CLOSEOUT_DBOS_DATABASE_URL=self.dbos_url,
            DJANGO_SETTINGS_MODULE="benchmarks.bench_settings", CLOSEOUT_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        )
        env.update(extra)
        return env

    def setup_django(self) -> None:
        """Point this process at the bench database, migrate both databases, load the products."""
        os.environ.update(self.env())
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        from closeout import worker

        call_command("migrate", interactive=False, verbosity=0)
        worker.migrate_system_database()

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
        try:
            from closeout.closures import dispatch

            dispatch.reset_client()
        except Exception:  # noqa: BLE001 - best effort at the end of a run
            pass
        if self.engine == "postgres":
            for name in (self.name, f"{self.name}_dbos"):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not os.environ.get("CLOSEOUT_BENCH_KEEP"):
            shutil.rmtree(self.data_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with the exact command line of `closeout serve` (sync workers), quiet access log."""

    def __init__(self, db: BenchDatabase, workers: int = 2, **env):
        from closeout.cli import _serve_command

        self.port = free_port()
        command = _serve_command(self.port, workers)
        command[command.index("--access-logfile") + 1] = "/dev/null"
        self.log = open(db.data_dir / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, env=db.env(**env), stdout=self.log, stderr=self.log, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {db.data_dir / 'gunicorn.log'}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self, label: str) -> str:
        return (f"{label:<34} {self.rate:9.1f} req/s  p50 {self.pct(50):7.2f} ms  p99 {self.pct(99):7.2f} ms  "
                f"({self.requests} requests, {self.errors} errors, {self.seconds:.1f} s)")


def _worker_load(port, make_request, indices, deadline, threads, out):
    latencies, errors, lock = [], [0], threading.Lock()
    it = iter(indices)

    def run():
        while time.monotonic() < deadline:
            with lock:
                i = next(it, None)
            if i is None:
                return
            method, path, body, headers = make_request(i)
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                ok = response.status < 400
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.send((latencies, errors[0]))
    out.close()


def load(port: int, make_request, *, total: int, seconds: float, processes: int = 2, threads: int = 4) -> LoadResult:
    """Send at most `total` requests for at most `seconds` from loopback with processes × threads
    concurrent connections. `make_request(i)` → (method, path, body, headers), distinct per i."""
    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    deadline = started + seconds
    pipes, procs = [], []
    for p in range(processes):
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_load,
                           args=(port, make_request, range(p, total, processes), deadline, threads, sender))
        proc.start()
        pipes.append(receiver)
        procs.append(proc)
    latencies, errors = [], 0
    for receiver in pipes:
        got, failed = receiver.recv()
        latencies += got
        errors += failed
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - started
    return LoadResult(requests=len(latencies), errors=errors, seconds=elapsed, latencies=latencies)


def json_request(method: str, path: str, payload: dict | None = None, **headers):
    body = json.dumps(payload).encode() if payload is not None else None
    base = {"Content-Type": "application/json"} if body is not None else {}
    return method, path, body, {**base, **headers}


def ratio_line(label: str, value: float, baseline: float, target: str) -> str:
    ratio = value / baseline if baseline else float("nan")
    return f"RATIO {label}: {ratio:.3f}  (target {target})"


def median(values):
    return statistics.median(values) if values else float("nan")


class Workers:
    """`closeout worker` processes on the bench databases."""

    def __init__(self, db: BenchDatabase, n: int, **env):
        self.procs = []
        for i in range(n):
            log = open(db.data_dir / f"worker-{i}.log", "ab")  # noqa: SIM115 - lives with the process
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "closeout.cli", "worker", "--executor-id", f"bench-{i}"],
                env=db.env(CLOSEOUT_EXECUTOR_ID=f"bench-{i}", **env), stdout=log, stderr=log, cwd=ROOT))

    def cpu_seconds(self) -> float:
        """User + system CPU the worker processes have used so far (from /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for p in self.procs:
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


HKID = "A1234563"


def issue_cards(n: int, *, product_code: str = "YKT", balance: int = 5000) -> list[str]:
    """Issue n cards to one holder through the services; return their numbers."""
    from datetime import timedelta

    from closeout.cards import services as cards
    from closeout.common import clock
    from closeout.common.money import Money
    from closeout.demo import products_load
    from closeout.identity.documents import luhn_check_digit

    product = products_load()[product_code]
    holder = cards.holder_create(name="Bench Holder", id_type="hkid", id_number=HKID, email="bench@example.test")
    numbers = []
    issued = clock.now() - timedelta(days=400)
    base = int(time.time()) % 10**6
    length = 16 if product.kind == "stored_value" else 19
    for i in range(n):
        body = product.number_prefix + f"{base:06d}{i:0{length - len(product.number_prefix) - 7}d}"
        number = body + luhn_check_digit(body)
        cards.card_issue(number=number, product=product, holder=holder, issued_at=issued,
                         balance=Money(balance, product.currency), physical=False, transaction_count=10)
        numbers.append(number)
    return numbers
