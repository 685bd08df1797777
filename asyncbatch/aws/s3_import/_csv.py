"""CSV reading: text that arrives in pieces, cut into records and parsed by ``csv``.

``CsvRecords`` finds where each record ends itself (a line break outside quotes, with
the quoting rules of ``csv``'s default dialect), so that

- every character is examined a bounded number of times, whatever the pieces: a file
  with no line break, or one huge quoted cell, is read in linear time;
- ``csv`` parses one complete record at a time: a record ``csv`` refuses (a cell over
  its 128 KiB field limit) costs that record only;
- a record longer than ``max_record`` characters is not kept in memory: it is skipped
  to its end and reported as too large, and the records after it are read as usual.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Optional, Union

__all__ = ["CsvRecords", "RecordTooLarge"]

# A complete line with its ending (\r\n, \r or \n, like a file opened with newline="").
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
_BREAK = re.compile(r"\r\n|\r|\n")
# One field from its start: quoted (then anything up to the next comma, as csv keeps it
# when strict is off), unquoted, or empty. The closing quote is the first quote not
# followed by another, so every field ends at exactly one place: no backtracking blow-up.
_FIELD = r'(?:"(?:[^"]|"")*"(?!")[^,\r\n]*|[^,"\r\n][^,\r\n]*|)'
# A line that is a whole record (it ends outside quotes).
_COMPLETE = re.compile(rf"{_FIELD}(?:,{_FIELD})*(?:\r\n|\r|\n)?")
# Inside a quoted field: the text up to and with its closing quote.
_CLOSE_QUOTE = re.compile(r'(?:[^"]|"")*"(?!")')
# After a closing quote: the rest of a record that ends on this line.
_REST = re.compile(rf"[^,\r\n]*(?:,{_FIELD})*(?:\r\n|\r|\n)?")
_UNQUOTED_STOP = re.compile(r"[,\r\n]")

# The states of the skipping scanner (a record too large to keep).
_START, _UNQUOTED, _QUOTED, _QUOTE = range(4)


class RecordTooLarge(csv.Error):
    """A record longer than the importer's ``max_row_size``; it was skipped."""


Parsed = Union[list[str], csv.Error]


def _breaks(text: str, start: int = 0, end: Optional[int] = None) -> int:
    """How many line breaks ``text[start:end]`` holds (``\\r\\n`` counts once)."""
    return len(_BREAK.findall(text, start, len(text) if end is None else end))


class CsvRecords:
    """Cuts text pushed in pieces into records and parses each with ``csv``.

    ``push(text, final)`` takes the next piece; ``rows()`` then yields ``(line, fields)``
    for each record completed so far, ``line`` being the record's first line (1-based),
    or ``(line, csv.Error)`` for a record that cannot be read (``RecordTooLarge`` for
    one over ``max_record`` characters)."""

    def __init__(self, max_record: int) -> None:
        self.max_record = max_record
        self.line = 0  # lines consumed by finished records
        self._cr = False  # a piece ended with \r: maybe the first half of \r\n
        self._partial: list[str] = []  # a line whose end has not arrived
        self._partial_size = 0
        self._record: list[str] = []  # the lines of a record inside a quoted field
        self._record_size = 0
        self._skip: Optional[int] = None  # the scanner's state while skipping a record
        self._skip_lines = 0
        self._out: list[tuple[int, Parsed]] = []
        self._batch: list[str] = []  # one-line records, parsed together
        self._feed: list[str] = []
        self._fed = 0
        self._reader = csv.reader(self)

    # -- what csv reads: the lines of one record -------------------------------------

    def __iter__(self) -> CsvRecords:
        return self

    def __next__(self) -> str:
        if self._fed >= len(self._feed):
            raise StopIteration
        line = self._feed[self._fed]
        self._fed += 1
        return line

    def _flush(self) -> None:
        """Parse the one-line records gathered so far, in one pass of the reader."""
        if not self._batch:
            return
        batch = self._batch[:]  # push() holds the list itself: empty it in place
        self._batch.clear()
        start = self.line + 1
        self.line += len(batch)
        self._feed = batch
        self._fed = 0
        out = self._out
        reader = self._reader
        size = len(batch)
        while self._fed < size:
            first = start + self._fed
            try:
                out.append((first, next(reader)))
            except csv.Error as exc:  # the record was its line: read on from the next
                out.append((first, exc))

    def _parse(self, lines: list[str]) -> None:
        """Parse one complete record of several lines and queue the outcome."""
        self._flush()
        start = self.line + 1
        self.line += len(lines)
        self._feed = lines
        self._fed = 0
        out = self._out
        while self._fed < len(lines):
            first = start + self._fed
            try:
                out.append((first, next(self._reader)))
            except csv.Error as exc:
                out.append((first, exc))
                break  # the rest of this record belongs to the row csv refused
            except StopIteration:  # pragma: no cover - there is a line to read
                break

    # -- input ------------------------------------------------------------------------

    def push(self, text: str, final: bool = False) -> None:
        if self._cr:
            text = "\r" + text
            self._cr = False
        if not final and text.endswith("\r"):
            text = text[:-1]
            self._cr = True
        size = len(text)
        pos = self._resume(text) if self._partial or self._skip is not None else 0
        cut = max(text.rfind("\n"), text.rfind("\r")) + 1
        if cut > pos:
            # Every line of text[pos:cut] ends with a line break: one pass splits them,
            # and a line that is a whole record joins the batch csv reads in one go.
            batch = self._batch
            take = self._take_line
            complete = _COMPLETE.fullmatch
            limit = self.max_record
            for line in _LINE.findall(text, pos, cut):
                if self._record or self._skip is not None or len(line) > limit \
                        or ('"' in line and not complete(line)):
                    take(line)
                else:
                    batch.append(line)
            pos = cut
        if pos < size:
            if self._skip is not None:
                self._skip_scan(text, pos)
            else:
                self._add_partial(text[pos:])
        if final:
            self._finish()
        self._flush()

    def _resume(self, text: str) -> int:
        """Go on with the record being skipped, or the line whose end had not come;
        return where the next line of ``text`` starts."""
        pos = 0
        size = len(text)
        while self._skip is not None and pos < size:
            pos = self._skip_scan(text, pos)
        if self._partial and pos < size:
            found = _BREAK.search(text, pos)
            if found is None:
                self._add_partial(text[pos:])
                return size
            self._partial.append(text[pos:found.end()])
            line = "".join(self._partial)
            self._partial.clear()
            self._partial_size = 0
            self._take_line(line)
            return found.end()
        return pos

    def _add_partial(self, piece: str) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size + self._record_size > self.max_record:
            # Too large to keep: scan what is held for quotes, then drop it.
            pieces = self._partial
            self._partial = []
            self._partial_size = 0
            held_lines = len(self._record)
            self._start_skip(_QUOTED if held_lines else _START)
            self._skip_lines = held_lines
            self._record.clear()
            self._record_size = 0
            for held in pieces:
                self._skip_scan(held, 0)

    def _take_line(self, line: str) -> None:
        """A complete line: a record, the start of one, the next line of one, or the
        next line of a record being skipped."""
        if self._skip is not None:
            self._skip_scan(line, 0)
            return
        record = self._record
        if not record:
            if '"' not in line or _COMPLETE.fullmatch(line):
                if len(line) > self.max_record:
                    self._too_large(1)
                else:
                    self._batch.append(line)
                return
            record.append(line)
            self._record_size = len(line)
        else:
            record.append(line)
            self._record_size += len(line)
            closed = _CLOSE_QUOTE.match(line)
            if closed is not None and _REST.fullmatch(line, closed.end()):
                lines = list(record)
                record.clear()
                self._record_size = 0
                self._parse(lines)
                return
        if self._record_size > self.max_record:
            # Still inside a quoted field: skip on from there, without keeping it.
            lines_held = len(record)
            record.clear()
            self._record_size = 0
            self._start_skip(_QUOTED)
            self._skip_lines = lines_held

    def _finish(self) -> None:
        if self._skip is not None:
            self._skip = None
            self._too_large(self._skip_lines + 1)
            return
        if self._partial:
            line = "".join(self._partial)
            self._partial.clear()
            self._partial_size = 0
            self._take_line(line)
            if self._skip is not None:
                self._finish()
                return
        if self._record:
            self._flush()
            start = self.line + 1
            self.line += len(self._record)
            self._record.clear()
            self._record_size = 0
            self._out.append((start, csv.Error(
                f"the file ends inside a quoted field opened on line {start}")))

    # -- records too large to keep ----------------------------------------------------

    def _start_skip(self, state: int) -> None:
        self._skip = state
        self._skip_lines = 0

    def _too_large(self, lines: int) -> None:
        self._flush()
        start = self.line + 1
        self.line += lines
        self._out.append((start, RecordTooLarge(
            f"the row is longer than {self.max_record:,} characters (max_row_size): "
            "it was skipped")))

    def _skip_scan(self, text: str, pos: int) -> int:
        """Scan ``text`` from ``pos`` with csv's quoting rules until the skipped record
        ends (then report it and return where the next record starts) or the text does
        (return its length). Each character is looked at once."""
        state = self._skip
        assert state is not None
        size = len(text)
        while pos < size:
            if state == _QUOTED:
                quote = text.find('"', pos)
                if quote < 0:
                    self._skip_lines += _breaks(text, pos)
                    pos = size
                    break
                self._skip_lines += _breaks(text, pos, quote)
                pos = quote + 1
                state = _QUOTE
            elif state in (_QUOTE, _START):
                # At a field's start, a quote opens quoting; after a quote inside quotes,
                # a second one is a quote character (and quoting goes on): either way
                # the next state is the same.
                if text[pos] == '"':
                    pos += 1
                    state = _QUOTED
                else:
                    state = _UNQUOTED
            else:
                stop = _UNQUOTED_STOP.search(text, pos)
                if stop is None:
                    pos = size
                    break
                pos = stop.end()
                if stop.group() == ",":
                    state = _START
                    continue
                if stop.group() == "\r" and pos < size and text[pos] == "\n":
                    pos += 1
                self._skip = None
                self._too_large(self._skip_lines + 1)
                return pos
        self._skip = state
        return pos

    # -- output -----------------------------------------------------------------------

    def rows(self) -> Iterator[tuple[int, Parsed]]:
        out = self._out
        if not out:
            return
        self._out = []
        yield from out
