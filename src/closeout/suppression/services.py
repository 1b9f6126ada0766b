"""Marketing suppression: written the moment a closure is submitted, checked for every message."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from closeout.audit.services import audit_record
from closeout.cards.models import Holder
from closeout.common import clock
from closeout.suppression.models import Suppression


def suppression_add(*, contact_hash: str, kind: str, reason: str, case_reference: str = "") -> Suppression:
    """Put a hashed contact on the list; adding it again keeps the first entry."""
    existing = Suppression.objects.filter(contact_hash=contact_hash).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            entry = Suppression.objects.create(contact_hash=contact_hash, kind=kind, reason=reason,
                                               case_reference=case_reference, created_at=clock.now())
            audit_record(actor="system", action="suppression.added", subject=case_reference or f"{kind}-contact",
                         reason=reason, data={"kind": kind, "contact_hash": contact_hash})
    except IntegrityError:
        return Suppression.objects.get(contact_hash=contact_hash)
    return entry


def suppression_add_for_holder(*, holder: Holder, case_reference: str) -> list[Suppression]:
    """Suppress the holder's email and phone because they asked to close their card."""
    entries = []
    if holder.email_hash:
        entries.append(suppression_add(contact_hash=holder.email_hash, kind=Suppression.Kind.EMAIL,
                                       reason="closure_submitted", case_reference=case_reference))
    if holder.phone_hash:
        entries.append(suppression_add(contact_hash=holder.phone_hash, kind=Suppression.Kind.PHONE,
                                       reason="closure_submitted", case_reference=case_reference))
    return entries


def suppression_add_for_cards(*, cards: list, reference_of: dict[int, str]) -> int:
    """Suppress the holders of many cards at once (bulk closure); return how many entries are new.

    `reference_of` maps a card id to its case reference.
    """
    from closeout.audit.services import audit_record_many

    holders = {row[0]: row[1:] for row in Holder.objects.filter(id__in={c.holder_id for c in cards})
               .values_list("id", "email_hash", "phone_hash")}
    wanted: dict[str, tuple[str, str]] = {}
    for card in cards:
        email_hash, phone_hash = holders[card.holder_id]
        for contact_hash, kind in ((email_hash, Suppression.Kind.EMAIL), (phone_hash, Suppression.Kind.PHONE)):
            if contact_hash:
                wanted.setdefault(contact_hash, (kind, reference_of[card.id]))
    existing = set(Suppression.objects.filter(contact_hash__in=list(wanted)).values_list("contact_hash", flat=True))
    now = clock.now()
    new = [Suppression(contact_hash=h, kind=kind, reason="closure_submitted", case_reference=ref, created_at=now)
           for h, (kind, ref) in wanted.items() if h not in existing]
    with transaction.atomic():
        Suppression.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
        audit_record_many([{"actor": "system", "action": "suppression.added", "subject": s.case_reference,
                            "reason": s.reason, "data": {"kind": s.kind, "contact_hash": s.contact_hash}}
                           for s in new])
    return len(new)
