"""Faults where features meet: each test here failed on the engine before its fix.

An exception nobody can format, a stop rule across an await (an adaptive gate, a slow
failure sink, an idempotency release), a caller cancelling while claims are held, a sync
handler's thread outliving its timeout, a cancel request leaked onto a worker.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import asyncbatch
from asyncbatch import (
    CallbackError,
    Hooks,
    Retry,
    SinkError,
    TransientError,
)
from asyncbatch.testing import sqs_event

pytestmark = pytest.mark.anyio


def number(record: Any) -> int:
    return int(record.json()["n"])


def numbered_sqs(count: int, **kwargs: Any) -> dict[str, Any]:
    return sqs_event(*({"n": i} for i in range(count)), **kwargs)


def ids(report: asyncbatch.BatchReport) -> list[Any]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


# -- exceptions that cannot be formatted -------------------------------------------------


class BadStr(Exception):
    """A format-string bug in a custom exception: ``__str__`` raises TypeError."""

    def __str__(self) -> str:
        return "%s: %s" % self.args  # noqa: UP031 - one arg: "not enough arguments"


class BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken too")

    def __str__(self) -> str:
        raise RuntimeError("and str")


class BadStrTransient(TransientError):
    def __str__(self) -> str:
        raise ValueError("unprintable")


async def test_a_handler_exception_whose_str_raises_fails_only_its_record(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncbatch")

    async def handle(record: Any) -> None:
        if number(record) == 1:
            raise BadStr("only one argument")

    event = numbered_sqs(3)
    report = await asyncbatch.AsyncBatchProcessor().process(event, handle)
    assert [o.index for o in report.failed] == [1]
    assert isinstance(report.failed[0].exception, BadStr)
    assert report.response()["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][1]["messageId"]}]
    line = next(r for r in caplog.records if "failed" in r.getMessage() and r.levelno
                == logging.WARNING)
    assert "BadStr" in line.getMessage() and "str() raised TypeError" in line.getMessage()


def test_the_sync_entry_point_answers_when_a_handler_exception_cannot_be_formatted() -> None:
    async def handle(record: Any) -> None:
        if number(record) == 0:
            raise BadRepr()

    event = numbered_sqs(2)
    response = asyncbatch.process_partial_response(event, handle,
                                                   asyncbatch.AsyncBatchProcessor())
    assert response == {"batchItemFailures": [
        {"itemIdentifier": event["Records"][0]["messageId"]}]}


async def test_a_sink_raising_an_unformattable_exception_is_a_sink_error() -> None:
    async def sink(failure: asyncbatch.Failure) -> None:
        raise BadRepr()

    async def handle(record: Any) -> None:
        raise ValueError("poison")

    report = await asyncbatch.AsyncBatchProcessor(sink=sink).process(numbered_sqs(2), handle)
    assert len(report.failed) == 2
    for outcome in report.failed:
        assert isinstance(outcome.exception, SinkError)
        assert "BadRepr" in str(outcome.exception)


@pytest.mark.parametrize("method", ["record_started", "record_retried"])
async def test_a_hook_raising_an_unformattable_exception_fails_only_its_record(
        method: str) -> None:
    class Raising(Hooks):
        pass

    raised = []

    def hook(*args: Any) -> None:
        if not raised:  # once: the other records are innocent
            raised.append(1)
            raise BadRepr()

    hooks = Raising()
    setattr(hooks, method, hook)
    calls = 0

    async def handle(record: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("again")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=1, hooks=hooks, retry=Retry(attempts=3, base=0.0, cap=0.0))
    report = await processor.process(numbered_sqs(3), handle)
    assert len(report.failed) == 1
    error = report.failed[0].exception
    assert isinstance(error, CallbackError) and error.callback == f"hooks.{method}"
    assert "BadRepr" in str(error)
    assert len(report.succeeded) + len(report.failed) == 3


async def test_a_retry_predicate_raising_an_unformattable_exception_fails_its_record() -> None:
    def on(exc: BaseException) -> bool:
        raise BadRepr()

    async def handle(record: Any) -> None:
        if number(record) == 0:
            raise BadStrTransient()

    processor = asyncbatch.AsyncBatchProcessor(retry=Retry(attempts=3, on=on))
    report = await processor.process(numbered_sqs(2), handle)
    assert [o.index for o in report.failed] == [0]
    error = report.failed[0].exception
    assert isinstance(error, CallbackError) and "predicate" in error.callback
    assert isinstance(error.original, BadStrTransient)


async def test_sink_when_raising_an_unformattable_exception_fails_its_record() -> None:
    sunk: list[Any] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        sunk.append(failure)

    def when(exc: BaseException) -> bool:
        raise BadRepr()

    async def handle(record: Any) -> None:
        raise BadStr("x")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink, sink_when=when)
    report = await processor.process(numbered_sqs(2), handle)
    assert not sunk
    assert [type(o.exception) for o in report.failed] == [CallbackError, CallbackError]


@pytest.mark.parametrize("text", ["x" * 100_000, "caf\udce9"])
async def test_huge_and_non_utf8_messages_are_logged_bounded_and_encodable(
        text: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asyncbatch")

    async def handle(record: Any) -> None:
        raise ValueError(text)

    report = await asyncbatch.AsyncBatchProcessor().process(numbered_sqs(1), handle)
    assert len(report.failed) == 1
    [line] = [r for r in caplog.records if "record" in r.getMessage()]
    message = line.getMessage()
    assert len(message) < 3_000
    message.encode("utf-8")  # raises if a lone surrogate got through
    assert line.asyncbatch["error"].encode("utf-8")  # type: ignore[attr-defined]


async def test_an_idempotency_key_function_raising_an_unformattable_exception() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()

    def key(record: Any) -> Any:
        if number(record) == 0:
            raise BadStr("k")
        return record.identifier

    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store, key))

    async def handle(record: Any) -> None:
        pass

    report = await processor.process(numbered_sqs(3), handle)
    assert [o.index for o in report.failed] == [0]
    assert isinstance(report.failed[0].exception, asyncbatch.IdempotencyKeyError)
    assert len(report.succeeded) == 2
    await anyio.lowlevel.checkpoint()


# -- the stop rules through every await ---------------------------------------------------


def on_virtual_clock(test: Any) -> Any:
    from trio.testing import MockClock

    return anyio.run(test, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def stream_event(source: str, count: int) -> dict[str, Any]:
    """``count`` records, each of its own key (so nothing orders them but the stop rule):
    Kinesis, Kafka (one partition, ``ordering="key"``) or FIFO (groups)."""
    from tests._support.events import make_event

    return make_event(source, [f"k{i}" for i in range(count)])


STOPPING = [  # (source, processor options): a failure forbids the records above it
    ("kinesis", {}),
    ("dynamodb", {}),
    ("kafka", {"ordering": "key"}),
    ("fifo", {"fifo_stop_on_failure": True}),
]


@pytest.mark.parametrize(("source", "options"), STOPPING)
def test_a_record_waiting_at_an_adaptive_gate_does_not_start_after_a_stop(
        source: str, options: dict[str, Any]) -> None:
    from tests._support.events import position

    started: list[int] = []

    async def handle(record: Any) -> None:
        started.append(position(record))
        await anyio.sleep(1)
        if position(record) == 0:
            raise ValueError("first record fails")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=asyncbatch.AIMDLimit(initial=1, max=8), **options)
        return await processor.process(stream_event(source, 6), handle)

    report = on_virtual_clock(main)
    assert started == [0]  # the others waited at the gate, then the failure forbade them
    assert [o.index for o in report.failed] == [0]
    assert [o.index for o in report.skipped] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("accepts", [False, True])
@pytest.mark.parametrize(("source", "options"), STOPPING)
def test_nothing_starts_above_a_failure_while_a_slow_sink_decides(
        source: str, options: dict[str, Any], accepts: bool) -> None:
    from tests._support.events import position

    started: list[tuple[int, float]] = []
    sunk_at: list[float] = []

    async def handle(record: Any) -> None:
        started.append((position(record), anyio.current_time()))
        await anyio.sleep(0.05 if position(record) == 0 else 0.1)
        if position(record) == 0:
            raise ValueError("poison")

    async def sink(failure: asyncbatch.Failure) -> None:
        await anyio.sleep(5)  # a slow dead-letter queue
        sunk_at.append(anyio.current_time())
        if not accepts:
            raise ConnectionError("the dead-letter queue is down")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=2, sink=sink, sink_when=lambda exc: True, **options)
        return await processor.process(stream_event(source, 6), handle)

    report = on_virtual_clock(main)
    (decided,) = sunk_at
    # Record 1 started with record 0 (before it failed); no other started while the
    # sink decided.
    assert all(when >= decided for i, when in started if i > 1)
    if accepts:  # the sink took it: it counts as handled, and nothing is held back
        assert sorted(i for i, _ in started) == [0, 1, 2, 3, 4, 5]
        assert report.response()["batchItemFailures"] == []
    else:
        assert sorted(i for i, _ in started) == [0, 1]
        assert [o.index for o in report.failed] == [0]
        assert isinstance(report.failed[0].exception, SinkError)
        assert [o.index for o in report.skipped] == [2, 3, 4, 5]


class SlowReleaseStore(asyncbatch.InMemoryIdempotencyStore):
    """A store whose ``release`` takes ``seconds`` (virtual time) before it releases."""

    def __init__(self, seconds: float = 5.0) -> None:
        super().__init__()
        self.seconds = seconds

    async def release(self, claim: Any) -> None:
        await anyio.sleep(self.seconds)
        await super().release(claim)


@pytest.mark.parametrize(("source", "options"), STOPPING)
def test_nothing_starts_above_a_failure_while_its_claim_is_released(
        source: str, options: dict[str, Any]) -> None:
    from tests._support.events import position

    started: list[int] = []

    async def handle(record: Any) -> None:
        started.append(position(record))
        await anyio.sleep(0.05 if position(record) == 0 else 0.1)
        if position(record) == 0:
            raise ValueError("fails")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=2, idempotency=asyncbatch.Idempotency(SlowReleaseStore()), **options)
        return await processor.process(stream_event(source, 6), handle)

    report = on_virtual_clock(main)
    assert sorted(started) == [0, 1]
    assert [o.index for o in report.skipped] == [2, 3, 4, 5]


# -- caller cancellation and idempotency claims -------------------------------------------


async def test_cancelling_the_caller_gives_back_the_claims_of_running_records() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()
    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=4, idempotency=asyncbatch.Idempotency(store))
    running = 0
    all_running = anyio.Event()

    async def hang(record: Any) -> None:
        nonlocal running
        running += 1
        if running == 4:
            all_running.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        async def caller() -> None:
            await processor.process(numbered_sqs(6), hang)

        tg.start_soon(caller)
        await all_running.wait()
        assert len(store.items) == 4 and {i.status for i in store.items.values()} == {
            "INPROGRESS"}
        tg.cancel_scope.cancel()
    assert store.items == {}  # released: a redelivery runs them at once
    assert store.calls["release"] == 4

    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(number(record))

    report = await processor.process(numbered_sqs(6), handle)
    assert sorted(ran) == [0, 1, 2, 3, 4, 5] and not report.failed


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_timeout_around_process_gives_back_the_claims() -> None:
    import asyncio

    store = asyncbatch.InMemoryIdempotencyStore()
    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store))

    async def hang(record: Any) -> None:
        await asyncio.sleep(3600)

    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        await asyncio.wait_for(processor.process(numbered_sqs(3), hang), 0.05)
    assert store.items == {}


# -- a sync handler's thread outliving its timeout ------------------------------------------


def test_a_sync_handler_past_its_timeout_keeps_its_claim_until_its_thread_returns() -> None:
    import threading

    store = asyncbatch.InMemoryIdempotencyStore()
    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=4, timeout=5.0,
        idempotency=asyncbatch.Idempotency(store, key=lambda record: "one key for all"),
        raise_on_all_failed=False)
    started = threading.Event()
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    overlap = False
    effects = 0

    def handle(record: Any) -> str:
        nonlocal running, overlap, effects
        with lock:
            running += 1
            overlap |= running > 1
        try:
            if number(record) == 0:
                started.set()
                assert release.wait(30), "never released"
            with lock:
                effects += 1
            return "done"
        finally:
            with lock:
                running -= 1

    event = numbered_sqs(3)
    report = past_the_timeout(processor, event, handle, started)
    assert isinstance(report.failed[0].exception, asyncbatch.RecordTimeoutError)
    for outcome in report.failed[1:]:  # the key is held by a thread still running
        assert isinstance(outcome.exception, asyncbatch.IdempotencyInProgressError)
    (claim,) = store.items.values()
    assert claim.status == "INPROGRESS"  # kept while the thread runs
    assert not overlap and effects == 0

    # The thread returns; the next batch settles its claim before anything else:
    # COMPLETED (its effect happened), so the redelivered records replay, none runs again.
    ((_, thread, _),) = processor.idempotency._orphans  # type: ignore[union-attr]
    release.set()
    wait_until(lambda: thread.done)
    again = asyncbatch.process_partial_response(event, handle, processor)
    assert again == {"batchItemFailures": []}
    assert effects == 1 and not overlap
    assert {i.status for i in store.items.values()} == {"COMPLETED"}


def past_the_timeout(processor: asyncbatch.AsyncBatchProcessor, event: Any, handle: Any,
                     started: Any) -> asyncbatch.BatchReport:
    """``processor.process(event, handle)`` on trio's clock, moved past the processor's
    timeout by hand once the first sync call's thread has ``started`` (a thread not yet
    started when its timeout comes is dropped, never run: not what is tested here)."""
    import trio
    import trio.testing

    clock = trio.testing.MockClock()
    reports: list[asyncbatch.BatchReport] = []

    async def main() -> None:
        async def run() -> None:
            reports.append(await processor.process(event, handle))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            assert await trio.to_thread.run_sync(started.wait, 30)
            clock.jump(processor.timeout or 0.0)

    trio.run(main, clock=clock)
    (report,) = reports
    return report


def wait_until(condition: Any, seconds: float = 30.0) -> None:
    """Block until ``condition()`` holds (another thread makes it true), at most
    ``seconds``: a condition awaited, not a delay."""
    import threading
    import time

    limit = time.monotonic() + seconds
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < limit, "the condition never held"
        pause.wait(0.001)




# -- a cancel request leaked onto a worker --------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("options", [{}, {"timeout": 60}, {"fifo": True}],
                         ids=["simple", "full", "lanes"])
async def test_a_handler_cancelling_its_own_task_then_returning_costs_no_other_record(
        options: dict[str, Any]) -> None:
    import asyncio

    async def handle(record: Any) -> None:
        if number(record) == 0:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            return  # ...and returns normally: the request stays on the worker
        await asyncio.sleep(0)

    fifo = options.pop("fifo", False)
    event = numbered_sqs(4, fifo_group="g") if fifo else numbered_sqs(4)
    processor = asyncbatch.AsyncBatchProcessor(concurrency=1, **options)
    report = await processor.process(event, handle)
    assert not report.failed and not report.skipped
    assert len(report.succeeded) == 4


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_sink_cancelling_its_own_task_then_returning_costs_no_other_record() -> None:
    import asyncio

    async def sink(failure: asyncbatch.Failure) -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]

    async def handle(record: Any) -> None:
        if number(record) == 0:
            raise ValueError("to the sink")
        await asyncio.sleep(0)

    processor = asyncbatch.AsyncBatchProcessor(concurrency=1, sink=sink)
    report = await processor.process(numbered_sqs(4), handle)
    assert not report.failed and len(report.sunk) == 1 and len(report.succeeded) == 4


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cancel_request_leaked_before_a_retry_is_not_blamed_on_a_deadline() -> None:
    """The handler cancels its own task and raises a transient error: the leaked request
    used to land in the retry's backoff, kill the worker and be reported as "cancelled
    at the Lambda deadline" with no deadline at all."""
    import asyncio

    calls: dict[int, int] = {}

    async def handle(record: Any) -> None:
        calls[number(record)] = calls.get(number(record), 0) + 1
        if number(record) == 0 and calls[0] == 1:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            raise TransientError("and try again")
        await asyncio.sleep(0)

    processor = asyncbatch.AsyncBatchProcessor(concurrency=1,
                                               retry=Retry(attempts=2, base=0.0, cap=0.0))
    report = await processor.process(numbered_sqs(3), handle)
    assert not report.failed and len(report.succeeded) == 3
    assert calls == {0: 2, 1: 1, 2: 1}


# -- the rest -------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [None, "not a mapping", {"k": "not an item"}, 42])
async def test_a_store_answering_garbage_to_get_many_is_tolerated_like_one_that_raises(
        garbage: Any) -> None:
    class Garbage(asyncbatch.InMemoryIdempotencyStore):
        async def get_many(self, keys: Any) -> Any:
            return garbage

    store = Garbage()
    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store))
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(number(record))

    report = await processor.process(numbered_sqs(3), handle)
    assert sorted(ran) == [0, 1, 2] and len(report.succeeded) == 3
    assert {item.status for item in store.items.values()} == {"COMPLETED"}


async def test_a_store_answering_garbage_to_claim_fails_the_record_as_a_store_error() -> None:
    class Garbage(asyncbatch.InMemoryIdempotencyStore):
        async def claim(self, item: Any) -> Any:
            return "yes"

    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(Garbage()))

    async def handle(record: Any) -> None:
        raise AssertionError("must not run")

    report = await processor.process(numbered_sqs(2), handle)
    assert [type(o.exception) for o in report.failed] == [asyncbatch.IdempotencyStoreError] * 2


def test_the_attempt_the_deadline_cancels_is_counted() -> None:
    from asyncbatch.testing import LambdaContext

    calls = 0

    async def handle(record: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("once")
        await anyio.sleep(3600)  # the second call runs into the deadline

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            retry=Retry(attempts=3, base=0.0, cap=0.0))
        return await processor.process(numbered_sqs(1), handle, LambdaContext(10.0))

    report = on_virtual_clock(main)
    (outcome,) = report.failed
    assert isinstance(outcome.exception, asyncbatch.DeadlineExceededError)
    assert calls == 2 and outcome.attempts == 2 and report.retries == 1


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
@pytest.mark.parametrize("ordering", ["key", "partition"])
async def test_an_empty_final_window_invoke_keeps_its_state(source: str, ordering: str) -> None:
    """A tumbling window's final invoke may carry no records: the processor still answers
    with the state, whatever ``ordering`` it was made with."""
    event = {"Records": [], "window": {"start": "2026-12-06T00:00:00Z",
                                       "end": "2026-12-06T00:05:00Z"},
             "state": {"total": 7}, "isFinalInvokeForWindow": True, "shardId": "s-1",
             "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}

    def reducer(state: Any, record: Any, window: Any) -> Any:
        return state

    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(ordering=ordering, window_reducer=reducer)
    report = await processor.process(event, handle)
    assert report.response() == {"batchItemFailures": [], "state": {"total": 7}}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("turns", [1, 2, 3, 4, 5])
async def test_cancelling_the_caller_while_the_crew_grows_is_quiet(
        turns: int, caplog: pytest.LogCaptureFixture) -> None:
    """The crew doubles from a loop callback; cancelled meanwhile, the task group shuts
    down: growing then used to log "Exception in callback" and leave a coroutine that
    was never awaited."""
    import asyncio
    import gc
    import warnings

    async def handle(record: Any) -> None:
        await asyncio.sleep(60)

    processor = asyncbatch.AsyncBatchProcessor(concurrency=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(processor.process(numbered_sqs(2000), handle))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0)  # let any pending callback run
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert not [r for r in caplog.records if r.name == "asyncio"]


@pytest.mark.parametrize("entry", ["process", "stream"])
def test_sys_exit_in_a_handler_under_asyncio_run_exits_quietly(entry: str) -> None:
    """``sys.exit(3)`` in a handler: the process exits with 3, and asyncio has nothing to
    complain about (no "Task exception was never retrieved", no task destroyed pending):
    the workers hand it to the caller's task instead of throwing it out of the loop."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import asyncio, sys
        import asyncbatch
        from asyncbatch.testing import sqs_event

        async def handle(item):
            n = item.json()["n"] if hasattr(item, "json") else item
            if n == 1:
                sys.exit(3)
            await asyncio.sleep(3600)

        async def main():
            processor = asyncbatch.AsyncBatchProcessor(concurrency=4)
            if {entry!r} == "process":
                await processor.process(sqs_event(*({{"n": i}} for i in range(4))), handle)
            else:
                async with processor.stream(range(4), handle) as outcomes:
                    async for _ in outcomes:
                        pass

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stderr
    assert "never retrieved" not in done.stderr
    assert "destroyed but it is pending" not in done.stderr
    assert done.stderr == ""


# -- found by the fuzzer ----------------------------------------------------------------------


def test_a_record_cut_by_the_deadline_while_it_waits_for_a_slot_after_its_claim_is_skipped(
        ) -> None:
    """It never ran: skipped (not "cancelled at the deadline", attempts 0), its claim
    given back."""
    from asyncbatch.testing import LambdaContext

    store = asyncbatch.InMemoryIdempotencyStore()

    async def handle(record: Any) -> None:
        await anyio.sleep(3600)  # holds the only slot

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=asyncbatch.AIMDLimit(initial=1, max=4),
            idempotency=asyncbatch.Idempotency(store))
        return await processor.process(numbered_sqs(3), handle, LambdaContext(6.0))

    report = on_virtual_clock(main)
    (running,) = report.failed
    assert isinstance(running.exception, asyncbatch.DeadlineExceededError)
    assert running.attempts == 1
    assert [o.attempts for o in report.skipped] == [0, 0]
    assert store.items == {}  # every claim given back


def test_a_thread_left_running_by_one_processor_holds_its_key_for_another() -> None:
    """Two invocations in one process, each with its own Idempotency over one store: the
    first's handler is abandoned at the deadline and runs on; its claim expires with the
    invocation, but the second must not run the key beside the thread."""
    import threading

    from asyncbatch.testing import LambdaContext

    store = asyncbatch.InMemoryIdempotencyStore()
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def handle(record: Any) -> None:
        runs.append(number(record))
        started.set()
        assert release.wait(30)

    event = numbered_sqs(1)
    first = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(
        store, key_prefix="fn"))
    second = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(
        store, key_prefix="fn"), raise_on_all_failed=False)
    try:
        import trio
        import trio.testing

        clock = trio.testing.MockClock()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first.process, event, handle, LambdaContext(2.0))
                assert await trio.to_thread.run_sync(started.wait, 30)
                clock.jump(2.0)  # the deadline abandons the thread

        trio.run(main, clock=clock)
        (claim,) = store.items.values()
        # the claim expired with the first invocation: without the thread's own record,
        # the second would claim it and run the handler beside the thread
        store.items[claim.key] = type(claim)(claim.key, claim.status, claim.expiration, 0,
                                             claim.data, claim.validation)
        response = asyncbatch.process_partial_response(event, handle, second)
        assert response == {"batchItemFailures": [
            {"itemIdentifier": event["Records"][0]["messageId"]}]}
        assert runs == [0]  # not run again while the first thread runs
    finally:
        release.set()


def test_a_claim_whose_completion_a_cancellation_cut_short_is_completed() -> None:
    """The handler succeeded; the caller is cancelled while the store marks the key
    COMPLETED: the claim is completed on the way out (releasing it would let a
    redelivery run the handler again)."""
    writing = anyio.Event()

    class SlowComplete(asyncbatch.InMemoryIdempotencyStore):
        async def complete(self, item: Any) -> None:
            writing.set()
            await anyio.sleep(1)
            await super().complete(item)

    store = SlowComplete()
    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store))

    async def handle(record: Any) -> str:
        return "done"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(processor.process, numbered_sqs(1), handle)
            await writing.wait()
            tg.cancel_scope.cancel()

    on_virtual_clock(main)
    (item,) = store.items.values()
    assert item.status == "COMPLETED" and item.data == '"done"'


def test_a_cancelled_callers_claims_are_given_back_within_the_deadline() -> None:
    """Giving claims back after the caller's cancellation is bounded by the Lambda
    deadline, not only by its own five seconds."""
    from asyncbatch.testing import LambdaContext

    running = anyio.Event()

    async def handle(record: Any) -> None:
        running.set()
        await anyio.sleep_forever()

    returned: list[float] = []

    async def main() -> None:
        processor = asyncbatch.AsyncBatchProcessor(
            idempotency=asyncbatch.Idempotency(SlowReleaseStore(60)))
        async with anyio.create_task_group() as tg:
            async def caller() -> None:
                try:
                    await processor.process(numbered_sqs(1), handle, LambdaContext(2.0))
                finally:
                    returned.append(anyio.current_time())

            began = anyio.current_time()
            tg.start_soon(caller)
            await running.wait()
            tg.cancel_scope.cancel()
        returned[0] -= began

    on_virtual_clock(main)
    assert returned[0] < 2.0  # before Lambda's timeout


def test_many_claims_are_given_back_at_once_after_the_callers_cancellation() -> None:
    """500 records running when the caller is cancelled, a store taking 1 s a release:
    given back one by one, 5 would be released within the 5 s bound and 495 left IN
    PROGRESS for an hour; they are given back concurrently, all within the bound."""

    store = SlowReleaseStore(1.0)
    running = 0
    all_running = anyio.Event()
    took: list[float] = []

    async def hang(record: Any) -> None:
        nonlocal running
        running += 1
        if running == 500:
            all_running.set()
        await anyio.sleep_forever()

    async def main() -> None:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=500, idempotency=asyncbatch.Idempotency(store))
        async with anyio.create_task_group() as tg:
            async def caller() -> None:
                await processor.process(numbered_sqs(500), hang)

            tg.start_soon(caller)
            await all_running.wait()
            assert len(store.items) == 500
            began = anyio.current_time()
            tg.cancel_scope.cancel()
        took.append(anyio.current_time() - began)

    on_virtual_clock(main)
    assert store.items == {} and store.calls["release"] == 500
    assert took[0] <= 5.0


def test_a_failed_record_whose_thread_runs_on_is_not_handed_to_the_sink() -> None:
    """Taken by the sink, it would count as handled and let the next record of its FIFO
    group start beside its thread: it stays failed, the group stops."""
    import threading

    started = threading.Event()
    release = threading.Event()
    sunk: list[Any] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        sunk.append(failure.identifier)

    ran: list[int] = []

    def handle(record: Any) -> None:
        ran.append(number(record))
        if number(record) == 0:
            started.set()
            assert release.wait(30)

    processor = asyncbatch.AsyncBatchProcessor(timeout=5.0, sink=sink,
                                               sink_when=lambda exc: True)
    event = numbered_sqs(3, fifo_group="g")
    try:
        report = past_the_timeout(processor, event, handle, started)
    finally:
        release.set()
    assert ran == [0] and sunk == []
    assert isinstance(report.failed[0].exception, asyncbatch.RecordTimeoutError)
    assert [o.index for o in report.skipped] == [1, 2]
