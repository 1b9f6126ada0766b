"""Operations endpoints: `/metrics` (Prometheus text), `/healthz` (process up), `/readyz`."""

from __future__ import annotations

import hmac
import logging
import os

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse

from closeout.api.problems import methods_allowed, problem
from closeout.ops import metrics

log = logging.getLogger(__name__)

_migrated = False
# The classic text format every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@methods_allowed("GET")
def metrics_view(request):
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE)


@methods_allowed("GET")
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_migrations() -> None:
    global _migrated
    if _migrated:
        return  # applied migrations do not come undone under a running process
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migrations not applied")
    _migrated = True


SYSTEM_DATABASE_TIMEOUT_SEC = 3


def _check_system_database() -> None:
    """Read DBOS's workflow table over a direct connection that gives up within a few seconds.

    Fails both when the server is down and when DBOS's own migrations never ran (a client never
    creates them). DBOS's client would retry with backoff for about a minute, longer than the
    web server lets a request run, so it is not used here.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    url = sqlalchemy.engine.make_url(settings.DBOS_SYSTEM_DATABASE_URL)
    timeout = SYSTEM_DATABASE_TIMEOUT_SEC
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:" or not os.path.exists(path):
            raise RuntimeError("system database file missing")
        # Read-only: a check must never create the file.
        url = url.set(database=f"file:{path}?mode=ro", query={"uri": "true"})
        connect_args = {"timeout": timeout}
        table = "workflow_status"
    else:
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")  # the driver installed (DBOS does the same)
        connect_args = {"connect_timeout": timeout, "options": f"-c statement_timeout={timeout * 1000}"}
        table = "dbos.workflow_status"
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"SELECT 1 FROM {table} LIMIT 1"))
    finally:
        engine.dispose()


def _check_workers() -> None:
    """At least one worker beats: without one, no closure moves, however well the web answers."""
    from closeout.ops.models import WorkerHeartbeat
    from closeout.ops.services import running

    if not WorkerHeartbeat.objects.filter(running()).exists():
        raise RuntimeError("no launched worker has a fresh heartbeat")


CHECKS = {"database": _check_database, "migrations": _check_migrations, "system_database": _check_system_database,
          "workers": _check_workers}


@methods_allowed("GET")
def readyz(request):
    """Every check, or all but those named in `?exclude=` (a load balancer in front of the web
    processes leaves out `workers`: web pages and the API take requests without a worker)."""
    excluded = {name for value in request.GET.getlist("exclude") for name in value.split(",") if name}
    unknown = sorted(excluded - set(CHECKS))
    if unknown:
        return problem(400, "unknown-check", "Unknown readiness check",
                       f"exclude names checks that do not exist: {', '.join(unknown)}; the checks are "
                       f"{', '.join(CHECKS)}.")
    results = {}
    for name, check in CHECKS.items():
        if name in excluded:
            results[name] = "excluded"
            continue
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            log.warning("readiness check %s failed: %s", name, exc if name == "workers" else type(exc).__name__)
            results[name] = "failed"
    ready = all(v != "failed" for v in results.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)
