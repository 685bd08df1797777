"""One measurement in a fresh interpreter: ``python -m benchmarks._runner '<json args>'``.

Prints one line ``@@RESULT <json>`` on stdout. The suite starts one of these per
contender and repetition, so that no contender inherits another's heap, caches or loop.

Tasks (``args["task"]``):

- ``overhead``: a no-op handler over an event; times each run (event built before the
  clock), and ``ru_maxrss`` growth while building the event and while processing it. With
  ``"tracemalloc": true``, one run under tracemalloc instead (Python-heap peak of the
  processing alone).
- ``event_size``: the event's own size (tracemalloc of building it, JSON text length).
- ``makespan``: handlers sleeping a fixed or lognormal latency; makespan against the ideal
  and against an overhead-free greedy schedule of the same jobs.
- ``skew``: a Kinesis event with Zipf partition keys and a fixed latency; makespan against
  ``max(N*L/C, longest key chain * L)``; also checks that no two records of one key overlap
  and that each key's records run in sequence order.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import selectors
import sys
import time
import tracemalloc
from collections.abc import Awaitable
from typing import Any, Callable

from . import _events

# A contender's run: a function that processes the event once and returns
# (wall seconds, CPU seconds of this process, number of records reported as failed),
# timed from the call to the partial response being built. CPU time is what a noisy
# machine disturbs least: a process descheduled by a neighbour does not accrue it.
Run = Callable[[dict[str, Any]], tuple[float, float, int]]

ASYNC_CONTENDERS = ("asyncbatch", "asyncbatch_ctx", "asyncbatch_key", "powertools_async",
                    "floor", "floor_keyed", "floor_partition", "aiometer")
# The deadline of a Lambda-like context: far away, so that no record is stopped; what it
# costs is asyncbatch reading the clock before each record.
CONTEXT_REMAINING_S = 900.0
SYNC_CONTENDERS = ("powertools_sync",)


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


class _SkippingSelector:
    """A selector that, instead of blocking until the next timer, polls and reports the
    wait as skipped to its ``CPUClockLoop``."""

    def __init__(self, inner: selectors.BaseSelector, loop: CPUClockLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # nothing scheduled: only I/O can wake the loop
            return self._inner.select(None)
        self._loop.skipped += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CPUClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is this process's CPU time plus the idle waits it
    skipped instead of sleeping: the time a run would take on a core of its own.

    On a shared machine a wall-clock makespan also counts the time the process sat
    descheduled while its timers were due; this clock does not. Timers still fire in
    order and at their (virtual) time, every handler still runs, and the loop's own
    work, the library's included, still costs what it costs."""

    def __init__(self) -> None:
        self.skipped = 0.0
        super().__init__(selector=_SkippingSelector(selectors.DefaultSelector(), self))

    def time(self) -> float:
        return time.process_time() + self.skipped


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    elif kind == "asyncio":
        loop = asyncio.new_event_loop()
    elif kind == "cpu-clock":
        loop = CPUClockLoop()
    else:
        raise ValueError(f"loop={kind!r}: use 'asyncio', 'uvloop' or 'cpu-clock'")
    # The loop a warm Lambda container keeps; powertools picks it up with get_event_loop().
    asyncio.set_event_loop(loop)
    return loop


def _source_of(event: dict[str, Any]) -> str:
    return "sqs" if event["Records"][0]["eventSource"] == "aws:sqs" else "kinesis"


# -- pools without a library: the floor ---------------------------------------------


async def bare_pool(items: Any, work: Callable[[Any], Awaitable[Any]], concurrency: int) -> None:
    """``concurrency`` asyncio workers pulling from one shared iterator: the floor."""
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    workers = min(concurrency, len(items))
    if sys.version_info < (3, 11):  # no TaskGroup; the floor's handlers never fail
        await asyncio.gather(*(worker() for _ in range(workers)))
        return
    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())


def _kinesis_key(record: dict[str, Any]) -> Any:
    return record["kinesis"]["partitionKey"]


def _kafka_partition(record: dict[str, Any]) -> Any:
    return (record["topic"], record["partition"])


def _kafka_key(record: dict[str, Any]) -> Any:
    return (record["topic"], record["partition"], record["key"])


def _records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's records: ``Records``, or a Kafka event's topic-partition groups."""
    if "Records" in event:
        return event["Records"]  # type: ignore[no-any-return]
    return [record for part in event["records"].values() for record in part]


def key_lanes(records: list[dict[str, Any]],
              key_of: Callable[[dict[str, Any]], Any] = _kinesis_key,
              ) -> list[list[dict[str, Any]]]:
    """Records grouped by partition key (event order inside a lane), longest lane first."""
    lanes: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        key = key_of(record)
        lane = lanes.get(key)
        if lane is None:
            lanes[key] = [record]
        else:
            lane.append(record)
    return sorted(lanes.values(), key=len, reverse=True)


async def keyed_pool(records: list[dict[str, Any]], work: Callable[[Any], Awaitable[Any]],
                     concurrency: int,
                     key_of: Callable[[dict[str, Any]], Any] = _kinesis_key) -> None:
    """The floor for ordered records: group by key, then a bare pool over the lanes."""

    async def run_lane(lane: list[dict[str, Any]]) -> None:
        for record in lane:
            await work(record)

    await bare_pool(key_lanes(records, key_of), run_lane, concurrency)


# -- contenders ------------------------------------------------------------------------


class LambdaContext:
    """As ``awslambdaric``'s context: the remaining time counts down from an epoch
    deadline in milliseconds, read from ``time.time()``."""

    def __init__(self, remaining_s: float) -> None:
        self.function_name = "bench"
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self._deadline_ms = int(time.time() * 1000) + int(remaining_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        delta = self._deadline_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0


def make_run(contender: str, source: str, concurrency: int, loop: asyncio.AbstractEventLoop | None,
             handler: Callable[[Any], Any]) -> Run:
    """The contender's ``run(event)``. ``handler`` is async, except for powertools_sync."""
    if contender in ("asyncbatch", "asyncbatch_key", "asyncbatch_ctx"):
        import asyncbatch

        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=concurrency, ordering="key" if contender == "asyncbatch_key" else None)
        with_context = contender == "asyncbatch_ctx"

        async def timed_asyncbatch(event: dict[str, Any]) -> tuple[float, float, int]:
            # A new context per invocation, as Lambda gives (made before the clock).
            context = LambdaContext(CONTEXT_REMAINING_S) if with_context else None
            wall, cpu = _now()
            report = await processor.process(event, handler, context)
            response = report.response()
            return _since(wall, cpu, len(response["batchItemFailures"]))

        return lambda event: _on(loop, timed_asyncbatch(event))

    if contender in ("powertools_async", "powertools_sync"):
        # As in Lambda: powertools then reuses the thread's event loop instead of
        # asyncio.run() creating and closing one per batch.
        os.environ.setdefault("LAMBDA_TASK_ROOT", "/var/task")
        from aws_lambda_powertools.utilities import batch

        kind = {"sqs": batch.EventType.SQS, "kinesis": batch.EventType.KinesisDataStreams,
                "kafka": getattr(batch.EventType, "Kafka", None)}[source]
        if kind is None:
            raise RuntimeError("the installed powertools has no Kafka batch processor")
        if contender == "powertools_async":
            pt_processor: Any = batch.AsyncBatchProcessor(event_type=kind)
            entry = batch.async_process_partial_response
        else:
            pt_processor = batch.BatchProcessor(event_type=kind)
            entry = batch.process_partial_response

        def timed_powertools(event: dict[str, Any]) -> tuple[float, float, int]:
            wall, cpu = _now()
            response = entry(event=event, record_handler=handler, processor=pt_processor)
            return _since(wall, cpu, len(response["batchItemFailures"]))

        return timed_powertools

    if contender in ("floor", "floor_keyed", "floor_partition"):
        key_of = _kinesis_key
        if source == "kafka":
            key_of = _kafka_partition if contender == "floor_partition" else _kafka_key

        async def timed_floor(event: dict[str, Any]) -> tuple[float, float, int]:
            wall, cpu = _now()
            if contender == "floor":
                await bare_pool(_records(event), handler, concurrency)
            else:
                await keyed_pool(_records(event), handler, concurrency, key_of)
            return _since(wall, cpu, 0)

        return lambda event: _on(loop, timed_floor(event))

    if contender == "aiometer":
        import aiometer

        async def timed_aiometer(event: dict[str, Any]) -> tuple[float, float, int]:
            wall, cpu = _now()
            await aiometer.run_on_each(handler, event["Records"], max_at_once=concurrency)
            return _since(wall, cpu, 0)

        return lambda event: _on(loop, timed_aiometer(event))

    raise ValueError(f"unknown contender {contender!r}")


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(wall: float, cpu: float, failures: int) -> tuple[float, float, int]:
    return time.perf_counter() - wall, time.process_time() - cpu, failures


def _on(loop: asyncio.AbstractEventLoop | None, coro: Any) -> Any:
    assert loop is not None
    return loop.run_until_complete(coro)


def build_event(source: str, n: int, distinct_keys: int, seed: int) -> dict[str, Any]:
    if source == "sqs":
        return _events.sqs_event(n, seed=seed)
    if source == "kinesis":
        return _events.kinesis_event(_events.uniform_keys(n, distinct_keys, seed=seed), seed=seed)
    if source == "kafka":  # 8 partitions of one topic, uniform keys
        return _events.kafka_event(_events.uniform_keys(n, distinct_keys, seed=seed),
                                   partitions=KAFKA_PARTITIONS, seed=seed)
    raise ValueError(f"source={source!r}: use 'sqs', 'kinesis' or 'kafka'")


KAFKA_PARTITIONS = 8


# -- tasks -----------------------------------------------------------------------------


async def _noop(record: Any) -> None:
    pass


def _noop_sync(record: Any) -> None:
    pass


def task_overhead(args: dict[str, Any]) -> dict[str, Any]:
    contender = args["contender"]
    source = args["source"]
    n = args["n"]
    keys = args.get("distinct_keys", 1000)
    if contender in SYNC_CONTENDERS:
        loop, handler = None, _noop_sync
    else:
        loop, handler = _new_loop(args.get("loop", "asyncio")), _noop
    run = make_run(contender, source, args["concurrency"], loop, handler)

    # Warm up (imports done lazily on first use, code caches) on a small event.
    warm = build_event(source, args.get("warmup", 200), keys, seed=99)
    warmup_times = [run(warm)[0] for _ in range(2)]
    del warm
    gc.collect()

    rss_start = _maxrss_kb()
    event = build_event(source, n, keys, seed=args.get("seed", 0))
    rss_event = _maxrss_kb()
    gc.collect()

    result: dict[str, Any] = {
        "rss_start_kb": rss_start, "rss_event_kb": rss_event,
        "event_rss_kb": rss_event - rss_start, "warmup_times": warmup_times,
    }
    if args.get("tracemalloc"):
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        _, _, failures = run(event)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.update(traced_peak_bytes=peak - base, traced_retained_bytes=current - base,
                      failures=failures)
        return result

    times = []
    cpu_times = []
    failures = 0
    rss_after_first = None
    for _ in range(args.get("inner", 1)):
        elapsed, cpu, failed = run(event)
        failures += failed
        times.append(elapsed)
        cpu_times.append(cpu)
        if rss_after_first is None:
            rss_after_first = _maxrss_kb()
    assert rss_after_first is not None
    result.update(times=times, cpu_times=cpu_times, failures=failures,
                  rss_run_kb=rss_after_first,
                  processing_rss_kb=rss_after_first - rss_event)
    return result


def task_event_size(args: dict[str, Any]) -> dict[str, Any]:
    source = args["source"]
    n = args["n"]
    keys = args.get("distinct_keys", 1000)
    build_event(source, 10, keys, seed=99)  # import/compile everything first
    gc.collect()
    tracemalloc.start()
    event = build_event(source, n, keys, seed=args.get("seed", 0))
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"traced_bytes": traced, "json_bytes": len(json.dumps(event)),
            "records": len(event["Records"])}


def _timed_on(loop: asyncio.AbstractEventLoop, run: Run,
              event: dict[str, Any]) -> tuple[float, float, int]:
    """``run(event)``; on a ``CPUClockLoop`` the elapsed time is the loop's own clock."""
    started = loop.time()
    elapsed, cpu, failures = run(event)
    if isinstance(loop, CPUClockLoop):
        elapsed = loop.time() - started
    return elapsed, cpu, failures


def _warm_up(run: Run, warm: dict[str, Any], by_id: dict[str, float] | None = None) -> None:
    """One run on a small event before the clock (with zero latency when ``by_id`` maps
    latencies): lazy imports and first-call costs are paid here, as in a warm container."""
    if by_id is not None:
        for record in warm["Records"]:
            by_id[record["messageId"]] = 0.0
    run(warm)
    gc.collect()


class _Gauge:
    """Handlers in flight: the peak shows that the bound is reached and kept."""

    __slots__ = ("now", "peak")

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


def task_makespan(args: dict[str, Any]) -> dict[str, Any]:
    contender = args["contender"]
    n = args["n"]
    concurrency = args["concurrency"]
    latency = args["latency"]
    loop = _new_loop(args.get("loop", "asyncio"))
    event = _events.sqs_event(n, seed=args.get("seed", 0))
    records = event["Records"]
    if latency["kind"] == "fixed":
        delays = [float(latency["seconds"])] * n
    elif latency["kind"] == "lognormal":
        delays = _events.lognormal_latencies(n, latency["mean"], latency["sigma"],
                                             seed=latency.get("seed", 1))
    else:
        raise ValueError(f"latency kind {latency['kind']!r}")
    by_id = {record["messageId"]: delay for record, delay in zip(records, delays)}
    gauge = _Gauge()
    sleep = asyncio.sleep

    if contender == "asyncbatch":
        async def handler(record: Any) -> None:
            gauge.now += 1
            if gauge.now > gauge.peak:
                gauge.peak = gauge.now
            await sleep(by_id[record.raw["messageId"]])
            gauge.now -= 1
    else:
        async def handler(record: Any) -> None:
            gauge.now += 1
            if gauge.now > gauge.peak:
                gauge.peak = gauge.now
            await sleep(by_id[record["messageId"]])
            gauge.now -= 1

    run = make_run(contender, "sqs", concurrency, loop, handler)
    _warm_up(run, _events.sqs_event(min(n, 200), seed=99), by_id)
    gauge.peak = 0
    elapsed, cpu, failures = _timed_on(loop, run, event)
    total = sum(delays)
    ideal = max(total / concurrency, max(delays))
    return {
        "makespan": elapsed, "cpu": cpu, "ideal": ideal, "failures": failures,
        "greedy_no_overhead": _events.list_schedule(delays, concurrency),
        "sum_latency": total, "max_latency": max(delays), "peak_in_flight": gauge.peak,
    }


def task_skew(args: dict[str, Any]) -> dict[str, Any]:
    contender = args["contender"]
    n = args["n"]
    concurrency = args["concurrency"]
    latency = float(args["latency"])
    loop = _new_loop(args.get("loop", "asyncio"))
    keys = _events.zipf_keys(n, args["distinct_keys"], args["exponent"], seed=args.get("seed", 0))
    event = _events.kinesis_event(keys, seed=args.get("seed", 0))

    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    lane_lengths = list(counts.values())  # first-appearance order
    chain = max(lane_lengths)
    ideal = max(n * latency / concurrency, chain * latency)

    gauge = _Gauge()
    active: set[str] = set()
    last_seq: dict[str, int] = {}
    violations = [0]
    sleep = asyncio.sleep

    async def check_and_sleep(key: str, seq: int) -> None:
        gauge.now += 1
        if gauge.now > gauge.peak:
            gauge.peak = gauge.now
        if key in active or seq < last_seq.get(key, -1):
            violations[0] += 1
        active.add(key)
        last_seq[key] = seq
        await sleep(latency)
        active.discard(key)
        gauge.now -= 1

    if contender == "asyncbatch":
        async def handler(record: Any) -> None:
            kinesis = record.raw["kinesis"]
            await check_and_sleep(kinesis["partitionKey"], int(kinesis["sequenceNumber"]))
    else:
        async def handler(record: Any) -> None:
            kinesis = record["kinesis"]
            await check_and_sleep(kinesis["partitionKey"], int(kinesis["sequenceNumber"]))

    run = make_run(contender, "kinesis", concurrency, loop, handler)
    _warm_up(run, _events.kinesis_event(keys[:200], seed=99))
    active.clear()
    last_seq.clear()
    violations[0] = 0
    gauge.peak = 0
    elapsed, cpu, failures = _timed_on(loop, run, event)
    return {
        "makespan": elapsed, "cpu": cpu, "ideal": ideal, "failures": failures,
        "chain": chain, "lanes": len(lane_lengths), "work_bound": n * latency / concurrency,
        "lpt_no_overhead": _events.list_schedule(
            [length * latency for length in sorted(lane_lengths, reverse=True)], concurrency),
        "arrival_order_no_overhead": _events.list_schedule(
            [length * latency for length in lane_lengths], concurrency),
        "peak_in_flight": gauge.peak, "order_violations": violations[0],
    }


def task_write_event(args: dict[str, Any]) -> dict[str, Any]:
    """Write an event as JSON to ``args["path"]`` (the cold-start children read it)."""
    event = build_event(args["source"], args["n"], args.get("distinct_keys", 1000),
                        seed=args.get("seed", 0))
    with open(args["path"], "w", encoding="utf-8") as f:
        json.dump(event, f)
    return {"records": len(event["Records"]), "path": args["path"]}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "write_event": task_write_event,
    "overhead": task_overhead,
    "event_size": task_event_size,
    "makespan": task_makespan,
    "skew": task_skew,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m benchmarks._runner '<json args>'\n")
        return 2
    args = json.loads(argv[1])
    result = TASKS[args["task"]](args)
    sys.stdout.write("@@RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
