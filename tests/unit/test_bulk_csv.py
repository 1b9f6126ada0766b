"""Reading a bulk-closure CSV: rows named by the line they start on, counted as the intake reads them."""

from __future__ import annotations

import pytest

from closeout.closures import bulk


def write(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    return path


def numbers(count, first=0):
    return [f"81030000{i:08d}" for i in range(first, first + count)]


def test_a_quote_that_never_closes_is_read_on_its_own_line_and_the_lines_below_as_rows(tmp_path):
    path = write(tmp_path, 'card_number,note\n8103000000000001,a\n"1234567890,x\n8103000000000002,b\n'
                           "8103000000000003,c\n")

    rows = list(bulk.read_rows(path))

    assert [(line, last, str(raw)) for line, last, raw in rows] == [
        (2, 2, "8103000000000001"),
        (3, 3, "the quote that opens this field is never closed; the lines below were read as rows of "
               "their own"),
        (4, 4, "8103000000000002"),
        (5, 5, "8103000000000003"),
    ]
    assert (rows[1][2].field, rows[1][2].value) == ("card_number", "1234567890")


def test_a_quote_that_never_closes_in_a_large_file_drops_no_row_below_it(tmp_path):
    # The csv module gives up on the runaway field at its size limit (131,072 characters), some
    # 7,700 lines further down: those lines are rows all the same.
    below = numbers(20_000)
    path = write(tmp_path, "card_number\n8103000000000001\n\"1234567890\n" + "".join(f"{n}\n" for n in below))

    rows = list(bulk.read_rows(path))

    assert rows[1][:2] == (3, 3) and rows[1][2].field == "card_number"
    assert "does not close" in rows[1][2] and "field limit" in rows[1][2]
    assert [raw for *_, raw in rows[2:]] == below
    assert [line for line, *_ in rows[2:]] == list(range(4, 4 + len(below)))
    assert bulk.count_rows(path) == len(rows) == 2 + len(below)


def test_a_quote_that_never_closes_in_another_column_names_that_column(tmp_path):
    path = write(tmp_path, 'card_number,note\n8103000000000001,"never closed\n8103000000000002,b\n')

    [(line, _, bad), (next_line, _, raw)] = list(bulk.read_rows(path))

    assert (line, bad.field, bad.value) == (2, "note", "8103000000000001")
    assert (next_line, raw) == (3, "8103000000000002")


def test_a_quoted_line_break_makes_one_row_named_by_its_first_line(tmp_path):
    path = write(tmp_path, 'card_number,note\n8103000000000001,"two\nlines"\n\n8103000000000002,b\n\n')

    rows = list(bulk.read_rows(path))

    assert rows == [(2, 3, "8103000000000001"), (5, 5, "8103000000000002")]
    assert bulk.count_rows(path) == 2


def test_count_rows_counts_what_the_reader_yields_after_the_resume_line(tmp_path):
    path = write(tmp_path, 'card_number,note\n8103000000000001,"a\nb"\n"open\n8103000000000002,c\n\n'
                           "8103000000000003,d\n")

    assert [(line, last) for line, last, _ in bulk.read_rows(path)] == [(2, 3), (4, 4), (5, 5), (7, 7)]
    assert [bulk.count_rows(path, after_line=n) for n in (0, 3, 4, 5, 7)] == [4, 3, 2, 1, 0]
    assert [line for line, *_ in bulk.read_rows(path, after_line=4)] == [5, 7]


def test_a_header_whose_quote_never_closes_is_refused_on_line_1(tmp_path):
    path = write(tmp_path, 'card_number,"note\n8103000000000001,a\n')

    with pytest.raises(bulk.BulkFileError, match=r"^line 1: the header cannot be read \(the quote that opens "
                                                 r"column 2 is never closed\)"):
        list(bulk.read_rows(path))


def test_an_unreadable_single_line_is_rejected_there_and_reading_goes_on(tmp_path):
    path = write(tmp_path, "card_number\n" + "9" * 200_000 + "\n8103000000000001\n")

    [(line, last, bad), row] = list(bulk.read_rows(path))

    assert (line, last, bad.field) == (2, 2, "row") and "field limit" in bad
    assert row == (3, 3, "8103000000000001")


def test_rows_two_stray_quotes_would_swallow_are_rejected_not_lost(tmp_path):
    path = write(tmp_path, 'card_number,note\n8103000000000001,"a\n8103000000000002,b"\n8103000000000003,c\n'
                           '8103000000000004,"two\nlines"\n')

    rows = list(bulk.read_rows(path))

    assert [(line, last, type(raw).__name__) for line, last, raw in rows] == [
        (2, 3, "BadRow"), (4, 4, "str"), (5, 6, "str")]  # a plain note over two lines is still a note
    assert rows[0][2].field == "note" and "check the quotes" in rows[0][2]
    assert bulk.count_rows(path) == 3
