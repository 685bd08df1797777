"""Powertools' batch processors, running on asyncbatch's engine.

Each processor keeps Powertools' interface (it subclasses Powertools'
``BasePartialBatchProcessor``: ``success_messages``, ``fail_messages``, ``exceptions``,
``response()``, the context-manager form, ``success_handler`` / ``failure_handler`` that
a subclass may override) and hands the batch to one ``asyncbatch.AsyncBatchProcessor``:
the bound, the per-key order of streams, FIFO groups, the deadline and the report come
from there. The ``(status, result, record)`` tuples are built afterwards, in record order,
through ``success_handler`` / ``failure_handler`` exactly as Powertools builds them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from aws_lambda_powertools.utilities.batch import BasePartialBatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.exceptions import (
    SQSFifoCircuitBreakerError,
    SQSFifoMessageGroupCircuitBreakerError,
)

from .._core.handlers import in_thread, is_async_callable
from .._errors import ConfigurationError, RecordSkippedError, exception_text, safe_repr

if TYPE_CHECKING:
    from .._core.processor import AsyncBatchProcessor as Engine
    from .._core.report import BatchReport

__all__ = ["AsyncBatchProcessor", "BatchProcessor", "SqsFifoPartialProcessor"]

T = TypeVar("T")

#: Handlers at once for an ``async def`` handler when ``concurrency=`` is not given
#: (asyncbatch's default bound; Powertools gathers every record at once).
DEFAULT_ASYNC_CONCURRENCY = 32

# Sequential sync handlers run on the loop's thread; they give the loop a turn (the
# deadline watcher) once they have held it this long (seconds).
_HOLD = 0.005

# Options the processor sets itself on the engine.
_OWN_OPTIONS = frozenset({"event_type", "concurrency", "model", "raise_on_all_failed",
                          "fifo_stop_on_failure"})


def _data_classes() -> dict[Any, Callable[[dict[str, Any]], Any]]:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )
    from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
        KinesisStreamRecord,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    classes: dict[Any, Callable[[dict[str, Any]], Any]] = {
        EventType.SQS: SQSRecord,
        EventType.KinesisDataStreams: KinesisStreamRecord,
        EventType.DynamoDBStreams: DynamoDBRecord,
    }
    kafka = getattr(EventType, "Kafka", None)
    if kafka is not None:
        from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord

        classes[kafka] = KafkaEventRecord
    return classes


def _coerce_event_type(event_type: Any) -> Any:
    if isinstance(event_type, EventType):
        return event_type
    try:
        return EventType(getattr(event_type, "value", event_type))
    except ValueError:
        names = ", ".join(f"EventType.{member.name}" for member in EventType)
        raise ConfigurationError(
            f"event_type={event_type!r}: give one of {names}") from None


def _real_clock(context: Any) -> bool:
    """Whether ``context`` tells the remaining time (a Lambda context does; a test's
    ``{}`` or ``MagicMock()`` does not, and must not make the batch stop at once)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return False
    try:
        value = remaining()
    except Exception:
        return False
    return type(value) in (int, float)


# -- running the engine from sync code ----------------------------------------------------

def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``factory()`` to completion from synchronous code, as
    ``asyncbatch.process_partial_response`` does (the same helper): on this thread's
    event loop, kept across warm invocations and discarded after a ``KeyboardInterrupt``
    or ``SystemExit``; inside a running event loop, a ``ConfigurationError`` naming the
    fix (Powertools' ``asyncio.run`` fails there too)."""
    from .._core.loop import run_blocking as run_on_thread_loop

    return run_on_thread_loop(
        factory, "an asyncbatch.powertools processor",
        "in async code, use 'await asyncbatch.async_process_partial_response(...)' with "
        "an asyncbatch.AsyncBatchProcessor")


# -- the processors --------------------------------------------------------------------------

class _FifoGate:
    """Powertools' FIFO circuit breaker, per ``process()`` call: after a failure, every
    later record (or, with ``skip_group_on_error``, every later record of the failed
    message group) fails without running."""

    __slots__ = ("failed_groups", "skip_group", "stopped")

    def __init__(self, skip_group: bool) -> None:
        self.skip_group = skip_group
        self.stopped = False
        self.failed_groups: set[str] = set()

    @staticmethod
    def group(raw: Any) -> Optional[str]:
        attributes = raw.get("attributes") if isinstance(raw, dict) else None
        return attributes.get("MessageGroupId") if isinstance(attributes, dict) else None

    def check(self, raw: Any) -> None:
        if self.skip_group:
            if self.group(raw) in self.failed_groups:
                raise SQSFifoMessageGroupCircuitBreakerError(
                    "A previous record from this message group failed processing")
        elif self.stopped:
            raise SQSFifoCircuitBreakerError("A previous record failed processing")

    def failed(self, raw: Any) -> None:
        group = self.group(raw)
        if self.skip_group:
            if group:
                self.failed_groups.add(group)
        else:
            self.stopped = True


class _EngineProcessor(BasePartialBatchProcessor):
    """The part every processor shares: one batch, run on asyncbatch's engine."""

    _default_sync_concurrency = 1

    def __init__(
        self,
        event_type: EventType,
        model: Any = None,
        raise_on_entire_batch_failure: bool = True,
        logger: Any = None,
        *,
        concurrency: Optional[int] = None,
        **options: Any,
    ) -> None:
        event_type = _coerce_event_type(event_type)
        super().__init__(event_type, model, raise_on_entire_batch_failure)
        self.logger = logger
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(
                concurrency, int) or concurrency < 1):
            raise ConfigurationError(
                f"concurrency={concurrency!r}: give a whole number >= 1 (the most record "
                "handlers that may run at once), or None: sequential for a sync handler, "
                f"{DEFAULT_ASYNC_CONCURRENCY} for an async one")
        clash = sorted(_OWN_OPTIONS & set(options))
        if clash:
            raise ConfigurationError(
                f"{', '.join(clash)}: set by the processor itself; give them as "
                f"{type(self).__name__}'s own arguments")
        self._parse_payload = _envelope_parser(options.pop("envelope", None), model,
                                               event_type)
        if model is not None and self._parse_payload is None:
            from .._core.processor import check_model_source

            check_model_source(model, self.event_type.value)
        self.concurrency = concurrency
        self._options = options
        self._engines: dict[int, Engine] = {}
        self._data_class = _data_classes().get(event_type)
        if self._data_class is None:  # pragma: no cover - an EventType we do not know
            raise ConfigurationError(f"event_type={event_type!r} is not supported")
        self._engine(1)  # options and event type checked now, not at the first batch

    def _engine(self, concurrency: int) -> Engine:
        engine = self._engines.get(concurrency)
        if engine is None:
            from .._core.processor import AsyncBatchProcessor as Engine

            try:
                engine = Engine(self.event_type.value, concurrency, raise_on_all_failed=False,
                                **self._engine_options(), **self._options)
            except TypeError as exc:
                raise ConfigurationError(
                    f"{exc}: {type(self).__name__} takes asyncbatch.AsyncBatchProcessor's "
                    "keyword options (retry=, timeout=, sink=, hooks=, ...)") from None
            except ConfigurationError as exc:
                if self.event_type.value not in str(exc):
                    raise
                raise ConfigurationError(
                    f"event_type={self.event_type}: this asyncbatch cannot process "
                    f"{self.event_type.value} events yet") from None
            self._engines[concurrency] = engine
        return engine

    def _engine_options(self) -> dict[str, Any]:
        return {}

    # -- Powertools' abstract per-record steps: the engine runs whole batches ----------

    def _process_record(self, record: dict[str, Any]) -> Any:
        raise NotImplementedError(
            "asyncbatch.powertools processors run the whole batch on asyncbatch's engine: "
            "call process() (or async_process()) inside 'with processor(records, handler)'")

    async def _async_process_record(self, record: dict[str, Any]) -> Any:
        self._process_record(record)

    # -- running a batch ----------------------------------------------------------------

    def process(self) -> list[tuple[Any, ...]]:
        """Run the handler over every record; return the ``(status, result, record)``
        tuples in record order (``("success", result, raw_record)`` or
        ``("fail", "<type>:<message>", record)``)."""
        return run_blocking(self._run)

    def async_process(self) -> list[tuple[Any, ...]]:
        """The same as ``process()``: sync and async handlers both run on the engine."""
        return run_blocking(self._run)

    def _convert(self, raw: dict[str, Any]) -> Any:
        if self._parse_payload is not None:  # the payload inside the body's envelope
            return self._parse_payload(raw.get("body"), raw.get("messageId"))
        if self.model is not None:
            return self.model.model_validate(raw)
        return self._data_class(raw)  # type: ignore[misc]

    def _as_record(self, raw: dict[str, Any]) -> Any:
        """The record as a failure tuple carries it: the model if it validates, else the
        data class (as Powertools does for a record that fails validation)."""
        try:
            return self._convert(raw)
        except Exception:
            return self._data_class(raw)  # type: ignore[misc]

    def _gate(self) -> Optional[_FifoGate]:
        return None

    def _invoker(self, handler: Any, concurrency: int) -> Callable[[Any], Awaitable[Any]]:
        """``handler`` as ``await invoke(record)``: keyword ``record=`` as Powertools
        calls it (positional for a handler without a ``record`` parameter), the Lambda
        context as ``lambda_context=`` when the handler takes it."""
        kwargs: dict[str, Any] = {}
        if getattr(self, "_handler_accepts_lambda_context", False):
            kwargs["lambda_context"] = self.lambda_context
        fn = functools.partial(handler, **kwargs) if kwargs else handler
        by_name = _takes_record_keyword(handler)

        def call(record: Any) -> Any:
            return fn(record=record) if by_name else fn(record)

        if is_async_callable(handler):
            async def invoke_async(record: Any) -> Any:
                result = call(record)
                return await result if inspect.isawaitable(result) else result

            return invoke_async
        if concurrency > 1:
            return in_thread(call, concurrency)
        import time

        import anyio.lowlevel

        checkpoint = anyio.lowlevel.checkpoint
        clock = time.monotonic
        last = clock()

        async def invoke_inline(record: Any) -> Any:
            # Sequential: on the caller's thread as in Powertools (thread-local state such
            # as X-Ray's segment stays visible). A checkpoint once the handlers have held
            # the loop for a while lets the deadline watcher run between records.
            nonlocal last
            now = clock()
            if now - last > _HOLD:
                last = now
                await checkpoint()
            result = call(record)
            if result is not None and inspect.isawaitable(result):
                result = await result
            return result

        return invoke_inline

    def _event(self, records: list[Any]) -> tuple[dict[str, Any], Optional[list[int]]]:
        """The event the engine gets, and (Kafka) each engine position's record index."""
        if self.event_type.value != "Kafka":
            return {"Records": records}, None
        grouped: dict[str, list[Any]] = {}
        for raw in records:
            key = (f"{raw.get('topic')}-{raw.get('partition')}" if isinstance(raw, dict)
                   else "?")
            grouped.setdefault(key, []).append(raw)
        where = {id(raw): index for index, raw in enumerate(records)}
        order = [where[id(raw)] for group in grouped.values() for raw in group]
        return {"eventSource": "aws:kafka", "records": grouped}, order

    def _concurrency_for(self, handler: Any, event: dict[str, Any]) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return DEFAULT_ASYNC_CONCURRENCY if is_async_callable(handler) \
            else self._default_sync_concurrency

    async def _run(self) -> list[tuple[Any, ...]]:
        records = self.records
        if not isinstance(records, list):
            records = list(records)
        handler = self.handler
        event, order = self._event(records)
        concurrency = self._concurrency_for(handler, event)
        invoke = self._invoker(handler, concurrency)
        gate = self._gate()
        seen: dict[int, Any] = {}  # id(raw) -> the record object the handler got
        convert = self._convert
        data_class = self._data_class

        async def call(view: Any) -> Any:
            raw = view.raw
            try:
                record = convert(raw)
            except Exception:
                seen[id(raw)] = data_class(raw)  # type: ignore[misc]
                raise
            seen[id(raw)] = record
            if gate is not None:
                gate.check(raw)
            try:
                return await invoke(record)
            except BaseException:
                if gate is not None:
                    gate.failed(raw)
                raise

        context = getattr(self, "lambda_context", None)
        report = await self._engine(concurrency).process(
            event, call, context if _real_clock(context) else None)
        return self._collect(records, report, order, seen)

    def _collect(self, records: list[Any], report: BatchReport, order: Optional[list[int]],
                 seen: dict[int, Any]) -> list[tuple[Any, ...]]:
        """The tuples, in record order, through ``success_handler`` / ``failure_handler``.
        Only the records that did not succeed are materialised as outcomes."""
        results = report.results()
        unsuccessful: dict[int, Any] = {}
        for done in (*report.failed, *report.skipped):
            unsuccessful[done.index if order is None else order[done.index]] = done
        if order is not None:
            results = [None] * len(records)
            for position, value in enumerate(report.results()):
                results[order[position]] = value
        entries: list[tuple[Any, ...]] = []
        breaker = self._gate()  # FIFO: a success_handler failure trips it, as in Powertools
        for index, raw in enumerate(records):
            outcome = unsuccessful.get(index)
            if outcome is None:
                record = seen.get(id(raw))
                if breaker is not None:
                    try:
                        breaker.check(raw)
                    except Exception as exc:
                        entries.append(self.failure_handler(
                            self._as_record(raw) if record is None else record,
                            self._exception_info(exc)))
                        continue
                try:
                    entries.append(self.success_handler(raw, results[index]))
                except Exception:
                    # Powertools calls success_handler inside the try around the record
                    # handler: an exception there fails the record (failure_handler with
                    # the record the handler got and sys.exc_info()); it does not escape.
                    entries.append(self.failure_handler(
                        self._as_record(raw) if record is None else record, sys.exc_info()))
                    if breaker is not None:
                        breaker.failed(raw)
                continue
            if outcome.status == "failed" and id(raw) in seen:
                record = seen[id(raw)]
            else:
                record = self._as_record(raw)
            entries.append(self.failure_handler(record, self._exception_info(outcome.exception)))
        return entries

    def _exception_info(self, exc: Any) -> tuple[Any, Any, Any]:
        return (type(exc), exc, getattr(exc, "__traceback__", None))

    def failure_handler(self, record: Any, exception: Any) -> tuple[Any, ...]:
        """Powertools' ``failure_handler``, with the exception formatted safely: its
        ``f"{type}:{value}"`` raises for an exception whose ``__str__`` raises (and the
        whole batch is lost), and ships megabytes or lone surrogates as they are. Here
        the message is asyncbatch's bounded, UTF-8 text of it; ``exceptions`` keeps the
        exception itself, as Powertools does."""
        value = exception[1]
        exception_string = (f"{safe_repr(exception[0])}:"
                            f"{'None' if value is None else exception_text(value)}")
        _POWERTOOLS_LOG.debug("Record processing exception: %s", exception_string)
        logger = getattr(self, "logger", None)
        if logger is not None and all(part is not None for part in exception):
            logger.warning("Record processing exception; skipping this record",
                           exc_info=exception)
        self.exceptions.append(exception)
        self.fail_messages.append(record)
        return ("fail", exception_string, record)


# Powertools' batch module logs each failure at DEBUG on its own logger.
_POWERTOOLS_LOG = logging.getLogger("aws_lambda_powertools.utilities.batch.base")


def _envelope_parser(envelope: Any, model: Any, event_type: Any
                     ) -> Optional[Callable[[Any, Any], Any]]:
    """With ``envelope=`` (Powertools' ``envelopes.SnsSqsEnvelope`` or
    ``EventBridgeEnvelope``, or asyncbatch's ``"sns"`` / ``"eventbridge"``): how the model
    parses the payload inside an SQS body, as Powertools' parser does with that envelope."""
    from .._sources.envelopes import ENVELOPES, coerce_envelope, payload_parser

    name = coerce_envelope(envelope)
    if name is None:
        return None
    if event_type != EventType.SQS:
        raise ConfigurationError(
            f"envelope={envelope!r} unwraps SQS message bodies; this processor takes "
            f"{event_type.value} records: remove envelope=")
    if model is None:
        raise ConfigurationError(
            f"envelope={envelope!r} tells model= where the payload is ({ENVELOPES[name]} "
            "inside the SQS body); give model= too")
    return payload_parser(name, model)


def _takes_record_keyword(handler: Any) -> bool:
    try:
        param = inspect.signature(handler).parameters.get("record")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD,
                                                param.KEYWORD_ONLY)


class BatchProcessor(_EngineProcessor):
    """Powertools' ``BatchProcessor`` (SQS, Kinesis Data Streams, DynamoDB Streams,
    Kafka) on asyncbatch's engine.

    ``BatchProcessor(event_type, model=None, raise_on_entire_batch_failure=True,
    logger=None, *, concurrency=None, **options)``. A sync record handler runs one record
    at a time on the calling thread, as in Powertools, unless ``concurrency=N``: then on up
    to N worker threads. An ``async def`` handler runs on the engine's bounded pool
    (``concurrency``, default 32). Streams keep their order per key, FIFO groups theirs.
    ``options`` are ``asyncbatch.AsyncBatchProcessor``'s keyword options (``retry=``,
    ``timeout=``, ``sink=``, ``hooks=``, ...).
    """


class AsyncBatchProcessor(_EngineProcessor):
    """Powertools' ``AsyncBatchProcessor`` on asyncbatch's engine: the same as
    ``BatchProcessor`` here (both take sync and async handlers); an async handler runs
    at most ``concurrency`` (default 32) at once instead of every record at once."""


class SqsFifoPartialProcessor(BatchProcessor):
    """Powertools' ``SqsFifoPartialProcessor``: stop at the first failure and report it
    and every record after it; with ``skip_group_on_error=True``, skip only the rest of
    the failed record's message group and go on with the other groups.

    Sequential by default; with ``concurrency=N`` message groups run in parallel, each in
    order (when the batch comes from a FIFO queue)."""

    #: Powertools' ``sys.exc_info()``-shaped tuple for a record not run after a failure
    #: (``SQSFifoCircuitBreakerError``), as its processor has it.
    circuit_breaker_exc = (
        SQSFifoCircuitBreakerError,
        SQSFifoCircuitBreakerError("A previous record failed processing"),
        None,
    )
    #: The same for a record not run after a failure of its message group
    #: (``skip_group_on_error=True``: ``SQSFifoMessageGroupCircuitBreakerError``).
    group_circuit_breaker_exc = (
        SQSFifoMessageGroupCircuitBreakerError,
        SQSFifoMessageGroupCircuitBreakerError(
            "A previous record from this message group failed processing"),
        None,
    )

    def __init__(
        self,
        model: Any = None,
        skip_group_on_error: bool = False,
        logger: Any = None,
        *,
        concurrency: Optional[int] = None,
        **options: Any,
    ) -> None:
        self._skip_group_on_error = bool(skip_group_on_error)
        super().__init__(EventType.SQS, model, True, logger, concurrency=concurrency,
                         **options)

    def _engine_options(self) -> dict[str, Any]:
        return {"fifo_stop_on_failure": not self._skip_group_on_error}

    def _gate(self) -> Optional[_FifoGate]:
        return _FifoGate(self._skip_group_on_error)

    def _concurrency_for(self, handler: Any, event: dict[str, Any]) -> int:
        concurrency = super()._concurrency_for(handler, event)
        if concurrency > 1 and not _runs_in_groups(event):
            return 1  # the engine would not keep the groups in order: run them in order here
        return concurrency

    def _exception_info(self, exc: Any) -> tuple[Any, Any, Any]:
        if isinstance(exc, (RecordSkippedError, SQSFifoCircuitBreakerError,
                            SQSFifoMessageGroupCircuitBreakerError)) \
                and getattr(exc, "reason", None) != "deadline":
            return self.group_circuit_breaker_exc if self._skip_group_on_error \
                else self.circuit_breaker_exc
        return super()._exception_info(exc)


def _runs_in_groups(event: dict[str, Any]) -> bool:
    """Whether the engine runs this SQS batch as FIFO message groups (lanes)."""
    from .._sources import EventType as Kind
    from .._sources import read_event

    try:
        _, _, plan = read_event(event, Kind.SQS)
    except Exception:
        return False
    return plan.keyed


ProcessorType = Union[BatchProcessor, AsyncBatchProcessor, SqsFifoPartialProcessor]
