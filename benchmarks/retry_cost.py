"""What in-process retries cost: a dependency that throttles 10% of calls.

    python -m benchmarks.retry_cost [--quick]

10,000 SQS records, concurrency 100, each handler awaits a dependency call with a 5 ms
latency model (``asyncio.sleep``); a seeded 10% of calls raise a throttling error
(``ProvisionedThroughputExceededException``-shaped, recognised by ``is_transient``).
Contenders, each in the same process, alternating, several repetitions, medians:

- no throttling (the baseline makespan),
- 10% throttled with ``Retry(attempts=8, base=0.01, cap=0.2)``: failures should be 0,
- 10% throttled without retries: those records go back to Lambda for redelivery.

Writes ``benchmarks/results/retry_cost.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import asyncbatch

RESULTS = Path(__file__).resolve().parent / "results"


class Throttled(Exception):
    """Shaped like botocore's ClientError for a throttled request."""

    def __init__(self) -> None:
        super().__init__("ProvisionedThroughputExceededException")
        self.response = {"Error": {"Code": "ProvisionedThroughputExceededException"},
                         "ResponseMetadata": {"HTTPStatusCode": 400}}


def event(n: int) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "body": "{}", "eventSource": "aws:sqs",
                         "attributes": {}} for i in range(n)]}


async def run(n: int, concurrency: int, latency: float, throttle: float,
              retry: Optional[asyncbatch.Retry], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    calls = 0

    async def handle(record: Any) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(latency)
        if rng.random() < throttle:
            raise Throttled()

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=concurrency, retry=retry, log_summary=False)
    batch = event(n)
    started = time.perf_counter()
    report = await processor.process(batch, handle)
    elapsed = time.perf_counter() - started
    return {"makespan": elapsed, "failed": float(report.counts["failed"]),
            "calls": float(calls)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS / "retry_cost.md")
    args = parser.parse_args(argv)
    n, reps = (500, 1) if args.quick else (10_000, 5)
    concurrency, latency = 100, 0.005
    retry = asyncbatch.Retry(attempts=8, base=0.01, cap=0.2, seed=1)
    contenders = {
        "no throttling": (0.0, None),
        "10% throttled, Retry(attempts=8)": (0.10, retry),
        "10% throttled, no retry": (0.10, None),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for rep in range(reps):
        for name, (throttle, policy) in contenders.items():
            results[name].append(asyncio.run(run(n, concurrency, latency, throttle, policy,
                                                 seed=rep)))
    base = statistics.median(r["makespan"] for r in results["no throttling"])
    ideal = n * latency / concurrency
    lines = [
        "# Retry cost: a dependency that throttles 10% of calls",
        "",
        f"{n:,} SQS records, concurrency {concurrency}, {latency * 1000:g} ms dependency "
        f"latency (asyncio.sleep model), {reps} repetitions in one process, medians. "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Ideal makespan N*L/C = "
        f"{ideal:.3f} s.",
        "",
        "| contender | makespan s | vs no throttling | handler calls | failed records |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        makespan = statistics.median(r["makespan"] for r in runs)
        lines.append(
            f"| {name} | {makespan:.3f} | {makespan / base:.2f}x | "
            f"{statistics.median(r['calls'] for r in runs):,.0f} | "
            f"{statistics.median(r['failed'] for r in runs):,.0f} |")
    lines += [
        "",
        "Retried records hold their worker while they back off (full jitter, 10 ms base), "
        "so the cost is the extra calls plus the waits, spread over the pool. Without "
        "retries the throttled records are reported in batchItemFailures and cost a "
        "redelivery: a new invocation after the queue's visibility timeout.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
