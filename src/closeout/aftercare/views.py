"""The customer's download of everything held about their case (behind the portal's session check),
and the simulated card-system transaction feed the charge guard reads."""

from __future__ import annotations

import json
import uuid

from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from closeout.aftercare.export import case_export
from closeout.aftercare.guard import feed_record
from closeout.aftercare.models import CardFeedTransaction
from closeout.api.problems import methods_allowed, problem
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.common.money import Money

SESSION_CASES = "portal_cases"  # the portal remembers the cases this browser proved it owns
TYPES = {"json": "application/json", "pdf": "application/pdf"}


@require_safe
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


@methods_allowed("GET", "POST")
def sim_card_transactions(request):
    """The simulated card-system feed: GET lists it; POST records a transaction that went through
    without asking closeout (an offline gate), e.g. {"card_number", "amount", "currency", "source"}."""
    if request.method in ("GET", "HEAD"):
        return JsonResponse([
            {"external_ref": t.external_ref, "card_number": t.card_number, "at": t.at.isoformat(),
             "amount": t.amount_minor, "currency": t.currency, "kind": t.kind, "status": t.status, "source": t.source}
            for t in CardFeedTransaction.objects.order_by("id")
        ], safe=False)
    try:
        body = json.loads(request.body or b"{}")
        amount = Money(int(body["amount"]), str(body["currency"]).upper())
        number = "".join(str(body["card_number"]).split())[:20]
        kind = str(body.get("kind", "purchase"))
        status = str(body.get("status", "approved"))
    except (ValueError, KeyError, TypeError):
        return problem(422, "validation-error", "Invalid transaction",
                       "Send card_number, amount (minor units) and currency.")
    if kind not in ("purchase", "top_up") or status not in ("approved", "declined"):
        return problem(422, "validation-error", "Invalid transaction",
                       "kind is purchase or top_up; status is approved or declined.")
    row = feed_record(external_ref=str(body.get("external_ref") or f"sim-{uuid.uuid4().hex[:12]}")[:80],
                      card_number=number, at=clock.now(), amount=amount, kind=kind, status=status,
                      source=str(body.get("source", "sim")))
    return JsonResponse({"external_ref": row.external_ref}, status=201)
