"""Scripted faults for the simulators, and crash points for kill tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from closeout.integrations.models import SimFault


def take_fault(system: str, operation: str) -> str | None:
    """Consume one scripted fault for this call, if any, and return its mode.

    A `latency` fault is served here: the call waits CLOSEOUT_SIM_LATENCY_SEC, then goes on.
    """
    mode = _take(system, operation)
    if mode == "latency":
        time.sleep(settings.CLOSEOUT_SIM_LATENCY_SEC)
    return mode


def _take(system: str, operation: str) -> str | None:
    with transaction.atomic():
        fault = (
            SimFault.objects.select_for_update()
            .filter(system=system, operation__in=[operation, "*"], remaining__gt=0)
            .order_by("id")
            .first()
        )
        if fault is None:
            return None
        fault.remaining -= 1
        fault.save(update_fields=["remaining"])
        return fault.mode


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL at a named point, once, when CLOSEOUT_CRASH_AT names it.

    Used by the fault tests to stop the worker exactly at a step boundary; a marker file under
    CLOSEOUT_CRASH_DIR makes each point fire once so the restarted worker runs through.
    """
    wanted = os.environ.get("CLOSEOUT_CRASH_AT")
    if not wanted or name not in wanted.split(","):
        return
    marker = Path(os.environ.get("CLOSEOUT_CRASH_DIR", ".")) / f"crashed-{name.replace(':', '_')}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
