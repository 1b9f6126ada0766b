"""The SQLite commit counter of benchmark (2) counts what PostgreSQL's transaction ids would:
write transactions, each once, whatever the connection's transaction mode; never read-only ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_write_transactions_are_counted_once_and_reads_not_at_all(tmp_path):
    script = textwrap.dedent(f"""
        import sqlite3
        from benchmarks import sqlite_commits
        sqlite_commits.install({str(tmp_path)!r})
        db = {str(tmp_path / "t.sqlite3")!r}
        auto = sqlite3.connect(db, isolation_level=None)            # Django's autocommit mode
        auto.execute("PRAGMA journal_mode=WAL")
        auto.execute("CREATE TABLE t (x INTEGER)")                   # DDL: not counted
        auto.execute("INSERT INTO t VALUES (1)")                     # 1: a write on its own
        auto.execute("BEGIN IMMEDIATE")
        auto.execute("INSERT INTO t VALUES (2)")
        auto.execute("SAVEPOINT s1")
        auto.execute("UPDATE t SET x = 3 WHERE x = 2")
        auto.execute("RELEASE SAVEPOINT s1")
        auto.execute("COMMIT")                                       # 2: one transaction, two writes
        auto.execute("BEGIN")
        auto.execute("SELECT count(*) FROM t").fetchone()
        auto.execute("COMMIT")                                       # read-only: not counted
        auto.execute("BEGIN")
        auto.execute("DELETE FROM t")
        auto.execute("ROLLBACK")                                     # rolled back: not counted
        legacy = sqlite3.connect(db)                                 # implicit BEGIN (SQLAlchemy's mode)
        legacy.execute("INSERT INTO t VALUES (4)")
        legacy.execute("INSERT INTO t VALUES (5)")
        legacy.commit()                                              # 3
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)

    from benchmarks.sqlite_commits import total

    assert total(tmp_path) == 3
