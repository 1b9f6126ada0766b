"""The card management system, simulated. It keeps its own record of blocks and number
deactivations and answers balance and transaction-count reads from the cards it issued (the
demo's card table and ledger stand in for the operator's card database)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F

from closeout.integrations.card_system.port import CardInfo
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.models import SimCardBlock, SimNumberDeactivation


class Refused(PermanentError):
    """The card system answered, and said no (a `decline` fault): retrying changes nothing."""


REFUSALS = {
    "block": "card system refused to block the card",
    "block_batch": "card system refused to block the card",
    "deactivate_number": "card system refused to take the number out of service",
    "card_info": "card system refused to read the card",
}


def _fault(operation: str) -> str | None:
    mode = take_fault("card_system", operation)
    if mode == "error_5xx":
        raise TransientError("card system answered 503")
    if mode == "decline":
        raise Refused(REFUSALS[operation])
    return mode


def _once(model, idempotency_key: str, **fields):
    with transaction.atomic():
        row = model.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
        if row:
            row.request_count += 1
            row.save(update_fields=["request_count"])
            return row
        try:
            with transaction.atomic():
                return model.objects.create(idempotency_key=idempotency_key, **fields)
        except IntegrityError:
            raise TransientError("concurrent request with the same key")


class SimulatedCardSystem:
    def block(self, *, card_number: str, idempotency_key: str) -> dict:
        mode = _fault("block")
        row = _once(SimCardBlock, idempotency_key, card_number=card_number)
        if mode in ("timeout", "lost_response"):
            raise TransientError("card system timed out after blocking")
        return {"status": "blocked", "block_ref": f"blk-{row.id}"}

    def block_batch(self, *, batch_key: str, items: list[dict]) -> dict[str, dict]:
        """Block many cards in one call; items carry card_number and idempotency_key."""
        mode = take_fault("card_system", "block_batch")
        if mode == "error_5xx":
            raise TransientError("card system answered 503 to the block batch")
        keys = [item["idempotency_key"] for item in items]
        if mode == "decline":  # as the REST adapter reports cards the system refuses
            return {key: {"status": "failed", "error": REFUSALS["block_batch"]} for key in keys}
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

    def deactivate_number(self, *, iccid: str, idempotency_key: str) -> dict:
        mode = _fault("deactivate_number")
        row = _once(SimNumberDeactivation, idempotency_key, iccid=iccid)
        if mode in ("timeout", "lost_response"):
            raise TransientError("card system timed out after deactivating the number")
        return {"status": "deactivated", "ref": f"num-{row.id}"}

    def card_info(self, *, card_number: str) -> CardInfo:
        _fault("card_info")
        from closeout.cards.models import Card
        from closeout.closures.services import card_balances

        card = Card.objects.select_related("product").filter(number=card_number).first()
        if card is None:
            raise PermanentError("unknown card")
        balance, _ = card_balances(card)
        status = card.status
        if SimCardBlock.objects.filter(card_number=card_number).exists():
            status = "blocked"
        elif SimNumberDeactivation.objects.filter(iccid=card_number).exists():
            status = "deactivated"
        return CardInfo(number=card.number, status=status, balance=balance,
                        transaction_count=card.transaction_count)
