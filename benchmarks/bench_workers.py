"""Benchmark (2): end-to-end closures per second through `closeout worker` processes (simulators
with zero latency) times commits per closure, against the storage commit ceiling measured in the
same run; then 1 worker against 2.

    python -m benchmarks.bench_workers [--engine postgres|sqlite] [--cases 200] [--pgbench-seconds 10]

Commits are write transactions, minus the idle workers' rate (heartbeats, sweeps) measured just
before. On PostgreSQL: on the whole server (application and DBOS system database), counted by how
far `txid_current()` moved (PostgreSQL numbers only transactions that write, so the workers'
read-only polling is left out); the ceiling is `pgbench -N`. On SQLite: counted in the worker
processes by a statement trace on every connection (`sqlite_commits`); the ceiling is a loop of
one-row write transactions on a WAL database with the product's pragmas. Targets: ratio ≥ 0.5;
2 workers ≥ 1.7 × 1 worker.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

from benchmarks import _harness as h


class ServerCommits:
    """Write transactions PostgreSQL has numbered so far; each reading numbers one itself."""

    own = 1

    def env(self) -> dict:
        return {}

    def __call__(self) -> int:
        import psycopg

        with psycopg.connect(f"{h.PG_SERVER}/postgres", autocommit=True) as conn:
            return int(conn.execute("SELECT txid_current()").fetchone()[0])


class WorkerCommits:
    """Write transactions the worker processes have committed to SQLite so far."""

    own = 0

    def __init__(self, db):
        self.directory = db.data_dir / "commits"
        self.directory.mkdir()

    def env(self) -> dict:
        return {"CLOSEOUT_BENCH_COMMITS_DIR": str(self.directory)}

    def __call__(self) -> int:
        from benchmarks.sqlite_commits import total

        time.sleep(0.5)  # let every worker publish its latest total
        return total(self.directory)


def sqlite_commit_ceiling(seconds: float) -> float:
    """One-row write transactions per second on a WAL database with the product's pragmas."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory(prefix="closeout-wal-") as folder:
        conn = sqlite3.connect(f"{folder}/ceiling.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at REAL)")
        done, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (at) VALUES (?)", (time.time(),))
            conn.execute("COMMIT")
            done += 1
        elapsed = time.monotonic() - started
        conn.close()
    return done / elapsed


def pgbench_tps(seconds: int, clients: int = 4) -> float:
    import psycopg

    name = f"closeout_pgbench_{int(time.time())}"
    with psycopg.connect(f"{h.PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ["-h", "127.0.0.1", "-U", "postgres"]
        subprocess.run(["pgbench", *base, "-i", "-q", "-s", "1", name], check=True, capture_output=True)
        out = subprocess.run(["pgbench", *base, "-n", "-N", "-c", str(clients), "-j", "2", "-T", str(seconds), name],
                             check=True, capture_output=True, text=True).stdout
        return float(re.search(r"tps = ([\d.]+)", out).group(1))
    finally:
        with psycopg.connect(f"{h.PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_closures(db, numbers, workers: int, timeout: float, poll: float, commits) -> dict:
    from datetime import timedelta

    from closeout.cards.models import Card
    from closeout.closures import services, states
    from closeout.closures.models import ClosureCase
    from closeout.common import clock
    from closeout.ops.models import WorkerHeartbeat

    # Open the cases first with their first action held back, then release them all at once.
    cases = [services.closure_request(card=Card.objects.get(number=n), channel="partner_api", requester="bench")
             for n in numbers]
    refs = [c.reference for c in cases]
    ClosureCase.objects.filter(reference__in=refs).update(next_action_due_at=clock.now() + timedelta(days=1))
    env = dict(CLOSEOUT_QUEUE_POLL_SEC=str(poll), CLOSEOUT_SWEEP_SCHEDULE="*/5 * * * * *", CLOSEOUT_DISPATCH="1")
    pool = h.Workers(db, workers, **env, **commits.env())
    try:
        deadline = time.monotonic() + 60
        while WorkerHeartbeat.objects.filter(stopped_at__isnull=True).count() < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.2)
        time.sleep(2)  # let them finish launching and recovering
        idle_from, idle_t, idle_cpu = commits(), time.monotonic(), pool.cpu_seconds()
        time.sleep(5)
        idle_seconds = time.monotonic() - idle_t
        idle_cores = (pool.cpu_seconds() - idle_cpu) / idle_seconds / workers
        idle_rate = (commits() - idle_from - commits.own) / idle_seconds

        start_commits, start_cpu = commits(), pool.cpu_seconds()
        started = time.monotonic()
        ClosureCase.objects.filter(reference__in=refs).update(next_action_due_at=clock.now())
        while ClosureCase.objects.filter(reference__in=refs, state=states.CLOSED).count() < len(refs):
            if time.monotonic() - started > timeout:
                from collections import Counter

                left = Counter(ClosureCase.objects.filter(reference__in=refs).values_list("state", flat=True))
                raise RuntimeError(f"closures did not finish in time: {dict(left)}; logs in {db.data_dir}")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu = pool.cpu_seconds() - start_cpu
        written = commits() - start_commits - 2 * commits.own - idle_rate * elapsed
    finally:
        pool.stop()
    return {"workers": workers, "closures": len(cases), "seconds": elapsed, "rate": len(cases) / elapsed,
            "commits_per_closure": written / len(cases), "idle_commits_per_s": idle_rate,
            "idle_cores_per_worker": idle_cores,
            "cpu_ms_per_closure": cpu / len(cases) * 1000, "cpu_busy": cpu / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="also the SQLite ceiling's duration")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--poll", type=float, default=0.1, help="queue polling interval of the workers (s)")
    args = parser.parse_args()

    db = h.BenchDatabase(args.engine)
    try:
        db.setup_django()
        commits = ServerCommits() if args.engine == "postgres" else WorkerCommits(db)
        numbers = h.issue_cards(args.cases * 2)
        one = run_closures(db, numbers[: args.cases], 1, args.timeout, args.poll, commits)
        two = run_closures(db, numbers[args.cases:], 2, args.timeout, args.poll, commits)
    finally:
        db.close()
    if args.engine == "postgres":
        ceiling = pgbench_tps(args.pgbench_seconds)
        ceiling_line = f"pgbench simple-update (-N), 4 clients: {ceiling:.0f} commits/s (the storage commit ceiling)"
        against = "pgbench"
    else:
        ceiling = sqlite_commit_ceiling(args.pgbench_seconds)
        ceiling_line = (f"SQLite WAL commit loop (synchronous=NORMAL, one-row transactions): {ceiling:.0f} commits/s "
                        "(the storage commit ceiling)")
        against = "WAL loop"

    print(f"machine: {h.machine()}; {'PostgreSQL' if args.engine == 'postgres' else 'SQLite'}; "
          f"simulators with zero latency; queue polling {args.poll} s")
    print(ceiling_line)
    for r in (one, two):
        print(f"{r['workers']} worker(s): {r['rate']:.2f} closures/s ({r['closures']} in {r['seconds']:.1f} s), "
              f"{r['commits_per_closure']:.1f} commits/closure, idle {r['idle_commits_per_s']:.0f} commits/s "
              f"and {r['idle_cores_per_worker']:.3f} cores per worker; "
              f"worker CPU {r['cpu_ms_per_closure']:.0f} ms/closure ({r['cpu_busy']:.2f} cores busy)")
    for r in (one, two):
        print(h.ratio_line(f"(2) {r['workers']} worker(s): closures/s x commits/closure / {against}",
                           r["rate"] * r["commits_per_closure"], ceiling, ">= 0.5"))
    print(h.ratio_line("(2) 2 workers / 1 worker", two["rate"], one["rate"], ">= 1.7"))


if __name__ == "__main__":
    main()
