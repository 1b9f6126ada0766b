"""Reads of cards shaped as plain data for the portal and the console."""

from __future__ import annotations

from closeout.cards.models import AuthorizationAttempt


def authorization_attempts_for_case(case) -> list[dict]:
    """Return every authorization or top-up attempt on the case's card since the closure was
    requested, newest first: time, amount, source, decision and reason."""
    attempts = AuthorizationAttempt.objects.filter(card_id=case.card_id, at__gte=case.created_at).order_by("-at", "-id")
    return [
        {"at": a.at, "amount": a.amount_minor, "currency": a.currency, "source": a.source,
         "decision": a.decision, "reason": a.reason}
        for a in attempts
    ]
