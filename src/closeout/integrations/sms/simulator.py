"""An SMS gateway that keeps what it was asked to send, honours idempotency keys and plays
scripted faults: `error_5xx` (nothing sent), `timeout` (sent, answer lost), `decline` (refused)."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from closeout.common import clock
from closeout.identity import documents, vault
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.faults import take_fault
from closeout.integrations.sms.models import SimSmsMessage
from closeout.integrations.sms.port import SmsResult


class SimulatedSmsGateway:
    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult:
        mode = take_fault("sms", "send")
        if mode == "error_5xx":
            raise TransientError("SMS gateway answered 503")
        if mode == "decline":
            raise PermanentError("SMS gateway refused the number")
        try:
            number = documents.normalize_phone(to)
        except documents.InvalidDocument:
            raise PermanentError("not a phone number")
        with transaction.atomic():
            row = SimSmsMessage.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if row is not None:
                row.request_count += 1
                row.save(update_fields=["request_count"])
            else:
                try:
                    with transaction.atomic():
                        row = SimSmsMessage.objects.create(
                            idempotency_key=idempotency_key, message_ref="sm_" + secrets.token_hex(8),
                            to_masked=documents.mask_phone(number), to_hash=vault.lookup_hash("phone", number),
                            body=body, status="accepted", created_at=clock.now(),
                        )
                except IntegrityError:
                    raise TransientError("concurrent request with the same idempotency key")
        if mode in ("timeout", "lost_response"):
            raise TransientError("SMS gateway timed out after accepting the message")
        return SmsResult(status=row.status, message_ref=row.message_ref)
