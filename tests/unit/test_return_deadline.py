"""The day a card posted back must arrive by: 30 days on, never a weekend or public holiday."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from closeout.closures.services import RETURN_DEADLINE, return_deadline
from closeout.common import calendars

STARTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


@given(start=STARTS, calendar=st.sampled_from(["HK", "CN", "JP"]))
def test_the_deadline_is_a_working_day_at_least_30_days_on(start, calendar):
    from django.utils import timezone

    deadline = return_deadline(start, calendar)
    assert calendars.is_working_day(timezone.localdate(deadline), calendar)
    assert RETURN_DEADLINE <= deadline - start <= RETURN_DEADLINE + timedelta(days=10)
    # It moved only past days nobody works.
    day = timezone.localdate(start + RETURN_DEADLINE)
    while day < timezone.localdate(deadline):
        assert not calendars.is_working_day(day, calendar)
        day += timedelta(days=1)


def test_a_deadline_on_new_years_day_in_hong_kong_moves_to_the_next_working_day():
    deadline = return_deadline(datetime(2026, 12, 2, 12, 0, tzinfo=UTC), "HK")  # + 30 days: 1 January
    assert deadline.date() == date(2027, 1, 4)  # Friday the 1st is a holiday, then the weekend
