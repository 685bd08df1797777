"""The one scheduler: the run of one batch, on the worker pool of ``_pool.py``.

``BatchRun`` feeds the pool the records of one event, either one by one (independent
records) or as lanes (records that must run one at a time, in order, scheduled record by
record: the ready lane head of lowest rank first), applies the source's failure rule, and
keeps every record's outcome in compact arrays. It runs over a backend seam
(``_backends.py``): native asyncio or anyio, one code path.
"""

from __future__ import annotations

import heapq
import math
import time
from array import array
from collections.abc import Awaitable, Coroutine, Hashable, Sequence
from operator import length_hint
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._backends import current_backend
from ._errors import (
    CallbackError,
    DeadlineExceededError,
    HandlerCancelledError,
    RecordSkippedError,
    RecordTimeoutError,
    RecordValidationError,
    SinkError,
    describe,
)
from ._hooks import Failure
from ._limits import ConcurrencyLimit, Gate, acquire_gate, release_gate
from ._pool import YIELD_EVERY, Crew, StopFlag, pool, run_workers
from ._report import FAILED, PENDING, REPLAYED, RUNNING, SKIPPED, SUCCEEDED, SUNK
from ._retry import is_transient
from ._sources import FailureMode

if TYPE_CHECKING:
    from ._backends import Backend, Scope
    from ._deadline import Deadline
    from ._hooks import FailureSink, Hooks
    from ._idempotency import BatchIdempotency
    from ._records import Record
    from ._retry import Retry
    from ._sources import Plan, SourcePolicy
    from ._windows import Window, WindowReducer

__all__ = ["BatchRun", "StopFlag", "pool", "validation_error"]


class BatchRun:
    """The state of one ``process()`` call; nothing of it lives on the processor.

    Records run on a crew of workers. Independent records are taken in event order; lanes
    (records that run one at a time) are scheduled record by record: a worker takes the
    ready lane head of lowest rank (its position in the event, or for streams its
    sequence number), so at ``concurrency=1`` processing is exactly event order, and at any
    concurrency the work started above an eventual failure is as small as the bound allows.

    Faults in the user's code cost at most their record: a handler's own
    ``CancelledError`` is told apart from a real cancellation (ours or the caller's), and
    hooks, predicates, the sink and the reducer are guarded where they are called.
    """

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
        deadline: Optional[Deadline] = None,
        timings: bool = False,
        limit: Optional[ConcurrencyLimit] = None,
        idempotency: Optional[BatchIdempotency] = None,
        window: Optional[Window] = None,
        reducer: Optional[WindowReducer] = None,
        backend: Optional[Backend] = None,
    ) -> None:
        n = len(records)
        self.backend: Backend = backend if backend is not None else current_backend()
        self.yield_now = self.backend.checkpoint
        self.cancelled_exc: type[BaseException] = self.backend.cancelled
        self.scope: Optional[Scope] = None
        self.records = records
        self.policy = policy
        self.plan = plan
        self.identifiers: list[Any] = plan.identifiers if plan.identifiers is not None \
            else [policy.identifier(raw) for raw in records]
        self.view = policy.view
        self.call = call
        self.concurrency = concurrency
        self.parse = parse
        self.retry = retry
        self.timeout = timeout
        self.hooks = hooks
        self.sink = sink
        self.sink_when = sink_when
        self.deadline = deadline
        self.idempotency = idempotency
        self.window = window
        self.reducer = reducer
        self.state: Any = window.state if window is not None else None
        self.status = bytearray(n)
        self.errors: dict[int, BaseException] = {}
        self.results: dict[int, Any] = {}
        # handler calls per record, stored only where not 1 (the full path; 0: never called)
        self.attempts: dict[int, int] = {}
        # durations are measured on the full path only (a clock read costs a syscall here)
        self.durations: Optional[array[float]] = array("d", bytes(8 * n)) if timings else None
        self.stop = StopFlag()
        self.stop_reason: Optional[RecordSkippedError] = None
        # checkpoint mode: per checkpoint group (partition), the lowest failed sequence
        # number and its error
        self.cutoffs: dict[Hashable, tuple[int, BaseException]] = {}
        self.limit = limit
        self.gate: Optional[Gate] = None
        self.simple = (parse is None and retry is None and timeout is None and hooks is None
                       and not timings and limit is None and idempotency is None)
        self.finished = False

    def fail_all(self, exc: BaseException) -> None:
        """Fail every record with ``exc`` before anything runs (a dependency of the whole
        batch, such as the idempotency store, could not answer)."""
        n = len(self.status)
        self.status[:] = bytes([FAILED]) * n
        self.attempts = dict.fromkeys(range(n), 0)
        self.errors = dict.fromkeys(range(n), exc)
        self.plan.size = 0

    # -- running ---------------------------------------------------------------------

    async def execute(self) -> None:
        backend = self.backend
        deadline = self.deadline
        if deadline is not None and deadline.passed_soft():
            self._deadline_stop()  # no time left: start nothing
        elif self.plan.size:
            gate_key = None
            if self.limit is not None:
                self.gate, gate_key = acquire_gate(self.limit, backend.event)
            timers = getattr(backend, "timers", None)
            try:
                if timers is None:
                    await self._execute(backend)
                else:
                    async with timers():
                        await self._execute(backend)
            finally:
                if gate_key is not None:
                    release_gate(gate_key)
        self.finished = True
        self._finalise()

    async def _execute(self, backend: Backend) -> None:
        """Run the records under the deadline's three timers: stop starting at ``soft``,
        cancel at ``hard``, warn if the cancellation has not finished half-way to the
        end (a handler shielded from it, or blocking the loop)."""
        scope = self.scope = backend.cancel_scope()
        deadline = self.deadline
        handles = []
        if deadline is not None:
            handles = [
                backend.call_at(deadline.soft, self._deadline_stop),
                backend.call_at(deadline.hard, scope.cancel),
                backend.call_at(deadline.hard + (deadline.end - deadline.hard) / 2,
                                self._cancel_overrun),
            ]
        try:
            with scope:
                await self._run()
        finally:
            self.finished = True
            for handle in handles:
                handle.cancel()

    async def _run(self) -> None:
        plan = self.plan
        size = plan.size
        backend = self.backend
        if plan.lanes is not None:
            worker, waiting = self._lane_worker()
            await run_workers(worker, min(self.concurrency, len(plan.lanes)), backend,
                              waiting=waiting)
        elif self.simple:
            worker, waiting = self._independent_worker()
            await run_workers(worker, min(self.concurrency, size), backend, waiting=waiting)
        else:
            await pool(range(size), self._run_full, self.concurrency, stop=self.stop, size=size,
                       backend=backend)

    def _cancel_overrun(self) -> None:
        """Cancellation is delivered at the handlers' next await. A handler that shields
        itself or blocks the loop cannot be saved: say so before Lambda's timeout."""
        if self.finished:
            return
        running = [self.identifiers[i] for i, code in enumerate(self.status) if code == RUNNING]
        _logger().warning(
            "asyncbatch: %d handler(s) did not finish cancelling within the cancel "
            "margin (shielded from cancellation, or blocking the event loop?): %s",
            len(running), ", ".join(map(str, running[:10])),
            extra={"asyncbatch": {"event": "cancel_overrun", "running": running[:10]}})

    def _deadline_stop(self) -> None:
        self._stop_all(RecordSkippedError(
            "not started: the Lambda deadline was near", reason="deadline"))

    def _past_soft(self) -> bool:
        """The deadline checked by clock where workers take work, so a stretch of
        handlers that never suspend cannot outrun the stop margin by more than one."""
        deadline = self.deadline
        if deadline is not None and deadline.clock() >= deadline.soft:
            self._deadline_stop()
            return True
        return False

    def _stop_all(self, reason: RecordSkippedError) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.is_set = True

    def _is_real_cancel(self) -> bool:
        """Whether a ``CancelledError`` caught around user code is a real cancellation
        (our deadline or timeout, or the caller of ``process()``). Otherwise the user's
        code raised it itself (a leaked one, or a handler cancelling its own task): only
        its record fails. Workers always run in child tasks, so a caller's cancellation
        reaches them through the task group, never mistaken for a handler's."""
        return self.backend.is_cancelling(self.scope)

    def _own_cancel_error(self, index: int, exc: BaseException) -> HandlerCancelledError:
        ident = self.identifiers[index]
        error = HandlerCancelledError(
            f"record {ident}: the handler raised {type(exc).__name__} although nothing "
            "cancelled it (a leaked cancellation, or a handler cancelling its own task)",
            identifier=ident)
        error.__cause__ = exc
        return error

    def _callback_error(self, index: int, callback: str, exc: BaseException,
                        original: Optional[BaseException] = None) -> CallbackError:
        ident = self.identifiers[index]
        error = CallbackError(f"record {ident}: {callback} raised {describe(exc)}",
                              identifier=ident,
                              callback=callback, original=original)
        error.__cause__ = exc
        return error

    def _lane_worker(self) -> tuple[Callable[[Crew], Coroutine[Any, Any, None]],
                                    Callable[[], bool]]:
        """Lanes, record by record: the ready lane head of lowest rank runs first.

        ``ready`` is a heap of the lanes whose head may start (a lane is out of it while
        one of its records runs). Ranked by position (``plan.rank`` is None), an entry is
        the int ``position * lanes + lane``; otherwise ``(rank, lane)``. A worker that
        finishes a record pushes its lane's next head and pops the lowest in one
        ``heappushpop``: it keeps its lane unless another head ranks lower."""
        plan = self.plan
        lanes = plan.lanes
        assert lanes is not None
        rank = plan.rank
        width = len(lanes)
        by_position = rank is None
        ready: list[Any]
        if rank is None:
            ready = [lane[0] * width + number for number, lane in enumerate(lanes) if lane]
        else:
            ready = [(rank(lane[0]), number) for number, lane in enumerate(lanes) if lane]
        heapq.heapify(ready)
        positions = [0] * width
        checkpoint = plan.mode is FailureMode.CHECKPOINT
        stop_all = plan.mode is FailureMode.STOP_ALL
        seq = plan.sequence
        partition = plan.partition
        cutoffs = self.cutoffs
        simple = self.simple
        status = self.status
        records = self.records
        results = self.results
        view = self.view
        call = self.call
        failed = self._failed
        flag = self.stop
        deadline = self.deadline
        cancelled = self.cancelled_exc
        new = object.__new__
        heappop = heapq.heappop
        heappushpop = heapq.heappushpop
        clock = deadline.clock if deadline is not None else None
        soft = deadline.soft if deadline is not None else math.inf

        async def worker(crew: Crew) -> None:
            done = 0
            number = -1  # the lane this worker holds; -1: take one from the heap
            while True:
                if number < 0:
                    if not ready:
                        return
                    key = heappop(ready)
                    number = key % width if by_position else key[1]
                lane = lanes[number]
                pos = positions[number]
                index = lane[pos]
                if flag.is_set:
                    return  # this lane's rest stays pending: reported with the stop reason
                if clock is not None and clock() >= soft:
                    self._deadline_stop()
                    return
                if checkpoint and cutoffs:
                    assert seq is not None
                    cut = cutoffs.get(None if partition is None else partition(index))
                    if cut is not None and seq(index) > cut[0]:
                        self._skip(lane[pos:], "checkpoint", cut[1])
                        number = -1
                        continue
                if simple:  # the hot path, inlined: no coroutine of our own per record
                    status[index] = RUNNING
                    record = new(view)  # a view without a Python-level __init__
                    record.raw = records[index]
                    try:
                        result = await call(record)
                    except Exception as exc:
                        ok = await failed(index, None, exc, 1)
                    except cancelled as exc:
                        if self._is_real_cancel():
                            raise
                        ok = await failed(index, None, self._own_cancel_error(index, exc), 1)
                    else:
                        status[index] = SUCCEEDED
                        if result is not None:
                            results[index] = result
                        ok = True
                else:
                    ok = await self._run_full(index)
                    if status[index] == PENDING:
                        return  # not started: the deadline came while it waited for a slot
                done += 1
                if not done % YIELD_EVERY:
                    await self.yield_now()  # a long run must not starve the loop
                if not ok:
                    if not stop_all:  # there the stop reason says it
                        self._skip(lane[pos + 1:], "group_failed", self.errors[index])
                    number = -1
                    continue
                pos += 1
                positions[number] = pos
                if pos == len(lane):
                    number = -1
                elif ready:
                    nxt = lane[pos]
                    key = heappushpop(ready, nxt * width + number if by_position
                                      else (rank(nxt), number))  # type: ignore[misc]
                    number = key % width if by_position else key[1]

        return worker, lambda: bool(ready)

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

    def _independent_worker(self) -> tuple[Callable[[Crew], Coroutine[Any, Any, None]],
                                           Callable[[], bool]]:
        """The hottest path: independent records (SQS standard), no option that costs per
        record. The record run is inlined in the worker loop: one coroutine per record
        (the handler's) and one status byte; a clock read only when there is a deadline."""
        status = self.status
        records = self.records
        results = self.results
        view = self.view
        call = self.call
        failed = self._failed
        flag = self.stop
        deadline = self.deadline
        cancelled = self.cancelled_exc
        yield_now = self.yield_now
        new = object.__new__
        indices = iter(range(len(records)))

        clock = deadline.clock if deadline is not None else None
        soft = deadline.soft if deadline is not None else math.inf

        async def worker(crew: Crew) -> None:
            for index in indices:
                if flag.is_set:
                    return
                if clock is not None and clock() >= soft:  # by clock: see _past_soft
                    self._deadline_stop()
                    return
                status[index] = RUNNING
                record = new(view)  # a view without a Python-level __init__
                record.raw = records[index]
                try:
                    result = await call(record)
                except Exception as exc:
                    await failed(index, None, exc, 1)
                except cancelled as exc:
                    if self._is_real_cancel():
                        raise
                    await failed(index, None, self._own_cancel_error(index, exc), 1)
                else:
                    status[index] = SUCCEEDED
                    if result is not None:
                        results[index] = result
                if not index % YIELD_EVERY:
                    await yield_now()

        return worker, lambda: length_hint(indices) > 0

    def _count(self, index: int, calls: int) -> None:
        """Record how many times the handler was called for ``index`` (1 is the default)."""
        if calls == 1:
            self.attempts.pop(index, None)
        else:
            self.attempts[index] = calls

    def _hook(self, index: int, name: str, *args: Any,
              hooks: Optional[Hooks] = None) -> Optional[BaseException]:
        """Call a per-record hook; its exception is returned (and logged), never raised."""
        try:
            getattr(hooks or self.hooks, name)(*args)
        except Exception as exc:
            _logger().warning("asyncbatch: hooks.%s raised %s for record %s", name,
                              describe(exc), self.identifiers[index], exc_info=exc)
            return exc
        return None

    async def _run_full(self, index: int) -> bool:
        """The path with every option: model parsing, retries, timeout, hooks, an
        adaptive limit, idempotency, timings. Returns whether the record counts as
        handled (its lane may go on); a record left PENDING was not started."""
        if self.stop.is_set or self._past_soft():
            return True
        record = self.view(self.records[index])
        hooks = self.hooks
        try:
            arg = record if self.parse is None else self.parse(record)
        except Exception as exc:
            self._count(index, 0)
            return await self._failed(index, record, exc, 0)
        idem = self.idempotency
        if idem is not None:
            self.status[index] = RUNNING
            try:
                replay = await idem.begin(index, record)
            except Exception as exc:
                self._count(index, 0)
                return await self._failed(index, record, exc, 0)
            except self.cancelled_exc as exc:
                if self._is_real_cancel():
                    raise
                self._count(index, 0)
                return await self._failed(index, record, self._own_cancel_error(index, exc), 0)
            if replay is not None:
                self.status[index] = REPLAYED
                self._count(index, 0)
                if replay.result is not None:
                    self.results[index] = replay.result
                return True
        retry = self.retry
        attempt = 0
        elapsed = 0.0
        error: Optional[BaseException] = None
        while True:
            attempt += 1
            if hooks is not None:
                hook_error = self._hook(index, "record_started", record, attempt)
                if hook_error is not None:
                    self._count(index, attempt - 1)
                    failure = self._callback_error(index, "hooks.record_started", hook_error,
                                                   error)
                    return await self._settle_failure(index, record, failure, attempt - 1)
            outcome = await self._attempt(index, record, arg)
            if outcome is None:  # the deadline came while it waited for a slot
                if attempt == 1:
                    if idem is not None:  # give its claim back: a redelivery may run it
                        self.status[index] = PENDING
                        await self._idempotency_done(idem.release, index, record,
                                                     self.stop_reason)
                    return True  # never started: stays pending, reported as skipped
                self._count(index, attempt - 1)
                assert error is not None
                return await self._settle_failure(index, record, error, attempt - 1)
            self._count(index, attempt)
            error, rtt, result = outcome
            elapsed += rtt
            if self.durations is not None:
                self.durations[index] = elapsed
            if error is None:
                self.status[index] = SUCCEEDED
                if result is not None:
                    self.results[index] = result
                if hooks is not None:
                    self._hook(index, "record_succeeded", record, attempt, elapsed)
                if idem is not None:
                    await self._idempotency_done(idem.complete, index, record, result)
                return True
            if retry is not None and not self.stop.is_set:
                try:
                    again = retry.should_retry(error, attempt)
                except Exception as exc:
                    error = self._callback_error(index, "the Retry(on=...) predicate", exc,
                                                 error)
                    again = False
                if again:
                    delay = retry.delay(attempt)
                    deadline = self.deadline
                    if deadline is None or deadline.clock() + delay < deadline.soft:
                        if hooks is not None:
                            hook_error = self._hook(index, "record_retried", record, error,
                                                    attempt, delay)
                            if hook_error is not None:
                                error = self._callback_error(
                                    index, "hooks.record_retried", hook_error, error)
                                return await self._settle_failure(index, record, error,
                                                                  attempt)
                        await self.backend.sleep(delay)
                        continue
            return await self._settle_failure(index, record, error, attempt)

    async def _settle_failure(self, index: int, record: Record, error: BaseException,
                              attempts: int) -> bool:
        if self.hooks is not None:
            self._hook(index, "record_failed", record, error, attempts)
        idem = self.idempotency
        if idem is not None:
            await self._idempotency_done(idem.release, index, record, error)
        return await self._failed(index, record, error, attempts)

    async def _idempotency_done(self, step: Callable[[int, Record, Any], Awaitable[None]],
                                index: int, record: Record, value: Any) -> None:
        """Complete or release a claim; a store fault never changes the record's outcome
        (the claim then expires with the Lambda deadline)."""
        try:
            await step(index, record, value)
        except Exception as exc:
            _logger().warning("asyncbatch: idempotency %s failed for record %s: %s",
                              getattr(step, "__name__", "step"), self.identifiers[index],
                              describe(exc))
        except self.cancelled_exc:
            if self._is_real_cancel():
                raise

    async def _attempt(
        self, index: int, record: Record, arg: Any
    ) -> Optional[tuple[Optional[BaseException], float, Any]]:
        """One handler call, through the adaptive gate and under the timeout, if any.
        Returns the call's exception (or ``None``), its duration and its result; ``None``
        when the deadline came while the call waited for a slot (it did not start)."""
        gate = self.gate
        if gate is not None:
            await gate.acquire()
            if self.stop.is_set or self._past_soft():
                gate.release(0.0, False, sample=False)
                return None
        self.status[index] = RUNNING
        timeout = self.timeout
        error: Optional[BaseException] = None
        result: Any = None
        started = time.perf_counter()
        try:
            if timeout is None:
                result = await self.call(arg)
            else:
                try:
                    async with self.backend.fail_after(timeout):
                        result = await self.call(arg)
                except TimeoutError as exc:
                    raise RecordTimeoutError(
                        f"record {self.identifiers[index]}: handler ran past the "
                        f"{timeout:g}s timeout and was cancelled",
                        identifier=self.identifiers[index],
                    ) from exc
        except Exception as exc:
            error = exc
        except self.cancelled_exc as exc:
            if self._is_real_cancel():
                raise
            error = self._own_cancel_error(index, exc)
        finally:
            rtt = time.perf_counter() - started
            if gate is not None:
                gate.release(rtt, error is not None and self._is_drop(error))
        return error, rtt, result

    def _is_drop(self, error: BaseException) -> bool:
        """Whether a failed call counts as dropped (throttled) for an adaptive limit."""
        retry = self.retry
        try:
            return is_transient(error) if retry is None else retry.should_retry(error, 0)
        except Exception:
            return False

    async def _failed(
        self, index: int, record: Optional[Record], exc: BaseException, attempts: int
    ) -> bool:
        """Record a final failure; offer it to the sink; apply the source's failure rule.
        Returns whether the record counts as handled (its lane may go on)."""
        self.errors[index] = exc
        if self.sink is not None:
            try:
                to_sink = bool(self.sink_when(exc))
            except Exception as when_exc:
                to_sink = False
                self.errors[index] = exc = self._callback_error(index, "sink_when", when_exc,
                                                                exc)
            if to_sink:
                if record is None:
                    record = self.view(self.records[index])
                ident = self.identifiers[index]
                failure = Failure(record, ident, exc, attempts, self.policy.event_type.value,
                                  _source_arn(record))
                sink_exc: Optional[BaseException] = None
                try:
                    await self.sink(failure)
                except Exception as caught:
                    sink_exc = caught
                except self.cancelled_exc as caught:
                    if self._is_real_cancel():
                        raise
                    sink_exc = caught
                if sink_exc is None:
                    self.status[index] = SUNK
                    return True
                error = SinkError(
                    f"record {ident}: the failure sink refused it ({describe(sink_exc)})",
                    identifier=ident, original=exc)
                error.__cause__ = sink_exc
                self.errors[index] = error
        self.status[index] = FAILED
        mode = self.plan.mode
        if mode is FailureMode.INDEPENDENT:
            return True
        if mode is FailureMode.STOP_ALL:
            self._stop_all(RecordSkippedError(
                "not started: an earlier record failed and the batch stops at the first failure",
                reason="batch_stopped", cause=exc))
        elif mode is FailureMode.CHECKPOINT:
            plan = self.plan
            assert plan.sequence is not None
            seq = plan.sequence(index)
            group = None if plan.partition is None else plan.partition(index)
            cut = self.cutoffs.get(group)
            if cut is None or seq < cut[0]:
                self.cutoffs[group] = (seq, self.errors[index])
        return False

    # -- after the run ---------------------------------------------------------------

    def _finalise(self) -> None:
        """Every record not finished gets its final outcome (pending ones are skipped,
        ones cancelled at the hard deadline failed); then the window state is folded."""
        status = self.status
        if PENDING in status or RUNNING in status:
            reason = self.stop_reason or RecordSkippedError(
                "not started: the batch ended before it", reason="deadline")
            for index in range(len(status)):
                code = status[index]
                if code == PENDING:
                    status[index] = SKIPPED
                    self.errors[index] = reason
                elif code == RUNNING:
                    status[index] = FAILED
                    ident = self.identifiers[index]
                    self.errors[index] = DeadlineExceededError(
                        f"record {ident}: cancelled at the Lambda deadline", identifier=ident)
        if self.window is not None and self.reducer is not None:
            self._fold_window()

    def _fold_window(self) -> None:
        """Fold the records below the checkpoint into the window state, in sequence order.

        Lambda redelivers everything at or above the lowest reported sequence number, so
        only records below it are folded (nothing is counted twice). A reducer that raises
        fails its record, which becomes the checkpoint."""
        seq = self.plan.sequence
        if seq is None:
            return
        status = self.status
        reported = [seq(i) for i in range(len(status)) if status[i] in (FAILED, SKIPPED)]
        checkpoint = min(reported) if reported else None
        state = self.state
        reducer = self.reducer
        window = self.window
        assert reducer is not None and window is not None
        parse = self.parse
        for index in sorted(range(len(status)), key=seq):
            if checkpoint is not None and seq(index) >= checkpoint:
                break
            record = self.view(self.records[index])
            try:
                value = record if parse is None else parse(record)
                state = reducer(state, value, window)
            except Exception as exc:
                # The state cannot include this record: report it, so that Lambda
                # redelivers it and everything after it.
                status[index] = FAILED
                self.errors[index] = self._callback_error(index, "the window reducer", exc)
                break
        self.state = state

    # -- hooks -----------------------------------------------------------------------

    def report_skips(self, hooks: Hooks) -> None:
        """``hooks.record_skipped`` for every skipped record, after the batch."""
        for index, code in enumerate(self.status):
            if code == SKIPPED:
                error = self.errors.get(index)
                reason = error.reason if isinstance(error, RecordSkippedError) else "unknown"
                self._hook(index, "record_skipped", self.view(self.records[index]), reason,
                           hooks=hooks)


def _source_arn(record: Record) -> Optional[str]:
    try:
        arn = record.event_source_arn
    except Exception:  # a handler may have emptied its record
        return None
    return arn if isinstance(arn, str) else None


def _logger() -> Any:
    import logging

    return logging.getLogger("asyncbatch")


def validation_error(identifier: str, exc: Any) -> RecordValidationError:
    """A pydantic ``ValidationError`` as a ``RecordValidationError`` naming the fields."""
    errors = exc.errors(include_url=False) if hasattr(exc, "errors") else []
    fields = [".".join(str(part) for part in err.get("loc", ())) or "<root>" for err in errors]
    details = "; ".join(f"{f}: {err.get('msg', '')}" for f, err in zip(fields, errors))
    return RecordValidationError(
        f"record {identifier}: invalid {', '.join(fields) or 'payload'} ({details})",
        identifier=identifier, fields=fields, errors=errors)
