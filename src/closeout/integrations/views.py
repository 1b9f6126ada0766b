"""The built-in simulators' own HTTP surface: what they were asked, and scripted faults."""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from closeout.api.problems import problem
from closeout.integrations.models import SimCardBlock, SimFault, SimPayment, SimRefund

FAULT_MODES = ("timeout", "error_5xx", "decline", "pending", "lost_response")


@require_GET
def payment_refunds(request):
    rows = SimRefund.objects.order_by("id")
    return JsonResponse(
        [
            {"idempotency_key": r.idempotency_key, "amount": r.amount_minor, "currency": r.currency,
             "destination": r.destination, "status": r.status, "provider_ref": r.provider_ref,
             "request_count": r.request_count}
            for r in rows
        ],
        safe=False,
    )


@require_GET
def payment_payments(request):
    return JsonResponse(
        [{"idempotency_key": p.idempotency_key, "amount": p.amount_minor, "currency": p.currency,
          "description": p.description, "status": p.status, "provider_ref": p.provider_ref,
          "request_count": p.request_count} for p in SimPayment.objects.order_by("id")],
        safe=False,
    )


@require_GET
def cards_blocked(request):
    return JsonResponse(
        [{"card_number": r.card_number, "idempotency_key": r.idempotency_key, "request_count": r.request_count,
          "at": r.created_at.isoformat()} for r in SimCardBlock.objects.order_by("id")],
        safe=False,
    )


@csrf_exempt
@require_POST
def faults(request):
    """Script a fault: {"system": "payments", "operation": "refund", "mode": "timeout", "remaining": 1}."""
    try:
        body = json.loads(request.body or b"{}")
        system, operation, mode = str(body["system"]), str(body.get("operation", "*")), str(body["mode"])
        remaining = int(body.get("remaining", 1))
    except (ValueError, KeyError, TypeError):
        return problem(400, "bad-fault", "Invalid fault", "Send system, mode and optionally operation, remaining.")
    if mode not in FAULT_MODES or not 0 < remaining <= 1000:
        return problem(422, "bad-fault", "Invalid fault", f"mode must be one of {', '.join(FAULT_MODES)}.")
    fault = SimFault.objects.create(system=system[:20], operation=operation[:40], mode=mode, remaining=remaining)
    return JsonResponse({"id": fault.id}, status=201)
