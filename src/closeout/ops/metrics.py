"""The `/metrics` exposition: database-wide figures read at scrape time plus process metrics.

Figures that must agree across every process and machine (cases by state, refunds) are read from
the database, the source of truth, rather than counted in memory.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

from django.db import Error as DatabaseError
from django.db.models import Count, Min, Q, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from closeout.closures import states
from closeout.closures.models import ClosureCase, Refund
from closeout.common import clock
from closeout.notifications.models import UNDELIVERED, Notice
from closeout.notifications.services import NOTICE_ATTEMPTS
from closeout.ops import observe
from closeout.ops.models import WorkerHeartbeat
from closeout.ops.services import handed_on, launched, stale_after

log = logging.getLogger(__name__)


class DatabaseCollector:
    """Cases by state, refunds by currency and status, worker heartbeats, and whether the database
    answered at all (`closeout_database_up`): a scrape while the database is down still serves the
    process metrics."""

    def collect(self):
        up = GaugeMetricFamily("closeout_database_up", "1 when the main database answered this scrape, else 0.")
        try:
            families = list(self._read())  # all or nothing: no half-read families
        except DatabaseError:
            log.warning("metrics: main database unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self):
        now = clock.now()
        cases = GaugeMetricFamily("closeout_cases", "Closure cases by state.", labels=["state"])
        # Stuck cases: how long the case that moved least recently in each open state has not moved
        # (0 when none is in it). Read in the same pass as the counts.
        oldest = GaugeMetricFamily(
            "closeout_case_oldest_unchanged_seconds",
            "Seconds since the least recently changed open case in each state last changed (0: none in it).",
            labels=["state"])
        # A case that waits in `verified` for its holder to pay what the refund cannot cover (or
        # for a waiver) waits for a person, possibly for days: counted, but it does not age the state.
        for_payment = Q(state=states.VERIFIED, next_action="", quote__uncovered__gt=0)
        counts, firsts = {}, {}
        for state, n, first in (ClosureCase.objects.values_list("state")
                                .annotate(n=Count("id"), first=Min("updated_at", filter=~for_payment)).order_by()):
            counts[state], firsts[state] = n, first
        for state in states.ALL:
            cases.add_metric([state], counts.get(state, 0))
            if state not in states.TERMINAL:
                oldest.add_metric([state], max(0.0, (now - (firsts.get(state) or now)).total_seconds()))
        yield cases
        yield oldest

        # An action that is due and has not run: nothing runs the workflows (no live worker), or a
        # system's queue is stuck behind slow calls. Each normally runs within seconds of falling due.
        overdue = GaugeMetricFamily("closeout_actions_overdue", "Cases whose next action is due and not done yet, by action.",
                                    labels=["action"])
        overdue_age = GaugeMetricFamily(
            "closeout_action_oldest_overdue_seconds",
            "Seconds since the action that has waited longest to run fell due, by action (0: none waiting).",
            labels=["action"])
        waiting = {action: (n, first) for action, n, first in (
            ClosureCase.objects.filter(next_action_due_at__lte=now).exclude(next_action="")
            .values_list("next_action").annotate(n=Count("id"), first=Min("next_action_due_at")).order_by())}
        for action in states.CASE_ACTIONS:
            n, first = waiting.get(action, (0, now))
            overdue.add_metric([action], n)
            overdue_age.add_metric([action], max(0.0, (now - first).total_seconds()))
        yield overdue
        yield overdue_age

        # Gauges, not counters: they are read from the current rows by status, so a refund moving
        # from `pending` to `succeeded` lowers one series.
        refunds = GaugeMetricFamily("closeout_refunds", "Refunds currently recorded, by currency and status.",
                                    labels=["currency", "status"])
        amounts = GaugeMetricFamily(
            "closeout_refund_amount_minor",
            "Sum of the amounts of refunds currently recorded, in minor units, by currency and status.",
            labels=["currency", "status"])
        # How long the payment provider has held a refund pending (one it gave a reference for; a
        # cash refund waiting at a counter waits for the customer): polled ever less often, such a
        # case shows nowhere else, as `refund_pending` also holds refunds waiting for approval.
        held = GaugeMetricFamily(
            "closeout_refund_oldest_pending_seconds",
            "Seconds since the oldest refund the payment provider still holds pending was asked (0: none).")
        first_held = None
        for row in (Refund.objects.values("currency", "status")
                    .annotate(n=Count("id"), total=Sum("amount_minor"),
                              first=Min("created_at", filter=Q(status=Refund.Status.PENDING) & ~Q(provider_ref="")))
                    .order_by()):
            refunds.add_metric([row["currency"], row["status"]], row["n"])
            amounts.add_metric([row["currency"], row["status"]], row["total"] or 0)
            if row["first"] is not None:
                first_held = min(first_held or row["first"], row["first"])
        held.add_metric([], max(0.0, (now - (first_held or now)).total_seconds()))
        yield refunds
        yield amounts
        yield held

        # Undelivered notices only (a partial index holds just those): a mail relay or SMS gateway
        # that is down shows as these growing and getting old. A notice whose attempts are spent is
        # counted apart and left out of the age, which would otherwise only ever grow.
        undelivered = GaugeMetricFamily(
            "closeout_notices_undelivered",
            "Notices not sent, by channel and status (queued; failed, still retried; given_up).",
            labels=["channel", "status"])
        oldest = GaugeMetricFamily("closeout_notice_oldest_undelivered_seconds",
                                   "Age of the oldest notice not sent yet and still retried, by channel.",
                                   labels=["channel"])
        counts, firsts = Counter(), {}
        for channel, status, attempts, first, n in (
                Notice.objects.filter(status__in=UNDELIVERED).values_list("channel", "status", "attempts")
                .annotate(first=Min("created_at"), n=Count("id")).order_by()):
            spent = attempts >= NOTICE_ATTEMPTS
            counts[channel, "given_up" if spent else status] += n
            if not spent:
                firsts[channel] = min(firsts.get(channel, first), first)
        for (channel, status), n in counts.items():
            undelivered.add_metric([channel, status], n)
        for channel in Notice.Channel.values:
            oldest.add_metric([channel], max(0.0, (now - firsts.get(channel, now)).total_seconds()))
        yield undelivered
        yield oldest

        age = GaugeMetricFamily("closeout_worker_heartbeat_age_seconds",
                                "Seconds since each worker last beat (left out: workers that stopped, and dead "
                                "ones whose workflows were handed on).", labels=["executor_id"])
        live = 0
        for beat in WorkerHeartbeat.objects.filter(stopped_at__isnull=True):
            fresh = beat.beat_at >= now - stale_after()
            if fresh or not handed_on(beat):
                age.add_metric([beat.executor_id], max(0.0, (now - beat.beat_at).total_seconds()))
            live += fresh and launched(beat)
        yield age
        yield GaugeMetricFamily("closeout_workers_live",
                                "Launched workers with a fresh heartbeat that have not stopped (0: nothing runs the "
                                "closures).",
                                value=live)


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
