"""Run the suite on SQLite, then again on PostgreSQL (skipped with a message when PostgreSQL is
absent, except under CI=true where its absence is a failure)."""

from __future__ import annotations

import os
import subprocess
import sys

PG_URL = os.environ.get("CLOSEOUT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/closeout")


def postgres_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def run(label: str, env: dict, extra: list[str]) -> int:
    print(f"\n=== test suite on {label} ===", flush=True)
    command = [sys.executable, "-m", "pytest", "--durations=15", *extra, *sys.argv[1:]]
    return subprocess.call(command, env=env)


def main() -> int:
    base = dict(os.environ)
    base.pop("DATABASE_URL", None)
    ruff = subprocess.call([sys.executable, "-m", "ruff", "check", "src", "tests"])
    code = run("SQLite", {**base, "CLOSEOUT_TEST_ENGINE": "sqlite"}, [])
    if postgres_up():
        # The generated-input tests run at about half size here: the SQLite pass covers the inputs,
        # this one the engine's own answers to them (NUL bytes, lengths, locks), in half the time.
        pg_env = {"CLOSEOUT_FUZZ_MIN_CASES": "1000", "CLOSEOUT_STATEFUL_EXAMPLES": "8",
                  **base, "CLOSEOUT_TEST_ENGINE": "postgres", "DATABASE_URL": PG_URL,
                  "CLOSEOUT_TEST_DB_SUFFIX": f"_{os.getpid()}"}
        code = run("PostgreSQL", pg_env, ["-m", "not browser and not sqlite_only"]) or code
    elif os.environ.get("CI") == "true":
        print("PostgreSQL is not reachable at 127.0.0.1:5432 and CI=true: failing", flush=True)
        code = code or 1
    else:
        print("PostgreSQL is not reachable at 127.0.0.1:5432: skipping the PostgreSQL run", flush=True)
    return code or ruff


if __name__ == "__main__":
    sys.exit(main())
