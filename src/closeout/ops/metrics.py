"""The `/metrics` exposition: database-wide figures read at scrape time plus process metrics.

Figures that must agree across every process and machine (cases by state, refunds) are read from
the database, the source of truth, rather than counted in memory.
"""

from __future__ import annotations

import os

from django.db.models import Count, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from closeout.closures import states
from closeout.closures.models import ClosureCase, Refund
from closeout.common import clock
from closeout.ops import observe
from closeout.ops.models import WorkerHeartbeat


class DatabaseCollector:
    """Cases by state, refunds by currency and status, worker heartbeat ages."""

    def collect(self):
        cases = GaugeMetricFamily("closeout_cases", "Closure cases by state.", labels=["state"])
        counts = dict(ClosureCase.objects.values_list("state").annotate(n=Count("id")).order_by())
        for state in states.ALL:
            cases.add_metric([state], counts.get(state, 0))
        yield cases

        refunds = CounterMetricFamily("closeout_refunds", "Refunds recorded, by currency and status.",
                                      labels=["currency", "status"])
        amounts = CounterMetricFamily(
            "closeout_refund_amount_minor", "Sum of refund amounts in minor units, by currency and status.",
            labels=["currency", "status"])
        for row in Refund.objects.values("currency", "status").annotate(n=Count("id"), total=Sum("amount_minor")).order_by():
            refunds.add_metric([row["currency"], row["status"]], row["n"])
            amounts.add_metric([row["currency"], row["status"]], row["total"] or 0)
        yield refunds
        yield amounts

        now = clock.now()
        age = GaugeMetricFamily("closeout_worker_heartbeat_age_seconds",
                                "Seconds since each worker last beat (stopped workers left out).",
                                labels=["executor_id"])
        for executor_id, beat_at in WorkerHeartbeat.objects.filter(stopped_at__isnull=True).values_list(
                "executor_id", "beat_at"):
            age.add_metric([executor_id], max(0.0, (now - beat_at).total_seconds()))
        yield age


class _Local:
    def collect(self):
        yield from observe.LOCAL.collect()


def exposition() -> bytes:
    """Render every metric in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    registry.register(DatabaseCollector())
    return generate_latest(registry)
