"""What a running process counts and which case it is working on.

Process-local metrics (step latency, adapter errors) live here. With `PROMETHEUS_MULTIPROC_DIR` set
(`closeout demo` sets it for its web and worker processes) every process on the machine writes its
samples there and `/metrics` adds them up; otherwise `/metrics` shows this process's own, and a
worker on another machine serves its own with `closeout worker --metrics-port`.
"""

from __future__ import annotations

import contextvars
import logging
import time
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

from closeout.integrations.errors import AdapterError, PermanentError

LOCAL = CollectorRegistry(auto_describe=True)

STEP_SECONDS = Histogram(
    "closeout_step_duration_seconds",
    "Time a workflow step took, by step, the system it called (closeout: none) and outcome.",
    ["step", "system", "outcome"], registry=LOCAL,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ADAPTER_ERRORS = Counter(
    "closeout_adapter_errors", "Errors raised by external-system adapters, by system, call and kind.",
    ["system", "call", "kind"], registry=LOCAL,
)

steps_log = logging.getLogger("closeout.steps")


def refusals_count(system: str, call: str, count: int = 1, *, kind: str = "permanent") -> None:
    """Count adapter errors, and refusals an external system gave as an answer rather than as an
    error (a refund the provider declined, a partner's 4xx, the items of a batch it refused): an
    alert on `kind="permanent"` must see them as it sees a refusal raised. A permanent one counts
    once per DBOS step, however often the step runs (`_first_count_of_step`)."""
    if not count:
        return
    if kind == "permanent" and not _first_count_of_step(system, call):
        return
    ADAPTER_ERRORS.labels(system=system, call=call, kind=kind).inc(count)


def _first_count_of_step(system: str, call: str) -> bool:
    """Whether this run of the DBOS step is the first to count its permanent refusal by `system`.

    A step runs again after its worker died before DBOS recorded it; one refusal is one case for
    the alert on `kind="permanent"`, so only the first run counts it (the mark is committed before
    the count: a worker dying between the two loses one count rather than doubling it). Transient
    errors are not marked: each attempt that failed is one. Outside a DBOS step every call counts.
    """
    from django.db import DatabaseError, IntegrityError, transaction

    from closeout.common import clock
    from closeout.ops.models import RefusalCounted

    identity = _dbos_step()
    if identity is None:
        return True
    workflow_id, step_id = identity
    try:
        with transaction.atomic():
            RefusalCounted.objects.create(workflow_id=workflow_id[:200], step_id=step_id, system=system,
                                          call=call[:80], counted_at=clock.now())
    except IntegrityError:
        return False
    except DatabaseError as exc:  # counted unmarked: a replay would count it again, a refusal is never lost
        steps_log.warning("refusal by %s counted without its mark (%s)", system, type(exc).__name__)
    return True


def _dbos_step() -> tuple[str, int] | None:
    """The running DBOS step's workflow id and step id: the same when DBOS runs the step again."""
    from dbos import DBOS

    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    return (workflow_id, step_id) if workflow_id and step_id is not None else None


_case: contextvars.ContextVar[str | None] = contextvars.ContextVar("closeout_case", default=None)
_workflow: contextvars.ContextVar[str | None] = contextvars.ContextVar("closeout_workflow", default=None)


def current_case() -> str | None:
    """The reference of the case this thread works on (None outside a case)."""
    return _case.get()


def current_workflow() -> str | None:
    return _workflow.get()


@contextmanager
def case_context(reference: str | None, workflow_id: str | None = None):
    """Tag every log line inside the block with the case reference (and workflow id)."""
    case_token = _case.set(reference)
    workflow_token = _workflow.set(workflow_id)
    try:
        yield
    finally:
        _case.reset(case_token)
        _workflow.reset(workflow_token)


def _dbos_workflow_id() -> str | None:
    try:
        from dbos._context import get_local_dbos_context
    except ImportError:  # pragma: no cover - dbos is a hard dependency
        return None
    ctx = get_local_dbos_context()
    return ctx.workflow_id if ctx is not None and ctx.workflow_id else None


def reference_of(workflow_id: str | None) -> str | None:
    """`CL-2026-000123:refund:2` → `CL-2026-000123`; ids of other workflows have no case."""
    if workflow_id and workflow_id.startswith("CL-"):
        return workflow_id.split(":", 1)[0]
    return None


def calls(system: str, name: str):
    """Mark a function written outside `integrations/` (a workflow's own wrapper around a port call)
    as a call to external `system` named `name`, so that its time and its errors are counted under
    that system, as an adapter's own methods are."""
    def mark(fn):
        fn.closeout_system = system
        fn.__name__ = fn.__qualname__ = name
        return fn

    return mark


def _system_of(fn) -> str:
    if getattr(fn, "closeout_system", None):
        return fn.closeout_system
    module = getattr(fn, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "integrations":
        return parts[2]
    return "closeout"


@contextmanager
def step(fn):
    """Time one step, count adapter errors, and bind the case of the running workflow."""
    workflow_id = _dbos_workflow_id() or current_workflow()
    name = getattr(fn, "__name__", "step")
    started = time.perf_counter()
    outcome = "ok"
    error = ""
    reference = reference_of(workflow_id) or current_case()
    with case_context(reference, workflow_id):
        try:
            yield
        except AdapterError as exc:
            outcome, error = "error", _said(exc)
            kind = "permanent" if isinstance(exc, PermanentError) else "transient"
            refusals_count(_system_of(fn), name, kind=kind)
            raise
        except BaseException as exc:
            outcome, error = "error", _said(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            STEP_SECONDS.labels(step=name, system=_system_of(fn), outcome=outcome).observe(elapsed)
            # A case's steps are its story; the others (the sweep every few seconds) only noise.
            level = logging.WARNING if outcome == "error" else logging.INFO if reference else logging.DEBUG
            extra = {"step": name, "system": _system_of(fn), "outcome": outcome, "duration_ms": round(elapsed * 1000, 1)}
            if error:  # what the system answered, on the line the runbook's query finds
                steps_log.log(level, "step %s error: %s", name, error, extra=extra | {"error": error})
            else:
                steps_log.log(level, "step %s %s", name, outcome, extra=extra)


def _said(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
