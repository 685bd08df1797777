"""The errors of the S3 CSV import (see the tree in the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from ..._errors import AsyncBatchError

if TYPE_CHECKING:
    from ._results import ImportResult

__all__ = ["CsvDecodeError", "CsvHeaderError", "ImportDeadlineError", "ImportIncompleteError",
           "S3ImportError", "S3MoveError"]


class S3ImportError(AsyncBatchError):
    """One object could not be imported; ``line`` is where the problem was found, when
    it was found on a line."""

    def __init__(self, message: str, *, line: Optional[int] = None) -> None:
        super().__init__(message)
        self.line = line


class CsvHeaderError(S3ImportError, ValueError):
    """The header is unusable: the file is empty, a column appears twice, or required
    columns are missing (``missing``, in the model's order; ``found``, as in the file)."""

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        found: Sequence[str] = (),
        line: Optional[int] = 1,
    ) -> None:
        super().__init__(message, line=line)
        self.missing = tuple(missing)
        self.found = tuple(found)


class CsvDecodeError(S3ImportError, ValueError):
    """The object is not UTF-8 text; ``offset`` is the position of the first bad byte."""

    def __init__(self, message: str, *, offset: int, line: Optional[int] = None) -> None:
        super().__init__(message, line=line)
        self.offset = offset


class ImportDeadlineError(S3ImportError, TimeoutError):
    """The Lambda deadline came before the object was read and written to the end."""


class S3MoveError(S3ImportError):
    """A step after the rows were written did not finish: ``step`` is ``"report"`` (the
    errors CSV), ``"copy"`` (to the archive or error prefix), ``"publish"`` (the SNS
    summary) or ``"delete"`` (the source object). The source object is still where it
    was: a retry of the event finishes the job."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class ImportIncompleteError(S3ImportError):
    """Raised by ``S3CsvImporter.lambda_handler`` when an object's move or summary did not
    finish (``result`` holds every object's outcome), so that the invocation fails and
    S3 invokes the function again; the import is idempotent, the retry finishes it."""

    def __init__(self, message: str, result: ImportResult) -> None:
        super().__init__(message)
        self.result = result
