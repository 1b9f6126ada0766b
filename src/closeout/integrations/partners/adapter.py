"""Unbind webhooks over HTTPS to each partner's registered endpoint."""

from __future__ import annotations

import httpx

from closeout.integrations import http
from closeout.integrations.errors import TransientError
from closeout.integrations.partners import signing
from closeout.integrations.partners.port import Delivery, DeliveryResult


class HttpPartnerNotifier:
    def __init__(self, *, transport: httpx.BaseTransport | None = None):
        self._transport = transport

    def send(self, delivery: Delivery) -> DeliveryResult:
        headers = signing.headers(message_id=delivery.message_id, body=delivery.body, secrets=delivery.secrets)
        try:
            with httpx.Client(timeout=http.TIMEOUT, transport=self._transport) as client:
                response = client.post(delivery.endpoint_url, content=delivery.body.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"partner {delivery.partner}: timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"partner {delivery.partner}: {type(exc).__name__}") from exc
        ok = 200 <= response.status_code < 300
        return DeliveryResult(acknowledged=ok, status_code=response.status_code,
                              error="" if ok else f"answered {response.status_code}")
