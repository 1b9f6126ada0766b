"""A real-protocol SMS adapter: JSON over HTTPS to a gateway (the shape most providers share:
bearer token, Idempotency-Key header, {to, body} → {id}). Configured by CLOSEOUT_SMS_URL and
CLOSEOUT_SMS_TOKEN; the built-in simulator answers the same protocol at /sim/sms/messages."""

from __future__ import annotations

import os

import httpx

from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.sms.port import SmsResult


class HttpSmsGateway:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 10.0):
        self.url = url or os.environ.get("CLOSEOUT_SMS_URL", "")
        self.token = token or os.environ.get("CLOSEOUT_SMS_TOKEN", "")
        self.timeout = timeout

    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult:
        if not self.url:
            raise PermanentError("CLOSEOUT_SMS_URL is not set")
        headers = {"Idempotency-Key": idempotency_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = httpx.post(self.url, json={"to": to, "body": body}, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TransientError(f"SMS gateway unreachable: {type(exc).__name__}")
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"SMS gateway answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"SMS gateway refused the message ({response.status_code})")
        data = response.json()
        return SmsResult(status=data.get("status", "accepted"), message_ref=str(data.get("id", "")))
