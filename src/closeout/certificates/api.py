"""Public certificate endpoints (no API key): the PDF and its verification."""

from __future__ import annotations

from django.http import HttpResponse
from ninja import Router, Schema

from closeout.api.problems import problem
from closeout.certificates import selectors

router = Router(tags=["certificates"])


class VerificationOut(Schema):
    id: str
    valid: bool
    reason: str
    key_id: str
    key_active: bool
    public_key: str
    algorithm: str
    signature: str
    issued_at: str
    facts: dict


class ProblemOut(Schema):
    type: str
    title: str
    status: int
    detail: str


def _missing() -> HttpResponse:
    return problem(404, "not-found", "Not found", "No certificate with this id.")


@router.get("/keys", auth=None, summary="Public keys that sign certificates (old ones included)")
def certificate_keys(request):
    from closeout.certificates.services import public_keys

    return {"format": "closeout-keys/1", "keys": public_keys()}


@router.get("/{certificate_id}", auth=None, summary="Download a closure certificate (PDF)")
def certificate_download(request, certificate_id: str):
    certificate = selectors.certificate_find(certificate_id)
    if certificate is None:
        return _missing()
    response = HttpResponse(selectors.certificate_pdf(certificate), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="closure-certificate-{certificate.case.reference}.pdf"'
    return response


@router.get("/{certificate_id}/verify", auth=None, response={200: VerificationOut, 404: ProblemOut},
            summary="Verify a closure certificate")
def certificate_verify(request, certificate_id: str):
    certificate = selectors.certificate_find(certificate_id)
    if certificate is None:
        return _missing()
    return 200, selectors.certificate_verification(certificate)
