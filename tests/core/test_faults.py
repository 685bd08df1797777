"""Faults in the user's own code cost at most their record (docs/contract.md, "Faults in
your code").

Each test fails without its fix: the handler's own ``CancelledError`` used to cancel the
batch (or make ``process()`` raise), raising hooks and predicates crashed it, a handler
that edited its record made the response raise, ``KeyboardInterrupt`` left tasks on the
per-thread loop, and failures were logged as counts only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncbatch
from asyncbatch import (
    AIMDLimit,
    CallbackError,
    ConfigurationError,
    DeadlineExceededError,
    HandlerCancelledError,
    Hooks,
    Retry,
    TransientError,
)
from asyncbatch.testing import LambdaContext, kinesis_event, sqs_event

pytestmark = pytest.mark.anyio


def on_virtual_clock(test: Any) -> None:
    """Run ``test`` on trio with an autojumping MockClock: time is virtual."""
    from trio.testing import MockClock

    anyio.run(test, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})


def ids(report: asyncbatch.BatchReport) -> list[Any]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


def number(record: Any) -> int:
    return int(record.json()["n"])


def numbered_sqs(count: int, **kwargs: Any) -> dict[str, Any]:
    return sqs_event(*({"n": i} for i in range(count)), **kwargs)


# -- 1. a CancelledError the handler raises itself -----------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_handlers_own_cancelled_error_fails_only_its_record(concurrency: int) -> None:
    event = numbered_sqs(8)
    in_flight = anyio.Event()
    started = 0

    async def handle(record: Any) -> None:
        nonlocal started
        started += 1
        if number(record) == 0:
            if concurrency > 1:
                await in_flight.wait()  # innocents are running when it leaks
            raise asyncio.CancelledError("leaked by a client library")
        if started >= min(concurrency, 8):
            in_flight.set()
        await anyio.lowlevel.checkpoint()

    report = await asyncbatch.AsyncBatchProcessor(concurrency=concurrency).process(
        event, handle)
    (failed,) = report.failed
    assert failed.index == 0
    assert isinstance(failed.exception, HandlerCancelledError)
    assert isinstance(failed.exception.__cause__, asyncio.CancelledError)
    assert len(report.succeeded) == 7 and not report.skipped


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("source", ["sqs", "fifo", "kinesis"])
@pytest.mark.parametrize("full_path", [False, True])
async def test_a_handler_cancelling_its_own_task_fails_only_its_record(
        source: str, full_path: bool) -> None:
    if source == "kinesis":
        event = kinesis_event(*((f"k{i % 3}", {"n": i}) for i in range(9)))
    else:
        event = numbered_sqs(9, fifo_group=[f"g{i % 3}" for i in range(9)]
                             if source == "fifo" else None)

    async def handle(record: Any) -> None:
        if number(record) == 4:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
        await asyncio.sleep(0)

    options: dict[str, Any] = {"timeout": 30.0} if full_path else {}
    report = await asyncbatch.AsyncBatchProcessor(concurrency=3, **options).process(
        event, handle)
    assert [o.index for o in report.failed] == [4]
    assert isinstance(report.failed[0].exception, HandlerCancelledError)
    if source == "sqs":
        assert len(report.succeeded) == 8
    # the worker was not left with a pending cancel: later records ran
    assert all(o.index < 4 or o.status == "succeeded" or o.exception is not None
               for o in report)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_callers_cancellation_still_cancels_every_handler() -> None:
    running = 0
    finished = 0
    all_started = anyio.Event()

    async def handle(record: Any) -> None:
        nonlocal running, finished
        running += 1
        if running == 4:
            all_started.set()
        await anyio.sleep(3600)
        finished += 1

    processor = asyncbatch.AsyncBatchProcessor(concurrency=4)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(processor.process, numbered_sqs(10), handle)
            await all_started.wait()
            scope.cancel()
    assert finished == 0
    assert scope.cancelled_caught
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in leftovers if "process" in repr(t.get_coro())]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_sinks_own_cancelled_error_is_a_sink_error() -> None:
    async def sink(failure: asyncbatch.Failure) -> None:
        raise asyncio.CancelledError()

    async def handle(record: Any) -> None:
        if number(record) == 1:
            raise ValueError("poison")

    report = await asyncbatch.AsyncBatchProcessor(sink=sink).process(numbered_sqs(3), handle)
    (failed,) = report.failed
    assert isinstance(failed.exception, asyncbatch.SinkError)
    assert len(report.succeeded) == 2


# -- 2. callbacks that raise --------------------------------------------------------------


def raising_hooks(method: str) -> Hooks:
    """A Hooks subclass whose ``method`` raises."""
    def boom(self: Any, *args: Any) -> None:
        raise RuntimeError(f"{method} broke")

    return type("Raising", (Hooks,), {method: boom})()


@pytest.mark.parametrize("method", [
    "batch_started", "record_started", "record_succeeded", "record_failed",
    "record_retried", "record_skipped", "batch_finished"])
@pytest.mark.parametrize("source", ["fifo", "kinesis"])
async def test_a_raising_hook_never_crashes_the_batch(
        method: str, source: str, caplog: pytest.LogCaptureFixture) -> None:
    if source == "kinesis":
        event = kinesis_event(*(("a" if i < 3 else "b", {"n": i}) for i in range(6)))
    else:
        event = numbered_sqs(6, fifo_group=["a"] * 3 + ["b"] * 3)
    calls: dict[int, int] = {}

    async def handle(record: Any) -> None:
        n = number(record)
        calls[n] = calls.get(n, 0) + 1
        if n == 1 and calls[n] == 1:
            raise TransientError("retry me")
        if n == 4:
            raise ValueError("fails for good")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=2, hooks=raising_hooks(method), retry=Retry(attempts=2, base=0))
    with caplog.at_level(logging.WARNING, logger="asyncbatch"):
        report = await processor.process(event, handle)
    assert len(report) == 6
    assert sum(len(x) for x in (report.succeeded, report.failed, report.skipped)) == 6
    assert any(f"{method} broke" in r.getMessage() for r in caplog.records)
    statuses = {o.index: o.status for o in report}
    if method == "record_started":
        # the record the hook was called for fails (never run); the failure is kept
        assert statuses[0] == "failed"
        error = report.failed[0].exception
        assert isinstance(error, CallbackError)
        assert "record_started broke" in str(error.__cause__)
    elif method == "record_retried":
        # the retry is not made: record 1 fails with the hook's error, its own kept
        failed = {o.index: o.exception for o in report.failed}
        assert isinstance(failed[1], CallbackError)
        assert isinstance(failed[1].original, TransientError)
    else:  # observers of an outcome never change it
        assert statuses[0] == "succeeded" and statuses[1] == "succeeded"
        assert statuses[4] == "failed" and not isinstance(report.failed[0].exception,
                                                           CallbackError)


async def test_a_raising_retry_predicate_fails_only_its_record() -> None:
    def on(exc: BaseException) -> bool:
        if "bad predicate" in str(exc):
            raise RuntimeError("predicate broke")
        return isinstance(exc, TransientError)

    async def handle(record: Any) -> None:
        if number(record) == 2:
            raise TransientError("bad predicate")

    processor = asyncbatch.AsyncBatchProcessor(retry=Retry(attempts=3, on=on, base=0))
    report = await processor.process(numbered_sqs(5), handle)
    (failed,) = report.failed
    assert failed.index == 2 and failed.attempts == 1
    assert isinstance(failed.exception, CallbackError)
    assert isinstance(failed.exception.original, TransientError)
    assert len(report.succeeded) == 4


async def test_a_raising_sink_when_fails_its_record_without_sinking_it() -> None:
    sunk: list[Any] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        sunk.append(failure.identifier)

    def sink_when(exc: BaseException) -> bool:
        raise LookupError("sink_when broke")

    async def handle(record: Any) -> None:
        if number(record) % 2:
            raise ValueError("odd")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink, sink_when=sink_when)
    report = await processor.process(numbered_sqs(4), handle)
    assert sunk == []
    assert [o.index for o in report.failed] == [1, 3]
    assert all(isinstance(o.exception, CallbackError) for o in report.failed)
    assert all(isinstance(o.exception.__cause__, LookupError) for o in report.failed)


async def test_a_raising_limit_keeps_the_batch() -> None:
    class Broken(AIMDLimit):
        def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
            raise ZeroDivisionError("limit broke")

    async def handle(record: Any) -> None:
        await anyio.lowlevel.checkpoint()

    report = await asyncbatch.AsyncBatchProcessor(concurrency=Broken(initial=2, max=4)).process(
        numbered_sqs(10), handle)
    assert len(report.succeeded) == 10


async def test_a_raising_window_reducer_fails_its_record_and_becomes_the_checkpoint() -> None:
    event = kinesis_event(*(("k", {"n": i}) for i in range(4)))
    event.update(window={"start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z"},
                 state={"sum": 0}, shardId="shard-1")

    def reducer(state: Any, record: Any, window: Any) -> Any:
        if number(record) == 2:
            raise ArithmeticError("reducer broke")
        return {"sum": state["sum"] + number(record)}

    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(window_reducer=reducer)
    report = await processor.process(event, handle)
    assert report.state == {"sum": 0 + 1}
    (failed,) = report.failed
    assert failed.index == 2 and isinstance(failed.exception, CallbackError)
    assert ids(report) == [event["Records"][2]["kinesis"]["sequenceNumber"]]


# -- 3. handlers that change what they were given -----------------------------------------


@pytest.mark.parametrize("mischief", [
    "delete_id", "rename_id", "clear_raw", "clear_event", "replace_record", "delete_records"])
@pytest.mark.parametrize("source", ["sqs", "kinesis"])
async def test_the_response_names_the_identifiers_the_event_arrived_with(
        mischief: str, source: str) -> None:
    if source == "kinesis":
        event = kinesis_event(*((f"k{i}", {"n": i}) for i in range(4)))
        original = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        key = "kinesis"
    else:
        event = numbered_sqs(4)
        original = [r["messageId"] for r in event["Records"]]
        key = "messageId"

    async def handle(record: Any) -> None:
        n = number(record)
        raw = record.raw
        if mischief == "delete_id":
            del raw[key]
        elif mischief == "rename_id":
            raw["renamed"] = raw.pop(key)
        elif mischief == "clear_raw":
            raw.clear()
        elif mischief == "clear_event":
            event["Records"].clear()
        elif mischief == "replace_record" and event["Records"]:
            event["Records"][0] = {"messageId": "forged"}
        elif mischief == "delete_records":
            event.pop("Records", None)
        if n % 2:
            raise ValueError("odd")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)
    # Kinesis: everything above the first failure is reported (the checkpoint)
    expected = original[1:] if source == "kinesis" else [original[1], original[3]]
    assert ids(report) == expected
    assert [o.identifier for o in report] == original


# -- 4. KeyboardInterrupt and SystemExit ----------------------------------------------------


def test_keyboard_interrupt_and_system_exit_propagate_unwrapped_and_leave_no_task() -> None:
    resumed: list[int] = []
    processor = asyncbatch.AsyncBatchProcessor(concurrency=4)

    def make_handler(fatal: BaseException) -> Any:
        async def handle(record: Any) -> None:
            if number(record) == 2:
                raise fatal
            try:
                await anyio.sleep(3600)
            finally:
                resumed.append(number(record))  # cancelled, not resumed by a later call
        return handle

    for fatal in (KeyboardInterrupt(), SystemExit(3)):
        with pytest.raises(type(fatal)) as caught:
            asyncbatch.process_partial_response(numbered_sqs(6), make_handler(fatal),
                                                processor)
        assert caught.value is fatal
        if isinstance(fatal, SystemExit):
            assert caught.value.code == 3

    # the next warm invocation runs on a clean loop, and nothing from before resumes
    resumed.clear()

    async def ok(record: Any) -> None:
        pass

    assert asyncbatch.process_partial_response(numbered_sqs(3), ok, processor) == {
        "batchItemFailures": []}
    assert resumed == []


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_keyboard_interrupt_is_unwrapped_on_trio() -> None:
    async def handle(record: Any) -> None:
        if number(record) == 1:
            raise KeyboardInterrupt
        await anyio.lowlevel.checkpoint()

    with pytest.raises(KeyboardInterrupt):
        await asyncbatch.AsyncBatchProcessor(concurrency=3).process(numbered_sqs(4), handle)


def test_the_per_thread_loop_closes_cleanly_at_exit() -> None:
    code = textwrap.dedent("""
        import asyncbatch, json
        event = {"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs"}]}
        async def handle(record):
            pass
        print(asyncbatch.process_partial_response(event, handle,
                                                  asyncbatch.AsyncBatchProcessor()))
    """)
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c",
                           code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "batchItemFailures" in done.stdout
    assert "unclosed" not in done.stderr and "ResourceWarning" not in done.stderr


# -- 5. why a record failed is logged -------------------------------------------------------


async def test_failed_records_are_logged_with_their_error_bounded(
        caplog: pytest.LogCaptureFixture) -> None:
    async def handle(record: Any) -> None:
        if number(record) % 2:
            raise KeyError(f"missing field for {number(record)}")

    processor = asyncbatch.AsyncBatchProcessor(log_failures=2)
    with caplog.at_level(logging.DEBUG, logger="asyncbatch"):
        report = await processor.process(numbered_sqs(10), handle)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    per_record = [r for r in warnings if "identifier" in r.asyncbatch]  # type: ignore[attr-defined]
    assert [r.asyncbatch["identifier"] for r in per_record] == [  # type: ignore[attr-defined]
        o.identifier for o in report.failed[:2]]
    first = per_record[0].asyncbatch  # type: ignore[attr-defined]
    assert first["error_type"] == "KeyError" and "missing field for 1" in first["error"]
    assert "KeyError" in per_record[0].getMessage()
    (rest,) = [r for r in warnings if "unlogged_failures" in r.asyncbatch]  # type: ignore[attr-defined]
    assert rest.asyncbatch["unlogged_failures"] == 3  # type: ignore[attr-defined]
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(tracebacks) == 2


# -- 7. the deadline and odd contexts -------------------------------------------------------


@pytest.mark.parametrize("remaining", [0.0, -5.0, 0.3])
async def test_no_time_left_starts_no_handler(remaining: float) -> None:
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(number(record))

    context = LambdaContext(remaining=max(remaining, 0.0) if remaining >= 0 else 0.0)
    if remaining < 0:
        context.get_remaining_time_in_millis = lambda: int(remaining * 1000)  # type: ignore[method-assign]
    report = await asyncbatch.AsyncBatchProcessor().process(numbered_sqs(5), handle, context)
    assert ran == []
    assert len(report.skipped) == 5
    assert {o.exception.reason for o in report.skipped} == {"deadline"}  # type: ignore[union-attr]


class OddContext:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get_remaining_time_in_millis(self) -> Any:
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


@pytest.mark.parametrize("value", [math.nan, math.inf, None, "3000", True, OSError("gone")])
async def test_a_broken_context_clock_is_a_configuration_error_before_any_handler(
        value: Any) -> None:
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(1)

    with pytest.raises(ConfigurationError, match="get_remaining_time_in_millis"):
        await asyncbatch.AsyncBatchProcessor().process(numbered_sqs(2), handle,
                                                       OddContext(value))
    assert ran == []


def test_cpu_bound_handlers_stop_at_the_margin_within_one_handler() -> None:
    async def body() -> None:
        """Handlers that never await (here each 'burns' 10 ms of the virtual clock) cannot
        outrun the stop margin by more than one handler's duration."""
        import trio

        clock = trio.lowlevel.current_clock()
        ran = 0

        async def handle(record: Any) -> None:
            nonlocal ran
            ran += 1
            clock.jump(0.01)  # type: ignore[attr-defined]

        context = LambdaContext(remaining=1.0)
        processor = asyncbatch.AsyncBatchProcessor(concurrency=32, deadline_margin=0.5,
                                                   cancel_margin=0.2)
        for event in (numbered_sqs(300), kinesis_event(*((f"k{i % 7}", {"n": i})
                                                         for i in range(300)))):
            context = LambdaContext(remaining=1.0)
            start = trio.current_time()
            report = await processor.process(event, handle, context)
            elapsed = trio.current_time() - start
            assert elapsed <= 0.5 + 0.01 + 1e-9
            assert 49 <= len(report.succeeded) <= 51
            assert len(report.skipped) == 300 - len(report.succeeded)

    on_virtual_clock(body)


def test_records_waiting_on_an_adaptive_gate_do_not_start_after_the_margin() -> None:
    async def body() -> None:
        started: list[float] = []

        async def handle(record: Any) -> None:
            started.append(anyio.current_time())
            await anyio.sleep(0.4)

        limit = AIMDLimit(initial=2, max=8)
        processor = asyncbatch.AsyncBatchProcessor(concurrency=limit, deadline_margin=0.5,
                                                   cancel_margin=0.1)
        begin = anyio.current_time()
        report = await processor.process(numbered_sqs(20), handle, LambdaContext(remaining=1.0))
        assert started and max(started) - begin < 0.5
        assert len(report.succeeded) + len(report.skipped) + len(report.failed) == 20
        assert {o.exception.reason for o in report.skipped} == {"deadline"}  # type: ignore[union-attr]

    on_virtual_clock(body)


def test_a_handler_that_ignores_cancellation_is_reported_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async def handle(record: Any) -> None:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(5)

        processor = asyncbatch.AsyncBatchProcessor(deadline_margin=0.5, cancel_margin=0.2)
        with caplog.at_level(logging.WARNING, logger="asyncbatch"):
            report = await processor.process(numbered_sqs(2), handle, LambdaContext(remaining=2.0))
        assert any("did not finish cancelling" in r.getMessage() for r in caplog.records)
        # both named, though the fast path writes no status while a handler runs
        assert any("2 handler(s) did not finish cancelling" in r.getMessage()
                   for r in caplog.records)
        # it ran to its end: it succeeded, nothing is lost
        assert len(report.succeeded) + len(report.failed) == 2

    on_virtual_clock(body)


# -- 8. the bound with a shared limit -------------------------------------------------------


async def test_a_limit_shared_by_processors_holds_its_max_across_them() -> None:
    limit = AIMDLimit(initial=3, max=3)
    first = asyncbatch.AsyncBatchProcessor(concurrency=limit)
    second = asyncbatch.AsyncBatchProcessor(concurrency=limit)
    running = 0
    peak = 0

    async def handle(record: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        running -= 1

    async with anyio.create_task_group() as group:
        group.start_soon(first.process, numbered_sqs(30), handle)
        group.start_soon(second.process, numbered_sqs(30, start=100), handle)
    assert peak == 3


# -- the record's deadline outcome is unchanged by the fixes --------------------------------


def test_running_records_at_the_hard_margin_fail_with_deadline_exceeded() -> None:
    async def body() -> None:
        async def handle(record: Any) -> None:
            await anyio.sleep(10)

        processor = asyncbatch.AsyncBatchProcessor(concurrency=2, deadline_margin=0.5,
                                                   cancel_margin=0.2)
        report = await processor.process(numbered_sqs(5), handle, LambdaContext(remaining=2.0))
        assert [type(o.exception) for o in report.failed] == [DeadlineExceededError] * 2
        assert len(report.skipped) == 3

    on_virtual_clock(body)


def test_cpu_bound_handlers_stop_at_the_margin_on_native_asyncio() -> None:
    """The same on asyncio's own loop, its clock virtual: each handler advances it by
    10 ms without awaiting."""
    import asyncio

    class VirtualLoop(asyncio.SelectorEventLoop):
        now = 1000.0

        def time(self) -> float:
            return self.now

    loop = VirtualLoop()
    ran = 0

    async def handle(record: Any) -> None:
        nonlocal ran
        ran += 1
        loop.now += 0.01

    processor = asyncbatch.AsyncBatchProcessor(concurrency=32, deadline_margin=0.5,
                                               cancel_margin=0.2)
    try:
        for event in (numbered_sqs(300), kinesis_event(*((f"k{i % 7}", {"n": i})
                                                         for i in range(300)))):
            async def main(event: dict[str, Any] = event) -> asyncbatch.BatchReport:
                return await processor.process(event, handle, LambdaContext(remaining=1.0))

            start = loop.now
            report = loop.run_until_complete(main())
            assert loop.now - start <= 0.5 + 0.01 + 1e-9
            assert 49 <= len(report.succeeded) <= 51
            assert len(report.skipped) == 300 - len(report.succeeded)
    finally:
        loop.close()
