"""``RateLimit``: at most so many handler calls start per second, for events and streams,
shared by processors and threads; a call waiting for its token obeys the deadline and the
stop rules. Time is trio's virtual clock (the limit counts on it), except across threads,
where only lower bounds on real time are asserted (a loaded machine only adds time)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

import asyncbatch
from asyncbatch import RateLimit, Retry, TransientError
from asyncbatch.testing import LambdaContext, sqs_event
from tests._support.events import make_event, position


def virtual(main: Any) -> Any:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def starts_of(count: int, rate: RateLimit, *, concurrency: int = 10,
              **options: Any) -> list[float]:
    starts: list[float] = []

    async def handle(record: Any) -> None:
        starts.append(anyio.current_time())
        await anyio.sleep(0.001)

    async def main() -> None:
        processor = asyncbatch.AsyncBatchProcessor(concurrency=concurrency, rate_limit=rate,
                                                   **options)
        began = anyio.current_time()
        await processor.process(sqs_event(*({"n": i} for i in range(count))), handle)
        starts[:] = [when - began for when in starts]

    virtual(main)
    return starts


def test_calls_start_one_per_interval() -> None:
    starts = starts_of(5, RateLimit(2, clock=anyio.current_time))
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_a_burst_starts_at_once_then_one_per_interval() -> None:
    starts = starts_of(6, RateLimit(1, burst=3, clock=anyio.current_time))
    assert starts == pytest.approx([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])


def test_the_rate_holds_over_many_calls_within_its_interval() -> None:
    rate = 1000
    starts = starts_of(10_000, RateLimit(rate, clock=anyio.current_time), concurrency=100)
    assert len(starts) == 10_000
    span = max(starts) - min(starts)
    assert span == pytest.approx((10_000 - 1) / rate, rel=0.02)
    ordered = sorted(starts)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= 1 / rate - 1e-9


def test_retries_take_tokens_too() -> None:
    calls: list[float] = []

    async def handle(record: Any) -> None:
        calls.append(anyio.current_time())
        if len(calls) < 3:
            raise TransientError("again")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            rate_limit=RateLimit(1, clock=anyio.current_time),
            retry=Retry(attempts=3, base=0.0, cap=0.0))
        return await processor.process(sqs_event({"n": 0}), handle)

    report = virtual(main)
    assert len(report.succeeded) == 1 and report.succeeded[0].attempts == 3
    assert [b - a for a, b in itertools.pairwise(calls)] == pytest.approx([1.0, 1.0])


def test_one_limit_shared_by_processors_holds_across_them() -> None:
    rate = RateLimit(4, clock=anyio.current_time)
    starts: list[float] = []

    async def handle(record: Any) -> None:
        starts.append(anyio.current_time())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for name in ("a", "b"):
                processor = asyncbatch.AsyncBatchProcessor(rate_limit=rate)
                tg.start_soon(processor.process,
                              sqs_event(*({"n": i} for i in range(4)), start=0 if name ==
                                        "a" else 10), handle)

    virtual(main)
    ordered = sorted(starts)
    assert len(ordered) == 8
    assert [b - a for a, b in itertools.pairwise(ordered)] == pytest.approx([0.25] * 7)


def test_one_limit_shared_by_threads_holds_across_them() -> None:
    rate = RateLimit(40)  # real time: one clock for every thread
    starts: list[float] = []
    lock = threading.Lock()

    async def handle(record: Any) -> None:
        with lock:
            starts.append(time.monotonic())

    def invocation(offset: int) -> None:
        processor = asyncbatch.AsyncBatchProcessor(concurrency=8, rate_limit=rate)
        event = sqs_event(*({"n": i} for i in range(10)), start=offset)
        assert asyncbatch.process_partial_response(event, handle, processor) == {
            "batchItemFailures": []}

    threads = [threading.Thread(target=invocation, args=(100 * t,)) for t in range(3)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ordered = sorted(starts)
    assert len(ordered) == 30
    # 30 starts at 40/s, one at once: the k-th start comes at least k intervals after the
    # threads began, whichever thread made it (a late wake-up only adds time)
    for k, when in enumerate(ordered):
        assert when - began >= k / 40 - 1e-3, (k, when - began)


def test_a_token_past_the_stop_margin_starts_nothing() -> None:
    starts: list[int] = []

    async def handle(record: Any) -> None:
        starts.append(position(record))

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            rate_limit=RateLimit(1, clock=anyio.current_time), deadline_margin=1.0,
            cancel_margin=0.5)
        return await processor.process(make_event("sqs", [None] * 10), handle,
                                       LambdaContext(4.5))

    report = virtual(main)
    assert starts == [0, 1, 2, 3]  # tokens at 0, 1, 2, 3; the next (4) is past 3.5
    assert [o.index for o in report.skipped] == [4, 5, 6, 7, 8, 9]
    assert {o.exception.reason for o in report.skipped} == {"deadline"}  # type: ignore[union-attr]


@pytest.mark.parametrize("source", ["kinesis", "fifo"])
def test_nothing_waiting_for_a_token_starts_after_a_stop(source: str) -> None:
    starts: list[int] = []

    async def handle(record: Any) -> None:
        starts.append(position(record))
        if position(record) == 0:
            raise ValueError("fails")

    async def main() -> asyncbatch.BatchReport:
        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=6, rate_limit=RateLimit(1, clock=anyio.current_time),
            fifo_stop_on_failure=source == "fifo")
        return await processor.process(make_event(source, [f"k{i}" for i in range(6)]),
                                       handle)

    report = virtual(main)
    assert starts == [0]
    assert [o.index for o in report.skipped] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("args", "words"), [
    ((0,), "per_second=0"), ((-1,), "per_second=-1"), ((float("inf"),), "per_second=inf"),
    (("5",), "per_second='5'"), ((1, 0), "burst=0"), ((1, 1.5), "burst=1.5"),
])
def test_a_rate_limit_that_cannot_be_is_refused_with_the_fix(args: tuple[Any, ...],
                                                             words: str) -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match=words.replace("(", r"\(")):
        RateLimit(*args)


def test_rate_limit_takes_a_rate_limit() -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match="rate_limit=5: give"):
        asyncbatch.AsyncBatchProcessor(rate_limit=5)  # type: ignore[arg-type]
