"""``RateLimit``: at most so many handler calls start per second (a token bucket).

A concurrency bound says how many calls run at once; a rate limit says how many start per
second: what an API with a quota (requests per second) needs. One ``RateLimit`` object may
be shared by processors, by concurrent ``process()``/``stream()`` calls and by threads:
its bucket is one, behind a lock, on one clock.

The bucket hands out start times (GCRA, the token bucket written as a reservation): a
call reserves the next start time and sleeps until it; ``burst`` calls may start at once
after an idle spell, then one every ``1 / per_second`` seconds. A reservation is taken
after the call holds its concurrency slot, so calls start when their token comes, and
re-checked after the sleep: a stop rule or the deadline decided meanwhile keeps the call
from starting (its token is then spent, never lent to another: the rate holds).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional

from .._errors import ConfigurationError

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``per_second`` handler calls start per second, ``burst`` of them at once
    (retries count: each call takes a token). ``clock`` gives the seconds the bucket
    counts in (default ``time.monotonic``, one clock for every thread and loop); give
    the loop's clock (``anyio.current_time``) to run it on a virtual clock in tests.

    ``processor = AsyncBatchProcessor(concurrency=64, rate_limit=RateLimit(100, burst=10))``
    """

    __slots__ = ("_clock", "_interval", "_lock", "_tat", "burst", "per_second")

    def __init__(self, per_second: float, burst: int = 1, *,
                 clock: Optional[Callable[[], float]] = None) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, (int, float)) \
                or not math.isfinite(per_second) or per_second <= 0:
            raise ConfigurationError(
                f"RateLimit(per_second={per_second!r}): give how many calls may start per "
                "second, a number > 0 (e.g. RateLimit(50) or RateLimit(0.5) for one every "
                "two seconds)")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(
                f"RateLimit(burst={burst!r}): give how many calls may start at once after an "
                "idle spell, a whole number >= 1")
        if clock is not None and not callable(clock):
            raise ConfigurationError(
                f"RateLimit(clock={clock!r}): give a function returning seconds, such as "
                "time.monotonic")
        self.per_second = float(per_second)
        self.burst = burst
        self._interval = 1.0 / self.per_second
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._lock = threading.Lock()
        self._tat = -math.inf  # the theoretical arrival time of the next call

    def reserve(self, within: float = math.inf) -> Optional[float]:
        """Reserve the next start: the seconds to wait before starting (0: now), or
        ``None`` (nothing reserved) when that wait would be longer than ``within``."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = max(0.0, tat - (self.burst - 1) * self._interval - now)
            if wait > within:
                return None
            self._tat = tat + self._interval
            return wait

    def __repr__(self) -> str:
        burst = f", burst={self.burst}" if self.burst != 1 else ""
        return f"RateLimit({self.per_second:g}{burst})"


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["RateLimit"], home="asyncbatch")
del _publish
