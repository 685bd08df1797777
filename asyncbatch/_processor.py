"""``AsyncBatchProcessor`` and the Lambda entry points, thin over the scheduler."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._errors import BatchFailedError, ConfigurationError, RecordError
from ._hooks import FailureSink, Hooks, _accepts_context
from ._limits import AIMDLimit, ConcurrencyLimit, WindowedLimit
from ._report import BatchReport
from ._retry import Retry
from ._scheduler import BatchRun, validation_error
from ._sources import EventType, coerce_event_type, resolve_policy, split_event
from ._windows import Window, WindowReducer, parse_window

__all__ = [
    "AsyncBatchProcessor",
    "async_process_partial_response",
    "process_partial_response",
]

if TYPE_CHECKING:
    import asyncio

Handler = Callable[..., Awaitable[Any]]

_AUTO = "auto"


def _margin(value: Union[float, str, None], remaining: float, share: float,
            floor: float, ceiling: float) -> float:
    if value == _AUTO:
        return min(max(remaining * share, floor), ceiling)
    assert isinstance(value, (int, float))
    return float(value)


class AsyncBatchProcessor:
    """Runs an async handler over the records of a Lambda batch event.

    Options (all keyword-only except the first three):

    - ``event_type``: ``None`` to detect from the event, an ``EventType`` or its string.
    - ``concurrency``: hard bound on handlers running at once (``int >= 1``); or
      ``"auto"`` (``WindowedLimit(AIMDLimit(initial=10, max=256))``), or a
      ``ConcurrencyLimit`` such as ``AIMDLimit`` / ``GradientLimit``, which adapts the
      number in flight to observed latency and throttling, never above its ``max``.
    - ``model``: a pydantic model; the handler then gets the parsed model.
    - ``retry``: a ``Retry`` policy for transient errors (default: no retry).
    - ``timeout``: seconds one handler call may run before it is cancelled and fails.
    - ``deadline_margin``: stop starting records when the Lambda context's remaining time
      falls below this many seconds. Default ``"auto"``: 10% of the remaining time at the
      start, at least 0.5 s and at most 30 s.
    - ``cancel_margin``: cancel handlers still running when the remaining time falls below
      this. Default ``"auto"``: 5% of the remaining time, at least 0.2 s, at most 10 s.
    - ``fifo_stop_on_failure``: SQS FIFO only: stop the whole batch at the first failure
      (default: skip the rest of the failed record's message group only).
    - ``sink``: a ``FailureSink`` receiving permanently failed records (poison pills).
    - ``sink_when``: which failures go to the sink (default: those the retry policy does
      not consider transient).
    - ``hooks``: a ``Hooks`` instance observing records and batches.
    - ``window_reducer``: folds successful records into the tumbling-window state.
    - ``raise_on_all_failed``: ``process_partial_response`` raises ``BatchFailedError``
      when no record succeeded (default ``True``); ``False`` returns the failure list.
    - ``log_summary``: log one summary line per batch on the ``asyncbatch`` logger.
    - ``timings``: measure every record's duration (``Outcome.duration``). Off by default:
      a clock read per record is the largest cost of the hot path. Retry, timeout, hooks
      and model processors measure anyway.

    A processor holds no per-call state: one instance may serve concurrent calls.
    """

    __slots__ = ("_event_type", "cancel_margin", "concurrency", "deadline_margin",
                 "fifo_stop_on_failure", "hooks", "limit", "log_summary", "model",
                 "raise_on_all_failed", "retry", "sink", "sink_when", "timeout", "timings",
                 "window_reducer")

    def __init__(
        self,
        event_type: Union[EventType, str, None] = None,
        concurrency: Union[int, str, ConcurrencyLimit] = 32,
        model: Optional[type[Any]] = None,
        *,
        retry: Optional[Retry] = None,
        timeout: Optional[float] = None,
        deadline_margin: Union[float, str] = _AUTO,
        cancel_margin: Union[float, str] = _AUTO,
        fifo_stop_on_failure: bool = False,
        sink: Optional[FailureSink] = None,
        sink_when: Optional[Callable[[BaseException], bool]] = None,
        hooks: Optional[Hooks] = None,
        window_reducer: Optional[WindowReducer] = None,
        raise_on_all_failed: bool = True,
        log_summary: bool = True,
        timings: bool = False,
    ) -> None:
        self._event_type = coerce_event_type(event_type)
        limit: Optional[ConcurrencyLimit] = None
        if concurrency == "auto":
            limit = WindowedLimit(AIMDLimit())
        elif isinstance(concurrency, ConcurrencyLimit) and not isinstance(concurrency, int):
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
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError(f"retry={retry!r}: give asyncbatch.Retry(...) or None")
        if timeout is not None and (isinstance(timeout, bool) or not (
                isinstance(timeout, (int, float)) and timeout > 0)):
            raise ConfigurationError(f"timeout={timeout!r}: give seconds > 0, or None")
        for name, margin in (("deadline_margin", deadline_margin),
                             ("cancel_margin", cancel_margin)):
            if margin != _AUTO and (isinstance(margin, bool) or not (
                    isinstance(margin, (int, float)) and margin >= 0)):
                raise ConfigurationError(f"{name}={margin!r}: give seconds >= 0 or 'auto'")
        if (isinstance(deadline_margin, (int, float)) and isinstance(cancel_margin, (int, float))
                and cancel_margin > deadline_margin):
            raise ConfigurationError(
                "cancel_margin must not exceed deadline_margin: records stop being started "
                "first, and running ones are cancelled later"
            )
        if sink is not None and not _is_async_callable(sink):
            raise ConfigurationError(
                f"sink={sink!r} is not an async callable: give 'async def sink(failure): ...' "
                "or an object with 'async def __call__(self, failure)'")
        if sink_when is not None and not callable(sink_when):
            raise ConfigurationError(
                f"sink_when={sink_when!r}: give a function (exception -> bool) or None")
        if hooks is not None:
            missing = [name for name in _HOOK_METHODS if not callable(getattr(hooks, name, None))]
            if missing:
                raise ConfigurationError(
                    f"hooks={hooks!r} lacks {', '.join(missing)}: subclass asyncbatch.Hooks "
                    "and override what you need")
        if window_reducer is not None and not callable(window_reducer):
            raise ConfigurationError(
                f"window_reducer={window_reducer!r}: give a function (state, record, window) "
                "-> new state")
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
        self.window_reducer = window_reducer
        self.raise_on_all_failed = raise_on_all_failed
        self.log_summary = log_summary
        self.timings = bool(timings)

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
        handler) before any handler runs; otherwise always returns."""
        call = _bind(handler, context)
        records = split_event(event)
        window = parse_window(event)
        policy = resolve_policy(records, self._event_type)
        plan = policy.plan(records, self.fifo_stop_on_failure)
        soft, hard = self._deadlines(context)
        run = BatchRun(
            records=records, policy=policy, plan=plan, call=call,
            concurrency=self.concurrency, parse=self._parser(policy),
            retry=self.retry, timeout=self.timeout, hooks=self.hooks,
            sink=self.sink, sink_when=self.sink_when,
            soft_deadline=soft, hard_deadline=hard, timings=self.timings, limit=self.limit,
        )
        hooks = self.hooks
        if hooks is not None:
            hooks.batch_started(policy.event_type.value, len(records))
        started = time.perf_counter()
        if records:
            await run.execute()
        state = None
        if window is not None:
            state = self._fold_window(run, window)
        report = BatchReport(
            event_type=policy.event_type, records=records, view=policy.view,
            status=run.status, errors=run.errors, attempts=run.attempts,
            durations=run.durations, elapsed=time.perf_counter() - started,
            window=window, state=state,
        )
        if hooks is not None:
            run.report_skips()
            hooks.batch_finished(report)
        if self.log_summary:
            _log_summary(policy.event_type.value, report)
        return report

    # -- helpers ---------------------------------------------------------------------

    def _deadlines(self, context: Any) -> tuple[Optional[float], Optional[float]]:
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None or not callable(remaining_ms):
            return None, None
        try:
            remaining = float(remaining_ms()) / 1000.0
        except (TypeError, ValueError):
            return None, None
        soft = _margin(self.deadline_margin, remaining, 0.10, 0.5, 30.0)
        hard = _margin(self.cancel_margin, remaining, 0.05, 0.2, 10.0)
        hard = min(hard, soft)
        import anyio

        now = anyio.current_time()
        return now + remaining - soft, now + remaining - hard

    def _parser(self, policy: Any) -> Optional[Callable[[Any], Any]]:
        model = self.model
        if model is None:
            return None
        from pydantic import ValidationError

        model_input = policy.model_input
        validate_json = model.model_validate_json
        validate = model.model_validate

        def parse(record: Any) -> Any:
            value, is_json = model_input(record)
            try:
                return validate_json(value) if is_json else validate(value)
            except ValidationError as exc:
                raise validation_error(record.identifier, exc) from exc

        return parse

    def _fold_window(self, run: BatchRun, window: Window) -> Any:
        """Fold records below the checkpoint into the window state, in sequence order."""
        state = window.state
        reducer = self.window_reducer
        if reducer is None or run.plan.sequence is None:
            return state
        from ._report import SUCCEEDED, SUNK

        status = run.status
        seq = run.plan.sequence
        reported = [seq(i) for i in range(len(status)) if status[i] not in (SUCCEEDED, SUNK)]
        checkpoint = min(reported) if reported else None
        order = sorted(range(len(status)), key=seq)
        parse = run.parse
        for index in order:
            if checkpoint is not None and seq(index) >= checkpoint:
                break
            record = run.view(run.records[index])
            try:
                value = record if parse is None else parse(record)
                state = reducer(state, value, window)
            except Exception as exc:
                # The state cannot include this record: report it, so that Lambda
                # redelivers it and everything after it.
                from ._report import FAILED

                status[index] = FAILED
                run.errors[index] = exc
                break
        return state


def _log_summary(event_type: str, report: BatchReport) -> None:
    """One INFO line per batch on the ``asyncbatch`` logger, the counts in ``extra``."""
    import logging

    logger = logging.getLogger("asyncbatch")
    if not logger.isEnabledFor(logging.INFO):
        return
    counts = report.counts
    logger.info(
        "asyncbatch %s batch: %d records, %d succeeded, %d failed, %d skipped in %.3fs",
        event_type, len(report), counts["succeeded"], counts["failed"], counts["skipped"],
        report.elapsed,
        extra={"asyncbatch": {"event_type": event_type, "records": len(report), **counts,
                              "elapsed": report.elapsed}},
    )


def _not_transient(exc: BaseException) -> bool:
    from ._retry import is_transient

    return not is_transient(exc)


_HOOK_METHODS = tuple(name for name in vars(Hooks) if not name.startswith("_"))


def _is_async_callable(obj: Any) -> bool:
    import inspect

    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None))  # noqa: B004


def _bind(handler: Any, context: Any) -> Callable[[Any], Awaitable[Any]]:
    """The handler as a one-argument coroutine function (context bound if it takes one)."""
    if not callable(handler):
        raise ConfigurationError(f"handler {handler!r} is not callable; give an async function")
    if not _is_async_callable(handler):
        name = getattr(handler, "__qualname__", repr(handler))
        raise ConfigurationError(
            f"handler {name} is not an async function: define it with 'async def "
            f"{getattr(handler, '__name__', 'handle')}(record): ...'"
        )
    if _accepts_context(handler):
        return _with_context(handler, context)
    return handler  # type: ignore[no-any-return]


def _with_context(handler: Handler, context: Any) -> Callable[[Any], Awaitable[Any]]:
    def call(record: Any) -> Awaitable[Any]:
        return handler(record, context)

    return call


# -- Lambda entry points ------------------------------------------------------------

_loops = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, created once and reused across warm invocations."""
    import asyncio

    loop: Optional[asyncio.AbstractEventLoop] = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


def _finish(report: BatchReport, processor: AsyncBatchProcessor) -> dict[str, Any]:
    if report.all_failed and processor.raise_on_all_failed:
        excs = report.exceptions()
        count = len(report)
        raise BatchFailedError(
            f"all {count} records of the batch failed; Lambda will retry the whole batch",
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
    ``raise_on_all_failed=False``)."""
    _check_processor(processor)
    import sniffio

    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        pass
    else:
        raise ConfigurationError(
            "process_partial_response was called inside a running event loop; "
            "use 'await async_process_partial_response(...)' there"
        )
    loop = _loop()
    report = loop.run_until_complete(processor.process(event, handler, context))
    return _finish(report, processor)


def _check_processor(processor: Any) -> None:
    if not isinstance(processor, AsyncBatchProcessor):
        raise ConfigurationError(
            f"processor must be an asyncbatch.AsyncBatchProcessor, got {type(processor).__name__}"
        )
