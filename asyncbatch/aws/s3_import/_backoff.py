"""Retries on the core's policy (``asyncbatch.Retry``) and deadline (``Deadline``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, TypeVar

import anyio

from ._errors import ImportDeadlineError

if TYPE_CHECKING:
    from ..._core.deadline import Deadline
    from ..._core.retry import Retry

__all__ = ["Backoff"]

T = TypeVar("T")


class Backoff:
    """When to retry: ``retry`` says whether and how long to wait; no wait may end at or
    past ``limit`` (an ``anyio.current_time()`` value, or ``None``: no deadline). A retry
    the deadline refuses raises ``ImportDeadlineError``: the rows it carried are then
    reported as unwritten, never as rejected, whatever the timing."""

    __slots__ = ("clock", "limit", "retries", "retry")

    def __init__(self, retry: Retry, deadline: Optional[Deadline],
                 limit: Optional[float]) -> None:
        self.retry = retry
        self.limit = limit
        self.clock: Callable[[], float] = anyio.current_time if deadline is None \
            else deadline.clock
        self.retries = 0

    def wait(self, attempt: int) -> Optional[float]:
        """The wait before retry ``attempt`` (1-based), or ``None`` when the retry
        budget is spent. Raises ``ImportDeadlineError`` when the wait would pass the
        deadline."""
        if attempt >= self.retry.attempts:
            return None
        delay = self.retry.delay(attempt)
        if self.limit is not None and self.clock() + delay >= self.limit:
            raise ImportDeadlineError(
                f"the Lambda deadline is near: retry {attempt} (a wait of {delay:.3f} s) "
                "was not made")
        return delay

    async def sleep(self, attempt: int, exc: BaseException) -> None:
        """Wait before retry ``attempt`` of a call that raised ``exc``; re-raise ``exc``
        when it is not transient or the budget is spent."""
        if not self.retry.should_retry(exc, attempt):
            raise exc
        delay = self.wait(attempt)
        if delay is None:  # pragma: no cover - should_retry checked the budget
            raise exc
        self.retries += 1
        await anyio.sleep(delay)

    async def call(self, fn: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """``await fn(**kwargs)``, retried on transient errors."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn(**kwargs)
            except Exception as exc:
                await self.sleep(attempt, exc)
