"""A simulated carrier: prepaid return labels with numbers in the carrier's format, and tracking
events that scripts (or the demo) add through /sim/shipping/shipments/<tracking>/events."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from closeout.common import clock
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimShipment
from closeout.integrations.shipping.port import EVENT_CODES, Label

CARRIER = "SIMPOST"


def _label(row: SimShipment) -> Label:
    return Label(carrier=CARRIER, label_number=row.label_number, tracking_number=row.tracking_number,
                 label_url=f"/sim/shipping/labels/{row.label_number}")


def shipment_event_add(*, tracking_number: str, code: str, location: str = "") -> dict:
    """The carrier scans the parcel.

    :raises PermanentError: for an unknown shipment or event code.
    """
    if code not in EVENT_CODES:
        raise PermanentError(f"event code must be one of {', '.join(EVENT_CODES)}")
    with transaction.atomic():
        row = SimShipment.objects.select_for_update().filter(tracking_number=tracking_number).first()
        if row is None:
            raise PermanentError("unknown shipment")
        event = {"code": code, "at": clock.now().isoformat(), "location": location[:80]}
        row.events = [*row.events, event]
        row.save(update_fields=["events"])
    return event


class SimulatedCarrier:
    def create_return_label(self, *, idempotency_key: str, reference: str) -> Label:
        mode = take_fault("shipping", "create_label")
        if mode == "error_5xx":
            raise TransientError("carrier answered 503")
        with transaction.atomic():
            row = SimShipment.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row is not None:
                row.request_count += 1
                row.save(update_fields=["request_count"])
            else:
                digits = "".join(secrets.choice("0123456789") for _ in range(9))
                try:
                    with transaction.atomic():
                        row = SimShipment.objects.create(
                            idempotency_key=idempotency_key, reference=reference,
                            label_number=f"RL{digits}HK", tracking_number=f"SP{digits}",
                            events=[{"code": "LABEL_CREATED", "at": clock.now().isoformat(), "location": ""}],
                        )
                except IntegrityError:
                    raise TransientError("concurrent request with the same key")
        if mode in ("timeout", "lost_response"):
            raise TransientError("carrier timed out after creating the label")
        return _label(row)

    def tracking_events(self, *, tracking_number: str) -> list[dict]:
        if take_fault("shipping", "tracking") == "error_5xx":
            raise TransientError("carrier answered 503")
        row = SimShipment.objects.filter(tracking_number=tracking_number).first()
        if row is None:
            raise PermanentError("unknown shipment")
        return list(row.events)
