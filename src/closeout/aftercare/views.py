"""The customer's download of everything held about their case, behind the portal's session check."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from closeout.aftercare.export import case_export
from closeout.closures.models import ClosureCase

SESSION_CASES = "portal_cases"  # the portal remembers the cases this browser proved it owns
TYPES = {"json": "application/json", "pdf": "application/pdf"}


@require_GET
def case_export_download(request, reference: str, fmt: str):
    if fmt not in TYPES or reference not in request.session.get(SESSION_CASES, []):
        raise Http404
    case = ClosureCase.objects.select_related("card__product", "card__holder").filter(reference=reference).first()
    if case is None:
        raise Http404
    json_bytes, pdf_bytes = case_export(case)
    response = HttpResponse(json_bytes if fmt == "json" else pdf_bytes, content_type=TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{reference}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
