"""GET /sim/mail/messages: what the demo's mailbox received, newest last (`?since=<id>`)."""

from __future__ import annotations

from django.http import JsonResponse

from closeout.api.problems import methods_allowed
from closeout.common.text import ascii_digits
from closeout.integrations.mailbox.models import SimMail


@methods_allowed("GET")
def messages(request):
    rows = SimMail.objects.order_by("id")
    since = request.GET.get("since", "")
    if ascii_digits(since):
        rows = rows.filter(id__gt=int(since))
    return JsonResponse([
        {"id": m.id, "to_masked": m.to_masked, "to_hash": m.to_hash, "subject": m.subject, "text": m.text,
         "message_id": m.message_id, "at": m.received_at.isoformat()} for m in rows
    ], safe=False)
