"""Standard Webhooks headers: `webhook-id`, `webhook-timestamp`, and `webhook-signature` with one
`v1,<base64>` entry per valid secret, so a partner may switch secrets during a rotation."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "headers", "new_secret", "verify"]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def headers(*, message_id: str, body: str, secrets: tuple[str, ...], at: datetime | None = None) -> dict:
    at = (at or datetime.now(tz=UTC)).astimezone(UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json"}


def verify(*, secret: str, body: str | bytes, headers: dict) -> None:
    """Check the signature only; the caller reads the body once it is known to be the sender's.

    :raises WebhookVerificationError: for a bad or malformed signature, a body that is not UTF-8,
        or a timestamp more than 5 minutes off.
    """
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except ValueError as exc:  # the library splits and decodes what it was sent without checking it
        raise WebhookVerificationError("malformed signature or body") from exc
