"""Record views: lazy decoding, DynamoDB JSON to Python (and back, for sample records),
canonical ordering keys, FIFO told by the queue ARN."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

import asyncbatch
from asyncbatch._sources.dynamodb_json import (
    DynamoDBJSONError,
    canonical_key,
    deserialize,
    serialize,
)
from tests._support.events import ddb_record, kinesis_record, sqs_record


def test_sqs_view() -> None:
    raw = sqs_record(3, group="g1")
    raw["messageAttributes"] = {"kind": {"stringValue": "x", "dataType": "String"}}
    view = asyncbatch.SQSRecord(raw)
    assert view.raw is raw and view.identifier == view.message_id == "msg-000003"
    assert view.json() == {"n": 3} and view.body == '{"n": 3}'
    assert view.message_group_id == "g1" == view.ordering_key
    assert view.message_attributes["kind"]["stringValue"] == "x"
    assert view.receive_count == 1
    assert view.event_source_arn is not None and view.event_source_arn.endswith(".fifo")
    assert raw == sqs_record(3, group="g1") | {"messageAttributes": raw["messageAttributes"]}


def test_kinesis_view_decodes_lazily() -> None:
    raw = kinesis_record(1, "user-7", {"a": 1})
    view = asyncbatch.KinesisRecord(raw)
    assert view.partition_key == "user-7" == view.ordering_key
    assert view.sequence_number == raw["kinesis"]["sequenceNumber"]
    assert view.data == b'{"a": 1}' and view.json() == {"a": 1}
    raw2 = kinesis_record(2, "k")
    raw2["kinesis"]["data"] = "%%%"
    broken = asyncbatch.KinesisRecord(raw2)
    assert broken.partition_key == "k"  # nothing decoded until .data is read
    with pytest.raises(asyncbatch.RecordDecodeError, match="not valid base64"):
        _ = broken.data


def test_dynamodb_values_become_python() -> None:
    image = {
        "s": {"S": "text"}, "n": {"N": "12.50"}, "b": {"B": base64.b64encode(b"\x00\x01").decode()},
        "t": {"BOOL": True}, "z": {"NULL": True},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [base64.b64encode(b"x").decode()]},
        "m": {"M": {"inner": {"L": [{"N": "1"}, {"S": "two"}, {"M": {}}]}}},
    }
    assert deserialize({"M": image}) == {
        "s": "text", "n": Decimal("12.50"), "b": b"\x00\x01", "t": True, "z": None,
        "ss": {"a", "b"}, "ns": {Decimal(1), Decimal("2.5")}, "bs": {b"x"},
        "m": {"inner": [Decimal(1), "two", {}]},
    }
    with pytest.raises(DynamoDBJSONError, match=r"\$\.q: unknown DynamoDB type 'Q'"):
        deserialize({"M": {"q": {"Q": 1}}})


def test_dynamodb_view() -> None:
    raw = ddb_record(5, "user-1", event_name="MODIFY", value=3)
    view = asyncbatch.DynamoDBRecord(raw)
    assert view.event_name == "MODIFY"
    assert view.keys == {"pk": "user-1", "sk": Decimal(1)}
    assert view.new_image is not None and view.new_image["value"] == Decimal(3)
    assert view.old_image is not None
    assert asyncbatch.DynamoDBRecord(ddb_record(1, "a", event_name="INSERT")).old_image is None
    raw["dynamodb"]["NewImage"]["bad"] = {"N": "x"}
    with pytest.raises(asyncbatch.RecordDecodeError, match=r"NewImage\.bad"):
        _ = view.new_image


def test_canonical_keys_ignore_attribute_order_and_number_spelling() -> None:
    a = canonical_key({"pk": {"S": "x"}, "sk": {"N": "1"}})
    b = canonical_key({"sk": {"N": "1.0"}, "pk": {"S": "x"}})
    c = canonical_key({"sk": {"N": "2"}, "pk": {"S": "x"}})
    assert a == b and hash(a) == hash(b) and a != c
    first = ddb_record(0, "x")
    second = ddb_record(1, "x")
    second["dynamodb"]["Keys"] = {"sk": {"N": "1.00"}, "pk": {"S": "x"}}
    assert asyncbatch.DynamoDBRecord(first).ordering_key == \
        asyncbatch.DynamoDBRecord(second).ordering_key


@pytest.mark.anyio
async def test_reordered_key_attributes_share_one_lane() -> None:
    first = ddb_record(0, "x")
    second = ddb_record(1, "x")
    second["dynamodb"]["Keys"] = {"sk": {"N": "1"}, "pk": {"S": "x"}}
    running = 0
    peak = 0

    async def handle(record: object) -> None:
        import anyio

        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        running -= 1

    await asyncbatch.AsyncBatchProcessor().process({"Records": [first, second]}, handle)
    assert peak == 1


def test_a_fair_queue_message_has_a_group_but_no_ordering_key() -> None:
    raw = sqs_record(1, group="tenant-1")
    raw["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:orders"  # standard queue
    view = asyncbatch.SQSRecord(raw)
    assert view.message_group_id == "tenant-1"
    assert not view.is_fifo and view.ordering_key is None


def test_dynamodb_json_round_trips() -> None:
    value = {"s": "x", "n": Decimal("1.5"), "i": 3, "b": b"\x00", "t": True, "z": None,
             "ss": {"a", "b"}, "ns": {Decimal(1), Decimal(2)}, "bs": {b"x"},
             "l": [1, "two", {"m": []}]}
    back = deserialize(serialize(value))
    assert back == {**value, "i": Decimal(3), "l": [Decimal(1), "two", {"m": []}]}
    with pytest.raises(TypeError, match="object has no DynamoDB type"):
        serialize(object())


@pytest.mark.parametrize(("value", "match"), [
    ({"SS": "ab"}, r"SS must hold a list"),
    ({"SS": ["a", 1]}, r"SS must hold strings"),
    ({"NS": ["1", "x"]}, r"'x' is not a DynamoDB number"),
    ({"N": 5}, r"5 is not a DynamoDB number \(a string\)"),
    ({"N": "Infinity"}, r"'Infinity' is not a DynamoDB number"),
    ({"S": 5}, r"S must hold a string"),
])
def test_malformed_dynamodb_values_name_their_path(value: dict[str, object], match: str) -> None:
    with pytest.raises(DynamoDBJSONError, match=match):
        deserialize({"M": {"a": value}})


def test_key_numbers_outside_dynamodb_range_are_refused() -> None:
    with pytest.raises(DynamoDBJSONError, match=r"out of DynamoDB's number range"):
        canonical_key({"pk": {"N": "1e126"}})
    assert canonical_key({"pk": {"N": "9.9e125"}}) == (("pk", "N", Decimal("9.9e125")),)
    with pytest.raises(DynamoDBJSONError, match=r"type 'SS' is not a key type"):
        canonical_key({"pk": {"SS": ["a"]}})
