"""Lambda event records built from what the AWS APIs return, field for field as the
event source mapping builds them. Pure functions: no I/O, no aioboto3."""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Mapping
from typing import Any, Optional, Union

__all__ = [
    "arn_account",
    "arn_region",
    "dynamodb_record",
    "epoch",
    "kinesis_record",
    "sqs_record",
]

# SQS system attributes Lambda puts on a record (the rest of "All" is left out).
_SQS_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def arn_region(arn: str) -> str:
    """The region field of an ARN (``arn:aws:sqs:REGION:ACCOUNT:name``)."""
    parts = arn.split(":", 5)
    return parts[3] if len(parts) > 4 else ""


def arn_account(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[4] if len(parts) > 4 else ""


def _b64(value: Union[bytes, bytearray, str]) -> str:
    if isinstance(value, str):  # already base64 text
        return value
    return base64.b64encode(bytes(value)).decode("ascii")


def epoch(value: Any) -> float:
    """A timestamp as botocore returns it (``datetime``) or a number, in epoch seconds."""
    if isinstance(value, _dt.datetime):
        moment: _dt.datetime = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    if value is None:
        return 0.0
    return float(value)


# -- SQS -------------------------------------------------------------------------------


def _sqs_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """One message attribute as Lambda writes it: lower-camel keys, binary as base64."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues") or [])
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    out["dataType"] = value.get("DataType", "String")
    return out


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ``ReceiveMessage`` message (system attributes and message attributes "All") as
    the record Lambda puts in an SQS event."""
    found = message.get("Attributes") or {}
    attributes = {name: found[name] for name in _SQS_SYSTEM_ATTRIBUTES if name in found}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": {
            name: _sqs_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["md5OfBody"] = message.get("MD5OfBody", "")
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


# -- Kinesis ---------------------------------------------------------------------------


def kinesis_record(
    api_record: Mapping[str, Any], shard_id: str, stream_arn: str, region: str
) -> dict[str, Any]:
    """A ``GetRecords`` record as the record Lambda puts in a Kinesis event."""
    data = api_record.get("Data", b"")
    sequence = str(api_record["SequenceNumber"])
    arrival = api_record.get("ApproximateArrivalTimestamp")
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": api_record["PartitionKey"],
            "sequenceNumber": sequence,
            "data": _b64(data),
            "approximateArrivalTimestamp": epoch(arrival) if arrival is not None else 0.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{arn_account(stream_arn)}:role/asyncbatch-runner",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


# -- DynamoDB Streams ------------------------------------------------------------------


def _ddb_value(value: Any) -> Any:
    """Binary inside DynamoDB JSON back to base64 text, as Lambda sends it."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return value
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": _b64(inner)}
    if tag == "BS":
        return {"BS": [_b64(v) for v in inner]}
    if tag == "M":
        return {"M": {k: _ddb_value(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_ddb_value(v) for v in inner]}
    return {tag: inner}


def _ddb_item(item: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    if item is None:
        return None
    return {name: _ddb_value(value) for name, value in item.items()}


def dynamodb_record(
    api_record: Mapping[str, Any], stream_arn: str, region: str
) -> dict[str, Any]:
    """A DynamoDB Streams ``GetRecords`` record as the record Lambda puts in its event."""
    stream = api_record.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {}
    created = stream.get("ApproximateCreationDateTime")
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = int(epoch(created))
    for name in ("Keys", "NewImage", "OldImage"):
        image = _ddb_item(stream.get(name))
        if image is not None:
            dynamodb[name] = image
    dynamodb["SequenceNumber"] = str(stream["SequenceNumber"])
    if "SizeBytes" in stream:
        dynamodb["SizeBytes"] = stream["SizeBytes"]
    if "StreamViewType" in stream:
        dynamodb["StreamViewType"] = stream["StreamViewType"]
    record: dict[str, Any] = {
        "eventID": api_record.get("eventID", ""),
        "eventName": api_record.get("eventName", ""),
        "eventVersion": api_record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": api_record.get("awsRegion") or region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in api_record:
        record["userIdentity"] = api_record["userIdentity"]
    return record
