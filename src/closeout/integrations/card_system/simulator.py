from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

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

    def block_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, dict]:
        """Block many cards in one call; items carry card_number and idempotency_key."""
        mode = take_fault("card_system", "block_batch")
        if mode == "error_5xx":
            raise TransientError("card system answered 503 to the block batch")
        keys = [item["idempotency_key"] for item in items]
        with transaction.atomic():
            known = set(SimCardBlock.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
            SimCardBlock.objects.filter(idempotency_key__in=known).update(request_count=F("request_count") + 1)
            SimCardBlock.objects.bulk_create(
                [SimCardBlock(idempotency_key=i["idempotency_key"], card_number=i["card_number"])
                 for i in items if i["idempotency_key"] not in known],
                batch_size=2000,
            )
        if mode in ("timeout", "lost_response"):
            raise TransientError("card system timed out after blocking the batch")
        return {key: {"status": "blocked", "batch": batch_key} for key in keys}
