"""Scripted faults for the simulators, and crash points for kill tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from closeout.integrations.models import Partner, SimFault

MODES = ("timeout", "error_5xx", "decline", "pending", "lost_response", "latency", "duplicate_webhook",
         "out_of_order_webhook", "drop_webhook", "moved")
# The operations each simulator asks `take_fault` about ("webhook": the messages it sends to
# closeout); a fault under any other name would wait forever and never fire.
OPERATIONS = {
    "payments": ("pay", "refund", "refund_batch", "refund_status", "refunds_of", "webhook"),
    "card_system": ("block", "block_batch", "deactivate_number", "card_info"),
    "smdp": ("cancel_order", "release_profile", "profile_status", "webhook"),
    "partners": ("unbind",),  # and each registered partner's code: that partner's endpoint only
    "shipping": ("create_label", "tracking"),
    "sms": ("send",),
}
# The modes each simulator acts on; any other would be taken from the list by a call and change
# nothing, so that a scripted outage silently never happens.
CALL_MODES = ("timeout", "lost_response", "error_5xx", "latency")
WEBHOOK_MODES = ("duplicate_webhook", "out_of_order_webhook", "drop_webhook")
SYSTEM_MODES = {
    "payments": (*CALL_MODES, "decline", "pending", *WEBHOOK_MODES),
    "card_system": (*CALL_MODES, "decline"),
    "smdp": (*CALL_MODES, *WEBHOOK_MODES),
    "partners": ("timeout", "error_5xx", "decline", "latency", "moved"),
    "shipping": CALL_MODES,
    "sms": (*CALL_MODES, "decline"),
}
MAX_REMAINING = 1000


def fault_field_errors(*, system, operation, mode, remaining) -> list[dict]:
    """Say what is wrong with a fault to script, field by field, as [{field, message}].

    Checked before anything is stored: a misspelt operation or a count that is not a whole number
    would otherwise be kept (or crash the request) and the fault would never fire.
    """
    errors = []
    system = system if isinstance(system, str) else None  # a list or object is no system's name
    if system not in OPERATIONS:
        errors.append({"field": "system", "message": f"must be one of {', '.join(OPERATIONS)}"})
    if mode not in MODES:
        errors.append({"field": "mode", "message": f"must be one of {', '.join(MODES)}"})
    elif system in SYSTEM_MODES and mode not in SYSTEM_MODES[system]:
        errors.append({"field": "mode", "message": f"{system} takes the modes {', '.join(SYSTEM_MODES[system])}"})
    if system in OPERATIONS and operation not in ("*", *_operations(system)):
        known = ", ".join(OPERATIONS[system]) + (" or a registered partner's code" if system == "partners" else "")
        errors.append({"field": "operation", "message": f"{system} has the operations {known} (or * for any)"})
    # bool is an int to Python, but `true` is no count of calls.
    if type(remaining) is not int or not 1 <= remaining <= MAX_REMAINING:
        errors.append({"field": "remaining", "message": f"must be a whole number from 1 to {MAX_REMAINING}"})
    return errors


def _operations(system: str) -> tuple[str, ...]:
    if system != "partners":
        return OPERATIONS[system]
    return OPERATIONS[system] + tuple(Partner.objects.values_list("code", flat=True))


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
