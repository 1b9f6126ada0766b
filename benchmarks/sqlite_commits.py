"""Count a process's SQLite write transactions, for benchmark (2) on SQLite.

PostgreSQL numbers write transactions (`txid_current()`); SQLite keeps no such counter. When
`CLOSEOUT_BENCH_COMMITS_DIR` is set, `bench_settings` installs this counter in the worker
processes before any connection exists: every `sqlite3` connection (Django's and the DBOS system
database's) gets a statement trace that counts a transaction when it commits after a write, and
an INSERT/UPDATE/DELETE run outside a transaction as one. Read-only transactions (queue polling)
are not counted, as PostgreSQL does not number them either. The running total is written to
`<dir>/<pid>` every 0.2 s and at exit; `total()` adds up the files.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
from pathlib import Path

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_lock = threading.Lock()
_commits = 0


def _counted() -> None:
    global _commits
    with _lock:
        _commits += 1


class _Trace:
    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection
        self.wrote = False

    def __call__(self, sql: str) -> None:
        head = sql.lstrip()[:12].upper()
        if head.startswith(WRITES):
            if self.connection.in_transaction:
                self.wrote = True
            else:
                _counted()
        elif head.startswith(("COMMIT", "END")):
            if self.wrote:
                _counted()
            self.wrote = False
        elif head.startswith("ROLLBACK") and not head.startswith("ROLLBACK TO"):
            self.wrote = False


def install(directory: str) -> None:
    """Count from now on in this process; publish the total under `directory`."""
    original = sqlite3.connect
    out = Path(directory) / str(os.getpid())

    def connect(*args, **kwargs):
        connection = original(*args, **kwargs)
        connection.set_trace_callback(_Trace(connection))
        return connection

    sqlite3.connect = sqlite3.dbapi2.connect = connect

    def publish() -> None:
        out.write_text(str(_commits))

    def loop() -> None:
        while True:
            publish()
            time.sleep(0.2)

    threading.Thread(target=loop, name="bench-commit-count", daemon=True).start()
    atexit.register(publish)


def total(directory: str | Path) -> int:
    """Write transactions published so far by every counting process."""
    return sum(int(p.read_text() or 0) for p in Path(directory).iterdir() if p.name.isdigit())
