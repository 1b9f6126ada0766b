"""`{{ case.state|state_label }}`, `|channel_label`, `|id_type_label`, `|note_label` in console
templates."""

from __future__ import annotations

from django import template

from closeout.console import labels

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
