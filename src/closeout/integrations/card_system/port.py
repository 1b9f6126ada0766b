from __future__ import annotations

from typing import Protocol


class CardSystem(Protocol):
    def block(self, *, card_number: str, idempotency_key: str) -> dict:
        """Block the card for good; repeating the key is harmless.

        :raises TransientError: when the outcome is unknown.
        """

    def block_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, dict]:
        """Block many cards at once; items carry card_number and idempotency_key."""
