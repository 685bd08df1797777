"""The contract of docs/contract.md: concurrency, order, failures and the partial response."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncbatch
from asyncbatch import EventType, RecordSkippedError
from tests._support.events import SOURCE_NAMES as SOURCES
from tests._support.events import ddb_record, kinesis_record, make_event, position, sqs_record

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.anyio

KEYED = ("fifo", "kinesis", "dynamodb")


def ids(report: asyncbatch.BatchReport) -> list[str]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


def identifiers(event: dict[str, Any], positions: list[int]) -> list[str]:
    views = {
        "aws:sqs": asyncbatch.SQSRecord,
        "aws:kinesis": asyncbatch.KinesisRecord,
        "aws:dynamodb": asyncbatch.DynamoDBRecord,
    }
    records = event["Records"]
    return [views[records[p]["eventSource"]](records[p]).identifier for p in positions]


# -- concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
async def test_bound_is_reached_and_never_exceeded(source: str) -> None:
    bound = 4
    event = make_event(source, [f"k{i}" for i in range(20)])  # all keys distinct
    running = 0
    peak = 0
    full = anyio.Event()

    async def handle(record: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == bound:
            full.set()
        await full.wait()  # the first `bound` records wait until the bound is reached
        await anyio.lowlevel.checkpoint()
        running -= 1

    processor = asyncbatch.AsyncBatchProcessor(concurrency=bound)
    report = await processor.process(event, handle)
    assert peak == bound
    assert len(report.succeeded) == 20 and report.response() == {"batchItemFailures": []}


@pytest.mark.parametrize("source", KEYED)
async def test_one_key_runs_one_at_a_time_in_event_order(source: str) -> None:
    keys = ["a", "b", "a", "c", "a", "b", "b", "a", "c", "a"]
    event = make_event(source, keys)
    seen: dict[Any, list[int]] = {}
    in_key: dict[Any, int] = {}
    overlap = False
    running = 0
    peak = 0

    async def handle(record: Any) -> None:
        nonlocal overlap, running, peak
        key = record.ordering_key
        in_key[key] = in_key.get(key, 0) + 1
        running += 1
        peak = max(peak, running)
        overlap |= in_key[key] > 1
        seen.setdefault(key, []).append(position(record))
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        in_key[key] -= 1
        running -= 1

    report = await asyncbatch.AsyncBatchProcessor(concurrency=8).process(event, handle)
    assert not overlap
    assert peak == 3  # three keys, so three lanes run at once
    expected: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        expected.setdefault(k, []).append(i)
    assert sorted(seen.values()) == sorted(expected.values())
    assert len(report.succeeded) == len(keys)


async def test_standard_sqs_records_are_independent() -> None:
    event = make_event("sqs", ["x"] * 6)
    both = anyio.Event()
    started = 0

    async def handle(record: Any) -> None:
        nonlocal started
        started += 1
        if started == 6:
            both.set()
        await both.wait()  # deadlocks unless all six run at once

    with anyio.fail_after(5):
        report = await asyncbatch.AsyncBatchProcessor(concurrency=6).process(event, handle)
    assert len(report.succeeded) == 6


# -- failures and the response --------------------------------------------------------


async def test_sqs_standard_reports_only_failed_in_event_order() -> None:
    event = {"Records": [sqs_record(i) for i in range(10)]}
    failing = {7, 2, 5}

    async def handle(record: Any) -> None:
        await anyio.lowlevel.checkpoint()
        if record.json()["n"] in failing:
            raise ValueError(f"bad {record.message_id}")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=3).process(event, handle)
    assert ids(report) == identifiers(event, [2, 5, 7])
    assert [o.identifier for o in report.failed] == identifiers(event, [2, 5, 7])
    assert all(isinstance(o.exception, ValueError) for o in report.failed)
    assert report.skipped == []
    assert len(report.succeeded) == 7
    assert all(o.attempts == 1 and o.duration is None for o in report.succeeded)


@pytest.mark.parametrize("source", SOURCES)
async def test_timings_measure_every_record(source: str) -> None:
    async def handle(record: Any) -> None:
        await anyio.sleep(0.001 * (position(record) + 1))
        if position(record) == 2:
            raise ValueError("x")

    processor = asyncbatch.AsyncBatchProcessor(timings=True)
    report = await processor.process(make_event(source, [f"k{i}" for i in range(4)]), handle)
    ran = [o for o in report if o.status != "skipped"]
    assert ran and all(o.duration is not None and o.duration >= 0.001 for o in ran)
    assert all(o.duration is None or o.duration == 0 for o in report.skipped)


async def test_fifo_failure_skips_rest_of_its_group_only() -> None:
    groups = ["A", "B", "A", "B", "A", "A", "B"]
    event = {"Records": [sqs_record(i, group=g) for i, g in enumerate(groups)]}
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(position(record))
        if position(record) == 2:
            raise RuntimeError("boom")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=4).process(event, handle)
    assert sorted(ran) == [0, 1, 2, 3, 6]
    assert ids(report) == identifiers(event, [2, 4, 5])
    skipped = report.skipped
    assert [o.index for o in skipped] == [4, 5]
    for outcome in skipped:
        assert isinstance(outcome.exception, RecordSkippedError)
        assert outcome.exception.reason == "group_failed"
        assert isinstance(outcome.exception.cause, RuntimeError)
        assert outcome.attempts == 0


async def test_fifo_stop_on_failure_skips_everything_not_started() -> None:
    groups = ["A", "B", "C", "A", "B", "C", "A", "B", "C"]
    event = {"Records": [sqs_record(i, group=g) for i, g in enumerate(groups)]}
    started: set[int] = set()
    others = anyio.Event()
    failing = anyio.Event()
    gate = anyio.Event()

    async def handle(record: Any) -> None:
        started.add(position(record))
        if {0, 2} <= started:
            others.set()
        if position(record) == 1:  # B's first record fails once A and C are running
            await others.wait()
            failing.set()  # no checkpoint from here to the engine seeing the failure
            raise RuntimeError("stop")
        await gate.wait()

    processor = asyncbatch.AsyncBatchProcessor(concurrency=3, fifo_stop_on_failure=True)
    result: list[asyncbatch.BatchReport] = []

    async def run() -> None:
        result.append(await processor.process(event, handle))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await failing.wait()
        gate.set()
    report = result[0]
    assert started == {0, 1, 2}
    assert [o.index for o in report.succeeded] == [0, 2]
    assert [o.index for o in report.failed] == [1]
    assert [o.index for o in report.skipped] == [3, 4, 5, 6, 7, 8]
    assert {o.exception.reason for o in report.skipped} == {"batch_stopped"}  # type: ignore[union-attr]
    assert ids(report) == identifiers(event, [1, 3, 4, 5, 6, 7, 8])


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
async def test_stream_checkpoint_skips_records_above_lowest_failure(source: str) -> None:
    keys = ["a", "b", "a", "b", "c", "a", "c"]
    event = make_event(source, keys)
    log: list[tuple[str, int]] = []

    async def handle(record: Any) -> None:
        log.append(("start", position(record)))
        await anyio.lowlevel.checkpoint()
        if position(record) == 3:
            log.append(("fail", 3))
            raise ValueError("bad record")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)
    failed_at = log.index(("fail", 3))
    assert all(p <= 3 for kind, p in log[failed_at:] if kind == "start")
    reported = ids(report)
    assert reported[0] == identifiers(event, [3])[0]
    # the checkpoint invariant: all below the lowest reported record succeeded
    succeeded = {o.index for o in report.succeeded}
    assert set(range(3)) <= succeeded
    assert 3 not in succeeded
    # later records of the failed key are skipped, never run
    assert {o.index for o in report.skipped} >= {5} - succeeded
    assert all(o.index > 3 for o in report.skipped)


async def test_sequence_numbers_compare_as_integers() -> None:
    # "10" < "9" as strings; as numbers 9 is below the failure and must still run.
    first = kinesis_record(0, "a")
    first["kinesis"]["sequenceNumber"] = "10"
    second = kinesis_record(1, "b")
    second["kinesis"]["sequenceNumber"] = "9"
    ran: list[str] = []

    async def handle(record: Any) -> None:
        ran.append(record.sequence_number)
        if record.sequence_number == "10":
            raise ValueError("fails")

    processor = asyncbatch.AsyncBatchProcessor(concurrency=1)
    report = await processor.process({"Records": [first, second]}, handle)
    # Lowest sequence number first (9 before 10), as integers; 9 is below the failure.
    assert ran == ["9", "10"]
    assert ids(report) == ["10"]


@pytest.mark.parametrize("event_type", [
    None, *(t for t in EventType if t is not EventType.ITERABLE), "SQS", "KinesisDataStreams",
    "DynamoDBStreams"])
async def test_empty_batch_is_valid(event_type: Any) -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("no record to run")

    processor = asyncbatch.AsyncBatchProcessor(event_type=event_type)
    report = await processor.process({"Records": []}, handle)
    # a Firehose transformation answers in Firehose's shape: every record (none)
    empty = {"records": []} if event_type is EventType.FIREHOSE else {"batchItemFailures": []}
    assert report.response() == empty
    assert await asyncbatch.async_process_partial_response(
        {"Records": []}, handle, processor) == empty


@pytest.mark.parametrize("source", SOURCES)
async def test_every_record_failed_raises_batch_failed(source: str) -> None:
    event = make_event(source, [f"k{i}" for i in range(5)])

    async def handle(record: Any) -> None:
        raise KeyError(f"missing {position(record)}")

    processor = asyncbatch.AsyncBatchProcessor(concurrency=2)
    report = await processor.process(event, handle)  # process() always returns
    assert report.all_failed and not report.succeeded
    if source in ("sqs", "fifo"):
        assert len(report.failed) == 5
    else:  # streams stop at the checkpoint: the rest is skipped, never run
        assert len(report.failed) + len(report.skipped) == 5 and report.failed
    with pytest.raises(asyncbatch.BatchFailedError) as caught:
        await asyncbatch.async_process_partial_response(event, handle, processor)
    err = caught.value
    assert isinstance(err, ExceptionGroup)
    keyerrors = sorted(str(e) for e in err.exceptions if isinstance(e, KeyError))
    assert keyerrors == sorted(repr(f"missing {o.index}") for o in err.report.failed)
    skips = [e for e in err.exceptions if not isinstance(e, KeyError)]
    assert all(isinstance(e, RecordSkippedError) for e in skips)
    assert bool(skips) == bool(err.report.skipped)

    lenient = asyncbatch.AsyncBatchProcessor(concurrency=2, raise_on_all_failed=False)
    response = await asyncbatch.async_process_partial_response(event, handle, lenient)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == identifiers(
        event, list(range(5)))


async def test_handler_may_take_the_context() -> None:
    context = object()
    got: list[Any] = []

    async def handle(record: Any, ctx: Any) -> None:
        got.append(ctx)

    await asyncbatch.AsyncBatchProcessor().process(make_event("sqs", "ab"), handle, context)
    assert got == [context, context]


@pytest.mark.parametrize("name", ["SQS", "KinesisDataStreams", "DynamoDBStreams"])
async def test_event_type_strings_and_detection(name: str) -> None:
    source = {"SQS": "sqs", "KinesisDataStreams": "kinesis", "DynamoDBStreams": "dynamodb"}[name]
    event = make_event(source, ["a", "b"])

    async def handle(record: Any) -> None:
        pass

    explicit = await asyncbatch.AsyncBatchProcessor(event_type=name).process(event, handle)
    detected = await asyncbatch.AsyncBatchProcessor().process(event, handle)
    assert explicit.event_type is detected.event_type is EventType(name)


async def test_a_shared_processor_serves_concurrent_calls() -> None:
    processor = asyncbatch.AsyncBatchProcessor(concurrency=2)
    first = {"Records": [sqs_record(i) for i in range(6)]}
    second = {"Records": [kinesis_record(i, "k") for i in range(6)]}
    release = anyio.Event()
    reports: dict[str, asyncbatch.BatchReport] = {}
    waiting = 0

    async def handle(record: Any) -> None:
        nonlocal waiting
        waiting += 1
        await release.wait()
        if position(record) % 2:
            raise ValueError("odd")

    async def run(name: str, event: dict[str, Any]) -> None:
        reports[name] = await processor.process(event, handle)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "sqs", first)
        tg.start_soon(run, "kinesis", second)
        while waiting < 3:  # two SQS records and the one Kinesis key run at once
            await anyio.lowlevel.checkpoint()
        release.set()
    assert ids(reports["sqs"]) == identifiers(first, [1, 3, 5])
    assert ids(reports["kinesis"])[0] == identifiers(second, [1])[0]
    assert reports["kinesis"].counts == {"succeeded": 1, "failed": 1, "skipped": 4, "sunk": 0,
                                         "replayed": 0}


async def test_cancelling_process_cancels_and_awaits_every_handler() -> None:
    event = make_event("sqs", "abcdefgh")
    started = 0
    finished = 0
    all_started = anyio.Event()

    async def handle(record: Any) -> None:
        nonlocal started, finished
        started += 1
        if started == 4:
            all_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished += 1

    processor = asyncbatch.AsyncBatchProcessor(concurrency=4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(processor.process, event, handle)
        await all_started.wait()
        tg.cancel_scope.cancel()
    assert started == 4
    assert finished == 4  # every handler was cancelled and awaited before process() ended


async def test_cancelling_process_leaves_no_task_behind_on_asyncio(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("task introspection is asyncio's")
    before = set(asyncio.all_tasks())
    processor = asyncbatch.AsyncBatchProcessor(concurrency=3)
    entered = anyio.Event()

    async def handle(record: Any) -> None:
        entered.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(processor.process, make_event("sqs", "abcdef"), handle)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert set(asyncio.all_tasks()) == before


# -- models -------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["sqs", "kinesis", "dynamodb"])
async def test_model_parsing_and_validation_failures(source: str) -> None:
    from pydantic import BaseModel

    if source == "sqs":
        class Msg(BaseModel):
            n: int

        event = {"Records": [sqs_record(0), sqs_record(1, body='{"n": "x"}'), sqs_record(2)]}
    elif source == "kinesis":
        class Msg(BaseModel):  # type: ignore[no-redef]
            seq: int
            key: str

        event = {"Records": [kinesis_record(0, "a"), kinesis_record(1, "b"),
                             kinesis_record(2, "a", {"seq": "no"})]}
    else:
        class Msg(BaseModel):  # type: ignore[no-redef]
            pk: str
            seq: int

        bad = ddb_record(2, "b")
        bad["dynamodb"]["NewImage"]["seq"] = {"S": "not a number"}
        # a REMOVE record is parsed from its old image
        event = {"Records": [ddb_record(0, "a"), ddb_record(1, "c", event_name="REMOVE"), bad]}
    got: list[Any] = []

    async def handle(model: Any) -> None:
        assert isinstance(model, Msg)
        got.append(model)

    processor = asyncbatch.AsyncBatchProcessor(model=Msg, concurrency=1)
    report = await processor.process(event, handle)
    assert len(got) == 2
    (failure,) = report.failed
    assert failure.index == (1 if source == "sqs" else 2)
    assert isinstance(failure.exception, asyncbatch.RecordValidationError)
    field = {"sqs": "n", "kinesis": "seq", "dynamodb": "seq"}[source]
    assert field in failure.exception.fields
    assert field in str(failure.exception)
    assert failure.identifier in str(failure.exception)


# -- the synchronous entry point ----------------------------------------------------------


def test_sync_entry_point_reuses_one_loop_and_works_in_threads() -> None:
    processor = asyncbatch.AsyncBatchProcessor(concurrency=2)
    loops: list[int] = []

    async def handle(record: Any) -> None:
        loops.append(id(asyncio.get_running_loop()))
        if record.json()["n"] == 1:
            raise ValueError("one")

    event = {"Records": [sqs_record(0), sqs_record(1)]}
    expected = {"batchItemFailures": [{"itemIdentifier": "msg-000001"}]}
    assert asyncbatch.process_partial_response(event, handle, processor) == expected
    assert asyncbatch.process_partial_response(event, handle, processor) == expected
    assert len(set(loops)) == 1  # warm invocations share the loop

    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(
            asyncbatch.process_partial_response(event, handle, processor)))
    thread.start()
    thread.join()
    assert results == [expected]
    assert len(set(loops)) == 2  # a thread gets its own loop


async def test_sync_entry_point_inside_a_running_loop_says_what_to_use() -> None:

    async def handle(record: Any) -> None:
        pass

    with pytest.raises(asyncbatch.ConfigurationError, match="async_process_partial_response"):
        asyncbatch.process_partial_response(
            make_event("sqs", "a"), handle, asyncbatch.AsyncBatchProcessor())


def test_sync_entry_point_raises_batch_failed() -> None:
    async def handle(record: Any) -> None:
        raise ValueError("no")

    with pytest.raises(asyncbatch.BatchFailedError, match="all 3 records"):
        asyncbatch.process_partial_response(
            make_event("sqs", "abc"), handle, asyncbatch.AsyncBatchProcessor())


# -- the report ------------------------------------------------------------------------


async def test_every_record_is_in_exactly_one_outcome() -> None:
    event = make_event("fifo", ["a", "a", "b", "b", "c"])

    async def handle(record: Any) -> None:
        if position(record) in (0, 2):
            raise ValueError("x")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=2).process(event, handle)
    buckets = [report.succeeded, report.failed, report.skipped]
    indices = sorted(o.index for bucket in buckets for o in bucket)
    assert indices == list(range(5))
    assert [o.status for o in report] == ["failed", "skipped", "failed", "skipped", "succeeded"]
    assert "2 failed" in repr(report)


async def test_duplicate_identifiers_are_reported_once() -> None:
    records = [sqs_record(0), sqs_record(1), sqs_record(0)]

    async def handle(record: Any) -> None:
        if record.message_id == "msg-000000":
            raise ValueError("dup")

    report = await asyncbatch.AsyncBatchProcessor().process({"Records": records}, handle)
    assert ids(report) == ["msg-000000"]
    assert len(report.failed) == 2
