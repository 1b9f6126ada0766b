"""Return labels for cases whose card must come back. The carrier is called outside any
transaction with the fixed key `<reference>:return_label`; the label is then stored once."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from closeout.audit.services import audit_record
from closeout.common import clock
from closeout.integrations import registry
from closeout.integrations.models import ReturnLabel


def return_label_create(*, case) -> ReturnLabel:
    """Obtain the case's prepaid return label (the same one however often this is called).

    :raises TransientError: when the carrier's answer is unknown (call again; same label).
    :raises PermanentError: when the carrier refuses.
    """
    existing = ReturnLabel.objects.filter(case=case).first()
    if existing:
        return existing
    label = registry.port("shipping").create_return_label(idempotency_key=f"{case.reference}:return_label",
                                                          reference=case.reference)
    try:
        with transaction.atomic():
            row = ReturnLabel.objects.create(case=case, carrier=label.carrier, label_number=label.label_number,
                                             tracking_number=label.tracking_number, label_url=label.label_url,
                                             created_at=clock.now())
            audit_record(actor="system", action="return_label.create", subject=case.reference,
                         data={"carrier": label.carrier, "tracking_number": label.tracking_number})
    except IntegrityError:
        row = ReturnLabel.objects.get(case=case)
    return row


def return_tracking_refresh(*, case) -> list[dict]:
    """Fetch the label's tracking events from the carrier and keep them on the label.

    :raises ReturnLabel.DoesNotExist: when the case has no label.
    """
    label = ReturnLabel.objects.get(case=case)
    events = registry.port("shipping").tracking_events(tracking_number=label.tracking_number)
    ReturnLabel.objects.filter(id=label.id).update(tracking_events=events, tracked_at=clock.now())
    return events
