from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from closeout.common.money import Money


@dataclass(frozen=True)
class CardInfo:
    number: str
    status: str  # active | blocked | deactivated (a SIM's number out of service) | closing | closed
    balance: Money
    transaction_count: int

    def as_json(self) -> dict:
        return {"number": self.number, "status": self.status, "balance": self.balance.minor,
                "currency": self.balance.currency, "transaction_count": self.transaction_count}


class CardSystem(Protocol):
    def block(self, *, card_number: str, idempotency_key: str) -> dict:
        """Block the card for good; repeating the key is harmless. Returns `{status, block_ref}`.

        :raises TransientError: when the outcome is unknown.
        :raises PermanentError: for a card the system does not know.
        """

    def deactivate_number(self, *, iccid: str, idempotency_key: str) -> dict:
        """Take a SIM's number out of service; repeating the key is harmless. Returns `{status, ref}`.

        :raises TransientError: when the outcome is unknown.
        """

    def block_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, dict]:
        """Block many cards at once; items carry card_number and idempotency_key. Returns a
        result per key; a card the system refuses comes back with status `failed`.

        :raises TransientError: when the outcome is unknown (repeating the keys is harmless).
        """

    def card_info(self, *, card_number: str) -> CardInfo:
        """Read the card's status, balance and transaction count as the card system sees them.

        :raises PermanentError: for a card the system does not know.
        """
