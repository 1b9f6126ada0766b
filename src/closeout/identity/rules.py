"""Throttling rules for one-time codes. Pure: timestamps in, decisions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CODE_DIGITS = 6
# The issue asks for 10 minutes (NIST SP 800-63B's upper bound); email can take minutes to arrive.
CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS_PER_CODE = 5
# A new code for the same sign-in at most once a minute: time for an SMS or an email to arrive.
RESEND_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class Limit:
    """At most `count` events within `window`; once exceeded, blocked for `lock` (or until the
    window has room again when `lock` is None)."""

    count: int
    window: timedelta
    lock: timedelta | None = None


# Sends per card number (as typed) and per client address.
SEND_LIMITS_SUBJECT = (Limit(3, timedelta(hours=1)), Limit(10, timedelta(days=1)))
SEND_LIMITS_CLIENT = (Limit(10, timedelta(hours=1)), Limit(30, timedelta(days=1)))
# Wrong codes: 10 per card number or 30 per address within 10 minutes lock for 15 minutes;
# at most 50 wrong guesses per card number a day (p <= 5e-5 of guessing a 6-digit code).
FAILURE_LIMITS_SUBJECT = (Limit(10, timedelta(minutes=10), timedelta(minutes=15)), Limit(50, timedelta(days=1)))
FAILURE_LIMITS_CLIENT = (Limit(30, timedelta(minutes=10), timedelta(minutes=15)),)


def blocked_until(times: Sequence[datetime], limits: Sequence[Limit], now: datetime) -> datetime | None:
    """Return until when one more event is refused, or None when it is allowed.

    `times` are the earlier events of one kind for one subject, in any order.
    """
    ordered = sorted(times)
    until: datetime | None = None
    for limit in limits:
        if limit.lock is None:
            recent = [t for t in ordered if t > now - limit.window]
            if len(recent) >= limit.count:
                # Room again once the oldest event that still counts leaves the window.
                candidate = recent[len(recent) - limit.count] + limit.window
                until = candidate if until is None else max(until, candidate)
            continue
        for index in range(limit.count - 1, len(ordered)):
            if ordered[index] - ordered[index - limit.count + 1] < limit.window:
                candidate = ordered[index] + limit.lock
                if candidate > now:
                    until = candidate if until is None else max(until, candidate)
    return until


def history_span(limits: Sequence[Limit]) -> timedelta:
    """How far back events matter for these limits."""
    return max(limit.window + (limit.lock or timedelta(0)) for limit in limits)
