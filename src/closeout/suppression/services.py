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
