"""Tumbling windows of Kinesis and DynamoDB Streams: the state Lambda carries between
invocations of one window, and the reducer that folds records into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Protocol

from .._errors import InvalidEventError
from .._frozen import Frozen

__all__ = ["Window", "WindowReducer", "parse_window"]


class Window(Frozen):
    """The window an event belongs to. ``state`` is the state Lambda passed in."""

    __slots__ = ("end", "is_final", "shard_id", "start", "state", "terminated_early")

    start: Optional[str]
    end: Optional[str]
    state: Any
    shard_id: Optional[str]
    is_final: bool
    terminated_early: bool

    def __init__(self, *, start: Optional[str], end: Optional[str], state: Any,
                 shard_id: Optional[str], is_final: bool, terminated_early: bool) -> None:
        self._set(start=start, end=end, state=state, shard_id=shard_id, is_final=is_final,
                  terminated_early=terminated_early)


class WindowReducer(Protocol):
    """Folds one successful record into the window state and returns the new state.

    Called in sequence order, only for records below the stream checkpoint (records
    Lambda will redeliver are never folded, so nothing is counted twice)."""

    def __call__(self, state: Any, record: Any, window: Window) -> Any: ...


def parse_window(event: Mapping[str, Any]) -> Optional[Window]:
    """The event's tumbling window, or ``None`` when the event has none."""
    if "window" not in event:
        return None
    window = event["window"]
    if not isinstance(window, Mapping):
        raise InvalidEventError("the event's 'window' is not a mapping with start and end")
    state = event.get("state")
    return Window(
        start=window.get("start"),
        end=window.get("end"),
        state=dict(state) if isinstance(state, Mapping) else ({} if state is None else state),
        shard_id=event.get("shardId"),
        is_final=bool(event.get("isFinalInvokeForWindow", False)),
        terminated_early=bool(event.get("isWindowTerminatedEarly", False)),
    )


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["Window", "WindowReducer"], home="asyncbatch")
del _publish
