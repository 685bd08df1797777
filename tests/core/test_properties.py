"""Hypothesis over random batches: keys, sequence numbers, failures, latencies, deadlines.

Every example runs on trio with an autojumping ``MockClock``: latencies are virtual, so
the interleavings are many and the runs are fast and repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

import asyncbatch
from asyncbatch import TransientError
from asyncbatch.testing import LambdaContext
from tests._support.events import make_event, position

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def run_virtual(main: Any) -> Any:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


@dataclass
class Batch:
    source: str
    keys: list[str]
    failing: set[int]
    latency: list[float]
    concurrency: int
    stop_batch: bool = False
    transient: dict[int, int] = field(default_factory=dict)


@st.composite
def batches(draw: st.DrawFn, sources: tuple[str, ...] = ("sqs", "fifo", "kinesis", "dynamodb"),
            ) -> Batch:
    source = draw(st.sampled_from(sources))
    n = draw(st.integers(0, 30))
    alphabet = draw(st.sampled_from(["a", "ab", "abc", "abcdefgh"]))
    keys = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    failing = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else set()
    latency = draw(st.lists(st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.3]),
                            min_size=n, max_size=n))
    concurrency = draw(st.integers(1, 8))
    stop_batch = source == "fifo" and draw(st.booleans())
    return Batch(source, keys, failing, latency, concurrency, stop_batch)


class Observer:
    """Records what the handlers did, for checking against the report."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.running = 0
        self.peak = 0
        self.per_key: dict[Any, int] = {}
        self.overlap = False
        self.log: list[tuple[str, int, float]] = []

    async def handle(self, record: Any) -> None:
        i = position(record)
        key = record.ordering_key
        self.log.append(("start", i, anyio.current_time()))
        self.running += 1
        self.peak = max(self.peak, self.running)
        if key is not None and self.batch.source != "sqs":
            self.per_key[key] = self.per_key.get(key, 0) + 1
            self.overlap |= self.per_key[key] > 1
        try:
            await anyio.sleep(self.batch.latency[i])
            left = self.batch.transient.get(i, 0)
            if left:
                self.batch.transient[i] = left - 1
                raise TransientError("throttled")
            if i in self.batch.failing:
                self.log.append(("fail", i, anyio.current_time()))
                raise ValueError(f"record {i} fails")
        finally:
            self.running -= 1
            if key is not None and self.batch.source != "sqs":
                self.per_key[key] -= 1

    def starts(self) -> list[int]:
        return [i for kind, i, _ in self.log if kind == "start"]


def check_common(batch: Batch, event: dict[str, Any], report: asyncbatch.BatchReport,
                 seen: Observer) -> None:
    n = len(batch.keys)
    # every record is in exactly one outcome
    buckets = [o.index for b in (report.succeeded, report.failed, report.skipped) for o in b]
    assert sorted(buckets) == list(range(n))
    # the bound is never exceeded; one key never runs twice at once
    assert seen.peak <= batch.concurrency
    assert not seen.overlap
    # a record runs once per attempt, and skipped records never ran
    starts = seen.starts()
    for outcome in report:
        assert starts.count(outcome.index) == outcome.attempts
    assert not {o.index for o in report.skipped} & set(starts)
    # the response lists failed and skipped records, in event order, each once
    status = {o.index: o.status for o in report}
    reported = [i for i in range(n) if status[i] != "succeeded"]
    expected = [report._view(event["Records"][i]).identifier for i in reported]
    got = [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]
    assert got == list(dict.fromkeys(expected))
    # keyed sources: one key's records start in event order
    if batch.source != "sqs":
        for key in set(batch.keys):
            mine = [i for i in starts if batch.keys[i] == key]
            assert mine == sorted(mine)


def check_source_rules(batch: Batch, report: asyncbatch.BatchReport, seen: Observer) -> None:
    status = {o.index: o.status for o in report}
    n = len(batch.keys)
    if batch.source == "sqs":
        assert {i for i in range(n) if status[i] == "failed"} == batch.failing
        assert not report.skipped
    elif batch.source == "fifo" and not batch.stop_batch:
        for key in set(batch.keys):
            lane = [i for i in range(n) if batch.keys[i] == key]
            first = next((i for i in lane if i in batch.failing), None)
            for i in lane:
                want = "succeeded" if first is None or i < first else (
                    "failed" if i == first else "skipped")
                assert status[i] == want
    elif batch.source == "fifo":
        fails = [(t, i) for kind, i, t in seen.log if kind == "fail"]
        if fails:
            t_first = min(fails)[0]
            assert all(t <= t_first for kind, i, t in seen.log if kind == "start")
        else:
            assert all(s == "succeeded" for s in status.values())
    else:  # streams: the checkpoint invariant
        failed = [i for i in range(n) if status[i] == "failed"]
        reported = [i for i in range(n) if status[i] != "succeeded"]
        if reported:
            lowest = min(reported)  # sequence order is event order in these events
            assert all(status[i] == "succeeded" for i in range(lowest))
            assert lowest in failed
            # after the lowest failure happened, nothing above it was started
            at = next(p for p, (kind, i, _) in enumerate(seen.log)
                      if kind == "fail" and i == lowest)
            assert all(i < lowest for kind, i, _ in seen.log[at:] if kind == "start")
            # later records of a failed key are skipped
            for f in failed:
                for i in range(f + 1, n):
                    if batch.keys[i] == batch.keys[f]:
                        assert status[i] == "skipped"
        else:
            assert not batch.failing & set(seen.starts())


@SETTINGS
@given(batches())
def test_random_batches_keep_every_rule(batch: Batch) -> None:
    event = make_event(batch.source, batch.keys)
    seen = Observer(batch)
    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=batch.concurrency, fifo_stop_on_failure=batch.stop_batch)

    async def main() -> asyncbatch.BatchReport:
        return await processor.process(event, seen.handle)

    report = run_virtual(main)
    check_common(batch, event, report, seen)
    check_source_rules(batch, report, seen)
    # the bound is reached at once when enough independent work is ready
    lanes = len(batch.keys) if batch.source == "sqs" else len(set(batch.keys))
    at_zero = [i for kind, i, t in seen.log if kind == "start" and t == 0]
    assert len(at_zero) == min(batch.concurrency, lanes)


@SETTINGS
@given(batches(), st.floats(0.0, 2.0), st.integers(1, 4), st.data())
def test_deadlines_and_retries_lose_nothing(
    batch: Batch, remaining: float, attempts: int, data: st.DataObject
) -> None:
    n = len(batch.keys)
    batch.transient = {i: data.draw(st.integers(0, 3)) for i in range(n)}
    event = make_event(batch.source, batch.keys)
    seen = Observer(batch)
    retry = asyncbatch.Retry(attempts=attempts, base=0.05, cap=0.2, seed=1)
    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=batch.concurrency, fifo_stop_on_failure=batch.stop_batch, retry=retry)
    timing: dict[str, float] = {}

    async def main() -> asyncbatch.BatchReport:
        context = LambdaContext(remaining)
        timing["start"] = anyio.current_time()
        report = await processor.process(event, seen.handle, context)
        timing["end"] = anyio.current_time()
        return report

    report = run_virtual(main)
    assert timing["end"] - timing["start"] < remaining or remaining == 0
    check_common(batch, event, report, seen)
    assert seen.running == 0  # no handler outlives process()
    status = {o.index: o for o in report}
    for i, outcome in status.items():
        assert outcome.attempts <= attempts
        if outcome.status == "succeeded":
            assert i not in batch.failing
    if batch.source in ("kinesis", "dynamodb"):
        reported = [i for i in range(n) if status[i].status != "succeeded"]
        if reported:
            assert all(status[i].status == "succeeded" for i in range(min(reported)))


@SETTINGS
@given(st.lists(st.integers(0, 4), min_size=1, max_size=20), st.integers(1, 5))
def test_transient_failures_end_in_success_when_attempts_allow(
    failures: list[int], attempts: int
) -> None:
    n = len(failures)
    batch = Batch("sqs", ["a"] * n, set(), [0.01] * n, 4,
                  transient=dict(enumerate(failures)))
    seen = Observer(batch)
    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=4, retry=asyncbatch.Retry(attempts=attempts, base=0.01))

    async def main() -> asyncbatch.BatchReport:
        return await processor.process(make_event("sqs", batch.keys), seen.handle)

    report = run_virtual(main)
    for outcome in report:
        want = failures[outcome.index] < attempts
        assert (outcome.status == "succeeded") == want
        assert outcome.attempts == (failures[outcome.index] + 1 if want else attempts)


@pytest.mark.anyio
async def test_cancelled_process_under_random_load_leaves_no_handler(
    anyio_backend: str,
) -> None:
    batch = Batch("kinesis", list("abcabcabca"), set(), [5.0] * 10, 3)
    seen = Observer(batch)
    async with anyio.create_task_group() as tg:
        tg.start_soon(asyncbatch.AsyncBatchProcessor(concurrency=3).process,
                      make_event("kinesis", batch.keys), seen.handle)
        while seen.running < 3:
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert seen.running == 0
