"""Benchmark (3): bulk-close of N generated dormant cards against PostgreSQL COPY of the same rows.

    python benchmarks/bulk_close.py [--cards 1000000] [--batch-size 2000]

Creates a scratch PostgreSQL database, loads N dormant cards with COPY, runs the bulk closure
(intake + batched settle / refund file / block, inline, as the batch workflows would run them),
then COPYs every row the closure inserted (and only those: not the cards, accounts and postings
loaded before it) into empty twins of the same tables (same indexes and constraints) as the
baseline. Prints the ratio baseline/closure (target >= 0.1) and peak RSS
(target < 300 MB). Both are measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
WRITTEN_TABLES = ["closures_closurecase", "closures_caseevent", "audit_auditevent", "ledger_posting",
                  "ledger_line", "ledger_account", "closures_refund", "closures_refundapproval",
                  "closures_bulkbatch", "certificates_certificate", "suppression_suppression",
                  "integrations_simrefund", "integrations_simcardblock"]
UUID_KEYED = {"certificates_certificate"}  # empty before the closure


def setup_env(db: str, data_dir: str) -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{db}"
    os.environ["CLOSEOUT_DATA_DIR"] = data_dir
    os.environ["CLOSEOUT_DISPATCH"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "closeout.settings"
    sys.path.insert(0, str(ROOT / "src"))


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def load_cards(n: int, csv_path: Path) -> None:
    """COPY n dormant Yikatong-like cards with their issue postings, and write the CSV."""
    from django.db import connection, transaction

    from closeout.cards.models import Card
    from closeout.cards.services import holder_create
    from closeout.demo import products_load
    from closeout.identity.documents import luhn_check_digit
    from closeout.ledger.models import Account, Line, Posting

    product = products_load()["YKT"]
    holders = [holder_create(name=f"Holder {i}", id_type="passport", id_number=f"E{i:08d}").id for i in range(200)]
    issued = datetime(2019, 1, 1, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor, csv_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["card_number"])
        raw = cursor.cursor
        with raw.copy("COPY cards_card (id, number, product_id, holder_id, status, physical, issued_at, "
                      "last_used_at, transaction_count, plan_price_minor, plan_data_mb, plan_data_used_mb, "
                      "original_payment_ref) "
                      "FROM STDIN") as copy:
            for i in range(1, n + 1):
                body = f"8103{i:011d}"
                number = body + luhn_check_digit(body)
                writer.writerow([number])
                copy.write_row((i, number, product.id, holders[i % len(holders)], "active", True, issued,
                                issued + timedelta(days=30), 3, 0, 0, 0, ""))
        with raw.copy("COPY ledger_account (id, code, kind, currency) FROM STDIN") as copy:
            copy.write_row((1, "clearing:top_ups", "ASSET", "CNY"))
            for i in range(1, n + 1):
                copy.write_row((2 * i, f"card:{i}:value", "LIABILITY", "CNY"))
                copy.write_row((2 * i + 1, f"card:{i}:deposit", "LIABILITY", "CNY"))
        with raw.copy("COPY ledger_posting (id, key, at, memo, subject) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, f"issue:{i}", issued, "card issued", ""))
        with raw.copy("COPY ledger_line (id, posting_id, account_id, amount_minor, currency) FROM STDIN") as copy:
            for i in range(1, n + 1):
                balance = 100 + (i * 7919) % 40000
                copy.write_row((4 * i, i, 1, 2000 + balance, "CNY"))
                copy.write_row((4 * i + 1, i, 2 * i + 1, -2000, "CNY"))
                copy.write_row((4 * i + 2, i, 2 * i, -balance, "CNY"))
        for model in (Card, Account, Posting, Line):
            table = model._meta.db_table
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def run_closure(csv_path: Path, batch_size: int) -> float:
    from closeout.closures import bulk
    from closeout.closures.models import BulkBatch
    from closeout.integrations import registry

    payments, card_system = registry.port("payments"), registry.port("card_system")
    started = time.perf_counter()
    summary = bulk.bulk_intake(path=csv_path, reason="dormant 5 years", requester="operator:bench",
                               batch_size=batch_size)
    for batch_id in BulkBatch.objects.order_by("id").values_list("id", flat=True).iterator():
        batch = BulkBatch.objects.get(id=batch_id)
        bulk.batch_settle(batch_id=batch.id, workflow_id=batch.next_action_id)
        batch.refresh_from_db()
        items = bulk.batch_refund_items(batch_id=batch.id, workflow_id=batch.next_action_id)
        results = payments.refund_batch(batch_key=batch.next_action_id, items=items)
        bulk.batch_refund_record(batch_id=batch.id, workflow_id=batch.next_action_id,
                                 results={k: v.as_json() for k, v in results.items()})
        batch.refresh_from_db()
        items = bulk.batch_block_items(batch_id=batch.id, workflow_id=batch.next_action_id)
        bulk.batch_blocked_record(batch_id=batch.id, workflow_id=batch.next_action_id,
                                  results=card_system.block_batch(batch_key=batch.next_action_id, items=items))
    elapsed = time.perf_counter() - started
    print(f"closure: {summary.created} cases closed, {summary.rejected} rejected in {elapsed:.1f}s "
          f"({summary.created / elapsed:,.0f} cards/s)")
    return elapsed


def max_ids(db: str) -> dict[str, int]:
    """The highest id of each written table before the closure: rows above it are the closure's."""
    import psycopg

    with psycopg.connect(f"{PG}/{db}") as conn:
        return {table: conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
                for table in WRITTEN_TABLES if table not in UUID_KEYED}


def copy_baseline(db: str, before: dict[str, int], spool: Path) -> tuple[float, int]:
    """COPY every row the closure inserted into empty twin tables; return seconds and row count.

    The rows are spooled to files first (a million cards write gigabytes), then sent back with
    COPY FROM STDIN in 1 MiB chunks: only that second part is timed.
    """
    import psycopg

    files, rows = {}, 0
    with psycopg.connect(f"{PG}/{db}") as conn:
        for table in WRITTEN_TABLES:
            files[table] = spool / f"{table}.copy"
            selected = f"(SELECT * FROM {table} WHERE id > {before[table]})" if table in before else table
            with conn.cursor().copy(f"COPY {selected} TO STDOUT") as copy, files[table].open("wb") as out:
                for chunk in copy:
                    rows += bytes(chunk).count(b"\n")
                    out.write(chunk)
            conn.execute(f"CREATE TABLE twin_{table} (LIKE {table} INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with conn.transaction():
            for table, path in files.items():
                with conn.cursor().copy(f"COPY twin_{table} FROM STDIN") as copy, path.open("rb") as data:
                    for chunk in iter(lambda: data.read(1 << 20), b""):
                        copy.write(chunk)
        elapsed = time.perf_counter() - started
    for path in files.values():
        path.unlink()
    return elapsed, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    db = f"closeout_bench_bulk_{os.getpid()}"
    data_dir = tempfile.mkdtemp(prefix="closeout-bench-")
    setup_env(db, data_dir)
    admin(f'CREATE DATABASE "{db}"')
    try:
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], check=True, env=os.environ)
        import django

        django.setup()
        csv_path = Path(data_dir) / "dormant.csv"
        started = time.perf_counter()
        load_cards(args.cards, csv_path)
        print(f"loaded {args.cards:,} dormant cards in {time.perf_counter() - started:.1f}s (not measured)")
        before = max_ids(db)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        closure = run_closure(csv_path, args.batch_size)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        baseline, rows = copy_baseline(db, before, Path(data_dir))
        ratio = baseline / closure
        print(f"baseline: COPY of the same {rows:,} rows into twin tables in {baseline:.1f}s")
        print(f"ratio (COPY time / bulk-close time) = {ratio:.3f}  target >= 0.1  {'OK' if ratio >= 0.1 else 'MISSED'}")
        print(f"peak RSS {peak:.0f} MB (before the closure {rss_before:.0f} MB)  target < 300 MB  "
              f"{'OK' if peak < 300 else 'MISSED'}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
