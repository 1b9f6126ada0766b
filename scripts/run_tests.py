"""Run the suite on SQLite and, at the same time, again on PostgreSQL (skipped with a message when
PostgreSQL is absent, except under CI=true where its absence is a failure)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

PG_URL = os.environ.get("CLOSEOUT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/closeout")


def postgres_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "--durations=15", *extra, *sys.argv[1:]]


def main() -> int:
    """Both passes run at once: most of a pass's time is spent waiting (workers polling their
    queues, retries backing off, timeouts running out), not computing, so together they take
    little more than the longer one. The PostgreSQL pass's output is printed after the SQLite
    pass's, each whole."""
    base = dict(os.environ)
    base.pop("DATABASE_URL", None)
    ruff = subprocess.call([sys.executable, "-m", "ruff", "check", "src", "tests"])
    postgres = None
    if postgres_up():
        # The generated-input tests run at about half size here: the SQLite pass covers the inputs,
        # this one the engine's own answers to them (NUL bytes, lengths, locks), in half the time.
        pg_env = {"CLOSEOUT_FUZZ_MIN_CASES": "1000", "CLOSEOUT_STATEFUL_EXAMPLES": "8",
                  **base, "CLOSEOUT_TEST_ENGINE": "postgres", "DATABASE_URL": PG_URL,
                  "CLOSEOUT_TEST_DB_SUFFIX": f"_{os.getpid()}"}
        log = tempfile.TemporaryFile()
        postgres = (subprocess.Popen(command(["-m", "not browser and not sqlite_only"]), env=pg_env,
                                     stdout=log, stderr=subprocess.STDOUT), log)
    print("\n=== test suite on SQLite ===", flush=True)
    code = subprocess.call(command([]), env={**base, "CLOSEOUT_TEST_ENGINE": "sqlite"})
    if postgres is not None:
        process, log = postgres
        pg_code = process.wait()
        print("\n=== test suite on PostgreSQL ===", flush=True)
        log.seek(0)
        shutil.copyfileobj(log, sys.stdout.buffer)
        sys.stdout.flush()
        code = code or pg_code
    elif os.environ.get("CI") == "true":
        print("PostgreSQL is not reachable at 127.0.0.1:5432 and CI=true: failing", flush=True)
        code = code or 1
    else:
        print("PostgreSQL is not reachable at 127.0.0.1:5432: skipping the PostgreSQL run", flush=True)
    return code or ruff


if __name__ == "__main__":
    sys.exit(main())
