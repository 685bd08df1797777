"""A continuous SQS worker: ``consume(queue_url, handler, processor)`` (the public names
are re-exported by ``asyncbatch.aws.sqs``).

One ``processor.stream()`` runs every message, fed by an async generator of the
messages received; around it, in one task group (nothing outlives ``consume``):

- receivers: ``ReceiveMessage`` long polls. A receiver first takes places (at most
  ``concurrency + prefetch`` messages are held unsettled), asks for at most
  ``min(10, places taken)`` and gives back what it did not get;
- the outcome loop: a succeeded message (or one the failure sink took) is deleted, a
  failed one is left for SQS to deliver again (or its visibility set to
  ``failure_visibility_timeout``), a skipped one (not started: a stop) is made visible
  at once; its place is given back. FIFO: the stream gets one message of a group at a
  time, the next once the one before settled; after a failure the group's later
  messages received are made visible at once (SQS delivers them again after it);
- the settler (``_settling.py``): those deletes and visibility changes, coalesced into
  ``DeleteMessageBatch`` / ``ChangeMessageVisibilityBatch`` calls, retried;
- the heartbeat (``_settling.py``): ``ChangeMessageVisibilityBatch`` for every message
  held (waiting, running, being deleted) before its visibility runs out;
- the stop watch: receiving stops, the stream starts nothing more (``Stream.stop``),
  what was received and not started is made visible at once; the running handlers get
  ``grace`` seconds, then are cancelled and their messages made visible at once.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Optional

import anyio

from .._core.retry import Retry
from .._errors import ConfigurationError, describe
from .._frozen import Frozen
from .._sources.sqs import SQSRecord
from ._client import error_code, open_client, region_in_url, require_asyncio
from ._settling import (
    BATCH,
    HEARTBEAT_CALLS,
    RUNNING,
    SETTLE_CALLS,
    SETTLING,
    Counts,
    Held,
    Settler,
    Warnings,
    transient,
)

if TYPE_CHECKING:
    from .._core.handlers import Handler
    from .._core.processor import AsyncBatchProcessor
    from .._core.report import Outcome
    from .._core.stream import Stream

__all__ = ["ConsumeSummary", "consume"]

logger = logging.getLogger("asyncbatch.consume")

_MAX_VISIBILITY = 43_200  # SQS: 12 hours
_FLUSH_SECONDS = 10.0  # after the stream: deletes and releases still going out, at most
_DEFAULT_RETRY = Retry(attempts=8, base=0.1, cap=5.0)
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class ConsumeSummary(Frozen):
    """What one ``consume`` run did (a snapshot while it runs, for ``on_progress``).

    Every message received is counted once in ``succeeded``, ``failed``, ``sunk`` or
    ``released`` when it is settled (``in_flight``: not yet):

    - ``succeeded``: the handler returned (or idempotency replayed it); deleted.
    - ``failed``: the handler failed for good; left for SQS to deliver again (and to
      dead-letter by the queue's redrive policy).
    - ``sunk``: failed, and the failure sink took it; deleted.
    - ``released``: never started (received when stopping, a FIFO group's later
      message after a failure) or cancelled at the end of the grace period; made
      visible again at once.

    ``deleted`` counts the deletes SQS confirmed; ``undeleted`` the succeeded or sunk
    messages whose delete did not go through (an expired receipt handle, errors past the
    retries): SQS delivers them again. ``expired``: messages whose visibility SQS would
    no longer extend (it may deliver them again while they run). ``elapsed``: seconds.
    """

    __slots__ = ("deleted", "elapsed", "expired", "failed", "received", "released",
                 "succeeded", "sunk", "undeleted")

    received: int
    succeeded: int
    failed: int
    sunk: int
    released: int
    deleted: int
    undeleted: int
    expired: int
    elapsed: float

    def __init__(self, *, received: int = 0, succeeded: int = 0, failed: int = 0,
                 sunk: int = 0, released: int = 0, deleted: int = 0, undeleted: int = 0,
                 expired: int = 0, elapsed: float = 0.0) -> None:
        self._set(received=received, succeeded=succeeded, failed=failed, sunk=sunk,
                  released=released, deleted=deleted, undeleted=undeleted, expired=expired,
                  elapsed=elapsed)

    @property
    def in_flight(self) -> int:
        """Messages received and not yet settled (waiting or running)."""
        return self.received - self.succeeded - self.failed - self.sunk - self.released

    def __str__(self) -> str:
        text = (f"{self.received} received: {self.succeeded} succeeded, {self.failed} "
                f"failed, {self.sunk} sunk, {self.released} released; {self.deleted} "
                f"deleted")
        if self.undeleted:
            text += f", {self.undeleted} not deleted (delivered again)"
        if self.expired:
            text += f", {self.expired} lost their visibility while held"
        return f"{text} in {self.elapsed:.1f} s"


class _Settings(Frozen):
    """How one ``consume`` runs (checked once, before anything is opened)."""

    __slots__ = ("failure_visibility", "grace", "least", "on_progress", "places",
                 "progress_every", "receivers", "retry", "visibility", "wait_time")

    failure_visibility: Optional[int]
    grace: float
    least: int  # free places a receiver waits for before it asks SQS
    on_progress: Optional[Callable[[ConsumeSummary], Any]]
    places: int
    progress_every: float
    receivers: int
    retry: Retry
    visibility: Optional[int]
    wait_time: int

    def __init__(self, **fields: Any) -> None:
        self._set(**fields)


class _Queue(Frozen):
    __slots__ = ("arn", "fifo", "region", "url", "visibility")

    url: str
    arn: str
    region: str
    fifo: bool
    visibility: int

    def __init__(self, url: str, arn: str, region: str, fifo: bool, visibility: int) -> None:
        self._set(url=url, arn=arn, region=region, fifo=fifo, visibility=visibility)


class _Places:
    """Room for received messages not yet settled. A receiver takes places before it asks
    SQS (at least ``least``, up to ``most``, when that many are free), gives back those it
    got no message for; the outcome loop gives back one per settled message."""

    __slots__ = ("_event", "closed", "free")

    def __init__(self, free: int) -> None:
        self.free = free
        self.closed = False
        self._event: Optional[anyio.Event] = None

    async def take(self, most: int, least: int) -> int:
        """Places taken (0: closed, stop receiving)."""
        while not self.closed and self.free < least:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self.closed:
            return 0
        taken = min(most, self.free)
        self.free -= taken
        return taken

    def give(self, count: int) -> None:
        self.free += count
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()


_group_of = attrgetter("message_group_id")


async def consume(
    queue_url: str,
    handler: Handler,
    processor: AsyncBatchProcessor,
    *,
    stop: Any = None,
    session: Any = None,
    endpoint_url: Optional[str] = None,
    region_name: Optional[str] = None,
    config: Any = None,
    wait_time: int = 20,
    visibility_timeout: Optional[int] = None,
    failure_visibility_timeout: Optional[int] = None,
    grace: float = 20.0,
    prefetch: int = 10,
    receivers: Optional[int] = None,
    sqs_retry: Optional[Retry] = None,
    on_progress: Optional[Callable[[ConsumeSummary], Any]] = None,
    progress_every: float = 1.0,
) -> ConsumeSummary:
    """Receive the messages of the SQS queue at ``queue_url`` and run ``handler`` on each
    (an ``asyncbatch.SQSRecord``, as in a Lambda SQS event; with ``model=``, the parsed
    body) under ``processor`` (its concurrency, retries, timeout, failure sink, hooks,
    idempotency, rate limit), until ``stop`` is set; return what was done.

    - ``stop``: an ``asyncio.Event`` or ``anyio.Event`` (anything with ``is_set()`` and an
      async ``wait()``); ``None``: run until cancelled.
    - AWS settings: the standard configuration (environment, profiles,
      ``AWS_ENDPOINT_URL``), or ``session`` (an ``aioboto3.Session``), ``endpoint_url``,
      ``region_name`` (default: the queue URL's region) and ``config`` (a botocore
      ``Config``; its settings win over the connection pool this sizes).
    - ``wait_time``: long-poll seconds of a ``ReceiveMessage`` (0 to 20).
    - ``visibility_timeout``: seconds a received message stays invisible, renewed while it
      is held (default: the queue's ``VisibilityTimeout``).
    - ``failure_visibility_timeout``: a failed message is made visible again after this
      many seconds (0: at once); default: when its visibility runs out.
    - ``grace``: seconds the running handlers get after ``stop`` before they are
      cancelled (their messages made visible again at once).
    - ``prefetch``: messages held beyond ``processor.concurrency``, received and not
      started (at most ``concurrency + prefetch`` held unsettled).
    - ``receivers``: concurrent ``ReceiveMessage`` calls (default: enough to fill every
      place in one round, at most 16).
    - ``sqs_retry``: how throttled or failing SQS calls are retried (default
      ``Retry(attempts=8, base=0.1, cap=5.0)``; receives are retried for as long as the
      worker runs).
    - ``on_progress``: called every ``progress_every`` seconds with a ``ConsumeSummary``
      of the run so far (an exception it raises is logged and ignored).

    At least once: a message is deleted only after its handler succeeded or the failure
    sink took it, so a message may be handled more than once (a worker that dies, a
    delete that does not go through): make the handler idempotent (``idempotency=``).

    Needs asyncio (aioboto3 does). ``ConfigurationError`` for a bad option or a queue
    that cannot work (none at that URL, a visibility timeout of 0); an AWS error no retry
    mends while it runs (the queue deleted, access denied) stops the worker as ``stop``
    would and is raised after."""
    from .._core.processor import AsyncBatchProcessor

    if not isinstance(processor, AsyncBatchProcessor):
        raise ConfigurationError(
            f"processor must be an asyncbatch.AsyncBatchProcessor, got "
            f"{type(processor).__name__}")
    if processor.fifo_stop_on_failure:
        raise ConfigurationError(
            "fifo_stop_on_failure=True stops a batch at its first failure; a worker has no "
            "batch (it would stop for good): leave it False, a failed message group waits "
            "for its message to come back")
    if stop is not None and not (callable(getattr(stop, "is_set", None))
                                 and callable(getattr(stop, "wait", None))):
        raise ConfigurationError(
            f"stop={stop!r}: give an asyncio.Event or anyio.Event (is_set() and an async "
            "wait()), or None to run until cancelled")
    if not isinstance(queue_url, str) or not queue_url:
        raise ConfigurationError(f"queue_url={queue_url!r}: give the queue's URL")
    if processor.idempotency is not None:
        try:
            processor.idempotency.check_stream()
        except ConfigurationError:
            raise ConfigurationError(
                "Idempotency(store) over consume() needs key=: the message id "
                "(key=lambda record: record.message_id) catches a message delivered again, "
                "a key from the body (key=lambda record: record.json()['order_id']) also "
                "the same order sent twice") from None
    settings = _settings(processor, wait_time, visibility_timeout, failure_visibility_timeout,
                         grace, prefetch, receivers, sqs_retry, on_progress, progress_every)
    require_asyncio("consume", ConfigurationError,
                    "run it under asyncio.run() (or anyio.run(..., backend='asyncio'))")
    started = anyio.current_time()
    stack, client = await open_client(session, "sqs", {
        "endpoint_url": endpoint_url,
        "region_name": region_name or region_in_url(queue_url),
        "config": _pool_config(settings, config)})
    async with stack:
        queue = await _describe_queue(client, queue_url, settings)
        worker = _Worker(client, queue, settings)
        # FIFO: the feed hands the stream one message of a group at a time (see
        # _next_of_group); the stream's key keeps a group to one at a time regardless
        flow = processor.stream(worker.feed(), handler, _group_of if queue.fifo else None,
                                resume_failed_keys=queue.fifo)
        return await worker.run(flow, stop, started)


def _settings(processor: AsyncBatchProcessor, wait_time: Any, visibility: Any,
              failure_visibility: Any, grace: Any, prefetch: Any, receivers: Any,
              sqs_retry: Any, on_progress: Any, progress_every: Any) -> _Settings:
    def whole(name: str, value: Any, low: int, high: int, example: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(
                f"{name}={value!r}: give a whole number from {low} to {high}, e.g. {example}")

    whole("wait_time", wait_time, 0, 20, "20 (seconds of a long poll)")
    if visibility is not None:
        whole("visibility_timeout", visibility, 1, _MAX_VISIBILITY, "30 (seconds)")
    if failure_visibility is not None:
        whole("failure_visibility_timeout", failure_visibility, 0, _MAX_VISIBILITY,
              "0 (deliver again at once) or 60")
    whole("prefetch", prefetch, 0, 10_000, "10")
    if receivers is not None:
        whole("receivers", receivers, 1, 1_000, "4")
    for name, value in (("grace", grace), ("progress_every", progress_every)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value < math.inf or (name == "progress_every" and value == 0):
            raise ConfigurationError(f"{name}={value!r}: give seconds, e.g. 20.0")
    if sqs_retry is not None and not isinstance(sqs_retry, Retry):
        raise ConfigurationError(f"sqs_retry={sqs_retry!r}: give asyncbatch.Retry(...) or None")
    if on_progress is not None and not callable(on_progress):
        raise ConfigurationError(
            f"on_progress={on_progress!r}: give a function of a ConsumeSummary, or None")
    places = processor.concurrency + prefetch
    return _Settings(
        failure_visibility=failure_visibility, grace=float(grace),
        # half the prefetch free before a receive: a few receives of many messages, not
        # one receive per message settled
        least=max(1, min(BATCH, prefetch // 2)), on_progress=on_progress,
        places=places, progress_every=float(progress_every),
        receivers=receivers if receivers is not None else min(16, math.ceil(places / BATCH)),
        retry=sqs_retry if sqs_retry is not None else _DEFAULT_RETRY,
        visibility=visibility, wait_time=wait_time)


def _pool_config(settings: _Settings, given: Any) -> Any:
    """A botocore ``Config`` whose connection pool holds every receiver's long poll and
    the settler's and heartbeat's calls beside them (aiobotocore's default pool of 10
    would queue a heartbeat behind long polls); the caller's ``config`` wins."""
    from botocore.config import Config

    pool = settings.receivers + SETTLE_CALLS + HEARTBEAT_CALLS + 2
    config = Config(max_pool_connections=pool)
    return config if given is None else config.merge(given)


async def _describe_queue(client: Any, url: str, settings: _Settings) -> _Queue:
    """The queue's ARN, whether it is FIFO and the visibility timeout to keep."""
    from ..runner._events import arn_region
    from .s3_import._backoff import Backoff  # a call retried while transient

    try:
        found = await Backoff(settings.retry, None, None).call(
            client.get_queue_attributes, QueueUrl=url,
            AttributeNames=["QueueArn", "VisibilityTimeout", "FifoQueue", "RedrivePolicy"])
    except Exception as exc:
        if error_code(exc) not in _NO_QUEUE:
            raise
        raise ConfigurationError(
            f"the queue {url} does not exist (or not in this region and account): check "
            "the URL, the region and the endpoint (AWS_ENDPOINT_URL)") from exc
    attributes = found.get("Attributes") or {}
    arn = str(attributes.get("QueueArn") or "")
    visibility = settings.visibility if settings.visibility is not None \
        else int(attributes.get("VisibilityTimeout", 30))
    if visibility < 1:
        raise ConfigurationError(
            f"the queue {url} has a visibility timeout of {visibility} s: every message "
            "would be delivered again while it runs; pass visibility_timeout=30 (seconds, "
            "renewed while a message is held)")
    fifo = attributes.get("FifoQueue") == "true" or url.endswith(".fifo")
    if fifo:
        _warn_of_tight_redrive(url, attributes.get("RedrivePolicy"))
    return _Queue(url, arn, arn_region(arn), fifo, visibility)


#: a FIFO queue's maxReceiveCount below this leaves too little room for releases
FIFO_RECEIVES_ADVISED = 5


def _warn_of_tight_redrive(url: str, policy: Any) -> None:
    """A FIFO group's messages received behind a failed one are released unrun, and each
    release counts a receive: with a small ``maxReceiveCount`` they can reach the
    dead-letter queue without having run. Said once, at start."""
    try:
        receives = int(json.loads(policy)["maxReceiveCount"]) if policy else None
    except (TypeError, ValueError, KeyError):
        return
    if receives is not None and receives < FIFO_RECEIVES_ADVISED:
        logger.warning(
            "the FIFO queue %s moves a message to its dead-letter queue after %d receives; "
            "a message received behind a failed one of its group is released unrun, which "
            "SQS counts as a receive, so it can be dead-lettered without having run %d "
            "times (or at all): give the redrive policy a maxReceiveCount of at least %d",
            url, receives, receives, FIFO_RECEIVES_ADVISED)


class _Worker:
    """The state of one ``consume`` run (see the module docstring)."""

    def __init__(self, client: Any, queue: _Queue, settings: _Settings) -> None:
        self.client = client
        self.queue = queue
        self.settings = settings
        self.retry = settings.retry
        self.places = _Places(settings.places)
        self.held: dict[SQSRecord, Held] = {}  # received, not yet deleted/released/left
        self.inbox: deque[SQSRecord] = deque()  # received, ready for the stream
        self._inbox_event: Optional[anyio.Event] = None
        # FIFO: per message group with a message in the inbox or the stream, the group's
        # later messages received, in order (the stream gets one of a group at a time)
        self.behind: dict[Any, deque[SQSRecord]] = {}
        self.counts = Counts()
        self.warnings = Warnings()
        self.settler = Settler(client, queue.url, settings.retry, self.held, self.counts,
                               self.warnings, self._fail)
        self.stopping = False
        self.fatal: Optional[BaseException] = None
        self.stream: Optional[Stream] = None
        self.grace_scope: Optional[anyio.CancelScope] = None
        self.started = 0.0
        from ..runner._events import sqs_record

        self._record_of = sqs_record  # a message as Lambda's SQS event holds it

    def snapshot(self) -> ConsumeSummary:
        counts = self.counts
        return ConsumeSummary(
            received=counts.received, succeeded=counts.succeeded, failed=counts.failed,
            sunk=counts.sunk, released=counts.released, deleted=counts.deleted,
            undeleted=counts.undeleted, expired=counts.expired,
            elapsed=anyio.current_time() - self.started)

    # -- the run ---------------------------------------------------------------------

    async def run(self, flow: Stream, stop: Any, started: float) -> ConsumeSummary:
        self.started = started
        if stop is not None and stop.is_set():
            self._begin_stop()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self.settler.run)
                tasks.start_soon(self.settler.heartbeat, self.queue.visibility)
                if stop is not None:
                    tasks.start_soon(self._watch, stop)
                if self.settings.on_progress is not None:
                    tasks.start_soon(self._progress)
                async with anyio.create_task_group() as receiving:
                    for _ in range(self.settings.receivers):
                        receiving.start_soon(self._receiver)
                    await self._process(flow)
                    receiving.cancel_scope.cancel()  # long polls still waiting
                self._release_held()
                with anyio.move_on_after(_FLUSH_SECONDS):
                    await self.settler.settled()
                tasks.cancel_scope.cancel()
        except BaseException as exc:
            # Cancelled from outside (or a KeyboardInterrupt from a handler): send what is
            # pending and hand back what is held, shielded and bounded, so that little
            # waits for its visibility to run out.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_FLUSH_SECONDS):
                self._release_held()
                await self.settler.flush()
            from .._core.pool import fatal_in

            fatal = fatal_in(exc)
            if fatal is not None and fatal is not exc:
                raise fatal from None  # KeyboardInterrupt / SystemExit, unwrapped
            raise
        deletes, changes = self.settler.unsent()
        if deletes or changes:
            self.counts.undeleted += deletes
            logger.warning("%d delete(s) and %d visibility change(s) were not sent within "
                           "%.0f s of the end: those messages come back", deletes, changes,
                           _FLUSH_SECONDS)
        if self.fatal is not None:
            raise self.fatal
        return self.snapshot()

    async def _process(self, flow: Stream) -> None:
        """Run the stream; each outcome settles its message. Ends once stopped and the
        running handlers are done, or when the grace period ends (leaving the block
        cancels them; their messages are released by ``run``)."""
        with anyio.CancelScope() as scope:
            self.grace_scope = scope
            if self.stopping:
                scope.deadline = anyio.current_time() + self.settings.grace
            async with flow as outcomes:
                self.stream = outcomes
                if self.stopping:
                    outcomes.stop()
                async for outcome in outcomes:
                    self._settle(outcome)
        self.stream = None

    async def _watch(self, stop: Any) -> None:
        if not stop.is_set():
            await stop.wait()
        running = sum(1 for held in self.held.values() if held.state == RUNNING)
        logger.info("stopping: no more receives; %d running handler(s) get %.1f s",
                    running, self.settings.grace)
        self._begin_stop()

    def _fail(self, exc: BaseException, operation: str) -> None:
        """A call failed in a way no retry mends: stop as ``stop`` would, raise it after."""
        logger.error("%s on %s failed: %s; stopping", operation, self.queue.url,
                     describe(exc))
        if self.fatal is None:
            self.fatal = exc
        self._begin_stop()

    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.places.close()
        self._wake_feed()
        if self.stream is not None:
            self.stream.stop()
        if self.grace_scope is not None:
            self.grace_scope.deadline = anyio.current_time() + self.settings.grace
        inbox = self.inbox
        while inbox:  # received, never started: visible again at once
            self._release(self.held[inbox.popleft()])
        for group in list(self.behind):
            self._release_group(group)

    # -- receiving -------------------------------------------------------------------

    async def _receiver(self) -> None:
        places = self.places
        least = self.settings.least
        while not self.stopping:
            taken = await places.take(BATCH, least)
            if not taken:
                return
            messages, sent = await self._receive(taken)
            places.give(taken - len(messages))
            if messages:
                self._arrived(messages, sent)

    async def _receive(self, count: int) -> tuple[list[Mapping[str, Any]], float]:
        """One ``ReceiveMessage`` of up to ``count`` messages, retried while throttled or
        failing for as long as the worker runs; ``[]`` when stopping or failed for good."""
        params: dict[str, Any] = {
            "QueueUrl": self.queue.url, "MaxNumberOfMessages": count,
            "WaitTimeSeconds": self.settings.wait_time,
            "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}
        if self.settings.visibility is not None:
            params["VisibilityTimeout"] = self.settings.visibility
        attempt = 0
        while not self.stopping:
            sent = anyio.current_time()
            try:
                response = await self.client.receive_message(**params)
            except Exception as exc:
                if not transient(self.retry, exc):
                    self._fail(exc, "ReceiveMessage")
                    break
                attempt += 1
                self.warnings.warn("receive", "ReceiveMessage on %s failed (%s); retrying",
                                   self.queue.url, describe(exc))
                await anyio.sleep(self.retry.delay(min(attempt, self.retry.attempts)))
                continue
            return list(response.get("Messages") or ()), sent
        return [], 0.0

    def _arrived(self, messages: Sequence[Mapping[str, Any]], sent: float) -> None:
        sqs_record = self._record_of
        queue = self.queue
        until = sent + queue.visibility
        behind = self.behind
        for message in messages:
            record = SQSRecord(sqs_record(message, queue.arn, queue.region))
            held = Held(record, str(message["MessageId"]), str(message["ReceiptHandle"]),
                         until)
            self.held[record] = held
            self.counts.received += 1
            if self.stopping:
                self._release(held)  # received while stopping: never started
            elif queue.fifo:
                held.group = group = record.message_group_id
                later = behind.get(group)
                if later is not None:
                    later.append(record)  # its turn comes when the one before settles
                else:
                    behind[group] = deque()
                    self.inbox.append(record)
            else:
                self.inbox.append(record)
        self._wake_feed()

    async def feed(self) -> AsyncIterator[SQSRecord]:
        """The stream's input: the messages received, as they arrive, until stopping."""
        inbox = self.inbox
        while True:
            while not inbox and not self.stopping:
                event = self._inbox_event = anyio.Event()
                await event.wait()
            if self.stopping:
                return
            record = inbox.popleft()
            self.held[record].state = RUNNING
            yield record

    def _wake_feed(self) -> None:
        event, self._inbox_event = self._inbox_event, None
        if event is not None:
            event.set()

    # -- settling --------------------------------------------------------------------

    def _settle(self, outcome: Outcome) -> None:
        held = self.held.get(outcome.record)
        if held is None or held.state != RUNNING:  # pragma: no cover - defensive
            return
        self.places.give(1)
        counts = self.counts
        status = outcome.status
        if status == "succeeded":
            if outcome.sunk:
                counts.sunk += 1
            else:
                counts.succeeded += 1
            self.settler.send(held, None)
        elif status == "failed":
            counts.failed += 1
            self._log_failure(held, outcome.exception)
            if self.settings.failure_visibility is None:
                del self.held[held.record]  # left: SQS delivers it again
            else:
                self.settler.send(held, self.settings.failure_visibility)
        else:  # skipped: never started (a stop)
            self._release(held)
        if self.queue.fifo:
            self._next_of_group(held.group, status == "succeeded")

    def _next_of_group(self, group: Any, ok: bool) -> None:
        """FIFO: a message of ``group`` settled. Its next message received goes to the
        stream; after a failure, the group's later messages received are made visible
        again at once instead (SQS delivers them again after the failed one: in order)."""
        if not ok:
            self._release_group(group)
            return
        later = self.behind.get(group)
        if later:
            self.inbox.append(later.popleft())
            self._wake_feed()
        else:
            self.behind.pop(group, None)

    def _release_group(self, group: Any) -> None:
        """A FIFO group's later messages received, released unrun: their places are
        free again (they never reach the stream, whose outcomes give places back)."""
        behind = self.behind.pop(group, ())
        for record in behind:
            self._release(self.held[record])
        if behind:
            self.places.give(len(behind))

    def _release(self, held: Held) -> None:
        self.counts.released += 1
        self.settler.send(held, 0)

    def _release_held(self) -> None:
        """After the stream: what it did not give back (cancelled at the end of the grace
        period) and what is still waiting is made visible again at once."""
        for held in list(self.held.values()):
            if held.state != SETTLING:
                self._release(held)
        self.inbox.clear()
        self.behind.clear()

    def _log_failure(self, held: Held, exc: Optional[BaseException]) -> None:
        what = describe(exc) if exc is not None else "failed"
        try:
            receives = held.record.receive_count
        except Exception:  # the handler emptied or replaced its record
            receives = 0
        self.warnings.warn("handler", "message %s failed (receive %d): %s; SQS delivers it "
                           "again", held.message_id, receives, what)

    async def _progress(self) -> None:
        report = self.settings.on_progress
        assert report is not None
        while True:
            await anyio.sleep(self.settings.progress_every)
            try:
                report(self.snapshot())
            except Exception as exc:
                logger.warning("on_progress raised %s (ignored)", describe(exc))

