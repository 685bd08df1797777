"""Calling a Lambda function as the Python runtime does."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["call_function"]


async def call_function(function: Callable[..., Any], event: Any, context: Any, *,
                        is_async: bool) -> Any:
    """``function(event, context)``: awaited when it is an ``async def`` function
    (``is_async``, from ``is_async_callable``), else run on a worker thread, so that a
    plain handler that blocks (or runs an event loop of its own, as
    ``process_partial_response`` does) never blocks the caller's loop."""
    if is_async:
        return await function(event, context)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(function, event, context)
