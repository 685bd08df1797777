"""This thread's event loop, kept across warm Lambda invocations, and ``run_blocking``,
which every synchronous entry point runs its batch through."""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from .._errors import ConfigurationError
from .backends import running_library

if TYPE_CHECKING:
    import asyncio

__all__ = ["run_blocking", "thread_loop"]

T = TypeVar("T")

_loops = threading.local()


class _ThreadLoop:
    """This thread's event loop, kept across warm invocations and closed with the thread
    (or at exit), so that no ``unclosed event loop`` warning is left behind."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __del__(self) -> None:
        _close_loop(self.loop)


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, created once and reused across warm invocations."""
    import asyncio

    holder: Optional[_ThreadLoop] = getattr(_loops, "holder", None)
    if holder is None or holder.loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.holder = _ThreadLoop(loop)
        if threading.current_thread() is threading.main_thread():
            import atexit

            atexit.register(_close_loop, loop)
        return loop
    return holder.loop


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel whatever is left on ``loop``, let it finish, and close the loop."""
    if loop.is_closed() or loop.is_running():
        return
    import asyncio

    from .backends import closing

    closing(loop)
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except BaseException:  # closing must not raise over the real error
        pass
    finally:
        loop.close()


def _discard_loop() -> None:
    """After ``KeyboardInterrupt``/``SystemExit`` escaped the loop, tasks of the batch are
    still on it: cancel them and close the loop, so a warm invocation starts clean."""
    holder: Optional[_ThreadLoop] = getattr(_loops, "holder", None)
    if holder is not None:
        _loops.holder = None
        _close_loop(holder.loop)


def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]], entry: str,
                 fix: str) -> T:
    """Run ``factory()`` to completion from synchronous code, on this thread's event loop
    (kept across warm invocations): the one way every sync entry point
    (``process_partial_response``, the Powertools drop-in, the S3 importer's
    ``lambda_handler``) runs a batch.

    Inside a running event loop it refuses (``ConfigurationError`` naming ``entry`` and
    ``fix``): blocking that loop for a whole batch would freeze every other task on it,
    and a helper thread with a loop of its own would run the handlers away from the
    caller's loop-bound clients and context, or deadlock on them. After a
    ``KeyboardInterrupt`` or ``SystemExit`` the loop may still hold the batch's tasks: it
    is discarded, so the next (warm) invocation starts clean."""
    if running_library() is not None:
        raise ConfigurationError(
            f"{entry} was called inside a running event loop; {fix}; or, to keep a sync "
            "Lambda handler, run it in a worker thread: "
            "'await asyncio.to_thread(lambda_handler, event, context)'")
    loop = thread_loop()
    try:
        return loop.run_until_complete(factory())
    except (KeyboardInterrupt, SystemExit):
        _discard_loop()
        raise
