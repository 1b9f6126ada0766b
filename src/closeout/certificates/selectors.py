"""Reads of certificates: verification results and the PDF, as plain data."""

from __future__ import annotations

import uuid

from closeout.certificates import pdf, signing
from closeout.certificates.models import Certificate
from closeout.certificates.services import certificate_envelope, public_keys


def certificate_find(certificate_id: str) -> Certificate | None:
    """Return the certificate with this id; a malformed id finds nothing (never an error)."""
    try:
        wanted = uuid.UUID(str(certificate_id))
    except ValueError:
        return None
    return Certificate.objects.select_related("key").filter(id=wanted).first()


def certificate_verification(certificate: Certificate) -> dict:
    """Check the stored signature against the key table and return what a verifier shows."""
    verdict = signing.verify_envelope(certificate_envelope(certificate), public_keys())
    return {
        "id": str(certificate.id),
        "valid": verdict.valid,
        "reason": verdict.reason,
        "key_id": certificate.key.key_id,
        "key_active": certificate.key.active,
        "public_key": certificate.key.public_key,
        "algorithm": signing.ALGORITHM,
        "signature": certificate.signature,
        "issued_at": certificate.issued_at.isoformat(),
        "facts": verdict.facts,
    }


def certificate_pdf(certificate: Certificate) -> bytes:
    return pdf.render_certificate(facts_text=certificate.facts, signature=certificate.signature,
                                  key_id=certificate.key.key_id)
