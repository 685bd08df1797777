"""Builders of Lambda events shaped as Lambda sends them, for the tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Optional

SQS_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
FIFO_ARN = "arn:aws:sqs:us-east-1:123456789012:orders.fifo"
KINESIS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
DDB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2024-01-01T00:00:00.000"

SOURCES = ("sqs", "fifo", "kinesis", "dynamodb")


def sqs_record(i: int, body: Any = None, *, group: Optional[str] = None) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                  "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"}
    if group is not None:
        attributes.update(MessageGroupId=group, MessageDeduplicationId=f"dedup-{i}",
                          SequenceNumber=str(10**19 + i))
    return {
        "messageId": f"msg-{i:06d}",
        "receiptHandle": f"handle-{i}",
        "body": json.dumps({"n": i}) if body is None else body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": FIFO_ARN if group is not None else SQS_ARN,
        "awsRegion": "us-east-1",
    }


def kinesis_record(seq: int, key: str, payload: Any = None) -> dict[str, Any]:
    data = json.dumps({"seq": seq, "key": key} if payload is None else payload).encode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            # Real sequence numbers are 56-digit decimals: compare them as integers.
            "sequenceNumber": str(49590338271490256608559692538361571095921575989136588898 + seq),
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1700000000.0 + seq,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda",
        "awsRegion": "us-east-1",
        "eventSourceARN": KINESIS_ARN,
    }


def ddb_record(seq: int, key: str, *, event_name: str = "MODIFY",
               value: int = 0) -> dict[str, Any]:
    keys = {"pk": {"S": key}, "sk": {"N": "1"}}
    image = {**keys, "value": {"N": str(value)}, "seq": {"N": str(seq)}}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1700000000 + seq,
        "Keys": keys,
        "SequenceNumber": str(10**20 + seq),
        "SizeBytes": 50,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name != "REMOVE":
        body["NewImage"] = image
    if event_name != "INSERT":
        body["OldImage"] = image
    return {
        "eventID": f"event-{seq}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": DDB_ARN,
    }


def make_event(source: str, keys: Sequence[str]) -> dict[str, Any]:
    """One record per entry of ``keys`` (the ordering key; ignored for standard SQS)."""
    if source == "sqs":
        records = [sqs_record(i) for i in range(len(keys))]
    elif source == "fifo":
        records = [sqs_record(i, group=k) for i, k in enumerate(keys)]
    elif source == "kinesis":
        records = [kinesis_record(i, k) for i, k in enumerate(keys)]
    elif source == "dynamodb":
        records = [ddb_record(i, k) for i, k in enumerate(keys)]
    else:  # pragma: no cover
        raise ValueError(source)
    return {"Records": records}


def position(record: Any) -> int:
    """The position in the event of a record view built by ``make_event``."""
    raw = record.raw
    if "messageId" in raw:
        return int(raw["messageId"].split("-")[1])
    if "kinesis" in raw:
        return int(raw["eventID"].split(":")[1])
    return int(raw["eventID"].split("-")[1])


def key_of(record: Any) -> Any:
    return record.ordering_key
