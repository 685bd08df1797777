"""Where asyncbatch's time per record goes: ``python -m benchmarks.profile [sqs|kinesis] [N]``.

Not part of the suite (no figure here is a result): a tool for working on the engine.
In one interpreter, on the suite's own events, after a warm-up, it prints the CPU µs per
record (median of ``--reps`` runs) of

- the whole call (``process`` + ``response``), without and with a Lambda-like context
  (deadline far away), and the suite's floor for the source (bare pool / keyed pool);
- the stages that can be timed apart: reading and planning the event (``read_event``),
  making a view per record, a loop clock read;
- then one run under ``cProfile``: the functions by own time (``--top``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from typing import Any, Callable

from . import _runner


def _median_us(fn: Callable[[], Any], n: int, reps: int) -> float:
    times = []
    for _ in range(reps):
        gc.collect()
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return statistics.median(times) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="sqs", choices=("sqs", "kinesis"))
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    import asyncbatch
    from asyncbatch._sources import read_event

    n, source = args.n, args.source
    event = _runner.build_event(source, n, 1000, seed=0)
    warm = _runner.build_event(source, 200, 1000, seed=99)
    processor = asyncbatch.AsyncBatchProcessor(concurrency=100)
    view = asyncbatch.SQSRecord if source == "sqs" else asyncbatch.KinesisRecord
    records = event["Records"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def noop(record: Any) -> None:
        pass

    async def call(ev: dict[str, Any], context: bool) -> Any:
        ctx = _runner.LambdaContext(_runner.CONTEXT_REMAINING_S) if context else None
        return (await processor.process(ev, noop, ctx)).response()

    async def floor(ev: dict[str, Any]) -> None:
        if source == "sqs":
            await _runner.bare_pool(ev["Records"], noop, 100)
        else:
            await _runner.keyed_pool(ev["Records"], noop, 100)

    for context in (False, True):
        loop.run_until_complete(call(warm, context))
    loop.run_until_complete(floor(warm))

    def views() -> None:
        new = object.__new__
        for raw in records:
            v = new(view)
            v.raw = raw

    def clock_reads() -> None:
        now = loop.time
        for _ in range(n):
            now()

    reps = args.reps
    whole = _median_us(lambda: loop.run_until_complete(call(event, False)), n, reps)
    whole_ctx = _median_us(lambda: loop.run_until_complete(call(event, True)), n, reps)
    base = _median_us(lambda: loop.run_until_complete(floor(event)), n, reps)
    plan = _median_us(lambda: read_event(event, None), n, reps)
    made = _median_us(views, n, reps)
    clock = _median_us(clock_reads, n, reps)
    print(f"{source} {n:,} records, no-op handler, concurrency 100: CPU µs per record, "
          f"median of {reps}")
    print(f"  process() + response(), no context      {whole:7.3f}  ({whole / base:.2f}x floor)")
    print(f"  process() + response(), Lambda context  {whole_ctx:7.3f}  "
          f"({whole_ctx / base:.2f}x floor; +{whole_ctx - whole:.3f})")
    print(f"  floor ({'bare' if source == 'sqs' else 'keyed'} pool)                    "
          f"{base:7.3f}")
    print(f"  read_event: validate + plan             {plan:7.3f}")
    print(f"  a view per record (object.__new__)      {made:7.3f}")
    print(f"  loop.time(), one read                   {clock:7.3f}")
    print(f"  the rest: scheduling, statuses, report  {whole - plan:7.3f} (incl. views)")

    profiler = cProfile.Profile()
    profiler.enable()
    loop.run_until_complete(call(event, False))
    profiler.disable()
    print("\ncProfile of one call (no context; cProfile's own cost inflates every call):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
