"""Lambda's event source mapping, in memory: invoke, apply the partial batch response as
Lambda does, redeliver, repeat until every record is acknowledged or dead-lettered.

- SQS (standard and FIFO): the reported messages come back with ``ApproximateReceiveCount``
  one higher and a new receipt handle; a message delivered ``max_attempts`` times that
  fails again goes to the dead-letter queue (the queue's ``maxReceiveCount``).
- Streams (Kinesis, DynamoDB Streams; Kafka per topic-partition): the checkpoint is the
  lowest reported sequence number (offset) of a shard (partition); everything of that
  shard from the checkpoint on is redelivered. When the record at the checkpoint has been
  delivered ``max_attempts`` times and fails again, what is left of the shard's batch is
  discarded (Lambda's ``MaximumRetryAttempts`` and on-failure destination).
- A batch fails whole (everything redelivered) when the function raises (for a record
  handler: ``BatchFailedError``, every record failed), or returns a response Lambda
  rejects: not a mapping, not JSON, an item without ``itemIdentifier``, or an identifier
  that was not in the batch.
- An EventBridge pipe's batch (a top-level list) is redelivered as its source's.
- A Firehose transformation is Firehose's, not Lambda's (see ``_firehose.py``): a record
  answered ``ProcessingFailed`` goes to the ``processing-failed`` prefix at once
  (``dead_letters``); a failed invocation is retried whole, ``max_attempts`` invocations
  in all (Firehose's ``NumberOfRetries`` + 1); ``Ok`` records' data is in ``transformed``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .._core.handlers import is_async_callable
from .._errors import exception_text
from .._lambda.context import LambdaContext
from .._lambda.invoke import call_function
from .._lambda.response import InvalidResponseError, reported_identifiers
from .._sources import EventType, identity_key

if TYPE_CHECKING:
    from .._core.processor import AsyncBatchProcessor

__all__ = ["Invocation", "InvalidResponseError", "Simulation", "simulate", "simulate_lambda"]

#: What ``context=`` takes: a context reused by every invocation, a function making one
#: per invocation, or ``None`` (a fresh ``LambdaContext()`` per invocation).
ContextArg = Union[None, Callable[[], Any], Any]


@dataclass(frozen=True)
class Invocation:
    """One invocation of the function and what the event source mapping made of it.

    ``event`` is the event as delivered; ``delivered``, ``failed`` (to be redelivered or
    dead-lettered) and ``dead_lettered`` are identifiers in event order; ``error`` is why
    the batch failed whole (the function raised, or its response was invalid), else
    ``None``."""

    event: Any
    response: Any
    error: Optional[BaseException]
    delivered: tuple[Hashable, ...]
    failed: tuple[Hashable, ...]
    dead_lettered: tuple[Hashable, ...]

    @property
    def succeeded(self) -> tuple[Hashable, ...]:
        failed = set(self.failed)
        return tuple(i for i in self.delivered if i not in failed)


@dataclass(frozen=True)
class Simulation:
    """What happened to an event under redelivery.

    - ``deliveries``: identifier -> times delivered, for every record of the event.
    - ``dead_letters``: the records given up on, as last delivered (SQS: the message the
      dead-letter queue receives; streams: the records discarded after the retries).
    - ``invocations``: every ``Invocation``, in order.

    Identifiers are the records' ``itemIdentifier`` values: the ``messageId`` (SQS), the
    sequence number (Kinesis, DynamoDB Streams), ``(partition, offset)`` (Kafka), the
    ``recordId`` (Firehose).

    A Firehose transformation also has ``transformed`` (recordId -> a ``FirehoseResult``
    of the data Firehose delivers, as bytes, and its partition keys) and ``dropped``;
    its ``dead_letters`` are the records written to the ``processing-failed`` prefix."""

    deliveries: dict[Hashable, int]
    dead_letters: tuple[dict[str, Any], ...]
    invocations: tuple[Invocation, ...] = field(repr=False)
    transformed: dict[Hashable, Any] = field(default_factory=dict)
    dropped: tuple[Hashable, ...] = ()

    @property
    def dead_lettered(self) -> tuple[Hashable, ...]:
        """The identifiers of ``dead_letters``, in the order they were given up on."""
        return tuple(i for inv in self.invocations for i in inv.dead_lettered)

    @property
    def redelivered(self) -> dict[Hashable, int]:
        """The records delivered more than once (identifier -> times delivered)."""
        return {ident: n for ident, n in self.deliveries.items() if n > 1}

    @property
    def acknowledged(self) -> tuple[Hashable, ...]:
        """Identifiers acknowledged (processed and not reported), in the order acknowledged."""
        return tuple(i for inv in self.invocations for i in inv.succeeded)


class _Batch:
    """The event as parsed once: its records (pristine copies), identifiers, and for
    streams each record's sequence number and checkpoint group."""

    def __init__(self, event: Any) -> None:
        from .._sources import FailureMode, read_event

        source, records, plan = read_event(event, None)
        self.event = event
        self.event_type = source.event_type
        self.pristine = [copy.deepcopy(raw) for raw in records]
        self.keys = [identity_key(i) for i in plan.identifiers or ()]
        self.streaming = plan.mode is FailureMode.CHECKPOINT
        self.is_sqs = not self.streaming and self.event_type.value == "SQS"
        n = len(records)
        sequence = plan.sequence
        partition = plan.partition
        self.sequence = [sequence(i) for i in range(n)] if sequence is not None else list(range(n))
        self.group: list[Hashable] = [partition(i) for i in range(n)] if partition is not None \
            else [None] * n
        self.rebuild = _rebuilder(event, records)


def _rebuilder(event: Any, records: list[Any]) -> Callable[[list[int], list[dict[str, Any]]],
                                                            Any]:
    """How to make an event holding some of the records: a ``Records`` list, an
    EventBridge pipe's list, or Kafka's ``records`` mapping (each record goes back under
    the key it came from)."""
    if isinstance(event, list):
        return lambda indices, raws: raws
    if isinstance(event.get("Records"), list):
        def flat(indices: list[int], raws: list[dict[str, Any]]) -> dict[str, Any]:
            return {**copy.deepcopy({k: v for k, v in event.items() if k != "Records"}),
                    "Records": raws}
        return flat
    grouped = event.get("records")
    home: dict[int, Any] = {}
    if isinstance(grouped, Mapping):
        for name, items in grouped.items():
            for raw in items if isinstance(items, list) else ():
                home[id(raw)] = name
    where = [home.get(id(raw)) for raw in records]

    def nested(indices: list[int], raws: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[Any, list[dict[str, Any]]] = {}
        for index, raw in zip(indices, raws, strict=True):
            out.setdefault(where[index], []).append(raw)
        return {**copy.deepcopy({k: v for k, v in event.items() if k != "records"}),
                "records": out}
    return nested


def _new_context(context: ContextArg) -> Any:
    """The context of one invocation: fresh by default, made by a factory (a class such
    as ``LambdaContext`` included), or the one object given."""
    if context is None:
        return LambdaContext()
    if isinstance(context, type) or (
            callable(context) and not hasattr(context, "get_remaining_time_in_millis")):
        return context()
    return context


Invoke = Callable[[Any, Any], Awaitable[Any]]


async def _run(invoke: Invoke, event: Any, context: ContextArg,
               max_attempts: int) -> Simulation:
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(
            f"max_attempts={max_attempts!r}: give the number of deliveries before a record "
            "is dead-lettered, an int >= 1 (SQS's maxReceiveCount)")
    batch = _Batch(event)
    if batch.event_type is EventType.FIREHOSE:  # Firehose's rules, not Lambda's
        from ._firehose import run_firehose

        simulation: Simulation = await run_firehose(
            invoke, event, lambda: _new_context(context), max_attempts, _WholeBatchFailure)
        return simulation
    keys = batch.keys
    n = len(keys)
    known = set(keys)
    if len(known) != n:
        raise ValueError("the event holds two records with one identifier; give every record "
                         "its own messageId / sequence number / offset")
    deliveries = dict.fromkeys(keys, 0)
    count = [0] * n
    last: list[Optional[dict[str, Any]]] = [None] * n
    invocations: list[Invocation] = []
    dead_letters: list[dict[str, Any]] = []
    pending = list(range(n))
    first = True
    while pending or first:
        first = False
        raws = []
        for index in pending:
            count[index] += 1
            deliveries[keys[index]] = count[index]
            raw = copy.deepcopy(batch.pristine[index])
            if batch.is_sqs:
                raw = _sqs_redelivery(raw, count[index])
            last[index] = raw
            raws.append(copy.deepcopy(raw))  # what the function gets; it may edit it
        delivered = batch.rebuild(pending, raws)
        error: Optional[BaseException] = None
        response: Any = None
        try:
            response = await invoke(delivered, _new_context(context))
            reported = set(reported_identifiers(response, {keys[i] for i in pending}))
        except _WholeBatchFailure as exc:
            error = exc.error
        except InvalidResponseError as exc:
            error = exc
        if error is not None:
            failed = list(pending)
        elif batch.streaming:
            failed = _from_checkpoints(batch, pending, reported)
        else:
            failed = [i for i in pending if keys[i] in reported]
        dead = _give_up(batch, failed, count, max_attempts)
        dead_set = set(dead)
        for index in dead:
            dead_letters.append(last[index])  # type: ignore[arg-type]
        invocations.append(Invocation(
            event=delivered, response=response, error=error,
            delivered=tuple(keys[i] for i in pending), failed=tuple(keys[i] for i in failed),
            dead_lettered=tuple(keys[i] for i in dead)))
        pending = [i for i in failed if i not in dead_set]
    return Simulation(deliveries=deliveries, dead_letters=tuple(dead_letters),
                      invocations=tuple(invocations))


def _sqs_redelivery(raw: dict[str, Any], receive_count: int) -> dict[str, Any]:
    attributes = raw.get("attributes")
    if isinstance(attributes, dict):
        attributes["ApproximateReceiveCount"] = str(receive_count)
    if receive_count > 1 and "receiptHandle" in raw:
        raw["receiptHandle"] = uuid.uuid4().hex
    return raw


def _from_checkpoints(batch: _Batch, pending: list[int], reported: set[Hashable]) -> list[int]:
    """Stream records Lambda redelivers: in each checkpoint group with a reported record,
    every record at or above the lowest reported sequence number."""
    lowest: dict[Hashable, int] = {}
    for index in pending:
        if batch.keys[index] in reported:
            group, seq = batch.group[index], batch.sequence[index]
            if group not in lowest or seq < lowest[group]:
                lowest[group] = seq
    return [i for i in pending
            if batch.group[i] in lowest and batch.sequence[i] >= lowest[batch.group[i]]]


def _give_up(batch: _Batch, failed: list[int], count: list[int], max_attempts: int) -> list[int]:
    if not batch.streaming:
        return [i for i in failed if count[i] >= max_attempts]
    heads: dict[Hashable, int] = {}
    for index in failed:
        group = batch.group[index]
        if group not in heads or batch.sequence[index] < batch.sequence[heads[group]]:
            heads[group] = index
    exhausted = {group for group, head in heads.items() if count[head] >= max_attempts}
    return [i for i in failed if batch.group[i] in exhausted]


class _WholeBatchFailure(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(exception_text(error))
        self.error = error


async def simulate(
    handler: Callable[..., Awaitable[Any]],
    event: Any,
    *,
    processor: Optional[AsyncBatchProcessor] = None,
    context: ContextArg = None,
    max_attempts: int = 3,
) -> Simulation:
    """Run ``event`` through Lambda's event source mapping in memory, with your record
    handler (``async def handle(record)``, or ``(record, context)``) on ``processor``
    (default ``asyncbatch.AsyncBatchProcessor()``), redelivering what the partial batch
    response reports until every record is acknowledged or dead-lettered.

    ``context``: ``None`` (a fresh ``LambdaContext()`` per invocation, as Lambda gives),
    a function returning one per invocation, or one context for every invocation.
    ``max_attempts``: deliveries before a record is dead-lettered (SQS) or the rest of its
    shard's batch is discarded (streams); for a Firehose event, invocations before a
    failing batch goes to ``processing-failed`` (Firehose's ``NumberOfRetries`` + 1).

    Every record failing (``BatchFailedError``) fails the whole batch, as Lambda sees it.
    A malformed event or a bad handler raises at once (``InvalidEventError``,
    ``ConfigurationError``)."""
    from .._core.processor import AsyncBatchProcessor, async_process_partial_response
    from .._errors import BatchFailedError

    if processor is None:
        processor = AsyncBatchProcessor()

    async def invoke(delivered: Any, ctx: Any) -> Any:
        try:
            return await async_process_partial_response(delivered, handler, processor, ctx)
        except BatchFailedError as exc:
            raise _WholeBatchFailure(exc) from exc

    return await _run(invoke, event, context, max_attempts)


async def simulate_lambda(
    function: Callable[[dict[str, Any], Any], Any],
    event: Any,
    *,
    context: ContextArg = None,
    max_attempts: int = 3,
) -> Simulation:
    """As ``simulate``, with a whole Lambda function ``function(event, context)`` returning
    the partial batch response. An ``async def`` function is awaited; a plain function runs
    on a worker thread (it may call ``asyncbatch.process_partial_response``, which runs its
    own event loop). Any exception it raises fails the whole batch, as on Lambda."""
    if not callable(function):
        raise ValueError(f"function={function!r}: give your Lambda handler, "
                         "def lambda_handler(event, context)")
    is_async = is_async_callable(function)

    async def invoke(delivered: Any, ctx: Any) -> Any:
        try:
            return await call_function(function, delivered, ctx, is_async=is_async)
        except Exception as exc:
            raise _WholeBatchFailure(exc) from exc

    return await _run(invoke, event, context, max_attempts)
