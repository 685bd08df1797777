"""The one scheduler: a run of records on the worker pool of ``pool.py``.

``Run`` is what every record goes through, whatever feeds it: model parsing, an
idempotency claim, the stop rules, the adaptive gate and the rate limit, the handler call
under its timeout, retries, hooks, the failure sink; and around the workers, the deadline's
timers and the claims given back after a cancellation. Two feeds run on it:

- ``BatchRun`` (here): the records of one Lambda event, either one by one (independent
  records) or as lanes (records that must run one at a time, in order, scheduled record
  by record off one cursor: the ready record of lowest rank first); outcomes kept in
  compact arrays.
- ``StreamRun`` (``stream.py``): the items of any iterable, read lazily, keyed items one
  at a time per key; outcomes handed back as they settle.

It runs over a backend seam (``backends.py``): native asyncio or anyio, one code path.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Coroutine, Hashable, Iterable
from contextlib import asynccontextmanager
from operator import length_hint
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._errors import (
    CallbackError,
    DeadlineExceededError,
    HandlerCancelledError,
    RecordSkippedError,
    RecordTimeoutError,
    RecordValidationError,
    SinkError,
    describe,
)
from .._frozen import Frozen
from .._sources import FailureMode
from .backends import current_backend
from .handlers import abandoned_thread
from .pool import YIELD_EVERY, Crew, StopFlag, pool, run_workers
from .report import FAILED, PENDING, REPLAYED, RUNNING, SKIPPED, SUCCEEDED, SUNK

if TYPE_CHECKING:
    from .._sources import Plan, Record, Source
    from .._sources.windows import Window, WindowReducer
    from ..idempotency import BatchIdempotency
    from .backends import Backend, Scope
    from .deadline import Deadline
    from .hooks import FailureSink, Hooks
    from .limits import ConcurrencyLimit, Gate
    from .rate import RateLimit
    from .retry import Retry

__all__ = ["BatchRun", "Run", "Settings", "StopFlag", "pool", "validation_error"]

_PENDING_BYTE = bytes([PENDING])
_SUCCEEDED_BYTE = bytes([SUCCEEDED])
_SETTLE_CHUNK = 1 << 16

#: the longest a run waits, shielded, to give idempotency claims back after a cancellation
CLAIMS_BOUND = 5.0


class Settings(Frozen):
    """A processor's settings as a run reads them: made once by the processor (its options
    already checked), shared by every run it starts, never changed.

    ``hooks`` are the hooks a run calls per record (``None`` when none of the per-record
    methods does anything); ``rate`` a ``RateLimit``; ``fifo_stop`` the FIFO stop-batch
    mode; ``full``: an option that needs the full per-record path is set."""

    __slots__ = ("concurrency", "fifo_stop", "full", "hooks", "idempotency", "limit", "ordering",
                 "rate", "reducer", "retry", "sink", "sink_when", "timeout", "timings")

    concurrency: int
    limit: Optional[ConcurrencyLimit]
    retry: Optional[Retry]
    timeout: Optional[float]
    hooks: Optional[Hooks]
    sink: Optional[FailureSink]
    sink_when: Callable[[BaseException], bool]
    timings: bool
    rate: Optional[RateLimit]
    reducer: Optional[WindowReducer]
    idempotency: Any
    fifo_stop: bool
    ordering: Optional[str]
    full: bool

    def __init__(self, *, concurrency: int, sink_when: Callable[[BaseException], bool],
                 limit: Optional[ConcurrencyLimit] = None, retry: Optional[Retry] = None,
                 timeout: Optional[float] = None, hooks: Optional[Hooks] = None,
                 sink: Optional[FailureSink] = None, timings: bool = False,
                 rate: Optional[RateLimit] = None, reducer: Optional[WindowReducer] = None,
                 idempotency: Any = None, fifo_stop: bool = False,
                 ordering: Optional[str] = None) -> None:
        full = (retry is not None or timeout is not None or hooks is not None or timings
                or limit is not None or idempotency is not None or rate is not None)
        self._set(concurrency=concurrency, limit=limit, retry=retry, timeout=timeout,
                  hooks=hooks, sink=sink, sink_when=sink_when, timings=timings, rate=rate,
                  reducer=reducer, idempotency=idempotency, fifo_stop=fifo_stop,
                  ordering=ordering, full=full)


class Run:
    """What every record goes through, whatever feeds it (see the module docstring).

    A feed gives the records' storage: ``records`` and ``status`` indexed by position
    (a list and a bytearray for a batch; dicts of what is in flight for a stream),
    ``identifiers`` and ``view`` (how a record is shown to hooks, sinks and the
    handler). Faults in the user's code cost at most their record: a handler's own
    ``CancelledError`` is told apart from a real cancellation (ours or the caller's), and
    hooks, predicates, the sink and the reducer are guarded where they are called.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        call: Callable[[Any], Awaitable[Any]],
        parse: Optional[Callable[[Any, Any], Any]],
        deadline: Optional[Deadline],
        backend: Optional[Backend],
        mode: FailureMode,
        event_source: str,
        view: Callable[[Any], Any],
        records: Any,
        identifiers: Any,
        status: Any,
        durations: Any,
        sequence: Optional[Callable[[int], int]] = None,
        partition: Optional[Callable[[int], Hashable]] = None,
    ) -> None:
        self.backend: Backend = backend if backend is not None else current_backend()
        self.yield_now = self.backend.checkpoint
        self.cancelled_exc: type[BaseException] = self.backend.cancelled
        self.scope: Optional[Scope] = None
        self.settings = settings
        self.records = records
        self.identifiers = identifiers
        self.view = view
        self.event_source = event_source
        self.mode = mode
        self.sequence = sequence
        self.partition = partition
        self.call = call
        self.concurrency = settings.concurrency
        self.parse = parse
        self.retry = settings.retry
        self.timeout = settings.timeout
        self.hooks = settings.hooks
        self.sink = settings.sink
        self.sink_when = settings.sink_when
        self.deadline = deadline
        self.idempotency: Optional[BatchIdempotency] = None  # set by the feed, if any
        self.rate = settings.rate
        self.status = status
        self.errors: dict[int, BaseException] = {}
        self.results: dict[int, Any] = {}
        # handler calls per record, stored only where not 1 (the full path; 0: never called)
        self.attempts: dict[int, int] = {}
        # durations are measured on the full path only (a clock read costs a syscall here)
        self.durations = durations
        self.stop = StopFlag()
        self.stop_reason: Optional[RecordSkippedError] = None
        # checkpoint mode: per checkpoint group (partition), the lowest failed sequence
        # number and its error
        self.cutoffs: dict[Hashable, tuple[int, BaseException]] = {}
        # failures decided but still settling (a failure sink deciding whether it takes
        # the record): per checkpoint group (STOP_ALL: the group ``None``), the failed
        # records' sequence numbers. A record above one waits until it settles.
        self.holds: dict[Hashable, dict[int, int]] = {}
        self.settled: Any = None  # the event the waiters at a hold wait for
        self.limit = settings.limit
        self.gate: Optional[Gate] = None
        # sync handlers' threads abandoned (timeout, deadline) while they still run, by record
        self.threads: dict[int, Any] = {}
        # records whose last sync call was cancelled before a thread took it (never ran)
        self.dropped: dict[int, bool] = {}
        self.simple = parse is None and not settings.full
        self.finished = False

    def source_arn(self, record: Any) -> Optional[str]:
        """The ARN a failure sink is told the record came from."""
        return _source_arn(record)

    def running_identifiers(self) -> list[Any]:
        """The identifiers of the records whose handler runs now."""
        raise NotImplementedError

    # -- around the workers -------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Around a feed's workers: the adaptive gate of the run's limit, the backend's
        timers, the deadline's timers and the cancel scope; after, the idempotency claims
        of records that did not finish are given back (when the caller cancelled too)."""
        backend = self.backend
        gate_key = None
        if self.limit is not None:
            from .limits import acquire_gate, release_gate

            self.gate, gate_key = acquire_gate(self.limit, backend.event)
        try:
            async with backend.timers(), self._deadline_scope():
                yield
        except self.cancelled_exc:
            # The caller cancelled: the claims of the records it cancelled go back now
            # (shielded, bounded), or every redelivery would find them in progress until
            # they expire.
            if self.idempotency is not None:
                await self._give_back_claims(self._time_left(CLAIMS_BOUND))
            raise
        finally:
            if gate_key is not None:
                release_gate(gate_key)
        if self.idempotency is not None:
            await self._give_back_claims(self._time_left(CLAIMS_BOUND))

    @asynccontextmanager
    async def _deadline_scope(self) -> AsyncIterator[None]:
        """The workers' cancel scope under the deadline's three timers: stop starting at
        ``soft``, cancel at ``hard``, warn if the cancellation has not finished half-way to
        the end (a handler shielded from it, or blocking the loop)."""
        backend = self.backend
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
                yield
        finally:
            self.finished = True
            for handle in handles:
                handle.cancel()

    def _time_left(self, bound: float) -> float:
        """``bound`` seconds, or half of what is left before Lambda's timeout if less."""
        deadline = self.deadline
        if deadline is None:
            return bound
        return max(0.0, min(bound, deadline.remaining() / 2))

    async def _give_back_claims(self, seconds: float) -> None:
        """After the run: claims of records that ran on abandoned threads which have
        returned since are completed or released; claims of records cancelled (at the
        deadline, or with the caller) are released. Claims of threads still running are
        kept: no other call for their key may start while they can have effects. Bounded
        by ``seconds`` and shielded from cancellation; what is left expires."""
        idem = self.idempotency
        assert idem is not None
        try:
            async with self.backend.shielded(seconds):
                await idem.give_back(self.threads, self.backend.spawn)
        except TimeoutError:
            _logger().warning(
                "asyncbatch: idempotency claims not given back within %.1fs; they expire "
                "with the invocation", seconds)
        except Exception as exc:  # never costs the report
            _logger().warning("asyncbatch: giving idempotency claims back failed: %s",
                              describe(exc))

    def _cancel_overrun(self) -> None:
        """Cancellation is delivered at the handlers' next await. A handler that shields
        itself or blocks the loop cannot be saved: say so before Lambda's timeout."""
        if self.finished:
            return
        running = self.running_identifiers()
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

    # -- one record, every option ----------------------------------------------------

    async def _run_full(self, index: int) -> bool:
        """The path with every option: model parsing, retries, timeout, hooks, an
        adaptive limit, idempotency, timings. Returns whether the record counts as
        handled (its lane may go on); a record left PENDING was not started (the stop
        flag, the deadline or a stop rule forbade it while it waited)."""
        if self.stop.is_set or self._past_soft():
            return True
        record = self.view(self.records[index])
        hooks = self.hooks
        try:
            arg = record if self.parse is None else self.parse(record, self.identifiers[index])
        except Exception as exc:
            self._count(index, 0)
            return await self._failed(index, record, exc, 0)
        idem = self.idempotency
        if idem is not None:
            # (the record stays PENDING while it waits for its claim: cut there by the
            # deadline, it never started, and its claim, if made, is given back)
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
        attempt = 0  # calls tried, for the retry policy and the hooks
        calls = 0  # calls whose handler ran (a sync call dropped before its thread: not)
        elapsed = 0.0
        error: Optional[BaseException] = None
        while True:
            attempt += 1
            if not await self._admit(index):  # re-checked after every wait
                if attempt == 1:  # never started: reported as skipped
                    if idem is not None:  # give its claim back: a redelivery may run it
                        await self._idempotency_done(idem.release, index, record,
                                                     self.stop_reason)
                    return True
                self._count(index, calls)
                assert error is not None
                return await self._settle_failure(index, record, error, calls)
            if hooks is not None:
                hook_error = self._hook(index, "record_started", record, attempt)
                if hook_error is not None:
                    self._unadmit()
                    self._count(index, calls)
                    failure = self._callback_error(index, "hooks.record_started", hook_error,
                                                   error)
                    return await self._settle_failure(index, record, failure, calls)
            # counted before the call: a call that the deadline cancels still counts
            calls += 1
            self._count(index, calls)
            error, rtt, result = await self._attempt(index, arg)
            if self.dropped.pop(index, False):  # its thread never started: not a call
                calls -= 1
            elapsed += rtt
            if self.durations is not None:
                self.durations[index] = elapsed
            if error is None:
                self.status[index] = SUCCEEDED
                if result is not None:
                    self.results[index] = result
                if hooks is not None:
                    self._hook(index, "record_succeeded", record, calls, elapsed)
                if idem is not None:
                    await self._idempotency_done(idem.complete, index, record, result)
                return True
            if retry is not None and not self.stop.is_set \
                    and index not in self.threads:  # not while its thread still runs
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
                                                                  calls)
                        await self.backend.sleep(delay)
                        continue
            return await self._settle_failure(index, record, error, calls)

    # -- the stop rules, through every await ------------------------------------------

    def _verdict(self, index: int) -> Any:
        """What the failures decided so far mean for record ``index``: ``None`` (nothing),
        the cut-off ``(sequence, error)`` it is above (it must not start), or the event to
        wait for (a failure that may forbid it is still settling: a sink deciding)."""
        holds = self.holds
        if self.mode is FailureMode.CHECKPOINT:
            assert self.sequence is not None
            group = None if self.partition is None else self.partition(index)
            seq = self.sequence(index)
            cut = self.cutoffs.get(group)
            if cut is not None and seq > cut[0]:
                return cut
            held = holds.get(group)
            if held and seq > min(held.values()):
                return self._settle_event()
        elif holds:  # STOP_ALL: a failure settling holds every start
            return self._settle_event()
        return None

    def _settle_event(self) -> Any:
        event = self.settled
        if event is None:
            event = self.settled = self.backend.event()
        return event

    def _may_start(self, index: int) -> Any:
        """``True``: record ``index`` may start now; ``False``: it must not (the stop flag,
        the deadline or a stop rule); else the event to wait for before asking again."""
        if self.stop.is_set or self._past_soft():
            return False
        if self.cutoffs or self.holds:
            verdict = self._verdict(index)
            if verdict is not None:
                return False if type(verdict) is tuple else verdict
        return True

    async def _admit(self, index: int) -> bool:
        """Wait until record ``index`` may call its handler: past a failure still
        settling, through the adaptive gate, then for a token of the rate limit;
        everything is asked again after each wait, so a stop rule decided meanwhile keeps
        it from starting. ``False``: it must not start (no slot is held then)."""
        gate = self.gate
        rate = self.rate
        while True:
            verdict = self._may_start(index)
            if verdict is not True:
                if verdict is False:
                    return False
                await verdict.wait()
                continue
            if gate is not None:
                await gate.acquire()
                verdict = self._may_start(index)
                if verdict is not True:
                    gate.release(0.0, False, sample=False)  # the slot back, unused
                    if verdict is False:
                        return False
                    continue
            if rate is None:
                return True
            deadline = self.deadline
            wait = rate.reserve(math.inf if deadline is None
                                else deadline.soft - deadline.clock())
            if wait is None:
                # Its token would come after the stop margin, and every later one too:
                # nothing is reserved; wait for the margin, where starting stops.
                assert deadline is not None
                self._unadmit()
                await self.backend.sleep(max(0.0, deadline.soft - deadline.clock()))
                self._past_soft()
                return False
            if wait > 0.0:
                try:
                    await self.backend.sleep(wait)
                except BaseException:
                    self._unadmit()
                    raise
                verdict = self._may_start(index)
                if verdict is not True:  # the token is spent: starts stay under the rate
                    self._unadmit()
                    if verdict is False:
                        return False
                    continue
            return True

    def _unadmit(self) -> None:
        """Hand back the slot ``_admit`` took for a call that will not be made."""
        if self.gate is not None:
            self.gate.release(0.0, False, sample=False)

    def _decide(self, index: int, error: BaseException, settling: bool) -> None:
        """Apply the source's failure rule the moment record ``index`` failed, before any
        await: the checkpoint cut-off or the batch stop; or, while a failure sink decides
        whether it takes the record (``settling``), a hold on what it would forbid."""
        mode = self.mode
        if mode is FailureMode.CHECKPOINT:
            assert self.sequence is not None
            group = None if self.partition is None else self.partition(index)
            seq = self.sequence(index)
            if settling:
                self.holds.setdefault(group, {})[index] = seq
                return
            cut = self.cutoffs.get(group)
            if cut is None or seq < cut[0]:
                self.cutoffs[group] = (seq, error)
        elif mode is FailureMode.STOP_ALL:
            if settling:
                self.holds.setdefault(None, {})[index] = 0
                return
            self._stop_all(RecordSkippedError(
                "not started: an earlier record failed and the batch stops at the first failure",
                reason="batch_stopped", cause=error))

    def _resolve(self, index: int, error: Optional[BaseException]) -> None:
        """A settling failure settled: the sink took the record (``error`` None: its hold
        is lifted) or refused it (the failure rule applies). Wakes the waiters."""
        group = None if self.partition is None or self.mode is not FailureMode.CHECKPOINT \
            else self.partition(index)
        held = self.holds.get(group)
        if held is not None:
            held.pop(index, None)
            if not held:
                del self.holds[group]
        if error is not None:
            self._decide(index, error, settling=False)
        event, self.settled = self.settled, None
        if event is not None:
            event.set()

    # -- a call, a failure, the sink --------------------------------------------------

    async def _settle_failure(self, index: int, record: Record, error: BaseException,
                              attempts: int) -> bool:
        if self.hooks is not None:
            self._hook(index, "record_failed", record, error, attempts)
        to_sink, error = self._sink_decision(index, error)
        self._decide(index, error, settling=to_sink)  # before any await
        idem = self.idempotency
        if idem is not None:
            thread = self.threads.get(index)
            if thread is not None:  # the call's thread still runs: keep its claim
                idem.keep(index, record, thread)
            else:
                await self._idempotency_done(idem.release, index, record, error)
        return await self._offer(index, record, error, attempts, to_sink)

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

    async def _attempt(self, index: int, arg: Any) -> tuple[Optional[BaseException], float, Any]:
        """One handler call, admitted (``_admit``), under the timeout if any; its slot
        is handed back after. Returns the call's exception (or ``None``), its duration
        and its result."""
        gate = self.gate
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
                self._note_thread(index)
                raise
            error = self._own_cancel_error(index, exc)
        finally:
            rtt = time.perf_counter() - started
            if gate is not None:
                gate.release(rtt, error is not None and self._is_drop(error))
        if error is not None:
            self._note_thread(index)
        leaked = self.backend.leak_check()
        if leaked is not None and leaked():
            await self._absorb_leak()
        return error, rtt, result

    def _note_thread(self, index: int) -> None:
        """Remember a sync handler's thread that its call abandoned (timeout, deadline,
        cancellation) while it still runs: its idempotency claim is kept until it ends."""
        thread = abandoned_thread()
        if thread is None:
            return
        if thread.dropped:  # cancelled before its thread started: the handler never ran
            self.dropped[index] = True
            self._count(index, self.attempts.get(index, 1) - 1)  # (counted before the call)
        elif not thread.done:
            self.threads[index] = thread

    async def _absorb_leak(self) -> None:
        """User code asked to cancel its own worker task and returned normally
        (``current_task().cancel()``): take the request back, so that it costs no other
        record. A real cancellation (ours or the caller's) is left to arrive."""
        if self._is_real_cancel():  # otherwise this withdraws the request
            return
        try:
            await self.yield_now()  # a request uncancel() cannot withdraw lands here
        except self.cancelled_exc:
            if self._is_real_cancel():
                raise

    def _is_drop(self, error: BaseException) -> bool:
        """Whether a failed call counts as dropped (throttled) for an adaptive limit."""
        from .retry import is_transient

        retry = self.retry
        try:
            return is_transient(error) if retry is None else retry.should_retry(error, 0)
        except Exception:
            return False

    async def _failed(
        self, index: int, record: Optional[Record], exc: BaseException, attempts: int
    ) -> bool:
        """Record a final failure, apply the source's failure rule at once, offer it to
        the sink. Returns whether the record counts as handled (its lane may go on)."""
        to_sink, exc = self._sink_decision(index, exc)
        self._decide(index, exc, settling=to_sink)  # before any await
        return await self._offer(index, record, exc, attempts, to_sink)

    def _sink_decision(self, index: int, exc: BaseException) -> tuple[bool, BaseException]:
        """Whether the failure goes to the sink (``sink_when``), and the record's error
        (a ``CallbackError`` when ``sink_when`` raised). A record whose handler's thread
        outlived its call never goes to the sink: it is not known to have failed, and
        taken as handled it would let the next record of its key start beside it."""
        self.errors[index] = exc
        if self.sink is None or index in self.threads:
            return False, exc
        try:
            return bool(self.sink_when(exc)), exc
        except Exception as when_exc:
            exc = self._callback_error(index, "sink_when", when_exc, exc)
            self.errors[index] = exc
            return False, exc

    async def _offer(self, index: int, record: Optional[Record], exc: BaseException,
                     attempts: int, to_sink: bool) -> bool:
        """Offer a failed record to the sink (when ``to_sink``) and settle its outcome:
        taken, it counts as handled; refused, it fails with a ``SinkError``."""
        if to_sink:
            assert self.sink is not None
            if record is None:
                record = self.view(self.records[index])
            ident = self.identifiers[index]
            from .hooks import Failure

            failure = Failure(record, ident, exc, attempts, self.event_source,
                              self.source_arn(record))
            sink_exc: Optional[BaseException] = None
            try:
                await self.sink(failure)
            except Exception as caught:
                sink_exc = caught
            except self.cancelled_exc as caught:
                if self._is_real_cancel():
                    raise
                sink_exc = caught
            leaked = self.backend.leak_check()
            if leaked is not None and leaked():
                await self._absorb_leak()
            if sink_exc is None:
                self.status[index] = SUNK
                self._resolve(index, None)
                return True
            error = SinkError(
                f"record {ident}: the failure sink refused it ({describe(sink_exc)})",
                identifier=ident, original=exc)
            error.__cause__ = sink_exc
            self.errors[index] = error
            self._resolve(index, error)
        self.status[index] = FAILED
        return self.mode is FailureMode.INDEPENDENT


class BatchRun(Run):
    """The run of one ``process()`` call (nothing of it lives on the processor).

    Records run on a crew of workers. Independent records are taken in event order; lanes
    (records that run one at a time) are scheduled record by record off one cursor
    (``_cursor_worker``): a worker takes the ready record of lowest rank (its position in
    the event, or for streams its sequence number), so at ``concurrency=1`` processing is
    exactly event order, and at any concurrency the work started above an eventual
    failure is as small as the bound allows.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        records: list[Any],
        source: Source,
        plan: Plan,
        call: Callable[[Any], Awaitable[Any]],
        parse: Optional[Callable[[Any, Any], Any]] = None,
        deadline: Optional[Deadline] = None,
        window: Optional[Window] = None,
        backend: Optional[Backend] = None,
    ) -> None:
        n = len(records)
        super().__init__(
            settings, call=call, parse=parse, deadline=deadline, backend=backend,
            mode=plan.mode, event_source=source.event_type.value, view=source.view,
            records=records, identifiers=plan.identifiers, status=bytearray(n),
            durations=array("d", bytes(8 * n)) if settings.timings else None,
            sequence=plan.sequence, partition=plan.partition)
        self.source = source
        self.plan = plan
        self.window = window
        self.reducer = settings.reducer
        self.state: Any = window.state if window is not None else None
        # the fast path's run (see _independent_worker): the indices, the records taken
        # but not started
        self._fast: Optional[tuple[Any, list[int]]] = None
        # the record each worker of a path that writes no RUNNING byte runs (-1: none)
        self._slots: list[list[int]] = []

    def running_identifiers(self) -> list[Any]:
        status = self.status
        running = {i for i, code in enumerate(status) if code == RUNNING}
        # (the fast paths write no status while a handler runs; a slot may still show a
        # record that succeeded since)
        running.update(slot[0] for slot in self._slots
                       if slot[0] >= 0 and status[slot[0]] in (PENDING, RUNNING))
        return [self.identifiers[i] for i in sorted(running)]

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
        deadline = self.deadline
        if deadline is not None and deadline.passed_soft():
            self._deadline_stop()  # no time left: start nothing
        elif self.plan.size:
            async with self.running():
                await self._run()
        self.finished = True
        self._finalise()

    async def _run(self) -> None:
        plan = self.plan
        size = plan.size
        backend = self.backend
        if plan.heads is not None:
            worker, waiting = self._cursor_worker()
            await run_workers(worker, min(self.concurrency, plan.width), backend,
                              waiting=waiting)
        elif self.simple:
            worker, waiting = self._independent_worker()
            await run_workers(worker, min(self.concurrency, size), backend, waiting=waiting)
        else:
            await pool(range(size), self._run_full, self.concurrency, stop=self.stop, size=size,
                       backend=backend)

    def _cursor_worker(self) -> tuple[Callable[[Crew], Coroutine[Any, Any, None]],
                                      Callable[[], bool]]:
        """Lanes, off one cursor (no heap, no lane lists).

        Workers take records in the cursor's order (``plan.order``: event order, or for
        a stream batch out of order its sequence order). A record whose lane is busy (one
        of its records runs) waits behind it, and the worker that finishes that record
        runs it next. So the ready record of lowest rank runs first: a waiting record is
        always below the cursor, and a lane's waiters only wait while it runs.
        ``busy[head]`` says of the lane whose first record is at ``head``: ``_FREE`` (none
        of its records runs), ``None`` (one runs, none waits), the deque of its records
        waiting, or ``_Ended`` (a failure or a cut-off skips the rest of it). On the
        simple path no ``RUNNING`` byte is written while a handler runs (each worker's
        slot shows its record, for ``running_identifiers``)."""
        plan = self.plan
        heads = plan.heads
        assert heads is not None
        cursor = iter(range(plan.size) if plan.order is None else plan.order)
        free = _FREE
        busy: list[Any] = [free] * plan.size  # by lane head (a list: faster than a dict)
        stop_all = plan.mode is FailureMode.STOP_ALL
        cutoffs = self.cutoffs
        holds = self.holds
        simple = self.simple
        status = self.status
        errors = self.errors
        records = self.records
        results = self.results
        view = self.source.view
        call = self.call
        flag = self.stop
        deadline = self.deadline
        cancelled = self.cancelled_exc
        yield_now = self.yield_now
        new = object.__new__
        clock = deadline.clock if deadline is not None else None
        soft = deadline.soft if deadline is not None else math.inf
        leak_check = self.backend.leak_check
        slots = self._slots

        def end_lane(head: int, reason: str, cause: Optional[BaseException]) -> None:
            """Skip the rest of a lane: its waiting records now, the ones the cursor has
            not reached yet when it does."""
            waiting = busy[head]
            ended = busy[head] = _Ended(self._skipped_error(reason, cause))
            if waiting:
                self._skip(waiting, ended.error)

        async def worker(crew: Crew) -> None:
            leaked = leak_check()  # a cancel request user code left on this worker's task
            done = 0
            due = YIELD_EVERY  # (records done at the next yield)
            index = -1  # the record this worker runs next (its lane held); -1: none
            head = -1
            slot = [-1]
            slots.append(slot)
            try:
                while True:
                    if index < 0:
                        for index in cursor:
                            head = heads[index]
                            waiting = busy[head]
                            if waiting is free:
                                busy[head] = None
                                break
                            if waiting is None:
                                busy[head] = deque((index,))
                            elif type(waiting) is _Ended:
                                if status[index] == PENDING:
                                    status[index] = SKIPPED
                                    errors[index] = waiting.error
                            else:
                                waiting.append(index)
                        else:
                            return
                    if flag.is_set:
                        return  # the rest stays pending: reported with the stop reason
                    if clock is not None and clock() >= soft:
                        self._deadline_stop()
                        return
                    if cutoffs or holds:  # a failure forbids records, or is settling
                        verdict = self._verdict(index)
                        if verdict is not None:
                            if type(verdict) is tuple:
                                status[index] = SKIPPED
                                end_lane(head, "checkpoint", verdict[1])
                                errors[index] = busy[head].error
                                index = -1
                            else:
                                await verdict.wait()  # a failure is settling: look again
                            continue
                    if simple:  # the hot path, inlined: no coroutine of our own per record
                        slot[0] = index
                        record = new(view)  # a view without a Python-level __init__
                        record.raw = records[index]
                        try:
                            result = await call(record)
                        except Exception as exc:
                            ok = await self._fast_failed(index, exc, slot, leaked)
                        except cancelled as exc:
                            ok = await self._fast_cancelled(index, exc, slot)
                        else:  # (the slot stays: a SUCCEEDED record is not running)
                            status[index] = SUCCEEDED
                            if result is not None:
                                results[index] = result
                            if leaked is not None and leaked():
                                await self._absorb_leak()
                            ok = True
                    else:
                        ok = await self._run_full(index)
                        if status[index] == PENDING:
                            continue  # not started (stop, deadline, checkpoint): look again
                    # A long run must not starve the loop: yield every YIELD_EVERY
                    # records, with no lane held if possible (else the other workers
                    # would queue its records behind it meanwhile), at the latest
                    # 4 x YIELD_EVERY records on.
                    done += 1
                    waiting = busy[head]
                    if not ok:
                        if stop_all:  # the stop reason says it for the rest
                            return
                        end_lane(head, "group_failed", errors[index])
                        index = -1
                    elif waiting:
                        index = waiting.popleft()
                        if done >= due + 3 * YIELD_EVERY:
                            due = done + YIELD_EVERY
                            await yield_now()
                        continue
                    else:
                        busy[head] = free
                        index = -1
                    if done >= due:
                        due = done + YIELD_EVERY
                        await yield_now()
            finally:
                slot[0] = -1

        return worker, lambda: length_hint(cursor) > 0

    # -- the fast paths' failures (off the hot path, shared by both) -------------------

    async def _fast_failed(self, index: int, exc: BaseException, slot: list[int],
                           leaked: Optional[Callable[[], Any]]) -> bool:
        """A fast path's handler raised: its record shows ``RUNNING`` until the failure
        settles (the worker's slot no longer shows it); a cancel request the handler left
        on the worker's task is taken back first. Returns what ``_failed`` returns."""
        slot[0] = -1
        self.status[index] = RUNNING
        if leaked is not None and leaked():
            await self._absorb_leak()
        return await self._failed(index, None, exc, 1)

    async def _fast_cancelled(self, index: int, exc: BaseException, slot: list[int]) -> bool:
        """A fast path's handler ended in a ``CancelledError``: a real cancellation (ours or
        the caller's) is raised on, its record ``RUNNING`` (``_finalise`` says how it
        ended); the handler's own fails only its record."""
        self.status[index] = RUNNING
        if self._is_real_cancel():
            raise exc
        slot[0] = -1
        return await self._failed(index, None, self._own_cancel_error(index, exc), 1)

    def _skipped_error(self, reason: str, cause: Optional[BaseException]) -> RecordSkippedError:
        if reason == "group_failed":
            message = "not started: an earlier record of its ordering key failed"
        else:
            message = "not started: a record with a lower sequence number failed"
        return RecordSkippedError(message, reason=reason, cause=cause)

    def _skip(self, indices: Iterable[int], error: RecordSkippedError) -> None:
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
        (the handler's), no status byte (``_settle_fast`` fills the statuses in once,
        after the run) and a clock read only when there is a deadline.

        While the run goes, a record's status is written only when it leaves the common
        case: ``RUNNING`` when its handler failed (until the failure settles) or was
        cancelled by us; taken but not started (the stop flag, the deadline), it is noted
        in ``unstarted``. Each worker shows the record it runs in its slot (``-1``: none)
        for ``running_identifiers``."""
        records = self.records
        results = self.results
        view = self.source.view
        call = self.call
        flag = self.stop
        deadline = self.deadline
        cancelled = self.cancelled_exc
        yield_now = self.yield_now
        new = object.__new__
        indices = iter(range(len(records)))
        leak_check = self.backend.leak_check
        unstarted: list[int] = []
        slots = self._slots
        self._fast = (indices, unstarted)

        clock = deadline.clock if deadline is not None else None
        soft = deadline.soft if deadline is not None else math.inf

        async def worker(crew: Crew) -> None:
            leaked = leak_check()  # a cancel request user code left on this worker's task
            slot = [-1]
            slots.append(slot)
            try:
                for index in indices:
                    if flag.is_set:
                        unstarted.append(index)
                        return
                    if clock is not None and clock() >= soft:  # by clock: see _past_soft
                        unstarted.append(index)
                        self._deadline_stop()
                        return
                    slot[0] = index
                    record = new(view)  # a view without a Python-level __init__
                    record.raw = records[index]
                    try:
                        result = await call(record)
                    except Exception as exc:
                        await self._fast_failed(index, exc, slot, leaked)
                    except cancelled as exc:
                        await self._fast_cancelled(index, exc, slot)
                    else:
                        if result is not None:
                            results[index] = result
                        if leaked is not None and leaked():
                            slot[0] = -1
                            await self._absorb_leak()
                    if not index % YIELD_EVERY:
                        slot[0] = -1
                        await yield_now()
            finally:
                slot[0] = -1

        return worker, lambda: length_hint(indices) > 0

    def _settle_fast(self) -> None:
        """After ``_independent_worker``'s run: every record taken and still ``PENDING``
        succeeded, in one C-speed pass; the ones taken but not started stay pending."""
        fast = self._fast
        if fast is None:
            return
        self._fast = None
        indices, unstarted = fast
        status = self.status
        taken = len(status) - length_hint(indices)
        for start in range(0, taken, _SETTLE_CHUNK):  # (by chunks: no copy of the whole)
            end = min(start + _SETTLE_CHUNK, taken)
            status[start:end] = status[start:end].replace(_PENDING_BYTE, _SUCCEEDED_BYTE)
        for index in unstarted:
            status[index] = PENDING

    # -- after the run ---------------------------------------------------------------

    def _finalise(self) -> None:
        """Every record not finished gets its final outcome (pending ones are skipped,
        ones cancelled at the hard deadline failed); then the window state is folded."""
        self._settle_fast()
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
                    if self.scope is not None and self.scope.cancel_called:
                        self.errors[index] = DeadlineExceededError(
                            f"record {ident}: cancelled at the Lambda deadline",
                            identifier=ident)
                    else:  # no deadline came: a cancellation user code left on its worker
                        self.errors[index] = HandlerCancelledError(
                            f"record {ident}: its worker was cancelled by a request "
                            "asyncbatch did not make (a cancellation leaked by a hook, a "
                            "sink or a store onto the worker task)", identifier=ident)
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
                value = record if parse is None else parse(record, self.identifiers[index])
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


_FREE: Any = object()  # (the cursor engine: a lane none of whose records runs)


class _Ended:
    """The cursor engine's mark on a lane whose rest is skipped, with the error given."""

    __slots__ = ("error",)

    def __init__(self, error: RecordSkippedError) -> None:
        self.error = error


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
