"""Reads of closure cases, shaped as plain data for the API, portal and console."""

from __future__ import annotations

from django.conf import settings

from closeout.closures.models import ClosureCase


def case_certificate(case: ClosureCase) -> dict | None:
    """Return the certificate reference once the case is closed and a certificate exists."""
    certificate = getattr(case, "certificate", None)
    if certificate is None:
        return None
    return {"id": str(certificate.id), "verify_url": f"{settings.PUBLIC_URL}/verify/{certificate.id}"}


def case_summary(case: ClosureCase) -> dict:
    """What a new case's creator is told: reference, state, quote and the SLA date."""
    return {
        "reference": case.reference,
        "state": case.state,
        "quote": dict(case.quote),
        "sla_due": case.sla_due_date.isoformat() if case.sla_due_date else None,
    }


def case_public(case: ClosureCase) -> dict:
    return {
        **case_summary(case),
        "timeline": [
            {"at": e.at.isoformat(), "state": e.to_state, "note": e.note}
            for e in case.events.order_by("at", "id")
            if e.to_state
        ],
        "certificate": case_certificate(case),
    }

