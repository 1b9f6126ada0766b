"""Reads of the warehouse queues."""

from __future__ import annotations

from closeout.returns.models import CheckIn, ReturnException


def received_not_destroyed() -> list[CheckIn]:
    return list(CheckIn.objects.select_related("case", "card").filter(
        outcome=CheckIn.Outcome.RECEIVED, card__destruction__isnull=True).order_by("at"))


def open_exceptions() -> list[ReturnException]:
    return list(ReturnException.objects.select_related("checkin__card", "case").filter(resolved_at__isnull=True)
                .order_by("checkin__at"))


def recent_checkins(limit: int = 20) -> list[CheckIn]:
    return list(CheckIn.objects.select_related("case").order_by("-at", "-id")[:limit])
