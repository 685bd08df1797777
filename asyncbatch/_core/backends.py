"""The seam under the one scheduler: the few primitives it needs from an event loop.

Two backends implement it. ``NativeAsyncio`` runs on asyncio itself (3.11+: task groups,
``create_task``, loop timers, ``asyncio.timeout``) and imports nothing else: it is what a
Lambda function on asyncio pays for on a cold start. ``AnyIO`` runs everywhere else (trio,
and asyncio on Python 3.10) through anyio. The scheduler, sources, lanes, statuses and
report are written once, over this seam.

Primitives: ``spawn`` (a task group whose ``start_soon`` starts a child), ``call_at`` (a
timer), ``checkpoint`` (yield to the loop), ``cancel`` (a scope cancelling every child),
``is_cancelling`` (whether a ``CancelledError`` caught around user code is a real
cancellation), plus ``clock``, ``sleep``, ``fail_after``, ``event`` and ``lock``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

__all__ = ["BACKEND_NAMES", "AnyIO", "NativeAsyncio", "check_backend", "current_backend"]


# The seam as mypy sees it (typing only: Protocol classes cost a Lambda cold start).
if TYPE_CHECKING:
    class Spawner(Protocol):
        def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None: ...


    class TimerHandle(Protocol):
        def cancel(self) -> None: ...


    class Backend(Protocol):
        """What the scheduler asks of an event loop."""

        name: str
        cancelled: type[BaseException]
        clock: Callable[[], float]
        checkpoint: Callable[[], Awaitable[None]]
        sleep: Callable[[float], Awaitable[Any]]
        call_at: Callable[[float, Callable[[], None]], TimerHandle]

        def spawn(self) -> AbstractAsyncContextManager[Any]:
            """A task group: children started with ``start_soon``, all awaited on exit."""
            ...

        def cancel_scope(self) -> Scope: ...

        def each_turn(self, group: Any, callback: Callable[[], bool]) -> None:
            """Call ``callback`` on each turn of the loop, from the next one on, while it
            returns true (``group``: the task group it belongs to)."""
            ...

        def is_cancelling(self, scope: Optional[Scope]) -> bool:
            """Whether the current task is being cancelled for real (our ``scope``, a timeout
            of ours, or the caller); ``False`` when user code raised ``CancelledError``
            itself."""
            ...

        def fail_after(self, seconds: float) -> AbstractAsyncContextManager[Any]:
            """``async with``: ``TimeoutError`` when the block runs past ``seconds``."""
            ...

        def shielded(self, seconds: float) -> AbstractAsyncContextManager[Any]:
            """``async with``: the block runs even in a task being cancelled (clean-up after
            a cancellation), and raises ``TimeoutError`` past ``seconds``."""
            ...

        def timers(self) -> AbstractAsyncContextManager[None]:
            """``async with``, around a run: what ``call_at`` needs to run its timers (anyio:
            the task group they run in; asyncio: nothing, the loop has timers)."""
            ...

        def leak_check(self) -> Optional[Callable[[], Any]]:
            """For the current task: a function saying whether a cancel request is pending on
            it (user code that cancelled its own task and returned); ``None`` where tasks
            cannot cancel themselves (trio)."""
            ...

        def event(self) -> Any: ...

        def lock(self) -> Any: ...


    class Scope(Protocol):
        @property
        def cancel_called(self) -> bool: ...

        def __enter__(self) -> Any: ...

        def __exit__(self, *exc: Any) -> Optional[bool]: ...

        def cancel(self) -> None: ...


# -- asyncio, natively ---------------------------------------------------------------------


class _NativeGroup:
    """``asyncio.TaskGroup`` with ``start_soon``; remembers its tasks for cancellation."""

    __slots__ = ("_create", "closed", "tasks")

    def __init__(self, group: Any) -> None:
        self._create = group.create_task
        self.tasks: list[Any] = []
        self.closed = False

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self.closed:
            return
        coro = func(*args)
        try:
            self.tasks.append(self._create(coro))
        except RuntimeError:  # the group is shutting down (its host was cancelled)
            coro.close()
            self.closed = True


class _NativeScope:
    """Cancels the tasks of the groups opened inside it (the workers), not the host."""

    __slots__ = ("backend", "cancel_called", "groups")

    def __init__(self, backend: NativeAsyncio) -> None:
        self.backend = backend
        self.cancel_called = False
        self.groups: list[_NativeGroup] = []

    def __enter__(self) -> _NativeScope:
        self.backend._scopes.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.backend._scopes.remove(self)

    def cancel(self) -> None:
        self.cancel_called = True
        for group in self.groups:
            for task in group.tasks:
                task.cancel()


_NO_TIMERS: AbstractAsyncContextManager[None] = nullcontext()


class NativeAsyncio:
    """asyncio, with nothing in between (Python 3.11+)."""

    name = "asyncio"

    def __init__(self) -> None:
        import asyncio

        self._asyncio: Any = asyncio
        self.cancelled: type[BaseException] = asyncio.CancelledError
        loop = asyncio.get_running_loop()
        # the loop's clock; asyncio's own is time.monotonic() behind a Python method: the
        # C function itself gives the same times for a fraction of the cost per read
        self.clock: Callable[[], float] = time.monotonic \
            if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time else loop.time
        self.call_at: Callable[[float, Callable[[], None]], TimerHandle] = loop.call_at
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self.checkpoint: Callable[[], Awaitable[None]] = _asyncio_checkpoint
        self.host: Any = asyncio.current_task()
        self._scopes: list[_NativeScope] = []

    @asynccontextmanager
    async def spawn(self) -> AsyncIterator[Any]:
        spawner: Optional[_NativeGroup] = None
        try:
            async with self._asyncio.TaskGroup() as group:
                spawner = _NativeGroup(group)
                for scope in self._scopes:
                    scope.groups.append(spawner)
                yield spawner
        finally:
            if spawner is not None:
                spawner.closed = True

    def timers(self) -> AbstractAsyncContextManager[None]:
        return _NO_TIMERS  # the loop runs call_at's timers itself

    def cancel_scope(self) -> Scope:
        return _NativeScope(self)

    def each_turn(self, group: Any, callback: Callable[[], bool]) -> None:
        call_soon = self._asyncio.get_running_loop().call_soon

        def turn() -> None:
            if not group.closed and callback():
                call_soon(turn)

        call_soon(turn)

    def is_cancelling(self, scope: Optional[Scope]) -> bool:
        if scope is not None and scope.cancel_called:
            return True
        host = self.host
        if host is not None and host.cancelling():  # the caller's cancellation
            return True
        _forget_own_cancel(self._asyncio)
        return False

    def fail_after(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        return self._asyncio.timeout(seconds)  # type: ignore[no-any-return]

    def shielded(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        # A task that caught its CancelledError may await again; only a new request
        # (none comes: the group has cancelled its children already) would interrupt.
        return self._asyncio.timeout(seconds)  # type: ignore[no-any-return]

    def leak_check(self) -> Optional[Callable[[], Any]]:
        task = self._asyncio.current_task()
        return None if task is None else task.cancelling

    def event(self) -> Any:
        return self._asyncio.Event()

    def lock(self) -> Any:
        return self._asyncio.Lock()


async def _asyncio_checkpoint() -> None:
    import asyncio

    await asyncio.sleep(0)


class _Async:
    """A sync context manager (anyio's ``fail_after``) spelled ``async with``."""

    __slots__ = ("_cm",)

    def __init__(self, cm: AbstractContextManager[Any]) -> None:
        self._cm = cm

    async def __aenter__(self) -> Any:
        return self._cm.__enter__()

    async def __aexit__(self, *exc: Any) -> Optional[bool]:
        return self._cm.__exit__(*exc)


def _forget_own_cancel(asyncio: Any) -> None:
    """A handler that cancelled its own task left a cancel request on it; once its
    ``CancelledError`` is handled as that record's failure, take the request back so that
    it does not cancel the worker later."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()


# -- anyio: trio, and asyncio on 3.10 ------------------------------------------------------


class _AnyioTimer:
    __slots__ = ("scope",)

    def __init__(self, scope: Any) -> None:
        self.scope = scope

    def cancel(self) -> None:
        self.scope.cancel()


class AnyIO:
    """Any loop anyio runs on. Timers are tasks in a group the backend keeps for the
    batch (opened by ``timers()``)."""

    name = "anyio"

    def __init__(self) -> None:
        import anyio
        import anyio.lowlevel

        self._anyio: Any = anyio
        self.cancelled: type[BaseException] = anyio.get_cancelled_exc_class()
        self.clock: Callable[[], float] = anyio.current_time
        self.checkpoint: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint
        self.sleep: Callable[[float], Awaitable[Any]] = anyio.sleep
        self.call_at: Callable[[float, Callable[[], None]], TimerHandle] = self._call_at
        self._timers: Any = None

    @asynccontextmanager
    async def spawn(self) -> AsyncIterator[Any]:
        async with self._anyio.create_task_group() as group:
            yield group

    @asynccontextmanager
    async def timers(self) -> AsyncIterator[None]:
        """The group that runs this backend's timers, for the duration of a batch."""
        async with self._anyio.create_task_group() as group:
            self._timers = group
            try:
                yield
            finally:
                self._timers = None
                group.cancel_scope.cancel()

    def cancel_scope(self) -> Scope:
        return self._anyio.CancelScope()  # type: ignore[no-any-return]

    def each_turn(self, group: Any, callback: Callable[[], bool]) -> None:
        checkpoint = self.checkpoint

        async def turns() -> None:
            await checkpoint()
            while callback():
                await checkpoint()

        group.start_soon(turns)

    def is_cancelling(self, scope: Optional[Scope]) -> bool:
        if self._anyio.current_effective_deadline() == -math.inf:
            return True
        if running_library() == "asyncio":
            import asyncio

            if _closing and asyncio.get_running_loop() in _closing:
                return True  # the loop's tasks are all cancelled as it closes
            if sys.version_info >= (3, 11):
                _forget_own_cancel(asyncio)
        return False

    def fail_after(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        return _Async(self._anyio.fail_after(seconds))

    def shielded(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        return _Async(self._anyio.fail_after(seconds, shield=True))

    def leak_check(self) -> Optional[Callable[[], Any]]:
        if running_library() != "asyncio":
            return None  # trio: a task cannot cancel itself
        import asyncio

        task = asyncio.current_task()
        if task is None:
            return None
        if sys.version_info >= (3, 11):
            return task.cancelling  # type: ignore[no-any-return]
        return lambda: getattr(task, "_must_cancel", False)

    def _call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        assert self._timers is not None, "call_at needs the timers() group"
        scope = self._anyio.CancelScope()
        anyio = self._anyio

        async def timer() -> None:
            with scope:
                await anyio.sleep_until(when)
                callback()

        self._timers.start_soon(timer)
        return _AnyioTimer(scope)

    def event(self) -> Any:
        return self._anyio.Event()

    def lock(self) -> Any:
        return self._anyio.Lock()


# Event loops being closed with their tasks cancelled (after a KeyboardInterrupt escaped
# them): on Python 3.10 a task cannot tell who cancelled it, so the anyio backend asks here.
_closing: Any = None


def closing(loop: Any) -> None:
    """Say that ``loop``'s tasks are being cancelled for good: every ``CancelledError`` on
    it is a real cancellation from now on."""
    global _closing
    if _closing is None:
        import weakref

        _closing = weakref.WeakSet()
    _closing.add(loop)


#: What ``AsyncBatchProcessor(backend=...)`` takes: ``None`` (native asyncio where it can
#: run, 3.11+, else anyio), ``"asyncio"`` (native asyncio: Python 3.11+, an asyncio loop)
#: or ``"anyio"`` (anyio, on asyncio or trio).
BACKEND_NAMES = (None, "asyncio", "anyio")


def check_backend(name: Any) -> Optional[str]:
    """``name`` if it is one of ``BACKEND_NAMES`` and can run on this Python, else a
    ``ConfigurationError`` saying what to give."""
    from .._errors import ConfigurationError

    if name not in BACKEND_NAMES:
        raise ConfigurationError(
            f"backend={name!r}: give None (native asyncio where it can run, else anyio), "
            "'asyncio' or 'anyio'")
    if name == "asyncio" and sys.version_info < (3, 11):
        raise ConfigurationError(
            "backend='asyncio' needs Python 3.11+ (asyncio.TaskGroup); give None or 'anyio'")
    return name  # type: ignore[no-any-return]


def current_backend(name: Optional[str] = None) -> Backend:
    """The backend for the running loop: ``name`` when given (``"asyncio"``, ``"anyio"``);
    by default native on asyncio (3.11+), anyio otherwise."""
    if name == "anyio":
        return AnyIO()
    library = running_library()
    if name == "asyncio":
        if library != "asyncio":
            from .._errors import ConfigurationError

            raise ConfigurationError(
                f"backend='asyncio' runs on asyncio, and this is {library or 'no event loop'}: "
                "give None or 'anyio'")
        return NativeAsyncio()
    if sys.version_info >= (3, 11) and library == "asyncio":
        return NativeAsyncio()
    return AnyIO()


def running_library() -> Optional[str]:
    """``"trio"`` or ``"asyncio"`` when that loop runs in this thread, else ``None``;
    without importing sniffio (a module not yet imported cannot be running)."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return "trio"
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return "asyncio"
    return None
