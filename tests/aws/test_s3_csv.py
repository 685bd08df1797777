"""The S3 import's CSV reading, errors report and summary, without AWS.

``CsvRecords`` cuts text pushed in pieces into records itself; these tests hold it to
``csv.reader`` over the whole text, to linear work on input with no line break, and to
reading on after a record csv refuses or one too large to keep."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncbatch.aws.s3_import import CsvHeaderError, ObjectResult, RowError, neutralise
from asyncbatch.aws.s3_import._csv import CsvRecords, RecordTooLarge
from asyncbatch.aws.s3_import._report import ErrorsReport
from asyncbatch.aws.s3_import._summary import MESSAGE_LIMIT, message

FIELD_LIMIT = csv.field_size_limit()


def parse(text: str, piece: int, max_record: int = 1 << 20) -> list[tuple[int, object]]:
    records = CsvRecords(max_record)
    out: list[tuple[int, object]] = []
    for start in range(0, len(text), piece):
        records.push(text[start:start + piece])
        out.extend(records.rows())
    records.push("", final=True)
    out.extend(records.rows())
    return out


def reference(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet='a,"\r\n é', max_size=60), piece=st.integers(1, 16))
def test_records_match_csv_reader_over_the_whole_text(text: str, piece: int) -> None:
    """Whatever the pieces, the rows are csv's; a quoted field left open at the end of
    the file is the one difference: csv returns what it has, the import rejects it."""
    got = parse(text, piece)
    rows = [row for _, row in got]
    expected = reference(text)
    if rows and isinstance(rows[-1], csv.Error):
        assert "ends inside a quoted field" in str(rows[-1])
        assert rows[:-1] == expected[:len(rows) - 1]
    else:
        assert rows == expected


def test_line_numbers_count_the_lines_of_multi_line_records() -> None:
    text = 'h1,h2\r\na,"b\nc"\n\nd,"e\r\n\r\nf"\rg,h'
    assert parse(text, 3) == [(1, ["h1", "h2"]), (2, ["a", "b\nc"]), (4, []),
                              (5, ["d", "e\r\n\r\nf"]), (8, ["g", "h"])]


@pytest.mark.parametrize("piece", [1000, 65536])
def test_a_quoted_cell_over_csvs_field_limit_costs_its_row_only(piece: int) -> None:
    """A quoted cell over 128 KiB, with line breaks and commas in it: csv refuses it;
    the next rows are read as they are (before, they became one broken row)."""
    big = ("x" * 999 + "\n, ") * (FIELD_LIMIT // 1000 + 10)
    text = f'id,text\n1,small\n2,"{big}"\n3,after\n4,"quoted, after"\n'
    got = parse(text, piece)
    assert got[:2] == [(1, ["id", "text"]), (2, ["1", "small"])]
    line, error = got[2]
    assert line == 3 and isinstance(error, csv.Error)
    assert "field larger than field limit" in str(error)
    after = 3 + big.count("\n")
    assert got[3:] == [(after + 1, ["3", "after"]), (after + 2, ["4", "quoted, after"])]


@pytest.mark.parametrize("quoted", [True, False])
def test_a_record_over_max_row_size_is_skipped_and_reading_goes_on(quoted: bool) -> None:
    cell = ('"' + 'y,\n""' * 5000 + '"') if quoted else "y" * 20000
    text = f"id,text\n1,{cell}\n2,after\n"
    got = parse(text, 700, max_record=4096)
    assert got[0] == (1, ["id", "text"])
    line, error = got[1]
    assert line == 2 and isinstance(error, RecordTooLarge)
    assert "longer than 4,096 characters" in str(error)
    assert got[2] == (3 + (5000 if quoted else 0), ["2", "after"])


def _allocated_while_pushing(text: str, piece: int) -> int:
    """Bytes allocated by all the pushes together: the sum, over pushes, of the peak
    of traced memory during the push above what was traced before it. Deterministic;
    a reader that copies what it holds on every push makes it quadratic."""
    records = CsvRecords(1 << 20)
    pieces = [text[i:i + piece] for i in range(0, len(text), piece)]
    total = 0
    rows: list[object] = []
    tracemalloc.start()
    try:
        for chunk in pieces:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            records.push(chunk)
            rows.extend(records.rows())
            _, peak = tracemalloc.get_traced_memory()
            total += peak - before
        records.push("", final=True)
        rows.extend(records.rows())
    finally:
        tracemalloc.stop()
    assert rows, "the reader must report the record at the end"
    return total


def _text(shape: str, size: int) -> str:
    if shape == "no line break":
        return "a," * (size // 2)
    return 'id,"' + "z\n" * (size // 2) + '"\n'


@pytest.mark.parametrize("shape", ["no line break", "one quoted cell over many lines"])
def test_input_without_line_breaks_is_read_in_linear_work(shape: str) -> None:
    """Work per push stays proportional to the push, not to what came before: twice the
    input, in the same 1 KiB pieces, allocates twice as much, not four times (the old
    reader glued every piece to the unfinished line it held, or parsed the unfinished
    record again: quadratic)."""
    small = _allocated_while_pushing(_text(shape, 50_000), 1024)
    large = _allocated_while_pushing(_text(shape, 100_000), 1024)
    assert large < 2.5 * small, (small, large)


def test_a_huge_header_line_is_a_header_error_not_a_hang() -> None:
    records = CsvRecords(4096)
    records.push("a" * 100_000, final=True)
    ((line, error),) = list(records.rows())
    assert line == 1 and isinstance(error, RecordTooLarge)


# -- the errors report: spreadsheet formula injection ---------------------------------


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx",
                                  '=HYPERLINK("http://x","y")'])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["plain", "", "1-2", "a=b", " =x", "'=x"])
def test_other_cells_are_left_alone(cell: str) -> None:
    assert neutralise(cell) == cell


@pytest.mark.parametrize(("cell", "safe"), [
    ("Smith\r=cmd|' /C calc'!A0", "Smith\r'=cmd|' /C calc'!A0"),
    ("a\n=b", "a\n'=b"),
    ("a\r\n+b", "a\r\n'+b"),
    ("a\r\r=b", "a\r'\r'=b"),  # a line that starts with a bare CR, then one with '='
    ("=x\n-y\n@z\n\tw", "'=x\n'-y\n'@z\n'\tw"),
    ("x\r\n\r\n@", "x\r\n\r\n'@"),  # an empty line between: CRLF is no formula
    ("two\nplain lines", "two\nplain lines"),
])
def test_every_line_of_a_cell_is_neutralised(cell: str, safe: str) -> None:
    assert neutralise(cell) == safe


def test_report_quotes_every_cell_holding_a_line_break() -> None:
    """With LF row endings, csv left a bare CR unquoted: a spreadsheet reader started a
    new row there."""
    report = ErrorsReport()
    report.add(2, "bad", ["Smith\r=cmd", "a\nb", "c"], ["x", "y", "z"])
    body = report.body()
    assert body is not None
    text = body[0].read().decode()
    report.close()
    assert text == ('line,error,x,y,z\r\n'
                    '2,bad,"Smith\r\'=cmd","a\nb",c\r\n')


def test_report_neutralises_every_cell_it_writes() -> None:
    report = ErrorsReport()
    report.add(3, "=bad: empty value", ["=cmd|' /C calc'!A0", "-2", "ok"],
               ["=name", "@x", "ok"])
    body = report.body()
    assert body is not None
    table = list(csv.reader(io.StringIO(body[0].read().decode())))
    report.close()
    assert table == [["line", "error", "'=name", "'@x", "ok"],
                     ["3", "'=bad: empty value", "'=cmd|' /C calc'!A0", "'-2", "ok"]]


# -- the SNS summary stays under SNS's limit ------------------------------------------


def _result(exception: BaseException, errors: tuple[RowError, ...] = ()) -> ObjectResult:
    return ObjectResult(
        bucket="b", key="incoming/" + "k" * 1000, status="failed", rows_read=0,
        rows_written=0, rows_duplicate=0, rows_rejected=len(errors), rows_unwritten=0,
        errors=errors, exception=exception, destination_key="error/x", errors_key=None,
        duration=0.1, bytes_read=10, write_retries=0, message_id=None, unfinished=None)


def test_summary_of_a_very_wide_header_fits_in_an_sns_message() -> None:
    names = [f"column_{i:06d}" for i in range(40_000)]
    error = CsvHeaderError("the header lacks the required column 'course' (found: "
                           + ", ".join(map(repr, names)) + ")", found=names)
    errors = tuple(RowError(i, tuple(names), "x" * 100_000) for i in range(10))
    text = message(_result(error, errors), "table")
    assert len(text.encode()) <= MESSAGE_LIMIT < 256 * 1024
    body = json.loads(text)
    assert body["status"] == "failed" and "course" in body["error"]
    assert "more characters" in body["error"]


def test_summary_that_fits_is_whole() -> None:
    body = json.loads(message(_result(ValueError("bad")), "table"))
    assert "truncated" not in body and body["error"] == "ValueError: bad"
