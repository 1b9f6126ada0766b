from __future__ import annotations

from django.db import IntegrityError, transaction

from closeout.integrations.errors import TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimCardBlock


class SimulatedCardSystem:
    def block(self, *, card_number: str, idempotency_key: str) -> dict:
        mode = take_fault("card_system", "block")
        if mode == "error_5xx":
            raise TransientError("card system answered 503")
        with transaction.atomic():
            row = SimCardBlock.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row:
                row.request_count += 1
                row.save(update_fields=["request_count"])
            else:
                try:
                    with transaction.atomic():
                        row = SimCardBlock.objects.create(idempotency_key=idempotency_key, card_number=card_number)
                except IntegrityError:
                    raise TransientError("concurrent block with the same key")
        if mode in ("timeout", "lost_response"):
            raise TransientError("card system timed out after blocking")
        return {"status": "blocked", "block_ref": f"blk-{row.id}"}
