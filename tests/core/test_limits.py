"""Adaptive concurrency: the limits learn, and never break the bound or per-key order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

import asyncbatch
from asyncbatch import AIMDLimit, GradientLimit, Retry, TransientError
from asyncbatch._core.limits import Gate
from tests._support.events import make_event, position


def test_aimd_grows_while_used_and_backs_off_on_drops() -> None:
    limit = AIMDLimit(initial=10, max=12)
    limit.on_sample(0.01, inflight=2, dropped=False)  # 2 of 10 in use: no evidence for more
    assert limit.current == 10
    for _ in range(5):
        limit.on_sample(0.01, inflight=10, dropped=False)
    assert limit.current == 12  # capped at max
    limit.on_sample(0.01, inflight=12, dropped=True)
    assert limit.current == 10  # 12 * 0.9
    slow = AIMDLimit(initial=10, timeout=0.5)
    slow.on_sample(0.6, inflight=10, dropped=False)
    assert slow.current == 9


def test_gradient_shrinks_when_latency_grows() -> None:
    limit = GradientLimit(initial=20, max=100)
    for _ in range(50):
        limit.on_sample(0.010, inflight=limit.current, dropped=False)
    grown = limit.current
    assert grown > 20
    for _ in range(50):
        limit.on_sample(0.050, inflight=limit.current, dropped=False)
    assert limit.current < grown
    limit.on_sample(0.01, inflight=1, dropped=True)
    assert limit.current < grown


@pytest.mark.parametrize("bad", [{"initial": 0}, {"max": 0}, {"initial": 5, "max": 2},
                                 {"initial": True}])
def test_bad_limits_are_configuration_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(asyncbatch.ConfigurationError):
        AIMDLimit(**bad)
    with pytest.raises(asyncbatch.ConfigurationError):
        GradientLimit(**bad)


def test_windows_feed_one_sample_per_round_trip() -> None:
    inner = AIMDLimit(initial=10, max=100)
    limit = asyncbatch.WindowedLimit(inner, min_samples=5)
    for _ in range(10):  # slow start: every call counts until the first drop
        limit.on_sample(0.01, inflight=10, dropped=False)
    assert limit.current == 20
    for _ in range(20):  # a burst of 20 throttles from one overload: one cut
        limit.on_sample(0.01, inflight=20, dropped=True)
    assert limit.current == 18
    for _ in range(18):  # one window of successes: +1, not +18
        limit.on_sample(0.01, inflight=18, dropped=False)
    assert limit.current == 19


def test_auto_concurrency_is_a_windowed_aimd_limit() -> None:
    processor = asyncbatch.AsyncBatchProcessor(concurrency="auto")
    assert isinstance(processor.limit, asyncbatch.WindowedLimit)
    assert isinstance(processor.limit.delegate, AIMDLimit)
    assert processor.concurrency == processor.limit.max
    with pytest.raises(asyncbatch.ConfigurationError, match="'auto'"):
        asyncbatch.AsyncBatchProcessor(concurrency="fast")


class Dependency:
    """Throttles above ``capacity`` calls in flight, like a provisioned table."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.inflight = 0
        self.peak = 0
        self.throttled = 0

    async def call(self) -> None:
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.inflight > self.capacity:
                self.throttled += 1
                raise TransientError("ProvisionedThroughputExceeded")
            await anyio.sleep(0.01)
        finally:
            self.inflight -= 1


def run_virtual(main: Any) -> Any:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def test_adaptive_limit_settles_near_capacity_without_losing_records() -> None:
    dependency = Dependency(capacity=8)
    limit = AIMDLimit(initial=2, max=40)

    async def handle(record: Any) -> None:
        await dependency.call()

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=limit, retry=Retry(attempts=20, base=0.005, cap=0.05, seed=3))

    async def main() -> asyncbatch.BatchReport:
        return await processor.process(make_event("sqs", ["x"] * 400), handle)

    report = run_virtual(main)
    assert len(report.succeeded) == 400
    assert dependency.peak <= 40
    assert 4 <= limit.current < 20  # near the capacity (8), far below the max (40)
    fixed = Dependency(capacity=8)

    async def handle_fixed(record: Any) -> None:
        await fixed.call()

    fixed_processor = asyncbatch.AsyncBatchProcessor(
        concurrency=40, retry=Retry(attempts=50, base=0.005, cap=0.05, seed=3))

    async def main_fixed() -> asyncbatch.BatchReport:
        return await fixed_processor.process(make_event("sqs", ["x"] * 400), handle_fixed)

    run_virtual(main_fixed)
    assert dependency.throttled < fixed.throttled  # fewer throttles than a fixed 40


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=40),
       capacity=st.integers(1, 6), initial=st.integers(1, 6), maximum=st.integers(6, 12))
def test_adaptive_limits_keep_the_bound_and_the_order(
    keys: list[str], capacity: int, initial: int, maximum: int
) -> None:
    dependency = Dependency(capacity)
    limit = AIMDLimit(initial=initial, max=maximum)
    starts: dict[str, list[int]] = {}
    running: dict[str, int] = {}
    overlap = False

    async def handle(record: Any) -> None:
        nonlocal overlap
        key = record.partition_key
        running[key] = running.get(key, 0) + 1
        overlap |= running[key] > 1
        starts.setdefault(key, []).append(position(record))
        try:
            await dependency.call()
        finally:
            running[key] -= 1

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=limit, retry=Retry(attempts=100, base=0.001, cap=0.01, seed=1))

    async def main() -> asyncbatch.BatchReport:
        return await processor.process(make_event("kinesis", keys), handle)

    report = run_virtual(main)
    assert len(report.succeeded) == len(keys)
    assert dependency.peak <= maximum and not overlap
    for seen in starts.values():
        assert [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p] == sorted(set(seen))


@pytest.mark.anyio
async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    gate = Gate(AIMDLimit(initial=1, max=1))
    await gate.acquire()
    admitted: list[str] = []

    async def wait(name: str) -> None:
        await gate.acquire()
        admitted.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "first")
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await wait("cancelled")
        gate.release(0.01, False)
    assert admitted == ["first"] and gate.inflight == 1
    gate.release(0.01, False)
    assert gate.inflight == 0
