"""The carrier's REST protocol (served by the simulator under /sim/shipping/api):

    POST /return-labels  Idempotency-Key, {reference} → {carrier, label_number, tracking_number, label_url}
    GET  /shipments/{tracking_number}/events            → {events: [{code, at, location}]}
"""

from __future__ import annotations

import os

import httpx

from closeout.integrations import http
from closeout.integrations.shipping.port import Label


class HttpCarrier:
    def __init__(self, *, base_url: str | None = None, token: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        base_url = base_url or os.environ.get("CLOSEOUT_CARRIER_URL", "http://127.0.0.1:8000/sim/shipping/api")
        token = token or os.environ.get("CLOSEOUT_CARRIER_TOKEN", "")
        self._http = http.client(base_url, headers={"Authorization": f"Bearer {token}"} if token else {},
                                 transport=transport)

    def create_return_label(self, *, idempotency_key: str, reference: str) -> Label:
        body = http.send(self._http, "POST", "/return-labels", json={"reference": reference},
                         headers={"Idempotency-Key": idempotency_key}, what="carrier label").json()
        return Label(carrier=body["carrier"], label_number=body["label_number"],
                     tracking_number=body["tracking_number"], label_url=body.get("label_url", ""))

    def tracking_events(self, *, tracking_number: str) -> list[dict]:
        body = http.send(self._http, "GET", f"/shipments/{tracking_number}/events", what="carrier tracking").json()
        return list(body["events"])
