"""asyncbatch's pytest plugin, registered through the ``pytest11`` entry point when
asyncbatch is installed (or with ``-p asyncbatch.testing.pytest_plugin``).

Fixtures:

- ``lambda_context``: a fresh ``asyncbatch.testing.LambdaContext`` per test. Its remaining
  time follows the clock of the event loop it is read in, so it works the same under
  pytest-asyncio, anyio's plugin (asyncio or trio, ``MockClock`` included) and in sync
  tests. ``@pytest.mark.lambda_context(remaining=2.0, function_name="orders")`` sets its
  arguments.
- ``sqs_event``, ``kinesis_event``, ``dynamodb_event``, ``kafka_event``, ``s3_event``,
  ``firehose_event``, ``pipes_event``, ``sns_sqs_event``, ``eventbridge_sqs_event``: the
  event factories of ``asyncbatch.testing`` (``sqs_event({"id": 1}, fifo_group="g")``).

All fixtures are synchronous: nothing here depends on which async plugin runs the test.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from .._lambda.context import LambdaContext
from . import _events, _shapes

__all__ = ["dynamodb_event", "eventbridge_sqs_event", "firehose_event", "kafka_event",
           "kinesis_event", "lambda_context", "pipes_event", "pytest_configure", "s3_event",
           "sns_sqs_event", "sqs_event"]

_MARKER = "lambda_context"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(remaining=..., **attributes): the arguments of the lambda_context "
        "fixture's asyncbatch.testing.LambdaContext")


@pytest.fixture
def lambda_context(request: pytest.FixtureRequest) -> LambdaContext:
    """A Lambda context (900 s left unless ``@pytest.mark.lambda_context(remaining=...)``
    says otherwise), counting down on the running event loop's clock."""
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return LambdaContext()
    return LambdaContext(*marker.args, **marker.kwargs)


@pytest.fixture
def sqs_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.sqs_event``: ``sqs_event(*bodies, fifo_group=None)``."""
    return _events.sqs_event


@pytest.fixture
def kinesis_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.kinesis_event``: ``kinesis_event(*(partition_key, data))``."""
    return _events.kinesis_event


@pytest.fixture
def dynamodb_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.dynamodb_event``: ``dynamodb_event(*(key, item))``."""
    return _events.dynamodb_event


@pytest.fixture
def kafka_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.kafka_event``: ``kafka_event(*(key, value))``."""
    return _events.kafka_event


@pytest.fixture
def s3_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.s3_event``: ``s3_event(*object_keys, bucket=...)``."""
    return _events.s3_event


@pytest.fixture
def firehose_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.firehose_event``: ``firehose_event(*payloads, origin=...)``."""
    return _shapes.firehose_event


@pytest.fixture
def pipes_event() -> Callable[..., list[dict[str, Any]]]:
    """``asyncbatch.testing.pipes_event``: ``pipes_event(sqs_event(...))``."""
    return _shapes.pipes_event


@pytest.fixture
def sns_sqs_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.sns_sqs_event``: ``sns_sqs_event(*messages)``."""
    return _shapes.sns_sqs_event


@pytest.fixture
def eventbridge_sqs_event() -> Callable[..., dict[str, Any]]:
    """``asyncbatch.testing.eventbridge_sqs_event``: ``eventbridge_sqs_event(*details)``."""
    return _shapes.eventbridge_sqs_event
