"""Events of the other batch shapes: Firehose transformations and EventBridge Pipes
batches.

Built, as the other factories, from the descriptors' own samples (``Source.sample_record``,
``Source.pipes_record``):

    >>> from asyncbatch.testing import firehose_event, pipes_event
    >>> event = firehose_event({"order": 1}, b"raw bytes", origin="kinesis")
    >>> batch = pipes_event(kinesis_event(("customer-1", {"clicks": 3})))
"""

from __future__ import annotations

from typing import Any

from .._sources import read_event
from .._sources.firehose import FIREHOSE
from .._sources.pipes import PIPE_SOURCES

__all__ = ["firehose_event", "pipes_event"]


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
