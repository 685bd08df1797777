"""What an import reports: per row, per object, per event, and progress snapshots."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from ..._errors import describe as describe_exception
from ..._errors import exception_text
from ._errors import S3ImportError, S3MoveError

__all__ = ["ImportProgress", "ImportResult", "ObjectResult", "RowError", "describe", "shorten"]

# How many row errors the summary (SNS message, Lambda response) carries.
SUMMARY_ERRORS = 10
# The longest text one field of the summary carries.
SUMMARY_TEXT = 2000


def shorten(text: str, limit: int = SUMMARY_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def describe(exc: BaseException) -> str:
    """The import's own errors by their message, any other as ``"Type: message"``; safe
    whatever the exception's ``__str__`` does (bounded, UTF-8)."""
    if isinstance(exc, S3ImportError):
        return exception_text(exc) or describe_exception(exc)
    return describe_exception(exc)


class _Pickles:
    """Frozen, slotted dataclasses pickle through their constructor."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class RowError(_Pickles):
    """Why one row of the CSV was not written. ``line`` is the file line the row starts
    on (the header is line 1); ``fields`` names the columns at fault (may be empty)."""

    __slots__ = ("fields", "line", "message")

    line: int
    fields: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ObjectResult(_Pickles):
    """What happened to one S3 object.

    ``status``: ``"archived"`` (every row written, object moved to the archive prefix),
    ``"rejected"`` (some rows rejected, the others written; object moved to the error
    prefix with an errors CSV), ``"failed"`` (a fatal error, ``exception``, stopped the
    import, or the object could not be moved: ``unfinished``) or ``"skipped"`` (not
    imported: the object is gone, lies under a prefix of the importer's, or the event was
    not a creation).

    ``unfinished`` is set when a step after the writes did not finish (an
    ``S3MoveError`` naming it): the source object is then still in place, and
    ``S3CsvImporter.lambda_handler`` raises so that S3 invokes the function again.

    Every row read is in exactly one of ``rows_written``, ``rows_duplicate`` (replaced by
    a later row with the same primary key in the same request), ``rows_rejected``
    (invalid, too large, refused by DynamoDB, or still unprocessed when the retry budget
    ran out) and ``rows_unwritten`` (valid, but a fatal error or the deadline stopped the
    run before it was written). ``errors`` holds the first row errors found
    (``max_errors``), in line order; ``write_retries`` counts the requests repeated for
    unprocessed items or throttling.
    """

    __slots__ = ("bucket", "bytes_read", "destination_key", "duration", "errors",
                 "errors_key", "exception", "key", "message_id", "rows_duplicate",
                 "rows_read", "rows_rejected", "rows_unwritten", "rows_written", "status",
                 "unfinished", "write_retries")

    bucket: str
    key: str
    status: str
    rows_read: int
    rows_written: int
    rows_duplicate: int
    rows_rejected: int
    rows_unwritten: int
    errors: tuple[RowError, ...]
    exception: Optional[BaseException]
    destination_key: Optional[str]
    errors_key: Optional[str]
    duration: float
    bytes_read: int
    write_retries: int
    message_id: Optional[str]
    unfinished: Optional[S3MoveError]

    @property
    def ok(self) -> bool:
        """Every row was written and the object moved (or it was rightly skipped)."""
        return self.status in ("archived", "skipped") and self.unfinished is None

    @property
    def error(self) -> Optional[str]:
        """The fatal error as text, if there was one."""
        return None if self.exception is None else describe(self.exception)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what the SNS message and the Lambda handler return);
        long texts are shortened, at most ``10`` row errors are listed."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "status": self.status,
            "rows": {
                "read": self.rows_read,
                "written": self.rows_written,
                "duplicate": self.rows_duplicate,
                "rejected": self.rows_rejected,
                "unwritten": self.rows_unwritten,
            },
            "error": None if self.error is None else shorten(self.error),
            "unfinished": None if self.unfinished is None else {
                "step": self.unfinished.step, "error": shorten(str(self.unfinished))},
            "first_errors": [
                {"line": e.line, "fields": [shorten(f, 200) for f in e.fields[:20]],
                 "message": shorten(e.message, 500)}
                for e in self.errors[:SUMMARY_ERRORS]
            ],
            "destination_key": self.destination_key,
            "errors_key": self.errors_key,
            "duration_seconds": round(self.duration, 3),
            "bytes_read": self.bytes_read,
            "write_retries": self.write_retries,
        }


@dataclass(frozen=True)
class ImportResult(_Pickles):
    """The import of every object of one S3 event, in event order."""

    __slots__ = ("duration", "objects")

    objects: tuple[ObjectResult, ...]
    duration: float

    @property
    def ok(self) -> bool:
        return all(obj.ok for obj in self.objects)

    @property
    def unfinished(self) -> tuple[ObjectResult, ...]:
        """The objects whose move or summary did not finish (a retry finishes them)."""
        return tuple(obj for obj in self.objects if obj.unfinished is not None)

    @property
    def rows_read(self) -> int:
        return sum(obj.rows_read for obj in self.objects)

    @property
    def rows_written(self) -> int:
        return sum(obj.rows_written for obj in self.objects)

    @property
    def rows_rejected(self) -> int:
        return sum(obj.rows_rejected for obj in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration_seconds": round(self.duration, 3),
            "objects": [obj.to_dict() for obj in self.objects],
        }


@dataclass(frozen=True)
class ImportProgress(_Pickles):
    """A snapshot handed to ``on_progress`` while an object is imported; ``done`` is
    true for the last one of each object (after it was moved)."""

    __slots__ = ("bucket", "bytes_read", "bytes_total", "done", "elapsed", "key",
                 "rows_read", "rows_rejected", "rows_written")

    bucket: str
    key: str
    bytes_read: int
    bytes_total: Optional[int]
    rows_read: int
    rows_written: int
    rows_rejected: int
    elapsed: float
    done: bool
