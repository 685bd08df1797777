"""The test suite's event helpers: one record at a time (``sqs_record``, ``kinesis_record``,
``ddb_record``), an event per source name with chosen ordering keys (``make_event``), and
a record's position in the event it was built in. Made of the source descriptors' own
sample records, as ``asyncbatch.testing``'s public builders are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from asyncbatch._sources import SOURCES, EventType
from asyncbatch.testing import kafka_event

__all__ = ["SOURCE_NAMES", "ddb_record", "key_of", "kinesis_record", "make_event", "position",
           "sqs_record"]

_SQS = SOURCES[EventType.SQS]
_KINESIS = SOURCES[EventType.KINESIS]
_DYNAMODB = SOURCES[EventType.DYNAMODB_STREAMS]


#: the source names ``make_event`` takes besides ``"kafka"``: standard SQS, FIFO SQS and
#: the two AWS streams (every source whose identifier is a string)
SOURCE_NAMES = ("sqs", "fifo", "kinesis", "dynamodb")


def sqs_record(i: int, body: Any = None, *, group: Optional[str] = None) -> dict[str, Any]:
    """SQS message number ``i`` (``messageId`` ``msg-00000i``); ``group``: a FIFO
    queue's ``MessageGroupId``."""
    return _SQS.sample_record(i, body, key=group, message_id=f"msg-{i:06d}")


def kinesis_record(seq: int, key: str, payload: Any = None) -> dict[str, Any]:
    """Kinesis record number ``seq`` (sequence numbers increase with it), partition key
    ``key``; the payload defaults to ``{"seq": seq, "key": key}``."""
    return _KINESIS.sample_record(
        seq, {"seq": seq, "key": key} if payload is None else payload, key=key)


def ddb_record(seq: int, key: str, *, event_name: str = "MODIFY",
               value: int = 0) -> dict[str, Any]:
    """DynamoDB Streams record number ``seq`` of the item ``{"pk": key, "sk": 1}``."""
    return _DYNAMODB.sample_record(seq, {"value": value, "seq": seq},
                                   key={"pk": key, "sk": 1}, event_name=event_name)


def make_event(source: str, keys: Sequence[Any]) -> dict[str, Any]:
    """One record per entry of ``keys`` (its ordering key; ignored by standard SQS):
    ``source`` is one of ``SOURCE_NAMES`` or ``"kafka"`` (one partition, ``keys`` the
    record keys)."""
    if source == "sqs":
        return {"Records": [sqs_record(i) for i in range(len(keys))]}
    if source == "fifo":
        return {"Records": [sqs_record(i, group=k) for i, k in enumerate(keys)]}
    if source == "kinesis":
        return {"Records": [kinesis_record(i, k) for i, k in enumerate(keys)]}
    if source == "dynamodb":
        return {"Records": [ddb_record(i, k) for i, k in enumerate(keys)]}
    if source == "kafka":
        return kafka_event(*((k, {"n": i}) for i, k in enumerate(keys)))
    raise ValueError(f"source={source!r}: give one of {', '.join(SOURCE_NAMES)} or 'kafka'")


def position(record: Any) -> int:
    """The position in its event of a record (a view or its raw dict) built here: the
    ``i`` it was built with."""
    from asyncbatch._sources.dynamodb import SEQUENCE_BASE as DYNAMODB_BASE
    from asyncbatch._sources.firehose import RECORD_BASE
    from asyncbatch._sources.kinesis import SEQUENCE_BASE as KINESIS_BASE

    raw = getattr(record, "raw", record)
    if "messageId" in raw:
        return int(raw["messageId"].rsplit("-", 1)[1])
    if "kinesis" in raw or "sequenceNumber" in raw:  # as Lambda sends it, or a pipe
        return int(raw.get("kinesis", raw)["sequenceNumber"]) - KINESIS_BASE
    if "recordId" in raw:  # Firehose: 62 digits, RECORD_BASE + i then six zeros
        return int(raw["recordId"][:-6]) - RECORD_BASE
    if "dynamodb" in raw:
        return int(raw["dynamodb"]["SequenceNumber"]) - DYNAMODB_BASE
    return int(raw["timestamp"]) - 1_700_000_000_000  # Kafka


def key_of(record: Any) -> Any:
    """A view's ordering key."""
    return record.ordering_key
