"""CSV files dropped into S3, validated row by row and written to DynamoDB.

A CSV object put into a bucket triggers a Lambda function; for every object of the S3
event, ``S3CsvImporter``:

1. streams the object (``GetObject``) in chunks, decodes UTF-8 incrementally (a BOM is
   dropped) and parses it with ``csv`` line by line, quoted fields with commas and
   newlines included; the file is never held in memory;
2. checks the header: every required column of the model is there, no column twice;
3. validates each row against a pydantic model (empty cells count as missing values);
   an invalid row is rejected with its line number and the fields at fault;
4. writes the valid rows with ``BatchWriteItem`` in requests of 25 items, ``concurrency``
   requests in flight, on the same worker pool (``asyncbatch._scheduler.pool``) as the
   event processors; a bounded queue between the reader and the writers keeps memory
   flat whatever the file size. ``UnprocessedItems`` are retried with exponential
   backoff and full jitter until written, the retry budget is spent, or the Lambda
   deadline nears. Two rows with the same primary key in one request are merged (the
   later row wins, counted in ``rows_duplicate``), since DynamoDB refuses such a request;
   two requests holding the same key are never in flight together, so the later row
   always wins and a re-run writes the same items;
5. moves the object to ``archive/<key>`` (every row written) or ``error/<key>`` (a row
   rejected, or a fatal error), writing the rejected rows with their errors as CSV next
   to it (``error/<key minus .csv>.errors.csv``), and publishes one SNS message
   summarising the run.

Errors raised here (the ``AsyncBatchError`` tree continues)::

    AsyncBatchError
    └── S3ImportError                       one object could not be imported (fatal);
        │                                   found on ``ObjectResult.exception``
        ├── CsvHeaderError (ValueError)     no header, a column twice, a required one missing
        ├── CsvDecodeError (ValueError)     the object is not UTF-8 text
        └── ImportDeadlineError (TimeoutError) the Lambda deadline came before the end

A rejected row is not an exception: it is a ``RowError`` on the result. AWS errors
(``botocore.exceptions.ClientError``) that stop an import are kept as they are.

aioboto3 is imported only when clients are opened; pydantic only when a run starts.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import enum
import io
import json
import logging
import math
import re
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, Union
from urllib.parse import unquote_plus

import anyio

from .._errors import AsyncBatchError, ConfigurationError, InvalidEventError
from .._retry import Retry, is_transient
from .._scheduler import pool

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "Clients",
    "CsvDecodeError",
    "CsvHeaderError",
    "ImportDeadlineError",
    "ImportProgress",
    "ImportResult",
    "ObjectResult",
    "RowError",
    "S3CsvImporter",
    "S3ImportError",
    "S3Object",
    "import_csv_objects",
    "s3_objects",
]

logger = logging.getLogger("asyncbatch.s3_import")

M = TypeVar("M", bound="BaseModel")

#: DynamoDB's limit of requests in one ``BatchWriteItem``.
BATCH_SIZE = 25
_AUTO = "auto"
# Files larger than this cannot be copied with one CopyObject request.
_COPY_LIMIT = 5 * 1024**3
# How many errors the SNS summary carries.
_SUMMARY_ERRORS = 10


# -- errors ------------------------------------------------------------------------------


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


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """Why one row of the CSV was not written. ``line`` is the file line the row starts
    on (the header is line 1); ``fields`` names the columns at fault (may be empty)."""

    __slots__ = ("fields", "line", "message")

    line: int
    fields: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ObjectResult:
    """What happened to one S3 object.

    ``status``: ``"archived"`` (every row written, object moved to the archive prefix),
    ``"rejected"`` (some rows rejected, the others written; object moved to the error
    prefix with an errors CSV), ``"failed"`` (a fatal error, ``exception``, stopped the
    import; object moved to the error prefix) or ``"skipped"`` (not imported: the object
    is gone, lies under the archive or error prefix, or the event was not a creation).

    Every row read is in exactly one of ``rows_written``, ``rows_duplicate`` (replaced by
    a later row with the same primary key in the same request), ``rows_rejected``
    (invalid, refused by DynamoDB, or still unprocessed when retries ran out) and
    ``rows_unwritten`` (valid, but a fatal error or the deadline stopped the run before
    it was written). ``errors`` holds the first row errors found (``max_errors``), in
    line order;
    ``write_retries`` counts the ``BatchWriteItem`` calls repeated for unprocessed items
    or throttling.
    """

    __slots__ = ("bucket", "bytes_read", "destination_key", "duration", "errors",
                 "errors_key", "exception", "key", "message_id", "rows_duplicate",
                 "rows_read", "rows_rejected", "rows_unwritten", "rows_written", "status",
                 "write_retries")

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

    @property
    def ok(self) -> bool:
        """Every row was written (or the object was rightly skipped)."""
        return self.status in ("archived", "skipped")

    @property
    def error(self) -> Optional[str]:
        """The fatal error as text, if there was one."""
        return None if self.exception is None else _describe(self.exception)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what the SNS message and the Lambda handler return)."""
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
            "error": self.error,
            "first_errors": [
                {"line": e.line, "fields": list(e.fields), "message": e.message}
                for e in self.errors[:_SUMMARY_ERRORS]
            ],
            "destination_key": self.destination_key,
            "errors_key": self.errors_key,
            "duration_seconds": round(self.duration, 3),
            "bytes_read": self.bytes_read,
            "write_retries": self.write_retries,
        }


@dataclass(frozen=True)
class ImportResult:
    """The import of every object of one S3 event, in event order."""

    __slots__ = ("duration", "objects")

    objects: tuple[ObjectResult, ...]
    duration: float

    @property
    def ok(self) -> bool:
        return all(obj.ok for obj in self.objects)

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
class ImportProgress:
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


@dataclass(frozen=True)
class S3Object:
    """One object of an S3 event notification, its key URL-decoded."""

    __slots__ = ("bucket", "event_name", "key", "size", "version_id")

    bucket: str
    key: str
    version_id: Optional[str]
    size: Optional[int]
    event_name: str


# -- the S3 event ------------------------------------------------------------------------


def s3_objects(event: Any) -> list[S3Object]:
    """The objects of an S3 event notification (``Records[].s3``), keys decoded
    (S3 URL-encodes them, a space as ``+``). An ``s3:TestEvent`` has none.

    Raises ``InvalidEventError`` naming the problem for anything else."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"an S3 event must be a mapping, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError("an S3 event needs a 'Records' list")
    objects = []
    for index, record in enumerate(records):
        try:
            source = record.get("eventSource", "aws:s3")
            if source != "aws:s3":
                raise InvalidEventError(
                    f"Records[{index}] comes from {source!r}, not from S3", index=index)
            s3 = record["s3"]
            bucket = s3["bucket"]["name"]
            obj = s3["object"]
            raw_key = obj["key"]
        except (KeyError, TypeError, AttributeError):
            raise InvalidEventError(
                f"Records[{index}] is not an S3 notification: it needs "
                "s3.bucket.name and s3.object.key", index=index) from None
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket:
            raise InvalidEventError(
                f"Records[{index}]: s3.bucket.name and s3.object.key must be strings",
                index=index)
        size = obj.get("size")
        objects.append(S3Object(
            bucket=bucket,
            key=unquote_plus(raw_key),
            version_id=obj.get("versionId") or None,
            size=size if isinstance(size, int) else None,
            event_name=str(record.get("eventName", "ObjectCreated:Put")),
        ))
    return objects


# -- CSV, line by line ---------------------------------------------------------------

# A complete line with its ending (\r\n, \r or \n, like a file opened with newline="").
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")


class _CsvRows:
    """``csv.reader`` over text that arrives in pieces.

    Complete lines are handed to one ``csv.reader``. A record spanning lines (a quoted
    field with a newline) may continue past the text received so far: csv would then
    end it early, so its lines are kept and parsed again, by a fresh reader, once more
    text has come. ``rows()`` yields ``(line, fields)`` with the record's first line
    number, or ``(line, csv.Error)`` for a line csv refuses.
    """

    def __init__(self) -> None:
        self._tail = ""
        self._lines: deque[str] = deque()
        self._record: list[str] = []
        self._starved = False
        self._line = 0  # lines consumed by finished records
        self._reader = csv.reader(self)

    def __iter__(self) -> _CsvRows:
        return self

    def __next__(self) -> str:
        lines = self._lines
        if not lines:
            self._starved = True
            raise StopIteration
        line = lines.popleft()
        self._record.append(line)
        return line

    def push(self, text: str, final: bool = False) -> None:
        if self._tail:
            text = self._tail + text
        end = len(text)
        if not final and text.endswith("\r"):
            end -= 1  # maybe the first half of \r\n: wait for the next piece
        cut = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
        # Every line of text[:cut] ends with a line break: one linear pass splits it.
        lines = _LINE.findall(text, 0, cut) if cut else []
        tail = text[cut:]
        if final and tail:
            lines.append(tail)
            tail = ""
        self._tail = tail
        self._lines.extend(lines)

    def rows(self, final: bool = False) -> Iterator[tuple[int, Union[list[str], csv.Error]]]:
        lines = self._lines
        record = self._record
        while lines:
            self._starved = False
            start = self._line + 1
            try:
                row = next(self._reader)
            except StopIteration:  # pragma: no cover - csv reads a line whenever one is there
                return
            except csv.Error as exc:
                self._line += len(record)
                record.clear()
                yield start, exc
                continue
            if self._starved:
                if not final:
                    # The record goes on in text not received yet: parse it again later.
                    lines.extendleft(reversed(record))
                    record.clear()
                    self._reader = csv.reader(self)
                    return
                self._line += len(record)
                record.clear()
                yield start, csv.Error("unexpected end of file inside a quoted field")
                return
            self._line += len(record)
            record.clear()
            yield start, row


# -- DynamoDB values -----------------------------------------------------------------


def _attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (client-level JSON)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, enum.Enum):
        return _attribute(value.value)
    if isinstance(value, (Decimal, float)):
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"DynamoDB cannot store the number {value!r}")
            return {"N": repr(value)}
        if not value.is_finite():
            raise ValueError(f"DynamoDB cannot store the number {value!r}")
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": str(value)}
    if isinstance(value, int):  # an int subclass that is not bool
        return {"N": str(int(value))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": bytes(value)}
    if isinstance(value, (datetime.date, datetime.time)):
        return {"S": value.isoformat()}
    if isinstance(value, (uuid.UUID, datetime.timedelta)):
        return {"S": str(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): _attribute(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_attribute(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        if not value:
            raise ValueError("DynamoDB cannot store an empty set")
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in value):
            return {"NS": sorted(_attribute(v)["N"] for v in value)}
        if all(isinstance(v, bytes) for v in value):
            return {"BS": sorted(value)}
        raise ValueError("DynamoDB sets hold only strings, only numbers or only bytes")
    raise ValueError(f"DynamoDB cannot store a {kind.__name__}")


class _KeyProblem(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _item_key(item: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """An item's primary key as a hashable value; numbers compare by value (``1`` and
    ``1.0`` are one key, as in DynamoDB). Raises ``_KeyProblem`` for a key attribute
    that is missing, empty, or not a string, number or binary."""
    parts: list[Any] = []
    for name in names:
        value = item.get(name)
        if value is None:
            raise _KeyProblem(name, f"{name}: the key attribute is missing or empty")
        text = value.get("S")
        if text is not None:
            if not text:
                raise _KeyProblem(name, f"{name}: the key attribute is missing or empty")
            parts.append(text)
        elif "N" in value:
            parts.append(Decimal(value["N"]).normalize())
        elif "B" in value:
            if not value["B"]:
                raise _KeyProblem(name, f"{name}: the key attribute is missing or empty")
            parts.append(bytes(value["B"]))
        else:
            raise _KeyProblem(name, f"{name}: a key attribute must be a string, a number "
                                    f"or bytes, not {next(iter(value), '?')}")
    return tuple(parts)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            return str(error.get("Code", ""))
    return ""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, S3ImportError) or not text:
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


# -- one object's run --------------------------------------------------------------


class _Entry:
    """One valid row on its way to DynamoDB."""

    __slots__ = ("fields", "item", "line")

    def __init__(self, line: int, fields: list[str], item: dict[str, Any]) -> None:
        self.line = line
        self.fields = fields
        self.item = item


class _Chunk:
    """Up to 25 rows with distinct keys: one ``BatchWriteItem`` request."""

    __slots__ = ("done", "entries", "finished", "waits")

    def __init__(self) -> None:
        self.entries: dict[Any, _Entry] = {}
        self.waits: list[_Chunk] = []
        self.finished = False
        self.done: Optional[anyio.Event] = None

    async def wait(self) -> None:
        if not self.finished:
            if self.done is None:
                self.done = anyio.Event()
            await self.done.wait()


class Clients:
    """The aioboto3 clients an import uses (``S3CsvImporter.open_clients()``)."""

    __slots__ = ("dynamodb", "s3", "sns")

    def __init__(self, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns


class _ObjectRun:
    """The state of importing one object; nothing of it lives on the importer."""

    def __init__(
        self,
        importer: S3CsvImporter[Any],
        obj: S3Object,
        clients: Clients,
        key_attributes: tuple[str, ...],
        deadline: Optional[float],
    ) -> None:
        from pydantic import ValidationError

        self.importer = importer
        self.obj = obj
        self.clients = clients
        self.key_attributes = key_attributes
        self.deadline = deadline
        self.validation_error = ValidationError
        self.started = time.perf_counter()
        self.rows_read = 0
        self.rows_written = 0
        self.rows_duplicate = 0
        self.rows_rejected = 0
        self.write_retries = 0
        self.bytes_read = 0
        self.bytes_total: Optional[int] = obj.size
        self.errors: list[RowError] = []
        self.fatal: Optional[BaseException] = None
        self.scope: Optional[anyio.CancelScope] = None
        self.header: Optional[list[str]] = None
        self.columns: list[str] = []
        self.present: frozenset[str] = frozenset()
        self.chunk = _Chunk()
        self.inflight: dict[Any, _Chunk] = {}
        self.spool: Optional[IO[bytes]] = None
        self.spool_text = io.StringIO()
        self.spool_writer: Any = None
        self.next_progress = 0.0
        self.blank_is_empty = importer.empty_values == {""}

    # -- failure ----------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """A fatal error: remember the first, stop reading and writing."""
        if self.fatal is None:
            self.fatal = exc
        if self.scope is not None:
            self.scope.cancel()

    def reject(self, line: int, fields: Sequence[str], columns: Sequence[str],
               message: str) -> None:
        self.rows_rejected += 1
        if len(self.errors) < self.importer.max_errors:
            self.errors.append(RowError(line, tuple(columns), message))
        self._spool_row([str(line), message, *fields])

    def _spool_row(self, row: Sequence[str]) -> None:
        if self.spool_writer is None:
            self.spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
            self.spool_writer = csv.writer(self.spool_text, lineterminator="\n")
            header = self.header if self.header is not None else []
            self.spool_writer.writerow(["line", "error", *header])
        self.spool_writer.writerow(row)
        if self.spool_text.tell() > 1 << 16:
            self._flush_spool()

    def _flush_spool(self) -> None:
        assert self.spool is not None
        self.spool.write(self.spool_text.getvalue().encode("utf-8"))
        self.spool_text.seek(0)
        self.spool_text.truncate()

    # -- progress ---------------------------------------------------------------------

    def progress(self, force: bool = False) -> None:
        callback = self.importer.on_progress
        if callback is None:
            return
        now = time.perf_counter()
        if not force and now < self.next_progress:
            return
        self.next_progress = now + self.importer.progress_interval
        snapshot = ImportProgress(
            bucket=self.obj.bucket, key=self.obj.key, bytes_read=self.bytes_read,
            bytes_total=self.bytes_total, rows_read=self.rows_read,
            rows_written=self.rows_written, rows_rejected=self.rows_rejected,
            elapsed=now - self.started, done=force)
        try:
            callback(snapshot)
        except Exception:
            logger.exception("s3 import: the progress callback failed")

    # -- reading ----------------------------------------------------------------------

    async def read(self, body: Any, send: Any) -> None:
        """Stream the body through the decoder and csv; queue chunks of valid rows."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        parser = _CsvRows()
        size = self.importer.read_size
        async with send:
            try:
                while True:
                    data = await body.read(size)
                    final = not data
                    try:
                        text = decoder.decode(data, final=final)
                    except UnicodeDecodeError as exc:
                        offset = self.bytes_read + exc.start
                        raise CsvDecodeError(
                            f"the object is not UTF-8 text: byte {offset} "
                            f"({data[exc.start:exc.start + 1]!r}) cannot be decoded; "
                            "save the file as UTF-8",
                            offset=offset) from exc
                    self.bytes_read += len(data)
                    parser.push(text, final)
                    for line, row in parser.rows(final):
                        if isinstance(row, csv.Error):
                            if self.header is None:
                                raise CsvHeaderError(f"line {line}: the header is not valid "
                                                     f"CSV ({row})", line=line)
                            self.rows_read += 1
                            self.reject(line, [], [], f"not valid CSV: {row}")
                            continue
                        chunk = self.row(line, row)
                        if chunk is not None:
                            await send.send(chunk)
                    self.progress()
                    if final:
                        break
                if self.header is None:
                    raise CsvHeaderError("the file is empty: it has no header line")
                chunk = self.flush()
                if chunk is not None:
                    await send.send(chunk)
            except Exception as exc:
                self.fail(exc)

    def open_header(self, line: int, row: list[str]) -> None:
        names = [name.strip() for name in row]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        twice = sorted(n for n, c in counts.items() if c > 1 and n)
        if twice:
            raise CsvHeaderError(
                f"line {line}: column {', '.join(map(repr, twice))} appears more than once "
                "in the header", found=names, line=line)
        present = frozenset(n for n in names if n)
        missing = [c for c in self.importer.required_columns if c not in present]
        if missing:
            raise CsvHeaderError(
                f"line {line}: the header lacks the required column"
                f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                f"(found: {', '.join(map(repr, names)) or 'nothing'}); the model needs "
                f"{', '.join(map(repr, self.importer.required_columns))}",
                missing=missing, found=names, line=line)
        self.header = list(row)
        self.columns = names
        self.present = present

    def row(self, line: int, row: list[str]) -> Optional[_Chunk]:
        """Validate one row; return a chunk when one is full."""
        if self.header is None:
            if not row or not any(cell.strip() for cell in row):
                return None  # blank lines before the header
            self.open_header(line, row)
            return None
        importer = self.importer
        strip = importer.strip
        if not row:
            return None  # a blank line
        cells = [cell.strip() for cell in row] if strip else row
        empty = importer.empty_values
        if not "".join(cells) if self.blank_is_empty else \
                all(cell in empty for cell in cells):
            return None  # a line of empty cells, as spreadsheets write them
        self.rows_read += 1
        columns = self.columns
        if len(cells) > len(columns):
            self.reject(line, row, [],
                        f"the row has {len(cells)} values but the header has "
                        f"{len(columns)} columns")
            return None
        data = {name: cell for name, cell in zip(columns, cells)
                if name and cell not in empty}
        try:
            model = importer.model.model_validate(data)
        except self.validation_error as exc:
            self.reject(line, row, *self._explain(exc, data, len(cells)))
            return None
        try:
            item = {name: _attribute(value) for name, value in importer.item(model).items()}
        except (ValueError, TypeError) as exc:
            self.reject(line, row, [], f"cannot be stored in DynamoDB: {exc}")
            return None
        try:
            key = _item_key(item, self.key_attributes)
        except _KeyProblem as exc:
            self.reject(line, row, [exc.name], str(exc))
            return None
        chunk = self.chunk
        if key in chunk.entries:
            self.rows_duplicate += 1  # the later row wins
        chunk.entries[key] = _Entry(line, row, item)
        if len(chunk.entries) >= BATCH_SIZE:
            return self.flush()
        return None

    def _explain(self, exc: Any, data: Mapping[str, str],
                 width: int) -> tuple[list[str], str]:
        fields: list[str] = []
        parts: list[str] = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err.get("loc", ())) or "<row>"
            fields.append(loc)
            if err.get("type") == "missing" and loc in self.present:
                index = self.columns.index(loc)
                msg = "empty value" if index < width else \
                    f"missing value (the row has {width} of {len(self.columns)} columns)"
            else:
                msg = str(err.get("msg", "invalid"))
                if loc in data:
                    msg += f" (got {data[loc][:60]!r})"
            parts.append(f"{loc}: {msg}")
        return fields, "; ".join(parts) or str(exc)

    def flush(self) -> Optional[_Chunk]:
        """Close the current chunk; make it wait for in-flight chunks sharing a key."""
        chunk = self.chunk
        if not chunk.entries:
            return None
        self.chunk = _Chunk()
        inflight = self.inflight
        waits: dict[int, _Chunk] = {}
        for key in chunk.entries:
            earlier = inflight.get(key)
            if earlier is not None and not earlier.finished:
                waits[id(earlier)] = earlier
            inflight[key] = chunk
        chunk.waits = list(waits.values())
        return chunk

    # -- writing ----------------------------------------------------------------------

    async def write(self, chunk: _Chunk) -> None:
        try:
            for earlier in chunk.waits:
                await earlier.wait()
            chunk.waits = []
            await self._write(chunk)
        except Exception as exc:
            self.fail(exc)
        finally:
            chunk.finished = True
            if chunk.done is not None:
                chunk.done.set()
            inflight = self.inflight
            for key in chunk.entries:
                if inflight.get(key) is chunk:
                    del inflight[key]
            self.progress()

    def _retry_wait(self, attempt: int) -> Optional[float]:
        """The wait before retry ``attempt``, or None when no retry may be made."""
        retry = self.importer.retry
        if attempt >= retry.attempts:
            return None
        delay = retry.delay(attempt)
        if self.deadline is not None and anyio.current_time() + delay >= self.deadline:
            return None
        return delay

    async def _write(self, chunk: _Chunk) -> None:
        table = self.importer.table_name
        dynamodb = self.clients.dynamodb
        pending = chunk.entries
        attempt = 0
        while pending:
            requests = [{"PutRequest": {"Item": entry.item}} for entry in pending.values()]
            try:
                response = await dynamodb.batch_write_item(RequestItems={table: requests})
            except Exception as exc:
                if _error_code(exc) == "ValidationException":
                    # One of the items is refused: find which, one by one.
                    await self._write_one_by_one(pending)
                    return
                attempt += 1
                await self._back_off(attempt, exc)
                continue
            unprocessed = (response.get("UnprocessedItems") or {}).get(table) or []
            self.rows_written += len(pending) - len(unprocessed)
            if not unprocessed:
                return
            remaining: dict[Any, _Entry] = {}
            for request in unprocessed:
                key = _item_key(request["PutRequest"]["Item"], self.key_attributes)
                remaining[key] = pending[key]
            pending = remaining
            attempt += 1
            delay = self._retry_wait(attempt)
            if delay is None:
                for entry in pending.values():
                    self.reject(entry.line, entry.fields, [],
                                f"not written: DynamoDB left it unprocessed (throttled) "
                                f"after {attempt} attempts")
                return
            self.write_retries += 1
            await anyio.sleep(delay)

    async def _write_one_by_one(self, entries: Mapping[Any, _Entry]) -> None:
        table = self.importer.table_name
        dynamodb = self.clients.dynamodb
        for entry in entries.values():
            attempt = 0
            while True:
                try:
                    await dynamodb.put_item(TableName=table, Item=entry.item)
                except Exception as exc:
                    if _error_code(exc) == "ValidationException":
                        message = getattr(exc, "response", {}).get("Error", {}).get(
                            "Message", str(exc))
                        self.reject(entry.line, entry.fields, [],
                                    f"refused by DynamoDB: {message}")
                        break
                    attempt += 1
                    await self._back_off(attempt, exc)
                    continue
                self.rows_written += 1
                break

    async def _back_off(self, attempt: int, exc: Exception) -> None:
        """Wait before retry ``attempt`` of a failed request; re-raise ``exc`` when it is
        not transient or when the deadline leaves no time for the wait."""
        delay = self._retry_wait(attempt) if is_transient(exc) else None
        if delay is None:
            raise exc
        self.write_retries += 1
        await anyio.sleep(delay)

    # -- after the run ----------------------------------------------------------------

    def errors_key_for(self, destination: str) -> str:
        stem = destination[:-4] if destination.lower().endswith(".csv") else destination
        return f"{stem}.errors.csv"

    async def finish(self, etag: Optional[str]) -> ObjectResult:
        """Write the errors CSV, move the object, publish the summary."""
        obj = self.obj
        importer = self.importer
        failed = self.fatal is not None
        status = "failed" if failed else "rejected" if self.rows_rejected else "archived"
        prefix = importer.archive_prefix if status == "archived" else importer.error_prefix
        destination: Optional[str] = prefix + obj.key
        errors_key: Optional[str] = None
        try:
            if status != "archived":
                assert destination is not None
                if self.fatal is not None:
                    line = getattr(self.fatal, "line", None)
                    self._spool_row([str(line or ""), _describe(self.fatal)])
                errors_key = self.errors_key_for(destination)
                await self._upload_errors(errors_key)
            assert destination is not None
            await self._move(destination, etag)
        except Exception as exc:
            logger.exception("s3 import: could not move s3://%s/%s", obj.bucket, obj.key)
            if self.fatal is None:
                self.fatal = exc
            status = "failed"
            destination = None
        finally:
            if self.spool is not None:
                self.spool.close()
        result = self.result(status, destination, errors_key, None)
        message_id = await self._publish(result)
        if message_id is not None:
            result = self.result(status, destination, errors_key, message_id)
        self.progress(force=True)
        return result

    def result(self, status: str, destination: Optional[str], errors_key: Optional[str],
               message_id: Optional[str]) -> ObjectResult:
        unwritten = self.rows_read - self.rows_written - self.rows_duplicate \
            - self.rows_rejected
        return ObjectResult(
            bucket=self.obj.bucket, key=self.obj.key, status=status,
            rows_read=self.rows_read, rows_written=self.rows_written,
            rows_duplicate=self.rows_duplicate, rows_rejected=self.rows_rejected,
            rows_unwritten=max(0, unwritten),
            errors=tuple(sorted(self.errors, key=_line_of)),
            exception=self.fatal, destination_key=destination, errors_key=errors_key,
            duration=time.perf_counter() - self.started, bytes_read=self.bytes_read,
            write_retries=self.write_retries, message_id=message_id)

    async def _upload_errors(self, key: str) -> None:
        if self.spool is None:
            return
        self._flush_spool()
        self.spool.seek(0)
        await self.clients.s3.upload_fileobj(
            self.spool, self.obj.bucket, key,
            ExtraArgs={"ContentType": "text/csv; charset=utf-8"})

    async def _move(self, destination: str, etag: Optional[str]) -> None:
        obj = self.obj
        s3 = self.clients.s3
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            source["VersionId"] = obj.version_id
        if self.bytes_total is not None and self.bytes_total > _COPY_LIMIT:
            await s3.copy(source, obj.bucket, destination)
        else:
            extra = {"CopySourceIfMatch": etag} if etag else {}
            # If the object was replaced while it was imported, the copy fails and the
            # new object stays where it is, for its own event.
            await s3.copy_object(CopySource=source, Bucket=obj.bucket, Key=destination,
                                 **extra)
        await s3.delete_object(Bucket=obj.bucket, Key=obj.key)

    async def _publish(self, result: ObjectResult) -> Optional[str]:
        importer = self.importer
        sns = self.clients.sns
        if importer.topic_arn is None or sns is None:
            return None
        body = {"source": "asyncbatch.s3_import", "table": importer.table_name,
                **result.to_dict()}
        subject = _subject(result)
        try:
            response = await sns.publish(
                TopicArn=importer.topic_arn, Subject=subject,
                Message=json.dumps(body, indent=2, ensure_ascii=False),
                MessageAttributes={"status": {"DataType": "String",
                                              "StringValue": result.status}})
        except Exception:
            logger.exception("s3 import: could not publish the summary of s3://%s/%s",
                             result.bucket, result.key)
            return None
        message_id = response.get("MessageId")
        return str(message_id) if message_id is not None else None


def _line_of(error: RowError) -> int:
    return error.line


def _subject(result: ObjectResult) -> str:
    """An SNS subject: ASCII, one line, under 100 characters."""
    name = result.key.rsplit("/", 1)[-1]
    text = f"CSV import {result.status}: {name} ({result.rows_written}/{result.rows_read} rows)"
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:99]


# -- the importer ------------------------------------------------------------------


class S3CsvImporter(Generic[M]):
    """Imports CSV objects named by S3 events into a DynamoDB table.

    ``model`` is a pydantic model; its required fields (by alias when one is set) are
    the required columns. Options:

    - ``topic_arn``: SNS topic that receives one summary per object (``None``: none).
    - ``concurrency``: ``BatchWriteItem`` requests in flight at once (the bound of the
      worker pool; the DynamoDB connection pool is sized to it).
    - ``key_attributes``: the table's key attribute names; ``None`` reads them with
      ``DescribeTable`` once per run.
    - ``item``: turns a validated model into the item's attributes (default:
      ``model.model_dump(exclude_none=True)``).
    - ``empty_values``: cell texts that mean "no value" (default ``("",)``; e.g. add
      ``"NULL"``); ``strip``: strip blanks around cells (default ``True``).
    - ``archive_prefix`` / ``error_prefix``: where objects go (``"archive/"``,
      ``"error/"``, in the same bucket). Objects under them are never imported, so a
      trigger on the whole bucket cannot loop.
    - ``retry``: backoff for unprocessed items and throttling (default: 20 attempts,
      full jitter from 50 ms, at most 5 s per wait); never past the deadline.
    - ``deadline_margin``: with a Lambda context, stop reading and writing this many
      seconds before the timeout, leaving time to move the object and publish
      (``"auto"``: 10% of the remaining time, between 1 and 30 seconds).
    - ``queue_size``: chunks of 25 rows buffered between the reader and the writers
      (default: ``concurrency``); memory is bounded by it, not by the file.
    - ``read_size``: bytes per S3 read (64 KiB).
    - ``max_errors``: row errors kept on the result (all go to the errors CSV).
    - ``on_progress`` / ``progress_interval``: a callback receiving ``ImportProgress``
      at most every ``progress_interval`` seconds, and once at the end of each object.
    - ``session``: the ``aioboto3.Session`` to make clients with (default: one made on
      first use and kept, so that warm invocations do not load the service models again).

    The importer holds configuration (and its aioboto3 session) only; one instance may
    serve concurrent runs. Keep one per Lambda container, at module level.
    """

    def __init__(
        self,
        model: type[M],
        table_name: str,
        *,
        topic_arn: Optional[str] = None,
        concurrency: int = 16,
        key_attributes: Optional[Sequence[str]] = None,
        item: Optional[Callable[[M], Mapping[str, Any]]] = None,
        empty_values: Sequence[str] = ("",),
        strip: bool = True,
        archive_prefix: str = "archive/",
        error_prefix: str = "error/",
        retry: Optional[Retry] = None,
        deadline_margin: Union[float, str] = _AUTO,
        queue_size: Optional[int] = None,
        read_size: int = 64 * 1024,
        max_errors: int = 100,
        on_progress: Optional[Callable[[ImportProgress], None]] = None,
        progress_interval: float = 0.5,
        session: Any = None,
    ) -> None:
        if not (hasattr(model, "model_validate") and hasattr(model, "model_fields")):
            raise ConfigurationError(f"model={model!r}: give a pydantic v2 model class")
        if not isinstance(table_name, str) or not table_name:
            raise ConfigurationError("table_name: give the DynamoDB table's name")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) \
                or concurrency < 1:
            raise ConfigurationError(
                f"concurrency={concurrency!r}: give a whole number >= 1 (BatchWriteItem "
                "requests in flight), e.g. concurrency=16")
        if queue_size is not None and (not isinstance(queue_size, int) or queue_size < 1):
            raise ConfigurationError(f"queue_size={queue_size!r}: give a number >= 1 or None")
        if retry is None:
            retry = Retry(attempts=20, base=0.05, cap=5.0)  # its own jitter source
        elif not isinstance(retry, Retry):
            raise ConfigurationError(f"retry={retry!r}: give asyncbatch.Retry(...) or None")
        if deadline_margin != _AUTO and not (
            isinstance(deadline_margin, (int, float)) and deadline_margin >= 0
        ):
            raise ConfigurationError(
                f"deadline_margin={deadline_margin!r}: give seconds >= 0 or 'auto'")
        if not archive_prefix or not error_prefix or archive_prefix == error_prefix:
            raise ConfigurationError(
                "archive_prefix and error_prefix must be two different, non-empty prefixes")
        if read_size < 1024:
            raise ConfigurationError("read_size: give at least 1024 bytes")
        self.model = model
        self.table_name = table_name
        self.topic_arn = topic_arn
        self.concurrency = concurrency
        self.key_attributes = tuple(key_attributes) if key_attributes is not None else None
        self.item: Callable[[M], Mapping[str, Any]] = item or _dump
        self.empty_values = frozenset(empty_values) | {""}
        self.strip = strip
        self.archive_prefix = archive_prefix
        self.error_prefix = error_prefix
        self.retry = retry
        self.deadline_margin = deadline_margin
        self.queue_size = queue_size if queue_size is not None else concurrency
        self.read_size = read_size
        self.max_errors = max_errors
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.session = session
        self.required_columns = tuple(
            (field.alias or name) for name, field in model.model_fields.items()
            if field.is_required())

    def __repr__(self) -> str:
        return (f"S3CsvImporter({self.model.__name__}, table_name={self.table_name!r}, "
                f"concurrency={self.concurrency})")

    # -- clients ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_clients(self) -> AsyncIterator[Clients]:
        """aioboto3 clients for S3, DynamoDB and SNS, their connection pools sized to
        ``concurrency`` (aiobotocore's default of 10 would silently cap it).
        ``AWS_ENDPOINT_URL`` is honoured (botocore reads it)."""
        import aioboto3
        from aiobotocore.config import AioConfig

        session = self.session
        if session is None:
            # Made once and kept: a session caches the service models, which take
            # ~0.2 s to load; clients are made per run, in the running event loop.
            session = self.session = aioboto3.Session()
        pool_size = max(10, self.concurrency + 2)
        async with contextlib.AsyncExitStack() as stack:
            s3 = await stack.enter_async_context(session.client(
                "s3", config=AioConfig(max_pool_connections=10)))
            # The items are built here, well-formed: botocore's client-side validation
            # of every nested attribute (~7 ms per 25-item request) is skipped.
            dynamodb = await stack.enter_async_context(session.client(
                "dynamodb", config=AioConfig(max_pool_connections=pool_size,
                                             parameter_validation=False)))
            sns = None
            if self.topic_arn is not None:
                sns = await stack.enter_async_context(session.client("sns"))
            yield Clients(s3, dynamodb, sns)

    # -- running ----------------------------------------------------------------------

    async def run(self, event: Any, context: Any = None, *,
                  clients: Optional[Clients] = None) -> ImportResult:
        """Import every object of an S3 event, one after another. Never raises for a
        bad file: each object's fate is on the result. Raises ``InvalidEventError`` for
        an event that is not an S3 notification, before anything is read."""
        objects = s3_objects(event)
        started = time.perf_counter()
        if not objects:
            return ImportResult((), 0.0)
        if clients is None:
            async with self.open_clients() as opened:
                results = await self._run_all(objects, context, opened)
        else:
            results = await self._run_all(objects, context, clients)
        return ImportResult(tuple(results), time.perf_counter() - started)

    async def _run_all(self, objects: Sequence[S3Object], context: Any,
                       clients: Clients) -> list[ObjectResult]:
        deadline = self._deadline(context)
        keys = self.key_attributes
        if keys is None:
            keys = await self._describe_keys(clients)
        results = []
        for obj in objects:
            results.append(await self._run_one(obj, clients, keys, deadline))
        return results

    async def import_object(self, bucket: str, key: str, context: Any = None, *,
                            clients: Optional[Clients] = None) -> ObjectResult:
        """Import one object (its key as stored, not URL-encoded)."""
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": bucket},
                                     "object": {"key": _quote(key)}}}]}
        result = await self.run(event, context, clients=clients)
        return result.objects[0]

    def lambda_handler(self, event: Any, context: Any = None) -> dict[str, Any]:
        """A synchronous Lambda handler: imports the event's objects on the event loop
        asyncbatch keeps per thread; returns ``ImportResult.to_dict()``."""
        import asyncio

        from .._processor import _loop

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigurationError(
                "lambda_handler was called inside a running event loop; use "
                "'await importer.run(event, context)' there")
        result = _loop().run_until_complete(self.run(event, context))
        return result.to_dict()

    def _deadline(self, context: Any) -> Optional[float]:
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None or not callable(remaining_ms):
            return None
        try:
            remaining = float(remaining_ms()) / 1000.0
        except (TypeError, ValueError):
            return None
        if self.deadline_margin == _AUTO:
            margin = min(max(remaining * 0.1, 1.0), 30.0)
        else:
            assert isinstance(self.deadline_margin, (int, float))
            margin = float(self.deadline_margin)
        return anyio.current_time() + remaining - margin

    async def _describe_keys(self, clients: Clients) -> tuple[str, ...]:
        response = await clients.dynamodb.describe_table(TableName=self.table_name)
        schema = response["Table"]["KeySchema"]
        ordered = sorted(schema, key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
        return tuple(str(k["AttributeName"]) for k in ordered)

    def _skipped(self, obj: S3Object, reason: Optional[BaseException]) -> ObjectResult:
        return ObjectResult(
            bucket=obj.bucket, key=obj.key, status="skipped", rows_read=0, rows_written=0,
            rows_duplicate=0, rows_rejected=0, rows_unwritten=0, errors=(),
            exception=reason, destination_key=None, errors_key=None, duration=0.0,
            bytes_read=0, write_retries=0, message_id=None)

    async def _run_one(self, obj: S3Object, clients: Clients, key_attributes: tuple[str, ...],
                       deadline: Optional[float]) -> ObjectResult:
        if not obj.event_name.startswith("ObjectCreated"):
            return self._skipped(obj, None)
        if obj.key.startswith((self.archive_prefix, self.error_prefix)):
            logger.info("s3 import: s3://%s/%s is under the archive or error prefix; skipped",
                        obj.bucket, obj.key)
            return self._skipped(obj, None)
        if deadline is not None and anyio.current_time() >= deadline:
            return self._skipped(obj, ImportDeadlineError(
                "not started: the Lambda deadline was near"))
        run = _ObjectRun(self, obj, clients, key_attributes, deadline)
        request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            request["VersionId"] = obj.version_id
        try:
            response = await clients.s3.get_object(**request)
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404", "NoSuchVersion"):
                # S3 delivers events at least once: a repeated event finds the object
                # already moved.
                logger.info("s3 import: s3://%s/%s is gone (already imported?); skipped",
                            obj.bucket, obj.key)
                return self._skipped(obj, exc)
            run.fatal = exc
            return await run.finish(None)
        body = response["Body"]
        length = response.get("ContentLength")
        if isinstance(length, int):
            run.bytes_total = length
        etag = response.get("ETag")
        try:
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) \
                    as scope:
                run.scope = scope
                send, receive = anyio.create_memory_object_stream[_Chunk](self.queue_size)
                async with receive, anyio.create_task_group() as tg:
                    tg.start_soon(run.read, body, send)
                    await pool(receive, run.write, self.concurrency)
            if scope.cancelled_caught and run.fatal is None:
                run.fatal = ImportDeadlineError(
                    f"the Lambda deadline came after {run.rows_read} rows "
                    f"({run.bytes_read} of {run.bytes_total} bytes); the rest was not "
                    "imported: put the file again to import it whole")
        finally:
            body.close()
        return await run.finish(etag)


def _dump(model: BaseModel) -> Mapping[str, Any]:
    return model.model_dump(exclude_none=True)


def _quote(key: str) -> str:
    from urllib.parse import quote_plus

    return quote_plus(key, safe="/")


async def import_csv_objects(
    event: Any,
    model: type[M],
    table_name: str,
    *,
    context: Any = None,
    topic_arn: Optional[str] = None,
    **options: Any,
) -> ImportResult:
    """Import the CSV objects of an S3 event; a one-call form of
    ``S3CsvImporter(model, table_name, topic_arn=..., **options).run(event, context)``."""
    importer = S3CsvImporter(model, table_name, topic_arn=topic_arn, **options)
    return await importer.run(event, context)
