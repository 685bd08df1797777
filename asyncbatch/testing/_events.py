"""Lambda events for tests, shaped as Lambda sends them.

Every builder is made of the source descriptors' own sample records
(``Source.sample_record``), so a test event and the parser that reads it cannot drift
apart: identifiers are unique, sequence numbers and offsets increase with the record's
position, ARNs are plausible.

    >>> from asyncbatch.testing import sqs_event, kinesis_event
    >>> event = sqs_event({"order": 1}, "plain text", fifo_group="customer-1")
    >>> event = kinesis_event(("customer-1", {"clicks": 3}), ("customer-2", b"raw"))

A payload that is a dict or a list is JSON-encoded; a str or bytes is used as it is.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union
from urllib.parse import quote_plus

from .._sources import SOURCES, EventType

__all__ = [
    "dynamodb_event",
    "kafka_event",
    "kinesis_event",
    "s3_event",
    "sqs_event",
]

_SQS = SOURCES[EventType.SQS]
_KINESIS = SOURCES[EventType.KINESIS]
_DYNAMODB = SOURCES[EventType.DYNAMODB_STREAMS]
_KAFKA = SOURCES[EventType.KAFKA]


def sqs_event(*bodies: Any, fifo_group: Union[str, Sequence[Optional[str]], None] = None,
              queue_arn: Optional[str] = None, start: int = 0) -> dict[str, Any]:
    """An SQS event with one message per body.

    ``fifo_group``: a ``MessageGroupId`` for every message (a str), or one per message
    (a sequence); given, the queue is FIFO (its ARN ends in ``.fifo``) unless
    ``queue_arn`` names a standard queue (a fair queue: group ids, no order).
    ``start``: the first message's position (to make several events' ids distinct)."""
    if isinstance(fifo_group, str) or fifo_group is None:
        groups: Iterable[Optional[str]] = itertools.repeat(fifo_group)
    else:
        if len(fifo_group) != len(bodies):
            raise ValueError(f"fifo_group has {len(fifo_group)} group ids for "
                             f"{len(bodies)} bodies")
        groups = fifo_group
    arn = queue_arn
    if arn is None and fifo_group is not None:
        arn = _SQS.sample_record(0, key="g")["eventSourceARN"]
    records = [_SQS.sample_record(start + i, body, key=group, queue_arn=arn)
               for i, (body, group) in enumerate(zip(bodies, groups))]
    return _SQS.sample_event(records)


def kinesis_event(*records: tuple[str, Any], start: int = 0) -> dict[str, Any]:
    """A Kinesis event with one record per ``(partition_key, data)``, sequence numbers
    increasing in event order (56 digits, as Kinesis's)."""
    return _KINESIS.sample_event([
        _KINESIS.sample_record(start + i, data, key=key)
        for i, (key, data) in enumerate(_pairs(records, "(partition_key, data)"))])


def dynamodb_event(*changes: tuple[Any, ...], event_name: str = "MODIFY",
                   start: int = 0) -> dict[str, Any]:
    """A DynamoDB Streams event with one record per ``(key, item)`` or
    ``(key, item, event_name)``: ``key`` a str (the ``pk``) or a mapping of plain key
    values, ``item`` the other attributes as plain values (numbers, str, bytes, sets,
    lists, maps) written to the new and/or old image as the event name says."""
    out = []
    for i, change in enumerate(changes):
        if not isinstance(change, tuple) or len(change) not in (2, 3):
            raise ValueError(f"change {i}: give (key, item) or (key, item, event_name), "
                             f"not {change!r:.80}")
        name = change[2] if len(change) == 3 else event_name
        out.append(_DYNAMODB.sample_record(start + i, change[1], key=change[0],
                                           event_name=name))
    return _DYNAMODB.sample_event(out)


def kafka_event(*records: tuple[Any, ...], topic: str = "orders", partition: int = 0,
                self_managed: bool = False, start: int = 0) -> dict[str, Any]:
    """A Kafka event (Amazon MSK; ``self_managed=True``: self-managed Kafka) with one
    record per ``(key, value)`` in ``topic``-``partition``, or per
    ``(partition, key, value)``. ``key`` is str/bytes or ``None`` (no key). Offsets
    increase by one per record of a partition from ``start``; records are grouped by
    topic-partition as Lambda groups them."""
    out = []
    next_offset: dict[int, int] = {}
    for i, item in enumerate(records):
        if isinstance(item, tuple) and len(item) == 3 and type(item[0]) is int:
            number, key, value = item
        elif isinstance(item, tuple) and len(item) == 2:
            number, (key, value) = partition, item
        else:
            raise ValueError(f"record {i}: give (key, value) or (partition, key, value), "
                             f"not {item!r:.80}")
        offset = next_offset.get(number, start)
        next_offset[number] = offset + 1
        out.append(_KAFKA.sample_record(i, value, key=key, topic=topic, partition=number,
                                        offset=offset))
    return _KAFKA.sample_event(out, self_managed=self_managed)


def s3_event(*keys: str, bucket: str = "incoming-bucket",
             event_name: str = "ObjectCreated:Put",
             sizes: Optional[Mapping[str, int]] = None) -> dict[str, Any]:
    """An S3 notification event with one record per object key (URL-encoded as S3
    sends it: spaces as ``+``), sequencers increasing."""
    records = []
    for i, key in enumerate(keys):
        size = (sizes or {}).get(key, 1024)
        records.append({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": f"2024-01-01T00:00:{i % 60:02d}.000Z",
            "eventName": event_name,
            "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
            "requestParameters": {"sourceIPAddress": "203.0.113.10"},
            "responseElements": {"x-amz-request-id": f"C3D13FE58DE4C{i:03X}",
                                 "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "csv-import",
                "bucket": {"name": bucket,
                           "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                           "arn": f"arn:aws:s3:::{bucket}"},
                "object": {"key": quote_plus(key, safe="/"), "size": size,
                           "eTag": f"{i:032x}", "sequencer": f"0A1B2C3D4E5F{i:06X}"},
            },
        })
    return {"Records": records}


def _pairs(items: Sequence[Any], shape: str) -> list[tuple[Any, Any]]:
    for i, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValueError(f"record {i}: give {shape}, not {item!r:.80}")
    return list(items)
