"""Carrier for card returns: prepaid return labels and tracking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

EVENT_CODES = ("LABEL_CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION")


@dataclass(frozen=True)
class Label:
    carrier: str
    label_number: str
    tracking_number: str
    label_url: str = ""

    def as_json(self) -> dict:
        return {"carrier": self.carrier, "label_number": self.label_number, "tracking_number": self.tracking_number,
                "label_url": self.label_url}


class Carrier(Protocol):
    def create_return_label(self, *, idempotency_key: str, reference: str) -> Label:
        """Create a prepaid return label to the warehouse; a repeated key returns the same label.

        :raises TransientError: when the outcome is unknown.
        """

    def tracking_events(self, *, tracking_number: str) -> list[dict]:
        """Return the shipment's events `[{code, at, location}]`, oldest first."""
