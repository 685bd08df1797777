"""The SQS fast path writes no status while it runs: every record taken and not failed
is settled as succeeded once, after the run (by chunks); records taken but not started
are skipped; the loop's clock is read as ``time.monotonic`` only where it is asyncio's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import asyncbatch
from asyncbatch._core import run as _scheduler
from asyncbatch._core.backends import NativeAsyncio
from asyncbatch.testing import LambdaContext, sqs_event


def _event(n: int) -> dict[str, Any]:
    return sqs_event(*({"n": i} for i in range(n)))


@pytest.mark.parametrize("concurrency", [1, 3, 32])
def test_statuses_are_settled_across_chunks(monkeypatch: pytest.MonkeyPatch,
                                            concurrency: int) -> None:
    monkeypatch.setattr(_scheduler, "_SETTLE_CHUNK", 7)
    failing = {0, 6, 7, 13, 14, 50, 99}

    async def handle(record: Any) -> Any:
        n = record.json()["n"]
        if n % 5 == 0:
            await asyncio.sleep(0)  # some suspend, some do not
        if n in failing:
            raise ValueError(n)
        return n if n % 3 == 0 else None

    processor = asyncbatch.AsyncBatchProcessor(concurrency=concurrency, log_summary=False)
    report = asyncio.run(processor.process(_event(100), handle))
    assert sorted(o.record.json()["n"] for o in report.failed) == sorted(failing)
    assert len(report.succeeded) == 100 - len(failing)
    assert not report.skipped
    results = {o.record.json()["n"]: o.result for o in report.succeeded}
    assert all(results[n] == (n if n % 3 == 0 else None) for n in results)


def test_records_taken_after_the_margin_are_skipped_not_succeeded() -> None:
    """Handlers that never await, on a virtual clock: the stop margin cuts the batch; what
    ran succeeded, the rest (the records workers took at the margin too) is skipped."""

    class VirtualLoop(asyncio.SelectorEventLoop):
        now = 1000.0

        def time(self) -> float:
            return self.now

    loop = VirtualLoop()

    async def handle(record: Any) -> None:
        loop.now += 0.01

    processor = asyncbatch.AsyncBatchProcessor(concurrency=8, deadline_margin=0.5,
                                               cancel_margin=0.2, log_summary=False)
    try:
        report = loop.run_until_complete(
            processor.process(_event(300), handle, LambdaContext(remaining=1.0)))
    finally:
        loop.close()
    assert 49 <= len(report.succeeded) <= 51
    assert len(report.skipped) == 300 - len(report.succeeded)
    assert not report.failed
    ran = sorted(o.record.json()["n"] for o in report.succeeded)
    assert ran == list(range(len(ran)))  # in event order: a prefix
    assert {o.exception.reason for o in report.skipped} == {"deadline"}  # type: ignore[union-attr]


def test_the_loop_clock_is_read_as_monotonic_only_where_it_is_asyncios() -> None:
    async def clock() -> Any:
        return NativeAsyncio().clock

    assert asyncio.run(clock()) is time.monotonic

    class Virtual(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 5.0

    loop = Virtual()
    try:
        assert loop.run_until_complete(clock())() == 5.0
    finally:
        loop.close()
    plain = asyncio.new_event_loop()
    plain.time = lambda: 7.0  # type: ignore[method-assign]
    try:
        assert plain.run_until_complete(clock())() == 7.0
    finally:
        plain.close()
