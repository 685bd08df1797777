"""A local event source runner: Lambda's event source mapping, played against a real
queue or stream, so that a handler meets redelivery before it is deployed, and so that
the same handler can run as a long-lived consumer.

::

    from asyncbatch.runner import Runner, SQSSource

    runner = Runner(SQSSource(queue_url, batch_size=10, failure_visibility_timeout=0),
                    lambda_handler, function_timeout=30)
    await runner.run(until_empty=True)
    print(runner.counters)

``Runner`` polls a ``SQSSource``, ``KinesisSource`` or ``DynamoDBStreamSource``, invokes
``handler(event, context)`` with events shaped exactly as Lambda shapes them, and applies
each partial batch response as the event source mapping does. Stream checkpoints live in
a ``CheckpointStore`` (``MemoryCheckpointStore``, or ``DynamoDBCheckpointStore`` for a
consumer that restarts). This package imports aioboto3; ``import asyncbatch`` does not
import it.
"""

from ._checkpoint import CheckpointStore, DynamoDBCheckpointStore, MemoryCheckpointStore
from ._core import (
    BatchResult,
    Counters,
    FunctionTimeoutError,
    InvalidResponseError,
    LambdaContext,
    LambdaHandler,
    Runner,
    RunnerError,
    Source,
    parse_response,
)
from ._sqs import SQSSource
from ._streams import DynamoDBStreamSource, KinesisSource, OnFailure

__all__ = [
    "BatchResult",
    "CheckpointStore",
    "Counters",
    "DynamoDBCheckpointStore",
    "DynamoDBStreamSource",
    "FunctionTimeoutError",
    "LambdaHandler",
    "InvalidResponseError",
    "KinesisSource",
    "LambdaContext",
    "MemoryCheckpointStore",
    "OnFailure",
    "Runner",
    "RunnerError",
    "SQSSource",
    "Source",
    "parse_response",
]

# Re-exported names report 'asyncbatch.runner' as their module (reprs, pickles, the error type
# a dead-letter message stores), not the private module that defines them.
from .._public import publish as _publish

_publish(globals(), __all__)
del _publish
