"""``OpenTelemetryHooks``: a span per batch and, when asked for, a span per record.

Needs the OpenTelemetry API (the ``otel`` extra: ``pip install -e '.[otel]'`` in a clone
of asyncbatch, or ``pip install opentelemetry-api``); it is imported when an
``OpenTelemetryHooks`` is created, never by ``import asyncbatch``.

- The batch span (``asyncbatch.batch``, kind ``CONSUMER``) is the current span while the
  batch runs, so the spans your handlers create (an instrumented HTTP or AWS client) are
  its children. It carries the event source, the record count and, at the end, how many
  records succeeded, failed, were skipped, sunk or retried. When records failed, its
  status is ``ERROR`` and (without record spans) the first ``max_exceptions`` failures
  are recorded on it as exception events naming their record.
- With ``record_spans=True`` every record that runs gets a span (``asyncbatch.record``)
  around all of its attempts: current while its handler runs, a retried attempt's
  exception recorded as an event, a failure recorded with status ``ERROR``. A record
  cancelled at the Lambda deadline gets its span ended with ``ERROR`` too. Off by
  default: a span per record costs microseconds per record.

One hooks object may serve concurrent batches: each batch's state lives in a context
variable its workers inherit. Limitation: when the task awaiting ``process()`` is
cancelled, the engine calls no ``batch_finished``, so that batch's span is never ended
(nor exported) and stays the current span of the cancelled task.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Optional

from .._core.hooks import Hooks
from .._errors import (
    ConfigurationError,
    describe,
    exception_text,
    traceback_text,
    type_name,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .._core.report import BatchReport
    from .._sources import Record

__all__ = ["OpenTelemetryHooks"]

_MESSAGING_SYSTEM = {"SQS": "aws_sqs", "Kafka": "kafka"}  # OTel semantic conventions


class _Batch:
    __slots__ = ("context_token", "open", "span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.open: dict[int, tuple[Span, object]] = {}  # id(record) -> span, context token
        self.context_token: object = None
        self.token: Optional[contextvars.Token[Optional[_Batch]]] = None


# The current batch: set by batch_started in the task that awaits process(), inherited
# by the workers it spawns, so one hooks object can serve concurrent batches.
_current: contextvars.ContextVar[Optional[_Batch]] = contextvars.ContextVar(
    "asyncbatch_otel_batch", default=None)


class OpenTelemetryHooks(Hooks):
    """Traces batches (and optionally records) with OpenTelemetry.

    - ``tracer_provider``: where spans go (default: the global provider).
    - ``tracer``: a ``Tracer`` to use instead of one from the provider.
    - ``record_spans``: a span per record (default ``False``: batch spans only).
    - ``max_exceptions``: how many failed records' exceptions the batch span records
      when there are no record spans (default 10).
    """

    def __init__(
        self,
        tracer_provider: Optional[TracerProvider] = None,
        *,
        tracer: Optional[Tracer] = None,
        record_spans: bool = False,
        max_exceptions: int = 10,
    ) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetryHooks needs the OpenTelemetry API: pip install "
                "opentelemetry-api (or, asyncbatch not being on PyPI, pip install -e "
                "'.[otel]' in a clone of asyncbatch)") from None
        if isinstance(max_exceptions, bool) or not isinstance(max_exceptions, int) \
                or max_exceptions < 0:
            raise ConfigurationError(
                f"max_exceptions={max_exceptions!r}: give a whole number >= 0")
        from .. import __version__

        self._trace = trace
        self._context = context
        self._tracer = tracer if tracer is not None else trace.get_tracer(
            "asyncbatch", __version__, tracer_provider=tracer_provider)
        self.record_spans = bool(record_spans)
        self.max_exceptions = max_exceptions
        if self.record_spans:  # otherwise the per-record methods stay Hooks' no-ops
            self.record_started = self._record_started  # type: ignore[method-assign]
            self.record_succeeded = self._record_succeeded  # type: ignore[method-assign]
            self.record_retried = self._record_retried  # type: ignore[method-assign]
            self.record_failed = self._record_failed  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"OpenTelemetryHooks(record_spans={self.record_spans})"

    # -- batch -----------------------------------------------------------------------

    def batch_started(self, event_type: str, size: int) -> None:
        trace = self._trace
        attributes: dict[str, Any] = {
            "asyncbatch.event_source": event_type,
            "messaging.operation.type": "process",
            "messaging.batch.message_count": size,
        }
        system = _MESSAGING_SYSTEM.get(event_type)
        if system is not None:
            attributes["messaging.system"] = system
        span = self._tracer.start_span(
            "asyncbatch.batch", kind=trace.SpanKind.CONSUMER, attributes=attributes)
        batch = _Batch(span)
        batch.context_token = self._context.attach(trace.set_span_in_context(span))
        batch.token = _current.set(batch)

    def batch_finished(self, report: BatchReport) -> None:
        batch = _current.get()
        if batch is None:
            return
        trace = self._trace
        span = batch.span
        counts = report.counts
        for record_span, _token in batch.open.values():  # cancelled at the deadline
            record_span.set_status(trace.Status(
                trace.StatusCode.ERROR, "cancelled at the Lambda deadline"))
            record_span.end()
        batch.open.clear()
        span.set_attributes({
            "asyncbatch.succeeded": counts["succeeded"],
            "asyncbatch.failed": counts["failed"],
            "asyncbatch.skipped": counts["skipped"],
            "asyncbatch.sunk": counts["sunk"],
            "asyncbatch.duration_ms": report.elapsed * 1000.0,
        })
        if counts["failed"]:
            if not self.record_spans and self.max_exceptions:
                for outcome in report.failed[:self.max_exceptions]:
                    if outcome.exception is not None:
                        _record_exception(span, outcome.exception, {
                            "asyncbatch.record.identifier": _text(outcome.identifier)})
            span.set_status(trace.Status(
                trace.StatusCode.ERROR,
                f"{counts['failed']} of {len(report)} records failed"))
        span.end()
        try:
            _current.reset(batch.token)  # type: ignore[arg-type]
        except ValueError:  # finished in another context than it started
            pass
        else:
            self._context.detach(batch.context_token)  # type: ignore[arg-type]

    # -- records (bound in __init__ when record_spans=True) -----------------------------

    def _record_started(self, record: Record, attempt: int) -> None:
        batch = _current.get()
        if batch is None:
            return
        if attempt > 1:
            found = batch.open.get(id(record))
            if found is not None:
                found[0].add_event("asyncbatch.attempt", {"asyncbatch.attempt": attempt})
            return
        trace = self._trace
        span = self._tracer.start_span("asyncbatch.record", attributes={
            "asyncbatch.record.identifier": _text(record.identifier)})
        token = self._context.attach(trace.set_span_in_context(span))
        batch.open[id(record)] = (span, token)

    def _record_succeeded(self, record: Record, attempts: int, duration: float) -> None:
        found = self._pop(record)
        if found is not None:
            span, token = found
            span.set_attribute("asyncbatch.attempts", attempts)
            self._context.detach(token)  # type: ignore[arg-type]
            span.end()

    def _record_retried(
        self, record: Record, exception: BaseException, attempt: int, delay: float
    ) -> None:
        batch = _current.get()
        found = None if batch is None else batch.open.get(id(record))
        if found is not None:
            _record_exception(found[0], exception, {
                "asyncbatch.attempt": attempt, "asyncbatch.retry_delay_s": delay})

    def _record_failed(self, record: Record, exception: BaseException, attempts: int) -> None:
        found = self._pop(record)
        if found is not None:
            span, token = found
            trace = self._trace
            span.set_attribute("asyncbatch.attempts", attempts)
            _record_exception(span, exception)
            span.set_status(trace.Status(trace.StatusCode.ERROR, describe(exception)))
            self._context.detach(token)  # type: ignore[arg-type]
            span.end()

    def _pop(self, record: Record) -> Optional[tuple[Span, object]]:
        batch = _current.get()
        return None if batch is None else batch.open.pop(id(record), None)


def _text(identifier: Any) -> str:
    return identifier if isinstance(identifier, str) else str(identifier)


def _record_exception(span: Span, exception: BaseException,
                      attributes: Optional[dict[str, Any]] = None) -> None:
    """``span.record_exception``, safe: the SDK's calls ``str(exception)`` (which may
    raise) and ships the message and traceback whole (megabytes, lone surrogates that an
    exporter cannot encode). The same event, with the semantic conventions' attributes,
    from asyncbatch's bounded formatters."""
    if not span.is_recording():
        return
    cls = type(exception)
    module = getattr(cls, "__module__", None)
    name = str(getattr(cls, "__qualname__", None) or type_name(exception))
    event: dict[str, Any] = {
        "exception.type": name if not module or module == "builtins" else f"{module}.{name}",
        "exception.message": exception_text(exception),
        "exception.stacktrace": traceback_text(exception),
        "exception.escaped": "False",
    }
    if attributes:
        event.update(attributes)
    span.add_event("exception", attributes=event)
