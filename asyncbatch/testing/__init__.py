"""Test your Lambda batch handlers: events, a Lambda context, and redelivery in memory.

::

    from asyncbatch.testing import LambdaContext, simulate, sqs_event

    result = await simulate(handle, sqs_event({"order": 1}, {"order": 2}))
    assert not result.dead_letters

- ``sqs_event``, ``kinesis_event``, ``dynamodb_event``, ``kafka_event``, ``s3_event``:
  events shaped as Lambda sends them (unique identifiers, increasing sequence numbers).
- ``firehose_event``, ``pipes_event``, ``sns_sqs_event``, ``eventbridge_sqs_event``: a
  Firehose transformation, an EventBridge pipe's batch, and SQS messages wrapped in an
  SNS notification or an EventBridge event.
- ``LambdaContext(remaining=seconds)``: the context Lambda passes, its remaining time
  counting down on the running event loop's clock (or a clock you give).
- ``simulate(handler, event)`` / ``simulate_lambda(function, event)``: Lambda's event
  source mapping in memory (redelivery, checkpoints, dead letters); returns a
  ``Simulation``.
- ``asyncbatch.testing.strategies``: hypothesis strategies for events (needs hypothesis).
- The pytest plugin (``asyncbatch.testing.pytest_plugin``, registered on install) gives
  the ``lambda_context`` fixture and one fixture per event factory.

``import asyncbatch`` does not import this package; this package does not import
aioboto3, pytest or hypothesis.
"""

from __future__ import annotations

from .._lambda.context import ClientContext, CognitoIdentity, LambdaContext
from ._events import dynamodb_event, kafka_event, kinesis_event, s3_event, sqs_event
from ._shapes import eventbridge_sqs_event, firehose_event, pipes_event, sns_sqs_event
from ._simulate import (
    InvalidResponseError,
    Invocation,
    Simulation,
    simulate,
    simulate_lambda,
)

__all__ = [
    "ClientContext",
    "CognitoIdentity",
    "InvalidResponseError",
    "Invocation",
    "LambdaContext",
    "Simulation",
    "dynamodb_event",
    "eventbridge_sqs_event",
    "firehose_event",
    "kafka_event",
    "kinesis_event",
    "pipes_event",
    "s3_event",
    "simulate",
    "simulate_lambda",
    "sns_sqs_event",
    "sqs_event",
]

from .._public import publish as _publish

_publish(globals(), __all__)
del _publish
