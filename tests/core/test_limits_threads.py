"""A limit object shared by processors holds its ``max`` across all of them, in any
thread (docs/contract.md, "Order"). Real threads, each running its own event loop
(asyncio or trio); handlers held by an event the test controls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

import asyncbatch
from asyncbatch import AIMDLimit
from asyncbatch._core.limits import acquire_gate, release_gate
from asyncbatch.testing import sqs_event

WAIT = 30  # seconds before a test gives up on an event that should come


def waiting(limit: Any) -> int:
    """Calls waiting at ``limit``'s gate, in every thread."""
    from asyncbatch._core import limits as _limits

    shared = _limits._shared.get(id(limit))
    return 0 if shared is None else len(shared.waiters)


class Meter:
    """Handlers in flight across every thread, and the most seen at once."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.inflight = 0
        self.peak = 0
        self.done = 0
        self.release = threading.Event()

    def wait_for(self, predicate: Any, timeout: float = WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def poll_for(self, predicate: Any, timeout: float = WAIT) -> bool:
        """Like ``wait_for``, for a state nothing notifies about (the gate's queue):
        looked at again every millisecond, until it holds or ``timeout``."""
        import time

        limit = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                if time.monotonic() >= limit:
                    return False
                self.changed.wait(0.001)
        return True

    async def handle(self, record: Any) -> None:
        with self.changed:
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
            self.changed.notify_all()
        await anyio.to_thread.run_sync(self.release.wait)
        with self.changed:
            self.inflight -= 1
            self.done += 1
            self.changed.notify_all()


def test_one_limit_object_bounds_handlers_across_threads_and_loops() -> None:
    k = 3
    limit = AIMDLimit(initial=k, max=k)
    meter = Meter()
    responses: dict[str, Any] = {}
    errors: list[BaseException] = []

    def processor() -> asyncbatch.AsyncBatchProcessor:
        return asyncbatch.AsyncBatchProcessor(concurrency=limit, log_summary=False)

    def on_asyncio(name: str) -> None:
        try:
            responses[name] = asyncbatch.process_partial_response(
                sqs_event(*"abc", start=10 * len(name)), meter.handle, processor())
        except BaseException as exc:
            errors.append(exc)

    def on_trio(name: str) -> None:
        async def main() -> Any:
            return await asyncbatch.async_process_partial_response(
                sqs_event(*"abc", start=10 * len(name)), meter.handle, processor())

        try:
            responses[name] = anyio.run(main, backend="trio")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=on_asyncio, args=("a",)),
               threading.Thread(target=on_asyncio, args=("bb",)),
               threading.Thread(target=on_trio, args=("ccc",))]
    for thread in threads:
        thread.start()
    try:
        # every record of every thread reaches the gate (each processor has k workers
        # for its k records); k of them get in, the others wait there, in the limit
        # object's one queue (had a thread a bound of its own, its handlers would be in)
        assert meter.wait_for(lambda: meter.inflight >= k)
        assert meter.poll_for(lambda: waiting(limit) == 2 * k)
        assert not meter.wait_for(lambda: meter.inflight > k, timeout=0.5)
    finally:
        meter.release.set()
        for thread in threads:
            thread.join(WAIT)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert meter.peak == k
    assert meter.done == 3 * k
    assert responses == {name: {"batchItemFailures": []} for name in ("a", "bb", "ccc")}


def _loop_in_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """Let the tasks already started on ``loop`` run to their first wait: a no-op task
    scheduled after them finishes after their first step (asyncio runs in FIFO order)."""
    async def nothing() -> None:
        pass

    asyncio.run_coroutine_threadsafe(nothing(), loop).result(WAIT)


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT)
    loop.close()


def test_a_waiter_of_another_thread_is_woken_and_a_cancelled_one_hands_its_slot_on() -> None:
    limit = AIMDLimit(initial=1, max=1)
    loops = [_loop_in_thread() for _ in range(3)]
    gates: list[Any] = []
    try:
        for loop, _ in loops:
            async def make() -> Any:
                return acquire_gate(limit, asyncio.Event)

            gates.append(asyncio.run_coroutine_threadsafe(make(), loop).result(WAIT))
        (first, _), (second, _), (third, _) = gates
        asyncio.run_coroutine_threadsafe(first.acquire(), loops[0][0]).result(WAIT)

        async def start_waiting() -> Any:
            return asyncio.ensure_future(second.acquire())

        waiting = asyncio.run_coroutine_threadsafe(start_waiting(), loops[1][0]).result(WAIT)
        _settle(loops[1][0])
        after = asyncio.run_coroutine_threadsafe(third.acquire(), loops[2][0])
        _settle(loops[2][0])
        assert not waiting.done() and not after.done()
        # the slot goes to the oldest waiter (on loop 1), which is cancelled before it
        # runs again: it hands the slot on to the next waiter, on loop 2
        loops[1][0].call_soon_threadsafe(
            lambda: (first.release(0.01, False), waiting.cancel()))
        after.result(WAIT)
        _settle(loops[1][0])
        assert waiting.cancelled()
        assert first.inflight == 1
        third.release(0.01, False)
        assert first.inflight == 0
    finally:
        for _gate, key in gates:
            release_gate(key)
        for loop, thread in loops:
            _stop(loop, thread)


def test_a_loop_that_ends_while_its_waiter_waits_does_not_wedge_the_others() -> None:
    limit = AIMDLimit(initial=1, max=1)
    holder, holder_thread = _loop_in_thread()
    doomed, doomed_thread = _loop_in_thread()
    other, other_thread = _loop_in_thread()
    try:
        async def make() -> Any:
            return acquire_gate(limit, asyncio.Event)

        (held, key1) = asyncio.run_coroutine_threadsafe(make(), holder).result(WAIT)
        (lost, key2) = asyncio.run_coroutine_threadsafe(make(), doomed).result(WAIT)
        (kept, key3) = asyncio.run_coroutine_threadsafe(make(), other).result(WAIT)
        asyncio.run_coroutine_threadsafe(held.acquire(), holder).result(WAIT)
        gone = asyncio.run_coroutine_threadsafe(lost.acquire(), doomed)
        _settle(doomed)
        waiting = asyncio.run_coroutine_threadsafe(kept.acquire(), other)
        _settle(other)
        # the doomed loop stops and closes while its waiter still waits (not cancelled)
        doomed.call_soon_threadsafe(doomed.stop)
        doomed_thread.join(WAIT)
        doomed.close()
        assert not gone.done()
        held.release(0.01, False)  # the slot cannot reach the dead loop: it goes on
        waiting.result(WAIT)
        assert held.inflight == 1
        kept.release(0.01, False)
        assert held.inflight == 0
        for key in (key1, key2, key3):
            release_gate(key)
    finally:
        _stop(holder, holder_thread)
        _stop(other, other_thread)


@pytest.mark.anyio
async def test_a_single_thread_keeps_the_fast_path() -> None:
    """One thread, no contention: acquire and release never wait, and nothing is left
    registered once the call is done."""
    from asyncbatch._core import limits as _limits

    limit = AIMDLimit(initial=4, max=4)
    gate, key = acquire_gate(limit, anyio.Event)
    for _ in range(4):
        await gate.acquire()
    assert gate.inflight == 4
    for _ in range(4):
        gate.release(0.01, False)
    release_gate(key)
    assert id(limit) not in _limits._shared
