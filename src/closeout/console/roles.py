"""Staff roles and what each may do, as data. Pure: every console view and service asks `can`."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

AGENT = "agent"
BRANCH_CLERK = "branch_clerk"
WAREHOUSE = "warehouse"
REFUND_APPROVER = "refund_approver"
SUPERVISOR = "supervisor"
ADMIN = "admin"

ROLES = (AGENT, BRANCH_CLERK, WAREHOUSE, REFUND_APPROVER, SUPERVISOR, ADMIN)
ROLE_LABELS = {
    AGENT: _("Customer service agent"),
    BRANCH_CLERK: _("Branch clerk"),
    WAREHOUSE: _("Warehouse"),
    REFUND_APPROVER: _("Refund approver"),
    SUPERVISOR: _("Supervisor"),
    ADMIN: _("Administrator"),
}

# Who may do what. Admins configure and manage staff; they do not touch cases or money, and
# nobody both opens and approves the same refund (checked per case by closures.refund_approve).
PERMISSIONS: dict[str, frozenset[str]] = {
    "case.search": frozenset({AGENT, BRANCH_CLERK, REFUND_APPROVER, SUPERVISOR}),
    "case.view": frozenset({AGENT, BRANCH_CLERK, REFUND_APPROVER, SUPERVISOR}),
    "case.open": frozenset({AGENT, BRANCH_CLERK, SUPERVISOR}),
    "case.note": frozenset({AGENT, BRANCH_CLERK, REFUND_APPROVER, SUPERVISOR}),
    "case.hold": frozenset({AGENT, SUPERVISOR}),
    "case.resume": frozenset({AGENT, SUPERVISOR}),
    "case.reject": frozenset({SUPERVISOR}),
    "charge.waive": frozenset({SUPERVISOR}),
    "notice.resend": frozenset({AGENT, SUPERVISOR}),
    "appointment.manage": frozenset({AGENT, BRANCH_CLERK, SUPERVISOR}),
    "counter.serve": frozenset({BRANCH_CLERK}),
    "warehouse.checkin": frozenset({WAREHOUSE}),
    "warehouse.destroy": frozenset({WAREHOUSE}),
    "warehouse.hand_back": frozenset({WAREHOUSE}),
    "warehouse.exceptions": frozenset({WAREHOUSE, SUPERVISOR}),
    "refund.approve": frozenset({REFUND_APPROVER, SUPERVISOR}),
    "refund.cash": frozenset({BRANCH_CLERK}),  # at a counter, with the customer and the till
    "sla.view": frozenset({SUPERVISOR, ADMIN}),
    "staff.manage": frozenset({ADMIN}),
}
ACTIONS = tuple(PERMISSIONS)


class NotAllowed(Exception):
    """Raised when a role may not perform an action."""

    def __init__(self, role: str, action: str):
        super().__init__(f"role {role} may not {action}")
        self.role = role
        self.action = action


def can(role: str, action: str) -> bool:
    """Return whether `role` may perform `action` (an unknown action is never allowed)."""
    return role in PERMISSIONS.get(action, frozenset())


def require(role: str, action: str) -> None:
    """:raises NotAllowed: unless `role` may perform `action`."""
    if not can(role, action):
        raise NotAllowed(role, action)
