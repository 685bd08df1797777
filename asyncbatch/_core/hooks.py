"""Extension points: failure sinks and observation hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

from .._errors import ConfigurationError
from .._frozen import Frozen

if TYPE_CHECKING:
    from .._sources import Record
    from .report import BatchReport

__all__ = ["Failure", "FailureSink", "Hooks", "HooksLike", "coerce_hooks", "implemented_hooks"]


class Failure(Frozen):
    """A record that failed for good, as a failure sink receives it."""

    __slots__ = (
        "attempts",
        "event_source_arn",
        "event_type",
        "exception",
        "identifier",
        "record",
    )

    record: Record
    identifier: str
    exception: BaseException
    attempts: int
    event_type: str
    event_source_arn: Optional[str]

    def __init__(self, record: Record, identifier: str, exception: BaseException,
                 attempts: int, event_type: str, event_source_arn: Optional[str]) -> None:
        self._set(record=record, identifier=identifier, exception=exception,
                  attempts=attempts, event_type=event_type, event_source_arn=event_source_arn)


class FailureSink(Protocol):
    """Receives permanently failed records (poison pills). Return normally to accept the
    record: it then counts as handled and is not redelivered. Raise to refuse it: the
    record is reported as failed. A plain ``async def sink(failure): ...`` satisfies it."""

    async def __call__(self, failure: Failure, /) -> None: ...


class Hooks:
    """Observation points. Subclass and override what you need, or pass any object that
    has some of these methods (``coerce_hooks`` fills in the rest); every method is a
    no-op here, and when no hooks are given the engine makes no hook call at all.

    Per-record methods run inside the worker, on the hot path: keep them cheap and never
    let them raise (an exception from a hook fails the record it was called for)."""

    def batch_started(self, event_type: str, size: int) -> None:
        """Before any handler runs."""

    def record_started(self, record: Record, attempt: int) -> None:
        """Before each handler call (``attempt`` counts from 1), once the call is admitted:
        it holds its slot of an adaptive limit and its rate-limit token."""

    def record_succeeded(self, record: Record, attempts: int, duration: float) -> None:
        """After the handler returned."""

    def record_failed(self, record: Record, exception: BaseException, attempts: int) -> None:
        """After the last attempt failed (before the failure sink sees it)."""

    def record_retried(
        self, record: Record, exception: BaseException, attempt: int, delay: float
    ) -> None:
        """A transient failure of call ``attempt``; the next call follows in ``delay`` s."""

    def record_skipped(self, record: Record, reason: str) -> None:
        """A record that was never run (reported after the batch ends)."""

    def batch_finished(self, report: BatchReport) -> None:
        """After the batch, with its report."""


# name -> the arguments the engine passes (after ``self``)
HOOK_METHODS: dict[str, tuple[str, ...]] = {
    "batch_started": ("event_type", "size"),
    "record_started": ("record", "attempt"),
    "record_succeeded": ("record", "attempts", "duration"),
    "record_failed": ("record", "exception", "attempts"),
    "record_retried": ("record", "exception", "attempt", "delay"),
    "record_skipped": ("record", "reason"),
    "batch_finished": ("report",),
}


# One Protocol per method: an object with any non-empty subset of the methods satisfies at
# least one of them, so ``HooksLike`` types "some of the methods of Hooks" for mypy.
class _HasBatchStarted(Protocol):
    def batch_started(self, event_type: str, size: int, /) -> None: ...


class _HasRecordStarted(Protocol):
    def record_started(self, record: Record, attempt: int, /) -> None: ...


class _HasRecordSucceeded(Protocol):
    def record_succeeded(self, record: Record, attempts: int, duration: float, /) -> None: ...


class _HasRecordFailed(Protocol):
    def record_failed(self, record: Record, exception: BaseException, attempts: int, /) -> None:
        ...


class _HasRecordRetried(Protocol):
    def record_retried(
        self, record: Record, exception: BaseException, attempt: int, delay: float, /
    ) -> None: ...


class _HasRecordSkipped(Protocol):
    def record_skipped(self, record: Record, reason: str, /) -> None: ...


class _HasBatchFinished(Protocol):
    def batch_finished(self, report: BatchReport, /) -> None: ...


HooksLike = Union[
    Hooks, _HasBatchStarted, _HasRecordStarted, _HasRecordSucceeded, _HasRecordFailed,
    _HasRecordRetried, _HasRecordSkipped, _HasBatchFinished,
]
"""What ``hooks=`` accepts: a ``Hooks`` (subclass) instance, or any object with one or
more of its methods."""


class _Adapted(Hooks):
    """``Hooks`` over an object that has some of the methods: each of its methods is set
    on the instance (called directly, no indirection); the others stay no-ops."""

    def __init__(self, target: object, methods: dict[str, Callable[..., Any]]) -> None:
        self._target = target
        for name, method in methods.items():
            setattr(self, name, method)

    def __repr__(self) -> str:
        return f"coerce_hooks({self._target!r})"


def coerce_hooks(obj: object) -> Hooks:
    """``obj`` as a ``Hooks``: a ``Hooks`` instance as it is; any other object with some
    of the seven methods wrapped so that the missing ones are no-ops.

    Raises ``ConfigurationError`` naming the fix when ``obj`` has none of the methods,
    when one of them is not callable, is an ``async def`` (hooks are called without
    ``await``), or cannot take the arguments the engine passes."""
    methods: dict[str, Callable[..., Any]] = {}
    for name in HOOK_METHODS:
        method = getattr(obj, name, None)
        if method is None and not isinstance(obj, Hooks):
            continue
        if not callable(method):
            raise ConfigurationError(
                f"hooks={obj!r}: its {name} is {method!r}, not a method: give "
                f"'def {name}(self, {', '.join(HOOK_METHODS[name])})', or remove it")
        _check_method(obj, name, method)
        methods[name] = method
    if isinstance(obj, Hooks):
        return obj
    if not methods:
        raise ConfigurationError(
            f"hooks={obj!r} has none of the hook methods: give an object with one or more "
            f"of {', '.join(HOOK_METHODS)} (for example a class with "
            "'def batch_finished(self, report)'), or subclass asyncbatch.Hooks")
    return _Adapted(obj, methods)


def _check_method(obj: object, name: str, method: Callable[..., Any]) -> None:
    import inspect

    wanted = f"def {name}(self, {', '.join(HOOK_METHODS[name])})"
    if inspect.iscoroutinefunction(method):
        raise ConfigurationError(
            f"hooks={obj!r}: {name} is 'async def', but hooks are called without await "
            f"(they must stay cheap); make it a plain '{wanted}'")
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind(*HOOK_METHODS[name])
    except TypeError:
        raise ConfigurationError(
            f"hooks={obj!r}: {name}{signature} cannot take the arguments the engine passes; "
            f"give '{wanted}'") from None


def implemented_hooks(hooks: Hooks) -> frozenset[str]:
    """The names of the methods of ``hooks`` that do something (not ``Hooks``' no-ops).

    The engine can skip a call to the others: a hook object implementing only batch
    methods then costs nothing per record."""
    instance = getattr(hooks, "__dict__", {})
    return frozenset(
        name for name in HOOK_METHODS
        if name in instance or getattr(type(hooks), name, None) is not getattr(Hooks, name)
    )


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["Failure", "FailureSink", "Hooks"], home="asyncbatch")
del _publish
