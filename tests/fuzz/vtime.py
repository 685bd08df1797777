"""Virtual time on every backend, and the one switch that picks asyncbatch's backend.

- trio: ``trio.testing.MockClock``. Without threads, ``autojump_threshold=0`` (the clock
  jumps to the next deadline as soon as every task is blocked). With sync handlers, the
  clock must not jump while a worker thread is computing (it would time the thread out
  at random), so a driver task jumps it instead, only when no thread job is in flight.
- asyncio (native and anyio-on-asyncio): ``VirtualLoop``, a selector event loop whose
  ``time()`` is virtual: when the loop would block with a timer pending and no thread job
  in flight, the clock jumps to that timer instead of sleeping.

Thread jobs are seen through ``anyio.to_thread.run_sync`` (how asyncbatch runs a sync
handler), wrapped once by ``install_thread_tracking``; outside a fuzz run the wrapper
only passes through. A job that *parks* (a sync handler told to hang) stops counting as
in flight, so virtual time goes on and a timeout or the deadline can abandon it.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Optional

import anyio.to_thread

__all__ = ["BACKENDS", "Deadlock", "ThreadJob", "Tracker", "VirtualLoop", "current_job",
           "install_thread_tracking", "processor_backend", "run_on", "trio_driver"]

#: the backends a scenario runs on
BACKENDS = ("trio", "asyncio", "anyio")


def processor_backend(backend: str) -> Optional[str]:
    """What ``AsyncBatchProcessor(backend=)`` gets for a scenario's backend: ``"anyio"``
    runs anyio on asyncio; on ``"asyncio"`` and ``"trio"`` the running loop chooses
    (native asyncio, anyio on trio)."""
    return "anyio" if backend == "anyio" else None


class Deadlock(RuntimeError):
    """Nothing can run, no timer is pending and no thread will wake the loop."""


# -- thread jobs -------------------------------------------------------------------------

_REAL_RUN_SYNC = anyio.to_thread.run_sync
_TRACKER: ContextVar[Optional[Tracker]] = ContextVar("fuzz_tracker", default=None)
_LOCAL = threading.local()

#: a parked thread is released at the end of its scenario; this only bounds a bug's cost
PARK_LIMIT = 30.0


class ThreadJob:
    """One ``run_sync`` call: dispatched by the loop, run by a thread."""

    __slots__ = ("data", "done", "limiter", "lock", "loop_done", "parked", "release",
                 "started", "tracker", "void")

    def __init__(self, tracker: Tracker, data: Any, limiter: Any) -> None:
        self.tracker = tracker
        self.data = data  # what the dispatch callback returned (the harness's attempt)
        self.limiter = limiter
        self.parked = False
        self.loop_done = False
        self.void = False  # abandoned before a thread took it: it never runs
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()

    def park(self) -> None:
        """Called by the thread: block until the scenario ends, not counting as busy."""
        self.parked = True
        self.tracker.nudge()
        self.release.wait(PARK_LIMIT)


def current_job() -> Optional[ThreadJob]:
    """The job the calling worker thread runs (``None`` outside one)."""
    return getattr(_LOCAL, "job", None)


class Tracker:
    """The thread jobs of one scenario. ``nudge`` wakes the loop from a thread."""

    def __init__(self, on_dispatch: Callable[[tuple[Any, ...]], Any],
                 on_return: Callable[[Any, str, Optional[BaseException]], None]) -> None:
        self.jobs: list[ThreadJob] = []
        self.live: list[ThreadJob] = []
        self.on_dispatch = on_dispatch
        self.on_return = on_return
        self.nudge: Callable[[], None] = lambda: None
        self.changed: Optional[Any] = None  # trio: an Event the driver waits on

    def busy(self) -> Optional[str]:
        """Whether a thread is computing (``"thread"``), or a job is on its way to one
        (``"pending"``), so that virtual time must wait. Called on the loop's thread. A
        parked job does not count; nor does one waiting for a token of its capacity
        limiter (a thread abandoned by a timeout keeps its token on trio): it can only
        start when virtual time lets something else end."""
        self.live = [job for job in self.live if not (job.done.is_set() and job.loop_done)]
        pending: dict[int, list[Any]] = {}
        for job in self.live:
            done = job.done.is_set()
            if job.parked and not done:
                continue
            if job.loop_done:  # abandoned: busy while its thread still computes
                if job.started.is_set() and not done:
                    return "thread"
                continue
            if job.started.is_set() or done:  # computing, or its result on its way
                return "thread"
            entry = pending.setdefault(id(job.limiter), [job.limiter, 0])
            entry[1] += 1
        for limiter, count in pending.values():
            waiting = limiter.statistics().tasks_waiting if limiter is not None else 0
            if count > waiting:
                return "pending"
        return None

    async def run(self, func: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        job = ThreadJob(self, self.on_dispatch(args), kwargs.get("limiter"))
        self.jobs.append(job)
        self.live.append(job)

        def body(*a: Any) -> Any:
            with job.lock:
                if job.void:  # the loop gave up on it before this thread took it
                    job.done.set()
                    return None
                job.started.set()
            _LOCAL.job = job
            try:
                return func(*a)
            finally:
                _LOCAL.job = None
                job.done.set()
                self.nudge()

        outcome, error = "returned", None
        try:
            return await _REAL_RUN_SYNC(body, *args, **kwargs)
        except BaseException as exc:
            outcome, error = "raised", exc
            raise
        finally:
            with job.lock:
                job.loop_done = True
                if not job.started.is_set():
                    job.void = True
            if self.changed is not None:
                self.changed.set()
            self.on_return(job.data, outcome, error)

    def release_all(self) -> None:
        """Let every parked thread finish, and wait (real time) until each has (a job
        the loop gave up on before a thread took it never runs)."""
        for job in self.jobs:
            job.release.set()
        for job in self.jobs:
            if job.started.is_set():
                job.done.wait(PARK_LIMIT)


async def _tracked_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    tracker = _TRACKER.get()
    if tracker is None:
        return await _REAL_RUN_SYNC(func, *args, **kwargs)
    return await tracker.run(func, args, kwargs)


def install_thread_tracking() -> None:
    """Wrap ``anyio.to_thread.run_sync`` (idempotent); it passes through outside a run."""
    if anyio.to_thread.run_sync is not _tracked_run_sync:
        anyio.to_thread.run_sync = _tracked_run_sync  # type: ignore[assignment]


# -- asyncio ---------------------------------------------------------------------------------


class _VirtualSelector:
    """The loop's selector: blocks for real only while a thread job is in flight."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def select(self, timeout: Optional[float] = None) -> list[Any]:
        if timeout is not None and timeout <= 0:
            return self._real.select(0)
        events = self._real.select(0)
        if events:
            return events
        tracker = self._loop.tracker
        if tracker is not None and tracker.busy():
            events = self._real.select(PARK_LIMIT)  # a thread wakes us when it ends or parks
            if not events and tracker.busy():
                raise Deadlock(f"a thread job ran longer than {PARK_LIMIT}s of real time")
            return events
        if timeout is None:
            raise Deadlock("the loop would wait forever: no timer, no thread job")
        self._loop.vtime += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time (see the module docstring)."""

    def __init__(self) -> None:
        self.vtime = 0.0
        self.tracker: Optional[Tracker] = None
        super().__init__(_VirtualSelector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.vtime


# -- trio ------------------------------------------------------------------------------------


async def trio_driver(clock: Any, tracker: Tracker) -> None:
    """Jump ``clock`` (a ``MockClock`` without autojump) to the next deadline whenever
    every task is blocked and no thread job is in flight."""
    import trio
    import trio.testing

    token = trio.lowlevel.current_trio_token()

    def nudge() -> None:
        try:
            token.run_sync_soon(_set_changed, tracker)
        except trio.RunFinishedError:
            pass

    tracker.nudge = nudge
    while True:
        tracker.changed = trio.Event()
        await trio.testing.wait_all_tasks_blocked()
        busy = tracker.busy()
        if busy == "thread":  # the thread nudges us when it parks or ends
            await tracker.changed.wait()
            continue
        if busy == "pending":  # a task is on its way to a thread or a limiter: look again
            await trio.lowlevel.checkpoint()
            continue
        wait = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if wait == math.inf:
            raise Deadlock("every task is blocked, no deadline is pending, no thread runs")
        if wait > 0:
            clock.jump(wait)
        await trio.lowlevel.checkpoint()


def _set_changed(tracker: Tracker) -> None:
    if tracker.changed is not None:
        tracker.changed.set()


# -- running a coroutine function on a backend -------------------------------------------------


def run_on(backend: str, main: Callable[[], Any], *, seed: int,
           tracker: Optional[Tracker] = None) -> Any:
    """Run ``main()`` on ``backend`` in virtual time; with ``tracker``, thread jobs are
    tracked (and virtual time waits for them). Trio's scheduler is seeded by ``seed``."""
    return _run(backend, main, seed, tracker)


def _run(backend: str, main: Callable[[], Any], seed: int,
         tracker: Optional[Tracker]) -> Any:
    token = _TRACKER.set(tracker)
    try:
        if backend == "trio":
            return _run_trio(main, seed, tracker)
        def factory() -> VirtualLoop:
            loop = VirtualLoop()
            loop.tracker = tracker
            return loop

        if tracker is not None:
            async def wrapped() -> Any:
                loop = asyncio.get_running_loop()
                tracker.nudge = lambda: _threadsafe_nudge(loop)
                return await main()

            return anyio.run(wrapped, backend="asyncio",
                             backend_options={"loop_factory": factory})
        return anyio.run(main, backend="asyncio", backend_options={"loop_factory": factory})
    finally:
        _TRACKER.reset(token)


def _threadsafe_nudge(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.call_soon_threadsafe(_noop)
    except RuntimeError:  # the loop closed
        pass


def _noop() -> None:
    pass


def _run_trio(main: Callable[[], Any], seed: int, tracker: Optional[Tracker]) -> Any:
    import trio
    from trio.testing import MockClock

    with _deterministic_trio(seed):
        if tracker is None:
            return trio.run(main, clock=MockClock(autojump_threshold=0))
        return _run_driven(main, tracker)


def _run_driven(main: Callable[[], Any], tracker: Tracker) -> Any:
    import trio
    from trio.testing import MockClock

    clock = MockClock()

    async def driven() -> Any:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_driver, clock, tracker)
            try:
                return await main()
            finally:
                nursery.cancel_scope.cancel()

    return trio.run(driven, clock=clock)


@contextmanager
def _deterministic_trio(seed: int) -> Iterator[None]:
    """Trio shuffles the order of runnable tasks with a module-level RNG (to surface
    ordering assumptions). Seed it, and turn on the deterministic mode trio keeps for
    hypothesis (each batch sorted by task creation before the shuffle, so that tasks woken
    together, e.g. by equal deadlines, do not run in an order set by object ids): a
    scenario then replays exactly. The mode is put back after the run."""
    try:
        import trio._core._run as run_module
    except ImportError:  # pragma: no cover - trio moved it: runs stay valid, less repeatable
        yield
        return
    rng = getattr(run_module, "_r", None)
    if rng is not None:
        rng.seed(seed)
    saved = getattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING", None)
    if saved is not None:
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = True
    try:
        yield
    finally:
        if saved is not None:
            run_module._ALLOW_DETERMINISTIC_SCHEDULING = saved
