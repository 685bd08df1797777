"""Adaptive concurrency: limits that learn from latency and throttling, in the spirit of
Netflix's concurrency-limits (AIMD and Gradient2).

A limit only says how many handler calls may be in flight; the hard bound stays the
processor's worker count (``max``), and per-key order is the lanes' business, so no limit
can break either. Each handler call is a sample: its round-trip time, how many calls
were in flight, and whether it was dropped (throttled or timed out).

A limit object keeps what it learned across ``process()`` calls (warm Lambda
invocations). Its in-flight count is shared by every processor, ``process()`` call and
thread using it, so its ``max`` holds across all of them.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

from .._errors import ConfigurationError, describe, safe_repr

if TYPE_CHECKING:
    pass

__all__ = ["AIMDLimit", "ConcurrencyLimit", "GradientLimit", "WindowedLimit"]


@runtime_checkable
class ConcurrencyLimit(Protocol):
    """What the scheduler needs of an adaptive limit."""

    @property
    def max(self) -> int:
        """The hard bound: never more calls in flight than this."""

    @property
    def current(self) -> int:
        """How many calls may be in flight now (``1 <= current <= max``)."""

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        """One handler call ended after ``rtt`` seconds, ``inflight`` calls running (itself
        included); ``dropped``: throttled or timed out."""


def _check_bounds(name: str, initial: int, minimum: int, maximum: int) -> None:
    for label, value in (("initial", initial), ("min", minimum), ("max", maximum)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name}({label}={value!r}): give a whole number >= 1")
    if not minimum <= initial <= maximum:
        raise ConfigurationError(f"{name}: need min <= initial <= max, got "
                                 f"{minimum} <= {initial} <= {maximum}")


class AIMDLimit:
    """Additive increase, multiplicative decrease: +1 per successful call while the limit
    is in use (at least half of it in flight), times ``backoff`` on a dropped call or one
    slower than ``timeout`` seconds. Reacts to throttling directly. Per call, it
    overshoots and over-corrects; ``concurrency="auto"`` wraps it in ``WindowedLimit``."""

    __slots__ = ("_limit", "_max", "backoff", "minimum", "timeout")

    def __init__(self, initial: int = 10, *, min: int = 1, max: int = 256,
                 backoff: float = 0.9, timeout: float | None = None) -> None:
        _check_bounds("AIMDLimit", initial, min, max)
        if not 0.0 < backoff < 1.0:
            raise ConfigurationError(f"AIMDLimit(backoff={backoff!r}): give 0 < backoff < 1")
        self._limit = float(initial)
        self._max = max
        self.minimum = min
        self.backoff = backoff
        self.timeout = timeout

    @property
    def max(self) -> int:
        return self._max

    @property
    def current(self) -> int:
        return int(self._limit)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        if dropped or (self.timeout is not None and rtt > self.timeout):
            self._limit = max(float(self.minimum), self._limit * self.backoff)
        elif inflight * 2 >= self._limit:
            self._limit = min(float(self._max), self._limit + 1.0)

    def __repr__(self) -> str:
        return f"AIMDLimit(current={self.current}, max={self._max})"


class GradientLimit:
    """Latency gradient (Netflix's Gradient2): the ratio of a long-term average
    round-trip time to the recent one scales the limit, plus a queue allowance of
    ``sqrt(limit)`` to probe for more. When latency grows, the limit shrinks before the
    dependency starts throttling; a dropped call multiplies it by ``backoff``."""

    __slots__ = ("_limit", "_long", "_max", "_short", "backoff", "minimum", "smoothing",
                 "tolerance", "window")

    def __init__(self, initial: int = 10, *, min: int = 1, max: int = 256,
                 smoothing: float = 0.2, tolerance: float = 1.5, window: int = 600,
                 backoff: float = 0.9) -> None:
        _check_bounds("GradientLimit", initial, min, max)
        self._limit = float(initial)
        self._max = max
        self.minimum = min
        self.smoothing = smoothing
        self.tolerance = tolerance
        self.window = window
        self.backoff = backoff
        self._long = 0.0
        self._short = 0.0

    @property
    def max(self) -> int:
        return self._max

    @property
    def current(self) -> int:
        return int(self._limit)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        if dropped:
            self._limit = max(float(self.minimum), self._limit * self.backoff)
            return
        if self._long == 0.0:
            self._long = self._short = rtt
            return
        self._short += (rtt - self._short) * 0.3
        self._long += (rtt - self._long) * (2.0 / (self.window + 1))
        if self._long / max(self._short, 1e-9) > 2.0:  # recovering from a slow period
            self._long *= 0.95
        if inflight * 2 < self._limit:
            return  # not using the limit: no information about more
        gradient = min(1.0, max(0.5, self.tolerance * self._long / max(self._short, 1e-9)))
        target = self._limit * gradient + math.sqrt(self._limit)
        limit = self._limit * (1 - self.smoothing) + target * self.smoothing
        self._limit = min(float(self._max), max(float(self.minimum), limit))

    def __repr__(self) -> str:
        return f"GradientLimit(current={self.current}, max={self._max})"


class WindowedLimit:
    """Feeds another limit one sample per window of calls instead of one per call, as
    Netflix's ``WindowedLimit`` does: a window closes after ``min_samples`` calls and at
    least as many as were in flight (about one round trip, without reading a clock), and
    the wrapped limit then sees the window's mean round-trip time, its largest in-flight
    count, and whether any call of it was dropped. So one overload episode (a burst of
    throttles from calls sent together) cuts the limit once, not once per throttle, and
    AIMD grows by one per round trip instead of doubling.

    ``slow_start``: until the first drop every call goes straight through, so a cold
    limit doubles each round trip and reaches the capacity quickly. ``concurrency="auto"``
    is ``WindowedLimit(AIMDLimit())``."""

    __slots__ = ("_count", "_dropped", "_inflight", "_rtt", "delegate", "min_samples",
                 "slow_start")

    def __init__(self, delegate: ConcurrencyLimit, *, min_samples: int = 10,
                 slow_start: bool = True) -> None:
        if not isinstance(delegate, ConcurrencyLimit):
            raise ConfigurationError(
                f"WindowedLimit({delegate!r}): wrap a limit such as AIMDLimit()")
        self.delegate = delegate
        self.min_samples = min_samples
        self.slow_start = slow_start
        self._reset()

    def _reset(self) -> None:
        self._count = 0
        self._rtt = 0.0
        self._inflight = 0
        self._dropped = False

    @property
    def max(self) -> int:
        return self.delegate.max

    @property
    def current(self) -> int:
        return self.delegate.current

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        if self.slow_start:
            if not dropped:
                self.delegate.on_sample(rtt, inflight, dropped)
                return
            self.slow_start = False
        self._count += 1
        self._rtt += rtt
        if inflight > self._inflight:
            self._inflight = inflight
        self._dropped |= dropped
        if self._count >= max(self.min_samples, self._inflight):
            self.delegate.on_sample(self._rtt / self._count, self._inflight, self._dropped)
            self._reset()

    def __repr__(self) -> str:
        return f"WindowedLimit({self.delegate!r})"


class Gate:
    """Admits handler calls while fewer than ``limit.current`` are in flight; the others
    wait in arrival order. The in-flight count and the queue of waiters belong to the
    limit object (``_Shared``), across every ``process()`` call and every thread using it;
    a ``Gate`` is one event loop's view of them (its ``event`` factory makes that loop's
    waiters). ``Gate(limit)`` alone makes a limit of its own (tests)."""

    __slots__ = ("_event", "_shared", "limit")

    def __init__(self, limit: ConcurrencyLimit, event: Optional[Callable[[], Any]] = None,
                 shared: Optional[_Shared] = None) -> None:
        self.limit = limit
        if event is None:
            import anyio

            event = anyio.Event
        self._event = event
        self._shared = shared if shared is not None else _Shared()

    @property
    def inflight(self) -> int:
        """Calls in flight under this limit object, in every thread."""
        return self._shared.inflight

    async def acquire(self) -> None:
        shared = self._shared
        allowed = self._allowed()
        with shared.lock:  # the hot path: one uncontended lock, no allocation
            if not shared.waiters and shared.inflight < allowed:
                shared.inflight += 1
                return
        waiter = _Waiter(self._event())
        allowed = self._allowed()
        with shared.lock:
            if not shared.waiters and shared.inflight < allowed:
                shared.inflight += 1  # a slot came free meanwhile
                return
            shared.waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            with shared.lock:
                handoff = waiter.admitted
                if handoff:  # admitted, then cancelled: hand the slot on
                    waiter.admitted = False
                    shared.inflight -= 1
                elif waiter in shared.waiters:
                    shared.waiters.remove(waiter)
            if handoff:
                self._wake()
            raise

    def _allowed(self) -> int:
        """``limit.current`` clamped to ``[1, max]`` (a limit may be user code: one that
        raises or answers nonsense cannot break the bound)."""
        try:
            current = int(self.limit.current)
            top = int(self.limit.max)
        except Exception:
            return 1
        return max(1, min(current, top))

    def release(self, rtt: float, dropped: bool, *, sample: bool = True) -> None:
        """A call ended (``sample=False``: a slot handed back unused). A limit whose
        ``on_sample`` raises (it may be user code) is logged and keeps its value. Samples
        of every thread reach the limit one at a time."""
        shared = self._shared
        failure: Optional[Exception] = None
        with shared.lock:
            if sample:
                try:
                    self.limit.on_sample(rtt, shared.inflight, dropped)
                except Exception as exc:
                    failure = exc
            shared.inflight -= 1
        if failure is not None:
            import logging

            logging.getLogger("asyncbatch").warning(
                "asyncbatch: %s.on_sample raised %s; the limit keeps its value",
                safe_repr(self.limit), describe(failure))
        self._wake()

    def _wake(self) -> None:
        """Admit waiters, oldest first, while slots are free: each is counted in flight
        under the lock, then woken on its own loop. A waiter whose loop is gone (closed,
        or its run ended) cannot take the slot: it is handed on."""
        shared = self._shared
        while shared.waiters:  # read unlocked: a waiter is queued under the lock, which
            # orders it with the release before this call (it saw the slot taken)
            allowed = self._allowed()
            with shared.lock:
                if not shared.waiters or shared.inflight >= allowed:
                    return
                waiter = shared.waiters.popleft()
                shared.inflight += 1
                waiter.admitted = True
            if waiter.wake():
                continue
            with shared.lock:
                if waiter.admitted:
                    waiter.admitted = False
                    shared.inflight -= 1


class _Waiter:
    """One call waiting for a slot: the event it waits on, and how to set that event
    from any thread (its loop's thread-safe scheduling)."""

    __slots__ = ("admitted", "call_soon", "event", "thread")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.thread = threading.get_ident()
        self.call_soon = threadsafe_call_soon()
        self.admitted = False

    def wake(self) -> bool:
        """Set the event on the waiter's loop; ``False`` when that loop is gone."""
        try:
            if self.thread == threading.get_ident():
                self.event.set()
            else:
                self.call_soon(self.event.set)
        except Exception:  # RuntimeError('Event loop is closed'), trio.RunFinishedError
            return False
        return True


def threadsafe_call_soon() -> Callable[[Callable[[], Any]], Any]:
    """The running event loop's way to have a function called on it from any thread:
    asyncio's ``loop.call_soon_threadsafe``, trio's ``TrioToken.run_sync_soon``. Raises
    when that loop is gone. (What a limit shared across threads needs to wake a waiter
    of another loop: the concurrency gate here, a shared token bucket likewise.)"""
    from .backends import running_library

    if running_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class _Shared:
    """What one limit object shares across its gates, calls and threads: the calls in
    flight and the waiters, under one lock (re-entrant: a waiter's coroutine closed by
    the garbage collector while this thread holds the lock gives its slot back safely)."""

    __slots__ = ("inflight", "lock", "users", "waiters")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.inflight = 0
        self.waiters: deque[_Waiter] = deque()
        self.users = 0


# -- adaptive limits shared across process() calls and threads -----------------------------

_shared: dict[int, _Shared] = {}
_registry_lock = threading.Lock()


def acquire_gate(limit: ConcurrencyLimit,
                 event: Callable[[], Any]) -> tuple[Gate, tuple[int, int]]:
    """A gate on ``limit`` for the running loop: processors (and concurrent ``process()``
    calls, in any thread) sharing one limit object share its in-flight count, so its
    ``max`` holds across all of them."""
    with _registry_lock:
        shared = _shared.get(id(limit))
        if shared is None:
            shared = _shared[id(limit)] = _Shared()
        shared.users += 1
    return Gate(limit, event, shared), (id(limit), threading.get_ident())


def release_gate(key: tuple[int, int]) -> None:
    with _registry_lock:
        shared = _shared.get(key[0])
        if shared is not None:
            shared.users -= 1
            if shared.users <= 0:
                del _shared[key[0]]


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["AIMDLimit", "ConcurrencyLimit", "GradientLimit", "WindowedLimit"],
         home="asyncbatch")
del _publish
