"""asyncbatch: concurrent, ordered, failure-aware processing of Lambda batches.

Public names are re-exported here; the implementation lives in private modules.
``import asyncbatch`` never imports pydantic, boto3 or aioboto3.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._core.handlers import Handler
from ._core.processor import (
    AsyncBatchProcessor,
    async_process_partial_response,
    process_partial_response,
)
from ._core.report import BatchReport, Outcome
from ._errors import (
    AsyncBatchError,
    BatchFailedError,
    CallbackError,
    ConfigurationError,
    DeadlineExceededError,
    HandlerCancelledError,
    InvalidEventError,
    RecordDecodeError,
    RecordError,
    RecordSkippedError,
    RecordTimeoutError,
    RecordValidationError,
    ResponseTooLargeError,
    SinkError,
)
from ._sources import EventType, Record

if _TYPE_CHECKING:
    from ._core.hooks import Failure, FailureSink, Hooks
    from ._core.limits import AIMDLimit, ConcurrencyLimit, GradientLimit, WindowedLimit
    from ._core.rate import RateLimit
    from ._core.retry import Retry, TransientError, is_transient
    from ._core.stream import Stream
    from ._lambda.response import InvalidResponseError
    from ._sources import (
        DROPPED,
        DynamoDBRecord,
        FirehoseRecord,
        FirehoseResult,
        KafkaRecord,
        KinesisRecord,
        SQSRecord,
    )
    from ._sources.windows import Window, WindowReducer
    from .idempotency import (
        BatchIdempotency,
        Idempotency,
        IdempotencyError,
        IdempotencyInProgressError,
        IdempotencyItem,
        IdempotencyKeyError,
        IdempotencyStore,
        IdempotencyStoreError,
        IdempotencyValidationError,
        InMemoryIdempotencyStore,
        Replay,
    )

# Loaded on first use: idempotency needs json, hashlib and logging, which a cold start
# that does not use it should not pay for.
_LAZY = {name: ".idempotency" for name in (
    "BatchIdempotency",
    "Idempotency",
    "IdempotencyError",
    "IdempotencyInProgressError",
    "IdempotencyItem",
    "IdempotencyKeyError",
    "IdempotencyStore",
    "IdempotencyStoreError",
    "IdempotencyValidationError",
    "InMemoryIdempotencyStore",
    "Replay",
)}
# Each source's descriptor and view load with the first batch of that source (an SQS
# cold start never loads Kafka's, Kinesis', DynamoDB's or Firehose's).
_LAZY.update((name, "._sources") for name in (
    "DROPPED", "DynamoDBRecord", "FirehoseRecord", "FirehoseResult", "KafkaRecord",
    "KinesisRecord", "SQSRecord"))
# What a plain batch never needs loads on first use too: hooks and failure sinks,
# adaptive limits, the rate limit, the retry policy, streams, tumbling windows and the
# error of an invalid response (each module publishes its public names as asyncbatch's
# when it loads, however it is reached).
_LAZY.update((name, "._core.hooks") for name in ("Failure", "FailureSink", "Hooks"))
_LAZY.update((name, "._core.limits") for name in (
    "AIMDLimit", "ConcurrencyLimit", "GradientLimit", "WindowedLimit"))
_LAZY["RateLimit"] = "._core.rate"
_LAZY.update((name, "._core.retry") for name in ("Retry", "TransientError", "is_transient"))
_LAZY["Stream"] = "._core.stream"
_LAZY.update((name, "._sources.windows") for name in ("Window", "WindowReducer"))
_LAZY["InvalidResponseError"] = "._lambda.response"
# ... and dir() lists them as when they were imported eagerly
_IN_DIR = frozenset(name for name, module in _LAZY.items()
                    if module.startswith(("._core.", "._sources.", "._lambda.")))


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncbatch' has no attribute {name!r}")
    import importlib

    from ._public import publish

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    publish(globals(), [name])
    return value


def __dir__() -> list[str]:
    return sorted(_IN_DIR.union(globals()) - {"_IN_DIR", "__dir__"})


__version__ = "0.1.0"

__all__ = [
    "DROPPED",
    "AIMDLimit",
    "AsyncBatchError",
    "AsyncBatchProcessor",
    "BatchFailedError",
    "BatchIdempotency",
    "BatchReport",
    "CallbackError",
    "ConcurrencyLimit",
    "ConfigurationError",
    "DeadlineExceededError",
    "DynamoDBRecord",
    "EventType",
    "Failure",
    "FailureSink",
    "FirehoseRecord",
    "FirehoseResult",
    "GradientLimit",
    "Handler",
    "HandlerCancelledError",
    "Hooks",
    "Idempotency",
    "IdempotencyError",
    "IdempotencyInProgressError",
    "IdempotencyItem",
    "IdempotencyKeyError",
    "IdempotencyStore",
    "IdempotencyStoreError",
    "IdempotencyValidationError",
    "InMemoryIdempotencyStore",
    "InvalidEventError",
    "InvalidResponseError",
    "KafkaRecord",
    "KinesisRecord",
    "Outcome",
    "RateLimit",
    "Record",
    "RecordDecodeError",
    "RecordError",
    "RecordSkippedError",
    "RecordTimeoutError",
    "RecordValidationError",
    "Replay",
    "ResponseTooLargeError",
    "Retry",
    "SQSRecord",
    "SinkError",
    "Stream",
    "TransientError",
    "Window",
    "WindowedLimit",
    "WindowReducer",
    "async_process_partial_response",
    "is_transient",
    "process_partial_response",
]

# Re-exported names report 'asyncbatch' as their module (reprs, pickles, the error type
# a dead-letter message stores), not the private module that defines them.
from ._public import publish as _publish  # noqa: E402

_publish(globals(), __all__)
del _publish
