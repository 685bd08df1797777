"""The errors asyncbatch raises, as one tree::

    AsyncBatchError                      base of everything below
    ├── InvalidEventError (ValueError)    the event is malformed; raised before any handler
    ├── ConfigurationError (ValueError)   a processor or entry point was misused; says the fix
    ├── InvalidResponseError (ValueError) a response Lambda would refuse (runner, simulate)
    ├── ResponseTooLargeError            no response within Lambda's 6 MB can answer the batch
    ├── BatchFailedError (ExceptionGroup) no record of the batch succeeded (Lambda retries)
    └── RecordError                      why one record did not succeed (on its outcome)
        ├── RecordDecodeError (ValueError)      its payload is not valid base64 / JSON / DynamoDB
        ├── RecordValidationError (ValueError)  it failed ``model=`` validation; names the fields
        ├── RecordTimeoutError (TimeoutError)   its handler ran past the per-record timeout
        ├── DeadlineExceededError (TimeoutError) Lambda's deadline came while it ran or waited
        ├── SinkError                           the failure sink did not accept it
        ├── HandlerCancelledError               the handler raised CancelledError itself
        ├── CallbackError                       a hook, predicate or reducer of yours raised
        ├── RecordSkippedError                  it was never run; ``reason`` says why
        └── IdempotencyError (in idempotency/)  idempotency kept it from succeeding (``key``)
            ├── IdempotencyInProgressError (TransientError) another invocation holds its key
            ├── IdempotencyValidationError (ValueError) its key was seen with another payload
            ├── IdempotencyKeyError (ValueError)    its key could not be computed
            └── IdempotencyStoreError               the store failed to claim its key

    and, in the AWS modules (imported only when used):

    ├── aws.sqs.SQSSinkError              SQS refused a dead-letter message (``code``)
    ├── aws.s3_import.S3ImportError       one CSV object could not be imported
    │   ├── CsvHeaderError (ValueError)       a required column is missing (names it)
    │   ├── CsvDecodeError (ValueError)       the file is not UTF-8 (gives the byte offset)
    │   ├── ImportDeadlineError (TimeoutError) the Lambda deadline came mid-import
    │   ├── S3MoveError                        a step after the writes (report, copy,
    │   │                                      publish, delete) did not finish
    │   └── ImportIncompleteError              raised by lambda_handler so that S3 retries
    └── runner.RunnerError                the local event-source runner
        ├── InvalidResponseError              also an asyncbatch.InvalidResponseError
        └── FunctionTimeoutError (TimeoutError) a handler ran past the function timeout

Exceptions raised by your handler are kept as they are on the record's outcome; the
``RecordError`` subclasses are what asyncbatch itself puts there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # pragma: no cover - exercised on 3.9 and 3.10
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from ._core.report import BatchReport

__all__ = [
    "bounded_text",
    "AsyncBatchError",
    "BatchFailedError",
    "ConfigurationError",
    "CallbackError",
    "DeadlineExceededError",
    "HandlerCancelledError",
    "InvalidEventError",
    "RecordDecodeError",
    "RecordError",
    "RecordSkippedError",
    "RecordTimeoutError",
    "RecordValidationError",
    "ResponseTooLargeError",
    "SinkError",
    "describe",
    "exception_text",
    "safe_repr",
    "traceback_text",
    "type_name",
]

#: the longest text one exception gives a log line, a report or a sink payload
MAX_TEXT = 2000


def bounded_text(text: str) -> str:
    """``text`` made safe to log, encode and ship: at most ``MAX_TEXT`` characters, and
    valid UTF-8 (lone surrogates, from bytes decoded with ``surrogateescape``, become
    escapes)."""
    if len(text) > MAX_TEXT:
        text = f"{text[:MAX_TEXT]}... ({len(text) - MAX_TEXT} more characters)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def type_name(exc: BaseException) -> str:
    """The name of ``exc``'s class (never raises)."""
    name = getattr(type(exc), "__name__", None)
    return name if isinstance(name, str) else "Exception"


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, safe: whatever ``__str__`` does (raise, return a non-string, return
    megabytes or lone surrogates), the result is a bounded, UTF-8-encodable string."""
    try:
        text = str(exc)
    except Exception as failure:
        return f"<{type_name(exc)}: str() raised {type_name(failure)}>"
    if not isinstance(text, str):  # pragma: no cover - str() already refuses non-strings
        return f"<{type_name(exc)}: str() gave a {type(text).__name__}>"
    return bounded_text(text)


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` (or just the type name when the message is empty), safe to
    log and ship whatever the exception's ``__str__`` does."""
    text = exception_text(exc)
    return f"{type_name(exc)}: {text}" if text else type_name(exc)


def safe_repr(value: Any) -> str:
    """``repr(value)``, safe: a ``__repr__`` that raises or misbehaves gives a placeholder,
    and the text is bounded and UTF-8-encodable."""
    try:
        text = repr(value)
    except Exception as failure:
        return f"<{type(value).__name__} object: repr() raised {type(failure).__name__}>"
    if not isinstance(text, str):  # pragma: no cover
        return f"<{type(value).__name__} object>"
    return bounded_text(text)


#: the longest traceback ``traceback_text`` gives whole
MAX_TRACEBACK = 20_000


def traceback_text(exc: BaseException) -> str:
    """``exc``'s formatted traceback (its causes and contexts included), safe: never
    raises and is UTF-8-encodable; when the whole is longer than ``MAX_TRACEBACK``
    characters (a huge message, a long chain), only ``exc``'s own frames and
    ``describe(exc)``."""
    import traceback

    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a broken __notes__, a chain too deep to walk
        text = ""
    if not text or len(text) > MAX_TRACEBACK:
        try:
            frames = "".join(traceback.format_tb(exc.__traceback__))
        except Exception:
            frames = ""
        if len(frames) > MAX_TRACEBACK:
            frames = f"... ({len(frames) - MAX_TRACEBACK} characters of frames left out)\n" \
                     + frames[-MAX_TRACEBACK:]
        head = "Traceback (most recent call last):\n" if frames else ""
        text = f"{head}{frames}{describe(exc)}\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class AsyncBatchError(Exception):
    """Base class of every error asyncbatch raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle (multiprocessing, queues) without calling __init__, whose keyword-only
        # context (identifier, reason, original, ...) is restored from __dict__.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class InvalidEventError(AsyncBatchError, ValueError):
    """The event is not a batch asyncbatch can process; nothing was run.

    ``index`` is the position of the offending record, when one record is to blame.
    """

    def __init__(self, message: str, *, index: Optional[int] = None) -> None:
        super().__init__(message)
        self.index = index


class ConfigurationError(AsyncBatchError, ValueError):
    """A processor option or an entry point argument is wrong; the message says how to fix it."""


class ResponseTooLargeError(AsyncBatchError):
    """No response within Lambda's payload limit can answer the batch: raised by
    ``report.response()`` (and so by the entry points) for a Firehose batch whose records
    would not fit even answered ``ProcessingFailed`` with their own data. The function
    fails, and Firehose keeps every record (it retries, then writes them to the
    processing-failed prefix). ``size`` is the smallest response's size in bytes, ``limit``
    Lambda's."""

    def __init__(self, message: str, *, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class RecordError(AsyncBatchError):
    """Why one record did not succeed. ``identifier`` names the record (its itemIdentifier:
    a string, or for Kafka a ``{"partition", "offset"}`` mapping)."""

    def __init__(self, message: str, *, identifier: Any = None) -> None:
        super().__init__(message)
        self.identifier = identifier


class RecordDecodeError(RecordError, ValueError):
    """The record's payload could not be decoded (base64, JSON or DynamoDB JSON)."""


class RecordValidationError(RecordError, ValueError):
    """The record failed validation against the processor's ``model``.

    ``fields`` holds the dotted location of every invalid field; ``errors`` the
    validator's own error list.
    """

    def __init__(
        self,
        message: str,
        *,
        identifier: Any = None,
        fields: Sequence[str] = (),
        errors: Sequence[Any] = (),
    ) -> None:
        super().__init__(message, identifier=identifier)
        self.fields = tuple(fields)
        self.errors = tuple(errors)


class RecordTimeoutError(RecordError, TimeoutError):
    """The handler ran past the per-record timeout and was cancelled."""


class DeadlineExceededError(RecordError, TimeoutError):
    """The Lambda deadline came while the record's handler ran (it was cancelled) or
    while it waited for a retry."""


class SinkError(RecordError):
    """The failure sink did not accept the record; ``__cause__`` is the sink's error and
    ``original`` the record's own failure."""

    def __init__(
        self, message: str, *, identifier: Any = None, original: BaseException
    ) -> None:
        super().__init__(message, identifier=identifier)
        self.original = original


class HandlerCancelledError(RecordError):
    """The handler (or a library it called) raised ``CancelledError`` although nothing
    cancelled it: not asyncbatch's deadline or timeout, nor the caller of ``process()``.
    Only its record fails; ``__cause__`` is the ``CancelledError``."""


class CallbackError(RecordError):
    """A callback of yours raised while asyncbatch handled this record: a per-record hook,
    a ``Retry(on=...)`` predicate, ``sink_when`` or the window reducer. ``callback`` names
    it, ``__cause__`` is its exception and ``original`` the record's own failure, if any."""

    def __init__(self, message: str, *, identifier: Any = None, callback: str,
                 original: Optional[BaseException] = None) -> None:
        super().__init__(message, identifier=identifier)
        self.callback = callback
        self.original = original


class RecordSkippedError(RecordError):
    """The record was never run. ``reason`` is one of ``"group_failed"`` (an earlier
    record of its FIFO group or stream key failed), ``"checkpoint"`` (a stream record with
    a lower sequence number failed), ``"batch_stopped"`` (stop-batch FIFO mode),
    ``"deadline"``, or for ``stream()`` ``"stopped"`` (``Stream.stop()``) and ``"closed"``
    (the consumer left the block); ``cause`` is the failure that caused the skip, when
    there is one."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        identifier: Any = None,
        cause: Optional[BaseException] = None,
    ) -> None:
        super().__init__(message, identifier=identifier)
        self.reason = reason
        self.cause = cause


# (misc: where the exceptiongroup backport is not installed, mypy sees its ExceptionGroup
# as Any; override: ExceptionGroup.derive is generic in the exceptions it takes)
class BatchFailedError(AsyncBatchError, ExceptionGroup):  # type: ignore[misc,unused-ignore]
    """No record of the batch succeeded. Raised by ``process_partial_response`` so that
    Lambda retries the whole batch and error alarms fire; ``exceptions`` holds every
    record's exception (each distinct skip cause once) and ``report`` the full report."""

    report: BatchReport

    def __new__(
        cls, message: str, exceptions: Sequence[Exception], report: BatchReport
    ) -> BatchFailedError:
        self = super().__new__(cls, message, exceptions)
        self.report = report
        return self

    def __init__(
        self, message: str, exceptions: Sequence[Exception], report: BatchReport
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> BatchFailedError:  # type: ignore[override,unused-ignore]
        return BatchFailedError(self.message, excs, self.report)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "report"}
        return (type(self), (self.message, list(self.exceptions), self.report), state)
