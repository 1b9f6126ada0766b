"""Retention: a closed case keeps the holder's personal data for its product's retention period
(5 years unless the product says otherwise); then the holder's data key is destroyed
(crypto-shredding). Amounts, the ledger, audit events and certificates carry no PII and stay
verifiable."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from closeout.audit.services import audit_record
from closeout.cards.models import Card, Holder
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.common import clock


@dataclass
class RetentionReport:
    dry_run: bool
    due: list[int] = field(default_factory=list)  # holder ids
    kept: int = 0

    @property
    def shredded(self) -> int:
        return 0 if self.dry_run else len(self.due)


def add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, month=2, day=28)


def mask_name(name: str) -> str:
    """Keep the first character of each part: '陈大文' → '陈**', 'Alex Wong' → 'A*** W***'."""
    parts = name.split()
    if len(parts) > 1:
        return " ".join(p[:1] + "*" * (len(p) - 1) for p in parts)
    return name[:1] + "*" * max(0, len(name) - 1)


def _holder_expired(holder_id: int, now: datetime) -> bool:
    """True when every card of the holder is closed and every closed case is past retention."""
    if Card.objects.filter(holder_id=holder_id).exclude(status=Card.Status.CLOSED).exists():
        return False
    cases = ClosureCase.objects.filter(card__holder_id=holder_id).select_related("card__product")
    closed = [c for c in cases if c.state == states.CLOSED]
    if not closed or any(c.state not in states.TERMINAL for c in cases):
        return False
    return all(c.closed_at and add_years(c.closed_at, c.card.product.retention_years) <= now for c in closed)


def retention_run(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Crypto-shred the holders whose closed cases are past retention (report only with dry_run)."""
    now = now or clock.now()
    report = RetentionReport(dry_run=dry_run)
    holder_ids = (Holder.objects.filter(shredded_at__isnull=True, cards__closures__state=states.CLOSED)
                  .values_list("id", flat=True).distinct().order_by("id"))
    for holder_id in list(holder_ids):
        if not _holder_expired(holder_id, now):
            report.kept += 1
            continue
        report.due.append(holder_id)
        if not dry_run:
            holder_shred(holder_id=holder_id, now=now)
    return report


def holder_shred(*, holder_id: int, now: datetime | None = None, actor: str = "system:retention") -> Holder:
    """Destroy the holder's data key; the encrypted ID, contacts and refund account become unreadable
    for good. Masked fields stay for the record, and the name is reduced to its initials."""
    now = now or clock.now()
    with transaction.atomic():
        holder = Holder.objects.select_for_update().get(id=holder_id)
        if holder.shredded_at:
            return holder
        holder.data_key = None
        holder.shredded_at = now
        holder.name = mask_name(holder.name)
        holder.save(update_fields=["data_key", "shredded_at", "name"])
        audit_record(actor=actor, action="holder.shredded", subject=f"holder:{holder.id}",
                     reason="retention period over")
    return holder
