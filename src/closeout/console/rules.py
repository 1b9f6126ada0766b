"""Pure rules of the console: the working-day SLA clock and server-rendered SVG charts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from html import escape

ON_TRACK = "on_track"
AT_RISK = "at_risk"
BREACHED = "breached"
AT_RISK_WORKING_DAYS = 1
AGE_BUCKETS = ((0, 1, "0–1"), (2, 3, "2–3"), (4, 5, "4–5"), (6, 10, "6–10"), (11, None, "11+"))


def working_days_between(start: date, end: date, is_working_day: Callable[[date], bool]) -> int:
    """Count the working days after `start` up to and including `end`; negative when end < start."""
    if end < start:
        return -working_days_between(end, start, is_working_day)
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def sla_status(*, today: date, due_date: date | None, working_days_left: int) -> str:
    """Return breached (past the due date), at risk (due within one working day) or on track."""
    if due_date is None:
        return ON_TRACK
    if today > due_date:
        return BREACHED
    if working_days_left <= AT_RISK_WORKING_DAYS:
        return AT_RISK
    return ON_TRACK


def age_bucket(working_days_old: int) -> str:
    for low, high, label in AGE_BUCKETS:
        if working_days_old >= low and (high is None or working_days_old <= high):
            return label
    return AGE_BUCKETS[0][2]


def bar_chart_svg(*, title: str, bars: Sequence[tuple[str, int]], width: int = 560, bar_height: int = 22,
                  value_label: Callable[[int], str] = str) -> str:
    """Render horizontal bars as a self-contained, accessible SVG (labels escaped)."""
    label_width, gap, top = 170, 6, 30
    height = top + len(bars) * (bar_height + gap) + 10
    largest = max((value for _, value in bars), default=0) or 1
    room = width - label_width - 80
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * (bar_height + gap)
        length = round(room * max(value, 0) / largest)
        parts.append(f'<text x="{label_width - 8}" y="{y + bar_height - 6}" font-size="12" '
                     f'text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="#0b6e4f">'
                     f"<title>{escape(label)}: {escape(value_label(value))}</title></rect>")
        parts.append(f'<text x="{label_width + length + 6}" y="{y + bar_height - 6}" font-size="12">'
                     f"{escape(value_label(value))}</text>")
    parts.append("</svg>")
    return "".join(parts)
