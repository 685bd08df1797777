"""Any iterable through the one scheduler: ``stream()`` and ``run()``.

``StreamRun`` is a feed of ``Run`` (``run.py``): workers read the input lazily (a
list, a generator, an async iterator that never ends), each item goes through the same
per-record path as a record of an event (model, idempotency, gate, rate limit, timeout,
retries, hooks, sink, deadline), and each outcome is handed back as it settles. Nothing
is kept per item once its outcome is taken: memory follows ``concurrency``.

- Read-ahead is bounded: at most ``2 x concurrency`` items are held that the consumer
  has not taken back (running, waiting behind their key, or settled and not yet taken).
  A slow consumer, or with ``ordered=True`` a slow head, pauses reading.
- ``key=``: items of one key run one at a time in input order. An item whose key is busy
  waits behind the running one and is run next by the worker that finishes the key (so
  the lowest pending position still runs first); after an item fails, the later items of
  its key are skipped; other keys go on.
- The input's own exception is kept, reading stops, what was taken settles and is handed
  back, then the exception is raised from the iteration, unchanged.

``Stream`` is what ``AsyncBatchProcessor.stream()`` returns: an async context manager
whose value iterates over the outcomes; leaving it early stops reading, cancels the
handlers still running and closes an async generator input, with no task left.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Hashable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union

from .._errors import CallbackError, RecordSkippedError, describe
from .._sources import FailureMode
from .pool import YIELD_EVERY, Crew, run_workers
from .report import (
    _NAMES,
    FAILED,
    PENDING,
    REPLAYED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SUNK,
    make_outcome,
)
from .run import Run, Settings

if TYPE_CHECKING:
    from .backends import Backend
    from .deadline import Deadline
    from .report import Outcome

__all__ = ["Stream", "StreamRun", "check_items"]

#: how many items may be held, per handler slot, that the consumer has not taken back
READ_AHEAD = 2


def check_items(items: Any) -> None:
    """``ConfigurationError`` for an input that is not an iterable or async iterable."""
    from .._errors import ConfigurationError

    if isinstance(items, (str, bytes, bytearray)) or not (
            hasattr(items, "__aiter__") or hasattr(items, "__iter__")):
        kind = type(items).__name__
        raise ConfigurationError(
            f"items is a {kind}, not an iterable of items: give a list, a generator, an "
            "async iterator (a database cursor, a queue consumer) or any iterable"
            + ("; to process one text, wrap it: [text]"
               if isinstance(items, (str, bytes, bytearray)) else ""))


class Positions:
    """The identifiers of a stream's items: their positions."""

    __slots__ = ()

    def __getitem__(self, index: int) -> int:
        return index


def _identity(item: Any) -> Any:
    return item


class StreamRun(Run):
    """The run of one ``stream()`` (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        items: Union[Iterable[Any], AsyncIterable[Any]],
        call: Callable[[Any], Awaitable[Any]],
        parse: Optional[Callable[[Any, Any], Any]],
        deadline: Optional[Deadline],
        backend: Optional[Backend],
        key: Optional[Callable[[Any], Hashable]],
        ordered: bool,
        forget_failed_keys: bool = False,
    ) -> None:
        if key is None:
            mode = FailureMode.INDEPENDENT
        else:
            mode = FailureMode.STOP_ALL if settings.fifo_stop else FailureMode.SKIP_LANE
        super().__init__(
            settings, call=call, parse=parse, deadline=deadline, backend=backend, mode=mode,
            event_source="Iterable", view=_identity, records={}, identifiers=Positions(),
            status={}, durations={} if settings.timings else None)
        self.items = items
        self.key = key
        self.ordered = ordered
        self.forget_failed_keys = forget_failed_keys
        if hasattr(items, "__aiter__"):
            self.source: Any = items.__aiter__()
            self.lock: Any = self.backend.lock()
        else:
            self.source = iter(items)
            self.lock = None
        self.read_ahead = READ_AHEAD * self.concurrency
        self.held = 0  # items read and not yet taken back by the consumer
        self.position = 0  # the next item's position
        self.exhausted = False  # nothing more is read: the end, an error, a stop
        self.input_error: Optional[BaseException] = None
        self.busy: dict[Hashable, deque[int]] = {}  # key -> items waiting behind it
        self.failed_keys: set[Hashable] = set()
        self.out: deque[Outcome] = deque()  # outcomes ready, as they settle
        self.by_position: dict[int, Outcome] = {}  # outcomes ready (ordered)
        self.next_out = 0
        self.done = False  # every item read has been settled and handed over
        # a KeyboardInterrupt / SystemExit from a handler: raised in the consumer's task
        self.fatal: Optional[BaseException] = None
        self._space: Any = None  # event: the consumer took something back
        self._ready: Any = None  # event: an outcome is ready, or the run is done

    def running_identifiers(self) -> list[Any]:
        return [index for index, code in self.status.items() if code == RUNNING]

    def source_arn(self, record: Any) -> Optional[str]:
        return None

    # -- the driver ---------------------------------------------------------------------

    async def drive(self) -> None:
        """Run the workers until the input ends (or a stop), then settle what is left."""
        try:
            deadline = self.deadline
            if deadline is not None and deadline.passed_soft():
                self._deadline_stop()  # no time left: read nothing
            else:
                worker = self._fast_worker() if self.simple and self.key is None \
                    else self._worker
                async with self.running():
                    await run_workers(worker, self.concurrency, self.backend)
        except (KeyboardInterrupt, SystemExit) as exc:
            # The driver is a child task: raised here, asyncio would throw it out of the
            # loop past the consumer. The consumer raises it instead, from its own task.
            self.fatal = exc
        finally:
            self.finished = True
            self.exhausted = True
            self._settle_rest()
            self.done = True
            self._wake_consumer()

    def _fast_worker(self) -> Callable[[Crew], Coroutine[Any, Any, None]]:
        """The hottest path: independent items, no option that costs per item. Reading,
        the call and handing the outcome over are inlined: one coroutine per item (the
        handler's), a clock read only when there is a deadline."""
        status = self.status
        records = self.records
        out = self.out
        by_position = self.by_position
        ordered = self.ordered
        call = self.call
        flag = self.stop
        cancelled = self.cancelled_exc
        yield_now = self.yield_now
        read_ahead = self.read_ahead
        lock = self.lock
        source = self.source
        leak_check = self.backend.leak_check
        deadline = self.deadline
        clock = deadline.clock if deadline is not None else None
        soft = deadline.soft if deadline is not None else math.inf
        make = make_outcome
        succeeded = _NAMES[SUCCEEDED]

        async def worker(crew: Crew) -> None:
            leaked = leak_check()  # a cancel request user code left on this worker's task
            done = 0
            while True:
                if self.exhausted:
                    return
                if flag.is_set or (clock is not None and clock() >= soft):
                    self._past_soft()
                    self.exhausted = True
                    return
                if self.held >= read_ahead:
                    event = self._space
                    if event is None:
                        event = self._space = self.backend.event()
                    await event.wait()
                    continue
                self.held += 1  # its place, taken before the read awaits
                if lock is None:
                    try:
                        item = next(source)
                    except StopIteration:
                        self.exhausted = True
                        self.held -= 1
                        self._made_space()
                        return
                    except Exception as exc:
                        self._input_failed(exc)
                        self.held -= 1
                        self._made_space()
                        return
                else:
                    item = await self._next_item()
                    if item is _END:
                        self.held -= 1
                        self._made_space()
                        return
                    if flag.is_set:  # a stop came while the read awaited: not started
                        index = self.position
                        self.position = index + 1
                        records[index] = item
                        status[index] = PENDING
                        self._settle(index)
                        continue
                index = self.position
                self.position = index + 1
                records[index] = item
                status[index] = RUNNING
                crew.enter()
                try:
                    result = await call(item)
                except Exception as exc:
                    if leaked is not None and leaked():
                        await self._absorb_leak()
                    await self._failed(index, item, exc, 1)
                    self._settle(index)
                except cancelled as exc:
                    if self._is_real_cancel():
                        raise
                    await self._failed(index, item, self._own_cancel_error(index, exc), 1)
                    self._settle(index)
                else:
                    del status[index]
                    del records[index]
                    outcome = make((succeeded, item, index, None, 1, None, index, False,
                                    result, False))
                    if ordered:
                        by_position[index] = outcome
                        if index == self.next_out:
                            self._wake_consumer()
                    else:
                        out.append(outcome)
                        if self._ready is not None:
                            self._wake_consumer()
                    if leaked is not None and leaked():
                        await self._absorb_leak()
                crew.busy -= 1
                done += 1
                if not done % YIELD_EVERY:
                    await yield_now()  # items that never suspend must not starve the loop

        return worker

    async def _worker(self, crew: Crew) -> None:
        key = self.key
        busy = self.busy
        failed_keys = self.failed_keys
        simple = self.simple
        done = 0
        while True:
            index = await self._read()
            if index is None:
                return
            done += 1
            if not done % YIELD_EVERY:
                await self.yield_now()  # items that never suspend must not starve the loop
            if key is None:
                crew.enter()
                if simple:
                    await self._run_simple(index)
                else:
                    await self._run_full(index)
                self._settle(index)
                crew.busy -= 1
                continue
            group = self._key_of(index)
            if group is _NO_KEY:
                continue  # the key function raised: that item failed
            if group in failed_keys:
                self._skip_item(index, self._group_failed(group))
                continue
            queue = busy.get(group)
            if queue is not None:
                queue.append(index)  # the worker that runs its key runs it next
                continue
            queue = busy[group] = deque()
            crew.enter()
            try:
                await self._run_key(index, group, queue)
            finally:
                crew.busy -= 1

    async def _run_key(self, index: int, group: Hashable, queue: deque[int]) -> None:
        """Run ``index`` and then, one at a time, the items that queue up behind its key;
        after a failure the rest of the key is skipped (and later ones, unless the run
        forgets failed keys)."""
        try:
            while True:
                if self.stop.is_set or self._past_soft():
                    self._skip_item(index, self._stop_error())
                    for rest in queue:
                        self._skip_item(rest, self._stop_error())
                    queue.clear()
                    return
                ok = await (self._run_simple(index) if self.simple
                            else self._run_full(index))
                if self.status.get(index) == PENDING:  # not started: a stop came
                    continue  # (the loop's first check settles it)
                error = self.errors.get(index)
                self._settle(index)
                if not ok:
                    reason = self._group_failed(group, error)
                    if not self.forget_failed_keys:
                        self.failed_keys.add(group)
                    for rest in queue:
                        self._skip_item(rest, reason)
                    queue.clear()
                    return
                if not queue:
                    return
                index = queue.popleft()
        finally:
            del self.busy[group]

    # -- one item -------------------------------------------------------------------------

    async def _run_simple(self, index: int) -> bool:
        """An item with no option that costs per item: the handler, its failure rule."""
        status = self.status
        status[index] = RUNNING
        try:
            result = await self.call(self.records[index])
        except Exception as exc:
            leaked = self.backend.leak_check()
            if leaked is not None and leaked():
                await self._absorb_leak()
            return await self._failed(index, self.records[index], exc, 1)
        except self.cancelled_exc as exc:
            if self._is_real_cancel():
                raise
            return await self._failed(index, self.records[index],
                                      self._own_cancel_error(index, exc), 1)
        status[index] = SUCCEEDED
        if result is not None:
            self.results[index] = result
        leaked = self.backend.leak_check()
        if leaked is not None and leaked():
            await self._absorb_leak()
        return True

    def _key_of(self, index: int) -> Any:
        """The item's key; a key function that raises fails that item only."""
        assert self.key is not None
        try:
            return self.key(self.records[index])
        except Exception as exc:
            error = CallbackError(f"item {index}: the key function raised {describe(exc)}",
                                  identifier=index, callback="the key function")
            error.__cause__ = exc
            self.status[index] = FAILED
            self.errors[index] = error
            self.attempts[index] = 0
            self._settle(index)
            return _NO_KEY

    def _group_failed(self, group: Hashable,
                      cause: Optional[BaseException] = None) -> RecordSkippedError:
        return RecordSkippedError("not started: an earlier item of its key failed",
                                  reason="group_failed", cause=cause)

    def _stop_error(self) -> RecordSkippedError:
        return self.stop_reason or RecordSkippedError(
            "not started: the Lambda deadline was near", reason="deadline")

    def _skip_item(self, index: int, error: RecordSkippedError) -> None:
        self.status[index] = SKIPPED
        self.errors[index] = error
        hooks = self.hooks
        if hooks is not None:
            self._hook(index, "record_skipped", self.records[index], error.reason)
        self._settle(index)

    # -- reading ----------------------------------------------------------------------------

    async def _read(self) -> Optional[int]:
        """The position of the next item read (held until the consumer takes its
        outcome); ``None`` once nothing more is to be read (the end, the input's error,
        a stop, the deadline). Waits while the read-ahead is full."""
        while True:
            if self.exhausted:
                return None
            if self.stop.is_set or self._past_soft():
                self.exhausted = True
                return None
            if self.held < self.read_ahead:
                break
            event = self._space
            if event is None:
                event = self._space = self.backend.event()
            await event.wait()
        self.held += 1  # its place, taken before the read awaits: the bound is exact
        try:
            item = await self._next_item()
        except BaseException:
            self.held -= 1
            raise
        if item is _END:
            self.held -= 1
            self._made_space()
            return None
        index = self.position
        self.position = index + 1
        self.records[index] = item
        self.status[index] = PENDING
        return index

    async def _next_item(self) -> Any:
        """The input's next item; ``_END`` at its end, or after its own error (kept)."""
        lock = self.lock
        if lock is None:
            try:
                return next(self.source)
            except StopIteration:
                self.exhausted = True
            except Exception as exc:  # the input's own error: raised to the consumer
                self._input_failed(exc)
            return _END
        async with lock:
            if self.exhausted:
                return _END
            try:
                return await self.source.__anext__()
            except StopAsyncIteration:
                self.exhausted = True
            except Exception as exc:
                self._input_failed(exc)
            return _END

    def _input_failed(self, exc: BaseException) -> None:
        if self.input_error is None:
            self.input_error = exc
        self.exhausted = True

    # -- handing outcomes back -------------------------------------------------------------

    def _settle(self, index: int) -> None:
        """The item's outcome, handed to the consumer; nothing of it stays in the run."""
        code = self.status.pop(index)
        if code == PENDING:  # never started: a stop or the deadline
            code = SKIPPED
            self.errors[index] = self._stop_error()
        elif code == RUNNING:  # cancelled at the hard deadline
            from .._errors import DeadlineExceededError

            code = FAILED
            self.errors[index] = DeadlineExceededError(
                f"item {index}: cancelled at the Lambda deadline", identifier=index)
        attempts = self.attempts.pop(index, 1)
        durations = self.durations
        outcome = make_outcome((
            _NAMES[code], self.records.pop(index), index, self.errors.pop(index, None),
            0 if code in (SKIPPED, REPLAYED) else attempts,
            None if durations is None else durations.pop(index, 0.0), index,
            code == SUNK, self.results.pop(index, None), code == REPLAYED))
        if self.ordered:
            self.by_position[index] = outcome
            if index != self.next_out:
                return  # the consumer waits for an earlier one
        else:
            self.out.append(outcome)
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        event = self._ready
        if event is not None:
            self._ready = None
            event.set()

    def _settle_rest(self) -> None:
        """After the workers: every item read and not settled gets its outcome (items
        waiting behind a key, items never started, items cancelled at the deadline)."""
        for queue in self.busy.values():
            for index in queue:
                self._skip_item(index, self._stop_error())
            queue.clear()
        for index in list(self.status):
            self._settle(index)

    def take(self) -> Optional[Outcome]:
        """The next outcome for the consumer (``None``: none is ready yet)."""
        if self.ordered:
            outcome = self.by_position.pop(self.next_out, None)
            if outcome is None:
                return None
            self.next_out += 1
        elif self.out:
            outcome = self.out.popleft()
        else:
            return None
        self.held -= 1
        self._made_space()
        return outcome

    def _made_space(self) -> None:
        event = self._space
        if event is not None:
            self._space = None
            event.set()

    async def next_outcome(self) -> Outcome:
        """Wait for the next outcome; ``StopAsyncIteration`` (or the input's own error)
        once every item has been handed back."""
        while True:
            outcome = self.take()
            if outcome is not None:
                return outcome
            if self.done:
                if self.fatal is not None:
                    raise self.fatal  # KeyboardInterrupt / SystemExit from a handler
                error, self.input_error = self.input_error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            event = self._ready
            if event is None:
                event = self._ready = self.backend.event()
            await event.wait()

    def halt(self) -> None:
        """Read nothing more and start nothing more; what runs goes on (``Stream.stop``).
        Items read and not started (waiting behind their key, at a gate or a rate limit,
        or arriving from a read under way) come back skipped, reason ``"stopped"``."""
        self.exhausted = True
        self._stop_all(RecordSkippedError("not started: the stream was stopped",
                                          reason="stopped"))
        self._made_space()  # a worker waiting for read-ahead room finds the stop

    def close(self) -> None:
        """The consumer left: read nothing more, start nothing more, cancel what runs."""
        self.exhausted = True
        self.stop.is_set = True
        if self.stop_reason is None:
            self.stop_reason = RecordSkippedError(
                "not started: the stream was closed before it", reason="closed")
        scope = self.scope
        if scope is not None:
            scope.cancel()


_NO_KEY = object()
_END = object()


class Stream:
    """``async with processor.stream(items, handle) as outcomes: async for outcome in
    outcomes: ...``: each item's ``Outcome`` as it settles (``ordered=True``: in input
    order). Leaving the block early stops reading, cancels the handlers still running,
    closes an async generator input and leaves no task."""

    def __init__(self, start: Callable[[], Awaitable[StreamRun]]) -> None:
        self._start = start
        self._run: Optional[StreamRun] = None
        self._group: Any = None
        self._group_cm: Any = None

    async def __aenter__(self) -> Stream:
        if self._run is not None:
            from .._errors import ConfigurationError

            raise ConfigurationError("a stream runs once: call processor.stream() again")
        run = self._run = await self._start()
        self._group_cm = run.backend.spawn()
        self._group = await self._group_cm.__aenter__()
        self._group.start_soon(run.drive)
        return self

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Outcome:
        run = self._run
        if run is None:
            raise RuntimeError("iterate inside 'async with processor.stream(...) as outcomes'")
        out = run.out
        if out:  # the common case, inlined: an outcome is ready
            run.held -= 1
            if run._space is not None:
                run._made_space()
            return out.popleft()
        return await run.next_outcome()

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> Optional[bool]:
        run = self._run
        assert run is not None
        if not run.done:
            run.close()
            if run.scope is None:  # the driver has not started its workers yet
                _cancel_group(self._group)
        try:
            await self._group_cm.__aexit__(None, None, None)
        except BaseException as error:
            from .pool import fatal_in

            fatal = fatal_in(error)
            if fatal is not None and fatal is not error:
                raise fatal from None  # KeyboardInterrupt / SystemExit, unwrapped
            raise
        finally:
            await _close_input(run.source)
        return None

    def stop(self) -> None:
        """Read nothing more and start nothing more; the handlers already running go on.
        The items read and not started come back skipped (``RecordSkippedError``, reason
        ``"stopped"``), and the iteration ends once the running ones have settled. (To
        cancel those too, leave the ``async with`` block.)"""
        run = self._run
        if run is None:
            raise RuntimeError("stop a stream inside 'async with processor.stream(...)'")
        run.halt()

    @property
    def outcomes_pending(self) -> int:
        """How many items are read and not yet handed back."""
        return 0 if self._run is None else self._run.held


def _cancel_group(group: Any) -> None:
    """Cancel every task of a backend task group (native: ``_NativeGroup``; anyio)."""
    scope = getattr(group, "cancel_scope", None)
    if scope is not None:
        scope.cancel()
        return
    for task in getattr(group, "tasks", ()):
        task.cancel()


async def _close_input(items: Any) -> None:
    """Close an async generator input (its ``finally`` runs now, not at garbage
    collection); a sync generator likewise."""
    import inspect

    if inspect.isasyncgen(items):
        await items.aclose()
    elif inspect.isgenerator(items):
        items.close()


# Loaded lazily (``asyncbatch.__getattr__``) or directly by the engine: either way the
# public names report ``asyncbatch`` from the moment this module is loaded.
from .._public import publish as _publish  # noqa: E402

_publish(globals(), ["Stream"], home="asyncbatch")
del _publish
