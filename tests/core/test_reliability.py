"""Time, retries, cancellation, sinks, hooks and tumbling windows (docs/contract.md, "Time").

Time-dependent tests run on trio with ``MockClock(autojump_threshold=0)``: the clock
jumps to the next timer whenever every task is blocked, so a 10 s handler "runs" in no
real time and every deadline is exact. The Lambda context's remaining time follows that
clock (``LambdaContext`` in conftest.py).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

import asyncbatch
from asyncbatch import (
    DeadlineExceededError,
    Failure,
    RecordTimeoutError,
    Retry,
    SinkError,
    TransientError,
)
from asyncbatch.testing import LambdaContext
from tests._support.events import ddb_record, kinesis_record, make_event, position, sqs_record

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def ids(report: asyncbatch.BatchReport) -> list[str]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


# -- per-record timeout ------------------------------------------------------------------


async def test_a_handler_past_its_timeout_is_cancelled_and_fails() -> None:
    cancelled: list[int] = []

    async def handle(record: Any) -> None:
        if position(record) == 1:
            try:
                await anyio.sleep(60)
            except anyio.get_cancelled_exc_class():
                cancelled.append(position(record))
                raise
        await anyio.sleep(0.5)

    processor = asyncbatch.AsyncBatchProcessor(timeout=2)
    start = anyio.current_time()
    report = await processor.process(make_event("sqs", "abc"), handle)
    assert anyio.current_time() - start == pytest.approx(2, abs=0.01)
    assert cancelled == [1]
    (failed,) = report.failed
    assert isinstance(failed.exception, RecordTimeoutError)
    assert isinstance(failed.exception, TimeoutError)
    assert failed.identifier in str(failed.exception) and "2s timeout" in str(failed.exception)
    assert len(report.succeeded) == 2


# -- retries -----------------------------------------------------------------------------


async def test_transient_errors_are_retried_with_bounded_backoff() -> None:
    calls: dict[int, list[float]] = {}

    async def handle(record: Any) -> None:
        times = calls.setdefault(position(record), [])
        times.append(anyio.current_time())
        if position(record) == 0 and len(times) < 3:
            raise TransientError("throttled")
        if position(record) == 1:
            raise ValueError("permanent")
        if position(record) == 2:
            raise TransientError("always")

    retry = Retry(attempts=3, base=0.5, cap=0.8, seed=7)
    report = await asyncbatch.AsyncBatchProcessor(retry=retry).process(
        make_event("sqs", "abc"), handle)
    by_index = {o.index: o for o in report}
    assert by_index[0].status == "succeeded" and by_index[0].attempts == 3
    assert by_index[1].status == "failed" and by_index[1].attempts == 1  # not transient
    assert by_index[2].status == "failed" and by_index[2].attempts == 3  # gave up
    assert isinstance(by_index[2].exception, TransientError)
    waits = [b - a for a, b in zip(calls[0], calls[0][1:])]
    # full jitter: uniform in [0, min(cap, base * 2**(n-1))]
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 0.8
    assert len(calls[1]) == 1 and len(calls[2]) == 3


def test_the_default_transient_predicate_knows_aws_throttling() -> None:
    class ClientError(Exception):
        def __init__(self, code: str, status: int) -> None:
            super().__init__(code)
            self.response = {"Error": {"Code": code},
                             "ResponseMetadata": {"HTTPStatusCode": status}}

    for code in ("ThrottlingException", "ProvisionedThroughputExceededException",
                 "RequestLimitExceeded", "SlowDown"):
        assert asyncbatch.is_transient(ClientError(code, 400))
    assert asyncbatch.is_transient(ClientError("InternalError", 503))
    assert not asyncbatch.is_transient(ClientError("ValidationException", 400))
    assert not asyncbatch.is_transient(ValueError("x"))
    assert asyncbatch.is_transient(TimeoutError())


async def test_a_retry_holds_its_lane() -> None:
    log: list[tuple[str, int]] = []
    failures = {0: 2}

    async def handle(record: Any) -> None:
        log.append(("start", position(record)))
        await anyio.sleep(0.01)
        if failures.get(position(record), 0):
            failures[position(record)] -= 1
            raise TransientError("again")
        log.append(("done", position(record)))

    processor = asyncbatch.AsyncBatchProcessor(retry=Retry(attempts=5, base=0.1))
    event = make_event("fifo", ["g", "g", "h"])
    report = await processor.process(event, handle)
    assert len(report.succeeded) == 3
    assert log.index(("start", 1)) > log.index(("done", 0))
    assert [e for e in log if e[1] == 0] == [("start", 0)] * 3 + [("done", 0)]


async def test_retries_never_outlive_the_deadline() -> None:
    async def handle(record: Any) -> None:
        raise TransientError("throttled")

    context = LambdaContext(3.0)
    processor = asyncbatch.AsyncBatchProcessor(retry=Retry(attempts=10, base=5, cap=60))
    start = anyio.current_time()
    report = await processor.process(make_event("sqs", "ab"), handle, context)
    assert anyio.current_time() - start < 3.0
    assert all(o.status == "failed" for o in report)
    assert all(o.attempts < 10 for o in report)


# -- the Lambda deadline ---------------------------------------------------------------------


@pytest.mark.parametrize("source", ["sqs", "fifo", "kinesis", "dynamodb"])
async def test_deadline_returns_in_time_and_reports_every_record(source: str) -> None:
    context = LambdaContext(2.0)
    event = make_event(source, [f"k{i % 4}" for i in range(12)])
    started: list[int] = []

    async def handle(record: Any) -> None:
        started.append(position(record))
        await anyio.sleep(10)  # would run far past the deadline

    processor = asyncbatch.AsyncBatchProcessor(concurrency=3)
    t0 = anyio.current_time()
    report = await processor.process(event, handle, context)
    elapsed = anyio.current_time() - t0
    # auto margins on 2 s: stop starting at 1.5 s, cancel at 1.8 s, return before 2 s
    assert elapsed == pytest.approx(1.8, abs=0.01)
    assert context.get_remaining_time_in_millis() > 0
    assert len(started) == 3
    assert sorted(o.index for o in report.failed) == sorted(started)
    assert all(isinstance(o.exception, DeadlineExceededError) for o in report.failed)
    assert len(report.skipped) == 9
    assert all(o.exception.reason == "deadline" for o in report.skipped)  # type: ignore[union-attr]
    assert len(ids(report)) == 12  # nothing lost: everything is redelivered


async def test_records_finishing_between_the_margins_succeed() -> None:
    context = LambdaContext(10.0)
    durations = {0: 0.5, 1: 9.2, 2: 9.9, 3: 0.1}

    async def handle(record: Any) -> None:
        await anyio.sleep(durations[position(record)])

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=3, deadline_margin=1.0, cancel_margin=0.5)
    report = await processor.process(make_event("sqs", "abcd"), handle, context)
    status = {o.index: o.status for o in report}
    # 0 ends at 0.5 and 3 starts then (before the 9 s stop); 1 ends at 9.2 (< 9.5 cancel)
    assert status == {0: "succeeded", 1: "succeeded", 2: "failed", 3: "succeeded"}


async def test_no_deadline_without_a_context_that_tells_time() -> None:
    async def handle(record: Any) -> None:
        await anyio.sleep(100)

    report = await asyncbatch.AsyncBatchProcessor().process(
        make_event("sqs", "ab"), handle, context=object())
    assert len(report.succeeded) == 2


# -- failure sinks ---------------------------------------------------------------------------


async def test_the_sink_takes_permanent_failures_and_they_count_as_handled() -> None:
    sunk: list[Failure] = []

    async def sink(failure: Failure) -> None:
        sunk.append(failure)

    async def handle(record: Any) -> None:
        if position(record) == 1:
            raise ValueError("poison")
        if position(record) == 2:
            raise TransientError("throttled")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink)
    event = make_event("sqs", "abc")
    report = await processor.process(event, handle)
    assert [f.identifier for f in sunk] == ["msg-000001"]
    assert isinstance(sunk[0].exception, ValueError) and sunk[0].attempts == 1
    assert sunk[0].event_type == "SQS" and sunk[0].record.raw is event["Records"][1]
    assert [o.index for o in report.sunk] == [1]
    assert report.sunk[0].status == "succeeded"
    assert ids(report) == ["msg-000002"]  # the transient one is redelivered, not sunk


async def test_a_refusing_sink_leaves_the_record_failed() -> None:
    async def sink(failure: Failure) -> None:
        raise ConnectionError("DLQ unreachable")

    async def handle(record: Any) -> None:
        raise ValueError("poison")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink, raise_on_all_failed=False)
    report = await processor.process(make_event("sqs", "a"), handle)
    (failed,) = report.failed
    assert isinstance(failed.exception, SinkError)
    assert isinstance(failed.exception.original, ValueError)
    assert isinstance(failed.exception.__cause__, ConnectionError)
    assert ids(report) == ["msg-000000"]


async def test_a_sunk_stream_record_lets_its_key_go_on() -> None:
    async def sink(failure: Failure) -> None:
        pass

    async def handle(record: Any) -> None:
        if position(record) == 0:
            raise ValueError("poison")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink, sink_when=lambda exc: True)
    report = await processor.process(make_event("kinesis", ["k", "k", "k"]), handle)
    assert ids(report) == [] and len(report.succeeded) == 3 and len(report.sunk) == 1


# -- hooks and the summary log -----------------------------------------------------------------


class Recorder(asyncbatch.Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def batch_started(self, event_type: str, size: int) -> None:
        self.events.append(("batch_started", event_type, size))

    def record_started(self, record: Any, attempt: int) -> None:
        self.events.append(("started", position(record), attempt))

    def record_succeeded(self, record: Any, attempts: int, duration: float) -> None:
        self.events.append(("succeeded", position(record), attempts))

    def record_failed(self, record: Any, exception: BaseException, attempts: int) -> None:
        self.events.append(("failed", position(record), attempts))

    def record_retried(self, record: Any, exception: BaseException, attempt: int,
                       delay: float) -> None:
        self.events.append(("retried", position(record), attempt))

    def record_skipped(self, record: Any, reason: str) -> None:
        self.events.append(("skipped", position(record), reason))

    def batch_finished(self, report: asyncbatch.BatchReport) -> None:
        self.events.append(("batch_finished", report.counts["failed"]))


async def test_hooks_see_every_step() -> None:
    hooks = Recorder()
    attempts: dict[int, int] = {}

    async def handle(record: Any) -> None:
        attempts[position(record)] = attempts.get(position(record), 0) + 1
        if position(record) == 0 and attempts[0] == 1:
            raise TransientError("once")
        if position(record) == 1:
            raise ValueError("bad")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=1, hooks=hooks, retry=Retry(attempts=2, base=0.01))
    await processor.process(make_event("fifo", ["a", "b", "b"]), handle)
    assert hooks.events == [
        ("batch_started", "SQS", 3),
        # event order at concurrency 1: record 0 (lane a), then lane b
        ("started", 0, 1), ("retried", 0, 1), ("started", 0, 2), ("succeeded", 0, 2),
        ("started", 1, 1), ("failed", 1, 1),
        ("skipped", 2, "group_failed"),
        ("batch_finished", 1),
    ]


async def test_one_summary_line_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    async def handle(record: Any) -> None:
        if position(record) == 0:
            raise ValueError("x")

    with caplog.at_level(logging.INFO, logger="asyncbatch"):
        await asyncbatch.AsyncBatchProcessor().process(make_event("sqs", "abc"), handle)
    (line,) = [r for r in caplog.records if r.name == "asyncbatch" and r.levelno == logging.INFO]
    assert "3 records, 2 succeeded, 1 failed, 0 skipped" in line.getMessage()
    assert line.asyncbatch["failed"] == 1  # type: ignore[attr-defined]


# -- tumbling windows ------------------------------------------------------------------------


def window_event(records: list[dict[str, Any]], *, final: bool = False,
                 state: Any = None) -> dict[str, Any]:
    return {
        "Records": records,
        "window": {"start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z"},
        "state": {"count": "0"} if state is None else state,
        "shardId": "shard123456789",
        "eventSourceARN": "stream-ARN",
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": False,
    }


def count_reducer(state: Any, record: Any, window: asyncbatch.Window) -> Any:
    return {**state, "count": str(int(state["count"]) + 1), "final": window.is_final}


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
async def test_window_state_folds_successful_records(source: str) -> None:
    make = kinesis_record if source == "kinesis" else ddb_record
    event = window_event([make(i, f"k{i % 2}") for i in range(5)], state={"count": "10"})

    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(window_reducer=count_reducer)
    report = await processor.process(event, handle)
    assert report.window is not None and report.window.shard_id == "shard123456789"
    assert report.response() == {"batchItemFailures": [],
                                 "state": {"count": "15", "final": False}}


async def test_window_state_never_counts_records_that_will_be_redelivered() -> None:
    event = window_event([kinesis_record(i, f"k{i % 3}") for i in range(6)])

    async def handle(record: Any) -> None:
        if position(record) == 3:
            raise ValueError("fails")

    processor = asyncbatch.AsyncBatchProcessor(window_reducer=count_reducer, concurrency=1)
    report = await processor.process(event, handle)
    response = report.response()
    # Lambda resumes at record 3: only records 0, 1 and 2 are in the state
    assert response["state"]["count"] == "3"
    assert response["batchItemFailures"][0]["itemIdentifier"] == \
        event["Records"][3]["kinesis"]["sequenceNumber"]


async def test_final_window_invocation_is_exposed() -> None:
    seen: list[bool] = []

    def reducer(state: Any, record: Any, window: asyncbatch.Window) -> Any:
        seen.append(window.is_final)
        return state

    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(window_reducer=reducer)
    report = await processor.process(window_event([ddb_record(0, "a")], final=True), handle)
    assert seen == [True] and report.window is not None and report.window.is_final
    empty = await processor.process(window_event([], final=True, state={"total": 4}), handle)
    assert empty.response() == {"batchItemFailures": [], "state": {"total": 4}}


async def test_a_failing_reducer_reports_its_record() -> None:
    def reducer(state: Any, record: Any, window: asyncbatch.Window) -> Any:
        if record.sequence_number.endswith("1"):
            raise RuntimeError("reducer bug")
        return {"n": state.get("n", 0) + 1}

    async def handle(record: Any) -> None:
        pass

    event = window_event([ddb_record(i, "a") for i in range(3)], state={})
    report = await asyncbatch.AsyncBatchProcessor(window_reducer=reducer).process(event, handle)
    assert report.response()["state"] == {"n": 1}
    assert ids(report) == [event["Records"][1]["dynamodb"]["SequenceNumber"]]


async def test_sqs_batches_ignore_windows_but_keep_partial_failures() -> None:
    async def handle(record: Any) -> None:
        if position(record) == 0:
            raise ValueError("x")

    report = await asyncbatch.AsyncBatchProcessor().process(
        {"Records": [sqs_record(0), sqs_record(1)]}, handle)
    assert "state" not in report.response()


@pytest.mark.parametrize("source", ["sqs", "kinesis"])
async def test_handlers_that_never_yield_still_meet_the_deadline(source: str) -> None:
    """A handler that blocks without awaiting (1 ms of CPU each) gives the deadline
    watcher no chance unless the workers yield on their own, in lanes too."""
    from trio.lowlevel import current_clock

    clock = current_clock()
    assert isinstance(clock, MockClock)

    async def handle(record: Any) -> None:
        clock.jump(0.001)  # time passes, no checkpoint

    context = LambdaContext(2.0)
    event = make_event(source, ["one-hot-key"] * 3000)
    t0 = anyio.current_time()
    report = await asyncbatch.AsyncBatchProcessor().process(event, handle, context)
    assert anyio.current_time() - t0 < 2.0
    assert report.skipped and len(report.succeeded) < 2000
    assert len(report.succeeded) + len(report.skipped) + len(report.failed) == 3000
