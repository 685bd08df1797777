"""Events of the other batch shapes: Firehose transformations, EventBridge Pipes batches
and SQS messages wrapped in an SNS notification or an EventBridge event.

Built, as the other factories, from the descriptors' own samples (``Source.sample_record``,
``Source.pipes_record``, ``envelopes.sample_body``):

    >>> from asyncbatch.testing import firehose_event, pipes_event, sns_sqs_event
    >>> event = firehose_event({"order": 1}, b"raw bytes", origin="kinesis")
    >>> batch = pipes_event(kinesis_event(("customer-1", {"clicks": 3})))
    >>> event = sns_sqs_event({"order": 1}, fifo_group="customer-1")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from .._sources import read_event
from .._sources.envelopes import sample_body
from .._sources.firehose import FIREHOSE
from .._sources.pipes import PIPE_SOURCES
from ._events import sqs_event

__all__ = ["eventbridge_sqs_event", "firehose_event", "pipes_event", "sns_sqs_event"]


def firehose_event(*payloads: Any, origin: str = "direct_put", start: int = 0
                   ) -> dict[str, Any]:
    """A Firehose transformation event with one record per payload (dict/list
    JSON-encoded, str/bytes kept), as Firehose invokes a function.

    ``origin``: ``"direct_put"`` (the default), ``"kinesis"`` (a Kinesis Data Streams
    source: ``kinesisRecordMetadata`` and the event's ``sourceKinesisStreamArn``) or
    ``"msk"`` (an Amazon MSK source: the payload in ``kafkaRecordValue``,
    ``mskRecordMetadata``, ``sourceMSKArn``). ``start``: the first record's position (to
    make several events' record ids distinct)."""
    return FIREHOSE.sample_event([FIREHOSE.sample_record(start + i, payload, origin=origin)
                                  for i, payload in enumerate(payloads)])


def pipes_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch an EventBridge pipe hands its Lambda target for the records of ``event``
    (from ``sqs_event``, ``kinesis_event`` or ``dynamodb_event``): a top-level list of the
    records (new copies), Kinesis records flattened as Pipes flattens them."""
    source, records, _ = read_event(event, None)
    if records and source.event_type not in PIPE_SOURCES:
        names = ", ".join(t.value for t in PIPE_SOURCES)
        raise ValueError(f"a pipe hands a Lambda target {names} records as a list, not "
                         f"{source.event_type.value} ones")
    return [source.pipes_record(raw) for raw in records]


def sns_sqs_event(*messages: Any, fifo_group: Union[str, Sequence[Optional[str]], None] = None,
                  start: int = 0) -> dict[str, Any]:
    """An SQS event whose bodies are SNS notifications of ``messages`` (dict/list
    JSON-encoded, str/bytes kept): an SNS topic delivering to an SQS queue without raw
    message delivery (``envelope="sns"`` reads them). ``fifo_group``: as ``sqs_event``'s;
    given, the topic and the queue are FIFO."""
    fifo = fifo_group is not None
    bodies = [sample_body("sns", message, start + i, fifo=fifo)
              for i, message in enumerate(messages)]
    return sqs_event(*bodies, fifo_group=fifo_group, start=start)


def eventbridge_sqs_event(*details: Any, detail_type: str = "Order Placed",
                          source: str = "com.example.orders",
                          fifo_group: Union[str, Sequence[Optional[str]], None] = None,
                          start: int = 0) -> dict[str, Any]:
    """An SQS event whose bodies are EventBridge events carrying ``details`` (JSON
    values, usually dicts): an EventBridge rule targeting an SQS queue
    (``envelope="eventbridge"`` reads them)."""
    bodies = [sample_body("eventbridge", detail, start + i, detail_type=detail_type,
                          source=source) for i, detail in enumerate(details)]
    return sqs_event(*bodies, fifo_group=fifo_group, start=start)

