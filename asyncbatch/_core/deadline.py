"""The Lambda deadline, read once from the context: when to stop starting work and when to
cancel what still runs. Shared by the batch engine and the S3 import."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

from .._errors import ConfigurationError, describe, safe_repr

__all__ = ["AUTO", "Deadline", "check_margins", "deadlines"]

AUTO = "auto"

Margin = Union[float, str]


class Deadline:
    """Absolute times on the running loop's clock (``anyio.current_time()``).

    ``soft``: stop starting records (and retries); ``hard``: cancel what still runs;
    ``end``: Lambda's own timeout; ``epoch``: ``end`` as a UNIX time (for claims that must
    expire with the invocation)."""

    __slots__ = ("clock", "end", "epoch", "hard", "soft")

    def __init__(self, *, soft: float, hard: float, end: float, epoch: float,
                 clock: Callable[[], float]) -> None:
        self.soft = soft
        self.hard = hard
        self.end = end
        self.epoch = epoch
        self.clock = clock

    def remaining(self) -> float:
        """Seconds until Lambda's timeout (negative once past it)."""
        return self.end - self.clock()

    def passed_soft(self) -> bool:
        return self.clock() >= self.soft

    def __repr__(self) -> str:
        now = self.clock()
        return (f"Deadline(soft in {self.soft - now:.3f}s, hard in {self.hard - now:.3f}s, "
                f"end in {self.end - now:.3f}s)")


def check_margins(deadline_margin: Margin, cancel_margin: Margin) -> None:
    """``ConfigurationError`` for margins that are not seconds >= 0 or ``"auto"``."""
    for name, margin in (("deadline_margin", deadline_margin), ("cancel_margin", cancel_margin)):
        if margin != AUTO and (isinstance(margin, bool) or not (
                isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0)):
            raise ConfigurationError(f"{name}={margin!r}: give seconds >= 0 or 'auto'")
    if (isinstance(deadline_margin, (int, float)) and isinstance(cancel_margin, (int, float))
            and cancel_margin > deadline_margin):
        raise ConfigurationError(
            "cancel_margin must not exceed deadline_margin: records stop being started "
            "first, and running ones are cancelled later"
        )


def _margin(value: Margin, remaining: float, share: float, floor: float,
            ceiling: float) -> float:
    if value == AUTO:
        return min(max(remaining * share, floor), ceiling)
    assert isinstance(value, (int, float))
    return float(value)


def remaining_seconds(context: Any) -> Optional[float]:
    """The context's remaining time in seconds; ``None`` when it has no Lambda clock.

    A context that has ``get_remaining_time_in_millis`` but whose clock is broken (not
    callable, raises, returns NaN, ``None``, a string...) is a ``ConfigurationError``:
    running without the deadline it promised would let Lambda time out the batch."""
    if context is None:
        return None
    clock = getattr(context, "get_remaining_time_in_millis", None)
    if clock is None:
        return None
    name = type(context).__name__
    if not callable(clock):
        raise ConfigurationError(
            f"context ({name}).get_remaining_time_in_millis is not callable: pass Lambda's "
            "context object, or context=None to run without a deadline")
    try:
        millis = clock()
    except Exception as exc:
        raise ConfigurationError(
            f"context ({name}).get_remaining_time_in_millis() raised {describe(exc)}: pass "
            "Lambda's context object, or context=None to run without a deadline") from exc
    if isinstance(millis, bool) or not isinstance(millis, (int, float)) \
            or not math.isfinite(millis):
        raise ConfigurationError(
            f"context ({name}).get_remaining_time_in_millis() returned "
            f"{safe_repr(millis):.80}, not a finite number of milliseconds: pass Lambda's "
            "context object, or context=None to run without a deadline")
    return float(millis) / 1000.0


def deadlines(context: Any, deadline_margin: Margin = AUTO, cancel_margin: Margin = AUTO, *,
              clock: Optional[Callable[[], float]] = None) -> Optional[Deadline]:
    """The deadline a Lambda context sets, or ``None`` without one.

    ``deadline_margin`` (auto: 10% of the remaining time, 0.5 s to 30 s) before the end,
    stop starting work; ``cancel_margin`` (auto: 5%, 0.2 s to 10 s), cancel what runs.
    ``clock`` defaults to the running loop's (``anyio.current_time``)."""
    remaining = remaining_seconds(context)
    if remaining is None:
        return None
    if clock is None:
        import anyio

        clock = anyio.current_time
    import time

    soft = _margin(deadline_margin, remaining, 0.10, 0.5, 30.0)
    hard = min(_margin(cancel_margin, remaining, 0.05, 0.2, 10.0), soft)
    now = clock()
    end = now + remaining
    return Deadline(soft=end - soft, hard=end - hard, end=end, epoch=time.time() + remaining,
                    clock=clock)
