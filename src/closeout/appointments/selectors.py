"""Reads of branches, slots and appointments."""

from __future__ import annotations

from collections import Counter as Tally
from datetime import date, datetime, timedelta

from django.utils import timezone

from closeout.appointments import rules
from closeout.appointments.models import Appointment, Branch
from closeout.appointments.services import branch_hours
from closeout.common import calendars, clock


def branches() -> list[Branch]:
    return list(Branch.objects.filter(active=True).prefetch_related("hours", "counters").order_by("code"))


def branch_slots(*, branch: Branch, day: date) -> list[dict]:
    """Every slot of a branch on a day with its capacity (active counters) and what is booked."""
    starts = rules.slot_starts(day, hours=branch_hours(branch), slot_minutes=branch.slot_minutes,
                               working_day=calendars.is_working_day(day, branch.calendar))
    capacity = branch.counters.filter(active=True).count()
    tz = timezone.get_current_timezone()
    moments = [datetime.combine(day, start, tzinfo=tz) for start in starts]
    booked = Tally(Appointment.objects.filter(branch=branch, status=Appointment.Status.BOOKED,
                                              starts_at__in=moments).values_list("starts_at", flat=True))
    now = clock.now()
    return [
        {"starts_at": moment, "capacity": capacity, "booked": booked.get(moment, 0),
         "free": max(0, capacity - booked.get(moment, 0)) if moment > now else 0}
        for moment in moments
    ]


def branch_day(*, branch: Branch, day: date) -> list[Appointment]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    return list(Appointment.objects.select_related("card", "case", "counter").filter(
        branch=branch, starts_at__gte=start, starts_at__lt=start + timedelta(days=1)).order_by("starts_at", "counter"))
