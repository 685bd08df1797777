"""The seam under the scheduler: native asyncio and anyio give the same outcomes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any, Optional

import anyio
import anyio.lowlevel
import pytest

import asyncbatch
from asyncbatch._core import backends as _backends
from asyncbatch.testing import LambdaContext, kinesis_event, sqs_event

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[None, "anyio"], ids=["native", "anyio"])
def backend(request: pytest.FixtureRequest, anyio_backend: str) -> Optional[str]:
    """What ``AsyncBatchProcessor(backend=)`` gets: on asyncio, each test runs on both
    backends; trio always uses anyio."""
    if anyio_backend == "trio" and request.param is None:
        pytest.skip("trio runs on the anyio backend")
    return request.param  # type: ignore[no-any-return]


def numbered(count: int) -> dict[str, Any]:
    return sqs_event(*({"n": i} for i in range(count)))


def n_of(record: Any) -> int:
    return int(record.json()["n"])


async def test_the_backend_is_native_on_asyncio_and_anyio_on_trio(anyio_backend: str) -> None:
    chosen = _backends.current_backend()
    if anyio_backend == "asyncio" and sys.version_info >= (3, 11):
        assert isinstance(chosen, _backends.NativeAsyncio)
    else:
        assert isinstance(chosen, _backends.AnyIO)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="no native path before 3.11 (no "
                    "asyncio.TaskGroup): asyncio runs on the anyio backend")
def test_the_native_path_imports_no_anyio_on_the_first_batch() -> None:
    code = textwrap.dedent("""
        import sys, time
        import asyncbatch
        class Context:
            def get_remaining_time_in_millis(self):
                return 60_000
        event = {"Records": [{"messageId": f"m{i}", "body": "{}", "eventSource": "aws:sqs"}
                             for i in range(200)]}
        async def handle(record):
            pass
        processor = asyncbatch.AsyncBatchProcessor(timeout=5)
        assert asyncbatch.process_partial_response(event, handle, processor, Context()) == {
            "batchItemFailures": []}
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("anyio", "pydantic", "boto3", "aioboto3"))
        print(loaded)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_outcomes_match_on_both_backends(backend: Optional[str]) -> None:
    async def handle(record: Any) -> None:
        n = n_of(record)
        if n == 1:
            raise ValueError("fails")
        if n == 2:
            raise asyncio.CancelledError() if _is_asyncio() else ValueError("fails too")
        if n == 3:
            await anyio.sleep(10)  # past its timeout
        await anyio.lowlevel.checkpoint()

    processor = asyncbatch.AsyncBatchProcessor(concurrency=4, timeout=1.0, backend=backend)
    report = await processor.process(numbered(8), handle)
    failed = {o.index: type(o.exception).__name__ for o in report.failed}
    assert failed[1] == "ValueError" and failed[3] == "RecordTimeoutError"
    assert failed[2] in ("HandlerCancelledError", "ValueError")
    assert len(report.succeeded) == 5


async def test_the_deadline_cancels_and_reports_on_both_backends(backend: Optional[str]) -> None:
    started = 0
    all_running = anyio.Event()

    async def handle(record: Any) -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_running.set()
        await anyio.sleep(30)

    processor = asyncbatch.AsyncBatchProcessor(concurrency=3, backend=backend, deadline_margin=0.3,
                                               cancel_margin=0.2)
    report = await processor.process(kinesis_event(*((f"k{i}", {"n": i}) for i in range(6))),
                                     handle, LambdaContext(remaining=0.5))
    assert [type(o.exception).__name__ for o in report.failed] == ["DeadlineExceededError"] * 3
    assert len(report.skipped) == 3


async def test_the_callers_cancellation_reaches_every_worker_on_both_backends(
        backend: Optional[str]) -> None:
    running = 0
    cancelled = 0
    ready = anyio.Event()

    async def handle(record: Any) -> None:
        nonlocal running, cancelled
        running += 1
        if running == 4:
            ready.set()
        try:
            await anyio.sleep(3600)
        except BaseException:
            cancelled += 1
            raise

    processor = asyncbatch.AsyncBatchProcessor(concurrency=4, backend=backend)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(processor.process, numbered(10), handle)
            await ready.wait()
            scope.cancel()
    assert cancelled == 4


def _is_asyncio() -> bool:
    import sniffio

    return sniffio.current_async_library() == "asyncio"


async def test_the_backend_is_a_parameter(anyio_backend: str) -> None:
    """``backend="anyio"`` runs anyio on asyncio too; ``"asyncio"`` refuses trio (and
    Python 3.10) with a ConfigurationError; anything else is refused when made."""
    assert isinstance(_backends.current_backend("anyio"), _backends.AnyIO)
    if anyio_backend == "trio" or sys.version_info < (3, 11):
        with pytest.raises(asyncbatch.ConfigurationError, match="backend='asyncio'"):
            await asyncbatch.AsyncBatchProcessor(backend="asyncio").process(
                numbered(2), n_of)
    else:
        processor = asyncbatch.AsyncBatchProcessor(backend="asyncio")
        assert processor.backend == "asyncio"
        assert isinstance(_backends.current_backend("asyncio"), _backends.NativeAsyncio)
    with pytest.raises(asyncbatch.ConfigurationError, match="backend='trio'"):
        asyncbatch.AsyncBatchProcessor(backend="trio")
