"""Adaptive concurrency: limits that learn from latency and throttling, in the spirit of
Netflix's concurrency-limits (AIMD and Gradient2).

A limit only says how many handler calls may be in flight; the hard bound stays the
processor's worker count (``max``), and per-key order is the lanes' business, so no limit
can break either. Each handler call is a sample: its round-trip time, how many calls
were in flight, and whether it was dropped (throttled or timed out).

A limit object keeps what it learned across ``process()`` calls (warm Lambda
invocations); the in-flight count is per call.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

from ._errors import ConfigurationError, describe, safe_repr

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
    wait in arrival order. One gate per limit object and thread, shared by every
    ``process()`` call using that limit."""

    __slots__ = ("_event", "_waiters", "inflight", "limit")

    def __init__(self, limit: ConcurrencyLimit, event: Optional[Callable[[], Any]] = None) -> None:
        self.limit = limit
        self.inflight = 0
        if event is None:
            import anyio

            event = anyio.Event
        self._event = event
        self._waiters: deque[Any] = deque()

    async def acquire(self) -> None:
        if not self._waiters and self.inflight < self._allowed():
            self.inflight += 1
            return
        event = self._event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # admitted, then cancelled: hand the slot on
                self.inflight -= 1
                self._wake()
            else:
                self._waiters.remove(event)
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
        ``on_sample`` raises (it may be user code) is logged and keeps its value."""
        if sample:
            try:
                self.limit.on_sample(rtt, self.inflight, dropped)
            except Exception as exc:
                import logging

                logging.getLogger("asyncbatch").warning(
                    "asyncbatch: %s.on_sample raised %s; the limit keeps its value",
                    safe_repr(self.limit), describe(exc))
        self.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.inflight < self._allowed():
            self.inflight += 1
            waiters.popleft().set()


# -- adaptive limits shared across process() calls ---------------------------------------

_gates: dict[tuple[int, int], list[Any]] = {}


def acquire_gate(limit: ConcurrencyLimit,
                 event: Callable[[], Any]) -> tuple[Gate, tuple[int, int]]:
    """The gate of ``limit`` on this thread's loop: processors (and concurrent
    ``process()`` calls) sharing one limit object share its in-flight count, so its
    ``max`` holds across all of them."""
    import threading

    key = (id(limit), threading.get_ident())
    entry = _gates.get(key)
    if entry is None:
        entry = _gates[key] = [Gate(limit, event), 0]
    entry[1] += 1
    return entry[0], key


def release_gate(key: tuple[int, int]) -> None:
    entry = _gates.get(key)
    if entry is not None:
        entry[1] -= 1
        if entry[1] <= 0:
            del _gates[key]
