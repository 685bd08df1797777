"""The worker pool under the scheduler: at most ``concurrency`` workers pull items from one
shared feed (a list, an iterator or an async iterator) and await ``work(item)`` for each; no
task per item, nothing gathered. The crew starts with one worker and grows on demand.
``BatchRun`` (``run.py``) and the S3 import run on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from .backends import current_backend

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["YIELD_EVERY", "Crew", "StopFlag", "fatal_in", "pool", "run_workers"]

T = TypeVar("T")

# A worker whose items never suspend would starve the event loop (timers, other workers);
# it yields once every this many items.
YIELD_EVERY = 128


class StopFlag:
    """Set once to make every worker stop taking new items."""

    __slots__ = ("is_set",)

    def __init__(self) -> None:
        self.is_set = False


async def pool(
    feed: Union[Iterable[T], AsyncIterable[T]],
    work: Callable[[T], Awaitable[Any]],
    concurrency: int,
    *,
    stop: Optional[StopFlag] = None,
    size: Optional[int] = None,
    backend: Optional[Backend] = None,
) -> None:
    """Await ``work(item)`` for every item of ``feed``, at most ``concurrency`` at once.

    Items are taken in feed order. When ``stop`` is set, workers finish the item they
    hold and take no more. ``size``, when known, caps the workers at the item count.
    An exception escaping ``work`` cancels the others and propagates (as an
    ``ExceptionGroup``); ``work`` is expected to handle its own failures.
    """
    if backend is None:
        backend = current_backend()
    flag = stop if stop is not None else StopFlag()
    workers = concurrency if size is None else min(concurrency, size)

    if isinstance(feed, AsyncIterable):
        source: AsyncIterator[T] = feed.__aiter__()
        lock = backend.lock()

        async def async_worker(crew: Crew) -> None:
            while not flag.is_set:
                async with lock:
                    if flag.is_set:
                        return
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        return
                crew.enter()
                await work(item)
                crew.busy -= 1

        body: Callable[[Crew], Coroutine[Any, Any, None]] = async_worker
    else:
        iterator = iter(feed)
        checkpoint = backend.checkpoint

        async def worker(crew: Crew) -> None:
            for done, item in enumerate(iterator, 1):
                if flag.is_set:
                    return
                crew.enter()
                await work(item)
                crew.busy -= 1
                if not done % YIELD_EVERY:
                    await checkpoint()

        body = worker

    await run_workers(body, workers, backend)


class Crew:
    """The workers of one pool, started on demand up to ``limit``.

    Two ways to grow, both doubling so that an I/O-bound load reaches the bound within
    log2(limit) turns of the event loop, at the same clock time, while a load whose
    items never suspend runs on one or two workers instead of paying for ``limit`` task
    spawns:

    - ``waiting`` given (the batch workers): from a loop callback, each turn of the loop
      while ``waiting()`` says ready work has no worker. The loop only turns when workers
      suspend (or yield every ``YIELD_EVERY`` items), so nothing is counted per item.
    - otherwise (any feed): a worker about to await an item calls ``enter()``; when every
      started worker is busy in an item (so, suspended there), the crew doubles."""

    __slots__ = ("_group", "body", "busy", "closed", "limit", "started", "waiting")

    def __init__(self, body: Callable[[Crew], Coroutine[Any, Any, None]], limit: int,
                 waiting: Optional[Callable[[], bool]] = None) -> None:
        self.body = body
        self.limit = limit
        self.started = 1
        self.busy = 0
        self.closed = False
        self.waiting = waiting
        self._group: Any = None

    def enter(self) -> None:
        self.busy += 1
        if self.busy == self.started < self.limit:
            self.grow()

    def grow(self) -> None:
        """Double the crew (up to the limit)."""
        more = min(self.started, self.limit - self.started)
        self.started += more
        for _ in range(more):
            self._group.start_soon(self.body, self)

    def turn(self) -> bool:
        """One turn of the loop: grow if ready work is waiting; whether to be called
        again on the next turn."""
        if self.closed or self.started >= self.limit:
            return False
        assert self.waiting is not None
        if not self.waiting():
            return False  # ready work never comes back: a finished item takes its own next
        self.grow()
        return self.started < self.limit


async def run_workers(body: Callable[[Crew], Coroutine[Any, Any, None]], limit: int,
                      backend: Optional[Backend] = None, *,
                      waiting: Optional[Callable[[], bool]] = None) -> None:
    """Run ``body`` as a crew of up to ``limit`` workers sharing whatever feed it closes
    over, and wait for all of them: this is the whole of the concurrency. Every worker is
    a child task, never the caller's: a cancellation of the caller then reaches the workers
    through the task group's cancelled scope, which is how they tell it apart from a
    ``CancelledError`` that user code raised itself.

    ``waiting``: the crew grows from a loop callback while it returns true (see ``Crew``);
    without it, workers call ``crew.enter()`` per item.

    A ``KeyboardInterrupt`` or ``SystemExit`` from a worker is raised here, in the caller's
    task, once every worker ended (see ``_Fatal``)."""
    if limit <= 0:
        return
    if backend is None:
        backend = current_backend()
    crew = Crew(_carrying_fatal(body), limit, waiting)
    fatal: Optional[BaseException] = None
    try:
        async with backend.spawn() as group:
            crew._group = group
            group.start_soon(crew.body, crew)
            if waiting is not None and limit > 1:
                backend.each_turn(group, crew.turn)
    except BaseException as exc:
        fatal = fatal_in(exc)
        if fatal is None:
            raise
    finally:
        crew.closed = True
    if fatal is not None:
        raise fatal  # outside the except: not chained to the task group's error


class _Fatal(Exception):
    """A ``KeyboardInterrupt`` or ``SystemExit`` raised in a worker, carried out as an
    ordinary exception: the task group cancels the other workers and raises it in the
    caller's task, where ``run_workers`` raises the original. Raised as it is, asyncio
    lets it escape the event loop from the worker's own task, leaving the batch's tasks
    on the loop and the caller's task to end later with an exception nobody retrieves
    ("Task exception was never retrieved")."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(type(exc).__name__)
        self.exc = exc


def _carrying_fatal(
    body: Callable[[Crew], Coroutine[Any, Any, None]]
) -> Callable[[Crew], Coroutine[Any, Any, None]]:
    async def guarded(crew: Crew) -> None:
        try:
            await body(crew)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise _Fatal(exc) from None

    return guarded


def fatal_in(exc: BaseException) -> Optional[BaseException]:
    """The ``KeyboardInterrupt`` or ``SystemExit`` inside an exception (group), if any:
    raised as it is, or carried out of a worker by the pool."""
    if isinstance(exc, _Fatal):
        return exc.exc
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = fatal_in(inner)
        if found is not None:
            return found
    return None
