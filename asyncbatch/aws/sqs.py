"""SQS on aioboto3: a continuous worker (``consume``) and a failure sink that sends poison
records to a dead-letter queue (``SQSDeadLetterSink``).

::

    from asyncbatch.aws.sqs import consume

    summary = await consume(QUEUE_URL, handle, processor, stop=stop_event)

``consume`` receives a queue's messages and runs them through ``processor.stream()``
until ``stop`` is set (see its docstring, and the "Running as a worker" guide).

The dead-letter sink:

::

    from asyncbatch.aws.sqs import SQSDeadLetterSink

    sink = SQSDeadLetterSink(DLQ_URL)              # owns its client while entered
    processor = asyncbatch.AsyncBatchProcessor(sink=sink)

    async def main(event, context):
        async with sink:                           # or: SQSDeadLetterSink.open(DLQ_URL)
            return await asyncbatch.async_process_partial_response(
                event, handle, processor, context)

Each permanently failed record becomes one SQS message. Its body is a JSON document::

    {"source": "asyncbatch", "version": 1,
     "identifier": "<itemIdentifier>", "eventType": "SQS", "eventSourceARN": "arn:...",
     "attempts": 1, "failedAt": "2026-01-01T00:00:00.000Z",
     "error": {"type": "ValueError", "message": "...", "traceback": "...",
               "truncated": false},
     "record": {... the record exactly as the event held it ...}}

with the message attributes ``ErrorType`` (the ``type`` above), ``EventType`` and
``Attempts``. For a FIFO queue (URL ending in ``.fifo``) the ``MessageGroupId`` is the
record's ordering key (FIFO message group, Kinesis partition key, DynamoDB primary key;
the identifier for records without one) and the ``MessageDeduplicationId`` its
identifier; either is replaced by ``sha256-<hex>`` when it is not a valid SQS id.

The error's ``message`` and ``traceback`` come from asyncbatch's safe formatters: an
exception whose ``__str__`` raises, or that holds megabytes or lone surrogates, still
gives text (at most 2,000 characters of message, 20,000 of traceback), never an error.

Size: a message larger than ``max_message_bytes`` (default 256 KiB, SQS's limit before
queues allowed 1 MiB; body and attributes counted) first loses the traceback, then as
much of the error message as needed, and says so (``"truncated": true``,
``"messageLength"``). A record that does not fit even then is refused
(``SQSSinkError``, code ``"MessageTooLarge"``; the record is reported as failed), or,
with ``oversize="omit_record"``, sent without its ``record`` (``"record": null``,
``"recordOmitted": {"bytes": n}``). Nothing is ever cut silently.

Concurrent calls are coalesced: the first caller to find no open batch leads one, waits
up to ``linger`` seconds for up to ``max_batch`` entries (or 256 KiB in all) and sends
them in one ``SendMessageBatch``; the others wait for it, and each returns or raises for
its own entry (``Failed`` entries and errors of the whole call raise
``SQSSinkError``). No task is started: everything runs in the callers' tasks, so
nothing outlives ``process()``. If the leading task is cancelled, the entries of its
batch are refused (they may or may not have reached the queue): their records are
reported as failed and redelivered, never lost.

aioboto3 runs on asyncio only. ``import asyncbatch`` never imports this module, and
this module imports aioboto3 only when it opens a client.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Optional

import anyio
import anyio.lowlevel

from .._core.hooks import Failure
from .._errors import (
    AsyncBatchError,
    ConfigurationError,
    describe,
    exception_text,
    traceback_text,
    type_name,
)
from ._client import error_code as _error_code
from ._client import open_client, region_in_url, require_asyncio
from ._consumer import ConsumeSummary, consume

# the worker, defined in ._consumer, shows this module as its own
ConsumeSummary.__module__ = consume.__module__ = __name__

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SQS_MAX_BATCH", "ConsumeSummary", "SQSDeadLetterSink",
           "SQSSinkError", "consume"]

#: Entries in one ``SendMessageBatch`` call, at most.
SQS_MAX_BATCH = 10
#: The classic SQS message size limit (body plus attributes), also the limit of a batch.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_LARGEST_MESSAGE_BYTES = 1024 * 1024

_OVERSIZE = ("refuse", "omit_record")
# Characters SQS accepts in a message body (XML 1.0 characters).
_INVALID_BODY_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# MessageGroupId / MessageDeduplicationId: 1 to 128 printable ASCII characters, no space.
_VALID_FIFO_ID = re.compile(r"[!-~]{1,128}\Z")


class SQSSinkError(AsyncBatchError):
    """The dead-letter queue did not take a record; the record is reported as failed
    (a ``SinkError`` whose ``__cause__`` is this).

    ``identifier`` names the record, ``code`` is the SQS error code when there is one
    (the ``Failed`` entry's code, the code of the call's error, or ``"MessageTooLarge"``),
    ``sender_fault`` whether SQS blamed the request (``None`` when unknown)."""

    def __init__(
        self,
        message: str,
        *,
        identifier: Optional[str] = None,
        code: Optional[str] = None,
        sender_fault: Optional[bool] = None,
    ) -> None:
        super().__init__(message)
        self.identifier = identifier
        self.code = code
        self.sender_fault = sender_fault


class _Entry:
    """One caller's message, and what became of it."""

    __slots__ = ("error", "identifier", "params", "settled", "size")

    def __init__(self, identifier: str, params: dict[str, Any], size: int) -> None:
        self.identifier = identifier
        self.params = params
        self.size = size
        self.settled = False
        self.error: Optional[SQSSinkError] = None


class _Batch:
    """Entries that go out in one ``SendMessageBatch``. ``full`` wakes the leader early;
    ``done`` is set once every entry is settled."""

    __slots__ = ("closed", "done", "entries", "full", "size")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.size = 0
        self.closed = False
        self.full = anyio.Event()
        self.done = anyio.Event()


class SQSDeadLetterSink:
    """A ``FailureSink`` sending each failure to the SQS queue at ``queue_url``.

    Give a ready aioboto3 SQS ``client`` (you own it), or let the sink own one: enter it
    (``async with sink:``, re-entrant, also from concurrent tasks) or use
    ``async with SQSDeadLetterSink.open(queue_url) as sink:``. The owned client is made
    from ``session`` (default: a new ``aioboto3.Session()``) with ``endpoint_url``,
    ``region_name`` (default: the queue URL's region, else the environment's) and
    ``config``.

    ``max_batch`` (1 to 10) entries at most per ``SendMessageBatch``; ``linger`` seconds
    the first caller of a batch waits for others to join it; ``max_message_bytes`` the
    size limit of one message and of one batch; ``include_traceback`` whether the body
    carries the formatted traceback; ``oversize`` what to do with a record too large to
    send (``"refuse"`` or ``"omit_record"``).
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        session: Any = None,
        endpoint_url: Optional[str] = None,
        region_name: Optional[str] = None,
        config: Any = None,
        max_batch: int = SQS_MAX_BATCH,
        linger: float = 0.02,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        include_traceback: bool = True,
        oversize: str = "refuse",
    ) -> None:
        if not isinstance(queue_url, str) or not queue_url:
            raise ConfigurationError(f"queue_url={queue_url!r}: give the queue's URL")
        if client is not None and (session is not None or endpoint_url is not None
                                   or region_name is not None or config is not None):
            raise ConfigurationError(
                "give either client= (a client you own) or session=/endpoint_url=/"
                "region_name=/config= (for a client the sink opens), not both")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) \
                or not 1 <= max_batch <= SQS_MAX_BATCH:
            raise ConfigurationError(
                f"max_batch={max_batch!r}: give a whole number from 1 to {SQS_MAX_BATCH} "
                "(SendMessageBatch takes at most 10 entries)")
        if isinstance(linger, bool) or not isinstance(linger, (int, float)) \
                or not 0 <= linger < float("inf"):
            raise ConfigurationError(f"linger={linger!r}: give seconds >= 0, e.g. 0.02")
        if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) \
                or not 1024 <= max_message_bytes <= _LARGEST_MESSAGE_BYTES:
            raise ConfigurationError(
                f"max_message_bytes={max_message_bytes!r}: give the queue's "
                f"MaximumMessageSize, from 1024 to {_LARGEST_MESSAGE_BYTES}")
        if oversize not in _OVERSIZE:
            raise ConfigurationError(
                f"oversize={oversize!r}: give 'refuse' (the record is reported as failed) "
                "or 'omit_record' (send the error without the record)")
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.max_batch = max_batch
        self.linger = float(linger)
        self.max_message_bytes = max_message_bytes
        self.include_traceback = include_traceback
        self.oversize = oversize
        if region_name is None:
            region_name = region_in_url(queue_url)
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url, "region_name": region_name, "config": config}
        self._session = session
        self._given_client = client is not None
        self._client: Any = client
        self._stack: Optional[AsyncExitStack] = None
        self._users = 0
        self._opening: Optional[anyio.Event] = None
        self._batch: Optional[_Batch] = None

    def __repr__(self) -> str:
        state = "client given" if self._given_client else (
            "open" if self._client is not None else "closed")
        return f"SQSDeadLetterSink({self.queue_url!r}, {state})"

    # -- owning a client ---------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, queue_url: str, **options: Any) -> AsyncIterator[SQSDeadLetterSink]:
        """``async with SQSDeadLetterSink.open(url, **options) as sink:`` — a sink that
        owns its aioboto3 client for the duration of the block."""
        sink = cls(queue_url, **options)
        async with sink:
            yield sink

    async def __aenter__(self) -> SQSDeadLetterSink:
        if self._given_client:
            return self
        _require_asyncio()
        self._users += 1
        try:
            if self._users == 1:
                opening = self._opening = anyio.Event()
                try:
                    self._stack, self._client = await self._open_client()
                finally:
                    self._opening = None
                    opening.set()
            elif self._opening is not None:
                await self._opening.wait()
                if self._client is None:
                    raise SQSSinkError(f"opening the SQS client for {self.queue_url} failed")
        except BaseException:
            self._users -= 1
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._given_client:
            return
        self._users -= 1
        if self._users == 0 and self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def _open_client(self) -> tuple[AsyncExitStack, Any]:
        return await open_client(self._session, "sqs", self._client_options)

    # -- the sink ----------------------------------------------------------------------

    async def __call__(self, failure: Failure, /) -> None:
        """Send ``failure`` to the queue; return once SQS took it, raise if it did not."""
        client = self._client
        if client is None:
            raise SQSSinkError(
                f"{self!r} is not open: enter it ('async with sink:'), use "
                "SQSDeadLetterSink.open(url), or give client=", identifier=failure.identifier)
        _require_asyncio()
        entry = self._entry(failure)
        batch = self._batch
        leader = batch is None or batch.size + entry.size > self.max_message_bytes
        if leader:
            if batch is not None:
                self._close(batch)
            batch = self._batch = _Batch()
        assert batch is not None
        entry.params["Id"] = str(len(batch.entries))  # unique within its batch
        batch.entries.append(entry)
        batch.size += entry.size
        if len(batch.entries) >= self.max_batch:
            self._close(batch)
        if leader:
            await self._lead(client, batch)
        else:
            await batch.done.wait()
        if entry.error is not None:
            raise entry.error

    def _close(self, batch: _Batch) -> None:
        batch.closed = True
        if self._batch is batch:
            self._batch = None
        batch.full.set()

    async def _lead(self, client: Any, batch: _Batch) -> None:
        try:
            if not batch.closed:
                if self.linger > 0:
                    with anyio.move_on_after(self.linger):
                        await batch.full.wait()
                else:
                    await anyio.lowlevel.checkpoint()  # let callers already running join
            self._close(batch)
            await self._send(client, batch)
        finally:
            self._close(batch)
            for entry in batch.entries:
                if not entry.settled:
                    entry.settled = True
                    entry.error = SQSSinkError(
                        f"record {entry.identifier}: the task sending its dead-letter message "
                        f"to {self.queue_url} was cancelled; it may or may not have arrived",
                        identifier=entry.identifier)
            batch.done.set()

    async def _send(self, client: Any, batch: _Batch) -> None:
        entries = batch.entries
        try:
            response = await client.send_message_batch(
                QueueUrl=self.queue_url, Entries=[entry.params for entry in entries])
        except Exception as exc:
            code = _error_code(exc)
            for entry in entries:
                error = SQSSinkError(
                    f"record {entry.identifier}: SendMessageBatch to {self.queue_url} failed "
                    f"({code + ': ' + exception_text(exc) if code else describe(exc)})",
                    identifier=entry.identifier, code=code)
                error.__cause__ = exc
                entry.error = error
                entry.settled = True
            return
        pending = {entry.params["Id"]: entry for entry in entries}
        for item in response.get("Successful") or ():
            found = pending.pop(item.get("Id"), None)
            if found is not None:
                found.settled = True
        for item in response.get("Failed") or ():
            found = pending.pop(item.get("Id"), None)
            if found is not None:
                code = item.get("Code")
                found.error = SQSSinkError(
                    f"record {found.identifier}: SQS refused its dead-letter message "
                    f"({code}: {item.get('Message', '')})",
                    identifier=found.identifier, code=code,
                    sender_fault=item.get("SenderFault"))
                found.settled = True
        for entry in pending.values():
            entry.error = SQSSinkError(
                f"record {entry.identifier}: SendMessageBatch returned no result for its "
                "dead-letter message", identifier=entry.identifier)
            entry.settled = True

    # -- the message -------------------------------------------------------------------

    def _entry(self, failure: Failure) -> _Entry:
        exc = failure.exception
        type_name = _type_name(exc)
        attributes = {
            "ErrorType": {"DataType": "String", "StringValue": type_name},
            "EventType": {"DataType": "String", "StringValue": str(failure.event_type)},
            "Attempts": {"DataType": "Number", "StringValue": str(failure.attempts)},
        }
        attributes_size = sum(
            len(name.encode()) + len(value["DataType"].encode())
            + len(value["StringValue"].encode())
            for name, value in attributes.items())
        document = _document(failure, type_name, self.include_traceback)
        limit = self.max_message_bytes - attributes_size
        body = _fit(document, limit)
        if body is None and self.oversize == "omit_record":
            raw_size = len(_dumps(failure.record.raw).encode("utf-8", "surrogatepass"))
            document = _document(failure, type_name, self.include_traceback)
            document["record"] = None
            document["recordOmitted"] = {
                "reason": f"the record does not fit in a {self.max_message_bytes}-byte message",
                "bytes": raw_size}
            body = _fit(document, limit)
        if body is None:
            raise SQSSinkError(
                f"record {failure.identifier}: its dead-letter message does not fit in "
                f"{self.max_message_bytes} bytes even without the error details; nothing "
                "was sent (give oversize='omit_record' to send the error without the record)",
                identifier=failure.identifier, code="MessageTooLarge")
        params: dict[str, Any] = {"MessageBody": body, "MessageAttributes": attributes}
        if self.fifo:
            params["MessageGroupId"] = _fifo_id(_group_text(failure))
            params["MessageDeduplicationId"] = _fifo_id(_identifier_text(failure))
        return _Entry(failure.identifier, params, len(body.encode("utf-8")) + attributes_size)


def _require_asyncio() -> None:
    require_asyncio("SQSDeadLetterSink", SQSSinkError)


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = getattr(cls, "__module__", None)
    name = str(getattr(cls, "__qualname__", None) or type_name(exc))
    return name if not module or module == "builtins" else f"{module}.{name}"


def _document(failure: Failure, type_name: str, include_traceback: bool) -> dict[str, Any]:
    exc = failure.exception
    # The shared formatters: whatever __str__ does (raise, give megabytes or lone
    # surrogates), the message and the traceback are bounded text.
    error: dict[str, Any] = {"type": type_name, "message": exception_text(exc)}
    fields = getattr(exc, "fields", None)
    if isinstance(fields, tuple) and fields:
        error["fields"] = list(fields)
    if include_traceback:
        error["traceback"] = traceback_text(exc)
    error["truncated"] = False
    now = time.time()
    return {
        "source": "asyncbatch",
        "version": 1,
        "identifier": failure.identifier,
        "eventType": str(failure.event_type),
        "eventSourceARN": failure.event_source_arn,
        "attempts": failure.attempts,
        "failedAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        + f".{int(now % 1 * 1000):03d}Z",
        "error": error,
        "record": failure.record.raw,
    }


def _dumps(value: Any) -> str:
    """Compact JSON of only characters SQS accepts (escaped when need be)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if _INVALID_BODY_CHAR.search(text):
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return text


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit(document: dict[str, Any], limit: int) -> Optional[str]:
    """The document as a body of at most ``limit`` bytes, shrinking its error part (the
    traceback, then the message) and saying so; ``None`` if even that is not enough."""
    body = _dumps(document)
    if _size(body) <= limit:
        return body
    error = document["error"]
    error["truncated"] = True
    if error.get("traceback") is not None:
        error["traceback"] = None
        body = _dumps(document)
        if _size(body) <= limit:
            return body
    message: str = error["message"]
    error["messageLength"] = len(message)
    error["message"] = ""
    body = _dumps(document)
    if _size(body) > limit:
        return None
    room = limit - _size(body)
    low, high = 0, len(message)  # the longest prefix whose JSON form fits in ``room``
    while low < high:
        mid = (low + high + 1) // 2
        if _size(_dumps(message[:mid])) - 2 <= room:
            low = mid
        else:
            high = mid - 1
    while True:  # escaping of the whole body may differ from the message's alone
        error["message"] = message[:low]
        body = _dumps(document)
        if _size(body) <= limit:
            return body
        low //= 2


def _group_text(failure: Failure) -> str:
    """The record's ordering key as text, as its source writes it; its identifier when
    it has none."""
    from .._sources import source_for

    try:
        key = source_for(failure.event_type).key_text(failure.record.raw)
    except Exception:
        key = None
    return key or _identifier_text(failure)


def _identifier_text(failure: Failure) -> str:
    """The identifier as text (a Kafka identifier is a mapping)."""
    from .._sources import source_for

    try:
        return source_for(failure.event_type).identifier_text(failure.identifier)
    except Exception:
        return str(failure.identifier)


def _fifo_id(text: str) -> str:
    """``text`` if it is a valid MessageGroupId / MessageDeduplicationId, else a stable
    hash of it."""
    if _VALID_FIFO_ID.match(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256-{digest}"

