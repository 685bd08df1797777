"""The one scheduler: a fixed pool of workers over a feed of work, and the per-batch run
that every event source executes on.

``pool`` is the engine: at most ``concurrency`` workers pull items from one shared feed
(a list, an iterator or an async iterator) and await ``work(item)`` for each; no task per
item, nothing gathered. ``BatchRun`` feeds it the records of one event, either one by one
(independent records) or as lanes (records that must run one at a time, in order), and
keeps every record's outcome in compact arrays.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Coroutine,
    Iterable,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from ._errors import (
    DeadlineExceededError,
    RecordSkippedError,
    RecordTimeoutError,
    RecordValidationError,
    SinkError,
)
from ._hooks import Failure
from ._limits import ConcurrencyLimit, Gate
from ._report import FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED, SUNK
from ._retry import is_transient
from ._sources import FailureMode

if TYPE_CHECKING:
    import anyio

    from ._hooks import FailureSink, Hooks
    from ._records import Record
    from ._retry import Retry
    from ._sources import Plan, SourcePolicy

__all__ = ["BatchRun", "Crew", "StopFlag", "pool", "run_workers"]

T = TypeVar("T")

# A worker whose items never suspend would starve the event loop (and the deadline
# watcher); it yields once every this many items.
_YIELD_EVERY = 128


class StopFlag:
    """Set once to make every worker stop taking new items."""

    __slots__ = ("is_set",)

    def __init__(self) -> None:
        self.is_set = False


async def pool(
    feed: Union[Iterable[T], AsyncIterable[T]],
    work: Callable[[T], Awaitable[Any]],
    concurrency: int,
    *,
    stop: Optional[StopFlag] = None,
    size: Optional[int] = None,
) -> None:
    """Await ``work(item)`` for every item of ``feed``, at most ``concurrency`` at once.

    Items are taken in feed order. When ``stop`` is set, workers finish the item they
    hold and take no more. ``size``, when known, caps the workers at the item count.
    An exception escaping ``work`` cancels the others and propagates (as an
    ``ExceptionGroup``); ``work`` is expected to handle its own failures.
    """
    import anyio.lowlevel

    flag = stop if stop is not None else StopFlag()
    workers = concurrency if size is None else min(concurrency, size)

    if isinstance(feed, AsyncIterable):
        source: AsyncIterator[T] = feed.__aiter__()
        lock = anyio.Lock()

        async def async_worker(crew: Crew) -> None:
            while not flag.is_set:
                async with lock:
                    if flag.is_set:
                        return
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        return
                crew.enter()
                await work(item)
                crew.busy -= 1

        body: Callable[[Crew], Coroutine[Any, Any, None]] = async_worker
    else:
        iterator = iter(feed)
        checkpoint = anyio.lowlevel.checkpoint

        async def worker(crew: Crew) -> None:
            for done, item in enumerate(iterator, 1):
                if flag.is_set:
                    return
                crew.enter()
                await work(item)
                crew.busy -= 1
                if not done % _YIELD_EVERY:
                    await checkpoint()

        body = worker

    await run_workers(body, workers)


class Crew:
    """The workers of one pool, started on demand up to ``limit``.

    A worker about to await an item calls ``enter()``: when every other started worker
    is busy in an item (so, suspended there), the crew doubles. A batch whose handlers
    never suspend runs on one or two workers instead of paying for ``concurrency`` task
    spawns; an I/O-bound one reaches the bound within log2(concurrency) event-loop
    steps, at the same clock time."""

    __slots__ = ("_group", "body", "busy", "limit", "started")

    def __init__(self, body: Callable[[Crew], Coroutine[Any, Any, None]], limit: int) -> None:
        self.body = body
        self.limit = limit
        self.started = 1
        self.busy = 0
        self._group: Any = None

    def enter(self) -> None:
        self.busy += 1
        if self.busy == self.started < self.limit:
            self.grow()

    def grow(self) -> None:
        """Double the crew (up to the limit): every started worker is suspended in an
        item, so the load is I/O-bound and the bound is reached in log2(limit) steps."""
        more = min(self.started, self.limit - self.started)
        self.started += more
        for _ in range(more):
            self._group.start_soon(self.body, self)


async def run_workers(body: Callable[[Crew], Coroutine[Any, Any, None]], limit: int) -> None:
    """Run ``body`` as a crew of up to ``limit`` workers sharing whatever feed it closes
    over, and wait for all of them: this is the whole of the concurrency. The calling
    task is the first worker."""
    if limit <= 0:
        return
    crew = Crew(body, limit)
    if limit == 1:
        await body(crew)
        return
    import anyio

    async with anyio.create_task_group() as group:
        crew._group = group
        await body(crew)


class BatchRun:
    """The state of one ``process()`` call; nothing of it lives on the processor."""

    def __init__(
        self,
        *,
        records: list[Any],
        policy: SourcePolicy,
        plan: Plan,
        call: Callable[[Any], Awaitable[Any]],
        concurrency: int,
        parse: Optional[Callable[[Any], Any]],
        retry: Optional[Retry],
        timeout: Optional[float],
        hooks: Optional[Hooks],
        sink: Optional[FailureSink],
        sink_when: Callable[[BaseException], bool],
        soft_deadline: Optional[float],
        hard_deadline: Optional[float],
        timings: bool = False,
        limit: Optional[ConcurrencyLimit] = None,
    ) -> None:
        n = len(records)
        self.records = records
        self.policy = policy
        self.plan = plan
        self.view = policy.view
        self.call = call
        self.concurrency = concurrency
        self.parse = parse
        self.retry = retry
        self.timeout = timeout
        self.hooks = hooks
        self.sink = sink
        self.sink_when = sink_when
        self.soft_deadline = soft_deadline
        self.hard_deadline = hard_deadline
        self.status = bytearray(n)
        self.errors: dict[int, BaseException] = {}
        self.attempts = array("I", [1]) * n  # the full path stores other counts
        # durations are measured on the full path only (a clock read costs a syscall here)
        self.durations: Optional[array[float]] = array("d", bytes(8 * n)) if timings else None
        self.stop = StopFlag()
        self.stop_reason: Optional[RecordSkippedError] = None
        self.cutoff: Optional[int] = None  # checkpoint mode: lowest failed sequence number
        self.cutoff_error: Optional[BaseException] = None
        self.gate = Gate(limit) if limit is not None else None
        self.is_drop: Callable[[BaseException], bool] = (
            is_transient if retry is None else (lambda exc: retry.should_retry(exc, 0)))
        self.simple = (parse is None and retry is None and timeout is None and hooks is None
                       and not timings and limit is None)  # then inlined in the workers

    # -- running ---------------------------------------------------------------------

    async def execute(self) -> None:
        import anyio
        import anyio.lowlevel

        self.yield_now = anyio.lowlevel.checkpoint

        plan = self.plan
        async with anyio.create_task_group() as watchers:
            scope = anyio.CancelScope()
            if self.soft_deadline is not None:
                watchers.start_soon(self._watch_deadline, scope)
            with scope:
                if plan.lanes is None and self.simple:
                    await run_workers(self._independent_worker(),
                                      min(self.concurrency, plan.size))
                elif plan.lanes is None:
                    await pool(range(plan.size), self._run_full, self.concurrency,
                               stop=self.stop, size=plan.size)
                else:
                    await pool(plan.lanes, self._run_lane, self.concurrency,
                               stop=self.stop, size=len(plan.lanes))
            watchers.cancel_scope.cancel()
        self._finalise()

    async def _watch_deadline(self, scope: anyio.CancelScope) -> None:
        import anyio

        assert self.soft_deadline is not None and self.hard_deadline is not None
        await anyio.sleep_until(self.soft_deadline)
        self._stop_all(RecordSkippedError(
            "not started: the Lambda deadline was near", reason="deadline"))
        await anyio.sleep_until(self.hard_deadline)
        scope.cancel()

    def _stop_all(self, reason: RecordSkippedError) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.is_set = True

    async def _run_lane(self, lane: Sequence[int]) -> None:
        plan = self.plan
        checkpoint = plan.mode is FailureMode.CHECKPOINT
        seq = plan.sequence
        simple = self.simple
        status = self.status
        records = self.records
        view = self.view
        call = self.call
        for pos, index in enumerate(lane):
            if pos and not pos % _YIELD_EVERY:
                await self.yield_now()  # a long lane must not starve the deadline watcher
            if self.stop.is_set:
                return  # the rest stays pending and is reported with the stop reason
            if checkpoint and self.cutoff is not None:
                assert seq is not None
                if seq(index) > self.cutoff:
                    self._skip(lane[pos:], "checkpoint", self.cutoff_error)
                    return
            if simple:  # the hot path, inlined: no coroutine of our own per record
                status[index] = RUNNING
                try:
                    await call(view(records[index]))
                except Exception as exc:
                    ok = await self._failed(index, None, exc, 1)
                else:
                    status[index] = SUCCEEDED
                    ok = True
            else:
                ok = await self._run_full(index)
            if not ok:
                if plan.mode is not FailureMode.STOP_ALL:  # there the stop reason says it
                    self._skip(lane[pos + 1:], "group_failed", self.errors[index])
                return

    def _skip(self, indices: Sequence[int], reason: str, cause: Optional[BaseException]) -> None:
        if not indices:
            return
        if reason == "group_failed":
            message = "not started: an earlier record of its ordering key failed"
        else:
            message = "not started: a record with a lower sequence number failed"
        error = RecordSkippedError(message, reason=reason, cause=cause)
        status = self.status
        errors = self.errors
        for index in indices:
            if status[index] == PENDING:
                status[index] = SKIPPED
                errors[index] = error

    def _independent_worker(self) -> Callable[[Crew], Coroutine[Any, Any, None]]:
        """The hottest path: independent records (SQS standard), no option that costs per
        record. The record run is inlined in the worker loop: one coroutine per record
        (the handler's) and one status byte; no clock read (``timings=True`` asks for one)."""
        status = self.status
        records = self.records
        view = self.view
        call = self.call
        failed = self._failed
        flag = self.stop
        indices = iter(range(len(records)))
        from anyio.lowlevel import checkpoint

        async def worker(crew: Crew) -> None:
            for index in indices:
                if flag.is_set:
                    return
                busy = crew.busy + 1  # crew.enter(), inlined: this loop runs per record
                crew.busy = busy
                if busy == crew.started < crew.limit:
                    crew.grow()
                status[index] = RUNNING
                try:
                    await call(view(records[index]))
                except Exception as exc:
                    await failed(index, None, exc, 1)
                else:
                    status[index] = SUCCEEDED
                crew.busy -= 1
                if not index % _YIELD_EVERY:
                    await checkpoint()

        return worker

    async def _run_full(self, index: int) -> bool:
        """The path with every option: model parsing, retries, timeout, hooks, an
        adaptive limit, timings."""
        record = self.view(self.records[index])
        hooks = self.hooks
        try:
            arg = record if self.parse is None else self.parse(record)
        except Exception as exc:
            self.attempts[index] = 0
            return await self._failed(index, record, exc, 0)
        import anyio

        retry = self.retry
        attempt = 0
        elapsed = 0.0
        while True:
            attempt += 1
            self.attempts[index] = attempt
            if hooks is not None:
                hooks.record_started(record, attempt)
            error, rtt = await self._attempt(index, record, arg)
            elapsed += rtt
            if self.durations is not None:
                self.durations[index] = elapsed
            if error is None:
                self.status[index] = SUCCEEDED
                if hooks is not None:
                    hooks.record_succeeded(record, attempt, elapsed)
                return True
            if retry is not None and not self.stop.is_set and retry.should_retry(error, attempt):
                delay = retry.delay(attempt)
                if self.soft_deadline is None \
                        or anyio.current_time() + delay < self.soft_deadline:
                    if hooks is not None:
                        hooks.record_retried(record, error, attempt, delay)
                    await anyio.sleep(delay)
                    continue
            if hooks is not None:
                hooks.record_failed(record, error, attempt)
            return await self._failed(index, record, error, attempt)

    async def _attempt(
        self, index: int, record: Record, arg: Any
    ) -> tuple[Optional[Exception], float]:
        """One handler call, through the adaptive gate and under the timeout, if any.
        Returns the call's exception (or ``None``) and its duration."""
        import anyio

        gate = self.gate
        if gate is not None:
            await gate.acquire()
        self.status[index] = RUNNING
        timeout = self.timeout
        error: Optional[Exception] = None
        started = time.perf_counter()
        try:
            if timeout is None:
                await self.call(arg)
            else:
                try:
                    with anyio.fail_after(timeout):
                        await self.call(arg)
                except TimeoutError as exc:
                    raise RecordTimeoutError(
                        f"record {record.identifier}: handler ran past the "
                        f"{timeout:g}s timeout and was cancelled",
                        identifier=record.identifier,
                    ) from exc
        except Exception as exc:
            error = exc
        finally:
            rtt = time.perf_counter() - started
            if gate is not None:
                gate.release(rtt, error is not None and self.is_drop(error))
        return error, rtt

    async def _failed(
        self, index: int, record: Optional[Record], exc: Exception, attempts: int
    ) -> bool:
        """Record a final failure; offer it to the sink; apply the source's failure rule.
        Returns whether the record counts as handled (its lane may go on)."""
        self.errors[index] = exc
        if self.sink is not None and self.sink_when(exc):
            if record is None:
                record = self.view(self.records[index])
            failure = Failure(record, record.identifier, exc, attempts,
                              self.policy.event_type.value, record.event_source_arn)
            try:
                await self.sink(failure)
            except Exception as sink_exc:
                error = SinkError(
                    f"record {record.identifier}: the failure sink refused it ({sink_exc!r})",
                    identifier=record.identifier, original=exc)
                error.__cause__ = sink_exc
                self.errors[index] = error
            else:
                self.status[index] = SUNK
                return True
        self.status[index] = FAILED
        mode = self.plan.mode
        if mode is FailureMode.INDEPENDENT:
            return True
        if mode is FailureMode.STOP_ALL:
            self._stop_all(RecordSkippedError(
                "not started: an earlier record failed and the batch stops at the first failure",
                reason="batch_stopped", cause=exc))
        elif mode is FailureMode.CHECKPOINT:
            assert self.plan.sequence is not None
            seq = self.plan.sequence(index)
            if self.cutoff is None or seq < self.cutoff:
                self.cutoff = seq
                self.cutoff_error = self.errors[index]
        return False

    # -- after the run ---------------------------------------------------------------

    def _finalise(self) -> None:
        """Every record not finished gets its final outcome: pending ones are skipped,
        ones cancelled at the hard deadline failed."""
        status = self.status
        if PENDING not in status and RUNNING not in status:
            return
        reason = self.stop_reason or RecordSkippedError(
            "not started: the batch ended before it", reason="deadline")
        for index in range(len(status)):
            code = status[index]
            if code == PENDING:
                status[index] = SKIPPED
                self.errors[index] = reason
            elif code == RUNNING:
                status[index] = FAILED
                ident = self.view(self.records[index]).identifier
                self.errors[index] = DeadlineExceededError(
                    f"record {ident}: cancelled at the Lambda deadline", identifier=ident)

    # -- hooks -----------------------------------------------------------------------

    def report_skips(self) -> None:
        hooks = self.hooks
        if hooks is None:
            return
        for index, code in enumerate(self.status):
            if code == SKIPPED:
                error = self.errors.get(index)
                reason = error.reason if isinstance(error, RecordSkippedError) else "unknown"
                hooks.record_skipped(self.view(self.records[index]), reason)


def validation_error(identifier: str, exc: Any) -> RecordValidationError:
    """A pydantic ``ValidationError`` as a ``RecordValidationError`` naming the fields."""
    errors = exc.errors(include_url=False) if hasattr(exc, "errors") else []
    fields = [".".join(str(part) for part in err.get("loc", ())) or "<root>" for err in errors]
    details = "; ".join(f"{f}: {err.get('msg', '')}" for f, err in zip(fields, errors))
    return RecordValidationError(
        f"record {identifier}: invalid {', '.join(fields) or 'payload'} ({details})",
        identifier=identifier, fields=fields, errors=errors)
