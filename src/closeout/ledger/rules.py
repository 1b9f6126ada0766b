"""Pure double-entry checks."""

from __future__ import annotations

from collections import defaultdict

from closeout.common.money import Money


class Unbalanced(ValueError):
    """Raised when a posting's lines do not sum to zero in every currency."""


def check_balanced(lines: list[tuple[str, Money]]) -> list[tuple[str, Money]]:
    """Return the non-zero lines of a posting, checking they balance per currency.

    :raises Unbalanced: when any currency does not sum to zero, or there is nothing to post.
    """
    totals: dict[str, int] = defaultdict(int)
    kept = []
    for account, amount in lines:
        totals[amount.currency] += amount.minor
        if amount.minor:
            kept.append((account, amount))
    bad = {cur: total for cur, total in totals.items() if total}
    if bad:
        raise Unbalanced(f"posting does not balance: {bad}")
    return kept
