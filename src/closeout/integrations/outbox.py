"""Messages the simulators send to closeout (payment webhooks, ES9+ notifications), delivered
at least once, with the scripted delivery faults real senders show: duplicates, messages out of
order, messages lost, slow deliveries.

Delivery is `inline` by default: the receiving service is called in this process with the exact
bytes and headers, so the signature and replay checks run as they would over HTTP and no server
has to be up. `CLOSEOUT_SIM_DELIVERY=http` posts them to CLOSEOUT_PUBLIC_URL instead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from closeout.common import clock
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimOutbox

log = logging.getLogger(__name__)

# path -> receiving function(body: bytes, headers: dict) -> HTTP status
RECEIVERS = {
    "/webhooks/payments": "closeout.integrations.payments.webhooks.receive",
    "/gsma/rsp2/es9plus/handleNotification": "closeout.integrations.smdp.notifications.receive",
}
# system -> function(body: bytes) -> headers; real senders sign each attempt afresh
SIGNERS = {
    "payments": "closeout.integrations.payments.simulator.sign_webhook",
}
MAX_ATTEMPTS = 30
OUT_OF_ORDER_DELAY = timedelta(seconds=2)
RETRY_DELAY = timedelta(seconds=2)

Post = Callable[[str, bytes, dict], int]


def outbox_add(*, system: str, path: str, body: bytes | str | dict, headers: dict) -> SimOutbox:
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":"), sort_keys=True)
    if isinstance(body, bytes):
        body = body.decode()
    return SimOutbox.objects.create(system=system, path=path, body=body, headers=headers)


def _inline(path: str, body: bytes, headers: dict) -> int:
    return import_string(RECEIVERS[path])(body, headers)


def _http(path: str, body: bytes, headers: dict) -> int:
    import httpx

    response = httpx.post(settings.PUBLIC_URL + path, content=body, headers=headers, timeout=10)
    return response.status_code


def default_post() -> Post:
    return _http if os.environ.get("CLOSEOUT_SIM_DELIVERY", "inline") == "http" else _inline


def outbox_deliver(*, system: str | None = None, post: Post | None = None, limit: int = 100) -> int:
    """Deliver due messages in the order they were written; return how many were delivered."""
    post = post or default_post()
    now = clock.now()
    rows = SimOutbox.objects.filter(delivered_at__isnull=True).exclude(deliver_after__gt=now).order_by("id")
    if system:
        rows = rows.filter(system=system)
    delivered = 0
    for row_id in list(rows.values_list("id", flat=True)[:limit]):
        with transaction.atomic():
            claimed = SimOutbox.objects.filter(id=row_id, delivered_at__isnull=True).update(delivered_at=clock.now())
        if not claimed:
            continue
        row = SimOutbox.objects.get(id=row_id)
        mode = take_fault(row.system, "webhook")
        if mode == "out_of_order_webhook":
            SimOutbox.objects.filter(id=row.id).update(delivered_at=None, deliver_after=now + OUT_OF_ORDER_DELAY)
            continue
        if mode == "drop_webhook":
            SimOutbox.objects.filter(id=row.id).update(last_status=0, attempts=row.attempts + 1)
            continue
        copies = 2 if mode == "duplicate_webhook" else 1
        status = 0
        for _ in range(copies):
            body = row.body.encode()
            headers = dict(row.headers)
            if row.system in SIGNERS:
                headers.update(import_string(SIGNERS[row.system])(body))
            try:
                status = post(row.path, body, headers)
            except Exception:  # noqa: BLE001 - a failed delivery is retried later
                log.warning("delivery of %s message %s failed", row.system, row.id, exc_info=True)
                status = 0
        fields = {"attempts": row.attempts + copies, "last_status": status}
        if not 200 <= status < 300 and row.attempts + copies < MAX_ATTEMPTS:
            fields.update(delivered_at=None, deliver_after=clock.now() + RETRY_DELAY)
        else:
            delivered += 1
        SimOutbox.objects.filter(id=row.id).update(**fields)
    return delivered
