"""The errors report: the rejected rows with their line and why, as CSV.

Cells are written as OWASP advises against CSV (formula) injection: a cell starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, so
that a spreadsheet shows it as text instead of running it. So does every line of a cell
that holds line breaks (a bare CR, a LF or CRLF): a reader that splits rows on every line
break, quotes or not, sees each such line as the start of a row. Rows end with CRLF (RFC
4180), so ``csv`` quotes every cell holding a CR or a LF (with LF endings it left a bare
CR unquoted)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
from collections.abc import Sequence
from typing import IO, Optional

__all__ = ["ErrorsReport", "neutralise"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A line break inside a cell followed by a formula start: the quote goes after the break.
# (A CRLF after a break is an empty line, not a line starting with CR.)
_BREAK_BEFORE_FORMULA = re.compile(r"(\r\n|\r|\n)(?=[=+\-@\t]|\r(?!\n))")
# Rows are buffered as text and written to the spool file in pieces of this size.
_FLUSH = 1 << 16


def neutralise(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet (OWASP: prefix with ``'``): the cell,
    and each line of it after a CR, LF or CRLF, that starts with a formula character."""
    if cell.startswith(_FORMULA_START):
        cell = "'" + cell
    if "\r" in cell or "\n" in cell:
        cell = _BREAK_BEFORE_FORMULA.sub(r"\1'", cell)
    return cell


class ErrorsReport:
    """Rows spooled to memory, then to a temporary file past 1 MiB; ``header`` is the
    file's header row (the report's columns are ``line``, ``error`` and those)."""

    def __init__(self) -> None:
        self.rows = 0
        self._spool: Optional[IO[bytes]] = None
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="\r\n")
        self._md5 = hashlib.md5(usedforsecurity=False)

    def add(self, line: Optional[int], message: str, fields: Sequence[str],
            header: Optional[Sequence[str]]) -> None:
        if self._spool is None:
            self._spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
            self._writer.writerow(["line", "error", *map(neutralise, header or ())])
        self._writer.writerow(["" if line is None else str(line), neutralise(message),
                               *map(neutralise, fields)])
        self.rows += 1
        if self._text.tell() > _FLUSH:
            self._flush()

    def _flush(self) -> None:
        assert self._spool is not None
        data = self._text.getvalue().encode("utf-8")
        self._md5.update(data)
        self._spool.write(data)
        self._text.seek(0)
        self._text.truncate()

    def body(self) -> Optional[tuple[IO[bytes], str]]:
        """The report's file, rewound, and its MD5 (hex; S3's ETag of a simple put), or
        ``None`` when no row was added."""
        if self._spool is None:
            return None
        if self._text.tell():
            self._flush()
        self._spool.seek(0)
        return self._spool, self._md5.hexdigest()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
