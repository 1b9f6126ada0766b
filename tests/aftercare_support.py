"""Run a closure case to its end synchronously: each action's DBOS steps called inline (outside a
workflow a step is a plain call), for tests about what happens after closing."""

from __future__ import annotations

from closeout.closures import services, states, workflow
from closeout.closures.models import ClosureCase, RefundApproval


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
        outcome = workflow.ACTIONS[action](reference, wid)  # the workflow's own steps, run inline
        if action == "settle" and outcome == states.VERIFIED:
            return case  # waiting for a payment
    raise AssertionError(f"{reference} did not finish")


def close_card(card, *, destination=None, channel="web") -> ClosureCase:
    case = services.closure_request(card=card, channel=channel, requester="customer:web",
                                    refund_destination=destination or {})
    return run_to_end(case.reference)
