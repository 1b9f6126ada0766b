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
    return branch_slots_by_day(branch=branch, first_day=day, days=1)[day]


def branch_slots_by_day(*, branch: Branch, first_day: date, days: int) -> dict[date, list[dict]]:
    """Every slot of a branch on each of `days` days from `first_day`, with its capacity and what
    is booked. Opening hours, counters and bookings are read once for the whole range (from the
    branch's prefetched rows when it has them), so a page listing two weeks costs no more queries
    than one listing a day; holidays come from the calendar package, not the database."""
    hours = branch_hours(branch)
    capacity = sum(1 for counter in branch.counters.all() if counter.active)
    tz = timezone.get_current_timezone()
    moments: dict[date, list[datetime]] = {}
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        starts = rules.slot_starts(day, hours=hours, slot_minutes=branch.slot_minutes,
                                   working_day=calendars.is_working_day(day, branch.calendar))
        moments[day] = [datetime.combine(day, start, tzinfo=tz) for start in starts]
    offered = [moment for listed in moments.values() for moment in listed]
    booked: Tally = Tally()
    if offered:
        booked = Tally(Appointment.objects.filter(
            branch=branch, status=Appointment.Status.BOOKED, starts_at__gte=min(offered),
            starts_at__lte=max(offered)).values_list("starts_at", flat=True))
    now = clock.now()
    return {
        day: [{"starts_at": moment, "capacity": capacity, "booked": booked.get(moment, 0),
               "free": max(0, capacity - booked.get(moment, 0)) if moment > now else 0}
              for moment in listed]
        for day, listed in moments.items()
    }


def branch_day(*, branch: Branch, day: date) -> list[Appointment]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    return list(Appointment.objects.select_related("card", "case", "counter").filter(
        branch=branch, starts_at__gte=start, starts_at__lt=start + timedelta(days=1)).order_by("starts_at", "counter"))
