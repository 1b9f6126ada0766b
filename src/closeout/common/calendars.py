"""Working-day arithmetic per product calendar. Mainland China counts make-up workdays (调休)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=16)
def _holidays(country: str, year: int):
    return holidays.country_holidays(country, years=[year])


def is_working_day(day: date, calendar: str) -> bool:
    if calendar == "CN":
        import chinese_calendar

        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:  # beyond the years the package knows: weekdays and fixed holidays
            pass
    if day.weekday() >= 5:
        return False
    return day not in _holidays(calendar if calendar != "CN" else "CN", day.year)


def add_working_days(start: date, days: int, calendar: str) -> date:
    """Return the date `days` working days after `start` (start itself not counted)."""
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current, calendar):
            left -= 1
    return current
