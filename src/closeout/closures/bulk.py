"""Bulk closure of dormant cards: a streaming, resumable intake, then batched actions.

At this volume one workflow per card per action is far too slow, so a batch of cases moves
together: one transaction settles the batch in the ledger, one refund file pays it, one call
blocks its cards. Each case still keeps its own state, timeline, audit events and outcome; a case
that needs something special (a debt to pay, a second approver, a failed or pending refund, apps
to unbind) leaves the batch and continues on the ordinary one-case path.

The batch steps read plain rows rather than model instances, write with COPY and change states
with one set-based UPDATE per state: per case, only the pure work (quote, state-machine check,
audit hash, signature) runs in Python.
"""

from __future__ import annotations

import codecs
import csv
import errno
import fcntl
import hashlib
import itertools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TextIO

from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from closeout.audit.services import audit_record_many
from closeout.cards.models import Binding, Card, CardCharge
from closeout.catalog import rules
from closeout.catalog.models import Product
from closeout.certificates.services import certificate_issue_many
from closeout.closures import dispatch, services, states
from closeout.closures.models import (
    BulkBatch,
    BulkRun,
    CaseEvent,
    ClosureCase,
    Refund,
    RefundApproval,
)
from closeout.common import calendars, clock
from closeout.common.fastinsert import allocate_ids, among, insert_rows, update_by_ids, update_columns
from closeout.common.money import Money
from closeout.common.text import ascii_digits
from closeout.identity.documents import InvalidDocument, normalize_card_number, without_separators
from closeout.integrations.card_system.hotlist import hotlist_reserve
from closeout.ledger import services as ledger
from closeout.ledger.models import Account, Line, Posting
from closeout.suppression.services import suppression_add_for_cards

BATCH_WORKFLOW = "closeout.run_batch"
ACTOR = "system:bulk"


class BulkFileError(Exception):
    """The file cannot be read as a bulk-closure CSV (names the line and what is wrong)."""


class BulkRunBusy(BulkFileError):
    """Another `bulk-close` of the same file and reason moved on since this one last wrote."""


class BulkReasonTooLong(ValueError):
    """The reason does not fit the run and its cases; cutting it would record another reason."""


REASON_MAX_LENGTH = BulkRun._meta.get_field("reason").max_length


@dataclass
class Reject:
    line: int
    card_number: str
    field: str
    message: str


@dataclass
class IntakeSummary:
    lines: int = 0
    created: int = 0
    rejected: int = 0
    resumed_after: int = 0
    batches: int = 0
    done_created: int = 0  # by earlier runs of the same file and reason, up to line `resumed_after`
    done_rejected: int = 0
    done_batches: int = 0
    refund_total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dry_run: bool = False
    one_case: int = 0  # of `created`: SIM and eSIM cards, which go the one-case path
    rejects_path: Path | None = None
    # Cases that owe more than their refund covers and wait for a payment or a waiver: for a run,
    # all of the file's that still do; for a dry run, those it would open.
    waiting: int = 0
    rejects_missing: int = 0  # rejects of earlier runs the rejects file no longer holds
    rejects_found_again: int = 0  # of those, how many this run wrote back


# --- plain rows --------------------------------------------------------------------------------

CARD_COLUMNS = ("id", "number", "status", "holder_id", "product_id", "issued_at", "last_used_at",
                "transaction_count", "plan_price_minor", "plan_starts_at", "plan_ends_at", "plan_data_mb",
                "plan_data_used_mb", "hotlist_version", "original_payment_ref")
STATUS_COLUMNS = ("id", "status", "product_id", "hotlist_version")  # enough to block and close a card
CASE_COLUMNS = ("id", "reference", "state", "card_id", "requester", "quote", "refund_destination")


class _Card:
    """A card as a plain row with its product: what quoting, status changes, suppression and the
    hotlist read, without a model instance per card."""

    __slots__ = (*CARD_COLUMNS, "product")

    def __init__(self, row, product: Product, columns: tuple[str, ...] = CARD_COLUMNS):
        for name, value in zip(columns, row, strict=True):
            setattr(self, name, value)
        self.product = product


class _Case:
    """A bulk case as a plain row, with its card when the step needs it."""

    __slots__ = (*CASE_COLUMNS, "card")

    def __init__(self, row, card: _Card | None = None):
        for name, value in zip(CASE_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.card = card


def _products(ids) -> dict[int, Product]:
    return Product.objects.select_related("policy").in_bulk(set(ids))


def _batch_cases(batch: BulkBatch, state: str, *, card_columns: tuple[str, ...] = CARD_COLUMNS) -> list[_Case]:
    """The batch's cases in `state`, in id order, with the `card_columns` of their cards (none:
    no card), read in one query."""
    columns = CASE_COLUMNS + tuple(f"card__{c}" for c in card_columns)
    rows = list(ClosureCase.objects.filter(bulk_batch_id=batch.id, state=state).order_by("id").values_list(*columns))
    if not card_columns:
        return [_Case(row) for row in rows]
    n, product_at = len(CASE_COLUMNS), len(CASE_COLUMNS) + card_columns.index("product_id")
    products = _products(row[product_at] for row in rows)
    return [_Case(row[:n], _Card(row[n:], products[row[product_at]], card_columns)) for row in rows]


# --- intake ------------------------------------------------------------------------------------


def file_fingerprint(path: Path, reason: str) -> str:
    digest = hashlib.sha256(reason.encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class BadRow(str):
    """A row the CSV reader could not parse; its text is the reason, `field` the column at fault and
    `value` what the row holds as its card number, if anything."""

    field = "row"
    value = ""

    def __new__(cls, reason: str, *, field: str | None = None, value: str = "") -> BadRow:
        bad = super().__new__(cls, reason)
        if field is not None:
            bad.field = field
        bad.value = value
        return bad


class BadText(BadRow):
    """A card number holding bytes that are not UTF-8; its text is the reason."""

    field = "card_number"


def _column_name(names: list[str], at: int) -> str:
    """The header's name for column `at` (from 0), or its position where the header has none."""
    return names[at] if at < len(names) else f"column {at + 1}"


@dataclass(frozen=True)
class _Unreadable:
    """A record the CSV reader could not take: `error` is its complaint ("" for a quote that runs
    to the end of the file); `cells` are those of the record's first line read alone when a quoted
    field opening there does not close, None when the record is a single unreadable line."""

    error: str
    cells: list[str] | None = None


def _until_end(lines: Iterator[str], ended: list[bool]) -> Iterator[str]:
    yield from lines
    ended.append(True)


def _records(path: Path, delimiter: str = ",") -> Iterator[tuple[int, int, list[str] | _Unreadable]]:
    """Yield (first line, last line, cells) for every CSV record, the header included, streaming.

    The first line is where the record starts: a quoted field may hold line breaks. A quoted field
    that does not close comes out as an `_Unreadable` on its first line, and reading starts again on
    the line after it (the file is opened anew there), so that the lines below are rows of their own
    rather than text of that field.
    """
    skip, unclosed = 0, None  # lines before the next reader's first; the record to read alone first
    while True:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            lines = itertools.islice(handle, skip, None)
            if unclosed is not None:
                line = next(lines)
                skip += 1
                # Read alone, the line ends inside the quoted field, which is its last cell.
                yield skip, skip, _Unreadable(unclosed, next(csv.reader([line], delimiter=delimiter)))
            ended: list[bool] = []
            reader = csv.reader(_until_end(lines, ended), delimiter=delimiter)
            last = skip
            while True:
                first = last + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    last = skip + reader.line_num
                    if last == first:
                        yield first, last, _Unreadable(str(exc))
                        continue
                    unclosed = str(exc)  # a quoted field over several lines gave out
                    break
                last = skip + reader.line_num
                if ended:  # the record ended with the file, not a line: its quote never closed
                    unclosed = ""
                    break
                yield first, last, cells
        skip = first - 1


def _unclosed_reason(error: str, name: str) -> str:
    if error:
        return f"the quote that opens {name} does not close ({error})"
    return f"the quote that opens {name} is never closed"


def _bad_row(record: _Unreadable, names: list[str], column: int, delimiter: str) -> BadRow:
    if record.cells is None:
        return BadRow(f"the row cannot be read as CSV ({record.error})")
    at = len(record.cells) - 1
    # The field that never closes runs to the end of its line: its value holds the other columns.
    value = record.cells[column].rstrip("\r\n").split(delimiter, 1)[0] if column < len(record.cells) else ""
    # A quoted field opening on the row's first line that never closes (or not before the reader
    # gives up on it): the csv module would have taken every line below into that one field.
    return BadRow(_unclosed_reason(record.error, "this field") + "; the lines below were read as rows of their own",
                  field=_column_name(names, at), value=value)


def _row_like(delimiter: str) -> re.Pattern:
    """A line inside a quoted field that reads like a row of its own: a card number, then the next column."""
    return re.compile(rf"^\s*[0-9]{{8,19}}\s*({re.escape(delimiter)}|$)")


def _swallowed_row(cells: list[str], names: list[str], row_like: re.Pattern) -> BadRow | None:
    """A row over several lines whose quoted field holds lines that look like rows of their own: two
    stray quotes took those cards into one field, where they would be neither closed nor rejected."""
    for at, cell in enumerate(cells):
        if any(row_like.match(inner) for inner in cell.splitlines()[1:]):
            return BadRow("a quoted field here runs over lines that look like rows of their own (a card number "
                          "first): check the quotes; none of those cards is closed", field=_column_name(names, at))
    return None


_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
               (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _refuse_other_encodings(path: Path) -> None:
    """Spreadsheets save "Unicode text" as UTF-16: read as UTF-8 its header is noise, so say what
    the file is rather than that it lacks a card_number column.

    :raises BulkFileError: when the file starts with a UTF-16 or UTF-32 byte order mark.
    """
    with path.open("rb") as handle:
        start = handle.read(4)
    for bom, name in _OTHER_BOMS:
        if start.startswith(bom):
            raise BulkFileError(f"the file is {name} text; save it as UTF-8 (CSV UTF-8) and run it again")


def _missing_card_number(cells: list[str], column: int, name: str, line: int) -> BadRow | None:
    """A row with no card number to check: left out or blank is not the same mistake as a
    malformed number, and the person fixing the file needs to know which."""
    if column >= len(cells):
        return BadRow(f"line {line} has no {name} field (the row ends after column {len(cells)})", field=name)
    if not cells[column].strip():
        return BadRow(f"line {line}: the {name} field is empty", field=name)
    return None


# Spreadsheets in many locales save "CSV" with semicolons, and "text" exports use tabs.
DELIMITERS = (",", ";", "\t")
# What a spreadsheet makes of a long number in a cell formatted as a number: 8.10105783086271E+15.
_SCIENTIFIC = re.compile(r"[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]{1,3}")


def _is_card_number_column(name: str) -> bool:
    """`card_number` as people write it: `Card Number`, `CARD-NUMBER`, `cardnumber`."""
    return re.sub(r"[\s_-]+", "", name.strip().lower()) == "cardnumber"


def _first_line(path: Path) -> str:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return handle.readline()


def _header_cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _delimiter(path: Path) -> str:
    """The delimiter whose header has a card number column (a comma when none has)."""
    line = _first_line(path)
    for delimiter in DELIMITERS:
        if any(_is_card_number_column(cell) for cell in _header_cells(line, delimiter)):
            return delimiter
    return ","


def _no_card_number_column(path: Path) -> BulkFileError:
    """Say which columns the header has, split the way that finds the most of them, so that a
    header named otherwise (`card no`) or a first line of data reads as what it is."""
    line = _first_line(path)
    cells = max((_header_cells(line, d) for d in DELIMITERS), key=len)
    found = [cell.strip()[:40] for cell in cells if cell.strip()]
    listed = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
    hint = ""
    if found and ascii_digits(without_separators(found[0])):
        hint = "; the first line holds data: add a header line above it naming the card_number column"
    return BulkFileError(f"line 1: the header must have a card_number column (found: {listed or 'nothing'}){hint}")


def _header(path: Path) -> tuple[Iterator[tuple[int, int, list[str] | _Unreadable]], str, list[str], int]:
    """Read the header: return the records after it, the delimiter, the column names (lower case)
    and the card number column.

    :raises BulkFileError: when the file is not UTF-8 or the header cannot be read or has no
        card_number column, or has it twice.
    """
    _refuse_other_encodings(path)
    delimiter = _delimiter(path)
    records = _records(path, delimiter)
    _, _, header = next(records, (1, 1, []))
    if isinstance(header, _Unreadable):
        if header.cells is None:
            raise BulkFileError(f"line 1: the header cannot be read ({header.error})")
        name = f"column {len(header.cells)}"  # by position: the rest of the line may be anything
        raise BulkFileError(f"line 1: the header cannot be read ({_unclosed_reason(header.error, name)})")
    names = [h.strip().lower() for h in header]
    columns = [at for at, name in enumerate(names) if _is_card_number_column(name)]
    if not columns:
        if any("\ufffd" in name or "\x00" in name for name in names):
            raise BulkFileError("line 1: the header is not UTF-8 text; save the file as UTF-8 (CSV UTF-8)")
        raise _no_card_number_column(path)
    if len(columns) > 1:
        twice = " and ".join(str(at + 1) for at in columns)
        raise BulkFileError(f"line 1: the header has a card_number column twice (columns {twice}); keep one")
    return records, delimiter, names, columns[0]


def read_rows(path: Path, *, after_line: int = 0) -> Iterator[tuple[int, int, str]]:
    """Yield (line, last line, raw card number) one row at a time, never the whole file.

    `line` is the line the row starts on (what rejects name), `last` the one it ends on (what a
    resumed run reads after): they differ when a quoted field holds a line break. A row the CSV
    reader cannot parse (an oversized field, a quote that never closes) comes out as a `BadRow` and
    is rejected like any other bad row, as is a row without a card number or with one a spreadsheet
    turned into scientific notation; blank rows are skipped. Columns may be separated by commas,
    semicolons or tabs, and the card number column named in any case with spaces, hyphens or
    underscores (`Card Number`).

    :raises BulkFileError: when the file is not UTF-8 or the header cannot be read or has no
        card_number column.
    """
    records, delimiter, names, column = _header(path)
    row_like = _row_like(delimiter)
    for line, last, cells in records:
        if last <= after_line:
            continue
        if isinstance(cells, _Unreadable):
            yield line, last, _bad_row(cells, names, column, delimiter)
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if last > line and (swallowed := _swallowed_row(cells, names, row_like)):
            yield line, last, swallowed
            continue
        if missing := _missing_card_number(cells, column, names[column], line):
            yield line, last, missing
            continue
        value = cells[column]
        if "\ufffd" in value:  # what the decoder put in place of bytes that are not UTF-8
            yield line, last, BadText("the card number is not valid UTF-8 text (save the file as UTF-8)")
            continue
        if _SCIENTIFIC.fullmatch(value.strip()):
            yield line, last, BadRow(
                f"a spreadsheet turned the card number into scientific notation ({value.strip()}), which drops "
                "its last digits: take the numbers from their source again into a column formatted as text",
                field=names[column], value=value.strip())
            continue
        yield line, last, value


def count_rows(path: Path, *, after_line: int = 0) -> int:
    """Count the rows `read_rows` yields after `after_line`, by reading them the same way (streaming).

    :raises BulkFileError: when the header cannot be read or has no card_number column.
    """
    return sum(1 for _ in read_rows(path, after_line=after_line))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _cell(text: str) -> str:
    """Keep a rejected value from running as a spreadsheet formula when the rejects file is opened,
    and its control characters (a NUL, an escape) out of the file."""
    text = _CONTROL.sub("\ufffd", text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


REJECTS_HEADER = ("line", "card_number", "field", "message")


def _rejects_lock(path: Path) -> TextIO:
    """Open the rejects file for appending, unchanged, and hold it for this run alone until closed.

    A second `bulk-close` of the same file started while the first runs would otherwise cut the
    first's rejects and write its own among them; it is refused before it changes anything.

    :raises BulkRunBusy: when another bulk-close holds the file.
    """
    out = path.open("a", newline="", encoding="utf-8")
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        out.close()
        raise BulkRunBusy(f"another bulk-close is running and writing {path}; let it finish (or stop it), "
                          "then run this command again to resume where it stopped") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
            out.close()
            raise
        # A file system without locks: runs of one file still cannot both commit a batch.
    return out


def _rejects_cut(out: TextIO, path: Path, *, after_line: int) -> int:
    """Keep the header and the rejects of the lines a resumed run will not read again; return how
    many rejects that is.

    A batch's rejects are written before its transaction commits, so that a crash between the two
    cannot lose them; rejects of lines past `after_line` belong to a batch that never committed
    and are read again. Rejects are written in line order, so those kept are the start of the file,
    which is cut in place (streaming): the file stays the one this run holds.
    """
    end = kept = consumed = 0
    with path.open("rb") as source:

        def lines() -> Iterator[str]:
            nonlocal consumed
            for raw in source:
                consumed += len(raw)
                yield raw.decode("utf-8", errors="replace")

        try:
            for row in csv.reader(lines()):
                if row and row[0] != REJECTS_HEADER[0]:
                    if not (ascii_digits(row[0]) and int(row[0]) <= after_line):
                        break
                    kept += 1
                end = consumed
        except csv.Error:  # a row cut short by a crash: it belongs to the batch that did not commit
            pass
    out.flush()
    os.ftruncate(out.fileno(), end)
    return kept


def _rejects_found_again(path: Path, *, after_line: int, taken: set[int], batch_size: int) -> Iterator[Reject]:
    """The rejects of the lines up to `after_line` again, in line order, for a resumed run whose
    rejects file is gone.

    Which rows were rejected is certain: the run took the first row of each card in `taken` and
    rejected every other row it read. Their reasons are found the way the intake finds them; the
    reasons about a card (no such card, not active, closing already) as they stand now.
    """
    scratch, seen, pending = IntakeSummary(dry_run=True), set(), []

    def check() -> list[Reject]:
        with transaction.atomic():
            found = {r.line: r for r in _intake_batch(None, 0, pending, scratch, seen)}
        again = [found.get(line) or Reject(line, raw[:32], "card_number", "rejected by an earlier run, for a "
                                           "reason the card no longer has (it would be taken now)")
                 for line, raw in pending]
        pending.clear()
        return again

    for line, last, raw in read_rows(path):
        if last > after_line:
            break
        if not isinstance(raw, BadRow):
            try:
                key = _seen_key(normalize_card_number(raw))
            except InvalidDocument:
                key = None
            if key in taken and key not in seen:
                seen.add(key)  # the row the run took; a later row of the card is a repeat
                continue
        pending.append((line, raw))
        if len(pending) >= batch_size:
            yield from check()
    if pending:
        yield from check()


def _seen_key(card_number: str) -> int:
    # A million numbers held as ints take about half the memory of strings; the leading 1 keeps
    # leading zeros apart.
    return int("1" + card_number)


def _balances(card_ids: list[int]) -> dict[str, tuple[int, int]]:
    """Map each card account code to (account id, credit balance), in one query."""
    codes = [ledger.card_value_account(i) for i in card_ids] + [ledger.card_deposit_account(i) for i in card_ids]
    rows = (Line.objects.filter(among("account__code", codes)).values_list("account__code", "account_id")
            .annotate(total=Sum("amount_minor")))
    return {code: (account_id, -total) for code, account_id, total in rows}


def _quotes(cards: list[_Card], now,
            balances: dict[str, tuple[int, int]]) -> tuple[dict[int, rules.Quote], list[tuple[int, int]]]:
    """Quote many cards with one query besides the balances; also return the open charges as
    (charge id, card id)."""
    debts = defaultdict(list)
    charges = []
    for charge_id, card_id, code, amount, currency, reason in (
            CardCharge.objects.filter(among("card_id", [c.id for c in cards]), settled_at__isnull=True).order_by("id")
            .values_list("id", "card_id", "code", "amount_minor", "currency", "reason")):
        debts[card_id].append(rules.Outstanding(code=code, amount=Money(amount, currency), reason=reason))
        charges.append((charge_id, card_id))
    out = {}
    for card in cards:
        currency = card.product.currency
        facts = rules.QuoteFacts(
            balance=Money(balances.get(ledger.card_value_account(card.id), (0, 0))[1], currency),
            deposit=Money(balances.get(ledger.card_deposit_account(card.id), (0, 0))[1], currency),
            issued_at=card.issued_at, transaction_count=card.transaction_count, last_used_at=card.last_used_at,
            outstanding=tuple(debts[card.id]), plan=services.card_plan(card, now),
        )
        out[card.id] = rules.quote(policy=card.product.policy.rules, facts=facts, now=now)
    return out, charges


EVENT_COLUMNS = ("case_id", "key", "at", "actor", "from_state", "to_state", "note", "data")


def _steps(cases: list[_Case], steps: list[tuple[str, str]], *, key: str, now, events: list, audits: list) -> None:
    """Add a chain of transitions for many cases to `events` (timeline) and `audits`, each checked
    against the state machine; the caller writes them and updates the state column."""
    checked = set()
    for case in cases:
        current = case.state
        for target, note in steps:
            if (current, target) not in checked:
                states.check_transition(current, target)
                checked.add((current, target))
            events.append((case.id, f"{key}:{target}", now, ACTOR, current, target, note, {}))
            audits.append({"actor": ACTOR, "action": "closure.transition", "subject": case.reference,
                           "before": current, "after": target, "reason": note})
            current = target
        case.state = current


def _write(events: list, audits: list) -> None:
    insert_rows(CaseEvent, EVENT_COLUMNS, events)
    audit_record_many(audits)


def _set_state(cases: list[_Case], state: str, now, **extra) -> None:
    update_by_ids(ClosureCase, [c.id for c in cases], state=state, updated_at=now, **extra)


def _card_status(cards: list[_Card], status: str, reference_of: dict[int, str], audits: list) -> None:
    """Move many cards to `status` in memory and add their audit events; `_save_card_status` writes."""
    for card in cards:
        if card.status != status:
            audits.append({"actor": ACTOR, "action": "card.status", "subject": f"card:{card.id}",
                           "before": card.status, "after": status, "reason": reference_of[card.id]})
            card.status = status


def _save_card_status(cards: list[_Card], *, listed: frozenset[int] = frozenset()) -> None:
    """Write the cards' status, and the hotlist version of those `listed` just now: one UPDATE
    per status and kind, so that no card row is written twice."""
    by_status = defaultdict(list)
    for card in cards:
        by_status[card.status, card.id in listed].append(card)
    for (status, with_version), group in by_status.items():
        if with_version:
            update_columns(Card, ["hotlist_version"], [(c.id, c.hotlist_version) for c in group], status=status)
        else:
            update_by_ids(Card, [c.id for c in group], status=status)


def _hotlist(cards: list[_Card]) -> frozenset[int]:
    """Give the stored-value cards not listed yet the next hotlist versions (written with their
    status); return their ids."""
    fresh = [c for c in cards if c.product.kind == "stored_value" and c.hotlist_version is None]
    if not fresh:
        return frozenset()
    first = hotlist_reserve(len(fresh))
    for offset, card in enumerate(fresh):
        card.hotlist_version = first + offset
    return frozenset(c.id for c in fresh)


def _schedule_batch(batch: BulkBatch, action: str, now) -> None:
    runs = dict(batch.action_runs)
    runs[action] = runs.get(action, 0) + 1
    batch.action_runs = runs
    batch.next_action = action
    batch.next_action_id = f"{batch.key}:{action}" + (f":{runs[action]}" if runs[action] > 1 else "")
    batch.next_action_due_at = now
    batch.save()
    workflow_id = batch.next_action_id
    transaction.on_commit(lambda: dispatch.enqueue(str(batch.id), action, workflow_id, workflow_name=BATCH_WORKFLOW))


def _finish_batch(batch: BulkBatch, now) -> None:
    batch.next_action = batch.next_action_id = ""
    batch.next_action_due_at = None
    batch.done_at = now
    batch.save()


def _run_ref(run: BulkRun) -> str:
    """The channel_ref of the run's cases that took the one-case path (they have no batch)."""
    return f"bulk-run:{run.id}"


def _request_one_case(run: BulkRun, cards: list[tuple[int, _Card]]) -> list[Reject]:
    """Open SIM and eSIM cases one by one through `closure_request`, like the API does: their
    workflow deactivates the number, releases the eSIM profile and waits for its deletion notice,
    none of which the batch steps do."""
    rejects = []
    instances = Card.objects.select_related("product", "holder").in_bulk([c.id for _, c in cards])
    for line, card in cards:
        try:
            services.closure_request(card=instances[card.id], channel=ClosureCase.Channel.BULK, requester=run.requester,
                                     reason=run.reason, channel_ref=_run_ref(run))
        except services.UnableToCloseCard as exc:
            rejects.append(Reject(line, card.number, "card_number", str(exc)))
    return rejects


CASE_INSERT_COLUMNS = ("id", "reference", "card_id", "channel", "requester", "reason", "language",
                       "refund_destination", "quote", "state", "sla_due_date", "created_at", "updated_at",
                       "bulk_batch_id")


def _intake_batch(run: BulkRun | None, number: int, rows: list[tuple[int, str]], summary: IntakeSummary,
                  seen: set[int]) -> list[Reject]:
    now = clock.now()
    rejects, wanted = [], []
    for line, raw in rows:
        if isinstance(raw, BadRow):
            rejects.append(Reject(line, raw.value[:32], raw.field, str(raw)))
            continue
        try:
            card_number = normalize_card_number(raw)
        except InvalidDocument as exc:
            rejects.append(Reject(line, raw[:32], "card_number", exc.message))
            continue
        key = _seen_key(card_number)
        if key in seen:
            rejects.append(Reject(line, card_number, "card_number", "the card appears earlier in the file"))
            continue
        seen.add(key)
        wanted.append((line, card_number))
    found = list(Card.objects.select_for_update().filter(among("number", [n for _, n in wanted]))
                 .values_list(*CARD_COLUMNS))
    product_at = CARD_COLUMNS.index("product_id")
    products = _products(row[product_at] for row in found)
    cards = {row[1]: _Card(row, products[row[product_at]]) for row in found}
    open_cards = set(ClosureCase.objects.filter(among("card_id", [c.id for c in cards.values()]))
                     .exclude(state__in=states.TERMINAL).values_list("card_id", flat=True))
    accepted: list[_Card] = []
    one_case: list[tuple[int, _Card]] = []  # (line, card): not a stored-value card
    for line, card_number in wanted:
        card = cards.get(card_number)
        if card is None:
            rejects.append(Reject(line, card_number, "card_number", "no card with this number"))
        elif card.id in open_cards:
            rejects.append(Reject(line, card_number, "card_number", "the card already has an open closure"))
        elif card.status != Card.Status.ACTIVE:
            rejects.append(Reject(line, card_number, "card_number", f"the card is {card.status}"))
        elif card.product.kind != Product.Kind.STORED_VALUE:
            one_case.append((line, card))
        else:
            accepted.append(card)
    quoted = accepted + [c for _, c in one_case]
    quotes, _ = _quotes(quoted, now, _balances([c.id for c in quoted]))
    if run is not None and one_case:
        refused = _request_one_case(run, one_case)
        rejects.extend(refused)
        refused_lines = {r.line for r in refused}
        one_case = [(line, c) for line, c in one_case if line not in refused_lines]
    # Each check above rejects in line order; the file wants them in line order across checks too.
    # The batch's few sorted runs make this a merge.
    rejects.sort(key=attrgetter("line"))
    for card in accepted + [c for _, c in one_case]:
        summary.refund_total[card.product.currency] += quotes[card.id].refund.minor
        if run is None and quotes[card.id].uncovered.minor:  # a run counts its waiting cases at the end
            summary.waiting += 1
    summary.created += len(accepted) + len(one_case)
    summary.one_case += len(one_case)
    if not accepted:
        return rejects
    summary.batches += 1
    if run is None:
        return rejects

    batch = BulkBatch.objects.create(run=run, number=number, case_count=len(accepted), created_at=now)
    references = services.references_take(now, len(accepted))
    case_ids = allocate_ids(ClosureCase, len(accepted))
    cases = [_Case((case_id, reference, states.DRAFT, card.id, run.requester, quotes[card.id].as_json(),
                    services.original_destination(card.original_payment_ref)), card)
             for case_id, reference, card in zip(case_ids, references, accepted, strict=True)]
    events, audits = [], []
    _steps(cases, [(states.SUBMITTED, f"bulk closure: {run.reason}"[:300])], key="submit", now=now, events=events,
           audits=audits)
    sla = {}
    for card in accepted:
        key = (card.product.sla_working_days, card.product.calendar)
        if key not in sla:
            sla[key] = calendars.add_working_days(timezone.localdate(now), *key)
    insert_rows(ClosureCase, CASE_INSERT_COLUMNS, (
        (c.id, c.reference, c.card_id, ClosureCase.Channel.BULK, c.requester, run.reason, "en", c.refund_destination,
         c.quote, c.state, sla[(c.card.product.sla_working_days, c.card.product.calendar)], now, now, batch.id)
        for c in cases))
    by_card = {c.card_id: c.reference for c in cases}
    _card_status(accepted, Card.Status.CLOSING, by_card, audits)
    _write(events, audits)
    _save_card_status(accepted)
    suppression_add_for_cards(cards=accepted, reference_of=by_card)  # no marketing from now on
    _schedule_batch(batch, "bulk_settle", now)
    return rejects


def bulk_intake(*, path: Path, reason: str, requester: str, dry_run: bool = False, batch_size: int = 1000,
                rejects_path: Path | None = None, progress: Callable[[int], None] | None = None,
                expect: Callable[[int], None] | None = None, warn: Callable[[str], None] | None = None,
                ) -> IntakeSummary:
    """Create closure cases for every valid row of a CSV, in batches; resumable by file + reason.

    Stored-value cards are closed in batches; SIM and eSIM cards are requested one by one through
    `closure_request` (their number and profile need the one-case workflow) and counted in
    `one_case`. Bad rows go to the rejects CSV with their line and field (a dry run's to
    FILE.dry-run.rejects.csv, so that an interrupted run's file stays whole), in line order; nothing
    else is affected. `progress` is called with the number of rows of each batch done; `expect`, if
    given, once beforehand with the number of rows this call will read (`count_rows`: one more
    streaming pass over the file), so that a progress bar ends at exactly that count. A run resumes
    after the lines an earlier run of the same file and reason committed, and a dry run reads from
    there too; `done_*` say what the earlier runs did. A resumed run whose rejects file is gone
    writes the earlier rejects again; one whose file lost some of them keeps it as it is; `warn`
    is told either, before the run goes on.

    :raises BulkReasonTooLong: when the reason is longer than `REASON_MAX_LENGTH`.
    :raises BulkFileError: when the file is not a bulk-closure CSV.
    :raises BulkRunBusy: when another bulk-close writes the same rejects file, or moved the run on.
    """
    if len(reason) > REASON_MAX_LENGTH:
        raise BulkReasonTooLong(f"the reason is {len(reason)} characters long; at most {REASON_MAX_LENGTH} fit")
    if rejects_path is not None and rejects_path.resolve() == path.resolve():
        raise BulkFileError("the rejects file must not be the input file (it would overwrite it)")
    _header(path)[0].close()  # a file that is not a bulk-closure CSV leaves the rejects file alone
    summary = IntakeSummary(dry_run=dry_run)
    # A dry run keeps its rejects apart: the real run's file may belong to an interrupted run.
    rejects_path = rejects_path or path.with_name(path.stem + (".dry-run" if dry_run else "") + ".rejects.csv")
    summary.rejects_path = rejects_path
    with _rejects_lock(rejects_path) as out:
        run, earlier = _run_for(path, reason, requester, dry_run=dry_run)
        if earlier is not None and earlier.lines_done:
            _resume_from(earlier, summary)
        if expect:
            expect(count_rows(path, after_line=summary.resumed_after))
        seen: set[int] = {
            _seen_key(number) for number in _run_cases(earlier).values_list("card__number", flat=True).iterator()
        } if summary.resumed_after else set()
        if run is not None and summary.resumed_after:
            _rejects_resume(out, path, run, summary, seen=seen, batch_size=batch_size, warn=warn)
        else:
            out.flush()
            os.ftruncate(out.fileno(), 0)
        writer = csv.writer(out)
        if not os.fstat(out.fileno()).st_size:
            writer.writerow(REJECTS_HEADER)
        pending: list[tuple[int, str]] = []
        number = _last_batch_number(run) if run else 0
        done = last = summary.resumed_after

        def flush(through: int) -> None:
            """Take the pending rows, which end on line `through`."""
            nonlocal number, done
            if not pending:
                return
            number += 1
            created_before = summary.created
            with transaction.atomic():
                # Two runs of one file at once would each count the other's cards as rejects: the
                # run row is locked per batch, and a run that finds it moved on by another stops.
                if run is not None and _lines_done_locked(run) != done:
                    raise BulkRunBusy("another bulk-close of this file and reason is running or ran meanwhile; "
                                      "run the command again once it has stopped to resume")
                rejects = _intake_batch(run, number, pending, summary, seen)
                _rejects_write(writer, out, rejects)  # before the commit: a resume cuts what did not commit
                if run is not None:
                    run.lines_done = done = through
                    run.created_count += summary.created - created_before
                    run.rejected_count += len(rejects)
                    run.save(update_fields=["lines_done", "created_count", "rejected_count"])
            summary.rejected += len(rejects)
            if progress:
                progress(len(pending))
            pending.clear()

        for line, last, raw in read_rows(path, after_line=summary.resumed_after):
            summary.lines += 1
            pending.append((line, raw))
            if len(pending) >= batch_size:
                flush(last)
        flush(last)
    if run is not None:
        BulkRun.objects.filter(id=run.id).update(finished_at=clock.now())
        summary.waiting = waiting_cases(run).count()
    return summary


def _run_for(path: Path, reason: str, requester: str, *, dry_run: bool) -> tuple[BulkRun | None, BulkRun | None]:
    """The run this call continues (None for a dry run) and the earlier run of the file, if any."""
    fingerprint = file_fingerprint(path, reason)
    if dry_run:
        return None, BulkRun.objects.filter(fingerprint=fingerprint).first()
    run, _ = BulkRun.objects.get_or_create(
        fingerprint=fingerprint,
        defaults=dict(source=path.name[:255], reason=reason, requester=requester, created_at=clock.now()),
    )
    return run, run


def _run_cases(run: BulkRun):
    """The run's cases: in its batches, and those that took the one-case path."""
    return ClosureCase.objects.filter(Q(bulk_batch__run=run) | Q(channel=ClosureCase.Channel.BULK,
                                                                 channel_ref=_run_ref(run)))


def waiting_cases(run: BulkRun):
    """The run's open cases whose debts are more than their refund covers: they wait in `verified`
    (or will, once settled) for the holder's payment or a waiver, and no batch moves them on."""
    return _run_cases(run).filter(state__in=(states.SUBMITTED, states.VERIFIED), quote__uncovered__gt=0)


def bulk_run_find(*, path: Path, reason: str) -> BulkRun | None:
    """The run of this file with this reason, if one started."""
    return BulkRun.objects.filter(fingerprint=file_fingerprint(path, reason)).first()


def _rejects_write(writer, out: TextIO, rejects: list[Reject]) -> None:
    for r in rejects:
        writer.writerow([r.line, _cell(r.card_number), r.field, r.message])
    out.flush()
    os.fsync(out.fileno())


def _rejects_resume(out: TextIO, path: Path, run: BulkRun, summary: IntakeSummary, *, seen: set[int],
                    batch_size: int, warn: Callable[[str], None] | None) -> None:
    """Keep the rejects of the lines done; write them again when the file lost them all (deleted,
    emptied), and only say so when it lost some (someone may have struck out the rows they fixed)."""
    rejects_path = summary.rejects_path
    kept = _rejects_cut(out, rejects_path, after_line=summary.resumed_after)
    missing = run.rejected_count - kept
    if missing <= 0:
        return
    summary.rejects_missing = missing
    done = f"lines 2 to {summary.resumed_after}"
    if kept:
        if warn:
            warn(f"{rejects_path} holds {kept} of the {run.rejected_count} rejects earlier runs wrote for {done}; "
                 f"the other {missing} are not written again (move the file away and run the command again to "
                 "have them all found again)")
        return
    if warn:
        warn(f"{rejects_path} has none of the {run.rejected_count} rejects earlier runs wrote for {done}: "
             "reading those lines again to write them back (reasons about a card as they stand now)")
    out.flush()
    os.ftruncate(out.fileno(), 0)
    writer = csv.writer(out)
    writer.writerow(REJECTS_HEADER)
    again: list[Reject] = []
    for reject in _rejects_found_again(path, after_line=summary.resumed_after, taken=seen, batch_size=batch_size):
        again.append(reject)
        if len(again) >= batch_size:
            _rejects_write(writer, out, again)
            summary.rejects_found_again += len(again)
            again.clear()
    _rejects_write(writer, out, again)
    summary.rejects_found_again += len(again)


def _resume_from(run: BulkRun, summary: IntakeSummary) -> None:
    """Start after the lines the earlier runs committed, and keep what they did for the report."""
    summary.resumed_after = run.lines_done
    summary.done_created, summary.done_rejected = run.created_count, run.rejected_count
    summary.done_batches = run.batches.count()


def _last_batch_number(run: BulkRun) -> int:
    """The highest batch number the run has taken. A batch of rejects only (or of SIM cards only)
    uses up a number without a BulkBatch row, so counting the rows would hand out a taken number."""
    return run.batches.aggregate(last=Max("number"))["last"] or 0


def _lines_done_locked(run: BulkRun) -> int:
    return BulkRun.objects.select_for_update().values_list("lines_done", flat=True).get(id=run.id)


# --- batched actions ---------------------------------------------------------------------------


def _lock_batch(batch_id: int, workflow_id: str) -> BulkBatch | None:
    batch = BulkBatch.objects.select_for_update().get(id=batch_id)
    return batch if batch.next_action_id == workflow_id else None


def _accounts(currency_of: dict[str, str]) -> dict[str, int]:
    """Map account codes to ids, opening the accounts that do not exist yet."""
    if not currency_of:
        return {}
    found = dict(Account.objects.filter(among("code", currency_of)).values_list("code", "id"))
    missing = [code for code in currency_of if code not in found]
    if not missing:
        return found
    try:
        with transaction.atomic():  # a savepoint: another process may open one of them first
            ids = allocate_ids(Account, len(missing))
            insert_rows(Account, ("id", "code", "kind", "currency"),
                        ((i, c, ledger.account_kind(c), currency_of[c]) for i, c in zip(ids, missing, strict=True)))
        found.update(zip(missing, ids, strict=True))
    except IntegrityError:
        Account.objects.bulk_create([Account(code=c, kind=ledger.account_kind(c), currency=currency_of[c])
                                     for c in missing], ignore_conflicts=True, batch_size=2000)
        found.update(Account.objects.filter(code__in=missing).values_list("code", "id"))
    return found


def _post_many(postings: list[tuple[str, str, str, list[tuple[str, Money]]]], now,
               known: dict[str, int] | None = None) -> None:
    """Write many balanced postings (key, memo, subject, lines) with COPY-speed inserts; `known`
    maps account codes already looked up to their ids."""
    if not postings:
        return
    known = known or {}
    postings = [(k, m, s, ledger.check_balanced(lines)) for k, m, s, lines in postings]
    currency_of = {code: amount.currency for *_, lines in postings for code, amount in lines if code not in known}
    accounts = {**known, **_accounts(currency_of)}
    posting_ids = allocate_ids(Posting, len(postings))
    insert_rows(Posting, ("id", "key", "at", "memo", "subject"),
                ((pid, k, now, m, s) for pid, (k, m, s, _) in zip(posting_ids, postings, strict=True)))
    insert_rows(Line, ("posting_id", "account_id", "amount_minor", "currency"),
                ((pid, accounts[code], amount.minor, amount.currency)
                 for pid, (*_, lines) in zip(posting_ids, postings, strict=True) for code, amount in lines))


def batch_settle(*, batch_id: int, workflow_id: str) -> str:
    """Verify and settle every submitted case of the batch in one transaction."""
    with transaction.atomic():
        batch = _lock_batch(batch_id, workflow_id)
        if batch is None:
            return "skipped"
        now = clock.now()
        cases = _batch_cases(batch, states.SUBMITTED)
        balances = _balances([c.card_id for c in cases])
        quotes, charges = _quotes([c.card for c in cases], now, balances)
        settle, alone, approval, requoted = [], [], [], []
        for case in cases:
            quote = quotes[case.card_id]
            if case.quote != (as_json := quote.as_json()):  # a charge was paid or waived since the intake
                case.quote = as_json
                requoted.append(case)
            if quote.uncovered.minor:
                alone.append(case)
            elif services.approval_reason(case):
                approval.append(case)
            else:
                settle.append(case)
        for case in alone:  # debts to pay: the one-case path waits for the payment or a waiver
            locked = services._lock(case.reference)
            services._transition(locked, states.VERIFIED, actor=ACTOR, key=f"{workflow_id}:verified",
                                 note="identity and card checked")
        moving = settle + approval
        postings = []
        for case in moving:
            quote, card = quotes[case.card_id], case.card
            currency = quote.currency
            deposit_held = Money(balances.get(ledger.card_deposit_account(card.id), (0, 0))[1], currency)
            fees = Money(sum(f.amount.minor for f in quote.fees), currency)
            postings.append((f"{case.reference}:settle", "closure settlement", case.reference, [
                (ledger.card_value_account(card.id), quote.balance),
                (ledger.card_deposit_account(card.id), deposit_held),
                ("income:plans", quote.plan_refund),
                (ledger.FEE_INCOME, -fees),
                ("income:forfeited_deposits", -(deposit_held - quote.deposit)),
                (ledger.refunds_payable_account(case.reference), -quote.refund),
            ]))
        _post_many(postings, now, known={code: account_id for code, (account_id, _) in balances.items()})
        alone_cards = {c.card_id for c in alone}
        deducted = [charge_id for charge_id, card_id in charges if card_id not in alone_cards]
        if deducted:
            CardCharge.objects.filter(id__in=deducted, settled_at__isnull=True).update(
                settled_at=now, settled_how="deducted", settled_note="bulk closure")
        events, audits = [], []
        _steps(settle, [(states.VERIFIED, "identity and card checked"), (states.SETTLED, "fees settled"),
                        (states.REFUND_PENDING, "refund requested")], key=workflow_id, now=now, events=events,
               audits=audits)
        _steps(approval, [(states.VERIFIED, "identity and card checked"), (states.SETTLED, "fees settled"),
                          (states.REFUND_PENDING, "refund waits for approval")], key=workflow_id, now=now,
               events=events, audits=audits)
        _write(events, audits)
        for case in requoted:
            ClosureCase.objects.filter(id=case.id).update(quote=case.quote)
        _set_state(moving, states.REFUND_PENDING, now)
        RefundApproval.objects.bulk_create([
            RefundApproval(case_id=c.id, requested_by=c.requester, requested_at=now,
                           reason=services.approval_reason(c))
            for c in approval
        ])
        _schedule_batch(batch, "bulk_refund", now)
        return "settled"


def _refundable(batch: BulkBatch) -> list[_Case]:
    """Cases of the batch the refund file pays: not waiting for an approver, not refunded yet."""
    taken = set(RefundApproval.objects.filter(case__bulk_batch_id=batch.id).values_list("case_id", flat=True))
    taken.update(Refund.objects.filter(case__bulk_batch_id=batch.id).values_list("case_id", flat=True))
    return [c for c in _batch_cases(batch, states.REFUND_PENDING, card_columns=()) if c.id not in taken]


def batch_refund_items(*, batch_id: int, workflow_id: str) -> list[dict] | None:
    batch = BulkBatch.objects.get(id=batch_id)
    if batch.next_action_id != workflow_id:
        return None
    cases = _refundable(batch)
    payment_ref = dict(ClosureCase.objects.filter(among("id", [c.id for c in cases]))
                       .values_list("id", "card__original_payment_ref"))
    return [{"idempotency_key": f"{c.reference}:refund", "amount": c.quote["refund"], "currency": c.quote["currency"],
             "destination": _destination(c.refund_destination, payment_ref.get(c.id, ""))} for c in cases]


def _destination(destination: dict, payment_ref: str) -> dict:
    """A case taken in before the intake named the original payment gets it from its card."""
    if destination.get("type", "original") == "original" and not destination.get("payment_ref"):
        return {**destination, **services.original_destination(payment_ref)}
    return destination


REFUND_COLUMNS = ("case_id", "idempotency_key", "amount_minor", "currency", "destination_type", "provider_ref",
                  "status", "created_at", "settled_at")


def batch_refund_record(*, batch_id: int, workflow_id: str, results: dict[str, dict]) -> str:
    with transaction.atomic():
        batch = _lock_batch(batch_id, workflow_id)
        if batch is None:
            return "skipped"
        now = clock.now()
        paid, other = [], []
        for case in _refundable(batch):
            result = results.get(f"{case.reference}:refund")
            if case.quote["refund"] == 0:
                result = {"status": "succeeded", "provider_ref": ""}
            (paid if result and result["status"] == "succeeded" else other).append((case, result))
        insert_rows(Refund, REFUND_COLUMNS, (
            (c.id, f"{c.reference}:refund", c.quote["refund"], c.quote["currency"], "original", r["provider_ref"],
             "succeeded", now, now) for c, r in paid))
        _post_many([
            (f"{c.reference}:refund", "refund paid", c.reference, [
                (ledger.refunds_payable_account(c.reference), Money(c.quote["refund"], c.quote["currency"])),
                (ledger.CLEARING, Money(-c.quote["refund"], c.quote["currency"])),
            ]) for c, _ in paid
        ], now)
        cases = [c for c, _ in paid]
        events, audits = [], []
        _steps(cases, [(states.REFUNDED, "refunded"), (states.DEACTIVATING, "blocking the card")],
               key=workflow_id, now=now, events=events, audits=audits)
        _write(events, audits)
        _set_state(cases, states.DEACTIVATING, now)
        for case, result in other:  # pending or failed: the one-case path takes over
            services.refund_record(reference=case.reference, workflow_id=workflow_id,
                                   result=result or {"status": "failed", "failure_reason": "no answer in refund file"})
        _schedule_batch(batch, "bulk_block", now)
        return "refunded"


def batch_block_items(*, batch_id: int, workflow_id: str) -> list[dict] | None:
    batch = BulkBatch.objects.get(id=batch_id)
    if batch.next_action_id != workflow_id:
        return None
    return [{"card_number": number, "idempotency_key": f"{reference}:deactivate"}
            for reference, number in ClosureCase.objects.filter(bulk_batch_id=batch.id, state=states.DEACTIVATING)
            .order_by("id").values_list("reference", "card__number")]


def batch_blocked_record(*, batch_id: int, workflow_id: str, results: dict[str, dict]) -> str:
    with transaction.atomic():
        batch = _lock_batch(batch_id, workflow_id)
        if batch is None:
            return "skipped"
        now = clock.now()
        cases, refused = [], []
        for case in _batch_cases(batch, states.DEACTIVATING, card_columns=STATUS_COLUMNS):
            result = results.get(f"{case.reference}:deactivate")
            (cases if result and result.get("status") == "blocked" else refused).append((case, result))
        cases = [c for c, _ in cases]
        bound = set(Binding.objects.filter(among("card_id", [c.card_id for c in cases]), unbound_at__isnull=True)
                    .values_list("card_id", flat=True))
        closing = [c for c in cases if c.card_id not in bound]
        reference_of = {c.card_id: c.reference for c in cases}
        events, audits = [], []
        _card_status([c.card for c in cases], Card.Status.BLOCKED, reference_of, audits)
        _steps(closing, [(states.CLOSED, "card blocked")], key=workflow_id, now=now, events=events, audits=audits)
        _card_status([c.card for c in closing], Card.Status.CLOSED, reference_of, audits)
        _write(events, audits)
        cards = [c.card for c in cases]
        _save_card_status(cards, listed=_hotlist(cards))
        _set_state(closing, states.CLOSED, now, closed_at=now)
        certificate_issue_many(case_ids=[c.id for c in closing])
        for case in (c for c in cases if c.card_id in bound):  # apps to unbind: one-case path
            locked = services._lock(case.reference)
            services._transition(locked, states.UNBINDING, actor=ACTOR, key=f"{workflow_id}:unbinding",
                                 note="card blocked; unbinding linked apps")
        for case, result in refused:  # the card system refused it or did not answer: staff take over
            error = f"card block failed: {(result or {}).get('error') or 'no answer in block batch'}"
            services._park(services._lock(case.reference), key=f"{workflow_id}:failed", note=error[:300],
                           attention=error, actor=ACTOR)
        _finish_batch(batch, now)
        return "closed"


def batch_failed(*, batch_id: int, workflow_id: str, error: str) -> str:
    """A batched call exhausted its retries: every case still waiting on it needs staff."""
    with transaction.atomic():
        batch = _lock_batch(batch_id, workflow_id)
        if batch is None:
            return "skipped"
        waiting = {"bulk_settle": states.SUBMITTED, "bulk_refund": states.REFUND_PENDING,
                   "bulk_block": states.DEACTIVATING}[batch.next_action]
        for case in _batch_cases(batch, waiting, card_columns=()):
            services._park(services._lock(case.reference), key=f"{workflow_id}:failed", note=error[:300],
                           attention=error, actor=ACTOR)
        _finish_batch(batch, clock.now())
        return "failed"


def due_batches(now, limit: int) -> list[tuple[str, str, str]]:
    """(batch id, action, workflow id) of batches whose action is due, for the sweep."""
    return [
        (str(b[0]), b[1], b[2])
        for b in BulkBatch.objects.exclude(next_action_id="").filter(next_action_due_at__lte=now)
        .order_by("next_action_due_at").values_list("id", "next_action", "next_action_id")[:limit]
    ]
