"""Partner apps (map/transit apps, wallets): the unbind webhook, signed per Standard Webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Delivery:
    """One signed message for one partner; `message_id` stays the same across retries."""

    partner: str
    endpoint_url: str
    message_id: str
    body: str
    secrets: tuple[str, ...]  # every signing secret still valid (two during a rotation)


@dataclass(frozen=True)
class DeliveryResult:
    acknowledged: bool
    status_code: int
    error: str = ""

    def as_json(self) -> dict:
        return {"acknowledged": self.acknowledged, "status_code": self.status_code, "error": self.error}


class PartnerNotifier(Protocol):
    def send(self, delivery: Delivery) -> DeliveryResult:
        """Post the message once; a 2xx answer acknowledges it.

        :raises TransientError: for timeouts and connection failures (retry later, same id).
        """
