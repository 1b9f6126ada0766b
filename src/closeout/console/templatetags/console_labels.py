"""`{{ case.state|state_label }}`, `|channel_label`, `|id_type_label`, `|note_label`,
`|timeline_kind`, `|charge_label`, `|settled_label`, `|exception_reason`, `|destination_label` and
`|product_name` in console templates."""

from __future__ import annotations

from django import template

from closeout.console import labels
from closeout.portal import labels as portal_labels

register = template.Library()


@register.filter
def state_label(code: str) -> str:
    return labels.label(labels.STATE_LABELS, code)


@register.filter
def channel_label(code: str) -> str:
    return labels.label(labels.CHANNEL_LABELS, code)


@register.filter
def id_type_label(code: str) -> str:
    return labels.label(labels.ID_TYPE_LABELS, code)


@register.filter
def note_label(note: str) -> str:
    return labels.note_label(note)


@register.filter
def timeline_kind(kind: str) -> str:
    return labels.label(labels.TIMELINE_KINDS, kind)


@register.filter
def charge_label(charge) -> str:
    """A charge's kind and why it is owed, in the reader's words (the customer's, as the portal says it)."""
    return f"{portal_labels.fee_label(charge.code)} — {portal_labels.charge_reason(charge.code, charge.reason)}"


@register.filter
def settled_label(how: str) -> str:
    return labels.label(labels.CHARGE_SETTLED, how)


@register.filter
def exception_reason(code: str) -> str:
    return labels.label(labels.EXCEPTION_REASONS, code)


@register.filter
def destination_label(kind: str) -> str:
    return labels.label(portal_labels.DESTINATION_LABELS, kind)


@register.filter
def actor_label(actor: str) -> str:
    """Who did something: a customer by the channel they used ("Customer (Web portal)"); staff,
    partners and the system by the name they are recorded under."""
    kind, _, rest = actor.partition(":")
    if kind == "customer":
        return labels.customer_via(labels.label(labels.CHANNEL_LABELS, rest))
    if actor == "system":
        return str(labels.SYSTEM)
    return actor
