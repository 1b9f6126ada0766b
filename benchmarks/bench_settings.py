"""closeout's own settings plus a hello-world endpoint: the baseline runs on the same server config."""

import os

from closeout.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING", "handlers": []}}

if os.environ.get("CLOSEOUT_BENCH_COMMITS_DIR"):  # benchmark (2) on SQLite counts write transactions
    from benchmarks import sqlite_commits

    sqlite_commits.install(os.environ["CLOSEOUT_BENCH_COMMITS_DIR"])
