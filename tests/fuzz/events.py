"""Events for a scenario's calls, and the oracle's own reading of an event.

The oracle does not ask asyncbatch how to read an event: ``read`` spells out, from the
event as Lambda shapes it, each record's identifier, sequence number, checkpoint group and
ordering lane (what SEMANTICS.md says they are).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Hashable, Optional

from asyncbatch.testing import (
    dynamodb_event,
    firehose_event,
    kafka_event,
    kinesis_event,
    pipes_event,
    sqs_event,
)

from .scenario import CallSpec

__all__ = ["RecInfo", "build_event", "ident_key", "raws", "read"]

#: call ``n``'s identifiers start at ``n * ID_STRIDE`` (distinct events, distinct ids)
ID_STRIDE = 10_000
#: a standard queue (no ``.fifo``): message group ids there are a fair queue's tenants
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


@dataclass(frozen=True)
class RecInfo:
    """One record of an event as the oracle reads it."""

    position: int  # in the event (Kafka: in the flattened topic-partition groups)
    ident: Any  # its itemIdentifier as the response must hold it
    key: Hashable  # ``ident`` as a hashable key
    seq: int  # sequence number / offset (position for SQS)
    group: Hashable  # checkpoint group (Kafka: topic-partition; streams: the batch)
    lane: Hashable  # records of one lane run one at a time, in order (None: independent)
    spec: int  # the index of its RecordSpec


def ident_key(ident: Any) -> Hashable:
    if isinstance(ident, dict):
        return (ident["partition"], int(ident["offset"]))
    return ident


def build_event(call: CallSpec, number: int, seed: int) -> Any:
    """The event of call ``number``: record ``i`` of the spec carries sample index
    ``start + i``, from which ``read`` finds its spec again. ``call.pipes``: as an
    EventBridge pipe hands it on (a list of the records)."""
    event = _lambda_event(call, number, seed)
    return pipes_event(event) if call.pipes else event


def _lambda_event(call: CallSpec, number: int, seed: int) -> dict[str, Any]:
    start = number * ID_STRIDE
    recs = call.records
    if call.source == "firehose":
        return firehose_event(*({"spec": i} for i in range(len(recs))), origin=call.origin,
                              start=start)
    if call.source in ("sqs", "fifo"):
        bodies = [{"spec": i} for i in range(len(recs))]
        if not recs:
            return {"Records": []}
        if call.source == "fifo":
            return sqs_event(*bodies, fifo_group=[r.key for r in recs], start=start)
        if call.fair:  # a standard (fair) queue whose messages carry a MessageGroupId
            return sqs_event(*bodies, fifo_group=[r.key for r in recs], queue_arn=QUEUE_ARN,
                             start=start)
        return sqs_event(*bodies, start=start)
    if call.source == "kinesis":
        event = kinesis_event(*((r.key, {"spec": i}) for i, r in enumerate(recs)), start=start)
    elif call.source == "dynamodb":
        event = dynamodb_event(*((r.key, {"spec": i}) for i, r in enumerate(recs)),
                               start=start)
    else:
        if not recs:
            return {"Records": []}
        items = []
        for i, r in enumerate(recs):
            topic_part = r.partition if call.kafka_topics == 1 else r.partition % 2
            items.append((topic_part, r.key, {"spec": i}))
        event = kafka_event(*items, start=start)
        if call.kafka_topics > 1:  # the odd specs go to a second topic
            event = _two_topics(event, recs)
        return event
    if call.small_sequences:  # sequence numbers of mixed lengths, still increasing
        for i, raw in enumerate(event["Records"]):
            body = raw["kinesis"] if call.source == "kinesis" else raw["dynamodb"]
            name = "sequenceNumber" if call.source == "kinesis" else "SequenceNumber"
            body[name] = str(start + 7 + i * 37)
    if call.shuffle:
        random.Random(seed * 7919 + number).shuffle(event["Records"])
    if call.window:
        event["window"] = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:15:00Z"}
        event["state"] = {"n": 0, "seqs": []}
        event["shardId"] = "shardId-000000000006"
        event["isFinalInvokeForWindow"] = False
    return event


def _two_topics(event: dict[str, Any], recs: list[Any]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for raws in event["records"].values():
        for raw in raws:
            spec = json.loads(_b64(raw["value"]))["spec"]
            if spec % 2:
                raw["topic"] = "audit"
            grouped.setdefault(f"{raw['topic']}-{raw['partition']}", []).append(raw)
    event["records"] = grouped
    return event


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def raws(source: str, event: Any) -> list[dict[str, Any]]:
    """The event's records, in event order (Kafka: its topic-partition groups in turn; a
    pipe's batch: the list itself)."""
    if isinstance(event, list):
        return list(event)
    if source == "firehose":
        return list(event["records"])
    if source == "kafka":
        return [raw for part in (event.get("records") or {}).values() for raw in part]
    return list(event["Records"])


def read(source: str, event: Any, ordering: Optional[str]) -> list[RecInfo]:
    """Every record of ``event``, in event order."""
    out = []
    for position, raw in enumerate(raws(source, event)):
        if source in ("sqs", "fifo"):
            ident = raw["messageId"]
            seq = position
            group: Hashable = None
            lane: Hashable = raw["attributes"]["MessageGroupId"] if source == "fifo" else None
            spec = json.loads(raw["body"])["spec"]
        elif source == "kinesis":
            body = raw.get("kinesis", raw)  # a pipe flattens the record
            ident = body["sequenceNumber"]
            seq = int(ident)
            group = None
            lane = body["partitionKey"] if ordering != "partition" else "shard"
            spec = json.loads(_b64(body["data"]))["spec"]
        elif source == "dynamodb":
            ident = raw["dynamodb"]["SequenceNumber"]
            seq = int(ident)
            group = None
            keys = raw["dynamodb"]["Keys"]
            lane = json.dumps(keys, sort_keys=True) if ordering != "partition" else "shard"
            spec = int(raw["dynamodb"]["NewImage"]["spec"]["N"])
        elif source == "firehose":
            ident = raw["recordId"]
            seq = position
            group = lane = None
            payload = raw["kafkaRecordValue"] if "kafkaRecordValue" in raw else raw["data"]
            spec = json.loads(_b64(payload))["spec"]
        else:
            part = f"{raw['topic']}-{raw['partition']}"
            ident = {"partition": part, "offset": raw["offset"]}
            seq = int(raw["offset"])
            group = part
            lane = (part, raw.get("key")) if ordering == "key" else part
            spec = json.loads(_b64(raw["value"]))["spec"]
        out.append(RecInfo(position, ident, ident_key(ident), seq, group, lane, spec))
    return out
