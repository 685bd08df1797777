"""Sync (boto3-style) record handlers: sequential, as Powertools runs them, against the
same handler on asyncbatch's worker threads.

    python -m benchmarks.sync_handlers [--quick]

A latency-bound sync handler: each record makes one blocking call that takes ``L``
seconds (``time.sleep(L)``: like a boto3 request, it blocks the thread and releases the
GIL; DynamoDB from Lambda is ~5-10 ms, here L = 10 ms). 200 SQS records. And a no-op
sync handler (L = 0) for the per-record cost of the thread hop. Every contender runs in
a fresh interpreter, several times; the table gives medians and the speed-up over
Powertools' ``BatchProcessor`` measured in the same run.

Contenders:

- ``powertools``: ``aws_lambda_powertools...BatchProcessor``, sequential;
- ``asyncbatch.powertools``: the drop-in, default (sequential, on the calling thread);
- ``asyncbatch.powertools c=N``: the drop-in with ``concurrency=N`` (worker threads);
- ``asyncbatch c=N``: ``asyncbatch.AsyncBatchProcessor(concurrency=N)`` with the same
  plain ``def`` handler (worker threads).

Writes ``benchmarks/results/sync_handlers.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

RESULTS = Path(__file__).resolve().parent / "results"

CONTENDERS = ["powertools", "asyncbatch.powertools", "asyncbatch.powertools c=16",
              "asyncbatch c=16", "asyncbatch c=64"]


def _event(n: int) -> dict[str, Any]:
    from asyncbatch.testing import sqs_event

    return sqs_event(*(json.dumps({"n": i}) for i in range(n)))


def _handler(latency: float) -> Callable[[Any], None]:
    def record_handler(record: Any) -> None:
        if latency:
            time.sleep(latency)  # a blocking call (boto3-like): holds the thread, not the GIL

    return record_handler


def measure(contender: str, n: int, latency: float) -> float:
    """Seconds to process the batch (the event built before the clock starts)."""
    event = _event(n)
    handler = _handler(latency)
    concurrency = int(contender.split("c=")[1]) if "c=" in contender else None
    if contender == "powertools":
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        processor: Any = BatchProcessor(EventType.SQS)
        started = time.perf_counter()
        process_partial_response(event, handler, processor)
    elif contender.startswith("asyncbatch.powertools"):
        from asyncbatch.powertools import BatchProcessor as Drop
        from asyncbatch.powertools import EventType as Kind
        from asyncbatch.powertools import process_partial_response as drop_in

        processor = Drop(Kind.SQS, concurrency=concurrency, log_summary=False)
        drop_in(event, handler, processor)  # warm-up: the loop and the threads
        started = time.perf_counter()
        drop_in(event, handler, processor)
    else:
        import asyncbatch

        processor = asyncbatch.AsyncBatchProcessor(concurrency=concurrency or 32,
                                                   log_summary=False)
        asyncbatch.process_partial_response(event, handler, processor)  # warm-up
        started = time.perf_counter()
        asyncbatch.process_partial_response(event, handler, processor)
    return time.perf_counter() - started


def _fresh(contender: str, n: int, latency: float) -> float:
    code = ("import sys, json; from benchmarks.sync_handlers import measure; "
            "print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))")
    out = subprocess.run([sys.executable, "-c", code, contender, str(n), str(latency)],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sync_handlers.md")
    args = parser.parse_args(argv)
    n, latency, reps = (20, 0.001, 1) if args.quick else (200, 0.010, 3)
    scenarios = [(f"{n} records, {latency * 1000:g} ms blocking call", n, latency),
                 (f"{n * 10} records, no-op", n * 10, 0.0)]
    lines = [
        "# Sync record handlers: sequential vs worker threads",
        "",
        f"`python -m benchmarks.sync_handlers{' --quick' if args.quick else ''}` on "
        f"{platform.machine()}, Python {platform.python_version()}; a fresh interpreter "
        f"per run, median of {reps}. Latency model: `time.sleep(L)` in the handler (a "
        "blocking call, like boto3's). Speed-up: Powertools' time / the contender's.",
        "",
    ]
    for title, count, lat in scenarios:
        lines += [f"## {title}", "", "| contender | seconds | per record | speed-up |",
                  "|---|---:|---:|---:|"]
        medians: dict[str, float] = {}
        for contender in CONTENDERS:
            medians[contender] = statistics.median(
                _fresh(contender, count, lat) for _ in range(reps))
        base = medians["powertools"]
        for contender, seconds in medians.items():
            lines.append(f"| {contender} | {seconds:.3f} | {seconds / count * 1e6:.0f} µs | "
                         f"{base / seconds:.1f}x |")
        lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
