"""closeout's own settings plus a hello-world endpoint: the baseline runs on the same server config."""

from closeout.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING", "handlers": []}}
