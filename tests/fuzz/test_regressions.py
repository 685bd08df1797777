"""One named test per break the fuzzer found in the engine, each the smallest run that
shows it. Marked ``xfail(strict=True)`` while the break stands: the suite stays green,
and turns red (XPASS) the moment a fix lands; then remove the mark (and the break's
entry in ``scenario.KNOWN_BREAKS``).

Most run in virtual time (trio's ``MockClock``, or the fuzzer's ``VirtualLoop``), so that
hangs and deadlines cost nothing and every run is the same.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from typing import Any, Callable

import anyio
import pytest

import asyncbatch
from asyncbatch.testing import LambdaContext, kafka_event, kinesis_event, sqs_event

from . import vtime


def run_virtual(main: Callable[[], Any], backend: str = "trio") -> Any:
    return vtime.run_on(backend, main, seed=0)


class Log:
    """What the handlers did, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def add(self, kind: str, what: Any) -> None:
        self.events.append((kind, what))

    def after(self, kind: str, what: Any) -> list[tuple[str, Any]]:
        """Everything logged after the first ``(kind, what)``."""
        at = self.events.index((kind, what))
        return self.events[at + 1:]


class BadStr(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raises")


class BadRepr(ValueError):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raises")


# -- exceptions that cannot be formatted --------------------------------------------------------


def test_a_handler_error_whose_str_raises_costs_only_its_record() -> None:
    async def handle(record: Any) -> None:
        if record.json()["n"] == 1:
            raise BadStr()

    async def main() -> asyncbatch.BatchReport:
        return await asyncbatch.AsyncBatchProcessor().process(
            sqs_event({"n": 0}, {"n": 1}), handle)

    report = run_virtual(main)
    assert [o.index for o in report.failed] == [1]
    assert [o.index for o in report.succeeded] == [0]


@pytest.mark.parametrize("callback", ["hook", "sink_when", "retry_on", "sink"])
def test_a_callback_error_whose_repr_raises_costs_only_its_record(callback: str) -> None:
    def raise_bad(*args: Any) -> Any:
        raise BadRepr()

    async def bad_sink(failure: Any) -> None:
        raise BadRepr()

    options: dict[str, Any] = {
        "hook": {"hooks": type("H", (asyncbatch.Hooks,), {"record_started":
                                                           lambda self, r, a: raise_bad()})()},
        "sink_when": {"sink": bad_sink, "sink_when": raise_bad},
        "retry_on": {"retry": asyncbatch.Retry(2, on=raise_bad)},
        "sink": {"sink": bad_sink},
    }[callback]

    async def handle(record: Any) -> None:
        if callback != "hook":
            raise ValueError("fails")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(**options)
        return await processor.process(sqs_event({"n": 0}), handle)

    report = run_virtual(main)
    assert [o.index for o in report.failed] == [0]


class _Formats(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.unformattable: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
        except Exception:
            self.unformattable.append(str(record.msg))


def test_the_warning_about_a_hook_error_whose_repr_raises_can_be_formatted() -> None:
    class Hooks(asyncbatch.Hooks):
        def record_succeeded(self, record: Any, attempts: int, duration: float) -> None:
            raise BadRepr()  # logged and ignored by the engine

    async def handle(record: Any) -> None:
        pass

    async def main() -> asyncbatch.BatchReport:
        return await asyncbatch.AsyncBatchProcessor(hooks=Hooks()).process(
            sqs_event({"n": 0}), handle)

    logger = logging.getLogger("asyncbatch")
    capture = _Formats()
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [capture], False  # only this handler formats
    try:
        report = run_virtual(main)
    finally:
        logger.handlers, logger.propagate = saved
    assert len(report.succeeded) == 1
    assert capture.unformattable == []


# -- the stop rules through every await -----------------------------------------------------------


def _stop_case(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Records 0 (key a), 1 and 2 (key b): record 0 fails at t=1; record 1 ends at 1.2,
    making record 2 ready while record 0's failure is being settled (a slow sink, a slow
    idempotency release); or, behind an adaptive gate of one slot, record 1 waits for
    record 0's slot. Every record above record 0 (or, in FIFO stop mode, every record) is
    forbidden from starting once record 0's failure is decided."""
    if kind.startswith("kafka"):
        return kafka_event((0, "a", {"n": 0}), (0, "b", {"n": 1}), (0, "b", {"n": 2})), \
            {"ordering": "key"}
    if kind.startswith("fifo"):
        return sqs_event({"n": 0}, {"n": 1}, {"n": 2}, fifo_group=["a", "b", "b"]), \
            {"fifo_stop_on_failure": True}
    return kinesis_event(("a", {"n": 0}), ("b", {"n": 1}), ("b", {"n": 2})), {}


@pytest.mark.parametrize("kind", ["kinesis-gate", "kafka-gate", "kinesis-sink", "kafka-sink",
                                  "fifo-sink", "kinesis-release", "fifo-release"])
def test_a_record_waiting_through_an_await_does_not_start_after_a_decided_stop(
        kind: str) -> None:
    event, options = _stop_case(kind)
    log = Log()

    async def handle(record: Any) -> None:
        n = record.json()["n"]
        log.add("start", n)
        await anyio.sleep({0: 1.0, 1: 1.2, 2: 0.1}[n])
        if n == 0:
            log.add("fail", 0)
            raise ValueError("the first record fails")

    async def slow_refusing_sink(failure: Any) -> None:
        await anyio.sleep(0.5)
        raise RuntimeError("the dead-letter queue is down")

    class SlowRelease(asyncbatch.InMemoryIdempotencyStore):
        async def release(self, claim: Any) -> None:
            await anyio.sleep(0.5)
            await super().release(claim)

    if kind.endswith("gate"):
        options["concurrency"] = asyncbatch.AIMDLimit(initial=1, max=4)
    elif kind.endswith("sink"):
        options.update(concurrency=2, sink=slow_refusing_sink)
    else:
        options.update(concurrency=2, idempotency=asyncbatch.Idempotency(SlowRelease()))

    async def main() -> asyncbatch.BatchReport:
        return await asyncbatch.AsyncBatchProcessor(**options).process(event, handle)

    report = run_virtual(main)
    assert 0 in [o.index for o in report.failed]
    late = [n for kind_, n in log.after("fail", 0) if kind_ == "start"]
    assert late == [], f"records {late} started after record 0's failure was decided"


# -- cancellation and idempotency claims ---------------------------------------------------------


def test_cancelling_the_caller_releases_idempotency_claims() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()

    async def handle(record: Any) -> None:
        await anyio.sleep(10)

    async def main() -> None:
        processor = asyncbatch.AsyncBatchProcessor(
            idempotency=asyncbatch.Idempotency(store))
        with anyio.move_on_after(1):
            await processor.process(sqs_event({"n": 0}, {"n": 1}), handle)

    run_virtual(main)
    left = [item.key for item in store.items.values() if item.status == "INPROGRESS"]
    assert left == []


def test_cancelling_the_caller_while_the_crew_grows_leaves_no_loop_error() -> None:
    problems: list[str] = []

    async def handle(record: Any) -> None:
        await asyncio.sleep(1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: problems.append(context["message"]))
        processor = asyncbatch.AsyncBatchProcessor(concurrency=64, log_summary=False)
        task = loop.create_task(processor.process(sqs_event(*({"n": i} for i in range(64))),
                                                  handle))
        for _ in range(3):  # the crew doubles once per turn of the loop
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_virtual(main, backend="asyncio")
        gc.collect()
    problems.extend(str(w.message) for w in caught if w.category is RuntimeWarning)
    assert problems == []


# -- sync handlers abandoned by their timeout -------------------------------------------------


class _Threads:
    """Sync handlers that record, per key, the threads running now (and the peak)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.release = threading.Event()

    def enter(self, key: str) -> None:
        with self.lock:
            self.running[key] = self.running.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.running[key])

    def leave(self, key: str) -> None:
        with self.lock:
            self.running[key] -= 1


def test_a_sync_handler_past_its_timeout_keeps_its_claim_until_its_thread_ends() -> None:
    threads = _Threads()

    def handle(record: Any) -> None:
        n = record.json()["n"]
        threads.enter("order-1")
        try:
            if n == 0:
                threads.release.wait(10)  # runs past its timeout: abandoned, runs on
        finally:
            threads.leave("order-1")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=2, timeout=0.05, log_summary=False,
        idempotency=asyncbatch.Idempotency(asyncbatch.InMemoryIdempotencyStore(),
                                           key=lambda record: "order-1"))
    try:
        asyncio.run(processor.process(sqs_event({"n": 0}, {"n": 1}), handle))
    finally:
        threads.release.set()
    assert threads.peak["order-1"] == 1


def test_a_sync_handler_past_its_timeout_is_not_retried_while_its_thread_runs() -> None:
    threads = _Threads()

    def handle(record: Any) -> None:
        threads.enter(record.message_id)
        try:
            if not threads.release.is_set():
                threads.release.wait(10)  # the first call hangs: abandoned, runs on
        finally:
            threads.leave(record.message_id)

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=2, timeout=0.05, log_summary=False,
        retry=asyncbatch.Retry(attempts=2, base=0.0))
    event = sqs_event({"n": 0}, fifo_group="a")
    try:
        async def main() -> None:
            await processor.process(event, handle)
            threads.release.set()

        asyncio.run(main())
    finally:
        threads.release.set()
    assert max(threads.peak.values()) == 1


# -- leaked cancellations ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "anyio"])
def test_a_leaked_cancel_request_costs_only_its_own_record(backend: str) -> None:
    async def handle(record: Any) -> None:
        if record.json()["n"] == 0:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # and return: the request stays on the worker
            return
        await asyncio.sleep(0.1)

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=1, log_summary=False, backend=vtime.processor_backend(backend))
        return await processor.process(sqs_event(*({"n": i} for i in range(4))), handle)

    report = run_virtual(main, backend=backend)
    assert [o.index for o in report.succeeded][1:] == [1, 2, 3]


# -- idempotency store faults ----------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [None, "garbage", ["a", "list"]])
def test_a_store_answering_garbage_is_tolerated_like_one_that_raises(garbage: Any) -> None:
    class Garbage(asyncbatch.InMemoryIdempotencyStore):
        async def get_many(self, keys: Any) -> Any:
            return garbage

    async def handle(record: Any) -> None:
        pass

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            idempotency=asyncbatch.Idempotency(Garbage()), log_summary=False)
        return await processor.process(sqs_event({"n": 0}, {"n": 1}), handle)

    report = run_virtual(main)
    assert len(report.succeeded) == 2


def test_a_slow_idempotency_lookup_does_not_outlive_the_deadline() -> None:
    class Slow(asyncbatch.InMemoryIdempotencyStore):
        async def get_many(self, keys: Any) -> Any:
            await anyio.sleep(5)
            return await super().get_many(keys)

    async def handle(record: Any) -> None:
        pass

    async def main() -> float:
        processor = asyncbatch.AsyncBatchProcessor(
            idempotency=asyncbatch.Idempotency(Slow()), log_summary=False)
        start = anyio.current_time()
        await processor.process(sqs_event({"n": 0}), handle, LambdaContext(remaining=2.0))
        return anyio.current_time() - start

    assert run_virtual(main) < 2.0


def test_a_record_that_waited_for_its_claim_does_not_start_after_the_stop_time() -> None:
    class SlowClaim(asyncbatch.InMemoryIdempotencyStore):
        async def claim(self, item: Any) -> Any:
            await anyio.sleep(1.5)
            return await super().claim(item)

    starts: list[float] = []

    async def handle(record: Any) -> None:
        starts.append(anyio.current_time())

    async def main() -> float:
        processor = asyncbatch.AsyncBatchProcessor(
            idempotency=asyncbatch.Idempotency(SlowClaim()), log_summary=False,
            deadline_margin=1.0, cancel_margin=0.5)
        start = anyio.current_time()
        await processor.process(sqs_event({"n": 0}), handle, LambdaContext(remaining=2.0))
        return start

    start = run_virtual(main)
    stop_time = start + 2.0 - 1.0
    assert all(t < stop_time for t in starts), f"started at {starts}, stop time {stop_time}"


# -- counting attempts ----------------------------------------------------------------------------


def test_attempts_count_the_call_the_deadline_cancelled() -> None:
    calls: list[int] = []

    async def handle(record: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise asyncbatch.TransientError("first call fails")
        await anyio.sleep(100)  # the second call hangs until the deadline cancels it

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            retry=asyncbatch.Retry(attempts=3, base=0.0), log_summary=False)
        return await processor.process(sqs_event({"n": 0}), handle,
                                       LambdaContext(remaining=3.0))

    report = run_virtual(main)
    [outcome] = report.failed
    assert isinstance(outcome.exception, asyncbatch.DeadlineExceededError)
    assert (outcome.attempts, report.retries) == (len(calls), len(calls) - 1) == (2, 1)


# -- the empty batch ------------------------------------------------------------------------------


@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_an_empty_batch_is_valid_for_a_processor_with_an_ordering(ordering: str) -> None:
    async def handle(record: Any) -> None:
        pass

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(ordering=ordering)
        return await processor.process({"Records": []}, handle)

    assert run_virtual(main).response() == {"batchItemFailures": []}


# -- a limit shared across threads ----------------------------------------------------------------


def test_a_limit_shared_by_processors_in_three_threads_holds_its_max() -> None:
    """Each handler waits (real time, bounded) until one more than ``max`` run at once:
    an engine that keeps the bound never gets there and the waits time out once; one
    that does not gets there at once."""
    limit = asyncbatch.AIMDLimit(2, max=2)
    processor = asyncbatch.AsyncBatchProcessor(concurrency=limit, log_summary=False)
    over = threading.Barrier(limit.max + 1, timeout=5.0)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    async def handle(record: Any) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            await asyncio.get_running_loop().run_in_executor(None, _wait, over)
        finally:
            with lock:
                state["now"] -= 1

    def work(number: int) -> None:
        asyncbatch.process_partial_response(
            sqs_event(*({"n": i} for i in range(2)), start=number * 10), handle, processor)

    workers = [threading.Thread(target=work, args=(number,)) for number in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert state["peak"] <= limit.max


def _wait(barrier: threading.Barrier) -> None:
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
