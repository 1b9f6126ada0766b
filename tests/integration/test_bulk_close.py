"""Bulk closure: streaming intake with rejects, resume without duplicates, batched actions."""

from __future__ import annotations

import csv
import time

import pytest
from django.db.models import Sum

from closeout import cli
from closeout.audit.models import AuditEvent
from closeout.audit.services import audit_verify
from closeout.cards.models import Card
from closeout.closures import bulk, states
from closeout.closures.models import BulkBatch, BulkRun, ClosureCase, RefundApproval
from closeout.common.progress import Progress
from closeout.integrations.models import SimCardBlock, SimNumberDeactivation, SimRefund
from closeout.ledger import services as ledger
from closeout.ledger.models import Line, Posting
from tests.fixtures import card_number, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def write_csv(path, numbers, header=("card_number",)):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number in numbers:
            writer.writerow([number])
    return path


def rejects(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def run_batches_inline():
    """Drive every due batch through its actions the way the batch workflow does."""
    from closeout.integrations import registry

    for batch in BulkBatch.objects.order_by("id"):
        batch.refresh_from_db()
        bulk.batch_settle(batch_id=batch.id, workflow_id=batch.next_action_id)
        batch.refresh_from_db()
        items = bulk.batch_refund_items(batch_id=batch.id, workflow_id=batch.next_action_id)
        results = registry.port("payments").refund_batch(batch_key=batch.next_action_id, items=items) if items else {}
        bulk.batch_refund_record(batch_id=batch.id, workflow_id=batch.next_action_id,
                                 results={k: v.as_json() for k, v in results.items()})
        batch.refresh_from_db()
        items = bulk.batch_block_items(batch_id=batch.id, workflow_id=batch.next_action_id)
        results = registry.port("card_system").block_batch(batch_key=batch.next_action_id, items=items) if items else {}
        bulk.batch_blocked_record(batch_id=batch.id, workflow_id=batch.next_action_id, results=results)


def test_bad_rows_are_rejected_by_line_and_field_and_the_rest_close(make_card, tmp_path):
    good = [make_card("YKT", balance=1000 * i, days_old=2000) for i in range(1, 6)]
    closed_before = make_card("YKT")
    Card.objects.filter(id=closed_before.id).update(status="closed")
    path = write_csv(tmp_path / "dormant.csv",
                     [good[0].number, "12345", good[1].number, "8103000000000000", good[0].number,
                      closed_before.number, *[c.number for c in good[2:]]])

    summary = bulk.bulk_intake(path=path, reason="dormant 5 years", requester="operator:test", batch_size=2)

    assert (summary.lines, summary.created, summary.rejected) == (9, 5, 4)
    assert [(r["line"], r["field"]) for r in rejects(tmp_path / "dormant.rejects.csv")] == [
        ("3", "card_number"), ("5", "card_number"), ("6", "card_number"), ("7", "card_number")]
    assert ClosureCase.objects.filter(state=states.SUBMITTED, channel="bulk").count() == 5

    run_batches_inline()

    assert ClosureCase.objects.filter(state=states.CLOSED).count() == 5
    assert SimRefund.objects.count() == 5
    assert sorted(r.amount_minor for r in SimRefund.objects.all()) == [
        1000 * i + 2000 - max(500, 50 * i) for i in range(1, 6)]  # dormancy fee 5%, min ¥5
    assert SimCardBlock.objects.count() == 5
    assert Line.objects.aggregate(s=Sum("amount_minor"))["s"] == 0
    assert audit_verify() is None
    assert set(Card.objects.filter(id__in=[c.id for c in good]).values_list("status", flat=True)) == {"closed"}


def test_a_quote_that_never_closes_is_rejected_on_the_line_it_opens_and_the_rows_below_still_close(
        make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(4)]
    path = tmp_path / "d.csv"
    path.write_text(f"card_number,note\n{cards[0].number},a\n{cards[1].number},b\n"
                    f'"1234567890,c\n{cards[2].number},d\n{cards[3].number},e\n', encoding="utf-8")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2)

    assert (summary.lines, summary.created, summary.rejected) == (5, 4, 1)
    [reject] = rejects(tmp_path / "d.rejects.csv")
    assert (reject["line"], reject["field"], reject["card_number"]) == ("4", "card_number", "1234567890")  # not the other columns
    assert reject["message"].startswith("the quote that opens this field is never closed")
    assert ClosureCase.objects.filter(card__in=cards).count() == 4


def test_rejects_come_out_in_file_order_whichever_check_rejected_them(make_card, tmp_path):
    good = make_card("YKT", balance=500)
    closed = make_card("YKT")
    Card.objects.filter(id=closed.id).update(status="closed")
    unknown = card_number("9999")
    path = write_csv(tmp_path / "d.csv", [unknown, "12345", closed.number, good.number, unknown, "x"])

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=10)

    assert (summary.created, summary.rejected) == (1, 5)
    assert [(r["line"], r["message"]) for r in rejects(tmp_path / "d.rejects.csv")] == [
        ("2", "no card with this number"),
        ("3", "Card number must be 16 digits, or 19-20 digits for a SIM card."),
        ("4", "the card is closed"),
        ("6", "the card appears earlier in the file"),
        ("7", "Card number must be 16 digits, or 19-20 digits for a SIM card."),
    ]


def test_the_progress_bar_counts_data_rows_and_ends_with_the_summarys_count(make_card, tmp_path, capfd):
    cards = [make_card("YKT", balance=500) for _ in range(3)]
    path = tmp_path / "d.csv"
    path.write_text(f'card_number,note\n{cards[0].number},"two\nlines"\n\n{cards[1].number},x\n'
                    f"{cards[2].number},y\n\n", encoding="utf-8")

    assert cli.main(["bulk-close", str(path), "--reason", "dormant"]) == 0

    out, err = capfd.readouterr()
    assert out.startswith("3 rows read: created 3 closures")
    assert err.rstrip().rsplit("\r", 1)[-1].startswith("closing [" + "#" * 30 + "] 3/3 100.0%")


def test_the_final_progress_line_is_printed_once(make_card, tmp_path, capfd):
    path = write_csv(tmp_path / "d.csv", [make_card("YKT", balance=500).number for _ in range(3)])

    assert cli.main(["bulk-close", str(path), "--reason", "dormant"]) == 0

    _, err = capfd.readouterr()
    assert err.count("3/3 100.0%") == 1


def test_a_resumed_run_counts_only_the_rows_left_for_its_progress_bar(make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(5)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards])

    def stop(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2, progress=stop)
    expected, advanced = [], []
    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2,
                               expect=expected.append, progress=advanced.append)

    assert expected == [sum(advanced)] == [summary.lines] == [3]


def test_each_bulk_case_keeps_its_own_timeline_audit_trail_and_balanced_postings(make_card, tmp_path):
    cards = [make_card("YKT", balance=1000 * i, days_old=2000) for i in range(1, 6)]
    path = write_csv(tmp_path / "dormant.csv", [c.number for c in cards])
    bulk.bulk_intake(path=path, reason="dormant 5 years", requester="operator:test", batch_size=2)

    run_batches_inline()

    path_taken = [(states.DRAFT, states.SUBMITTED), (states.SUBMITTED, states.VERIFIED),
                  (states.VERIFIED, states.SETTLED), (states.SETTLED, states.REFUND_PENDING),
                  (states.REFUND_PENDING, states.REFUNDED), (states.REFUNDED, states.DEACTIVATING),
                  (states.DEACTIVATING, states.CLOSED)]
    for case in ClosureCase.objects.filter(channel="bulk"):
        assert case.state == states.CLOSED and case.closed_at is not None
        assert list(case.events.order_by("id").values_list("from_state", "to_state")) == path_taken
        assert list(AuditEvent.objects.filter(subject=case.reference, action="closure.transition")
                    .order_by("seq").values_list("before", "after")) == path_taken
        assert AuditEvent.objects.filter(subject=case.reference, action="certificate.issued").count() == 1
        assert list(AuditEvent.objects.filter(subject=f"card:{case.card_id}", action="card.status")
                    .order_by("seq").values_list("before", "after")) == [
            ("active", "closing"), ("closing", "blocked"), ("blocked", "closed")]
        postings = Posting.objects.filter(subject=case.reference)
        assert sorted(postings.values_list("key", flat=True)) == [f"{case.reference}:refund",
                                                                 f"{case.reference}:settle"]
        for posting in postings:
            assert posting.lines.aggregate(s=Sum("amount_minor"))["s"] == 0
        for code in (ledger.refunds_payable_account(case.reference), ledger.card_value_account(case.card_id),
                     ledger.card_deposit_account(case.card_id)):
            assert (Line.objects.filter(account__code=code).aggregate(s=Sum("amount_minor"))["s"] or 0) == 0
    versions = sorted(Card.objects.filter(id__in=[c.id for c in cards]).values_list("hotlist_version", flat=True))
    assert versions == list(range(versions[0], versions[0] + len(cards)))  # each card listed once, in turn
    assert audit_verify() is None


def _interrupted_after(batches: int):
    """A progress callback that stops the run (as Ctrl-C would) after `batches` batches."""
    calls = []

    def progress(n):
        calls.append(n)
        if len(calls) == batches:
            raise KeyboardInterrupt

    return progress


def test_an_interrupted_run_resumes_without_duplicates(make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(7)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards])
    with pytest.raises(KeyboardInterrupt):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3,
                         progress=_interrupted_after(2))
    assert ClosureCase.objects.count() == 6

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3)

    assert summary.resumed_after == 7  # header + 6 rows already done
    assert (summary.created, summary.rejected) == (1, 0)
    assert ClosureCase.objects.count() == 7
    assert BulkRun.objects.get().created_count == 7  # both invocations, not the last one only
    assert ClosureCase.objects.values("card").distinct().count() == 7


def test_a_run_interrupted_after_batches_of_rejects_only_resumes_to_the_end(make_card, tmp_path, monkeypatch,
                                                                         capsys):
    cards = [make_card("YKT", balance=500) for _ in range(8)]
    numbers = [c.number for c in cards]
    path = write_csv(tmp_path / "d.csv", ["not-a-card", *numbers[:5], "12345", *numbers[5:]])
    command = ["bulk-close", str(path), "--reason", "repro", "--batch-size", "1"]
    real_advance, advanced = Progress.advance, []

    def ctrl_c_after_five_rows(self, n):
        advanced.append(n)
        if len(advanced) == 5:
            raise KeyboardInterrupt
        real_advance(self, n)

    monkeypatch.setattr(Progress, "advance", ctrl_c_after_five_rows)
    assert cli.main(command) == 130
    monkeypatch.undo()
    assert ClosureCase.objects.count() == 4  # line 2 was a batch of its own, with no case

    assert cli.main(command) == 0
    assert cli.main(command) == 0  # a finished run reads nothing more

    out = [line for line in capsys.readouterr().out.splitlines() if "rows read" in line]
    assert out[0].startswith("5 rows read (resumed after line 6): created 4 closures in 4 batches, 1 rejected")
    assert out[1].startswith("0 rows read (resumed after line 11): created 0 closures")
    assert sorted(ClosureCase.objects.values_list("card_id", flat=True)) == sorted(c.id for c in cards)
    assert [r["line"] for r in rejects(tmp_path / "d.rejects.csv")] == ["2", "8"]
    run = BulkRun.objects.get()
    assert (run.created_count, run.rejected_count, run.finished_at is not None) == (8, 2, True)
    run_batches_inline()
    assert ClosureCase.objects.filter(state=states.CLOSED).count() == 8


def test_a_crash_before_a_batch_commits_neither_loses_nor_repeats_its_rejects(make_card, tmp_path, monkeypatch):
    good = [make_card("YKT", balance=500) for _ in range(4)]
    path = write_csv(tmp_path / "d.csv", [good[0].number, "1234", good[1].number,  # lines 2-4
                                          good[2].number, "5678", good[3].number])  # lines 5-7
    real_save, saves = BulkRun.save, []

    def power_cut_in_the_second_batch(self, *args, **kwargs):
        if "lines_done" in (kwargs.get("update_fields") or ()):
            saves.append(1)
            if len(saves) == 2:  # its rejects are on disk, its transaction is not committed
                raise SystemExit("power cut")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(BulkRun, "save", power_cut_in_the_second_batch)
    with pytest.raises(SystemExit):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3)
    monkeypatch.undo()
    assert ClosureCase.objects.count() == 2 and [r["line"] for r in rejects(tmp_path / "d.rejects.csv")] == ["3", "6"]

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3)

    assert summary.resumed_after == 4 and ClosureCase.objects.count() == 4
    assert [r["line"] for r in rejects(summary.rejects_path)] == ["3", "6"]  # once each


def test_a_header_naming_the_card_number_column_twice_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["8103000000000001"], header=("card_number", "note", "Card_Number"))
    with pytest.raises(bulk.BulkFileError, match="card_number column twice \\(columns 1 and 3\\)"):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")


def test_control_characters_in_a_rejected_value_do_not_reach_the_rejects_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("card_number\n81\x0003\x1b[2J\n", encoding="utf-8")
    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")
    raw = summary.rejects_path.read_text(encoding="utf-8")
    assert summary.rejected == 1 and "\x00" not in raw and "\x1b" not in raw and "81\ufffd03" in raw


def test_a_second_run_of_the_same_file_at_once_stops_the_first_without_miscounting(make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(7)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards])
    other = {}

    def another_run_after_the_first_batch(n):
        if not other:  # the second run starts while the first is between batches, with rejects of its own
            other["summary"] = bulk.bulk_intake(path=path, reason="dormant", requester="operator:b", batch_size=3,
                                                rejects_path=tmp_path / "b.rejects.csv")

    with pytest.raises(bulk.BulkRunBusy, match="another bulk-close of this file"):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:a", batch_size=3,
                         progress=another_run_after_the_first_batch)

    assert (other["summary"].created, other["summary"].rejected) == (4, 0)
    run = BulkRun.objects.get()
    assert (run.created_count, run.rejected_count) == (7, 0)
    assert ClosureCase.objects.count() == 7 == ClosureCase.objects.values("card").distinct().count()
    rejects = (tmp_path / "d.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rejects == ["line,card_number,field,message"]


def test_a_second_run_of_the_same_file_at_once_is_refused_and_leaves_the_first_runs_rejects_alone(
        make_card, tmp_path, capsys):
    cards = [make_card("YKT", balance=500) for _ in range(4)]
    path = write_csv(tmp_path / "d.csv", ["bad-1", cards[0].number, cards[1].number,  # lines 2-4
                                          "bad-5", cards[2].number, cards[3].number])  # lines 5-7
    rejects_file = tmp_path / "d.rejects.csv"
    seen = {}

    def another_run_after_the_first_batch(n):
        if not seen:
            seen["before"] = rejects_file.read_bytes()
            seen["exit"] = cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "3"])
            seen["after"] = rejects_file.read_bytes()

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:a", batch_size=3,
                               progress=another_run_after_the_first_batch)

    [error] = capsys.readouterr().err.splitlines()
    assert seen["exit"] == 2 and "another bulk-close is running" in error and str(rejects_file) in error
    assert seen["after"] == seen["before"] != b""
    assert (summary.created, summary.rejected) == (4, 2)
    assert [r["line"] for r in rejects(rejects_file)] == ["2", "5"]  # the first run's file holds both
    assert BulkRun.objects.get().rejected_count == 2 and ClosureCase.objects.count() == 4


def _interrupted_run_with_rejects(make_card, tmp_path):
    """A file whose first run stopped after two batches (lines 2-7), which rejected lines 3, 4 and 7."""
    cards = [make_card("YKT", balance=500) for _ in range(5)]
    closed = make_card("YKT")
    Card.objects.filter(id=closed.id).update(status="closed")
    path = write_csv(tmp_path / "d.csv", [cards[0].number, "12345", closed.number, cards[1].number,  # lines 2-5
                                          cards[2].number, cards[0].number,  # lines 6-7: line 7 repeats line 2
                                          cards[3].number, "bad", cards[4].number])  # lines 8-10
    with pytest.raises(KeyboardInterrupt):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3,
                         progress=_interrupted_after(2))
    return path, tmp_path / "d.rejects.csv"


def test_a_resumed_run_whose_rejects_file_was_deleted_writes_the_earlier_rejects_back(make_card, tmp_path, capsys):
    path, rejects_file = _interrupted_run_with_rejects(make_card, tmp_path)
    before = rejects_file.read_text(encoding="utf-8")
    rejects_file.unlink()

    assert cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "3"]) == 0

    assert rejects_file.read_text(encoding="utf-8").startswith(before)  # the header, then the same rejects
    assert [(r["line"], r["message"]) for r in rejects(rejects_file)] == [
        ("3", "Card number must be 16 digits, or 19-20 digits for a SIM card."), ("4", "the card is closed"),
        ("7", "the card appears earlier in the file"),
        ("9", "Card number must be 16 digits, or 19-20 digits for a SIM card.")]
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert f"{rejects_file} has none of the 3 rejects earlier runs wrote for lines 2 to 7" in warning
    assert BulkRun.objects.get().rejected_count == 4 and ClosureCase.objects.count() == 5


def test_a_resumed_run_whose_rejects_file_lost_some_rows_says_how_many_and_keeps_the_rest(make_card, tmp_path,
                                                                                          capsys):
    path, rejects_file = _interrupted_run_with_rejects(make_card, tmp_path)
    header, first, *_ = rejects_file.read_text(encoding="utf-8").splitlines(keepends=True)
    rejects_file.write_text(header + first, encoding="utf-8")  # someone struck out the rows they fixed

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=3,
                               warn=print)

    assert summary.rejects_missing == 2 and summary.rejects_found_again == 0
    assert "holds 1 of the 3 rejects earlier runs wrote for lines 2 to 7" in capsys.readouterr().out
    assert [r["line"] for r in rejects(rejects_file)] == ["3", "9"]


def test_a_number_with_bytes_that_are_not_utf8_is_rejected_as_such(make_card, tmp_path):
    card = make_card("YKT", balance=500)
    path = tmp_path / "latin.csv"
    path.write_bytes(b"card_number\r\n" + card.number.encode() + b"\r\n81031136\xe936000036\r\n")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (1, 1)
    [_, reject] = (tmp_path / "latin.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert reject == "3,,card_number,the card number is not valid UTF-8 text (save the file as UTF-8)"


def test_dry_run_writes_nothing(make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(3)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards] + ["bad"])

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", dry_run=True)

    assert (summary.created, summary.rejected) == (3, 1)
    assert summary.refund_total == {"CNY": 3 * 2500}
    assert ClosureCase.objects.count() == 0 and Posting.objects.filter(key__contains="settle").count() == 0
    assert set(Card.objects.values_list("status", flat=True)) == {"active"}


def test_a_reason_longer_than_the_run_keeps_is_refused_not_cut(make_card, tmp_path, capsys):
    path = write_csv(tmp_path / "d.csv", [make_card("YKT", balance=500).number])

    assert cli.main(["bulk-close", str(path), "--reason", "x" * 201]) == 2

    [error] = capsys.readouterr().err.splitlines()
    assert error == "closeout bulk-close: --reason is 201 characters long; at most 200 fit"
    assert not BulkRun.objects.exists() and not ClosureCase.objects.exists()


def test_a_row_without_a_card_number_is_rejected_as_missing_not_malformed(make_card, tmp_path):
    good = make_card("YKT", balance=500)
    path = write_csv(tmp_path / "d.csv", [], header=("note", "card_number"))
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerows([["a", good.number], ["only a note"], ["b", "  "]])

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (1, 2)
    assert [(r["line"], r["field"], r["message"]) for r in rejects(summary.rejects_path)] == [
        ("3", "card_number", "line 3 has no card_number field (the row ends after column 1)"),
        ("4", "card_number", "line 4: the card_number field is empty"),
    ]


def test_a_utf16_file_is_refused_as_not_utf8(make_card, tmp_path, capsys):
    path = tmp_path / "unicode.csv"
    path.write_text(f"card_number\n{make_card('YKT', balance=500).number}\n", encoding="utf-16")

    assert cli.main(["bulk-close", str(path), "--reason", "dormant"]) == 2

    [error] = capsys.readouterr().err.splitlines()
    assert error.endswith("the file is UTF-16 text; save it as UTF-8 (CSV UTF-8) and run it again")
    path.write_bytes(path.read_bytes()[2:])  # the same text without its byte order mark
    with pytest.raises(bulk.BulkFileError, match="line 1: the header is not UTF-8 text"):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")
    assert not ClosureCase.objects.exists()


def test_a_dry_run_reports_the_batches_the_real_run_creates(make_card, tmp_path, capsys):
    cards = [make_card("YKT", balance=500) for _ in range(5)]
    path = write_csv(tmp_path / "d.csv", ["bad", "12345", *[c.number for c in cards]])

    assert cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "2", "--dry-run"]) == 0
    assert cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "2"]) == 0

    dry, real = [line for line in capsys.readouterr().out.splitlines() if "rows read" in line]
    assert "would create 5 closures in 3 batches, 2 rejected" in dry
    assert "created 5 closures in 3 batches, 2 rejected" in real
    assert BulkBatch.objects.count() == 3


def test_a_dry_run_after_an_interrupted_run_tells_what_is_done_and_what_is_left(make_card, tmp_path, capsys):
    cards = [make_card("YKT", balance=500) for _ in range(5)]
    path = write_csv(tmp_path / "d.csv", ["bad", *[c.number for c in cards]])
    with pytest.raises(KeyboardInterrupt):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2,
                         progress=_interrupted_after(2))

    assert cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "2", "--dry-run"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "already done by an earlier run (lines up to 5): 3 closures in 2 batches, 1 rejected"
    assert out[1].startswith("2 rows left after line 5: would create 2 closures in 1 batches, 0 rejected")
    assert rejects(tmp_path / "d.dry-run.rejects.csv") == []
    assert ClosureCase.objects.count() == 3 and BulkRun.objects.get().lines_done == 5


def test_a_file_without_card_number_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["x"], header=("number",))
    with pytest.raises(bulk.BulkFileError, match="line 1"):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")


def test_cases_needing_something_special_leave_the_batch(make_card, tmp_path):
    plain = make_card("YKT", balance=500)
    indebted = make_card("YKT", balance=100, charges=[("overdraft", 9000)])
    large = make_card("YKT", balance=90000)
    bound = make_card("YKT", balance=500, bindings=["maps-app"])
    path = write_csv(tmp_path / "d.csv", [c.number for c in (plain, indebted, large, bound)])
    bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    run_batches_inline()

    state = {c.card_id: c for c in ClosureCase.objects.all()}
    assert state[plain.id].state == states.CLOSED
    assert state[indebted.id].state == states.VERIFIED and state[indebted.id].next_action == "settle"
    assert state[large.id].state == states.REFUND_PENDING
    assert RefundApproval.objects.filter(case=state[large.id]).exists()
    assert state[bound.id].state == states.UNBINDING and state[bound.id].next_action == "unbind"
    assert SimRefund.objects.count() == 2


def test_bulk_cases_close_through_the_batch_workflows(dbos_worker, make_card, tmp_path):
    cards = [make_card("YKT", balance=700) for _ in range(5)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards])
    bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2)

    wait_for(lambda: ClosureCase.objects.filter(state=states.CLOSED).count() == 5, timeout=60)

    assert SimRefund.objects.count() == 5
    assert BulkBatch.objects.filter(done_at__isnull=True).count() == 0


def test_a_dry_run_keeps_its_rejects_apart_from_an_interrupted_real_runs(make_card, tmp_path):
    cards = [make_card("YKT", balance=500) for _ in range(2)]
    path = write_csv(tmp_path / "d.csv", [c.number for c in cards] + ["bad"])
    real_rejects = tmp_path / "d.rejects.csv"
    real_rejects.write_text("line,card_number,field,message\n9,x,card_number,from the real run\n")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", dry_run=True)

    assert real_rejects.read_text().endswith("from the real run\n")
    assert summary.rejects_path == tmp_path / "d.dry-run.rejects.csv"
    assert [(r["line"], r["field"]) for r in rejects(summary.rejects_path)] == [("4", "card_number")]


def test_sim_and_esim_cards_take_the_one_case_path_not_the_batch(make_card, tmp_path):
    plain = make_card("YKT", balance=500)
    sim = make_card("TSIM", balance=0, plan_days_left=10)
    esim = make_card("ESIM", balance=0, plan_days_left=20, physical=False)
    path = write_csv(tmp_path / "d.csv", [plain.number, sim.number, esim.number])

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")
    run_batches_inline()

    assert (summary.created, summary.one_case, summary.rejected) == (3, 2, 0)
    assert BulkRun.objects.get().created_count == 3
    case = {c.card_id: c for c in ClosureCase.objects.all()}
    assert case[plain.id].state == states.CLOSED
    for card in (sim, esim):
        assert case[card.id].bulk_batch_id is None and case[card.id].channel == "bulk"
        assert (case[card.id].state, case[card.id].next_action) == (states.SUBMITTED, "verify")
    assert list(SimCardBlock.objects.values_list("card_number", flat=True)) == [plain.number]
    assert Card.objects.get(id=sim.id).status == "closing"


def test_a_resumed_run_rejects_a_sim_card_it_already_took_as_a_repeat(make_card, tmp_path):
    sim = make_card("TSIM", balance=0, plan_days_left=10)
    path = write_csv(tmp_path / "d.csv", [sim.number, make_card("YKT").number, sim.number])

    def stop_after_one_batch(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2,
                         progress=stop_after_one_batch)
    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test", batch_size=2)

    assert (summary.created, summary.rejected) == (0, 1)
    assert rejects(tmp_path / "d.rejects.csv")[-1]["message"] == "the card appears earlier in the file"


def test_sim_cards_of_a_bulk_file_deactivate_their_number_through_the_worker(dbos_worker, make_card, tmp_path):
    plain = make_card("YKT", balance=700)
    sim = make_card("TSIM", balance=0, plan_days_left=10)
    path = write_csv(tmp_path / "d.csv", [plain.number, sim.number])
    bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    wait_for(lambda: ClosureCase.objects.filter(state=states.CLOSED).count() == 2, timeout=60)

    assert SimNumberDeactivation.objects.filter(iccid=sim.number).count() == 1
    assert list(SimCardBlock.objects.values_list("card_number", flat=True)) == [plain.number]
    # Dormant cards' holders are told nothing by either path: no receipt, no status notices.
    from closeout.notifications.models import Notice

    assert not Notice.objects.exists()


def test_bulk_refunds_name_the_cards_original_payment(make_card, tmp_path):
    paid_by_card = make_card("YKT", balance=500)
    older_case = make_card("YKT", balance=600)
    unknown = make_card("YKT", balance=700)
    Card.objects.filter(id__in=[paid_by_card.id, older_case.id]).update(original_payment_ref="pi_original")
    path = write_csv(tmp_path / "d.csv", [c.number for c in (paid_by_card, older_case, unknown)])
    bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")
    ClosureCase.objects.filter(card=older_case).update(refund_destination={"type": "original"})  # taken in before
    batch = BulkBatch.objects.get()
    bulk.batch_settle(batch_id=batch.id, workflow_id=batch.next_action_id)
    batch.refresh_from_db()

    items = bulk.batch_refund_items(batch_id=batch.id, workflow_id=batch.next_action_id)

    reference = dict(ClosureCase.objects.values_list("card_id", "reference"))
    destination = {i["idempotency_key"]: i["destination"] for i in items}
    assert destination[f"{reference[paid_by_card.id]}:refund"] == {"type": "original", "payment_ref": "pi_original"}
    assert destination[f"{reference[older_case.id]}:refund"] == {"type": "original", "payment_ref": "pi_original"}
    assert destination[f"{reference[unknown.id]}:refund"] == {"type": "original"}
    assert ClosureCase.objects.get(card=paid_by_card).refund_destination["payment_ref"] == "pi_original"


def test_a_card_the_card_system_refuses_to_block_goes_to_staff_and_the_rest_close(make_card, tmp_path):
    from closeout.integrations import registry

    cards = [make_card("YKT", balance=500) for _ in range(3)]
    bulk.bulk_intake(path=write_csv(tmp_path / "d.csv", [c.number for c in cards]), reason="dormant",
                     requester="operator:test")
    batch = BulkBatch.objects.get()
    bulk.batch_settle(batch_id=batch.id, workflow_id=batch.next_action_id)
    batch.refresh_from_db()
    items = bulk.batch_refund_items(batch_id=batch.id, workflow_id=batch.next_action_id)
    paid = registry.port("payments").refund_batch(batch_key=batch.next_action_id, items=items)
    bulk.batch_refund_record(batch_id=batch.id, workflow_id=batch.next_action_id,
                             results={k: v.as_json() for k, v in paid.items()})
    batch.refresh_from_db()
    reference = dict(ClosureCase.objects.values_list("card_id", "reference"))

    bulk.batch_blocked_record(batch_id=batch.id, workflow_id=batch.next_action_id, results={
        f"{reference[cards[0].id]}:deactivate": {"status": "blocked"},
        f"{reference[cards[1].id]}:deactivate": {"status": "failed", "error": "card system: answered 404"}})

    state = {c.card_id: c for c in ClosureCase.objects.all()}
    assert state[cards[0].id].state == states.CLOSED
    assert state[cards[1].id].state == states.FAILED and "answered 404" in state[cards[1].id].attention_reason
    assert state[cards[2].id].state == states.FAILED and "no answer" in state[cards[2].id].attention_reason
    assert Card.objects.get(id=cards[1].id).status == "closing"


def test_a_slow_payment_provider_holds_up_only_the_refund_files(dbos_worker, make_card, tmp_path, settings):
    from closeout.closures import services
    from closeout.integrations.models import SimFault

    settings.CLOSEOUT_SIM_LATENCY_SEC = 10
    slow = SimFault.objects.create(system="payments", operation="refund_batch", mode="latency", remaining=2)
    first = [make_card("YKT", balance=700) for _ in range(4)]
    bulk.bulk_intake(path=write_csv(tmp_path / "first.csv", [c.number for c in first]), reason="dormant",
                     requester="operator:test", batch_size=2)
    wait_for(lambda: SimFault.objects.get(id=slow.id).remaining < 2, timeout=10)
    time.sleep(0.5)

    # While the provider sits on a refund file, the batches of the next run still settle ...
    later = [make_card("YKT", balance=500) for _ in range(4)]
    bulk.bulk_intake(path=write_csv(tmp_path / "later.csv", [c.number for c in later]), reason="dormant",
                     requester="operator:test", batch_size=2)
    wait_for(lambda: BulkBatch.objects.count() == 4
             and not BulkBatch.objects.filter(next_action="bulk_settle").exists(), timeout=5)
    # ... and a customer's own closure is refunded and closed on the single-case queues.
    own = services.closure_request(card=make_card("YKT", balance=300), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=own.reference).state == states.CLOSED, timeout=8)
    assert not ClosureCase.objects.filter(card__in=first, state=states.CLOSED).exists()

    wait_for(lambda: ClosureCase.objects.filter(state=states.CLOSED).count() == 9, timeout=90)
    assert SimRefund.objects.count() == 9


@pytest.mark.parametrize("header", ["Card Number", " CARD_NUMBER ", "card-number", "CardNumber"])
def test_the_card_number_column_may_be_named_as_people_write_it(make_card, tmp_path, header):
    card = make_card("YKT", balance=500)
    path = tmp_path / "d.csv"
    path.write_text(f"Note,{header}\ndormant,{card.number}\n", encoding="utf-8")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (1, 0)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_file_separated_by_semicolons_or_tabs_is_read_by_its_columns(make_card, tmp_path, delimiter):
    cards = [make_card("YKT", balance=500) for _ in range(2)]
    path = tmp_path / "d.csv"
    path.write_text(f"Note{delimiter}Card Number\n"
                    f"dormant, since 2019{delimiter}{cards[0].number}\n"
                    f"x{delimiter}12345\n"
                    f'"two{delimiter}lines\nhere"{delimiter}{cards[1].number}\n', encoding="utf-8")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (2, 1)
    assert [(r["line"], r["card_number"]) for r in rejects(summary.rejects_path)] == [("3", "12345")]


@pytest.mark.parametrize("first_line,found", [
    ("Card No,Amount", "found: Card No, Amount"),
    ("卡号;金额", "found: 卡号, 金额"),
    ("8103000000000001", "found: 8103000000000001); the first line holds data: add a header line"),
])
def test_a_header_without_a_card_number_column_names_the_columns_it_has(tmp_path, capsys, first_line, found):
    path = tmp_path / "d.csv"
    path.write_text(f"{first_line}\n8103000000000001\n", encoding="utf-8")
    before = {p.name for p in tmp_path.iterdir()}

    assert cli.main(["bulk-close", str(path), "--reason", "dormant"]) == 2

    [error] = capsys.readouterr().err.splitlines()
    assert "line 1: the header must have a card_number column" in error and found in error, error
    assert {p.name for p in tmp_path.iterdir()} == before and not BulkRun.objects.exists()


def test_a_number_a_spreadsheet_turned_into_scientific_notation_is_rejected_as_such(make_card, tmp_path):
    card = make_card("YKT", balance=500)
    path = write_csv(tmp_path / "d.csv", ["8.10105783086271E+15", card.number, "8,10105783086271e15"])

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (1, 2)
    first, second = rejects(summary.rejects_path)
    assert (first["line"], first["field"], first["card_number"]) == ("2", "card_number", "8.10105783086271E+15")
    assert first["message"].startswith("a spreadsheet turned the card number into scientific notation")
    assert "column formatted as text" in first["message"] and second["line"] == "4"


def test_interrupting_a_dry_run_does_not_offer_to_resume_it(make_card, tmp_path, monkeypatch, capsys):
    path = write_csv(tmp_path / "d.csv", [make_card("YKT", balance=500).number for _ in range(3)])

    def ctrl_c(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "advance", ctrl_c)

    assert cli.main(["bulk-close", str(path), "--reason", "dormant", "--batch-size", "1", "--dry-run"]) == 130

    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "resume" not in error and "the dry run changed nothing" in error


def test_the_summary_counts_the_closures_that_wait_for_a_payment_and_says_how_to_list_them(make_card, tmp_path,
                                                                                          capsys):
    plain = make_card("YKT", balance=500)
    indebted = [make_card("YKT", balance=100, charges=[("overdraft", 9000)]) for _ in range(2)]
    path = write_csv(tmp_path / "d.csv", [plain.number, *[c.number for c in indebted]])
    command = ["bulk-close", str(path), "--reason", "dormant 3 years"]

    assert cli.main([*command, "--dry-run"]) == 0
    assert "2 of them would wait for a payment or a waiver" in capsys.readouterr().out
    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "2 closures of this file wait for a payment or a waiver" in out
    assert f"list them with: closeout bulk-close {path} --reason 'dormant 3 years' --waiting" in out
    run_batches_inline()

    assert cli.main([*command, "--waiting"]) == 0

    listed = capsys.readouterr().out.splitlines()
    references = sorted(ClosureCase.objects.filter(card__in=indebted).values_list("reference", flat=True))
    assert [line.split()[0] for line in listed[:-1]] == references
    assert all("owes CNY 69.00  verified" in line and plain.number[-4:] not in line for line in listed[:-1])
    assert listed[-1].startswith("2 closures wait for a payment or a waiver")
