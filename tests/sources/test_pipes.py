"""EventBridge Pipes (docs/sources/pipes.md): a pipe whose source is an
SQS queue, a Kinesis stream or a DynamoDB stream hands its Lambda target a top-level list
of the source's records, processed and answered exactly as the same records under
``"Records"``. Checked on the EventBridge user guide's sample batches and on every
source's events from ``asyncbatch.testing``, with failure patterns compared record for
record; and the lists asyncbatch refuses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncbatch
from asyncbatch import AsyncBatchProcessor, EventType, InvalidEventError, KinesisRecord
from asyncbatch._sources import read_event
from asyncbatch.testing import kafka_event, pipes_event, simulate, sqs_event, strategies
from tests._support.events import SOURCE_NAMES, make_event, position

pytestmark = pytest.mark.anyio

SHAPES = Path(__file__).parent.parent / "events" / "shapes"  # the samples: see the README there


def sample(name: str) -> Any:
    """A fresh copy of the sample event ``tests/events/shapes/<name>``."""
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))

QUIET = {"log_summary": False}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis record as Lambda sends it, from the one a pipe flattened."""
    fields = ("kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
              "approximateArrivalTimestamp")
    return {"kinesis": {k: flat[k] for k in fields},
            **{k: v for k, v in flat.items() if k not in fields}}


class Recorder:
    """A handler failing the records whose identifier is in ``fail``; it keeps the order
    it ran them in."""

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.ran: list[str] = []

    async def __call__(self, record: Any) -> None:
        self.ran.append(record.identifier)
        await anyio.lowlevel.checkpoint()
        if record.identifier in self.fail:
            raise ValueError(f"fails {record.identifier}")


# -- the guide's sample batches ------------------------------------------------------------

SAMPLES = {
    "eventbridge-docs-pipes-sqs-batch.json": (
        EventType.SQS, ["059f36b4-87a3-44ab-83d2-661975830a7d",
                        "2e1424d4-f796-459a-8184-9c92662be6da"]),
    "eventbridge-docs-pipes-kinesis-batch.json": (
        EventType.KINESIS, ["49590338271490256608559692538361571095921575989136588898",
                            "49590338271490256608559692540925702759324208523137515618"]),
    "eventbridge-docs-pipes-dynamodb-batch.json": (
        EventType.DYNAMODB_STREAMS, ["111", "222", "333"]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_guides_sample_batches_are_detected(name: str) -> None:
    event_type, ids = SAMPLES[name]
    batch = sample(name)
    source, records, plan = read_event(batch, None)
    assert source.event_type is event_type and plan.identifiers == ids
    assert records == batch and records is not batch  # a new list of the same records
    assert batch == sample(name)


def test_a_flattened_kinesis_record_reads_as_lambdas() -> None:
    flat = sample("eventbridge-docs-pipes-kinesis-batch.json")[0]
    lambdas = sample("powertools-kinesisStreamEvent.json")["Records"][0]
    assert nested(flat) == lambdas  # the guide's record is Lambda's, flattened
    view, same = KinesisRecord(flat), KinesisRecord(lambdas)
    for name in ("identifier", "sequence_number", "partition_key", "data",
                 "approximate_arrival_timestamp", "ordering_key", "event_source_arn"):
        assert getattr(view, name) == getattr(same, name), name
    assert view.data == b"Hello, this is a test."


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("fail", [set(), {0}, {1}, {0, 1}])
async def test_a_sample_batch_is_processed_as_the_same_records_under_records(
        name: str, fail: set[int]) -> None:
    batch = sample(name)
    kinesis = name == "eventbridge-docs-pipes-kinesis-batch.json"
    lambdas = [nested(r) if kinesis else r for r in batch]
    failing = {SAMPLES[name][1][i] for i in fail}
    processor = AsyncBatchProcessor(concurrency=2, raise_on_all_failed=False, **QUIET)
    piped, plain = Recorder(failing), Recorder(failing)
    response = await asyncbatch.async_process_partial_response(batch, piped, processor)
    expected = await asyncbatch.async_process_partial_response(
        {"Records": lambdas}, plain, processor)
    assert response == expected and piped.ran == plain.ran


# -- every source, every failure pattern ------------------------------------------------------

@pytest.mark.parametrize("source", SOURCE_NAMES)
@pytest.mark.parametrize(("fail", "concurrency"), [
    # at concurrency 1 the run is exactly event (or sequence) order, so the two runs can be
    # compared record for record; above, the order depends on the scheduler (trio shuffles
    # it), so only patterns whose outcome does not depend on it are compared
    *((fail, 1) for fail in (set(), {2}, {0, 5}, {1, 3, 6}, set(range(8)))),
    (set(), 3), (set(range(8)), 3)])
async def test_every_pipe_source_answers_as_under_records(
        source: str, fail: set[int], concurrency: int) -> None:
    event = make_event(source, ["a", "b", "a", "c", "b", "a", "c", "b"])
    batch = pipes_event(event)
    assert isinstance(batch, list) and len(batch) == 8

    def handler() -> Any:
        ran: list[int] = []

        async def handle(record: Any) -> None:
            ran.append(position(record))
            await anyio.lowlevel.checkpoint()
            if position(record) in fail:
                raise ValueError("no")

        return handle, ran

    processor = AsyncBatchProcessor(concurrency=concurrency, **QUIET)
    (piped, piped_ran), (plain, plain_ran) = handler(), handler()
    report = await processor.process(batch, piped)
    expected = await processor.process(copy.deepcopy(event), plain)
    assert report.response() == expected.response()
    assert [o.status for o in report] == [o.status for o in expected]
    if concurrency == 1:
        assert piped_ran == plain_ran  # the same order: lanes, ranks, checkpoints
    assert report.event_type is expected.event_type


async def test_a_kinesis_pipe_keeps_the_checkpoint_rule() -> None:
    batch = pipes_event(make_event("kinesis", ["a", "b", "a", "b"]))

    async def handle(record: KinesisRecord) -> None:
        if position(record) == 1:
            raise ValueError("no")

    report = await AsyncBatchProcessor(concurrency=1, **QUIET).process(batch, handle)
    # nothing above the failed sequence number started; Lambda resumes from it
    assert [o.status for o in report] == ["succeeded", "failed", "skipped", "skipped"]
    assert [f["itemIdentifier"] for f in report.response()["batchItemFailures"]] == [
        raw["sequenceNumber"] for raw in batch[1:]]


async def test_an_empty_list_is_a_batch_with_nothing_to_do() -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("no record to run")

    for event_type in (None, "SQS", "KinesisDataStreams", "DynamoDBStreams"):
        processor = AsyncBatchProcessor(event_type=event_type, **QUIET)
        assert await asyncbatch.async_process_partial_response([], handle, processor) == {
            "batchItemFailures": []}


async def test_a_handler_that_edits_the_list_changes_nothing_reported() -> None:
    batch = pipes_event(sqs_event("a", "b", "c"))
    ids = [raw["messageId"] for raw in batch]

    async def handle(record: Any) -> None:
        batch.clear()
        record.raw["messageId"] = "changed"
        raise ValueError("no")

    report = await AsyncBatchProcessor(raise_on_all_failed=False, **QUIET).process(
        batch, handle)
    assert [f["itemIdentifier"] for f in report.response()["batchItemFailures"]] == ids


async def test_simulate_redelivers_a_pipes_batch_as_its_source() -> None:
    batch = pipes_event(sqs_event("ok", "poison"))

    async def handle(record: Any) -> None:
        if record.body == "poison":
            raise ValueError("poison")

    result = await simulate(handle, batch, processor=AsyncBatchProcessor(**QUIET))
    assert isinstance(result.invocations[1].event, list)
    assert [r["body"] for r in result.dead_letters] == ["poison"]
    assert result.dead_letters[0]["attributes"]["ApproximateReceiveCount"] == "3"


# -- what is refused ------------------------------------------------------------------------

KINESIS = sample("eventbridge-docs-pipes-kinesis-batch.json")
SQS = sample("eventbridge-docs-pipes-sqs-batch.json")


@pytest.mark.parametrize(("batch", "event_type", "match"), [
    ([SQS[0], KINESIS[0], SQS[1]], None,
     r"record 1 of the pipe's batch .* comes from 'aws:kinesis' but record 0 from 'aws:sqs'"),
    ([*SQS, *KINESIS], None, r"record 2 of the pipe's batch .* comes from 'aws:kinesis'"),
    (["a", "b"], None, r"record 0 of the pipe's batch .* is a str, not a record"),
    ([SQS[0], 7], None, r"record 1 of the pipe's batch .* is a int, not a record"),
    ([SQS[0], None], None, r"record 1 .* is a NoneType"),
    ([{"messageId": "m"}], None, r"cannot tell the source .* no eventSource; pass event_type="),
    ([{"eventSource": "aws:s3"}], None, r"cannot tell the source .*'aws:s3'"),
    ([{"Records": []}], None, r"record 0 of the pipe's batch .* is a whole event"),
    (KINESIS, EventType.SQS, r"record 0 .* comes from 'aws:kinesis' but the processor's "
                             r"event_type from 'aws:sqs'"),
    (SQS, EventType.FIREHOSE, r"the processor takes Firehose events"),
    (SQS, EventType.KAFKA, r"the processor takes Kafka events"),
])
async def test_a_list_asyncbatch_cannot_take_is_refused_naming_the_record(
        batch: list[Any], event_type: Any, match: str) -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("must not run")

    processor = AsyncBatchProcessor(event_type=event_type)
    with pytest.raises(InvalidEventError, match=match):
        await processor.process(copy.deepcopy(batch), handle)


def test_kafka_records_in_a_list_are_refused() -> None:
    event = kafka_event(("k", "v"))
    records = [dict(r, eventSource="aws:kafka") for part in event["records"].values()
               for r in part]
    with pytest.raises(InvalidEventError, match=r"cannot tell the source .*'aws:kafka'"):
        read_event(records, None)
    with pytest.raises(ValueError, match="not Kafka ones"):
        pipes_event(event)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=strategies.pipes_batches(max_size=15), failing=st.sets(st.integers(0, 14)))
def test_any_pipes_batch_answers_as_its_records_under_records(
        batch: list[Any], failing: set[int]) -> None:
    lambdas = [nested(r) if "sequenceNumber" in r else r for r in batch]

    async def main() -> tuple[Any, Any]:
        async def handle(record: Any) -> None:
            if position(record) in failing:
                raise ValueError("no")

        processor = AsyncBatchProcessor(concurrency=1, raise_on_all_failed=False, **QUIET)
        piped = await asyncbatch.async_process_partial_response(
            copy.deepcopy(batch), handle, processor)
        plain = await asyncbatch.async_process_partial_response(
            {"Records": lambdas}, handle, processor)
        return piped, plain

    piped, plain = anyio.run(main)
    assert piped == plain
