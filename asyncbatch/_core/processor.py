"""``AsyncBatchProcessor`` and the Lambda entry points, thin over the scheduler."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Awaitable, Hashable, Iterable
from operator import length_hint
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeGuard, TypeVar, Union

from .._errors import (
    BatchFailedError,
    ConfigurationError,
    RecordError,
    describe,
    exception_text,
    safe_repr,
    type_name,
)
from .._sources import SOURCES, EventType, coerce_event_type, read_event
from .backends import check_backend, current_backend
from .deadline import check_margins, deadlines
from .handlers import Handler, is_async_callable
from .loop import run_blocking
from .pool import fatal_in
from .report import BatchReport
from .run import BatchRun, Settings, validation_error

__all__ = [
    "AsyncBatchProcessor",
    "async_process_partial_response",
    "process_partial_response",
]

# Hooks, streams, adaptive limits, the rate limit, the retry policy and tumbling windows
# are imported where they are used: a Lambda cold start of a plain batch never loads them.
if TYPE_CHECKING:
    from .._sources.windows import WindowReducer
    from ..idempotency import Idempotency
    from .hooks import FailureSink, Hooks, HooksLike
    from .limits import ConcurrencyLimit
    from .rate import RateLimit
    from .retry import Retry
    from .stream import Stream, StreamRun

T = TypeVar("T")


_ORDERINGS = (None, "key", "partition")


class AsyncBatchProcessor:
    """Runs an async handler over the records of a Lambda batch event.

    Options (all keyword-only except the first three):

    - ``event_type``: ``None`` to detect from the event, an ``EventType`` or its string.
    - ``concurrency``: hard bound on handlers running at once (``int >= 1``); or
      ``"auto"`` (``WindowedLimit(AIMDLimit(initial=10, max=256))``), or a
      ``ConcurrencyLimit`` such as ``AIMDLimit`` / ``GradientLimit``, which adapts the
      number in flight to observed latency and throttling, never above its ``max``.
    - ``model``: a pydantic model; the handler then gets the parsed model.
    - ``envelope``: SQS only, with ``model``: ``"sns"`` (the body is an SNS notification:
      the model parses its ``Message``) or ``"eventbridge"`` (the body is an EventBridge
      event: the model parses its ``detail``). Powertools' ``SnsSqsEnvelope`` and
      ``EventBridgeEnvelope`` name the same.
    - ``retry``: a ``Retry`` policy for transient errors (default: no retry).
    - ``timeout``: seconds one handler call may run before it is cancelled and fails.
    - ``deadline_margin``: stop starting records when the Lambda context's remaining time
      falls below this many seconds. Default ``"auto"``: 10% of the remaining time at the
      start, at least 0.5 s and at most 30 s.
    - ``cancel_margin``: cancel handlers still running when the remaining time falls below
      this. Default ``"auto"``: 5% of the remaining time, at least 0.2 s, at most 10 s.
    - ``fifo_stop_on_failure``: SQS FIFO only: stop the whole batch at the first failure
      (default: skip the rest of the failed record's message group only).
    - ``ordering``: streams only. ``None``: the source's default; ``"key"``: records of
      one key in order, keys in parallel (Kinesis partition key, DynamoDB item key; for
      Kafka the record key within its topic-partition); ``"partition"``: one
      topic-partition (Kafka's default) or the whole shard batch in order.
    - ``idempotency``: an ``asyncbatch.Idempotency``: a record whose key completed before
      succeeds without running; a key claimed by a live invocation fails transiently.
    - ``sink``: a ``FailureSink`` receiving permanently failed records (poison pills).
    - ``sink_when``: which failures go to the sink (default: those the retry policy does
      not consider transient).
    - ``hooks``: an object observing records and batches: a ``Hooks`` subclass, or any
      object with some of its methods (the others are no-ops). Only hooks that observe
      records cost anything per record.
    - ``window_reducer``: folds successful records into the tumbling-window state.
    - ``raise_on_all_failed``: ``process_partial_response`` raises ``BatchFailedError``
      when no record succeeded (default ``True``); ``False`` returns the failure list.
    - ``log_summary``: log one summary line per batch on the ``asyncbatch`` logger, and
      why records failed (identifier, exception type and message; at most
      ``log_failures`` records per batch, default 10, then a count; tracebacks at DEBUG).
    - ``rate_limit``: an ``asyncbatch.RateLimit(per_second, burst=1)``: at most that many
      handler calls start per second (retries count), shared by every processor and
      thread that uses the same object.
    - ``timings``: measure every record's duration (``Outcome.duration``). Off by default:
      a clock read per record is the largest cost of the hot path. Retry, timeout, hooks
      and model processors measure anyway.
    - ``backend``: the event-loop seam the run uses. ``None`` (the default): native
      asyncio where it can run (Python 3.11+ on asyncio), anyio otherwise (trio, 3.10);
      ``"asyncio"``: native asyncio (``ConfigurationError`` on 3.10, or when called on
      trio); ``"anyio"``: anyio, on asyncio as on trio.

    A processor holds no per-call state: one instance may serve concurrent calls.
    """

    __slots__ = ("_event_type", "_record_hooks", "_settings", "backend", "cancel_margin",
                 "concurrency",
                 "deadline_margin", "envelope", "fifo_stop_on_failure", "hooks",
                 "idempotency", "limit",
                 "log_failures", "log_summary", "model", "ordering", "raise_on_all_failed",
                 "rate_limit", "retry", "sink", "sink_when", "timeout", "timings",
                 "window_reducer")

    def __init__(
        self,
        event_type: Union[EventType, str, None] = None,
        concurrency: Union[int, str, ConcurrencyLimit] = 32,
        model: Optional[type[Any]] = None,
        *,
        retry: Optional[Retry] = None,
        timeout: Optional[float] = None,
        deadline_margin: Union[float, str] = "auto",
        cancel_margin: Union[float, str] = "auto",
        fifo_stop_on_failure: bool = False,
        sink: Optional[FailureSink] = None,
        sink_when: Optional[Callable[[BaseException], bool]] = None,
        hooks: Optional[HooksLike] = None,
        window_reducer: Optional[WindowReducer] = None,
        raise_on_all_failed: bool = True,
        log_summary: bool = True,
        timings: bool = False,
        ordering: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
        log_failures: int = 10,
        rate_limit: Optional[RateLimit] = None,
        envelope: Any = None,
        backend: Optional[str] = None,
    ) -> None:
        self._event_type = coerce_event_type(event_type)
        self.backend = check_backend(backend)
        limit: Optional[ConcurrencyLimit] = None
        if concurrency == "auto":
            from .limits import AIMDLimit, WindowedLimit

            limit = WindowedLimit(AIMDLimit())
        elif not isinstance(concurrency, int) and _is_limit(concurrency):
            limit = concurrency
        elif isinstance(concurrency, bool) or not isinstance(concurrency, int) \
                or concurrency < 1:
            raise ConfigurationError(
                f"concurrency={concurrency!r}: give a whole number >= 1 (the most handlers "
                "that may run at once), e.g. concurrency=32, or 'auto', or a limit object "
                "such as asyncbatch.AIMDLimit(max=100)"
            )
        if limit is not None and (not isinstance(limit.max, int) or limit.max < 1):
            raise ConfigurationError(f"concurrency={concurrency!r}: its max must be >= 1")
        if model is not None and not (
            hasattr(model, "model_validate_json") and hasattr(model, "model_validate")
        ):
            raise ConfigurationError(
                f"model={model!r}: give a pydantic v2 model class (with model_validate_json)"
            )
        if model is not None and self._event_type is not None:
            check_model_source(model, self._event_type.value)
        if retry is not None and not _is_retry(retry):
            raise ConfigurationError(f"retry={retry!r}: give asyncbatch.Retry(...) or None")
        if timeout is not None and (isinstance(timeout, bool) or not (
                isinstance(timeout, (int, float)) and timeout > 0)):
            raise ConfigurationError(f"timeout={timeout!r}: give seconds > 0, or None")
        check_margins(deadline_margin, cancel_margin)
        if ordering not in _ORDERINGS:
            raise ConfigurationError(
                f"ordering={ordering!r}: give None (the source's default), 'key' or 'partition'")
        if idempotency is not None and not callable(getattr(idempotency, "prepare", None)):
            raise ConfigurationError(
                f"idempotency={idempotency!r}: give asyncbatch.Idempotency(store, ...)")
        if isinstance(log_failures, bool) or not isinstance(log_failures, int) \
                or log_failures < 0:
            raise ConfigurationError(f"log_failures={log_failures!r}: give a whole number >= 0")
        if sink is not None and not is_async_callable(sink):
            raise ConfigurationError(
                f"sink={sink!r} is not an async callable: give 'async def sink(failure): ...' "
                "or an object with 'async def __call__(self, failure)'")
        if sink_when is not None and not callable(sink_when):
            raise ConfigurationError(
                f"sink_when={sink_when!r}: give a function (exception -> bool) or None")
        if hooks is not None:
            from .hooks import coerce_hooks

            hooks = coerce_hooks(hooks)  # any object with some of the methods
        if rate_limit is not None and not _is_rate_limit(rate_limit):
            raise ConfigurationError(
                f"rate_limit={rate_limit!r}: give asyncbatch.RateLimit(per_second, burst=1) "
                "or None")
        if window_reducer is not None and not callable(window_reducer):
            raise ConfigurationError(
                f"window_reducer={window_reducer!r}: give a function (state, record, window) "
                "-> new state")
        self.envelope = _envelope(envelope, model)
        if self._event_type is not None:  # the source refuses what it cannot honour
            SOURCES[self._event_type].check_options(idempotency=idempotency,
                                                    envelope=self.envelope)
        self.limit = limit
        self.concurrency: int = limit.max if limit is not None else int(concurrency)  # type: ignore[arg-type]
        self.model = model
        self.retry = retry
        self.timeout = None if timeout is None else float(timeout)
        self.deadline_margin = deadline_margin
        self.cancel_margin = cancel_margin
        self.fifo_stop_on_failure = fifo_stop_on_failure
        self.sink = sink
        if sink_when is None:
            sink_when = (lambda exc: not retry.should_retry(exc, 0)) if retry is not None \
                else _not_transient
        self.sink_when = sink_when
        self.hooks = hooks
        # per-record hook calls only when a per-record method does something
        self._record_hooks = hooks if hooks is not None and (
            _implemented_hooks(hooks) & _RECORD_HOOKS) else None
        self.window_reducer = window_reducer
        self.raise_on_all_failed = raise_on_all_failed
        self.log_summary = log_summary
        self.timings = bool(timings)
        self.ordering = ordering
        self.idempotency = idempotency
        self.log_failures = log_failures
        self.rate_limit = rate_limit
        self._settings = Settings(
            concurrency=self.concurrency, limit=limit, retry=retry, timeout=self.timeout,
            hooks=self._record_hooks, sink=sink, sink_when=sink_when, timings=self.timings,
            rate=rate_limit, reducer=window_reducer, idempotency=idempotency,
            fifo_stop=fifo_stop_on_failure, ordering=ordering)

    @property
    def event_type(self) -> Optional[EventType]:
        return self._event_type

    def __repr__(self) -> str:
        kind = self._event_type.value if self._event_type else "auto"
        return f"AsyncBatchProcessor(event_type={kind!r}, concurrency={self.concurrency})"

    # -- the one public operation ----------------------------------------------------

    async def process(self, event: Any, handler: Handler, context: Any = None) -> BatchReport:
        """Run ``handler`` over every record of ``event``; return the report.

        Raises ``InvalidEventError`` (malformed event) or ``ConfigurationError`` (bad
        handler, broken context clock) before any handler runs; otherwise always returns,
        whatever the handler, hooks, predicates, sink or reducer raise. Only
        ``KeyboardInterrupt`` and ``SystemExit`` propagate (unwrapped), and a cancellation
        of the caller."""
        call = _bind(handler, context, self.concurrency)
        source, records, plan = read_event(
            event, self._event_type, fifo_stop_batch=self.fifo_stop_on_failure,
            ordering=self.ordering)
        source.check_options(idempotency=self.idempotency, envelope=self.envelope)
        call = source.checked(call)
        window = None
        if "window" in event:  # a tumbling window (Kinesis, DynamoDB Streams)
            from .._sources.windows import parse_window

            window = parse_window(event)
        backend = current_backend(self.backend)
        deadline = deadlines(context, self.deadline_margin, self.cancel_margin,
                             clock=backend.clock)
        run = BatchRun(self._settings, records=records, source=source, plan=plan, call=call,
                       parse=self._parser(source), deadline=deadline, window=window,
                       backend=backend)
        hooks = self.hooks
        event_type = source.event_type.value
        if hooks is not None:
            _batch_hook(hooks, "batch_started", event_type, len(records))
        started = time.perf_counter()
        if records:
            if self.idempotency is not None:
                await self._prepare_idempotency(run, deadline)
            try:
                await run.execute()
            except BaseException as exc:
                fatal = fatal_in(exc)
                if fatal is not None and fatal is not exc:
                    raise fatal from None  # KeyboardInterrupt / SystemExit, unwrapped
                raise
        report = BatchReport(
            event_type=source.event_type, records=records, view=source.view,
            status=run.status, errors=run.errors, attempts=run.attempts,
            durations=run.durations, elapsed=time.perf_counter() - started,
            window=window, state=run.state, identifiers=run.identifiers,
            results=run.results, source=source,
        )
        if hooks is not None:
            run.report_skips(hooks)
            _batch_hook(hooks, "batch_finished", report)
        if self.log_summary:
            _log_summary(event_type, report, self.log_failures)
        return report

    # -- any iterable -----------------------------------------------------------------

    def stream(self, items: Union[Iterable[Any], AsyncIterable[Any]], handler: Handler,
               key: Optional[Callable[[Any], Hashable]] = None, ordered: bool = False, *,
               context: Any = None, resume_failed_keys: bool = False) -> Stream:
        """Run ``handler`` over the items of any iterable or async iterable, read lazily;
        ``async with processor.stream(items, handle) as outcomes: async for outcome in
        outcomes: ...`` gives each item's ``Outcome`` as it settles (``ordered=True``: in
        input order).

        ``key``: a function of an item; items of one key run one at a time in input
        order, and after one fails the later items of its key are skipped
        (``resume_failed_keys=True``: only those already read and waiting behind it; the
        key's items read later run, for an input that delivers the failed item again, as
        an SQS FIFO queue does). ``context``: a
        Lambda context whose deadline the stream keeps. Every option of the processor
        applies. At most about ``2 x concurrency`` items are held that have not been
        handed back. A misuse is a ``ConfigurationError`` here, before anything runs."""
        from .._sources import ITEMS
        from .stream import Stream, StreamRun, check_items

        check_items(items)
        if key is not None and not callable(key):
            raise ConfigurationError(
                f"key={key!r}: give a function of an item (for example "
                "'key=lambda order: order[\"customer\"]'), or None for independent items")
        if not isinstance(ordered, bool):
            raise ConfigurationError(f"ordered={ordered!r}: give True or False")
        call = _bind(handler, context, self.concurrency)
        parse = self._parser(ITEMS)
        idempotency = self.idempotency
        if idempotency is not None:
            idempotency.check_stream()
        settings = self._settings
        margins = (self.deadline_margin, self.cancel_margin)
        chosen = self.backend

        async def start() -> StreamRun:
            backend = current_backend(chosen)
            deadline = deadlines(context, *margins, clock=backend.clock)
            run = StreamRun(settings, items=items, call=call, parse=parse, deadline=deadline,
                            backend=backend, key=key, ordered=ordered,
                            forget_failed_keys=resume_failed_keys)
            if idempotency is not None:
                run.idempotency = await idempotency.prepare_stream(
                    None if deadline is None else deadline.epoch)
            return run

        return Stream(start)

    async def run(self, items: Union[Iterable[Any], AsyncIterable[Any]], handler: Handler,
                  key: Optional[Callable[[Any], Hashable]] = None, *,
                  context: Any = None) -> BatchReport:
        """Run ``handler`` over every item of a finite iterable (or async iterable) and
        return the report (``report.succeeded`` and the others, in input order; an
        outcome's ``identifier`` is the item's position). As ``stream()``, with the
        batch hooks and the summary log line of ``process()``; the input's own exception
        propagates unchanged once the items taken have settled."""
        flow = self.stream(items, handler, key, context=context)
        hooks = self.hooks
        if hooks is not None:
            _batch_hook(hooks, "batch_started", EventType.ITERABLE.value,
                        length_hint(items, 0))
        started = time.perf_counter()
        outcomes: list[Any] = []
        async with flow as settled:
            async for outcome in settled:
                outcomes.append(outcome)
        report = BatchReport.of_outcomes(EventType.ITERABLE, outcomes,
                                         time.perf_counter() - started)
        if hooks is not None:
            _batch_hook(hooks, "batch_finished", report)
        if self.log_summary:
            _log_summary(EventType.ITERABLE.value, report, self.log_failures)
        return report

    async def _prepare_idempotency(self, run: BatchRun, deadline: Any) -> None:
        """Look the batch's keys up before scheduling; a store that cannot answer fails
        every record (transiently: Lambda redelivers them), never the call."""
        assert self.idempotency is not None
        views = [run.view(raw) for raw in run.records]
        try:
            run.idempotency = await self.idempotency.prepare(
                views, None if deadline is None else deadline.epoch,
                within=None if deadline is None else deadline.soft - deadline.clock())
        except Exception as exc:
            _logger().warning("asyncbatch: the idempotency store could not be read: %s",
                              describe(exc))
            run.fail_all(exc)

    # -- helpers ---------------------------------------------------------------------

    def _parser(self, source: Any) -> Optional[Callable[[Any, Any], Any]]:
        model = self.model
        if model is None:
            return None
        from pydantic import ValidationError

        from .handlers import is_record_model, parsed

        check_model_source(model, source.event_type.value)
        model_input = source.model_input
        if self.envelope is not None:
            from .._sources.envelopes import payload_parser

            parse_payload = payload_parser(self.envelope, model)

            def parse_enveloped(record: Any, identifier: Any) -> Any:
                # the payload inside the body's envelope (RecordValidationError names
                # the field from the body: Message.order_id, detail.order_id)
                return parsed(parse_payload(model_input(record)[0], identifier), record)

            return parse_enveloped
        validate_json = model.model_validate_json
        validate = model.model_validate
        if is_record_model(model, source.event_type.value):
            # A model of the whole record (Powertools' SqsRecordModel and the like, or
            # any model with the record's own fields): the metadata stays in the model.
            def parse_record(record: Any, identifier: Any) -> Any:
                try:
                    return parsed(validate(record.raw), record)
                except ValidationError as exc:
                    raise validation_error(identifier, exc) from exc

            return parse_record

        def parse(record: Any, identifier: Any) -> Any:
            value, is_json = model_input(record)
            try:
                # ``parsed`` keeps the view for a handler with a ``record`` parameter.
                return parsed(validate_json(value) if is_json else validate(value), record)
            except ValidationError as exc:
                raise validation_error(identifier, exc) from exc

        return parse


def check_model_source(model: Any, event_type: str) -> None:
    """``ConfigurationError`` when ``model`` describes the whole record of another source
    than ``event_type`` (Powertools' ``KinesisDataStreamRecord`` on SQS, or any model with
    another source's record fields): every record would fail its validation, forever."""
    from .handlers import record_model_sources

    sources = record_model_sources(model)
    if not sources or event_type in sources or event_type == EventType.ITERABLE.value:
        return  # (an item of stream()/run() is validated as it is, whatever its shape)
    other = sorted(sources)[0]
    name = getattr(model, "__name__", None) or safe_repr(model)
    own = SOURCES[EventType(event_type)].powertools_record_model
    raise ConfigurationError(
        f"model={name} describes a whole {other} record, but these are {event_type} "
        f"events: every record would fail its validation. Give a model of the "
        f"{event_type} record"
        + (f" (such as Powertools' {own})" if own else "")
        + f" or of its payload, or use it with {other} events (event_type={other!r})")


def _envelope(envelope: Any, model: Any) -> Optional[str]:
    """``envelope=`` as a name (``"sns"``, ``"eventbridge"``) or ``None``;
    ``ConfigurationError`` saying what to do when it cannot apply."""
    if envelope is None:
        return None
    from .._sources.envelopes import ENVELOPES, coerce_envelope

    name = coerce_envelope(envelope)
    if name is None:
        return None
    if model is None:
        raise ConfigurationError(
            f"envelope={envelope!r} tells model= where the payload is ({ENVELOPES[name]} "
            "inside the SQS body); give model= too, or leave envelope= unset and read the "
            "body in your handler (record.json())")
    from .handlers import is_record_model

    if is_record_model(model, EventType.SQS.value):
        raise ConfigurationError(
            f"envelope={envelope!r} with model={getattr(model, '__name__', model)!r}, a model "
            "of the whole SQS record: give a model of the payload inside the envelope, or "
            "leave envelope= unset")
    return name


def _logger() -> Any:
    import logging

    return logging.getLogger("asyncbatch")


def _batch_hook(hooks: Any, name: str, *args: Any) -> None:
    """A batch hook that raises is logged and ignored: it never costs the batch."""
    try:
        getattr(hooks, name)(*args)
    except Exception as exc:
        _logger().warning("asyncbatch: hooks.%s raised %s (ignored)", name, describe(exc),
                          exc_info=exc)


def _log_summary(event_type: str, report: BatchReport, log_failures: int = 10) -> None:
    """One INFO line per batch on the ``asyncbatch`` logger, the counts in ``extra``; then
    one WARNING per failed record (identifier, exception type and message in ``extra``),
    at most ``log_failures`` of them and a count of the rest; tracebacks at DEBUG."""
    import logging

    logger = logging.getLogger("asyncbatch")
    counts = report.counts
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "asyncbatch %s batch: %d records, %d succeeded, %d failed, %d skipped in %.3fs",
            event_type, len(report), counts["succeeded"], counts["failed"], counts["skipped"],
            report.elapsed,
            extra={"asyncbatch": {"event_type": event_type, "records": len(report), **counts,
                                  "elapsed": report.elapsed}},
        )
    if not counts["failed"] or not log_failures or not logger.isEnabledFor(logging.WARNING):
        return
    failed = report.failed
    debug = logger.isEnabledFor(logging.DEBUG)
    for outcome in failed[:log_failures]:
        exc = outcome.exception
        kind = type_name(exc) if exc is not None else "unknown"
        message = exception_text(exc) if exc is not None else ""
        logger.warning(
            "asyncbatch %s record %s failed: %s: %s", event_type, outcome.identifier, kind,
            message,
            extra={"asyncbatch": {"event_type": event_type, "identifier": outcome.identifier,
                                  "error_type": kind, "error": message,
                                  "attempts": outcome.attempts}},
        )
        if debug and exc is not None:
            logger.debug("asyncbatch record %s traceback", outcome.identifier,
                         exc_info=(type(exc), exc, exc.__traceback__))
    if len(failed) > log_failures:
        logger.warning(
            "asyncbatch %s batch: %d more failed records not logged (log_failures=%d)",
            event_type, len(failed) - log_failures, log_failures,
            extra={"asyncbatch": {"event_type": event_type,
                                  "unlogged_failures": len(failed) - log_failures}},
        )


def _implemented_hooks(hooks: Hooks) -> frozenset[str]:
    from .hooks import implemented_hooks

    return implemented_hooks(hooks)


def _is_limit(value: object) -> TypeGuard[ConcurrencyLimit]:
    from .limits import ConcurrencyLimit

    return isinstance(value, ConcurrencyLimit)


def _is_retry(value: object) -> TypeGuard[Retry]:
    from .retry import Retry

    return isinstance(value, Retry)


def _is_rate_limit(value: object) -> TypeGuard[RateLimit]:
    from .rate import RateLimit

    return isinstance(value, RateLimit)


def _not_transient(exc: BaseException) -> bool:
    from .retry import is_transient

    return not is_transient(exc)


_RECORD_HOOKS = frozenset({"record_started", "record_succeeded", "record_failed",
                           "record_retried"})


def _bind(handler: Any, context: Any,
          concurrency: Optional[int] = None) -> Callable[[Any], Awaitable[Any]]:
    """The handler as a one-argument coroutine function: the context bound to a
    ``lambda_context`` parameter or a second positional one; a sync handler run on worker
    threads, at most ``concurrency`` at once (see ``_handlers``)."""
    from .handlers import bind_handler

    return bind_handler(handler, context, concurrency)


# -- Lambda entry points ------------------------------------------------------------

def _finish(report: BatchReport, processor: AsyncBatchProcessor) -> dict[str, Any]:
    if report.all_failed and processor.raise_on_all_failed:
        excs = report.exceptions()
        count = len(report)
        raise BatchFailedError(
            f"all {count} records of the batch failed; the invocation fails, so the whole "
            "batch is retried (by Lambda, or by Firehose for a transformation)",
            excs or [RecordError("no record succeeded")], report)
    return report.response()


async def async_process_partial_response(
    event: Any, handler: Handler, processor: AsyncBatchProcessor, context: Any = None
) -> dict[str, Any]:
    """Process ``event`` inside your own event loop; return Lambda's partial response."""
    _check_processor(processor)
    report = await processor.process(event, handler, context)
    return _finish(report, processor)


def process_partial_response(
    event: Any, handler: Handler, processor: AsyncBatchProcessor, context: Any = None
) -> dict[str, Any]:
    """Process ``event`` from a synchronous Lambda handler; return the partial response.

    Runs on an event loop kept per thread and reused across warm invocations. Raises
    ``BatchFailedError`` when no record succeeded (unless the processor was made with
    ``raise_on_all_failed=False``), and ``ConfigurationError`` when called inside a
    running event loop (see ``run_blocking``)."""
    _check_processor(processor)
    report = run_blocking(
        lambda: processor.process(event, handler, context), "process_partial_response",
        "use 'await async_process_partial_response(...)' there")
    return _finish(report, processor)


def _check_processor(processor: Any) -> None:
    if not isinstance(processor, AsyncBatchProcessor):
        raise ConfigurationError(
            f"processor must be an asyncbatch.AsyncBatchProcessor, got {type(processor).__name__}"
        )
