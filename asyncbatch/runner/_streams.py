"""Kinesis Data Streams and DynamoDB Streams as Lambda's event source mapping reads them:
shard iterators, batches in sequence order, a checkpoint at the lowest reported sequence
number, retries from it, bisect on error, a retry limit with an on-failure destination,
and a parallelization factor that keeps records of one key in order."""

from __future__ import annotations

import abc
import datetime as _dt
import json
import logging
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, ClassVar, Optional, Union

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from .._core.retry import aws_error_code
from .._errors import ConfigurationError
from .._sources.dynamodb import DYNAMODB
from .._sources.dynamodb_json import DynamoDBJSONError
from .._sources.kinesis import KINESIS
from ._checkpoint import CheckpointStore, MemoryCheckpointStore
from ._core import Answer, BatchResult, Env, Poller, Wakeup, check_positive, shielded
from ._events import arn_account, arn_region, dynamodb_record, epoch, kinesis_record

__all__ = ["DynamoDBStreamPoller", "KinesisPoller", "OnFailure"]

logger = logging.getLogger("asyncbatch.runner")

_AWS_ERRORS = (ClientError, BotoCoreError)

#: The on-failure destination as a callable: it gets the invocation record (the failed
#: batch's metadata, as Lambda sends it to an SQS queue or SNS topic).
OnFailure = Callable[[dict[str, Any]], Awaitable[None]]


def _iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    moment = _dt.datetime.fromtimestamp(epoch, tz=_dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _Stream:
    arn: str
    name: str
    region: str


@dataclass(frozen=True)
class _ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    closed: bool = False  # listed with an EndingSequenceNumber

class _Rec:
    """One record read from a shard: its sequence number as an int (for ordering) and
    as the string Lambda reports, its ordering key, its arrival time, and the event
    record as JSON text: every delivery gets a fresh copy, as from Lambda, so that a
    handler that changes its event does not change what a redelivery sees."""

    __slots__ = ("arrival", "ident", "key", "seq", "text")

    def __init__(self, seq: int, ident: str, record: dict[str, Any], key: str,
                 arrival: float) -> None:
        self.seq = seq
        self.ident = ident
        self.key = key
        self.text = json.dumps(record, separators=(",", ":"))
        self.arrival = arrival

    @property
    def record(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.text)
        return loaded


class _Lane:
    """Records of the keys hashed to one lane, handled one batch at a time, in order.
    ``bounds`` is the bisect stack: upper sequence numbers the next batches stay under."""

    __slots__ = ("arrived", "bounds", "busy", "delivered_upto", "first_arrival", "pending",
                 "retries", "retry_seq")

    def __init__(self) -> None:
        self.pending: deque[_Rec] = deque()
        self.bounds: list[int] = []
        self.arrived = Wakeup()
        self.busy = False
        self.retry_seq: Optional[int] = None
        self.retries = 0
        self.delivered_upto = -1
        self.first_arrival = 0.0

    def form(self, size: int) -> list[_Rec]:
        pending = self.pending
        bounds = self.bounds
        while bounds and pending and pending[0].seq > bounds[-1]:
            bounds.pop()
        if not bounds:
            return list(islice(pending, size))
        limit = bounds[-1]
        batch: list[_Rec] = []
        for rec in islice(pending, size):
            if rec.seq > limit:
                break
            batch.append(rec)
        return batch

    def bisect(self, batch: list[_Rec]) -> None:
        end = batch[-1].seq
        if not self.bounds or self.bounds[-1] != end:
            self.bounds.append(end)
        self.bounds.append(batch[(len(batch) + 1) // 2 - 1].seq)

    def count_retry(self, head: int) -> int:
        if self.retry_seq == head:
            self.retries += 1
        else:
            self.retry_seq = head
            self.retries = 1
        return self.retries


@dataclass(frozen=True)
class _StreamPoller(Poller):
    stream: str
    batch_size: int = 100
    batching_window: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    parallelization_factor: int = 1
    bisect_on_error: bool = False
    max_retry_attempts: Optional[int] = None
    on_failure: Union[str, OnFailure, None] = None
    checkpoint_store: CheckpointStore = field(default_factory=MemoryCheckpointStore)
    poll_interval: float = 1.0

    _service: ClassVar[str]
    _info_key: ClassVar[str]
    _read_limit: ClassVar[int]
    _label: ClassVar[str]

    def __post_init__(self) -> None:
        if not isinstance(self.stream, str) or not self.stream:
            raise ConfigurationError(f"stream={self.stream!r}: give the stream's name or ARN")
        check_positive("batch_size", self.batch_size, minimum=1, integer=True, example="100")
        if self.batch_size > 10_000:
            raise ConfigurationError(f"batch_size={self.batch_size}: at most 10,000")
        check_positive("batching_window", self.batching_window, example="1.0")
        if self.batching_window > 300:
            raise ConfigurationError(
                f"batching_window={self.batching_window}: at most 300 seconds")
        if self.starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ConfigurationError(
                f"starting_position={self.starting_position!r}: 'TRIM_HORIZON' (every "
                "record in the stream) or 'LATEST' (records added from now on)")
        check_positive("parallelization_factor", self.parallelization_factor, minimum=1,
                       integer=True, example="2")
        if self.parallelization_factor > 10:
            raise ConfigurationError(
                f"parallelization_factor={self.parallelization_factor}: at most 10")
        if self.max_retry_attempts is not None:
            check_positive("max_retry_attempts", self.max_retry_attempts, minimum=-1,
                           integer=True, example="2")
            if self.max_retry_attempts == -1:
                object.__setattr__(self, "max_retry_attempts", None)
        if self.on_failure is not None and not (isinstance(self.on_failure, str)
                                                or callable(self.on_failure)):
            raise ConfigurationError(
                "on_failure: give an SQS queue URL or an async callable taking the "
                "invocation record")
        store = self.checkpoint_store
        if not (callable(getattr(store, "load", None)) and callable(getattr(store, "save", None))):
            raise ConfigurationError(
                f"checkpoint_store={store!r}: give a CheckpointStore (with async load and "
                "save), e.g. MemoryCheckpointStore() or DynamoDBCheckpointStore(table)")
        check_positive("poll_interval", self.poll_interval, example="1.0")

    @property
    def describe(self) -> str:
        return (f"{self._label} {self.stream} (batch size {self.batch_size}, "
                f"parallelization {self.parallelization_factor})")

    # -- what differs between Kinesis and DynamoDB Streams ---------------------------------

    @abc.abstractmethod
    async def _resolve(self, env: Env, client: Any, stack: AsyncExitStack) -> _Stream: ...

    @abc.abstractmethod
    async def _shards(self, client: Any, stream: _Stream) -> list[_ShardInfo]: ...

    @abc.abstractmethod
    async def _iterator(self, client: Any, stream: _Stream, shard_id: str, kind: str,
                        sequence: Optional[str]) -> str: ...

    @abc.abstractmethod
    async def _get(self, client: Any, iterator: str,
                   limit: int) -> tuple[list[dict[str, Any]], Optional[str], bool]:
        """``(records, next iterator or None when the shard is closed, caught up)``."""

    @abc.abstractmethod
    def _record(self, raw: Mapping[str, Any], shard_id: str, stream: _Stream) -> _Rec: ...

    @abc.abstractmethod
    def _key(self, record: Mapping[str, Any]) -> str: ...

    # -- running ---------------------------------------------------------------------------

    async def _run(self, env: Env) -> None:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                env.client(self._service, pool=self.parallelization_factor + 4))
            store = self.checkpoint_store
            if hasattr(store, "__aenter__") and hasattr(store, "__aexit__"):
                await stack.enter_async_context(store)  # type: ignore[arg-type]
            sqs = None
            if isinstance(self.on_failure, str):
                sqs = await stack.enter_async_context(env.client("sqs"))
            stream = await self._resolve(env, client, stack)
            consumer = _Consumer(self, env, client, stream, sqs)
            await consumer.run()


class _Consumer:
    """All shards of one stream: parents before children, one ``_ShardRun`` each."""

    def __init__(self, source: _StreamPoller, env: Env, client: Any, stream: _Stream,
                 sqs: Any) -> None:
        self.source = source
        self.env = env
        self.client = client
        self.stream = stream
        self.sqs = sqs
        self.runs: dict[str, _ShardRun] = {}
        self.started: set[str] = set()
        self.tg: Optional[anyio.abc.TaskGroup] = None

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            await self.refresh()
            if not self.started:
                logger.warning("%s has no shards", self.stream.arn)
        self.tg = None

    async def refresh(self) -> None:
        try:
            shards = await self.source._shards(self.client, self.stream)
        except _AWS_ERRORS as exc:
            logger.warning("could not list the shards of %s: %r", self.stream.arn, exc)
            return
        known = {info.shard_id for info in shards}
        assert self.tg is not None
        for info in shards:
            if info.shard_id in self.started:
                continue
            self.started.add(info.shard_id)
            run = _ShardRun(self, info.shard_id, info.closed)
            self.runs[info.shard_id] = run
            parents = tuple(p for p in info.parents if p in known)
            self.tg.start_soon(self._shard, run, parents)

    async def _shard(self, run: _ShardRun, parents: tuple[str, ...]) -> None:
        for parent in parents:
            while not self.runs[parent].finished.is_set():
                if self.env.stopping.is_set() or self.env.budget_spent:
                    return
                with self.env.interruptible(on_budget=True):
                    await self.runs[parent].finished.wait()
        await run.run()
        if run.finished.is_set():
            await self.refresh()  # a closed shard's children
        self.check_drained()

    def check_drained(self) -> None:
        """With ``until_empty``: stop once every shard is read to its end (or closed)
        and nothing is pending, being retried or in flight."""
        env = self.env
        if not env.until_empty or env.stopping.is_set():
            return
        if all(run.drained for run in self.runs.values()):
            logger.info("%s: every shard caught up and acknowledged; stopping",
                        self.stream.arn)
            env.request_stop()


class _ShardRun:
    def __init__(self, consumer: _Consumer, shard_id: str, listed_closed: bool) -> None:
        self.consumer = consumer
        self.listed_closed = listed_closed
        self.source = consumer.source
        self.env = consumer.env
        self.stream = consumer.stream
        self.shard_id = shard_id
        factor = self.source.parallelization_factor
        self.lanes = [_Lane() for _ in range(factor)]
        self.buffer_limit = max(2 * self.source.batch_size * factor, 500)
        self.buffered = 0
        self.space = Wakeup()
        # Every record read and not yet acknowledged, in shard order: [seq, ident, done].
        self.order: deque[list[Any]] = deque()
        self.entries: dict[int, list[Any]] = {}
        self.saved: Optional[int] = None
        self.save_lock: Optional[anyio.Lock] = None
        self.caught_up = False
        self.closed = False
        self.reader_done = False
        self.active = False
        self.finished = anyio.Event()  # closed and everything acknowledged

    @property
    def drained(self) -> bool:
        if not self.active:
            return self.finished.is_set()
        return (self.caught_up or self.closed) and not self.order \
            and not any(lane.busy for lane in self.lanes)

    # -- the shard's reader -----------------------------------------------------------------

    async def run(self) -> None:
        self.active = True
        self.save_lock = anyio.Lock()
        store = self.source.checkpoint_store
        start = await store.load(self.stream.arn, self.shard_id)
        if start is not None:
            self.saved = int(start)
            logger.info("%s %s: resuming after checkpoint %s", self.stream.arn,
                        self.shard_id, start)
        try:
            async with anyio.create_task_group() as tg:
                for lane in self.lanes:
                    tg.start_soon(self._lane, lane)
                try:
                    await self._read(start)
                finally:
                    self.reader_done = True
                    for lane in self.lanes:
                        lane.arrived.notify()
        finally:
            self.active = False
        if self.closed and not self.order:
            self.finished.set()

    async def _start_iterator(self, after: Optional[str]) -> str:
        if after is not None:
            return await self.source._iterator(self.consumer.client, self.stream,
                                               self.shard_id, "AFTER_SEQUENCE_NUMBER", after)
        return await self.source._iterator(self.consumer.client, self.stream, self.shard_id,
                                           self.source.starting_position, None)

    def _stopping(self) -> bool:
        return self.env.stopping.is_set() or self.env.budget_spent

    async def _read(self, start: Optional[str]) -> None:
        env = self.env
        source = self.source
        last_read = start
        iterator: Optional[str] = None
        while not self._stopping():
            if iterator is None:
                try:
                    iterator = await self._start_iterator(last_read)
                except _AWS_ERRORS as exc:
                    logger.warning("%s %s: GetShardIterator failed: %r", self.stream.arn,
                                   self.shard_id, exc)
                    await env.sleep(1.0, on_budget=True)
                    continue
            if self.buffered >= self.buffer_limit:
                with env.interruptible(on_budget=True):
                    await self.space.wait()
                continue
            limit = min(source._read_limit, self.buffer_limit - self.buffered)
            with env.interruptible(on_budget=True) as scope:
                try:
                    raws, following, caught_up = await source._get(
                        self.consumer.client, iterator, limit)
                except _AWS_ERRORS as exc:
                    if aws_error_code(exc) != "ExpiredIteratorException":
                        logger.warning("%s %s: GetRecords failed: %r", self.stream.arn,
                                       self.shard_id, exc)
                        await anyio.sleep(1.0)
                    iterator = None
                    continue
            if scope.cancelled_caught:
                return
            for raw in raws:
                rec = source._record(raw, self.shard_id, self.stream)
                if self.saved is not None and rec.seq <= self.saved:
                    continue
                self._push(rec)
                last_read = rec.ident
            # A closed shard ends with a null NextShardIterator. (moto never returns
            # one: a shard listed with an EndingSequenceNumber that has nothing more to
            # read is taken as ended too.)
            if following is None or (self.listed_closed and caught_up and not raws):
                self.closed = True
                self.consumer.check_drained()
                return
            iterator = following
            self.caught_up = caught_up and not raws
            if self.caught_up:
                self.consumer.check_drained()
                await env.sleep(source.poll_interval, on_budget=True)

    def _push(self, rec: _Rec) -> None:
        entry = [rec.seq, rec.ident, False]
        self.order.append(entry)
        self.entries[rec.seq] = entry
        factor = len(self.lanes)
        lane = self.lanes[0] if factor == 1 else \
            self.lanes[zlib.crc32(rec.key.encode()) % factor]
        if not lane.pending:
            lane.first_arrival = anyio.current_time()
        lane.pending.append(rec)
        self.buffered += 1
        lane.arrived.notify()

    # -- the lanes ---------------------------------------------------------------------------

    async def _lane(self, lane: _Lane) -> None:
        env = self.env
        size = self.source.batch_size
        window = self.source.batching_window
        while not self._stopping():
            if not lane.pending:
                if self.reader_done:
                    return
                with env.interruptible(on_budget=True):
                    await lane.arrived.wait()
                continue
            if window > 0 and len(lane.pending) < size and not self.reader_done:
                remaining = lane.first_arrival + window - anyio.current_time()
                if remaining > 0:
                    with env.interruptible(on_budget=True), anyio.move_on_after(remaining):
                        while len(lane.pending) < size and not self.reader_done:
                            await lane.arrived.wait()
                    if self._stopping():
                        return
            if not env.take_batch():
                return
            batch = lane.form(size)
            lane.busy = True
            try:
                await self._invoke(lane, batch)
            finally:
                lane.busy = False
            self.consumer.check_drained()

    async def _invoke(self, lane: _Lane, batch: list[_Rec]) -> None:
        env = self.env
        tally = env.tally
        source = self.source
        ids = [rec.ident for rec in batch]
        redelivered = sum(1 for rec in batch if rec.seq <= lane.delivered_upto)
        lane.delivered_upto = max(lane.delivered_upto, batch[-1].seq)
        tally.batches += 1
        tally.records += len(batch)
        tally.redelivered += redelivered
        invocation = await env.invoke({"Records": [rec.record for rec in batch]}, ids,
                                      self.stream.arn)
        if invocation.error is not None:
            acked = 0
        elif invocation.reported:
            lowest = min(int(ident) for ident in invocation.reported)
            acked = sum(1 for rec in batch if rec.seq < lowest)
        else:
            acked = len(batch)
        failed = batch[acked:]
        dead: list[_Rec] = []
        if failed:
            if invocation.error is not None and source.bisect_on_error and len(batch) > 1:
                lane.bisect(batch)  # splitting does not count as a retry
            else:
                attempts = lane.count_retry(failed[0].seq)
                limit = source.max_retry_attempts
                if limit is not None and attempts > limit:
                    async with shielded(60):
                        if await self._discard(failed, invocation, attempts):
                            dead = failed
                            lane.retry_seq = None
                            lane.retries = 0
        done = batch[:acked] + dead
        for _ in done:
            lane.pending.popleft()
        self.buffered -= len(done)
        self.space.notify()
        for rec in done:
            self.entries.pop(rec.seq)[2] = True
        tally.succeeded += acked
        tally.failed += len(failed)
        tally.dead_lettered += len(dead)
        if invocation.error is not None:
            tally.errors += 1
        async with shielded(60):
            await self._checkpoint()
        env.report(BatchResult(
            source_arn=self.stream.arn, shard_id=self.shard_id, identifiers=tuple(ids),
            failed=tuple(rec.ident for rec in failed),
            dead_lettered=tuple(rec.ident for rec in dead), redelivered=redelivered,
            error=invocation.error, duration=invocation.duration,
            response=invocation.response))

    async def _checkpoint(self) -> None:
        """Move the shard's checkpoint to the last record before the first one not yet
        acknowledged."""
        order = self.order
        last = None
        while order and order[0][2]:
            last = order.popleft()
        if last is None:
            return
        assert self.save_lock is not None
        async with self.save_lock:
            if self.saved is not None and last[0] <= self.saved:
                return
            try:
                await self.source.checkpoint_store.save(self.stream.arn, self.shard_id,
                                                        last[1])
            except Exception:
                logger.exception("%s %s: could not save checkpoint %s", self.stream.arn,
                                 self.shard_id, last[1])
                return
            self.saved = last[0]

    async def _discard(self, failed: list[_Rec], invocation: Answer,
                       attempts: int) -> bool:
        """Send the failed batch's metadata to the on-failure destination; ``True`` when
        the records may be skipped (a destination that fails keeps them for a retry)."""
        source = self.source
        stream = self.stream
        document: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{stream.region}:{arn_account(stream.arn)}"
                               f":function:{self.env.invoke.function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": _iso(_dt.datetime.now(_dt.timezone.utc).timestamp()),
            source._info_key: {
                "shardId": self.shard_id,
                "startSequenceNumber": failed[0].ident,
                "endSequenceNumber": failed[-1].ident,
                "approximateArrivalOfFirstRecord": _iso(failed[0].arrival),
                "approximateArrivalOfLastRecord": _iso(failed[-1].arrival),
                "batchSize": len(failed),
                "streamArn": stream.arn,
            },
        }
        if invocation.error is not None:
            document["responseContext"]["functionError"] = "Unhandled"
        target = source.on_failure
        try:
            if target is None:
                pass
            elif isinstance(target, str):
                await self.consumer.sqs.send_message(QueueUrl=target,
                                                     MessageBody=json.dumps(document))
            else:
                await target(document)
        except Exception:
            logger.exception("%s %s: the on-failure destination refused the batch %s..%s; "
                             "it will be retried", stream.arn, self.shard_id,
                             failed[0].ident, failed[-1].ident)
            return False
        logger.warning("%s %s: discarded %d records %s..%s after %d attempts",
                       stream.arn, self.shard_id, len(failed), failed[0].ident,
                       failed[-1].ident, attempts)
        return True


# -- the two stream sources ---------------------------------------------------------------------


@dataclass(frozen=True)
class KinesisPoller(_StreamPoller):
    """A Kinesis data stream (name or ARN), read shard by shard as Lambda reads it.

    - ``batch_size`` (up to 10,000) and ``batching_window`` (seconds to gather records
      of a lane before invoking); ``starting_position``: ``"TRIM_HORIZON"`` or
      ``"LATEST"``, used when the checkpoint store has nothing for a shard.
    - After a partial failure the shard resumes at the lowest reported sequence number
      (records before it are checkpointed, everything from it is redelivered); after a
      failed invocation (exception, timeout, invalid response) the whole batch is
      retried, or with ``bisect_on_error`` split in two first (a split is not a retry).
    - ``max_retry_attempts`` (``None`` or ``-1``: until it succeeds): past it the failed
      records are discarded and the invocation record (``KinesisBatchInfo``) goes to
      ``on_failure``: an SQS queue URL or an async callable. A destination that fails
      keeps the records in the retry loop.
    - ``parallelization_factor`` (1..10): batches of one shard in flight at once; records
      are spread over that many lanes by a hash of their partition key, so records of one
      key stay in order. The shard's checkpoint is the last record before the first one
      any lane has not acknowledged.
    - ``checkpoint_store``: where checkpoints live (default: in memory, per source).
    - ``poll_interval``: seconds between ``GetRecords`` calls once a shard is caught up.
    """

    _service: ClassVar[str] = "kinesis"
    _info_key: ClassVar[str] = "KinesisBatchInfo"
    _read_limit: ClassVar[int] = 10_000
    _label: ClassVar[str] = "Kinesis"

    async def _resolve(self, env: Env, client: Any, stack: AsyncExitStack) -> _Stream:
        stream = self.stream
        name = stream.rsplit("/", 1)[-1] if stream.startswith("arn:") else stream
        found = await client.describe_stream_summary(StreamName=name)
        arn = found["StreamDescriptionSummary"]["StreamARN"]
        return _Stream(arn=arn, name=name, region=arn_region(arn))

    async def _shards(self, client: Any, stream: _Stream) -> list[_ShardInfo]:
        shards: list[_ShardInfo] = []
        params: dict[str, Any] = {"StreamName": stream.name}
        while True:
            found = await client.list_shards(**params)
            for shard in found.get("Shards", []):
                parents = tuple(p for p in (shard.get("ParentShardId"),
                                            shard.get("AdjacentParentShardId")) if p)
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                shards.append(_ShardInfo(shard["ShardId"], parents, ending is not None))
            token = found.get("NextToken")
            if not token:
                return shards
            params = {"NextToken": token}

    async def _iterator(self, client: Any, stream: _Stream, shard_id: str, kind: str,
                        sequence: Optional[str]) -> str:
        params: dict[str, Any] = {"StreamName": stream.name, "ShardId": shard_id,
                                  "ShardIteratorType": kind}
        if sequence is not None:
            params["StartingSequenceNumber"] = sequence
        found = await client.get_shard_iterator(**params)
        return str(found["ShardIterator"])

    async def _get(self, client: Any, iterator: str,
                   limit: int) -> tuple[list[dict[str, Any]], Optional[str], bool]:
        found = await client.get_records(ShardIterator=iterator, Limit=limit)
        records = list(found.get("Records") or [])
        return records, found.get("NextShardIterator"), found.get("MillisBehindLatest", 0) == 0

    def _record(self, raw: Mapping[str, Any], shard_id: str, stream: _Stream) -> _Rec:
        record = kinesis_record(raw, shard_id, stream.arn, stream.region)
        ident = KINESIS.identifier(record)
        return _Rec(int(ident), ident, record, self._key(record),
                    record["kinesis"]["approximateArrivalTimestamp"])

    def _key(self, record: Mapping[str, Any]) -> str:
        return KINESIS.key_text(record) or ""


@dataclass(frozen=True)
class DynamoDBStreamPoller(_StreamPoller):
    """A DynamoDB stream (its ARN, or the table's name), read as Lambda reads it; the
    options are ``KinesisPoller``'s. Records of one item (its primary key) stay in
    order; the on-failure record carries ``DDBStreamBatchInfo``."""

    poll_interval: float = 0.25

    _service: ClassVar[str] = "dynamodbstreams"
    _info_key: ClassVar[str] = "DDBStreamBatchInfo"
    _read_limit: ClassVar[int] = 1000
    _label: ClassVar[str] = "DynamoDB stream"

    async def _resolve(self, env: Env, client: Any, stack: AsyncExitStack) -> _Stream:
        arn = self.stream
        if not arn.startswith("arn:"):
            ddb = await stack.enter_async_context(env.client("dynamodb"))
            table = (await ddb.describe_table(TableName=arn))["Table"]
            found = table.get("LatestStreamArn")
            if not found or not table.get("StreamSpecification", {}).get("StreamEnabled"):
                raise ConfigurationError(
                    f"table {arn!r} has no stream: enable one (StreamSpecification="
                    "{'StreamEnabled': True, 'StreamViewType': 'NEW_AND_OLD_IMAGES'})")
            arn = str(found)
        name = arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
        return _Stream(arn=arn, name=name, region=arn_region(arn))

    async def _shards(self, client: Any, stream: _Stream) -> list[_ShardInfo]:
        shards: list[_ShardInfo] = []
        params: dict[str, Any] = {"StreamArn": stream.arn}
        while True:
            found = (await client.describe_stream(**params))["StreamDescription"]
            for shard in found.get("Shards", []):
                parent = shard.get("ParentShardId")
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                shards.append(_ShardInfo(shard["ShardId"], (parent,) if parent else (),
                                         ending is not None))
            last = found.get("LastEvaluatedShardId")
            if not last:
                return shards
            params = {"StreamArn": stream.arn, "ExclusiveStartShardId": last}

    async def _iterator(self, client: Any, stream: _Stream, shard_id: str, kind: str,
                        sequence: Optional[str]) -> str:
        params: dict[str, Any] = {"StreamArn": stream.arn, "ShardId": shard_id,
                                  "ShardIteratorType": kind}
        if sequence is not None:
            params["SequenceNumber"] = sequence
        found = await client.get_shard_iterator(**params)
        return str(found["ShardIterator"])

    async def _get(self, client: Any, iterator: str,
                   limit: int) -> tuple[list[dict[str, Any]], Optional[str], bool]:
        found = await client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        records = list(found.get("Records") or [])
        return records, found.get("NextShardIterator"), not records

    def _record(self, raw: Mapping[str, Any], shard_id: str, stream: _Stream) -> _Rec:
        record = dynamodb_record(raw, stream.arn, stream.region)
        ident = DYNAMODB.identifier(record)
        arrival = epoch(record["dynamodb"].get("ApproximateCreationDateTime"))
        return _Rec(int(ident), ident, record, self._key(record), arrival)

    def _key(self, record: Mapping[str, Any]) -> str:
        try:
            return DYNAMODB.key_text(record) or ""
        except DynamoDBJSONError:
            return ""
