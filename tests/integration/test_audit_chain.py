"""`closeout audit verify` finds every edited, deleted or reordered audit row and names the first."""

from __future__ import annotations

import pytest

from closeout import cli
from closeout.audit.models import AuditEvent, AuditHead
from closeout.audit.services import audit_record, audit_seal, audit_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain():
    for i in range(1, 9):
        audit_record(actor="staff:1", action="closure.transition", subject=f"CL-2026-{i:06d}", before="submitted",
                     after="verified", reason=f"step {i}", data={"n": i})
    assert audit_seal() == 8
    return list(AuditEvent.objects.order_by("seq"))


def _verify_cli(capsys) -> tuple[int, str]:
    code = cli.main(["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_untouched_chain_verifies(chain, capsys):
    assert audit_verify() is None
    assert _verify_cli(capsys) == (0, "audit chain intact\n")


@pytest.mark.parametrize("field,value", [
    ("reason", "nothing happened"), ("actor", "staff:2"), ("after", "closed"), ("data", {"n": 999}),
    ("subject", "CL-2026-999999"),
])
def test_an_edited_row_is_named(chain, capsys, field, value):
    AuditEvent.objects.filter(seq=4).update(**{field: value})
    problem = audit_verify()
    assert problem.seq == 4 and "changed" in problem.problem
    code, output = _verify_cli(capsys)
    assert code == 1 and "#4" in output


def test_an_edited_time_is_detected(chain):
    event = chain[2]
    AuditEvent.objects.filter(seq=3).update(at=event.at.replace(year=event.at.year - 1))
    assert audit_verify().seq == 3


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(chain):
    """A forger who rehashes the row they changed is caught by the row after it."""
    from closeout.audit.services import event_hash

    event = chain[4]
    forged = event_hash(seq=event.seq, at=event.at, actor=event.actor, action=event.action, subject=event.subject,
                        before=event.before, after=event.after, reason="forged", data=event.data,
                        prev_hash=event.prev_hash)
    AuditEvent.objects.filter(seq=5).update(reason="forged", hash=forged)
    problem = audit_verify()
    assert problem.seq == 5 and "re-hashed" in problem.problem


@pytest.mark.parametrize("deleted,named", [(1, 1), (4, 4), ([3, 4, 5], 3)])
def test_a_deleted_row_is_named(chain, capsys, deleted, named):
    AuditEvent.objects.filter(seq__in=deleted if isinstance(deleted, list) else [deleted]).delete()
    problem = audit_verify()
    assert problem.seq == named and "missing" in problem.problem
    code, output = _verify_cli(capsys)
    assert code == 1 and f"#{named}" in output


def test_deleting_the_newest_rows_is_detected(chain):
    AuditEvent.objects.filter(seq__gte=7).delete()
    problem = audit_verify()
    assert problem.seq == 7 and "missing" in problem.problem


def test_replacing_the_newest_row_with_a_well_formed_one_is_detected(chain):
    from closeout.audit.services import event_hash

    newest = chain[-1]
    fields = dict(seq=newest.seq, at=newest.at, actor="attacker", action=newest.action, subject=newest.subject,
                  before="", after="withdrawn", reason="", data={}, prev_hash=newest.prev_hash)
    AuditEvent.objects.filter(seq=newest.seq).update(**fields, hash=event_hash(**fields))
    problem = audit_verify()
    assert problem.seq == newest.seq and "replaced" in problem.problem


def test_deleting_every_row_is_detected(chain):
    AuditEvent.objects.all().delete()
    assert audit_verify().seq == 1


def test_deleting_the_head_and_the_newest_row_is_detected(chain):
    AuditEvent.objects.filter(seq=8).delete()
    AuditHead.objects.all().delete()
    assert audit_verify() is not None


def _swap_seq(a: int, b: int) -> None:
    AuditEvent.objects.filter(seq=a).update(seq=-1)
    AuditEvent.objects.filter(seq=b).update(seq=a)
    AuditEvent.objects.filter(seq=-1).update(seq=b)


def test_two_swapped_rows_are_named(chain, capsys):
    _swap_seq(3, 6)
    problem = audit_verify()
    assert problem.seq == 3 and ("reordered" in problem.problem or "changed" in problem.problem)
    code, output = _verify_cli(capsys)
    assert code == 1 and "#3" in output


def test_rows_moved_by_their_ids_are_detected(chain):
    """Reordering physical rows (new ids, same content) keeps the chain, but swapping contents does not."""
    first, second = chain[1], chain[2]
    AuditEvent.objects.filter(id=first.id).update(reason=second.reason, data=second.data, subject=second.subject)
    AuditEvent.objects.filter(id=second.id).update(reason=first.reason, data=first.data, subject=first.subject)
    assert audit_verify().seq == 2


def test_a_well_formed_row_inserted_into_the_chain_is_detected(chain):
    """Renumber the later rows and slip a correctly hashed event in at #5: #6 no longer links."""
    from django.db.models import F

    from closeout.audit.services import event_hash

    AuditEvent.objects.filter(seq__gte=5).update(seq=F("seq") + 100)
    AuditEvent.objects.filter(seq__gte=105).update(seq=F("seq") - 99)
    before = chain[3]
    fields = dict(seq=5, at=before.at, actor="attacker", action="closure.transition", subject="CL-2026-000004",
                  before="", after="closed", reason="", data={}, prev_hash=before.hash)
    AuditEvent.objects.create(hash=event_hash(**fields), **fields)
    problem = audit_verify()
    assert problem.seq == 6 and "does not follow" in problem.problem


def test_the_real_closure_history_verifies_and_a_changed_transition_is_named(make_card):
    """A whole closure writes a clean chain; rewriting one transition's target is found."""
    from tests.aftercare_support import close_card

    case = close_card(make_card("YKT", balance=900))
    assert audit_verify() is None
    closed = AuditEvent.objects.get(subject=case.reference, after="closed")
    AuditEvent.objects.filter(id=closed.id).update(after="withdrawn")
    assert audit_verify().seq == closed.seq


def test_events_are_chained_by_the_sealer_in_the_order_they_were_written():
    for i in range(3):
        audit_record(actor="system", action="closure.transition", subject=f"CL-2026-{i:06d}", reason=f"{i}")
    assert list(AuditEvent.objects.values_list("seq", "hash")) == [(None, "")] * 3

    assert audit_seal() == 3
    sealed = list(AuditEvent.objects.order_by("id"))
    assert [e.seq for e in sealed] == [1, 2, 3]
    assert [e.reason for e in sealed] == ["0", "1", "2"]
    assert sealed[1].prev_hash == sealed[0].hash and sealed[2].prev_hash == sealed[1].hash
    assert AuditHead.objects.get().hash == sealed[2].hash
    assert audit_seal() == 0
    assert audit_verify(seal_first=False) is None


def test_events_written_after_a_seal_and_in_bulk_continue_the_same_chain():
    from closeout.audit.services import audit_record_many

    audit_record(actor="system", action="a", subject="s1")
    audit_seal()
    audit_record(actor="system", action="b", subject="s2")  # waits for the next seal
    audit_record_many([{"actor": "system", "action": "c", "subject": "s3"}])  # chained at once

    assert audit_verify() is None
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == ["a", "c", "b"]
