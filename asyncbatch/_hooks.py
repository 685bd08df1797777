"""Extension points: failure sinks and observation hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Protocol

from ._frozen import Frozen

if TYPE_CHECKING:
    from ._records import Record
    from ._report import BatchReport

__all__ = ["Failure", "FailureSink", "Hooks"]


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
    """Observation points. Subclass and override what you need; every method is a no-op
    here, and when no hooks are given the engine makes no hook call at all.

    Per-record methods run inside the worker, on the hot path: keep them cheap and never
    let them raise (an exception from a hook fails the record it was called for)."""

    def batch_started(self, event_type: str, size: int) -> None:
        """Before any handler runs."""

    def record_started(self, record: Record, attempt: int) -> None:
        """Before each handler call (``attempt`` counts from 1)."""

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


def _accepts_context(handler: Any) -> bool:
    """Whether ``handler`` takes a second positional argument (the Lambda context)."""
    import inspect

    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return False
    positional = 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return True
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2
