from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SmsResult:
    status: str  # accepted | failed
    message_ref: str
    failure_reason: str = ""


class SmsGateway(Protocol):
    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult:
        """Send one text message once per idempotency key; a repeated key returns the first answer.

        :raises TransientError: when the outcome is unknown (retry with the same key).
        :raises PermanentError: when the gateway refuses the message (bad number, blocked).
        """
