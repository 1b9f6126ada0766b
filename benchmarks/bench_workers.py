"""Benchmark (2): end-to-end closures per second through `closeout worker` processes (simulators
with zero latency) times commits per closure, against the storage commit ceiling measured by
pgbench on the same PostgreSQL in the same run; then 1 worker against 2.

    python -m benchmarks.bench_workers [--cases 200] [--pgbench-seconds 10]

Commits: write transactions on the whole PostgreSQL server (application and DBOS system database),
counted by how far `txid_current()` moved (PostgreSQL numbers only transactions that write, so the
workers' read-only polling is left out), minus the idle workers' rate (heartbeats, sweeps) measured
just before. Targets: ratio ≥ 0.5; 2 workers ≥ 1.7 × 1 worker.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

from benchmarks import _harness as h


def _write_transactions() -> int:
    """How many write transactions the server has numbered so far (this call's own included)."""
    import psycopg

    with psycopg.connect(f"{h.PG_SERVER}/postgres", autocommit=True) as conn:
        return int(conn.execute("SELECT txid_current()").fetchone()[0])


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


def run_closures(db, numbers, workers: int, timeout: float, poll: float) -> dict:
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
    pool = h.Workers(db, workers, **env)
    try:
        deadline = time.monotonic() + 60
        while WorkerHeartbeat.objects.filter(stopped_at__isnull=True).count() < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.2)
        time.sleep(2)  # let them finish launching and recovering
        idle_from, idle_t = _write_transactions(), time.monotonic()
        time.sleep(5)
        idle_rate = (_write_transactions() - idle_from - 1) / (time.monotonic() - idle_t)

        start_xid, start_cpu = _write_transactions(), pool.cpu_seconds()
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
        commits = _write_transactions() - start_xid - 2 - idle_rate * elapsed
    finally:
        pool.stop()
    return {"workers": workers, "closures": len(cases), "seconds": elapsed, "rate": len(cases) / elapsed,
            "commits_per_closure": commits / len(cases), "idle_commits_per_s": idle_rate,
            "cpu_ms_per_closure": cpu / len(cases) * 1000, "cpu_busy": cpu / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--poll", type=float, default=0.1, help="queue polling interval of the workers (s)")
    args = parser.parse_args()

    db = h.BenchDatabase("postgres")
    try:
        db.setup_django()
        numbers = h.issue_cards(args.cases * 2)
        one = run_closures(db, numbers[: args.cases], 1, args.timeout, args.poll)
        two = run_closures(db, numbers[args.cases:], 2, args.timeout, args.poll)
    finally:
        db.close()
    tps = pgbench_tps(args.pgbench_seconds)

    print(f"machine: {h.machine()}; PostgreSQL; simulators with zero latency; queue polling {args.poll} s")
    print(f"pgbench simple-update (-N), 4 clients: {tps:.0f} commits/s (the storage commit ceiling)")
    for r in (one, two):
        print(f"{r['workers']} worker(s): {r['rate']:.2f} closures/s ({r['closures']} in {r['seconds']:.1f} s), "
              f"{r['commits_per_closure']:.1f} commits/closure, idle {r['idle_commits_per_s']:.0f} commits/s; "
              f"worker CPU {r['cpu_ms_per_closure']:.0f} ms/closure ({r['cpu_busy']:.2f} cores busy)")
    for r in (one, two):
        print(h.ratio_line(f"(2) {r['workers']} worker(s): closures/s x commits/closure / pgbench",
                           r["rate"] * r["commits_per_closure"], tps, ">= 0.5"))
    print(h.ratio_line("(2) 2 workers / 1 worker", two["rate"], one["rate"], ">= 1.7"))


if __name__ == "__main__":
    main()
