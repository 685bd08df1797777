"""The source descriptors: one per source, each the single place that knows its shape.

Checked here without the scheduler: ``read_event`` (detection, a copied record list, the
identifiers as they arrived), the plan each source builds (lanes in integer sequence
order, lanes not sorted by length, ranks, checkpoint groups), FIFO decided by the queue
ARN only, ``ordering=``, views made without ``__init__``, and the sample-record builders
that every event factory (``asyncbatch.testing``, the benchmarks, ``asyncbatch bench``) uses.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncbatch
from asyncbatch import ConfigurationError, EventType, InvalidEventError
from asyncbatch._sources import SOURCES, FailureMode, read_event, source_for
from asyncbatch.testing import dynamodb_event, kafka_event, kinesis_event, s3_event, sqs_event

# every Lambda event source (EventType.ITERABLE names what stream() and run() process)
ALL = pytest.mark.parametrize("event_type", [t for t in EventType if t is not EventType.ITERABLE],
                              ids=lambda t: t.value)


def _sample_event(event_type: EventType, keys: list[Any]) -> dict[str, Any]:
    source = SOURCES[event_type]
    records = [source.sample_record(i, {"i": i}, key=k) for i, k in enumerate(keys)]
    return source.sample_event(records)


@ALL
def test_every_source_reads_back_its_own_sample_records(event_type: EventType) -> None:
    source = SOURCES[event_type]
    event = _sample_event(event_type, ["a", "b", "a"])
    found, records, plan = read_event(event, None)
    assert found is source and found.event_type is event_type
    assert plan.size == len(records) == 3
    assert plan.identifiers is not None
    for raw, ident in zip(records, plan.identifiers):
        view = source.view(raw)
        assert view.identifier == ident == source.identifier(raw)
        assert view.raw is raw
        assert source.failure_item(ident) == {"itemIdentifier": ident}
        value, is_json = source.model_input(view)
        parsed = json.loads(value) if is_json else value
        assert parsed["i"] == records.index(raw)
    # the identifiers are unique, as Lambda's are
    assert len({json.dumps(i, sort_keys=True) for i in plan.identifiers}) == 3


@ALL
def test_read_event_returns_a_new_list_and_identifiers_as_they_arrived(
        event_type: EventType) -> None:
    source = SOURCES[event_type]
    event = _sample_event(event_type, ["a", "b"])
    _, records, plan = read_event(event, event_type)
    before = list(plan.identifiers or [])
    # A handler that clears the event's record list, or edits a record, changes neither
    # our list nor the identifiers we report.
    if event_type is EventType.KAFKA:
        for part in event["records"].values():
            part.clear()
    else:
        event.get("Records", event.get("records")).clear()
    assert len(records) == 2
    if event_type is EventType.SQS:
        records[0]["messageId"] = "changed"
    assert plan.identifiers == before
    assert source.identifier(records[1]) == before[1]


@ALL
def test_views_work_when_made_without_init(event_type: EventType) -> None:
    """The scheduler may make a view as ``object.__new__(cls)`` + ``raw``: nothing else
    needs setting up, decoded values are cached lazily."""
    source = SOURCES[event_type]
    raw = source.sample_record(3, {"x": 1}, key="k")
    view = object.__new__(source.view)
    view.raw = raw
    assert view.identifier == source.identifier(raw)
    value, is_json = source.model_input(view)
    assert (json.loads(value) if is_json else value) == {"x": 1, **(
        {"pk": "k"} if event_type is EventType.DYNAMODB_STREAMS else {})}
    if event_type is EventType.KINESIS:
        assert view.data is view.data  # decoded once, then cached


# -- lanes, sequence order and ranks ------------------------------------------------------

@pytest.mark.parametrize("event_type", [EventType.KINESIS, EventType.DYNAMODB_STREAMS])
def test_a_key_out_of_sequence_order_runs_in_integer_sequence_order(
        event_type: EventType) -> None:
    source = SOURCES[event_type]
    # key "a" arrives as sequence 9, 5, 3 (and 10, 100: text order would put 100 first)
    event = source.sample_event([source.sample_record(i, key="a") for i in (9, 5, 3)]
                                + [source.sample_record(i, key="b") for i in (100, 10)])
    _, _, plan = read_event(event, None)
    assert plan.mode is FailureMode.CHECKPOINT and plan.sequence is not None
    assert plan.lanes is not None
    seqs = [[plan.sequence(i) - plan.sequence(2) + 3 for i in lane] for lane in plan.lanes]
    assert seqs == [[3, 5, 9], [10, 100]]
    assert plan.rank is not None
    assert [plan.rank(lane[0]) for lane in plan.lanes] == sorted(
        plan.rank(lane[0]) for lane in plan.lanes)
    assert all(plan.rank(i) == plan.sequence(i) for i in range(plan.size))


def test_lanes_are_not_sorted_longest_first() -> None:
    # one short lane first, a long one after: the short lane's head is lower in sequence
    event = kinesis_event(("short", 1), ("long", 2), ("long", 3), ("long", 4))
    _, _, plan = read_event(event, None)
    assert plan.lanes == [[0], [1, 2, 3]]


def test_fifo_lanes_keep_event_order_and_rank_by_position() -> None:
    event = sqs_event("m0", "m1", "m2", "m3", fifo_group=["b", "a", "a", "b"])
    _, _, plan = read_event(event, None)
    assert plan.mode is FailureMode.SKIP_LANE
    assert plan.lanes == [[0, 3], [1, 2]]
    assert plan.rank is None and plan.partition is None  # rank: position in the event
    _, _, stop = read_event(event, None, fifo_stop_batch=True)
    assert stop.mode is FailureMode.STOP_ALL


def test_sequence_numbers_compare_as_integers_not_text() -> None:
    source = SOURCES[EventType.KINESIS]
    low = source.sample_record(0, key="k")
    high = source.sample_record(1, key="k")
    low["kinesis"]["sequenceNumber"] = "9"
    high["kinesis"]["sequenceNumber"] = "10"
    _, _, plan = read_event({"Records": [high, low]}, None)
    assert plan.lanes == [[1, 0]]  # 9 before 10, although "10" < "9" as text


@pytest.mark.parametrize("event_type", [EventType.KINESIS, EventType.DYNAMODB_STREAMS])
def test_ordering_partition_runs_a_shard_batch_as_one_lane(event_type: EventType) -> None:
    source = SOURCES[event_type]
    event = source.sample_event([source.sample_record(i, key=k)
                                 for i, k in ((2, "a"), (1, "b"), (3, "c"))])
    _, _, by_key = read_event(event, None)
    assert by_key.lanes is not None and len(by_key.lanes) == 3
    _, _, whole = read_event(event, None, ordering="partition")
    assert whole.lanes == [[1, 0, 2]]  # sequence order: 1, 2, 3
    _, _, explicit = read_event(event, None, ordering="key")
    assert explicit.lanes == by_key.lanes


@pytest.mark.parametrize(("event_type", "ordering", "match"), [
    (EventType.SQS, "key", r"ordering='key': SQS records have no ordering to choose"),
    (EventType.SQS, "partition", r"ordering='partition': SQS"),
    (EventType.KINESIS, "shard", r"ordering='shard': KinesisDataStreams takes 'key' or "
                                 r"'partition' \(default 'key'\)"),
    (EventType.KAFKA, "offset", r"Kafka takes 'partition' or 'key' \(default 'partition'\)"),
])
def test_an_ordering_the_source_does_not_take_is_a_configuration_error(
        event_type: EventType, ordering: str, match: str) -> None:
    event = _sample_event(event_type, ["a"])
    with pytest.raises(ConfigurationError, match=match):
        read_event(event, None, ordering=ordering)


# -- FIFO by the queue ARN only (SQS fair queues) -----------------------------------------

def test_a_standard_queue_with_message_group_ids_stays_independent() -> None:
    """SQS fair queues: standard queues carry MessageGroupId as a tenant id, no order."""
    event = sqs_event("a", "b", "c", fifo_group="tenant-1",
                      queue_arn="arn:aws:sqs:us-east-1:123456789012:orders")
    assert all(r["attributes"]["MessageGroupId"] == "tenant-1" for r in event["Records"])
    _, records, plan = read_event(event, None)
    assert plan.lanes is None and plan.mode is FailureMode.INDEPENDENT
    view = asyncbatch.SQSRecord(records[0])
    assert view.message_group_id == "tenant-1"
    assert not view.is_fifo and view.ordering_key is None


def test_a_fifo_queue_is_told_by_its_arn() -> None:
    event = sqs_event("a", "b", fifo_group="g")
    assert event["Records"][0]["eventSourceARN"].endswith(".fifo")
    _, records, plan = read_event(event, None)
    assert plan.lanes == [[0, 1]]
    assert asyncbatch.SQSRecord(records[0]).ordering_key == "g"


def test_a_standard_queue_does_not_read_message_group_id_at_all() -> None:
    # a malformed MessageGroupId on a standard queue costs nothing: it is never read
    event = sqs_event("a")
    event["Records"][0]["attributes"]["MessageGroupId"] = 42
    _, _, plan = read_event(event, None)
    assert plan.mode is FailureMode.INDEPENDENT


# -- detection -------------------------------------------------------------------------

def test_source_for_takes_an_event_type_or_its_string() -> None:
    assert source_for("Kafka") is SOURCES[EventType.KAFKA]
    assert source_for(EventType.SQS).event_type is EventType.SQS
    with pytest.raises(ConfigurationError):
        source_for("kafka-ish")


def test_an_empty_batch_of_any_source_plans_nothing() -> None:
    for event in ({"Records": []}, kafka_event()):
        _, records, plan = read_event(event, None)
        assert records == [] and plan.size == 0 and (plan.identifiers or []) == []


# -- the event factories (asyncbatch.testing) ------------------------------------------

def test_sqs_event_encodes_dicts_and_keeps_text() -> None:
    event = sqs_event({"a": 1}, [1, 2], "plain", b"bytes")
    bodies = [r["body"] for r in event["Records"]]
    assert bodies == ['{"a": 1}', "[1, 2]", "plain", "bytes"]
    ids = [r["messageId"] for r in event["Records"]]
    assert len(set(ids)) == 4
    assert all(r["eventSourceARN"].startswith("arn:aws:sqs:") for r in event["Records"])


def test_kinesis_event_sequence_numbers_increase() -> None:
    event = kinesis_event(("k1", {"a": 1}), ("k2", b"\x00raw"), ("k1", "text"))
    seqs = [int(r["kinesis"]["sequenceNumber"]) for r in event["Records"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert base64.b64decode(event["Records"][1]["kinesis"]["data"]) == b"\x00raw"
    view = asyncbatch.KinesisRecord(event["Records"][0])
    assert view.json() == {"a": 1} and view.partition_key == "k1"


def test_dynamodb_event_builds_typed_images() -> None:
    event = dynamodb_event(("user-1", {"n": 3, "tags": {"a"}}),
                           ({"pk": "user-2", "sk": 5}, {"n": 1}, "REMOVE"))
    first = asyncbatch.DynamoDBRecord(event["Records"][0])
    assert first.keys == {"pk": "user-1"} and first.new_image is not None
    assert first.new_image["tags"] == {"a"} and first.new_image["n"] == 3
    second = asyncbatch.DynamoDBRecord(event["Records"][1])
    assert second.event_name == "REMOVE" and second.new_image is None
    assert second.keys == {"pk": "user-2", "sk": 5}


def test_s3_event_url_encodes_keys() -> None:
    event = s3_event("incoming/a b.csv", bucket="b")
    obj = event["Records"][0]["s3"]["object"]
    assert obj["key"] == "incoming/a+b.csv"
    assert event["Records"][0]["s3"]["bucket"]["arn"] == "arn:aws:s3:::b"


def test_factories_refuse_shapeless_records() -> None:
    with pytest.raises(ValueError, match=r"give \(partition_key, data\)"):
        kinesis_event("k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fifo_group has 1 group ids for 2 bodies"):
        sqs_event("a", "b", fifo_group=["g"])
    with pytest.raises(InvalidEventError):
        read_event({"Records": [{"eventSource": "aws:sqs"}]}, None)


# -- text forms (dead-letter message ids, the runner's parallelization hash) ------------

def test_key_and_identifier_text_per_source() -> None:
    fifo = sqs_event("a", fifo_group="g")["Records"][0]
    fair = sqs_event("a", fifo_group="tenant",
                     queue_arn="arn:aws:sqs:us-east-1:123456789012:orders")["Records"][0]
    sqs = SOURCES[EventType.SQS]
    assert sqs.key_text(fifo) == "g" and sqs.key_text(fair) is None
    ddb = SOURCES[EventType.DYNAMODB_STREAMS]
    raw = dynamodb_event(({"sk": 5, "pk": "user-1"}, {"n": 1}))["Records"][0]
    assert ddb.key_text(raw) == "pk=S:user-1,sk=N:5"
    kinesis = SOURCES[EventType.KINESIS]
    assert kinesis.key_text(kinesis_event(("p", 1))["Records"][0]) == "p"
    kafka = SOURCES[EventType.KAFKA]
    record = kafka_event(("k", "v"), start=15)["records"]["orders-0"][0]
    assert kafka.key_text(record) == "orders-0"
    assert kafka.identifier_text(kafka.identifier(record)) == "orders-0@15"
    assert sqs.identifier_text("m-1") == "m-1"


@pytest.mark.parametrize("event_type", [EventType.KINESIS, EventType.DYNAMODB_STREAMS])
def test_a_batch_in_sequence_order_ranks_by_position(event_type: EventType) -> None:
    """Lambda sends a shard's records in sequence order: then a record's position ranks it
    as its sequence number would (``rank=None``), and ``sequence`` still gives the int."""
    source = SOURCES[event_type]
    event = source.sample_event([source.sample_record(i, key=k)
                                 for i, k in enumerate("abab")])
    _, records, plan = read_event(event, None)
    assert plan.rank is None and plan.lanes == [[0, 2], [1, 3]]
    assert plan.sequence is not None
    assert [plan.sequence(i) for i in range(4)] == [int(source.identifier(r)) for r in records]
    # sequence numbers of different lengths compare as integers, not as text
    short = source.sample_record(0, key="a")
    long = source.sample_record(1, key="a")
    for raw, number in ((short, "99"), (long, "100")):
        (raw["kinesis"] if "kinesis" in raw else raw["dynamodb"])[
            "sequenceNumber" if "kinesis" in raw else "SequenceNumber"] = number
    _, _, mixed = read_event(source.sample_event([short, long]), None)
    assert mixed.lanes == [[0, 1]] and mixed.sequence is not None
    assert mixed.sequence(1) == 100


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", 1, (1, 2)]), max_size=30))
def test_lane_heads_name_the_lanes_group_makes(keys: list[Any]) -> None:
    """``Plan(heads=)``: each record's lane named by its first record's position; the
    lanes made from them are the ones ``group`` makes from the keys."""
    from asyncbatch._sources._base import group, lane_heads

    heads, width = lane_heads(keys)
    assert width == len(set(keys))
    assert [keys.index(k) for k in keys] == heads
    assert group(heads) == group(keys)


@pytest.mark.parametrize("event_type", [EventType.SQS, EventType.KINESIS,
                                        EventType.DYNAMODB_STREAMS, EventType.KAFKA])
def test_a_batch_in_order_is_planned_by_lane_heads_and_one_out_of_order_by_lanes(
        event_type: EventType) -> None:
    """A batch whose lanes run in event order is planned by its lane heads, its lanes
    made only if asked for, the cursor in event order; a stream batch out of sequence
    order gets a cursor in sequence order, its lanes sorted by sequence number."""
    source = SOURCES[event_type]
    options = {"queue_arn": "arn:aws:sqs:eu-west-1:123456789012:q.fifo"} \
        if event_type is EventType.SQS else {}
    raws = [source.sample_record(i, key=k, **options) for i, k in enumerate("abcab")]
    if event_type is EventType.KAFKA:
        raws = [source.sample_record(i, key=k, partition=int(k == "a"))
                for i, k in enumerate("abcab")]
    _, _, plan = read_event(source.sample_event(raws), None)
    assert plan.heads is not None and plan.rank is None and plan.keyed
    assert plan.order is None and plan._lanes is None  # (not made until asked for)
    assert plan.lanes == group_of(plan.heads)
    assert plan.width == len(plan.lanes)
    if event_type is EventType.SQS:
        assert plan.lanes == [[0, 3], [1, 4], [2]]
    if event_type is EventType.KAFKA:  # a partition out of offset order: sorted lanes
        raws[0]["offset"], raws[3]["offset"] = raws[3]["offset"], raws[0]["offset"]
        _, _, other = read_event(source.sample_event(raws), None)
        assert other.lanes is not None and other.order is not None
        for lane in other.lanes:
            offsets = [other.sequence(i) for i in lane]  # type: ignore[misc]
            assert offsets == sorted(offsets)
            assert [i for i in other.order if i in lane] == lane  # lane order
        assert sorted(map(len, other.lanes)) == [2, 3]
    if event_type in (EventType.SQS, EventType.KAFKA):
        return  # (FIFO runs in event order always; Kafka ranks by position)
    swapped = source.sample_event([raws[1], raws[0], *raws[2:]])
    _, _, other = read_event(swapped, None)
    assert other.rank is not None and other.lanes is not None and other.order is not None
    assert [other.rank(i) for i in other.order] == sorted(map(other.rank, range(5)))


def group_of(heads: list[int]) -> list[list[int]]:
    lanes: dict[int, list[int]] = {}
    for index, head in enumerate(heads):
        lanes.setdefault(head, []).append(index)
    return list(lanes.values())
