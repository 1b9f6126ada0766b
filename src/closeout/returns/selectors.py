"""Reads of the warehouse queues."""

from __future__ import annotations

from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.identity import documents
from closeout.returns.models import CheckIn, ReturnException


def received_not_destroyed() -> list[CheckIn]:
    return list(CheckIn.objects.select_related("case", "card").filter(
        outcome=CheckIn.Outcome.RECEIVED, card__destruction__isnull=True).order_by("at"))


def open_exceptions() -> list[ReturnException]:
    """Open exceptions, oldest first. One whose envelope held another card than its label's gets
    `inside_masked`, that card's last digits, and `inside_case`, the case waiting for it if any:
    the one to name when the exception is resolved."""
    items = list(ReturnException.objects.select_related("checkin__card", "case__card").filter(
        resolved_at__isnull=True).order_by("checkin__at"))
    for item in items:
        item.inside_masked = item.inside_case = None
        if item.reason == ReturnException.Reason.MISMATCH and item.card_number:
            item.inside_masked = documents.mask_card_number(item.card_number)
            item.inside_case = (ClosureCase.objects.filter(card__number=item.card_number, state=states.AWAITING_RETURN)
                                .values_list("reference", flat=True).first())
    return items


def recent_checkins(limit: int = 20) -> list[CheckIn]:
    return list(CheckIn.objects.select_related("case").order_by("-at", "-id")[:limit])
