"""The closure case state machine, as data. Pure: no ORM, no clock."""

from __future__ import annotations

DRAFT = "draft"
SUBMITTED = "submitted"
VERIFIED = "verified"
SETTLED = "settled"
AWAITING_RETURN = "awaiting_return"
RETURNED = "returned"
REFUND_PENDING = "refund_pending"
REFUNDED = "refunded"
DEACTIVATING = "deactivating"
UNBINDING = "unbinding"
CLOSED = "closed"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
ON_HOLD = "on_hold"
FAILED = "failed_needs_attention"

ALL = (
    DRAFT, SUBMITTED, VERIFIED, SETTLED, AWAITING_RETURN, RETURNED, REFUND_PENDING, REFUNDED,
    DEACTIVATING, UNBINDING, CLOSED, REJECTED, WITHDRAWN, ON_HOLD, FAILED,
)
TERMINAL = (CLOSED, REJECTED, WITHDRAWN)
# Before money moves the customer may withdraw and staff may reject.
BEFORE_REFUND = (DRAFT, SUBMITTED, VERIFIED, SETTLED, AWAITING_RETURN, RETURNED)
PAUSABLE = (SUBMITTED, VERIFIED, SETTLED, AWAITING_RETURN, RETURNED, REFUND_PENDING)

FORWARD = {
    DRAFT: (SUBMITTED,),
    SUBMITTED: (VERIFIED,),
    VERIFIED: (SETTLED,),
    SETTLED: (AWAITING_RETURN, REFUND_PENDING),
    AWAITING_RETURN: (RETURNED,),
    RETURNED: (REFUND_PENDING,),
    REFUND_PENDING: (REFUNDED,),
    REFUNDED: (DEACTIVATING,),
    DEACTIVATING: (UNBINDING, CLOSED),
    UNBINDING: (CLOSED,),
}

# The action the workflow runs in each state; states not listed wait for a person or an event.
ACTION_FOR_STATE = {
    SUBMITTED: "verify",
    VERIFIED: "settle",
    AWAITING_RETURN: "return_label",  # again after a hold: the carrier answers the same label
    REFUND_PENDING: "refund",
    DEACTIVATING: "deactivate",
    UNBINDING: "unbind",
}


# Every action a case may have next: the state's own, and those scheduled within a state (a refund
# status poll, an eSIM's number and profile after deactivation). `closures.workflow.ACTIONS` runs them.
CASE_ACTIONS = (
    "verify", "settle", "return_label", "refund", "refund_status", "deactivate", "deactivate_number",
    "release_profile", "unbind",
)


class IllegalTransition(Exception):
    """Raised for a transition the state machine does not allow from the current state."""

    def __init__(self, current: str, target: str):
        super().__init__(f"cannot go from {current} to {target}")
        self.current = current
        self.target = target


def allowed_targets(current: str, *, resume_to: str | None = None) -> tuple[str, ...]:
    """Return every state reachable in one transition from `current`.

    `resume_to` is the state a case on hold or needing attention returns to.
    """
    targets = list(FORWARD.get(current, ()))
    if current in BEFORE_REFUND:
        targets += [WITHDRAWN, REJECTED]
    if current in PAUSABLE:
        targets.append(ON_HOLD)
    # `refunded` only exists inside the transaction that records the refund and starts deactivation.
    if current not in TERMINAL and current not in (DRAFT, ON_HOLD, FAILED, REFUNDED):
        targets.append(FAILED)
    if current in (ON_HOLD, FAILED):
        if resume_to:
            targets.append(resume_to)
        if resume_to in BEFORE_REFUND:
            targets += [WITHDRAWN, REJECTED]
        if current == FAILED:
            targets.append(ON_HOLD)
    return tuple(dict.fromkeys(targets))


def check_transition(current: str, target: str, *, resume_to: str | None = None) -> None:
    """:raises IllegalTransition: unless `target` is allowed from `current`."""
    if target not in allowed_targets(current, resume_to=resume_to):
        raise IllegalTransition(current, target)
