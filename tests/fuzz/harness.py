"""Runs one scenario and records, from inside, what happened.

Everything the checks need is observed by the fuzzer's own code: the handler (async, or
sync on a worker thread), the hooks, the sink, ``sink_when``, the retry predicate, the
window reducer, the idempotency key function and a faulty store all log what they do
with a sequence number (one total order, threads included) and the loop's virtual time.
A ``Recording`` processor marks where each ``process()`` call starts and ends. The
checks (``checks.py``) compare that log with the reports.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import random
import sys
import threading
import time
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

import anyio
import anyio.lowlevel

import asyncbatch
import asyncbatch._sources._base as plans
from asyncbatch.testing import LambdaContext, simulate

from . import vtime
from .events import RecInfo, build_event, ident_key, raws, read
from .faults import bad_exception, make, origins
from .scenario import HANG, VIRTUAL_CAP, CallSpec, LimitSpec, Scenario, StoreSpec

__all__ = ["Attempt", "CallRun", "World", "run"]

CALL: ContextVar[Optional[CallRun]] = ContextVar("fuzz_call", default=None)


@dataclass(eq=False)
class Attempt:
    """One handler call, as the handler (and, for a sync one, the loop) saw it."""

    call: CallRun
    pos: int  # position in the call's event
    spec: int
    number: int  # 1-based: this record's handler calls in this call
    kind: str
    latency: float
    sync: bool
    start: int
    start_t: float
    end: Optional[int] = None  # loop side
    end_t: Optional[float] = None
    outcome: Optional[str] = None  # ok, raised (its own fault), cancelled (by someone else)
    error: Optional[BaseException] = None
    raised: Optional[BaseException] = None  # the cancellation it raised itself, if any
    cancelled_itself: bool = False  # it called task.cancel() on its own task
    thread_start: Optional[int] = None  # sync: when a thread began running it
    thread_end: Optional[int] = None  # sync: when the thread really ended

    @property
    def ran(self) -> Optional[tuple[float, float]]:
        """When the handler really ran: a sync one from when a thread took it until the
        thread ended (an abandoned thread runs on); ``None`` if no thread ever did."""
        if self.sync:
            if self.thread_start is None:
                return None
            return (self.thread_start,
                    float("inf") if self.thread_end is None else self.thread_end)
        return (self.start, float("inf") if self.end is None else self.end)


@dataclass(eq=False)
class SinkCall:
    call: CallRun
    pos: int
    start: int
    start_t: float
    end: Optional[int] = None
    outcome: Optional[str] = None  # accepted, raised, cancelled


@dataclass(eq=False)
class Callback:
    name: str  # hook:<method>, sink_when, retry_on, reducer
    call_id: Optional[int]
    pos: Optional[int]
    seq: int
    raised: bool


@dataclass(eq=False)
class StoreOp:
    call_id: Optional[int]
    method: str
    keys: tuple[str, ...]
    fault: str
    seq: int
    item: Any = None  # claim: the item it meant to write
    written: bool = False  # claim: the item is in the store


@dataclass(eq=False)
class CallRun:
    """One ``process()`` call (one invocation)."""

    id: int
    number: int  # its CallSpec's index
    spec: CallSpec
    event: dict[str, Any]
    infos: list[RecInfo]
    context: Any
    start: int
    start_t: float
    soft: Optional[float] = None
    hard: Optional[float] = None
    end_deadline: Optional[float] = None
    remaining: Optional[float] = None
    end: Optional[int] = None
    end_t: Optional[float] = None
    report: Optional[asyncbatch.BatchReport] = None
    error: Optional[BaseException] = None
    cancelled: bool = False
    batch_failed: Optional[BaseException] = None
    response: Optional[dict[str, Any]] = None
    store_after: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    by_key: dict[Hashable, RecInfo] = field(default_factory=dict)
    by_text: dict[str, RecInfo] = field(default_factory=dict)
    by_raw: dict[int, RecInfo] = field(default_factory=dict)
    original_raws: list[dict[str, Any]] = field(default_factory=list)  # Firehose: as sent
    calls_of: dict[int, int] = field(default_factory=dict)  # position -> handler calls

    def info(self, record: Any) -> RecInfo:
        """The record a view is of: found by its raw dict (a handler may have edited the
        identifier in it), else by its identifier."""
        found = self.by_raw.get(id(record.raw))
        return found if found is not None else self.by_key[ident_key(record.identifier)]

    def locate(self, exc: BaseException) -> Optional[int]:
        """The position of the record an exception is about, if it can be told."""
        for tag in origins(exc):
            if tag[1] == self.id and isinstance(tag[2], int):
                return int(tag[2])
        ident = getattr(exc, "identifier", None)
        if ident is not None:
            try:
                found = self.by_key.get(ident_key(ident)) or self.by_text.get(str(ident))
            except Exception:
                found = None
            if found is not None:
                return found.position
        return None


class Recording(asyncbatch.AsyncBatchProcessor):
    """A processor that marks where each of its ``process()`` calls starts and ends."""

    def __init__(self, world: World, number: int, **options: Any) -> None:
        super().__init__(**options)
        self.fuzz_world = world
        self.fuzz_number = number
        self.runs: list[CallRun] = []

    async def process(self, event: Any, handler: Any, context: Any = None
                      ) -> asyncbatch.BatchReport:
        world = self.fuzz_world
        call = world.open_call(self.fuzz_number, event, context)
        self.runs.append(call)
        token = CALL.set(call)
        try:
            report = await super().process(event, handler, context)
        except BaseException as exc:
            world.close_call(call, error=exc)
            raise
        finally:
            CALL.reset(token)
        world.close_call(call, report=report)
        return report


class _View:
    """Enough of a record view for ``Idempotency.key_of`` (to seed the store)."""

    def __init__(self, identifier: Any) -> None:
        self.identifier = identifier


class World:
    """One scenario's run: its objects and everything they observed."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.backend = scenario.backend
        self.lock = threading.Lock()
        self.seq = 0
        self.calls: list[CallRun] = []
        self.attempts: list[Attempt] = []
        self.sink_calls: list[SinkCall] = []
        self.callbacks: list[Callback] = []
        self.store_ops: list[StoreOp] = []
        self.problems: list[str] = []
        self.logs: list[tuple[int, str, dict[str, Any]]] = []
        self.plan_count: dict[tuple[int, int], int] = {}
        self.events = [build_event(spec, number if spec.duplicate_of is None
                                   else spec.duplicate_of, scenario.seed)
                       for number, spec in enumerate(scenario.calls)]
        # identifier -> (call number, spec index): for the key function and seeding
        self.spec_of: dict[Hashable, tuple[int, int]] = {}
        for number, (spec, event) in enumerate(zip(scenario.calls, self.events)):
            for info in read(spec.source, event, spec.ordering):
                self.spec_of.setdefault(info.key, (number, info.spec))
        self.rng = random.Random(scenario.seed ^ 0x5EED)
        self.shared_limit = _limit(scenario.shared_limit, scenario.seed) \
            if scenario.shared_limit else None
        self.store: Optional[FaultyStore] = None
        self.idempotency_object: Any = None
        self.preseeded: dict[str, str] = {}  # store key -> what was seeded
        self.simulation: Any = None
        self.store_key_names: dict[str, Hashable] = {}  # store id -> idem_key()
        if scenario.idempotency is not None:
            self.keyer = asyncbatch.Idempotency(asyncbatch.InMemoryIdempotencyStore(),
                                                key=self.key_fn)
            for spec, event in zip(scenario.calls, self.events):
                for info in read(spec.source, event, spec.ordering):
                    rec = spec.records[info.spec]
                    try:
                        store_key = self.keyer.key_of(_View(info.ident))  # type: ignore[arg-type]
                    except Exception:
                        continue  # its key function raises
                    self.store_key_names[store_key] = ("shared", rec.idem_key) \
                        if rec.idem_key is not None else ("id", info.key)
        self.tracker: Optional[vtime.Tracker] = None
        if scenario.threads:
            self.tracker = vtime.Tracker(self._dispatch, self._returned)
        self.capped = False
        self.leftover_tasks: list[str] = []

    # -- the log ---------------------------------------------------------------------------

    def tick(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # -- calls -----------------------------------------------------------------------------

    def open_call(self, number: int, event: Any, context: Any) -> CallRun:
        spec = self.scenario.calls[number]
        infos = read(spec.source, event, spec.ordering)
        now = anyio.current_time()
        call = CallRun(id=len(self.calls), number=number, spec=spec, event=event,
                       infos=infos, context=context, start=self.tick(), start_t=now)
        call.by_key = {info.key: info for info in infos}
        call.by_text = {str(info.ident): info for info in infos}
        call.by_raw = {id(raw): info for raw, info in zip(raws(spec.source, event), infos)}
        if spec.source == "firehose":  # its answer carries a record's data as it arrived
            call.original_raws = copy.deepcopy(raws(spec.source, event))
        if context is not None:
            remaining = context.get_remaining_time_in_millis() / 1000.0
            if spec.margins == "auto":
                soft_m = min(max(remaining * 0.10, 0.5), 30.0)
                cancel_m = min(max(remaining * 0.05, 0.2), 10.0)
            else:
                soft_m, cancel_m = spec.margins
            call.remaining = remaining
            call.end_deadline = now + remaining
            call.soft = call.end_deadline - soft_m
            call.hard = call.end_deadline - min(cancel_m, soft_m)
        self.calls.append(call)
        return call

    def close_call(self, call: CallRun, *, report: Any = None,
                   error: Optional[BaseException] = None) -> None:
        call.end = self.tick()
        call.end_t = anyio.current_time()
        call.report = report
        if error is not None:
            if isinstance(error, anyio.get_cancelled_exc_class()):
                call.cancelled = True
            else:
                call.error = error
        if self.store is not None:
            call.store_after = dict(self.store.inner.items)

    # -- the handler ---------------------------------------------------------------------

    def begin(self, call: CallRun, record: Any, sync: bool) -> Attempt:
        info = call.info(record)
        rec = call.spec.records[info.spec]
        plan_key = (call.number, info.spec)
        total = self.plan_count[plan_key] = self.plan_count.get(plan_key, 0) + 1
        kind, latency = rec.attempts[min(total, len(rec.attempts)) - 1]
        number = call.calls_of[info.position] = call.calls_of.get(info.position, 0) + 1
        attempt = Attempt(call, info.position, info.spec, number, kind, latency, sync,
                          self.tick(), anyio.current_time())
        call.attempts.append(attempt)
        self.attempts.append(attempt)
        return attempt

    def finish(self, attempt: Attempt, exc: Optional[BaseException]) -> None:
        attempt.end = self.tick()
        attempt.end_t = anyio.current_time()
        attempt.error = exc
        if exc is None:
            attempt.outcome = "ok"
        elif exc is attempt.raised or getattr(exc, "fuzz", None) is not None or (
                attempt.cancelled_itself and _is_cancel(exc)):
            attempt.outcome = "raised"
        elif _is_cancel(exc):
            attempt.outcome = "cancelled"
        else:
            attempt.outcome = f"unexpected {type(exc).__name__}"

    async def handle(self, record: Any) -> Any:
        call = CALL.get()
        assert call is not None, "the handler ran outside a process() call"
        attempt = self.begin(call, record, sync=False)
        try:
            result = await self._act(attempt)
        except BaseException as exc:
            self.finish(attempt, exc)
            raise
        finally:
            if call.spec.mutate:
                _mutate(call.spec.source, record.raw)
        self.finish(attempt, None)
        return result

    async def _act(self, attempt: Attempt) -> Any:
        kind, latency = attempt.kind, attempt.latency
        tag = ("handler", attempt.call.id, attempt.pos, attempt.number)
        if kind == "leak_cancel":  # asyncio only: a cancel request left on the worker
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            return attempt.spec
        if kind == "hang":
            await anyio.sleep(HANG)
            return attempt.spec
        if latency >= 0:
            await anyio.sleep(latency)
        if kind == "ok":
            return attempt.spec
        if kind in ("raise_cancel", "cancel_self") and self.backend == "trio":
            attempt.raised = await _leaked_trio_cancel()
            raise attempt.raised
        if kind == "raise_cancel":
            attempt.raised = asyncio.CancelledError()
            raise attempt.raised
        if kind == "cancel_self":
            task = asyncio.current_task()
            assert task is not None
            attempt.cancelled_itself = True
            task.cancel()
            await anyio.lowlevel.checkpoint()
            return attempt.spec
        raise make(kind, tag)

    def handle_sync(self, record: Any) -> Any:
        job = vtime.current_job()
        attempt = job.data if job is not None else None
        if not isinstance(attempt, Attempt):
            raise AssertionError("a sync handler ran without going through run_sync")
        attempt.thread_start = self.tick()
        try:
            kind = attempt.kind
            if kind == "hang":
                job.park()  # type: ignore[union-attr]
                return attempt.spec
            if kind == "ok":
                return attempt.spec
            if kind == "raise_cancel":
                attempt.raised = asyncio.CancelledError()
                raise attempt.raised
            raise make(kind, ("handler", attempt.call.id, attempt.pos, attempt.number))
        finally:
            if attempt.call.spec.mutate:
                _mutate(attempt.call.spec.source, record.raw)
            attempt.thread_end = self.tick()

    def _dispatch(self, args: tuple[Any, ...]) -> Optional[Attempt]:
        record = _find_record(args)
        call = CALL.get()
        if record is None or call is None:
            return None
        return self.begin(call, record, sync=True)

    def _returned(self, attempt: Any, outcome: str, exc: Optional[BaseException]) -> None:
        if isinstance(attempt, Attempt):
            self.finish(attempt, exc)

    # -- callbacks -------------------------------------------------------------------------

    def callback(self, name: str, call: Optional[CallRun], pos: Optional[int],
                 raises: bool, bad: bool) -> None:
        self.callbacks.append(Callback(name, call.id if call else None, pos, self.tick(),
                                       raises))
        if raises:
            raise bad_exception((name, call.id if call else None, pos), bad)

    async def sink(self, failure: Any) -> None:
        call = CALL.get()
        assert call is not None
        info = call.info(failure.record)
        rec = call.spec.records[info.spec]
        entry = SinkCall(call, info.position, self.tick(), anyio.current_time())
        self.sink_calls.append(entry)
        try:
            if rec.sink == "hang":
                await anyio.sleep(HANG)
            if rec.sink.startswith("stall"):
                await anyio.sleep(rec.sink_latency)
            if rec.sink in ("raise", "stall_raise", "bad_raise"):
                raise bad_exception(("sink", call.id, info.position), rec.sink == "bad_raise")
        except BaseException as exc:
            entry.outcome = "cancelled" if _is_cancel(exc) else "raised"
            raise
        finally:
            entry.end = self.tick()
        entry.outcome = "accepted"

    def sink_when(self, exc: BaseException) -> bool:
        call = CALL.get()
        pos = call.locate(exc) if call is not None else None
        raises = False
        bad = False
        if call is not None and pos is not None:
            rec = call.spec.records[call.infos[pos].spec]
            raises, bad = rec.sink_when_raises, rec.bad_callbacks
        self.callback("sink_when", call, pos, raises, bad)
        if call is not None and call.spec.sink_when == "all":
            return True
        return not asyncbatch.is_transient(exc)

    def retry_on(self, exc: BaseException) -> bool:
        call = CALL.get()
        pos = call.locate(exc) if call is not None else None
        raises = bad = False
        if call is not None and pos is not None:
            rec = call.spec.records[call.infos[pos].spec]
            raises, bad = rec.retry_on_raises, rec.bad_callbacks
        self.callback("retry_on", call, pos, raises, bad)
        return asyncbatch.is_transient(exc)

    def reducer(self, state: Any, record: Any, window: Any) -> Any:
        call = CALL.get()
        assert call is not None
        info = call.info(record)
        rec = call.spec.records[info.spec]
        self.callback("reducer", call, info.position, rec.reducer_raises, rec.bad_callbacks)
        return {"n": state.get("n", 0) + 1, "seqs": [*state.get("seqs", []), info.seq]}

    def key_fn(self, view: Any) -> Any:
        key = ident_key(view.identifier)
        number, spec = self.spec_of[key]
        rec = self.scenario.calls[number].records[spec]
        if rec.key_fn_raises:
            raise make("fail", ("key_fn", None, key))
        if rec.idem_key is not None:
            return rec.idem_key
        return list(key) if isinstance(key, tuple) else key

    def idem_key(self, call: CallRun, pos: int) -> Hashable:
        """The idempotency key of a record, as the oracle names it."""
        info = call.infos[pos]
        rec = call.spec.records[info.spec]
        return ("shared", rec.idem_key) if rec.idem_key is not None else ("id", info.key)

    # -- processors ------------------------------------------------------------------------

    def processor(self, number: int) -> Recording:
        spec = self.scenario.calls[number]
        limit = self.shared_limit
        if limit is None and spec.limit is not None:
            limit = _limit(spec.limit, self.scenario.seed + number)
        options: dict[str, Any] = {
            "concurrency": limit if limit is not None else spec.concurrency,
            "fifo_stop_on_failure": spec.fifo_stop, "ordering": spec.ordering,
            "timeout": spec.timeout, "timings": spec.timings,
            "log_summary": spec.log_summary, "log_failures": spec.log_failures,
        }
        if spec.retry is not None:
            attempts, base, cap = spec.retry
            options["retry"] = asyncbatch.Retry(
                attempts, on=self.retry_on if spec.retry_predicate else None, base=base,
                cap=cap, seed=self.scenario.seed + number)
        if spec.sink:
            options["sink"] = self.sink
            if spec.sink_when != "default":
                options["sink_when"] = self.sink_when
        if spec.hooks:
            options["hooks"] = FuzzHooks(self)
        if spec.window:
            options["window_reducer"] = self.reducer
        if spec.margins != "auto":
            options["deadline_margin"], options["cancel_margin"] = spec.margins
        if self.scenario.idempotency is not None:
            options["idempotency"] = self._idempotency()
        options["backend"] = vtime.processor_backend(self.backend)
        return Recording(self, number, **options)

    def _idempotency(self) -> Any:
        spec = self.scenario.idempotency
        assert spec is not None and self.store is not None
        if spec.share_object and self.idempotency_object is not None:
            return self.idempotency_object
        made = asyncbatch.Idempotency(
            self.store, key=self.key_fn, local_cache=spec.local_cache,
            retry=asyncbatch.Retry(spec.retry_attempts, base=0.01, cap=0.1,
                                   seed=self.scenario.seed))
        if spec.share_object:
            self.idempotency_object = made
        return made

    async def seed_store(self) -> None:
        """The store as earlier invocations left it."""
        spec = self.scenario.idempotency
        assert spec is not None
        inner = asyncbatch.InMemoryIdempotencyStore(clock=_store_clock())
        self.store = FaultyStore(inner, spec, self)
        item = asyncbatch.IdempotencyItem
        keyer = self.keyer
        infos = read(self.scenario.calls[0].source, self.events[0],
                     self.scenario.calls[0].ordering)
        by_spec = {info.spec: info for info in infos}
        now = inner.now()
        for kind, indices in (("completed", spec.completed), ("in_progress", spec.in_progress),
                              ("expired", spec.expired)):
            for index in indices:
                info = by_spec.get(index)
                if info is None:
                    continue
                try:
                    key = keyer.key_of(_View(info.ident))  # type: ignore[arg-type]
                except Exception:
                    continue  # its key function raises: nothing to seed
                if key in self.preseeded:
                    continue
                if kind == "completed":
                    inner.items[key] = item(key, "COMPLETED", int(now + 3600), None,
                                            '"seeded"', None)
                elif kind == "in_progress":
                    inner.items[key] = item(key, "INPROGRESS", int(now + 3600),
                                            int((now + 3600) * 1000))
                else:
                    inner.items[key] = item(key, "INPROGRESS", int(now - 10),
                                            int((now - 10) * 1000))
                self.preseeded[key] = kind

    # -- running ---------------------------------------------------------------------------

    async def run_call(self, number: int) -> None:
        spec = self.scenario.calls[number]
        processor = self.processor(number)
        event = self.events[number]
        context = LambdaContext(remaining=spec.remaining) if spec.remaining is not None \
            else None
        handler = self.handle_sync if spec.sync else self.handle

        async def invoke() -> None:
            if spec.entry == "partial":
                try:
                    response = await asyncbatch.async_process_partial_response(
                        event, handler, processor, context)
                except asyncbatch.BatchFailedError as exc:
                    processor.runs[-1].batch_failed = exc
                else:
                    processor.runs[-1].response = response
            else:
                await processor.process(event, handler, context)

        try:
            await self._cancellable(spec.cancel, invoke)
        except Exception as exc:
            self.problem(f"call {number}: process() raised {_describe(exc)}")

    async def _cancellable(self, cancel: Optional[tuple[str, float]],
                           invoke: Callable[[], Any]) -> None:
        """Await ``invoke()``, its caller cancelled as ``cancel`` says."""
        if cancel is None:
            await invoke()
            return
        how, when = cancel
        if self.backend == "trio":
            import trio

            with trio.CancelScope() as scope:
                if how == "time":
                    scope.deadline = trio.current_time() + when
                    await invoke()
                    return
                async with trio.open_nursery() as nursery:
                    async def canceller() -> None:
                        for _ in range(int(when)):
                            await trio.lowlevel.checkpoint()
                        scope.cancel()

                    nursery.start_soon(canceller)
                    await invoke()
                    nursery.cancel_scope.cancel()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(invoke())
        handle: Any = None
        if how == "time":
            handle = loop.call_later(when, task.cancel)
        else:
            def step(left: int) -> None:
                if left <= 0:
                    task.cancel()
                else:
                    loop.call_soon(step, left - 1)

            step(int(when))
        await asyncio.wait([task])
        if handle is not None:
            handle.cancel()
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def run_simulation(self) -> None:
        spec = self.scenario.calls[0]
        processor = self.processor(0)
        handler = self.handle_sync if spec.sync else self.handle
        context: Any = None
        if spec.remaining is not None:
            def context() -> Any:
                return LambdaContext(remaining=spec.remaining)
        try:
            self.simulation = await simulate(handler, self.events[0], processor=processor,
                                             context=context,
                                             max_attempts=self.scenario.max_attempts)
        except Exception as exc:
            self.problem(f"simulate() raised {_describe(exc)}")

    async def main(self) -> None:
        on_asyncio = self.backend != "trio"
        if on_asyncio:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(self._loop_error)
            before = set(asyncio.all_tasks())
        if self.scenario.idempotency is not None:
            await self.seed_store()
        with anyio.move_on_after(VIRTUAL_CAP) as cap:
            if self.scenario.mode == "simulate":
                await self.run_simulation()
            else:
                async with anyio.create_task_group() as group:
                    for number in range(len(self.scenario.calls)):
                        group.start_soon(self.run_call, number)
        self.capped = cap.cancelled_caught
        if self.tracker is not None:
            self.tracker.release_all()
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        if on_asyncio:
            left = set(asyncio.all_tasks()) - before
            self.leftover_tasks = [repr(task) for task in left if not task.done()]

    def _loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        self.problem(f"asyncio loop error: {context.get('message')!r} "
                     f"{_describe(context.get('exception'))}")


def _mutate(source: str, raw: dict[str, Any]) -> None:
    """What a careless handler does: edit its record's identifier (and payload)."""
    if source in ("sqs", "fifo"):
        raw["messageId"] = "edited-by-the-handler"
        raw["body"] = "{}"
    elif source == "kinesis":
        raw.get("kinesis", raw)["sequenceNumber"] = "1"  # a pipe's record is flat
    elif source == "dynamodb":
        raw["dynamodb"]["SequenceNumber"] = "1"
    elif source == "firehose":
        raw["recordId"] = "edited-by-the-handler"
        raw.pop("data", None)
        raw.pop("kafkaRecordValue", None)
    else:
        raw["offset"] = -1
        raw["partition"] = 99


def _describe(exc: Any) -> str:
    if exc is None:
        return ""
    try:
        return f"{type(exc).__name__}: {exc}"[:300]
    except Exception:
        return f"{type(exc).__name__} (unprintable)"


def _is_cancel(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


async def _leaked_trio_cancel() -> BaseException:
    """A ``trio.Cancelled`` caught inside a scope, to re-raise outside it."""
    import trio

    caught: Optional[BaseException] = None
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            caught = exc
    assert caught is not None
    return caught


def _find_record(value: Any, depth: int = 4) -> Any:
    if isinstance(value, asyncbatch.Record):
        return value
    if depth and isinstance(value, (tuple, list)):
        for item in value:
            found = _find_record(item, depth - 1)
            if found is not None:
                return found
    if depth and isinstance(value, dict):
        for item in value.values():
            found = _find_record(item, depth - 1)
            if found is not None:
                return found
    return None


class _SeededGradient(asyncbatch.GradientLimit):
    """``GradientLimit`` fed seeded round-trip times: the engine measures them with
    ``time.perf_counter`` (real time), which would make a virtual-time run unrepeatable."""

    def __init__(self, initial: int, max: int, seed: int) -> None:
        super().__init__(initial, max=max)
        self.rng = random.Random(seed)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        super().on_sample(self.rng.choice((0.001, 0.01, 0.05, 0.2)), inflight, dropped)


def _limit(spec: LimitSpec, seed: int) -> Any:
    if spec.kind == "aimd":
        return asyncbatch.AIMDLimit(spec.initial, max=spec.max, backoff=spec.backoff)
    if spec.kind == "gradient":
        return _SeededGradient(spec.initial, spec.max, seed)
    return asyncbatch.WindowedLimit(
        asyncbatch.AIMDLimit(spec.initial, max=spec.max, backoff=spec.backoff),
        min_samples=spec.min_samples)


def _store_clock() -> Callable[[], float]:
    base = time.time()
    return lambda: base + anyio.current_time()


class FuzzHooks(asyncbatch.Hooks):
    """Per-record hooks that raise for the records their plan says; batch hooks that
    raise for the calls whose plan says."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _record(self, name: str, record: Any) -> None:
        call = CALL.get()
        assert call is not None
        info = call.info(record)
        rec = call.spec.records[info.spec]
        self.world.callback(f"hook:{name}", call, info.position, name in rec.hooks,
                            rec.bad_callbacks)

    def _batch(self, name: str) -> None:
        call = CALL.get()
        if call is not None:
            self.world.callback(f"hook:{name}", call, None,
                                name in call.spec.batch_hooks_raise, False)

    def batch_started(self, event_type: str, size: int) -> None:
        self._batch("batch_started")

    def batch_finished(self, report: Any) -> None:
        self._batch("batch_finished")

    def record_started(self, record: Any, attempt: int) -> None:
        self._record("record_started", record)

    def record_succeeded(self, record: Any, attempts: int, duration: float) -> None:
        self._record("record_succeeded", record)

    def record_failed(self, record: Any, exception: BaseException, attempts: int) -> None:
        self._record("record_failed", record)

    def record_retried(self, record: Any, exception: BaseException, attempt: int,
                       delay: float) -> None:
        self._record("record_retried", record)

    def record_skipped(self, record: Any, reason: str) -> None:
        call = CALL.get()
        if call is not None:
            self.world.callback("hook:record_skipped", call, call.info(record).position,
                                "record_skipped" in call.spec.batch_hooks_raise, False)


class StoreFault(Exception):
    """The faulty store's own failure."""


class StoreTransient(asyncbatch.TransientError):
    """A store failure the idempotency retry policy retries."""


class FaultyStore:
    """An ``InMemoryIdempotencyStore`` that fails, answers garbage and is slow, as the
    scenario's ``StoreSpec`` says; every call logged."""

    def __init__(self, inner: Any, spec: StoreSpec, world: World) -> None:
        self.inner = inner
        self.spec = spec
        self.world = world

    def now(self) -> float:
        return float(self.inner.now())

    def _fault(self, method: str, keys: tuple[str, ...], options: tuple[str, ...],
               item: Any = None) -> str:
        rng = self.world.rng
        fault = rng.choice(options) if rng.random() < self.spec.fault_rate else "ok"
        call = CALL.get()
        self.last_op = StoreOp(call.id if call else None, method, keys, fault,
                               self.world.tick(), item)
        self.world.store_ops.append(self.last_op)
        return fault

    async def _slow(self) -> None:
        await anyio.sleep(self.world.rng.choice((0.001, 0.01, 0.2, 0.9)))

    async def get_many(self, keys: Any) -> Any:
        fault = self._fault("get_many", tuple(keys), self.spec.get_many_faults)
        if fault == "slow":
            await self._slow()
        if fault == "raise":
            raise StoreFault("get_many failed")
        if fault == "none":
            return None
        if fault == "string":
            return "garbage"
        found = await self.inner.get_many(keys)
        if fault == "partial":
            found = dict(list(found.items())[::2])
        return found

    async def claim(self, item: Any) -> Any:
        fault = self._fault("claim", (item.key,),
                            ("raise_before", "raise_after", "slow", "transient"), item)
        op = self.last_op
        if fault == "slow":
            await self._slow()
        if fault == "raise_before":
            raise StoreFault("claim failed")
        if fault == "transient":
            raise StoreTransient("claim throttled")
        other = await self.inner.claim(item)
        op.written = other is None
        if fault == "raise_after":
            raise StoreFault("claim timed out after writing")
        return other

    async def complete(self, item: Any) -> None:
        fault = self._fault("complete", (item.key,), ("raise_before", "raise_after", "slow"))
        if fault == "slow":
            await self._slow()
        if fault == "raise_before":
            raise StoreFault("complete failed")
        await self.inner.complete(item)
        if fault == "raise_after":
            raise StoreFault("complete timed out after writing")

    async def release(self, claim: Any) -> None:
        fault = self._fault("release", (claim.key,), ("raise", "slow"))
        if fault == "slow":
            await self._slow()
        if fault == "raise":
            raise StoreFault("release failed")
        await self.inner.release(claim)


# -- the environment: logs, warnings, unraisable exceptions --------------------------------------


class _Capture(logging.Handler):
    def __init__(self, world: World) -> None:
        super().__init__(logging.DEBUG)
        self.world = world
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:
            self.world.problem(f"a log record of asyncbatch could not be formatted "
                               f"({record.msg!r}: {type(exc).__name__})")
            text = str(record.msg)
        extra = getattr(record, "asyncbatch", None)
        self.world.logs.append((record.levelno, text, extra if isinstance(extra, dict) else {}))


def run(scenario: Scenario) -> World:
    """Run ``scenario`` on its backend in virtual time; return what was observed."""
    world = World(scenario)
    vtime.install_thread_tracking()
    # Plans read batches slice by slice (_sources._base.SLICE records): the fuzzer's
    # batches are small, so most scenarios cut them into slices of 1-5 records, that
    # every slice edge meets every feature and fault (from the seed: replays exactly).
    saved_slice = plans.SLICE
    plans.SLICE = _SLICES[scenario.seed % len(_SLICES)]
    logger = logging.getLogger("asyncbatch")
    saved = (logger.level, logger.propagate, logger.handlers[:])
    capture = _Capture(world)
    logger.handlers = [capture]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if scenario.debug_log else logging.WARNING)
    old_unraisable = sys.unraisablehook
    old_excepthook = threading.excepthook
    sys.unraisablehook = lambda info: world.problem(
        f"unraisable exception: {_describe(info.exc_value)} in {info.object!r}")
    threading.excepthook = lambda info: world.problem(
        f"a thread raised: {_describe(info.exc_value)}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                vtime.run_on(scenario.backend, world.main, seed=scenario.seed,
                             tracker=world.tracker)
            except vtime.Deadlock as exc:
                world.problem(f"deadlock: {exc}")
            if any(call.cancel for call in scenario.calls):
                gc.collect()  # a coroutine never awaited warns when collected
        for warning in caught:
            if issubclass(warning.category, (RuntimeWarning, ResourceWarning)):
                world.problem(f"warning: {warning.category.__name__}: {warning.message}")
    finally:
        sys.unraisablehook = old_unraisable
        threading.excepthook = old_excepthook
        logger.handlers = saved[2]
        logger.propagate = saved[1]
        logger.setLevel(saved[0])
        plans.SLICE = saved_slice
    return world


#: the slice sizes plans read a scenario's batches in (the default, and small ones)
_SLICES = (plans.SLICE, 1, 2, 3, 5)


def fingerprint(world: World) -> list[Any]:
    """What a run did, in a comparable form (to check that a seed replays exactly)."""
    out: list[Any] = []
    for call in world.calls:
        out.append(("call", call.id, call.number, call.start_t, call.end_t, call.cancelled,
                    None if call.report is None else [
                        (o.index, o.status, o.attempts) for o in call.report]))
    for a in world.attempts:
        out.append(("attempt", a.call.id, a.pos, a.number, a.kind, a.outcome, a.start_t,
                    a.end_t))
    out.extend(("sink", s.call.id, s.pos, s.start_t, s.outcome) for s in world.sink_calls)
    out.extend(("store", op.call_id, op.method, op.fault) for op in world.store_ops)
    return out
