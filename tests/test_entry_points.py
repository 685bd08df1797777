"""The sync entry points: ``asyncbatch.process_partial_response`` and the Powertools
drop-in's ``process()`` (and its ``process_partial_response``) behave alike.

- ``sys.exit()`` in a handler propagates unwrapped and quietly: no "Task exception was
  never retrieved", no traceback printed, no hang at interpreter exit.
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
