"""``KeyboardInterrupt`` and ``SystemExit`` raised by a handler, one seeded case at a time.

On trio a case runs in virtual time, through ``process()``. On asyncio it runs through
``process_partial_response`` (its own loop, which the engine must clean up). The asyncio
cases run in a child process (``python -m tests.fuzz.fatal <seeds>``, one JSON line per
case): a ``KeyboardInterrupt`` raised inside an asyncio task leaves CPython 3.11 in a
state where pytest's assertion rewriting later fails with "AST constructor recursion
depth mismatch", whatever the engine does.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import anyio

import asyncbatch
from asyncbatch.testing import kinesis_event, sqs_event

from . import vtime

__all__ = ["backend_of", "case"]


def backend_of(seed: int) -> str:
    return ("trio", "asyncio")[seed % 2]


def case(seed: int) -> dict[str, Any]:
    """Run case ``seed``; say what propagated and what was still running then."""
    rng = random.Random(seed)
    backend = backend_of(seed)
    fatal: BaseException = rng.choice((KeyboardInterrupt, SystemExit))("fuzz")
    n = rng.randint(2, 12)
    culprit = rng.randrange(n)
    source = rng.choice(("sqs", "fifo", "kinesis"))
    if source == "kinesis":
        event = kinesis_event(*((rng.choice("ab"), {"n": i}) for i in range(n)))
    else:
        event = sqs_event(*({"n": i} for i in range(n)),
                          fifo_group=[rng.choice("ab") for _ in range(n)]
                          if source == "fifo" else None)
    # trio runs in virtual time, asyncio in real time: there a "hang" is short, or a
    # record waiting behind one would delay the culprit for real
    hang = 3600.0 if backend == "trio" else 0.05
    latency = [rng.choice((0.0, 0.001, 0.01, hang)) for _ in range(n)]
    latency[culprit] = rng.choice((0.0, 0.001, 0.01))
    running = {"now": 0}

    async def handle(record: Any) -> None:
        index = record.json()["n"]
        running["now"] += 1
        try:
            await anyio.sleep(latency[index])
            if index == culprit:
                raise fatal
        finally:
            running["now"] -= 1

    processor = asyncbatch.AsyncBatchProcessor(concurrency=rng.randint(1, 6),
                                               log_summary=False)
    caught: BaseException | None = None
    try:
        if backend == "trio":
            async def main() -> None:
                await processor.process(event, handle)

            vtime.run_on("trio", main, seed=seed)
        else:
            asyncbatch.process_partial_response(event, handle, processor)
    except BaseException as exc:
        caught = exc
    return {"seed": seed, "backend": backend, "fatal": type(fatal).__name__,
            "caught": type(caught).__name__, "same": caught is fatal,
            "running": running["now"]}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(case(int(arg))), flush=True)
