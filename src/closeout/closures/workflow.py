"""DBOS workflows: orchestration only. Each action is a short workflow whose id is the case's
`next_action_id`; each external call is a step with retries and a fixed idempotency key; the
last step records the result through a service transition."""

from __future__ import annotations

import logging
from datetime import datetime

from dbos import DBOS
from django.db import close_old_connections

from closeout.closures import services
from closeout.common.money import Money
from closeout.integrations import registry
from closeout.integrations.errors import PermanentError
from closeout.integrations.faults import crash_point
from closeout.ops import observe

log = logging.getLogger(__name__)

RETRY = dict(retries_allowed=True, max_attempts=5, interval_seconds=0.5, backoff_rate=2.0,
             should_retry=lambda exc: not isinstance(exc, PermanentError))


def _db(fn, *args, **kwargs):
    """Run ORM work on a DBOS thread with fresh connections around it.

    The crash points on either side mark every step boundary for the kill tests.
    """
    crash_point(f"before:{fn.__name__}")
    close_old_connections()
    try:
        with observe.step(fn):
            result = fn(*args, **kwargs)
    finally:
        close_old_connections()
    crash_point(f"after:{fn.__name__}")
    return result


@DBOS.step(name="closeout.verify")
def verify_step(reference: str, workflow_id: str) -> str:
    return _db(services.closure_verify, reference=reference, workflow_id=workflow_id)


@DBOS.step(name="closeout.settle")
def settle_step(reference: str, workflow_id: str) -> str:
    return _db(services.closure_settle, reference=reference, workflow_id=workflow_id)


@DBOS.step(name="closeout.refund_order")
def refund_order_step(reference: str, workflow_id: str) -> dict | None:
    return _db(services.refund_order, reference=reference, workflow_id=workflow_id)


@DBOS.step(name="closeout.refund_call", **RETRY)
def refund_call_step(order: dict) -> dict:
    result = _db(
        registry.port("payments").refund,
        idempotency_key=order["idempotency_key"],
        amount=Money(order["amount"], order["currency"]),
        destination=order["destination"],
    )
    return result.as_json()


@DBOS.step(name="closeout.refund_status_call", **RETRY)
def refund_status_call_step(reference: str) -> dict:
    return _db(registry.port("payments").refund_status, idempotency_key=f"{reference}:refund").as_json()


@DBOS.step(name="closeout.refund_record")
def refund_record_step(reference: str, workflow_id: str, result: dict) -> str:
    return _db(services.refund_record, reference=reference, workflow_id=workflow_id, result=result)


@DBOS.step(name="closeout.block_call", **RETRY)
def block_call_step(reference: str, card_number: str) -> dict:
    return _db(registry.port("card_system").block, card_number=card_number,
               idempotency_key=f"{reference}:deactivate")


@DBOS.step(name="closeout.deactivated")
def deactivated_step(reference: str, workflow_id: str, result: dict) -> str:
    return _db(services.closure_deactivated, reference=reference, workflow_id=workflow_id, result=result)


@DBOS.step(name="closeout.case_card")
def case_card_step(reference: str, workflow_id: str) -> str | None:
    def read():
        case = services.ClosureCase.objects.select_related("card").get(reference=reference)
        return case.card.number if case.next_action_id == workflow_id else None

    return _db(read)


@DBOS.step(name="closeout.unbind_call", **RETRY)
def unbind_call_step(reference: str) -> dict:
    def unbind():
        case = services.ClosureCase.objects.select_related("card").get(reference=reference)
        return {b.partner: "acknowledged" for b in case.card.bindings.filter(unbound_at__isnull=True)}

    return _db(unbind)


@DBOS.step(name="closeout.unbound")
def unbound_step(reference: str, workflow_id: str, results: dict) -> str:
    return _db(services.closure_unbound, reference=reference, workflow_id=workflow_id, results=results)


@DBOS.step(name="closeout.action_failed")
def action_failed_step(reference: str, workflow_id: str, error: str) -> str:
    return _db(services.closure_action_failed, reference=reference, workflow_id=workflow_id, error=error)


def _refund(reference: str, workflow_id: str) -> str:
    order = refund_order_step(reference, workflow_id)
    if order is None:
        return "skipped"
    result = {"status": "succeeded", "provider_ref": ""} if order["amount"] == 0 else refund_call_step(order)
    return refund_record_step(reference, workflow_id, result)


def _refund_status(reference: str, workflow_id: str) -> str:
    result = refund_status_call_step(reference)
    return refund_record_step(reference, workflow_id, result)


def _deactivate(reference: str, workflow_id: str) -> str:
    number = case_card_step(reference, workflow_id)
    if number is None:
        return "skipped"
    return deactivated_step(reference, workflow_id, block_call_step(reference, number))


def _unbind(reference: str, workflow_id: str) -> str:
    if case_card_step(reference, workflow_id) is None:
        return "skipped"
    return unbound_step(reference, workflow_id, unbind_call_step(reference))


ACTIONS = {
    "verify": lambda ref, wid: verify_step(ref, wid),
    "settle": lambda ref, wid: settle_step(ref, wid),
    "refund": _refund,
    "refund_status": _refund_status,
    "deactivate": _deactivate,
    "unbind": _unbind,
}


@DBOS.workflow(name="closeout.run_action")
def run_action(reference: str, action: str, workflow_id: str) -> str:
    try:
        return ACTIONS[action](reference, workflow_id)
    except Exception as exc:  # noqa: BLE001 - any exhausted step parks the case for staff
        log.warning("action %s failed: %s", workflow_id, type(exc).__name__)
        return action_failed_step(reference, workflow_id, f"{action} failed: {exc}")


@DBOS.workflow(name="closeout.sweep")
def sweep(scheduled_at: datetime, context) -> int:
    return sweep_step()


@DBOS.step(name="closeout.sweep_step")
def sweep_step() -> int:
    from closeout.closures.sweeper import sweep_once

    return _db(sweep_once)
