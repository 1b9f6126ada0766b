"""Everything closeout holds about a case, for the customer to download (JSON and PDF)."""

from __future__ import annotations

import json

from django.db.models import F, Q

from closeout.aftercare.export_pdf import export_pdf
from closeout.audit.models import AuditEvent
from closeout.cards.models import Holder
from closeout.cards.selectors import authorization_attempts_for_case
from closeout.closures.models import ClosureCase, Refund
from closeout.closures.selectors import case_certificate
from closeout.common import clock
from closeout.identity import documents, vault
from closeout.ledger.models import Posting
from closeout.suppression.models import Suppression


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _holder(holder: Holder) -> dict:
    out = {"name": holder.name, "language": holder.language, "id_type": holder.id_type,
           "id_number": holder.id_masked, "email": None, "phone": None,
           "shredded_at": _iso(holder.shredded_at)}
    if holder.shredded_at or not holder.data_key:
        out["note"] = "personal data erased at the end of the retention period"
        out["email"], out["phone"] = holder.email_masked or None, holder.phone_masked or None
        return out
    if holder.email_encrypted:
        out["email"] = vault.decrypt(holder.data_key, holder.email_encrypted, context="email")
    if holder.phone_encrypted:
        out["phone"] = vault.decrypt(holder.data_key, holder.phone_encrypted, context="phone")
    return out


def case_export_data(case: ClosureCase) -> dict:
    card = case.card
    refund = Refund.objects.filter(case=case).first()
    subjects = Q(subject=case.reference) | Q(subject=f"card:{card.id}") | Q(subject=f"holder:{card.holder_id}")
    contacts = [h for h in (card.holder.email_hash, card.holder.phone_hash) if h]
    return {
        "format": "closeout-case-export/1",
        "exported_at": clock.now().isoformat(),
        "case": {
            "reference": case.reference, "state": case.state, "channel": case.channel,
            "reason": case.reason, "language": case.language, "requested_at": _iso(case.created_at),
            "closed_at": _iso(case.closed_at), "sla_due_date": _iso(case.sla_due_date),
            "quote": case.quote, "refund_destination": case.refund_destination,
        },
        "timeline": [{"at": _iso(e.at), "state": e.to_state, "note": e.note} for e in case.events.order_by("at", "id")],
        "card": {"number": documents.mask_card_number(card.number), "product": card.product.name,
                 "product_code": card.product.code,
                 "product_kind": card.product.kind, "status": card.status, "issued_at": _iso(card.issued_at),
                 "physical": card.physical},
        "holder": _holder(card.holder),
        "refund": None if refund is None else {
            "amount": refund.amount_minor, "currency": refund.currency, "destination_type": refund.destination_type,
            "status": refund.status, "provider_ref": refund.provider_ref, "created_at": _iso(refund.created_at),
            "settled_at": _iso(refund.settled_at)},
        "linked_apps": [{"partner": b.partner, "bound_at": _iso(b.bound_at), "unbound_at": _iso(b.unbound_at)}
                        for b in card.bindings.order_by("partner")],
        "authorization_attempts": [{**a, "at": _iso(a["at"])} for a in authorization_attempts_for_case(case)],
        "marketing_suppression": [{"kind": s.kind, "reason": s.reason, "since": _iso(s.created_at)}
                                  for s in Suppression.objects.filter(contact_hash__in=contacts).order_by("id")],
        "certificate": case_certificate(case),
        "ledger": [
            {"key": p.key, "at": _iso(p.at), "memo": p.memo,
             "lines": [{"account": line.account.code, "amount": line.amount_minor, "currency": line.currency}
                       for line in p.lines.select_related("account").order_by("id")]}
            for p in Posting.objects.filter(subject=case.reference).order_by("at", "id")
        ],
        "audit_events": [
            {"seq": e.seq, "at": _iso(e.at), "actor": _actor(e.actor), "action": e.action, "before": e.before,
             "after": e.after, "reason": e.reason}
            for e in AuditEvent.objects.filter(subjects).order_by(F("seq").asc(nulls_last=True), "id")
        ],
    }


def _actor(actor: str) -> str:
    """Who did it, as the holder is told: a member of staff as `staff`, without their sign-in
    address (it is theirs, not the holder's); everyone else as recorded."""
    return "staff" if actor.startswith("staff:") else actor


def case_export(case: ClosureCase) -> tuple[bytes, bytes]:
    """Return everything held about the case as (JSON bytes, PDF bytes in the active language)."""
    data = case_export_data(case)
    return json.dumps(data, ensure_ascii=False, indent=2).encode(), export_pdf(data)
