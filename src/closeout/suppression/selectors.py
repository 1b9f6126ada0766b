"""Reads of the suppression list."""

from __future__ import annotations

from closeout.cards.models import Holder
from closeout.suppression.models import Suppression


def _status(contact_hash: str, entry: Suppression | None) -> dict:
    return {
        "contact_hash": contact_hash,
        "suppressed": entry is not None,
        "kind": entry.kind if entry else None,
        "reason": entry.reason if entry else None,
        "since": entry.created_at.isoformat() if entry else None,
    }


def suppression_status(contact_hash: str) -> dict:
    return _status(contact_hash, Suppression.objects.filter(contact_hash=contact_hash).first())


def suppression_statuses(contact_hashes: list[str]) -> list[dict]:
    """The status of each hash, in the order given, in one query."""
    entries = {e.contact_hash: e for e in Suppression.objects.filter(contact_hash__in=set(contact_hashes))}
    return [_status(h, entries.get(h)) for h in contact_hashes]


def holder_suppressed(holder: Holder) -> bool:
    """True when any of the holder's contacts is on the list (one suppressed contact stops all)."""
    hashes = [h for h in (holder.email_hash, holder.phone_hash) if h]
    return bool(hashes) and Suppression.objects.filter(contact_hash__in=hashes).exists()
