"""Staff words for the codes a case carries (state, channel, ID document type), in the reader's
language: lazy, so each request translates them, not the import."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from closeout.console.forms import ID_TYPES

STATE_LABELS = {
    "draft": _("Draft"), "submitted": _("Submitted"), "verified": _("Identity verified"),
    "settled": _("Fees settled"), "awaiting_return": _("Waiting for the card"), "returned": _("Card received"),
    "refund_pending": _("Refund in progress"), "refunded": _("Refunded"), "deactivating": _("Deactivating"),
    "unbinding": _("Unbinding apps"), "closed": _("Closed"), "rejected": _("Not approved"),
    "withdrawn": _("Withdrawn"), "on_hold": _("On hold"), "failed_needs_attention": _("Needs attention"),
}
CHANNEL_LABELS = {
    "web": _("Web portal"), "phone": _("Phone"), "email": _("Email"), "chat": _("Online chat"),
    "branch": _("Branch counter"), "partner_api": _("Partner API"), "bulk": _("Bulk closure"),
}
ID_TYPE_LABELS = dict(ID_TYPES)


def label(labels: dict, code: str) -> str:
    """The label of a code, or the code itself for one this build does not know."""
    return str(labels.get(code, code))
