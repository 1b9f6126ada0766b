"""Codes in the staff member's words in console templates: `{{ case.state|state_label }}`,
`|channel_label`, `|id_type_label`, `|timeline_kind`, `|settled_label`, `|exception_reason`,
`|destination_label`, `|destruction_method`, `|hand_back_method`, `|appointment_status` (a table each), and `|note_label`, `|attention_label`, `|fee_label`, `|charge_label`, `|actor_label[:staff_names]`, `|destination_detail`; and `{% time_zone_note %}`."""

from __future__ import annotations

from functools import partial

from django import template
from django.utils import timezone

from closeout.console import labels
from closeout.portal import labels as portal_labels

register = template.Library()

# One filter per table of labels: the code's label, or the code for one this build does not know.
TABLES = {
    "state_label": labels.STATE_LABELS,
    "channel_label": labels.CHANNEL_LABELS,
    "id_type_label": labels.ID_TYPE_LABELS,
    "timeline_kind": labels.TIMELINE_KINDS,
    "settled_label": labels.CHARGE_SETTLED,
    "exception_reason": labels.EXCEPTION_REASONS,
    "destination_label": portal_labels.DESTINATION_LABELS,
    "destruction_method": labels.DESTRUCTION_METHODS,
    "hand_back_method": labels.HAND_BACK_METHODS,
    "appointment_status": labels.APPOINTMENT_STATUSES,
}
for name, table in TABLES.items():
    register.filter(name, partial(labels.label, table))


@register.filter
def note_label(note: str) -> str:
    return labels.note_label(note)


@register.filter
def attention_label(reason: str) -> str:
    return labels.attention_label(reason)


@register.filter
def fee_label(code: str) -> str:
    """A fee of a quote by its name ("Handling fee"), as the customer reads it in the portal."""
    return portal_labels.fee_label(code)


@register.filter
def charge_label(charge) -> str:
    """A charge's kind and why it is owed, in the reader's words (the customer's, as the portal says it)."""
    return f"{portal_labels.fee_label(charge.code)} — {portal_labels.charge_reason(charge.code, charge.reason)}"


@register.filter
def actor_label(actor: str, names: dict | None = None) -> str:
    """Who did something: a customer by the channel they used ("Customer (Web portal)"), staff by
    their name (or their email while they have none), partners and the system by the name they
    are recorded under. A page listing many events passes the names of the staff among them
    (`selectors.staff_names`) so that each is not looked up on its own."""
    kind, _, rest = actor.partition(":")
    if kind == "customer":
        return labels.customer_via(labels.label(labels.CHANNEL_LABELS, rest))
    if actor == "system":
        return str(labels.SYSTEM)
    if kind == "staff":
        from closeout.console.selectors import staff_names

        return (names if isinstance(names, dict) else staff_names([actor])).get(actor) or rest
    if kind == "api":
        return labels.api_key(rest)
    return actor


@register.simple_tag
def time_zone_note() -> str:
    """Which clock the page's times read, for whoever sets them beside the logs."""
    return labels.time_zone_note(timezone.get_current_timezone(), timezone.now())


@register.filter
def destination_detail(destination: dict) -> str:
    """Where a refund goes, masked but recognisable: the bank's code and the account's last
    digits, or the e-wallet's provider and the wallet's last characters."""
    destination = destination or {}
    parts = [destination.get("bank_code", ""), destination.get("account_masked", ""),
             destination.get("provider", ""), destination.get("wallet_masked", "")]
    return " ".join(part for part in parts if part)
