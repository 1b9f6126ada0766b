"""Pure slot rules: which start times a branch offers on a day and whether one may be booked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

PAST = "past"
CLOSED = "closed"
MISALIGNED = "misaligned"


@dataclass(frozen=True)
class Hours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


def slot_starts(day: date, *, hours: list[Hours], slot_minutes: int, working_day: bool) -> list[time]:
    """Return the start times of the slots on `day` (a slot must end by closing time)."""
    if not working_day:
        return []
    today = [h for h in hours if h.weekday == day.weekday()]
    starts: list[time] = []
    for h in today:
        moment = datetime.combine(day, h.opens)
        end = datetime.combine(day, h.closes)
        while moment + timedelta(minutes=slot_minutes) <= end:
            starts.append(moment.time())
            moment += timedelta(minutes=slot_minutes)
    return starts


def slot_problem(starts_at_local: datetime, *, hours: list[Hours], slot_minutes: int, working_day: bool,
                 now_local: datetime) -> str | None:
    """Return why a slot cannot be booked (past, closed, misaligned) or None when it can."""
    if starts_at_local <= now_local:
        return PAST
    offered = slot_starts(starts_at_local.date(), hours=hours, slot_minutes=slot_minutes, working_day=working_day)
    if not offered:
        return CLOSED
    if starts_at_local.time().replace(tzinfo=None) not in offered:
        within = any(h.opens <= starts_at_local.time().replace(tzinfo=None) < h.closes for h in hours
                     if h.weekday == starts_at_local.weekday())
        return MISALIGNED if within else CLOSED
    return None
