"""Run a closure case to its end synchronously, doing what each DBOS action would do (same
services, same simulators, same idempotency keys), for tests about what happens after closing."""

from __future__ import annotations

from closeout.closures import services, states
from closeout.closures.models import ClosureCase, RefundApproval
from closeout.common.money import Money
from closeout.integrations import registry


def run_to_end(reference: str) -> ClosureCase:
    for _ in range(30):
        case = ClosureCase.objects.select_related("card").get(reference=reference)
        action, wid = case.next_action, case.next_action_id
        if case.state == states.AWAITING_RETURN:
            services.closure_card_received(reference=reference, actor="staff:warehouse")
            continue
        if case.state == states.REFUND_PENDING and not action and RefundApproval.objects.filter(
                case=case, decision="").exists():
            services.refund_approve(reference=reference, approver="staff:checker", note="checked")
            continue
        if not action or case.state in states.TERMINAL:
            return case
        if action == "verify":
            services.closure_verify(reference=reference, workflow_id=wid)
        elif action == "settle":
            if services.closure_settle(reference=reference, workflow_id=wid) == states.VERIFIED:
                return case  # waiting for a payment
        elif action in ("refund", "refund_status"):
            order = services.refund_order(reference=reference, workflow_id=wid) if action == "refund" else None
            if order is not None and order["amount"] == 0:
                result = {"status": "succeeded", "provider_ref": ""}
            elif order is not None:
                result = registry.port("payments").refund(
                    idempotency_key=order["idempotency_key"], amount=Money(order["amount"], order["currency"]),
                    destination=order["destination"]).as_json()
            else:
                result = registry.port("payments").refund_status(idempotency_key=f"{reference}:refund").as_json()
            services.refund_record(reference=reference, workflow_id=wid, result=result)
        elif action == "deactivate":
            result = registry.port("card_system").block(card_number=case.card.number,
                                                        idempotency_key=f"{reference}:deactivate")
            services.closure_deactivated(reference=reference, workflow_id=wid, result=result)
        elif action == "unbind":
            results = {b.partner: "acknowledged" for b in case.card.bindings.filter(unbound_at__isnull=True)}
            services.closure_unbound(reference=reference, workflow_id=wid, results=results)
        else:
            raise AssertionError(f"unknown action {action}")
    raise AssertionError(f"{reference} did not finish")


def close_card(card, *, destination=None, channel="web") -> ClosureCase:
    case = services.closure_request(card=card, channel=channel, requester="customer:web",
                                    refund_destination=destination or {})
    return run_to_end(case.reference)
