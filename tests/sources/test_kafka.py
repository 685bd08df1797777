"""Kafka event sources (Amazon MSK ``aws:kafka`` and ``SelfManagedKafka``): detection, the
record view, per-partition checkpoints, both ordering modes, ``model=`` and bad input.

A broker cannot run here, so the processor is tested with events shaped as Lambda sends
them: AWS's documented sample events, and events from ``asyncbatch.testing.kafka_event``.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any, Optional

import anyio
import pytest

import asyncbatch
from asyncbatch import AsyncBatchProcessor, EventType, InvalidEventError, KafkaRecord
from asyncbatch._sources import read_event
from asyncbatch.testing import kafka_event

# The sample events of the Lambda developer guide ("Using Lambda with Amazon MSK" and
# "... with self-managed Apache Kafka"), as documented.
MSK_SAMPLE: dict[str, Any] = {
    "eventSource": "aws:kafka",
    "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/"
                      "751d2973-a626-431c-9d4e-d7975eb44dd7-2",
    "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
                        "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
    "records": {
        "mytopic-0": [
            {
                "topic": "mytopic",
                "partition": 0,
                "offset": 15,
                "timestamp": 1545084650987,
                "timestampType": "CREATE_TIME",
                "key": "abcDEFghiJKLmnoPQRstuVWXyz1234==",
                "value": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                "headers": [
                    {"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}
                ],
            }
        ]
    },
}
SELF_MANAGED_SAMPLE: dict[str, Any] = {
    "eventSource": "SelfManagedKafka",
    "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
                        "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
    "records": copy.deepcopy(MSK_SAMPLE["records"]),
}


def _ids(response: dict[str, Any]) -> list[tuple[str, int]]:
    return [(item["itemIdentifier"]["partition"], item["itemIdentifier"]["offset"])
            for item in response["batchItemFailures"]]


class Fails:
    """A handler failing the records whose value is in ``bad``; it keeps the order of
    the records it ran (as (topic-partition, offset))."""

    def __init__(self, *bad: str) -> None:
        self.bad = set(bad)
        self.ran: list[tuple[str, int]] = []

    async def __call__(self, record: KafkaRecord) -> None:
        self.ran.append((record.topic_partition, record.offset))
        await anyio.lowlevel.checkpoint()
        if record.value.decode() in self.bad:
            raise ValueError(f"bad {record.value!r}")


# -- detection and the view ------------------------------------------------------------

@pytest.mark.parametrize("sample", [MSK_SAMPLE, SELF_MANAGED_SAMPLE], ids=["msk", "self-managed"])
def test_the_documented_sample_events_are_detected_and_read(sample: dict[str, Any]) -> None:
    event = copy.deepcopy(sample)
    source, records, plan = read_event(event, None)
    assert source.event_type is EventType.KAFKA
    assert plan.identifiers == [{"partition": "mytopic-0", "offset": 15}]
    assert plan.partition is not None and plan.partition(0) == "mytopic-0"
    view = KafkaRecord(records[0])
    assert view.topic == "mytopic" and view.partition == 0 and view.offset == 15
    assert view.value == b"Hello, this is a test."
    assert view.key == base64.b64decode("abcDEFghiJKLmnoPQRstuVWXyz1234==")
    assert view.headers == {"headerKey": b"headerValue"}
    assert view.timestamp == 1545084650987 and view.timestamp_type == "CREATE_TIME"
    assert view.identifier == {"partition": "mytopic-0", "offset": 15}
    assert view.ordering_key == "mytopic-0"
    assert event == sample  # reading changed nothing


@pytest.mark.anyio
@pytest.mark.parametrize("sample", [MSK_SAMPLE, SELF_MANAGED_SAMPLE], ids=["msk", "self-managed"])
async def test_a_failed_sample_record_is_reported_with_its_partition_and_offset(
        sample: dict[str, Any]) -> None:
    handler = Fails("Hello, this is a test.")
    processor = AsyncBatchProcessor(raise_on_all_failed=False)
    response = await asyncbatch.async_process_partial_response(
        copy.deepcopy(sample), handler, processor)
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"partition": "mytopic-0", "offset": 15}}]}
    ok = await asyncbatch.async_process_partial_response(
        copy.deepcopy(sample), Fails(), processor)
    assert ok == {"batchItemFailures": []}


@pytest.mark.anyio
async def test_event_type_kafka_may_be_given_by_name() -> None:
    report = await AsyncBatchProcessor(event_type="Kafka").process(
        kafka_event(("k", "v")), Fails())
    assert report.response() == {"batchItemFailures": []}
    assert len(report.succeeded) == 1


def test_a_record_without_a_key_and_with_a_null_value() -> None:
    event = kafka_event((None, b""))
    raw = event["records"]["orders-0"][0]
    raw["value"] = None
    view = KafkaRecord(raw)
    assert view.key is None and view.value == b"" and view.headers == {}


@pytest.mark.parametrize(("sent", "value"), [
    # the header of Powertools' issue, ë as two negative Java bytes (the issue's text
    # says 'hello-world-ë'; its bytes, given here, spell 'hello-worldë')
    ([104, 101, 108, 108, 111, 45, 119, 111, 114, 108, 100, -61, -85], "hello-worldë"),
    ([118, -36, 0, 127, -128], b"v\xdc\x00\x7f\x80"),  # aws-lambda-go's sample event
    ([-1, -128, 127, 0], b"\xff\x80\x7f\x00"),
    ([], b""),
])
def test_header_values_are_java_signed_bytes(sent: list[int], value: Any) -> None:
    """Lambda sends each byte as a Java byte, -128 to 127: a byte from 0x80 up (any
    non-ASCII text) is negative. It failed the record (bytes() refuses negatives)."""
    raw = kafka_event(("k", "v"))["records"]["orders-0"][0]
    raw["headers"] = [{"h": sent}]
    expected = value.encode() if isinstance(value, str) else value
    assert KafkaRecord(raw).headers == {"h": expected}


@pytest.mark.parametrize(("sent", "says"), [
    (3, r"header 'h' is a number \(3\), not a list of byte values"),  # not three NULs
    (0, r"header 'h' is a number \(0\)"),
    ("aGVhZGVyVmFsdWU=", r"header 'h' is a str \('aGVhZGVyVmFsdWU='\), not a list"),
    (None, r"header 'h' is a NoneType"),
    ({"b": 1}, r"header 'h' is a dict"),
    ([104, -129], r"header 'h' has -129 at position 1, not a byte value \(-128 to 127\)"),
    ([1.5], r"header 'h' has 1.5 at position 0"),
    (["a"], r"header 'h' has 'a' at position 0"),
])
def test_a_header_value_lambda_never_sends_is_a_decode_error_naming_its_shape(
        sent: Any, says: str) -> None:
    raw = kafka_event(("k", "v"))["records"]["orders-0"][0]
    raw["headers"] = [{"ok": [1]}, {"h": sent}]
    with pytest.raises(asyncbatch.RecordDecodeError, match=says) as caught:
        _ = KafkaRecord(raw).headers
    assert caught.value.identifier == {"partition": "orders-0", "offset": 0}


@pytest.mark.parametrize("headers", [{"h": [1]}, [[1, 2]], "h"])
def test_headers_not_a_list_of_mappings_are_a_decode_error(headers: Any) -> None:
    raw = kafka_event(("k", "v"))["records"]["orders-0"][0]
    raw["headers"] = headers
    with pytest.raises(asyncbatch.RecordDecodeError, match="Lambda sends headers as"):
        _ = KafkaRecord(raw).headers


@pytest.mark.anyio
async def test_a_record_with_bad_headers_fails_alone() -> None:
    event = kafka_event((0, "k", "a"), (1, "k", "b"))
    event["records"]["orders-0"][0]["headers"] = [{"h": 3}]
    event["records"]["orders-1"][0]["headers"] = [{"h": [-61, -85]}]
    seen: list[bytes] = []

    async def handle(record: KafkaRecord) -> None:
        seen.append(record.headers["h"])

    report = await AsyncBatchProcessor(raise_on_all_failed=False).process(event, handle)
    assert _ids(report.response()) == [("orders-0", 0)]
    assert isinstance(report.failed[0].exception, asyncbatch.RecordDecodeError)
    assert seen == ["ë".encode()]


def test_headers_and_json() -> None:
    event = kafka_event(("k", {"order": 7}))
    raw = event["records"]["orders-0"][0]
    raw["headers"] = [{"trace": list(b"abc")}, {"tenant": list(b"t1")}, {"trace": list(b"x")}]
    view = KafkaRecord(raw)
    assert view.json() == {"order": 7}
    assert view.headers == {"trace": b"x", "tenant": b"t1"}
    raw["headers"] = [{"bad": [300]}]
    with pytest.raises(asyncbatch.RecordDecodeError, match="'bad' has 300 at position 0"):
        _ = view.headers
    raw["value"] = "%%%"
    with pytest.raises(asyncbatch.RecordDecodeError, match="value is not valid base64"):
        _ = view.value


# -- checkpoints per topic-partition ---------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_failure_holds_back_only_its_own_partition(concurrency: int) -> None:
    event = kafka_event((0, "a", "p0-0"), (0, "a", "p0-1"), (0, "b", "p0-2"), (0, "a", "p0-3"),
                        (1, "a", "p1-0"), (1, "b", "p1-1"), (1, "c", "p1-2"), start=100)
    handler = Fails("p0-1")
    report = await AsyncBatchProcessor(concurrency=concurrency).process(event, handler)
    # orders-0 resumes at its failure (offset 101); orders-1 is not held back at all
    assert _ids(report.response()) == [("orders-0", 101), ("orders-0", 102), ("orders-0", 103)]
    assert sorted((o.identifier["partition"], o.identifier["offset"])
                  for o in report.succeeded) == [
        ("orders-0", 100), ("orders-1", 100), ("orders-1", 101), ("orders-1", 102)]
    assert ("orders-0", 102) not in handler.ran and ("orders-0", 103) not in handler.ran
    assert [r for r in handler.ran if r[0] == "orders-1"] == [
        ("orders-1", 100), ("orders-1", 101), ("orders-1", 102)]


@pytest.mark.anyio
async def test_a_partition_runs_in_offset_order_even_when_the_event_is_not() -> None:
    event = kafka_event(("k", "x"), ("k", "y"), ("k", "z"), start=7)
    part = event["records"]["orders-0"]
    part.reverse()  # offsets 9, 8, 7 in the event
    handler = Fails("y")
    report = await AsyncBatchProcessor(concurrency=1).process(event, handler)
    assert handler.ran == [("orders-0", 7), ("orders-0", 8)]
    # reported in event order, each once: 9 (skipped) then 8 (failed)
    assert _ids(report.response()) == [("orders-0", 9), ("orders-0", 8)]


@pytest.mark.anyio
async def test_at_concurrency_one_partitions_run_in_event_order() -> None:
    event = kafka_event((3, "a", "x"), (0, "a", "y"), (3, "b", "z"), (0, "c", "w"),
                        start=5)
    handler = Fails()
    await AsyncBatchProcessor(concurrency=1).process(event, handler)
    # grouped by partition as Lambda groups them: orders-3 first, then orders-0
    assert handler.ran == [("orders-3", 5), ("orders-3", 6), ("orders-0", 5), ("orders-0", 6)]


# -- ordering modes --------------------------------------------------------------------

class Meet:
    """Records of keys a and b each wait until the other has started: they finish only
    when both run at once."""

    def __init__(self) -> None:
        self.started = {"a": anyio.Event(), "b": anyio.Event()}
        self.peak = 0
        self.running = 0

    async def __call__(self, record: KafkaRecord) -> None:
        key = (record.key or b"").decode()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if key in self.started:
                self.started[key].set()
                other = self.started["b" if key == "a" else "a"]
                with anyio.fail_after(5):  # a deadlock would otherwise hang the test
                    await other.wait()
        finally:
            self.running -= 1


@pytest.mark.anyio
async def test_ordering_key_runs_the_keys_of_one_partition_at_once() -> None:
    event = kafka_event(("a", "1"), ("b", "2"), ("a", "3"))
    handler = Meet()
    report = await AsyncBatchProcessor(ordering="key").process(event, handler)
    assert report.response() == {"batchItemFailures": []}
    assert handler.peak == 2


@pytest.mark.anyio
async def test_ordering_partition_runs_one_record_of_a_partition_at_a_time() -> None:
    event = kafka_event(("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"))
    running = peak = 0

    async def handle(record: KafkaRecord) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        running -= 1

    for ordering in (None, "partition"):
        peak = 0
        await AsyncBatchProcessor(ordering=ordering).process(event, handle)
        assert peak == 1


def test_ordering_key_lanes_and_keyless_records() -> None:
    event = kafka_event((0, "a", "1"), (0, None, "2"), (0, "b", "3"), (0, None, "4"),
                        (0, "a", "5"), (1, "a", "6"), (1, None, "7"))
    _, _, plan = read_event(event, None, ordering="key")
    # one lane per (partition, key); keyless records share one lane per partition
    assert plan.lanes == [[0, 4], [1, 3], [2], [5], [6]]
    _, _, default = read_event(event, None)
    assert default.lanes == [[0, 1, 2, 3, 4], [5, 6]]


@pytest.mark.anyio
async def test_ordering_key_keeps_the_partition_checkpoint() -> None:
    """A failure at offset s of a partition: nothing of that partition above s starts,
    whatever its key; keys below s still run."""
    event = kafka_event(("a", "a0"), ("b", "b1"), ("a", "a2-bad"), ("b", "b3"), ("c", "c4"))
    handler = Fails("a2-bad")
    report = await AsyncBatchProcessor(ordering="key", concurrency=1).process(event, handler)
    assert handler.ran == [("orders-0", 0), ("orders-0", 1), ("orders-0", 2)]
    assert _ids(report.response()) == [("orders-0", 2), ("orders-0", 3), ("orders-0", 4)]


# -- model= ----------------------------------------------------------------------------

@pytest.mark.anyio
async def test_model_parses_the_value() -> None:
    from pydantic import BaseModel

    class Order(BaseModel):
        order: int

    seen: list[int] = []

    async def handle(order: Order) -> None:
        seen.append(order.order)

    event = kafka_event(("k", {"order": 1}), ("k", {"order": "x"}), ("k", {"order": 3}))
    report = await AsyncBatchProcessor(model=Order, concurrency=1).process(event, handle)
    assert seen == [1]
    failed = report.failed
    assert len(failed) == 1 and isinstance(failed[0].exception, asyncbatch.RecordValidationError)
    assert _ids(report.response()) == [("orders-0", 1), ("orders-0", 2)]


# -- bad input -------------------------------------------------------------------------

def _msk(records: Any) -> dict[str, Any]:
    return {"eventSource": "aws:kafka", "bootstrapServers": "b:9092", "records": records}


def _rec(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(MSK_SAMPLE["records"]["mytopic-0"][0])
    for name, value in changes.items():
        if value is _MISSING:
            del raw[name]
        else:
            raw[name] = value
    return raw


_MISSING: Any = object()

KAFKA_MALFORMED = [
    pytest.param(_msk([_rec()]), None,
                 r"the Kafka event's 'records' is a list, not a mapping of "
                 r"'<topic>-<partition>' to lists of records", id="records-a-list"),
    pytest.param({"eventSource": "aws:kafka"}, None,
                 r"the Kafka event has no 'records' mapping", id="no-records"),
    pytest.param({"eventSource": "aws:kafka", "Records": [_rec()]}, None,
                 r"the Kafka event has no 'records' mapping", id="capital-Records"),
    pytest.param(_msk({"mytopic-0": _rec()}), None,
                 r"records\['mytopic-0'\] is a dict, not a list of records", id="group-not-list"),
    pytest.param(_msk({"mytopic-0": ["x"]}), None,
                 r"Kafka record 0: records\['mytopic-0'\]\[0\] is a str, not a mapping",
                 id="record-not-mapping"),
    pytest.param(_msk({"mytopic-0": [_rec(offset=_MISSING)]}), None,
                 r"Kafka record 0: has offset=None, not an offset \(its itemIdentifier\)",
                 id="no-offset"),
    pytest.param(_msk({"mytopic-0": [_rec(), _rec(offset="16")]}), None,
                 r"Kafka record 1: has offset='16', not an offset", id="offset-str"),
    pytest.param(_msk({"mytopic-0": [_rec(offset=-1)]}), None,
                 r"Kafka record 0: has offset=-1, not an offset", id="offset-negative"),
    pytest.param(_msk({"mytopic-0": [_rec(offset=True)]}), None,
                 r"Kafka record 0: has offset=True, not an offset", id="offset-bool"),
    pytest.param(_msk({"mytopic-0": [_rec(partition=_MISSING)]}), None,
                 r"Kafka record 0: has partition=None, not a partition number",
                 id="no-partition"),
    pytest.param(_msk({"mytopic-0": [_rec(topic=_MISSING)]}), None,
                 r"Kafka record 0: has topic=None, not a topic name", id="no-topic"),
    pytest.param({"records": {"mytopic-0": [_rec()]}}, None,
                 r"the event has 'records' but eventSource=None: a Kafka event names its source",
                 id="no-eventSource"),
    pytest.param({"Records": [{"eventSource": "aws:kafka"}]}, None,
                 r"cannot tell the event source: Records\[0\] has eventSource='aws:kafka'",
                 id="kafka-in-Records"),
    pytest.param(_msk({"mytopic-0": [_rec()]}), "SQS",
                 r"the processor is made for SQS events \(event_type='SQS'\) but this event "
                 r"comes from Kafka \(eventSource 'aws:kafka'\); make the processor with "
                 r"event_type=None", id="kafka-event-as-sqs"),
    pytest.param({"Records": [{"eventSource": "aws:sqs", "messageId": "m"}]}, "Kafka",
                 r"made for Kafka events \(event_type='Kafka'\) but this event comes from SQS",
                 id="sqs-event-as-kafka"),
    pytest.param({"records": {}}, "SQS", r"the event has no 'Records' key",
                 id="no-records-as-sqs"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("event", "event_type", "match"), KAFKA_MALFORMED)
async def test_a_malformed_kafka_event_is_refused_before_any_handler_runs(
        event: Any, event_type: Optional[str], match: str) -> None:
    handler = Fails()
    with pytest.raises(InvalidEventError, match=match):
        await AsyncBatchProcessor(event_type=event_type).process(event, handler)
    assert handler.ran == []


@pytest.mark.anyio
async def test_a_bad_key_in_ordering_key_mode_is_refused() -> None:
    event = _msk({"mytopic-0": [_rec(key=5)]})
    with pytest.raises(InvalidEventError, match=r"Kafka record 0: has key=5, not base64 text"):
        await AsyncBatchProcessor(ordering="key").process(event, Fails())


@pytest.mark.anyio
async def test_a_bad_value_fails_only_its_record() -> None:
    event = kafka_event(("k", "ok"), ("j", "ok"))
    event["records"]["orders-0"][1]["value"] = "!!not base64"
    report = await AsyncBatchProcessor(ordering="key").process(event, Fails())
    assert _ids(report.response()) == [("orders-0", 1)]
    assert isinstance(report.failed[0].exception, asyncbatch.RecordDecodeError)


def test_the_identifier_is_json_serialisable_as_lambda_expects() -> None:
    _, _, plan = read_event(kafka_event(("k", "v")), None)
    assert json.loads(json.dumps({"batchItemFailures": [
        {"itemIdentifier": i} for i in plan.identifiers or []]})) == {
        "batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 0}}]}
