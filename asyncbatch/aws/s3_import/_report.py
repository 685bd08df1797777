"""The errors report: the rejected rows with their line and why, as CSV.

Cells are written as OWASP advises against CSV (formula) injection: a cell starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single quote, so
that a spreadsheet shows it as text instead of running it; ``csv`` quotes the rest."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Sequence
from typing import IO, Optional

__all__ = ["ErrorsReport", "neutralise"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Rows are buffered as text and written to the spool file in pieces of this size.
_FLUSH = 1 << 16


def neutralise(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet (OWASP: prefix with ``'``)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class ErrorsReport:
    """Rows spooled to memory, then to a temporary file past 1 MiB; ``header`` is the
    file's header row (the report's columns are ``line``, ``error`` and those)."""

    def __init__(self) -> None:
        self.rows = 0
        self._spool: Optional[IO[bytes]] = None
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="\n")
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
