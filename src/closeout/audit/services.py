"""Append-only, hash-chained audit events."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction

from closeout.audit.models import AuditEvent, AuditHead
from closeout.common import clock

GENESIS = "0" * 64


def event_hash(*, seq, at, actor, action, subject, before, after, reason, data, prev_hash) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "before": before,
            "after": after,
            "reason": reason,
            "data": data,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _set_head_hash(cursor, digest: str) -> None:
    cursor.execute(f'UPDATE "{AuditHead._meta.db_table}" SET hash = %s WHERE id = 1', [digest])


def audit_record(
    *, actor: str, action: str, subject: str, before: str = "", after: str = "", reason: str = "", data=None
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (or a new one)."""
    from closeout.common.fastinsert import increment, insert_one

    data = data or {}
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # Taking the next number locks the head until commit: appends queue and the chain stays linear.
        seq, prev = increment(AuditHead, 1, "seq", 1, "hash")
        fields = dict(
            seq=seq, at=clock.now(), actor=actor, action=action, subject=subject, before=before,
            after=after, reason=reason, data=data, prev_hash=prev,
        )
        event = AuditEvent(hash=event_hash(**fields), **fields)
        insert_one(event)
        _set_head_hash(cursor, event.hash)
    return event


def audit_record_many(events: list[dict]) -> int:
    """Append many events (dicts of audit_record's arguments) under one lock of the chain head."""
    if not events:
        return 0
    from closeout.common.fastinsert import insert_rows

    columns = ("seq", "at", "actor", "action", "subject", "before", "after", "reason", "data", "prev_hash",
               "hash")
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        at = clock.now()
        rows = []
        seq, prev = head.seq, head.hash
        for event in events:
            seq += 1
            fields = dict(seq=seq, at=at, actor=event["actor"], action=event["action"], subject=event["subject"],
                          before=event.get("before", ""), after=event.get("after", ""),
                          reason=event.get("reason", ""), data=event.get("data") or {}, prev_hash=prev)
            prev = event_hash(**fields)
            rows.append((*fields.values(), prev))
        insert_rows(AuditEvent, columns, rows)
        head.seq, head.hash = seq, prev
        head.save(update_fields=["seq", "hash"])
    return len(events)


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"audit event #{self.seq}: {self.problem}"


def _recomputed(event: AuditEvent) -> str:
    return event_hash(
        seq=event.seq, at=event.at, actor=event.actor, action=event.action, subject=event.subject,
        before=event.before, after=event.after, reason=event.reason, data=event.data, prev_hash=event.prev_hash,
    )


def _broken_link(event: AuditEvent, previous: AuditEvent | None) -> ChainProblem:
    """Name the culprit when `event` does not point at the event before it.

    If `event` itself is intact and the event after it still links to it, the event before was
    changed and its hash recomputed: that one is named. Otherwise `event` was moved or replaced.
    """
    if previous is not None and _recomputed(event) == event.hash:
        following = AuditEvent.objects.filter(seq=event.seq + 1).first()
        if following is None or following.prev_hash == event.hash:
            return ChainProblem(previous.seq, f"changed and re-hashed (event #{event.seq} still points at "
                                              "its original hash)")
    return ChainProblem(event.seq, "does not follow the event before it (reordered or replaced)")


def audit_verify() -> ChainProblem | None:
    """Walk the chain in order and return the first tampered, missing or reordered event."""
    expected_prev = GENESIS
    expected_seq = 1
    last = None
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            return ChainProblem(expected_seq, "missing (deleted) event")
        if event.prev_hash != expected_prev:
            return _broken_link(event, last)
        if _recomputed(event) != event.hash:
            return ChainProblem(event.seq, "content was changed after it was written")
        expected_prev, expected_seq, last = event.hash, event.seq + 1, event
    head = AuditHead.objects.filter(id=1).first()
    last_seq = last.seq if last else 0
    if head is None:
        if last is not None:
            return ChainProblem(last_seq, "the chain head is missing (events after it may have been deleted)")
        return None
    if head.seq != last_seq:
        return ChainProblem(last_seq + 1, "missing (deleted) event at the end of the chain")
    if last is not None and head.hash != last.hash:
        return ChainProblem(last_seq, "replaced (the chain head records another hash)")
    return None
