"""``anyio.run`` for the commands, with Ctrl-C raising ``KeyboardInterrupt`` on every Python."""

from __future__ import annotations

import sys
from typing import Any, Callable

__all__ = ["run_interruptible"]


def run_interruptible(func: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """``anyio.run(func, *args, **options)``. On SIGINT anyio's runner cancels the main
    task, then raises ``KeyboardInterrupt`` once it has unwound; before Python 3.11 tasks
    have no ``uncancel()`` to count that cancellation, and anyio raises the task's
    ``CancelledError`` instead (the command would print a traceback and exit 1, not 130).
    Nothing else cancels a command's main task: that ``CancelledError`` is the Ctrl-C."""
    import anyio

    try:
        return anyio.run(func, *args, **options)
    except BaseException as exc:
        if sys.version_info < (3, 11):
            import asyncio

            if isinstance(exc, asyncio.CancelledError):
                raise KeyboardInterrupt from None
        raise
