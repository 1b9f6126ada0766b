"""DBOS workflows: orchestration only. Each action is a short workflow whose id is the case's
`next_action_id`; each external call is a step with retries and a fixed idempotency key; the
last step records the result through a service transition."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from dbos import DBOS
from dbos._error import DBOSMaxStepRetriesExceeded
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from closeout.closures import bulk, services
from closeout.closures.models import ClosureCase
from closeout.common.money import Money
from closeout.integrations import registry
from closeout.integrations.errors import PermanentError
from closeout.integrations.faults import crash_point
from closeout.ops import observe

log = logging.getLogger(__name__)

# A refusal, or a bug (a missing adapter method, a wrong argument), fails the same way every time:
# retrying it only delays the case's way to staff.
NOT_RETRIED = (PermanentError, AttributeError, TypeError, NameError)


def worth_another_attempt(exc: BaseException) -> bool:
    return not isinstance(exc, NOT_RETRIED)


def failure_text(exc: BaseException) -> str:
    """What went wrong, in the words of the system that failed.

    A step that ran out of retries raises DBOS's own error ("Step closeout.refund_call has exceeded
    its maximum of 5 retries"), which says nothing of why; the last attempt's error does ("payment
    provider answered 503").
    """
    errors = getattr(exc, "errors", None) if isinstance(exc, DBOSMaxStepRetriesExceeded) else None
    if errors:
        last = errors[-1]
        return f"{str(last) or type(last).__name__} (after {len(errors)} attempts)"
    return str(exc) or type(exc).__name__


RETRY = dict(retries_allowed=True, max_attempts=5, interval_seconds=0.5, backoff_rate=2.0,
             should_retry=worth_another_attempt)


# PostgreSQL's answers that mean "run the transaction again": a deadlock, a serialization failure.
RETRY_SQLSTATES = {"40P01", "40001"}
DB_ATTEMPTS = 3
# The server going away: shut down by an administrator or a failover, crashed, still starting
# (`57P0x`), out of room for another connection (`53300`), or any connection exception (`08xxx`).
LOST_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}
# How long a step waits for a database that went away before its case goes to staff: a restart
# of PostgreSQL or a managed failover takes seconds to tens of seconds, and every case in flight
# at that moment would otherwise need a person.
DB_PATIENCE = 120.0
DB_PAUSE_MAX = 10.0


def _db(fn, *args, **kwargs):
    """Run ORM work on a DBOS thread with fresh connections around it.

    A transaction the database chose as a deadlock or serialization-failure victim is run again
    (it was rolled back whole), and so is one whose connection was lost, on a new connection, for
    up to DB_PATIENCE seconds. A commit whose answer was lost may have happened: running the
    service again is safe because every service checks the case's state and its transition's key
    first, as it must for DBOS, which runs a step again after a crash. The crash points on either
    side mark every step boundary for the kill tests.
    """
    crash_point(f"before:{fn.__name__}")
    victims, waited, pause = 0, 0.0, 0.5
    while True:
        _fresh_connections()
        try:
            with observe.step(fn):
                result = fn(*args, **kwargs)
            break
        except DatabaseError as exc:
            if connection.in_atomic_block:
                raise
            if _worth_retrying(exc) and victims < DB_ATTEMPTS - 1:
                victims += 1
                wait = 0.05 * victims
            elif _connection_lost(exc) and waited < DB_PATIENCE:
                wait, pause = pause, min(pause * 2, DB_PAUSE_MAX)
            else:
                raise
            log.warning("%s: %s; running it again", fn.__name__, _sqlstate(exc) or type(exc).__name__)
            time.sleep(wait)
            waited += wait
        finally:
            _fresh_connections()
    crash_point(f"after:{fn.__name__}")
    return result


def _sqlstate(exc: DatabaseError) -> str:
    return getattr(exc.__cause__, "sqlstate", None) or ""


def _worth_retrying(exc: DatabaseError) -> bool:
    return _sqlstate(exc) in RETRY_SQLSTATES


def _connection_lost(exc: DatabaseError) -> bool:
    """Whether PostgreSQL's driver says the connection is gone, not that the statement was wrong.

    Decided from the error alone: by the time it reaches here the connection may have been
    closed and opened again. An error the server sent carries its SQLSTATE; one without is
    psycopg's own ("server closed the connection unexpectedly", "connection failed"). SQLite's
    errors have no SQLSTATE at all, and a locked database is its busy timeout's to wait out.
    """
    cause = exc.__cause__
    if not hasattr(cause, "sqlstate"):
        return False
    state = cause.sqlstate or ""
    if state:
        return state in LOST_SQLSTATES or state.startswith("08")
    return isinstance(exc, (OperationalError, InterfaceError))


def _fresh_connections() -> None:
    # A step called inline inside a caller's transaction (tests, tools) must keep its connection.
    if not connection.in_atomic_block:
        close_old_connections()


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
    if result.status == "failed":
        observe.refusals_count("payments", "refund")
    # The key says which request the answer is for: a declined one's late answer moves nothing.
    return result.as_json() | {"idempotency_key": order["idempotency_key"]}


@DBOS.step(name="closeout.refund_status_call", **RETRY)
def refund_status_call_step(reference: str) -> dict:
    @observe.calls("payments", "refund_status")
    def status():
        refund = services.Refund.objects.filter(case__reference=reference).first()
        key = refund.idempotency_key if refund else services.refund_key(reference)
        answer = registry.port("payments").refund_status(idempotency_key=key,
                                                         provider_ref=refund.provider_ref if refund else "")
        return answer.as_json() | {"idempotency_key": key}

    answer = _db(status)
    if answer["status"] == "failed":
        observe.refusals_count("payments", "refund_status")
    return answer


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
    def case_card():
        case = services.ClosureCase.objects.select_related("card").get(reference=reference)
        return case.card.number if case.next_action_id == workflow_id else None

    return _db(case_card)


@DBOS.step(name="closeout.number_call", **RETRY)
def number_call_step(reference: str, iccid: str) -> dict:
    crash_point("deactivate:before_call")
    result = _db(registry.port("card_system").deactivate_number, iccid=iccid,
                 idempotency_key=f"{reference}:deactivate_number")
    crash_point("deactivate:after_call")
    return result


@DBOS.step(name="closeout.esim_release_order")
def esim_release_order_step(reference: str, workflow_id: str) -> dict | None:
    return _db(services.esim_release_order, reference=reference, workflow_id=workflow_id)


@DBOS.step(name="closeout.esim_cancel_order", **RETRY)
def esim_cancel_order_step(order: dict) -> dict:
    # The call id is the workflow id: a retry of this attempt replays, a later attempt asks afresh.
    result = _db(registry.port("smdp").cancel_order, iccid=order["iccid"], final_profile_status="Unavailable",
                 function_call_id=order["function_call_id"])
    if not result.executed:
        observe.refusals_count("smdp", "cancel_order")
    return result.as_json()


@DBOS.step(name="closeout.esim_release_record")
def esim_release_record_step(reference: str, workflow_id: str, result: dict) -> str:
    return _db(services.esim_release_record, reference=reference, workflow_id=workflow_id, result=result)


@DBOS.step(name="closeout.unbind_order")
def unbind_order_step(reference: str, workflow_id: str) -> list[str] | None:
    return _db(services.unbind_order, reference=reference, workflow_id=workflow_id)


UNBIND_RETRY = dict(RETRY, max_attempts=3)
# A partner's 4xx answers that mean "not now" rather than "never": asked again in the next round.
RETRIED_4XX = {408, 409, 425, 429}


@DBOS.step(name="closeout.unbind_deliver", **UNBIND_RETRY)
def unbind_deliver_step(reference: str, partner: str) -> dict:
    """Send one partner its signed unbind message; 5xx and timeouts are retried here, then later.

    The message (and its secrets) is built inside the step so no secret is checkpointed.
    """
    from closeout.integrations.errors import TransientError
    from closeout.integrations.partners import services as partners

    def unbind_message():
        case = services.ClosureCase.objects.select_related("card").get(reference=reference)
        binding = case.card.bindings.get(partner=partner)
        return partners.unbind_message(case=case, binding=binding)

    delivery = _db(unbind_message)
    if delivery is None:
        return {"acknowledged": False, "status_code": 0, "error": "partner not registered", "unregistered": True}

    @observe.calls("partners", "send")
    def send():
        # A 5xx is an error of the partner's endpoint: counted and logged as one, then retried.
        result = registry.port("partners").send(delivery)
        if result.status_code >= 500:
            raise TransientError(f"partner {partner} answered {result.status_code}")
        return result

    try:
        result = _db(send)
    except PermanentError as exc:  # never sent (an endpoint at a forbidden address): the same every time
        return {"acknowledged": False, "status_code": 0, "error": str(exc)[:200], "refused": True}
    answer = result.as_json()
    if 300 <= result.status_code < 400:
        # Redirects are not followed: a message signed for one address goes only there, and the
        # new address would escape the endpoint check. The partner's registration needs updating
        # (`closeout partner update`), then the case resuming.
        answer |= {"refused": True, "error": f"partner {partner} answered {result.status_code}: its endpoint "
                                             "moved (redirects are not followed); update its endpoint URL"}
        observe.refusals_count("partners", "send")
    elif 400 <= result.status_code < 500 and result.status_code not in RETRIED_4XX:
        # The partner refuses the message itself (its signature, its binding): the same every time.
        answer |= {"refused": True, "error": f"partner {partner} {answer['error'] or 'refused'}"}
        observe.refusals_count("partners", "send")
    elif 400 <= result.status_code < 500:  # "not now": asked again in the next round
        observe.refusals_count("partners", "send", kind="transient")
    return answer


@DBOS.step(name="closeout.unbind_record")
def unbind_record_step(reference: str, workflow_id: str, results: dict) -> str:
    return _db(services.unbind_record, reference=reference, workflow_id=workflow_id, results=results)


@DBOS.step(name="closeout.action_failed")
def action_failed_step(reference: str, workflow_id: str, error: str) -> str:
    return _db(services.closure_action_failed, reference=reference, workflow_id=workflow_id, error=error)


@DBOS.step(name="closeout.return_label_order")
def return_label_order_step(reference: str, workflow_id: str) -> dict | None:
    return _db(services.return_label_order, reference=reference, workflow_id=workflow_id)


@DBOS.step(name="closeout.return_label_call", **RETRY)
def return_label_call_step(reference: str) -> dict:
    from closeout.integrations.shipping.services import return_label_create

    @observe.calls("shipping", "create_return_label")
    def call() -> dict:
        shipment = return_label_create(case=ClosureCase.objects.get(reference=reference))
        return {"carrier": shipment.carrier, "label_number": shipment.label_number,
                "tracking_number": shipment.tracking_number}

    return _db(call)


@DBOS.step(name="closeout.return_label_record")
def return_label_record_step(reference: str, workflow_id: str, label: dict | None, error: str,
                             handed_in: bool = False, at_branch: bool = False) -> str:
    return _db(services.return_label_record, reference=reference, workflow_id=workflow_id, label=label, error=error,
               handed_in=handed_in, at_branch=at_branch)


def _return_label(reference: str, workflow_id: str) -> str:
    order = return_label_order_step(reference, workflow_id)
    if order is None:
        return "skipped"
    at_branch = order.get("at_branch", False)  # absent from orders recorded before it was asked
    label, error = None, ""
    if not (order["handed_in"] or at_branch):
        try:
            label = return_label_call_step(reference)
        except Exception as exc:  # noqa: BLE001 - a carrier outage never holds a case up: closeout's own label works
            error = f"{type(exc).__name__}: {failure_text(exc)}"
    return return_label_record_step(reference, workflow_id, label, error, order["handed_in"], at_branch)


def _refund(reference: str, workflow_id: str) -> str:
    order = refund_order_step(reference, workflow_id)
    if order is None:
        return "skipped"
    if order["amount"] == 0:
        result = {"status": "succeeded", "provider_ref": ""}
    elif order.get("cash") is True:
        result = {"status": services.CASH_READY_STATUS, "provider_ref": ""}  # handed over at a branch
    else:
        result = refund_call_step(order)
    return refund_record_step(reference, workflow_id, result)


def _refund_status(reference: str, workflow_id: str) -> str:
    result = refund_status_call_step(reference)
    return refund_record_step(reference, workflow_id, result)


def _deactivate(reference: str, workflow_id: str) -> str:
    number = case_card_step(reference, workflow_id)
    if number is None:
        return "skipped"
    return deactivated_step(reference, workflow_id, block_call_step(reference, number))


def _deactivate_number(reference: str, workflow_id: str) -> str:
    iccid = case_card_step(reference, workflow_id)
    if iccid is None:
        return "skipped"
    return deactivated_step(reference, workflow_id, number_call_step(reference, iccid))


def _release_profile(reference: str, workflow_id: str) -> str:
    order = esim_release_order_step(reference, workflow_id)
    if order is None:
        return "skipped"
    return esim_release_record_step(reference, workflow_id, esim_cancel_order_step(order))


def _unbind(reference: str, workflow_id: str) -> str:
    partners = unbind_order_step(reference, workflow_id)
    if partners is None:
        return "skipped"
    results = {}
    for partner in partners:
        try:
            results[partner] = unbind_deliver_step(reference, partner)
        except Exception as exc:  # noqa: BLE001 - one partner's outage is recorded and retried later
            results[partner] = {"acknowledged": False, "status_code": 0, "error": failure_text(exc)[:200]}
    return unbind_record_step(reference, workflow_id, results)


ACTIONS = {
    "verify": lambda ref, wid: verify_step(ref, wid),
    "settle": lambda ref, wid: settle_step(ref, wid),
    "return_label": _return_label,
    "refund": _refund,
    "refund_status": _refund_status,
    "deactivate": _deactivate,
    "deactivate_number": _deactivate_number,
    "release_profile": _release_profile,
    "unbind": _unbind,
}


@DBOS.workflow(name="closeout.run_action")
def run_action(reference: str, action: str, workflow_id: str) -> str:
    try:
        return ACTIONS[action](reference, workflow_id)
    except Exception as exc:  # noqa: BLE001 - any exhausted step parks the case for staff
        error = failure_text(exc)
        log.warning("action %s failed: %s", workflow_id, error,
                    extra={"action": action, "error_type": type(exc).__name__})
        return action_failed_step(reference, workflow_id, f"{action} failed: {error}")


@DBOS.step(name="closeout.bulk_settle")
def bulk_settle_step(batch_id: int, workflow_id: str) -> str:
    return _db(bulk.batch_settle, batch_id=batch_id, workflow_id=workflow_id)


@DBOS.step(name="closeout.bulk_refund_items")
def bulk_refund_items_step(batch_id: int, workflow_id: str) -> list[dict] | None:
    return _db(bulk.batch_refund_items, batch_id=batch_id, workflow_id=workflow_id)


@DBOS.step(name="closeout.bulk_refund_call", **RETRY)
def bulk_refund_call_step(batch_key: str, items: list[dict]) -> dict:
    if not items:
        return {}
    results = _db(registry.port("payments").refund_batch, batch_key=batch_key, items=items)
    observe.refusals_count("payments", "refund_batch", sum(r.status == "failed" for r in results.values()))
    return {key: result.as_json() for key, result in results.items()}


@DBOS.step(name="closeout.bulk_refund_record")
def bulk_refund_record_step(batch_id: int, workflow_id: str, results: dict) -> str:
    return _db(bulk.batch_refund_record, batch_id=batch_id, workflow_id=workflow_id, results=results)


@DBOS.step(name="closeout.bulk_block_items")
def bulk_block_items_step(batch_id: int, workflow_id: str) -> list[dict] | None:
    return _db(bulk.batch_block_items, batch_id=batch_id, workflow_id=workflow_id)


@DBOS.step(name="closeout.bulk_block_call", **RETRY)
def bulk_block_call_step(batch_key: str, items: list[dict]) -> dict:
    if not items:
        return {}
    results = _db(registry.port("card_system").block_batch, batch_key=batch_key, items=items)
    observe.refusals_count("card_system", "block_batch", sum(r.get("status") == "failed" for r in results.values()))
    return results


@DBOS.step(name="closeout.bulk_blocked_record")
def bulk_blocked_record_step(batch_id: int, workflow_id: str, results: dict) -> str:
    return _db(bulk.batch_blocked_record, batch_id=batch_id, workflow_id=workflow_id, results=results)


@DBOS.step(name="closeout.bulk_failed")
def bulk_failed_step(batch_id: int, workflow_id: str, error: str) -> str:
    return _db(bulk.batch_failed, batch_id=batch_id, workflow_id=workflow_id, error=error)


def _bulk_refund(batch_id: int, workflow_id: str) -> str:
    items = bulk_refund_items_step(batch_id, workflow_id)
    if items is None:
        return "skipped"
    results = bulk_refund_call_step(workflow_id, items)
    return bulk_refund_record_step(batch_id, workflow_id, results)


def _bulk_block(batch_id: int, workflow_id: str) -> str:
    items = bulk_block_items_step(batch_id, workflow_id)
    if items is None:
        return "skipped"
    results = bulk_block_call_step(workflow_id, items)
    return bulk_blocked_record_step(batch_id, workflow_id, results)


BATCH_ACTIONS = {
    "bulk_settle": lambda batch_id, wid: bulk_settle_step(batch_id, wid),
    "bulk_refund": _bulk_refund,
    "bulk_block": _bulk_block,
}


@DBOS.workflow(name="closeout.run_batch")
def run_batch(batch_id: str, action: str, workflow_id: str) -> str:
    try:
        return BATCH_ACTIONS[action](int(batch_id), workflow_id)
    except Exception as exc:  # noqa: BLE001 - an exhausted batched call parks its cases for staff
        error = failure_text(exc)
        log.warning("batch action %s failed: %s", workflow_id, error,
                    extra={"action": action, "error_type": type(exc).__name__})
        return bulk_failed_step(int(batch_id), workflow_id, f"{action} failed: {error}")


@DBOS.workflow(name="closeout.sweep")
def sweep(scheduled_at: datetime, context) -> int:
    return sweep_step()


@DBOS.step(name="closeout.sweep_step")
def sweep_step() -> int:
    from closeout.closures.sweeper import sweep_once

    return _db(sweep_once)
