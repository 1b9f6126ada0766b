"""Operations endpoints: `/metrics` (Prometheus text), `/healthz` (process up), `/readyz`."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from closeout.ops import metrics

log = logging.getLogger(__name__)

_migrated = False
# The classic text format every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@require_GET
def metrics_view(request):
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE)


@require_GET
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


def _check_system_database() -> None:
    from closeout.closures import dispatch

    # Listing reads the workflow table: fails both when the server is down and when DBOS's own
    # migrations never ran (a client never creates them).
    dispatch.client().list_workflows(limit=1, load_input=False, load_output=False)


CHECKS = {"database": _check_database, "migrations": _check_migrations, "system_database": _check_system_database}


@require_GET
def readyz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "failed"
    ready = all(v == "ok" for v in results.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)
