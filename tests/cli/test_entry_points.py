"""The sync entry points: ``asyncbatch.process_partial_response`` and the Powertools
drop-in's ``process()`` (and its ``process_partial_response``) behave alike.

- After a handler raised ``KeyboardInterrupt`` or ``SystemExit``, the thread's event
  loop is discarded: the next (warm) invocation on that thread runs only its own records
  and returns normally.
- ``sys.exit()`` in a handler propagates unwrapped and quietly: no "Task exception was
  never retrieved", no traceback printed, no hang at interpreter exit.
- Inside a running event loop both refuse, naming the fix, instead of blocking that
  loop for the whole batch (the drop-in ran the batch on a helper thread).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

import asyncbatch
from asyncbatch import ConfigurationError
from asyncbatch.testing import sqs_event

pt = pytest.importorskip("asyncbatch.powertools")


def _in_a_thread(work: Callable[[], Any], *, fatal: bool = False) -> Any:
    """``work()`` on a fresh thread (so its per-thread loop is its own); its result, or
    the exception it raised, re-raised here (a ``KeyboardInterrupt`` or ``SystemExit``
    only when ``fatal``: else it would stop the test run; it fails the test instead)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the invocations did not finish"
    error = box.get("error")
    if error is not None:
        if not fatal and not isinstance(error, Exception):
            raise AssertionError(f"{type(error).__name__} escaped the invocations") from error
        raise error
    return box.get("value")


# -- the drop-in after KeyboardInterrupt / SystemExit ---------------------------------------


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit], ids=["ctrl-c", "exit"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_drop_in_starts_clean_after_a_handler_raised_a_fatal_exception(
        fatal: type[BaseException], kind: str) -> None:
    first = sqs_event("a", "stop", "c", "d", start=0)
    second = sqs_event("x", "y", start=10)
    ran: list[str] = []

    def sync_handler(record: Any) -> str:
        ran.append(record.body)
        if record.body == "stop":
            raise fatal()
        return str(record.body)

    async def async_handler(record: Any) -> str:
        await asyncio.sleep(0)
        return sync_handler(record)

    handler = sync_handler if kind == "sync" else async_handler
    processor = pt.BatchProcessor(pt.EventType.SQS, concurrency=2 if kind == "async" else None)

    def invocations() -> tuple[Any, list[str], list[str]]:
        with pytest.raises(fatal):
            pt.process_partial_response(first, handler, processor)
        before = list(ran)
        ran.clear()
        return pt.process_partial_response(second, handler, processor), before, ran

    response, before, after = _in_a_thread(invocations)
    assert "stop" in before
    assert response == {"batchItemFailures": []}
    assert sorted(after) == ["x", "y"]  # its own records only: nothing of the first resumed


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit], ids=["ctrl-c", "exit"])
def test_the_drop_in_discards_its_loop_after_a_fatal_exception_outside_any_handler(
        fatal: type[BaseException]) -> None:
    """Ctrl-C usually lands while the loop waits, not inside a handler (here: from a loop
    callback): the batch's tasks are left on the thread's loop. That loop is discarded:
    by the time the next invocation returns, they were cancelled (their ``finally``
    ran); before, they stayed on the loop the next invocation ran on."""
    first = sqs_event("a", "stop", "c", start=0)
    second = sqs_event("x", "y", start=10)
    ran: list[str] = []
    cancelled: list[str] = []
    waits: list[asyncio.Event] = []

    def interrupt() -> None:
        raise fatal()

    async def handler(record: Any) -> str:
        ran.append(record.body)
        if record.body in ("x", "y"):
            return str(record.body)
        try:
            if record.body == "stop":
                asyncio.get_running_loop().call_soon(interrupt)
            never = asyncio.Event()  # never set: only a cancellation ends the wait
            waits.append(never)  # held here, so the waiting task is not garbage
            await never.wait()
        finally:
            cancelled.append(record.body)
        return str(record.body)

    processor = pt.AsyncBatchProcessor(pt.EventType.SQS, concurrency=2)

    def invocations() -> tuple[Any, list[str], list[str]]:
        with pytest.raises(fatal):
            pt.async_process_partial_response(first, handler, processor)
        ran.clear()
        return (pt.async_process_partial_response(second, handler, processor), list(ran),
                list(cancelled))  # as they were when it returned

    response, after, cleaned = _in_a_thread(invocations)
    assert sorted(cleaned) == ["a", "stop"]  # cancelled with the discarded loop
    assert response == {"batchItemFailures": []}
    assert sorted(after) == ["x", "y"]


# -- sys.exit() in a handler: unwrapped and quiet ----------------------------------------------

EXITING = """
import asyncio, sys
import asyncbatch
from asyncbatch.testing import sqs_event

EVENT = sqs_event(*"abcdef")


async def async_handler(record):
    if record.body == "c":
        sys.exit(3)
    await asyncio.sleep(0.01)


def sync_handler(record):
    if record.body == "c":
        sys.exit(3)


PATHS = {
    "process_partial_response": lambda: asyncbatch.process_partial_response(
        EVENT, async_handler, asyncbatch.AsyncBatchProcessor()),
    "process_partial_response-sync-handler": lambda: asyncbatch.process_partial_response(
        EVENT, sync_handler, asyncbatch.AsyncBatchProcessor()),
    "await-process": lambda: asyncio.run(
        asyncbatch.AsyncBatchProcessor().process(EVENT, async_handler)),
    "await-process-sync-handler": lambda: asyncio.run(
        asyncbatch.AsyncBatchProcessor().process(EVENT, sync_handler)),
}


def drop_in():
    from asyncbatch.powertools import BatchProcessor, EventType, process_partial_response

    return process_partial_response(EVENT, sync_handler, BatchProcessor(EventType.SQS))


def drop_in_async():
    from asyncbatch.powertools import (AsyncBatchProcessor, EventType,
                                       async_process_partial_response)

    return async_process_partial_response(EVENT, async_handler,
                                          AsyncBatchProcessor(EventType.SQS))


PATHS["drop-in"] = drop_in
PATHS["drop-in-async"] = drop_in_async
PATHS[sys.argv[1]]()
print("not reached")
"""


@pytest.mark.parametrize("path", [
    "process_partial_response", "process_partial_response-sync-handler", "await-process",
    "await-process-sync-handler", "drop-in", "drop-in-async"])
def test_sys_exit_in_a_handler_exits_quietly_with_its_code(path: str, tmp_path: Any) -> None:
    """As a script: the process exits with the handler's code, prints nothing (before:
    "Task exception was never retrieved" and a 47-line traceback), and does not hang at
    exit on the worker threads of sync handlers."""
    script = tmp_path / "exiting.py"
    script.write_text(textwrap.dedent(EXITING))
    done = subprocess.run([sys.executable, str(script), path], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "", "")


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sys_exit_propagates_unwrapped_and_nothing_is_logged(
        concurrency: int, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def handle(record: Any) -> None:
        if record.body == "c":
            sys.exit(3)
        await asyncio.sleep(0)

    def invoke() -> None:
        asyncbatch.process_partial_response(
            sqs_event(*"abcdef"), handle,
            asyncbatch.AsyncBatchProcessor(concurrency=concurrency))

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        with pytest.raises(SystemExit) as caught:
            _in_a_thread(invoke, fatal=True)
        gc.collect()  # an unretrieved task exception is reported when the task is freed
    assert caught.value.code == 3
    assert type(caught.value) is SystemExit
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
    captured = capsys.readouterr()
    assert "never retrieved" not in captured.err + captured.out


# -- inside a running event loop: both refuse, naming the fix -------------------------------


def _handler(record: Any) -> str:
    return str(record.body)


@pytest.mark.parametrize("entry", ["core", "drop-in", "drop-in-async", "drop-in-process"])
def test_sync_entry_points_refuse_a_running_event_loop_alike(entry: str) -> None:
    event = sqs_event("a", "b")
    ran: list[str] = []

    def handler(record: Any) -> str:
        ran.append(record.body)
        return str(record.body)

    def call() -> Any:
        if entry == "core":
            return asyncbatch.process_partial_response(
                event, handler, asyncbatch.AsyncBatchProcessor())
        if entry == "drop-in":
            return pt.process_partial_response(event, handler, pt.BatchProcessor(
                pt.EventType.SQS))
        if entry == "drop-in-async":
            return pt.async_process_partial_response(event, handler, pt.AsyncBatchProcessor(
                pt.EventType.SQS))
        processor = pt.BatchProcessor(pt.EventType.SQS)
        with processor(event["Records"], handler) as batch:
            return batch.process()

    async def main() -> Any:
        return call()

    with pytest.raises(ConfigurationError,
                       match=r"inside a running event loop.*asyncio\.to_thread"):
        asyncio.run(main())
    assert ran == []

    async def in_a_worker_thread() -> Any:  # the fix the message gives
        return await asyncio.to_thread(call)

    result = asyncio.run(in_a_worker_thread())
    assert sorted(ran) == ["a", "b"]
    assert result in ({"batchItemFailures": []},
                      [("success", "a", event["Records"][0]),
                       ("success", "b", event["Records"][1])])
