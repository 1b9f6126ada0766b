"""Pure console rules: the working-day SLA clock and the SVG charts."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from closeout.console import rules


def weekdays(day: date) -> bool:
    return day.weekday() < 5


dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))


@given(dates, st.integers(min_value=0, max_value=60))
def test_working_days_between_counts_what_adding_them_skipped(start, span):
    end = start + timedelta(days=span)
    expected = sum(1 for i in range(1, span + 1) if weekdays(start + timedelta(days=i)))
    assert rules.working_days_between(start, end, weekdays) == expected
    assert rules.working_days_between(end, start, weekdays) == -expected


def test_mainland_make_up_workday_counts_on_the_cn_calendar():
    from closeout.common.calendars import is_working_day

    # Sunday 28 September 2025 was a make-up workday before the National Day holiday.
    assert rules.working_days_between(date(2025, 9, 27), date(2025, 9, 28), lambda d: is_working_day(d, "CN")) == 1
    assert rules.working_days_between(date(2025, 9, 27), date(2025, 9, 28), lambda d: is_working_day(d, "HK")) == 0


def test_sla_status_breached_at_risk_on_track():
    due = date(2026, 11, 10)
    assert rules.sla_status(today=date(2026, 11, 11), due_date=due, working_days_left=-1) == rules.BREACHED
    assert rules.sla_status(today=date(2026, 11, 9), due_date=due, working_days_left=1) == rules.AT_RISK
    assert rules.sla_status(today=due, due_date=due, working_days_left=0) == rules.AT_RISK
    assert rules.sla_status(today=date(2026, 11, 2), due_date=due, working_days_left=6) == rules.ON_TRACK


@given(st.integers(min_value=0, max_value=400))
def test_every_age_falls_in_exactly_one_bucket(age):
    labels = [label for low, high, label in rules.AGE_BUCKETS if age >= low and (high is None or age <= high)]
    assert len(labels) == 1 and rules.age_bucket(age) == labels[0]


def test_chart_bars_scale_to_the_largest_and_labels_are_escaped():
    svg = rules.bar_chart_svg(title="Cases <per> state", bars=[("closed", 10), ("a&b", 5), ("none", 0)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Cases &lt;per&gt; state" in svg and "a&amp;b" in svg and "<per>" not in svg
    widths = [int(part.split('"')[0]) for part in svg.split('width="')[2:]]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
