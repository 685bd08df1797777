"""Any iterable: ``stream()`` against a bare pool and the other ways Python does it.

    python -m benchmarks.streams [--quick] [--out DIR]

Three measurements, written to ``benchmarks/results/streams.md`` and ``streams.png``:

1. **Cost per item.** ``N`` no-op items from one async generator each, concurrency 100,
   every contender in the same interpreter, interleaved: rounds rotate the order, collect
   garbage before each run and time CPU (``time.process_time``); each run's cost is a
   ratio to the bare pool of the same round, and the table gives the median ratio with
   its spread over the rounds. Contenders:

   - ``bare pool`` (the floor): 100 workers (``asyncio.gather``) pulling from the
     generator under a lock, and nothing else (no outcome, no report);
   - ``stream()``: ``async with processor.stream(items, handle) as outcomes`` consumed
     as they settle; ``stream(ordered=True)``; ``stream(key=)`` with 100 keys;
   - ``TaskGroup + Semaphore``: a task per item, at most 100 at once (the hand-written
     loop);
   - ``aiometer.amap``: over a list (it materialises its input: no async iterator);
   - ``aiostream map``: ``aiostream.stream.map(items, handle, task_limit=100)``.

2. **Memory over an endless input.** 1,000,000 items of an endless async generator
   through ``stream()`` (concurrency 100), peak ``tracemalloc`` memory above the start.

3. **A rate limit's accuracy.** ``RateLimit(1000)`` over 10 s of virtual time (trio's
   ``MockClock``, the limit on the loop's clock): starts per 1-second window, and the
   overall rate.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Callable, Optional

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 100
FLOOR = "bare pool"
CONTENDERS = (FLOOR, "stream()", "stream(ordered=True)", "stream(key=), 100 keys",
              "TaskGroup + Semaphore", "aiometer.amap", "aiostream map")


async def _items(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def _noop(item: Any) -> None:
    return None


async def bare_pool(n: int) -> int:
    items = _items(n).__aiter__()
    lock = asyncio.Lock()
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            async with lock:
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    return
            await _noop(item)
            done += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


def _stream(**options: Any) -> Callable[[int], Any]:
    async def run(n: int) -> int:
        import asyncbatch

        processor = asyncbatch.AsyncBatchProcessor(concurrency=CONCURRENCY, log_summary=False)
        done = 0
        async with processor.stream(_items(n), _noop, **options) as outcomes:
            async for _ in outcomes:
                done += 1
        return done

    return run


async def task_group_semaphore(n: int) -> int:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(item: int) -> None:
        nonlocal done
        try:
            await _noop(item)
            done += 1
        finally:
            semaphore.release()

    async with asyncio.TaskGroup() as group:
        async for item in _items(n):
            await semaphore.acquire()
            group.create_task(one(item))
    return done


async def aiometer_amap(n: int) -> int:
    import aiometer

    done = 0
    async with aiometer.amap(_noop, list(range(n)), max_at_once=CONCURRENCY) as results:
        async for _ in results:
            done += 1
    return done


async def aiostream_map(n: int) -> int:
    from aiostream import stream

    done = 0
    async with stream.map(_items(n), _noop, task_limit=CONCURRENCY).stream() as results:
        async for _ in results:
            done += 1
    return done


RUNNERS: dict[str, Callable[[int], Any]] = {
    FLOOR: bare_pool,
    "stream()": _stream(),
    "stream(ordered=True)": _stream(ordered=True),
    "stream(key=), 100 keys": _stream(key=lambda item: item % 100),
    "TaskGroup + Semaphore": task_group_semaphore,
    "aiometer.amap": aiometer_amap,
    "aiostream map": aiostream_map,
}


def available() -> list[str]:
    """The contenders whose library is installed (``TaskGroup + Semaphore``: whose Python
    has ``asyncio.TaskGroup``, 3.11+)."""
    names = []
    for name in CONTENDERS:
        if name == "TaskGroup + Semaphore" and not hasattr(asyncio, "TaskGroup"):
            continue
        module = {"aiometer.amap": "aiometer", "aiostream map": "aiostream"}.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                continue
        names.append(name)
    return names


def cpu_per_item(name: str, n: int) -> float:
    """CPU microseconds per item of one run (garbage collected first)."""
    gc.collect()
    started = time.process_time()
    done = asyncio.run(RUNNERS[name](n))
    took = time.process_time() - started
    if done != n:
        raise AssertionError(f"{name}: {done} of {n} items")
    return took / n * 1e6


def per_item(n: int, rounds: int, names: list[str]) -> dict[str, Any]:
    """Interleaved rounds in this interpreter; per contender its costs and its ratios to
    the bare pool of the same round."""
    for name in names:  # warm up: imports, code paths
        cpu_per_item(name, min(n, 2_000))
    costs: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        measured = {name: cpu_per_item(name, n) for name in order}
        for name in names:
            costs[name].append(measured[name])
            ratios[name].append(measured[name] / measured[FLOOR])
    return {"n": n, "rounds": rounds, "costs": costs, "ratios": ratios}


def endless_memory(items: int) -> dict[str, Any]:
    """Peak traced memory (bytes above the start) of ``items`` items of an endless async
    generator through ``stream()``, concurrency 100."""
    import tracemalloc

    import asyncbatch

    async def endless() -> AsyncIterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    async def main() -> int:
        processor = asyncbatch.AsyncBatchProcessor(concurrency=CONCURRENCY, log_summary=False)
        done = 0
        async with processor.stream(endless(), _noop) as outcomes:
            async for _ in outcomes:
                done += 1
                if done == items:
                    break
        return done

    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    done = asyncio.run(main())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"items": done, "peak_bytes": peak - base}


def rate_accuracy(per_second: int, seconds: int) -> dict[str, Any]:
    """Starts per 1-second window of ``RateLimit(per_second)`` over ``seconds`` of virtual
    time, and the overall rate."""
    import anyio
    from trio.testing import MockClock

    import asyncbatch

    starts: list[float] = []

    async def handle(item: int) -> None:
        starts.append(anyio.current_time())

    async def main() -> float:
        limit = asyncbatch.RateLimit(per_second, clock=anyio.current_time)
        processor = asyncbatch.AsyncBatchProcessor(concurrency=CONCURRENCY, rate_limit=limit,
                                                   log_summary=False)
        began = anyio.current_time()
        await processor.run(range(per_second * seconds + 1), handle)
        return began

    began = anyio.run(main, backend="trio",
                      backend_options={"clock": MockClock(autojump_threshold=0)})
    windows = [0] * seconds
    for when in starts:
        second = int(when - began)
        if second < seconds:
            windows[second] += 1
    overall = (len(starts) - 1) / (max(starts) - min(starts))
    return {"per_second": per_second, "seconds": seconds, "windows": windows,
            "overall": overall,
            "worst": max(abs(count - per_second) / per_second for count in windows)}


def render(cost: dict[str, Any], memory: dict[str, Any], rate: dict[str, Any]) -> str:
    lines = [
        "# Any iterable: `stream()` against the floor and the alternatives",
        "",
        f"{cost['n']:,} no-op items from an async generator, concurrency {CONCURRENCY}; "
        f"contenders interleaved in one interpreter, {cost['rounds']} rounds (order "
        "rotated, garbage collected before each run), CPU time. The ratio is to the bare "
        "pool of the same round: median and range over the rounds. Python "
        f"{sys.version.split()[0]}. Made by `python -m benchmarks.streams`.",
        "",
        "| contender | CPU us/item (median) | x bare pool (median) | range |",
        "|---|---|---|---|",
    ]
    for name, costs in cost["costs"].items():
        ratios = cost["ratios"][name]
        lines.append(f"| {name} | {statistics.median(costs):.2f} | "
                     f"{statistics.median(ratios):.2f}x | "
                     f"{min(ratios):.2f}x - {max(ratios):.2f}x |")
    lines += [
        "",
        "`aiometer.amap` is given a list (it sizes its buffers from `len()`, so it cannot "
        "take an async iterator); the others read the same async generator.",
        "",
        "## Memory over an endless input",
        "",
        f"{memory['items']:,} items of an endless async generator through `stream()`, "
        f"concurrency {CONCURRENCY}: peak traced memory "
        f"**{memory['peak_bytes'] / 1e6:.2f} MB** above the start (`tracemalloc`).",
        "",
        "## Rate limit",
        "",
        f"`RateLimit({rate['per_second']})` over {rate['seconds']} s of virtual time (trio's "
        f"`MockClock`): overall **{rate['overall']:.1f} starts/s**; per 1-second window "
        f"{min(rate['windows'])} to {max(rate['windows'])} starts, the worst "
        f"**{rate['worst'] * 100:.2f}%** from the rate.",
        "",
    ]
    return "\n".join(lines)


def plot(cost: dict[str, Any], path: Path) -> Optional[Path]:
    from ._plots import bar_chart

    names = list(cost["costs"])
    medians = [statistics.median(cost["costs"][name]) for name in names]
    return bar_chart(
        path, names, medians, [f"{m:.2f}" for m in medians], log=True,
        xlabel="CPU us per item (log scale), median over rounds",
        title=f"{cost['n']:,} no-op items from an async generator, concurrency {CONCURRENCY}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streams",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "streams.md",
                        help="the markdown file to write (the plot goes beside it)")
    args = parser.parse_args(argv)
    if args.quick:
        n, rounds, endless_items, seconds = 2_000, 2, 20_000, 2
    else:
        n, rounds, endless_items, seconds = 200_000, 5, 1_000_000, 10
    names = available()
    cost = per_item(n, rounds, names)
    memory = endless_memory(endless_items)
    rate = rate_accuracy(1000, seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(cost, memory, rate), encoding="utf-8")
    plot(cost, args.out.with_suffix(".png"))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
