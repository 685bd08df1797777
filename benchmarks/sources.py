"""Every event source against its floor, paired in one interpreter.

    python -m benchmarks.sources [--quick] [--out DIR]

Writes ``benchmarks/results/sources.md`` and ``sources.png``:

1. **Cost per record, per source.** ``N`` records (no-op handler, concurrency 100) through
   ``AsyncBatchProcessor.process`` and the partial response, against the bare asyncio pool
   of the same shape, built by hand (the floor):

   - SQS standard against a bare pool over the records;
   - SQS standard with a Lambda-like context (a far deadline: asyncbatch reads the clock
     before each record) against the same bare pool;
   - SQS FIFO, 100 message groups, against a bare pool over per-group lanes;
   - Kinesis, 100 partition keys, against a bare pool over per-key lanes;
   - Kafka, 8 partitions, against a bare pool over per-partition lanes (the event's own
     topic-partition lists: Lambda sends the records grouped, so the floor groups nothing).

   Every event is built once, before any clock. Each contender is warmed up, then rounds
   run every contender in one interpreter, interleaved (the order rotating, garbage
   collected before each run), timing CPU (``time.process_time``). A source's ratio is
   asyncbatch's CPU over its floor's in the same round; the table gives the median of those
   paired ratios and their range. Absolute times on a shared machine mean little; ratios
   of neighbours do.

2. **Memory per record.** One ``process()`` per source under ``tracemalloc``: peak bytes
   above the start (the event itself is built before), per record.

3. **Cold start.** ``benchmarks/_coldstart.py`` in fresh interpreters, ``.pyc`` already
   written by a warm-up run: ``import asyncbatch`` plus the first 200-record SQS batch
   (``process_partial_response``), against ``import asyncio`` plus a bare ``asyncio.run``
   over the same records; the child's own CPU time up to the answer (no teardown, as in
   Lambda). Paired run by run (the order alternating): the median of asyncbatch's extra
   milliseconds over the floor, and their range.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from . import _events
from ._runner import (
    CONTEXT_REMAINING_S,
    LambdaContext,
    _kafka_partition,
    _records,
    bare_pool,
    keyed_pool,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 100
GROUPS = 100  # FIFO message groups, Kinesis partition keys
PARTITIONS = 8  # Kafka

#: the issue's goals, as ratios to the floor (cold start: extra milliseconds)
GOALS = {"SQS": 3.0, "SQS, Lambda context": 3.0, "SQS FIFO, 100 groups": 2.0,
         "Kinesis, 100 keys": 2.0, "Kafka, 8 partitions": 3.0}
COLDSTART_GOAL_MS = 3.0


@dataclass(frozen=True)
class Case:
    """One row: a source's event, how asyncbatch is called, and the floor of its shape."""

    name: str
    floor: str
    build: Callable[[int], dict[str, Any]]
    floor_key: Optional[Callable[[dict[str, Any]], Any]]  # None: independent records
    context: bool = False


def _fifo_event(n: int, *, seed: int = 0) -> dict[str, Any]:
    """An SQS FIFO event of ``n`` records over ``GROUPS`` message groups (uniform)."""
    import random

    from asyncbatch._sources import SOURCES, EventType

    rng = random.Random(seed)
    source = SOURCES[EventType.SQS]
    records = (source.sample_record(i, {"n": i}, key=f"group-{rng.randrange(GROUPS):03d}")
               for i in range(n))
    return source.sample_event(_events._parse(records))


def _group_id(record: dict[str, Any]) -> Any:
    return record["attributes"]["MessageGroupId"]


def _partition_key(record: dict[str, Any]) -> Any:
    return record["kinesis"]["partitionKey"]


def _sqs_event(n: int) -> dict[str, Any]:
    return _events.sqs_event(n)


CASES = (
    Case("SQS", "bare pool", _sqs_event, None),
    Case("SQS, Lambda context", "bare pool", _sqs_event, None, context=True),
    Case("SQS FIFO, 100 groups", "per-group lanes", _fifo_event, _group_id),
    Case("Kinesis, 100 keys", "per-key lanes",
         lambda n: _events.kinesis_event(_events.uniform_keys(n, GROUPS)), _partition_key),
    Case("Kafka, 8 partitions", "per-partition lanes",
         lambda n: _events.kafka_event(_events.uniform_keys(n, GROUPS), partitions=PARTITIONS),
         _kafka_partition),
)


async def _noop(record: Any) -> None:
    return None


def _asyncbatch(case: Case, module: Any = None) -> Callable[[dict[str, Any]], Awaitable[int]]:
    if module is None:
        import asyncbatch as module

    processor = module.AsyncBatchProcessor(concurrency=CONCURRENCY)

    async def run(event: dict[str, Any]) -> int:
        context = LambdaContext(CONTEXT_REMAINING_S) if case.context else None
        report = await processor.process(event, _noop, context)
        return len(report.response()["batchItemFailures"])

    return run


def _floor(case: Case) -> Callable[[dict[str, Any]], Awaitable[int]]:
    key = case.floor_key

    async def run(event: dict[str, Any]) -> int:
        if key is None:
            await bare_pool(_records(event), _noop, CONCURRENCY)
        elif key is _kafka_partition:  # Lambda sends them grouped: its groups are the lanes
            await bare_pool(list(event["records"].values()), _lane, CONCURRENCY)
        else:
            await keyed_pool(_records(event), _noop, CONCURRENCY, key)
        return 0

    return run


async def _lane(lane: list[dict[str, Any]]) -> None:
    for record in lane:
        await _noop(record)


def _cpu(loop: asyncio.AbstractEventLoop, run: Callable[[dict[str, Any]], Awaitable[int]],
         event: dict[str, Any], n: int) -> float:
    """CPU microseconds per record of one run (garbage collected first)."""
    gc.collect()
    started = time.process_time()
    failures = loop.run_until_complete(run(event))
    took = time.process_time() - started
    if failures:
        raise AssertionError(f"{failures} records failed")
    return took / n * 1e6


def load_baseline(tree: Path) -> Any:
    """Another version of asyncbatch (``tree/asyncbatch``, e.g. a checkout of main),
    imported beside this one as ``asyncbatch_baseline`` (its imports are relative)."""
    import importlib
    import shutil

    where = Path(tempfile.mkdtemp(prefix="asyncbatch-baseline-"))
    shutil.copytree(tree / "asyncbatch", where / "asyncbatch_baseline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module("asyncbatch_baseline")
    finally:
        sys.path.remove(str(where))


def per_record(n: int, rounds: int, cases: tuple[Case, ...] = CASES,
               baseline: Any = None) -> dict[str, Any]:
    """Interleaved rounds in this interpreter: per case, asyncbatch's and its floor's CPU
    per record, and their paired ratios (with ``baseline``, another version of asyncbatch
    too, and this version's paired ratios to it)."""
    loop = asyncio.new_event_loop()
    try:
        built: dict[Any, dict[str, Any]] = {}  # (the two SQS rows share one event)
        events = {case.name: built.get(case.build) or built.setdefault(case.build,
                                                                       case.build(n))
                  for case in cases}
        warm = {case.name: case.build(min(n, 2_000)) for case in cases}
        runs: list[tuple[str, str, Callable[[dict[str, Any]], Awaitable[int]]]] = []
        for case in cases:
            runs.append((case.name, "asyncbatch", _asyncbatch(case)))
            runs.append((case.name, "floor", _floor(case)))
            if baseline is not None:
                runs.append((case.name, "baseline", _asyncbatch(case, baseline)))
        for name, _, run in runs:  # warm up: imports, code paths
            for _ in range(2):
                _cpu(loop, run, warm[name], len(_records(warm[name])))
        del warm
        costs: dict[str, dict[str, list[float]]] = {
            case.name: {who: [] for _, who, _ in runs} for case in cases}
        for round_ in range(rounds):
            shift = round_ % len(runs)
            for name, who, run in runs[shift:] + runs[:shift]:
                costs[name][who].append(_cpu(loop, run, events[name], n))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    ratios = {name: [a / f for a, f in zip(c["asyncbatch"], c["floor"])]
              for name, c in costs.items()}
    out = {"n": n, "rounds": rounds, "costs": costs, "ratios": ratios,
           "floors": {case.name: case.floor for case in cases}}
    if baseline is not None:
        out["baseline_ratios"] = {name: [b / f for b, f in zip(c["baseline"], c["floor"])]
                                  for name, c in costs.items()}
        out["against_baseline"] = {
            name: [a / b for a, b in zip(c["asyncbatch"], c["baseline"])]
            for name, c in costs.items()}
    return out


def memory_per_record(n: int, cases: tuple[Case, ...] = CASES) -> dict[str, float]:
    """Peak traced bytes per record of one ``process()`` (the event built before)."""
    import tracemalloc

    out: dict[str, float] = {}
    loop = asyncio.new_event_loop()
    try:
        for case in cases:
            if case.context:
                continue
            event = case.build(n)
            run = _asyncbatch(case)
            loop.run_until_complete(run(case.build(200)))  # warm: lazy imports
            gc.collect()
            tracemalloc.start()
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            loop.run_until_complete(run(event))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out[case.name] = (peak - base) / n
            del event
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return out


def coldstart(reps: int, n: int = 200) -> dict[str, Any]:
    """asyncbatch's cold start over a bare ``asyncio.run``, paired run by run in fresh
    interpreters (``benchmarks/_coldstart.py``), ``.pyc`` written by a warm-up run."""
    script = str(Path(__file__).resolve().parent / "_coldstart.py")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("LAMBDA_TASK_ROOT", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="asyncbatch-coldstart-") as tmp:
        path = Path(tmp) / "event.json"
        path.write_text(json.dumps(_events.sqs_event(n, seed=7)), encoding="utf-8")

        def once(contender: str) -> dict[str, Any]:
            args = {"contender": contender, "event": str(path), "concurrency": CONCURRENCY}
            proc = subprocess.run([sys.executable, script, json.dumps(args)], env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
            for line in proc.stdout.splitlines():
                if line.startswith("@@RESULT "):
                    result: dict[str, Any] = json.loads(line[len("@@RESULT "):])
                    return result
            raise RuntimeError(f"{contender}: exit {proc.returncode}: {proc.stderr[-500:]}")

        once("floor"), once("asyncbatch")  # warm-up: writes the .pyc files
        extra, floor_ms, asyncbatch_ms, modules = [], [], [], 0
        for rep in range(reps):
            order = ("floor", "asyncbatch") if rep % 2 == 0 else ("asyncbatch", "floor")
            got = {contender: once(contender) for contender in order}
            floor_ms.append(got["floor"]["cpu"] * 1e3)
            asyncbatch_ms.append(got["asyncbatch"]["cpu"] * 1e3)
            extra.append(asyncbatch_ms[-1] - floor_ms[-1])
            modules = got["asyncbatch"]["modules_loaded"] - got["floor"]["modules_loaded"]
    return {"n": n, "reps": reps, "extra_ms": extra, "floor_ms": floor_ms,
            "asyncbatch_ms": asyncbatch_ms, "extra_modules": modules}


def _median_range(values: list[float], fmt: str) -> tuple[str, str]:
    return (format(statistics.median(values), fmt),
            f"{format(min(values), fmt)} - {format(max(values), fmt)}")


def render(cost: dict[str, Any], memory: dict[str, float], cold: dict[str, Any]) -> str:
    lines = [
        "# Every source against its floor",
        "",
        f"{cost['n']:,} records, no-op handler, concurrency {CONCURRENCY}: "
        "`AsyncBatchProcessor.process` and the partial response against a bare asyncio "
        "pool of the same shape (its grouping included), every contender in one "
        f"interpreter, {cost['rounds']} interleaved rounds (order rotated, garbage "
        "collected before each run), CPU time. The ratio is asyncbatch's CPU over its "
        "floor's in the same round: the median of the paired ratios and their range. "
        f"Python {sys.version.split()[0]}. Made by `python -m benchmarks.sources`.",
        "",
        "| source | asyncbatch us/record | floor of the same shape | floor us/record | "
        "x floor (median) | range | goal | memory B/record |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, pair in cost["costs"].items():
        ratio, spread = _median_range(cost["ratios"][name], ".2f")
        goal = GOALS.get(name)
        met = "" if goal is None else (f"<= {goal:g}x " + (
            "(met)" if statistics.median(cost["ratios"][name]) <= goal else "(not met)"))
        mem = memory.get(name)
        lines.append(
            f"| {name} | {statistics.median(pair['asyncbatch']):.2f} | "
            f"{cost['floors'][name]} | {statistics.median(pair['floor']):.2f} | "
            f"{ratio}x | {spread.replace(' - ', 'x - ')}x | {met} | "
            f"{'' if mem is None else f'{mem:.0f}'} |")
    if "against_baseline" in cost:
        lines += [
            "",
            "## Against a baseline",
            "",
            "Another version of asyncbatch (`--baseline`), in the same rounds: its ratio to "
            "the same floor, and this version's CPU over the baseline's, paired by round.",
            "",
            "| source | baseline x floor (median) | range | this / baseline (median) | range |",
            "|---|---|---|---|---|",
        ]
        for name in cost["costs"]:
            base, base_spread = _median_range(cost["baseline_ratios"][name], ".2f")
            mine, mine_spread = _median_range(cost["against_baseline"][name], ".2f")
            lines.append(f"| {name} | {base}x | {base_spread} | {mine} | {mine_spread} |")
    extra, spread = _median_range(cold["extra_ms"], ".1f")
    met = "met" if statistics.median(cold["extra_ms"]) <= COLDSTART_GOAL_MS else "not met"
    lines += [
        "",
        "Memory: peak `tracemalloc` bytes above the start of one `process()` (the event "
        "built before), per record.",
        "",
        "## Cold start",
        "",
        f"`import asyncbatch` plus the first {cold['n']}-record SQS batch against `import "
        "asyncio` plus a bare `asyncio.run` over the same records, each in a fresh "
        "interpreter from `.pyc`, the child's CPU time up to the answer (no teardown); "
        f"{cold['reps']} pairs, the order alternating.",
        "",
        "| | ms (median) | range |",
        "|---|---|---|",
        "| floor: bare `asyncio.run` | {} | {} |".format(*_median_range(cold["floor_ms"], ".1f")),
        "| asyncbatch | {} | {} |".format(*_median_range(cold["asyncbatch_ms"], ".1f")),
        f"| **asyncbatch over the floor** (paired) | **+{extra}** | {spread} |",
        "",
        f"Goal <= +{COLDSTART_GOAL_MS:g} ms: {met}. asyncbatch loads "
        f"{cold['extra_modules']} modules more than the floor.",
        "",
    ]
    return "\n".join(lines)


def plot(cost: dict[str, Any], path: Path) -> Optional[Path]:
    from ._plots import bar_chart

    names = list(cost["costs"])
    ratios = cost["ratios"]
    medians = [statistics.median(ratios[name]) for name in names]
    return bar_chart(
        path, names, medians, [f"{m:.2f}x" for m in medians],
        spread=[(min(ratios[name]), max(ratios[name])) for name in names], marks=GOALS,
        xlabel="asyncbatch CPU / floor CPU, median of paired rounds (red: goal)",
        title=f"{cost['n']:,} records, no-op handler, concurrency {CONCURRENCY}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sources",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--n", type=int, help="records per event (default 100,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 9)")
    parser.add_argument("--only", metavar="PREFIX",
                        help="only the sources whose name starts with PREFIX")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also run the asyncbatch of TREE (a checkout, e.g. of main), "
                             "paired in the same rounds")
    parser.add_argument("--coldstart-reps", type=int, help="cold-start pairs (default 15)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sources.md",
                        help="the markdown file to write (the plot goes beside it)")
    args = parser.parse_args(argv)
    n, rounds, reps = (300, 2, 1) if args.quick else (100_000, 9, 15)
    n = args.n or n
    rounds = args.rounds or rounds
    reps = args.coldstart_reps or reps
    cases = tuple(c for c in CASES if args.only is None or c.name.startswith(args.only))
    baseline = load_baseline(args.baseline) if args.baseline is not None else None
    cost = per_record(n, rounds, cases, baseline)
    memory = memory_per_record(n, cases)
    cold = coldstart(reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(cost, memory, cold), encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps({"cost": cost, "memory": memory, "coldstart": cold}, indent=1) + "\n",
        encoding="utf-8")
    plot(cost, args.out.with_suffix(".png"))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
