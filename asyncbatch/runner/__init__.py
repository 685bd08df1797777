"""A local event source runner: Lambda's event source mapping, played against a real
queue or stream, so that a handler meets redelivery before it is deployed, and so that
the same handler can run as a long-lived consumer.

::

    from asyncbatch.runner import Runner, SQSPoller

    runner = Runner(SQSPoller(queue_url, batch_size=10, failure_visibility_timeout=0),
                    lambda_handler, function_timeout=30)
    await runner.run(until_empty=True)
    print(runner.counters)

``Runner`` polls with a ``SQSPoller``, ``KinesisPoller`` or ``DynamoDBStreamPoller``, invokes
``handler(event, context)`` with events shaped exactly as Lambda shapes them, and applies
each partial batch response as the event source mapping does. Stream checkpoints live in
a ``CheckpointStore`` (``MemoryCheckpointStore``, or ``DynamoDBCheckpointStore`` for a
consumer that restarts). This package imports aioboto3; ``import asyncbatch`` does not
import it.

The pollers were called ``SQSSource``, ``KinesisSource``, ``DynamoDBStreamSource`` and
``Source``; those names still work (the same classes). In asyncbatch a source is the shape
of an event (``asyncbatch.EventType``); a poller is what reads a queue or a stream.
"""

from .._public import publish as _publish
from ._checkpoint import CheckpointStore, DynamoDBCheckpointStore, MemoryCheckpointStore
from ._core import (
    BatchResult,
    Counters,
    FunctionTimeoutError,
    InvalidResponseError,
    LambdaContext,
    LambdaHandler,
    Poller,
    Runner,
    RunnerError,
    parse_response,
)
from ._sqs import SQSPoller
from ._streams import DynamoDBStreamPoller, KinesisPoller, OnFailure

# The former names of the pollers, kept: the same classes.
Source = Poller
SQSSource = SQSPoller
KinesisSource = KinesisPoller
DynamoDBStreamSource = DynamoDBStreamPoller

__all__ = [
    "BatchResult",
    "CheckpointStore",
    "Counters",
    "DynamoDBCheckpointStore",
    "DynamoDBStreamPoller",
    "DynamoDBStreamSource",
    "FunctionTimeoutError",
    "LambdaHandler",
    "InvalidResponseError",
    "KinesisPoller",
    "KinesisSource",
    "LambdaContext",
    "MemoryCheckpointStore",
    "OnFailure",
    "Runner",
    "Poller",
    "RunnerError",
    "SQSPoller",
    "SQSSource",
    "Source",
    "parse_response",
]

# Re-exported names report 'asyncbatch.runner' as their module (reprs, pickles, the error type
# a dead-letter message stores), not the private module that defines them.
_publish(globals(), __all__)
del _publish
