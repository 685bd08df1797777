"""One Lambda cold start in a fresh interpreter: ``python benchmarks/_coldstart.py '<json>'``.

What Lambda bills on a cold start, after the runtime itself is up: importing the handler's
module (the library), then answering the first batch. This script starts with only what
the Python runtime has already imported (``json``, ``os``, ``sys``, ``time``), reads the
event from a JSON file (the runtime's ``json.loads`` of the invocation), makes a
Lambda-like context, and only then starts the clocks:

- ``floor``: ``import asyncio`` and ``asyncio.run`` of a bare pool of ``concurrency``
  tasks awaiting a no-op handler over the raw record dicts: the least any asyncio
  handler pays.
- ``asyncbatch``: ``import asyncbatch``; ``asyncbatch.process_partial_response`` with an
  ``AsyncBatchProcessor(concurrency=...)`` and an async no-op handler.
- ``powertools``: Powertools' ``BatchProcessor`` and its ``process_partial_response``
  with a sync no-op handler (its documented usage).
- ``powertools_async``: Powertools' ``AsyncBatchProcessor`` and
  ``async_process_partial_response``.

Deliberately imports nothing of ``benchmarks`` or ``asyncbatch`` before the clock. Prints
one line ``@@RESULT <json>``: the import's and the first call's wall and CPU seconds, the
number of failed records, and whether the library ran from ``.pyc`` files.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

CONTENDERS = ("floor", "asyncbatch", "powertools", "powertools_async")


class LambdaContext:
    """As ``awslambdaric``'s context: the remaining time counts down from an epoch
    deadline in milliseconds, read from ``time.time()``."""

    def __init__(self, remaining_s: float) -> None:
        self.function_name = "coldstart"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = "1024"
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:coldstart"
        self._deadline_ms = int(time.time() * 1000) + int(remaining_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        delta = self._deadline_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0


def _import(contender: str) -> Any:
    """The handler module's imports: what Lambda's init phase runs."""
    if contender == "floor":
        import asyncio

        return asyncio
    if contender == "asyncbatch":
        import asyncbatch

        return asyncbatch
    from aws_lambda_powertools.utilities import batch

    return batch


def _first_call(contender: str, lib: Any, event: dict[str, Any], context: Any,
                concurrency: int) -> dict[str, Any]:
    """The first invocation: the event to the partial response."""
    if contender == "floor":
        async def handler(record: Any) -> None:
            pass

        async def main() -> None:
            records = iter(event["Records"])

            async def worker() -> None:
                for record in records:
                    await handler(record)

            workers = min(concurrency, len(event["Records"]))
            if sys.version_info < (3, 11):  # no TaskGroup; the no-op handler never fails
                await lib.gather(*(worker() for _ in range(workers)))
                return
            async with lib.TaskGroup() as tg:
                for _ in range(workers):
                    tg.create_task(worker())

        lib.run(main())
        return {"batchItemFailures": []}
    if contender == "asyncbatch":
        async def ab_handler(record: Any) -> None:
            pass

        processor = lib.AsyncBatchProcessor(concurrency=concurrency)
        return lib.process_partial_response(event, ab_handler, processor, context)  # type: ignore[no-any-return]
    if contender == "powertools":
        def pt_handler(record: Any) -> None:
            pass

        pt = lib.BatchProcessor(event_type=lib.EventType.SQS)
        return lib.process_partial_response(  # type: ignore[no-any-return]
            event=event, record_handler=pt_handler, processor=pt, context=context)
    if contender == "powertools_async":
        async def pta_handler(record: Any) -> None:
            pass

        pta = lib.AsyncBatchProcessor(event_type=lib.EventType.SQS)
        return lib.async_process_partial_response(  # type: ignore[no-any-return]
            event=event, record_handler=pta_handler, processor=pta, context=context)
    raise ValueError(f"unknown contender {contender!r}")


def _ran_from_pyc(contender: str) -> bool:
    """Whether the library's package ``__init__`` has its ``.pyc`` next to it (the import
    did not compile it)."""
    name = {"floor": "asyncio", "asyncbatch": "asyncbatch"}.get(
        contender, "aws_lambda_powertools.utilities.batch")
    module = sys.modules.get(name)
    cached = getattr(module, "__cached__", None)
    return isinstance(cached, str) and os.path.exists(cached)


def main(argv: list[str]) -> int:
    args = json.loads(argv[1])
    contender = args["contender"]
    with open(args["event"], encoding="utf-8") as f:
        event = json.load(f)
    context = LambdaContext(args.get("remaining", 900.0))
    modules_before = len(sys.modules)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    lib = _import(contender)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    response = _first_call(contender, lib, event, context, args.get("concurrency", 100))
    wall2, cpu2 = time.perf_counter(), time.process_time()
    result = {
        "import_wall": wall1 - wall0, "import_cpu": cpu1 - cpu0,
        "first_wall": wall2 - wall1, "first_cpu": cpu2 - cpu1,
        "wall": wall2 - wall0, "cpu": cpu2 - cpu0,
        "failures": len(response["batchItemFailures"]),
        "records": len(event["Records"]),
        "pyc": _ran_from_pyc(contender),
        "dont_write_bytecode": sys.dont_write_bytecode,
        "modules_loaded": len(sys.modules) - modules_before,
        "anyio_imported": "anyio" in sys.modules,
    }
    sys.stdout.write("@@RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
