"""Any iterable: ``stream()`` and ``run()``, rule by rule of the contract's "Any iterable"
section, on asyncio and trio. Latencies are events or trio's virtual clock, never real
sleeps; the read-ahead bound is observed from inside the input."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from trio.testing import MockClock

import asyncbatch
from asyncbatch import AsyncBatchProcessor, ConfigurationError, Retry, TransientError
from asyncbatch.testing import LambdaContext

pytestmark = pytest.mark.anyio


def virtual(main: Any) -> Any:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


class Counted:
    """An endless (or finite) async input that counts what was read, and checks the
    read-ahead bound against what the consumer has taken back at every read."""

    def __init__(self, limit: int = -1) -> None:
        self.read = 0
        self.taken = 0
        self.most_ahead = 0
        self.closed = False
        self.limit = limit

    async def items(self) -> AsyncIterator[int]:
        try:
            while self.limit < 0 or self.read < self.limit:
                await anyio.lowlevel.checkpoint()
                self.read += 1
                self.most_ahead = max(self.most_ahead, self.read - self.taken)
                yield self.read - 1
        finally:
            self.closed = True


# -- what goes in, what comes out ------------------------------------------------------------


async def test_each_item_reaches_the_handler_as_given_and_comes_back_as_its_outcome() -> None:
    items = [{"id": 1}, "text", b"bytes", 42, None, ("a", "tuple")]
    seen: list[Any] = []

    async def handle(item: Any) -> Any:
        seen.append(item)
        return item

    outcomes = []
    async with AsyncBatchProcessor(concurrency=3).stream(items, handle) as stream:
        async for outcome in stream:
            outcomes.append(outcome)
    assert sorted(map(repr, seen)) == sorted(map(repr, items))
    assert sorted(o.index for o in outcomes) == list(range(len(items)))
    for outcome in outcomes:
        assert isinstance(outcome, asyncbatch.Outcome)
        assert outcome.record is items[outcome.index]
        assert outcome.identifier == outcome.index
        assert outcome.status == "succeeded" and outcome.attempts == 1
        assert outcome.result is items[outcome.index]


async def test_a_failure_is_an_outcome_with_its_exception() -> None:
    async def handle(item: int) -> None:
        if item == 2:
            raise ValueError("two")

    report = await AsyncBatchProcessor().run(range(5), handle)
    assert [o.index for o in report.failed] == [2]
    assert str(report.failed[0].exception) == "two"
    assert [o.index for o in report.succeeded] == [0, 1, 3, 4]


@pytest.mark.parametrize("kind", ["list", "generator", "async generator", "async iterable",
                                  "range"])
async def test_any_iterable_or_async_iterable(kind: str) -> None:
    def gen() -> Iterator[int]:
        yield from range(20)

    async def agen() -> AsyncIterator[int]:
        for i in range(20):
            yield i

    class Cursor:  # an object whose __aiter__ is an async generator
        async def __aiter__(self) -> AsyncIterator[int]:
            for i in range(20):
                yield i

    items: Any = {"list": list(range(20)), "generator": gen(), "async generator": agen(),
                  "async iterable": Cursor(), "range": range(20)}[kind]

    async def double(item: int) -> int:
        return item * 2

    report = await AsyncBatchProcessor(concurrency=4).run(items, double)
    assert report.results() == [i * 2 for i in range(20)]


async def test_with_a_model_the_handler_gets_the_validated_item() -> None:
    from pydantic import BaseModel

    class Order(BaseModel):
        id: int
        qty: int

    got: list[Order] = []

    async def handle(order: Order) -> None:
        got.append(order)

    items = [{"id": 1, "qty": 2}, '{"id": 2, "qty": 3}', {"id": "x", "qty": 1}]
    report = await AsyncBatchProcessor(model=Order).run(items, handle)
    assert sorted(o.id for o in got) == [1, 2]
    (failed,) = report.failed
    assert failed.index == 2 and isinstance(failed.exception, asyncbatch.RecordValidationError)
    assert failed.exception.fields == ("id",)
    assert failed.record == {"id": "x", "qty": 1}  # the item, as given


async def test_with_a_model_a_record_view_item_is_validated_as_its_source_does() -> None:
    """An item that is a record view (an SQS message a worker received) is validated as
    the event source validates it: the SQS body, as JSON."""
    from pydantic import BaseModel

    from asyncbatch.testing import sqs_event

    class Order(BaseModel):
        id: int

    got: list[Order] = []

    async def handle(order: Order) -> None:
        got.append(order)

    items = [asyncbatch.SQSRecord(raw) for raw in sqs_event('{"id": 7}', '{"id": "x"}')["Records"]]
    report = await AsyncBatchProcessor(model=Order).run(items, handle)
    assert got == [Order(id=7)]
    (failed,) = report.failed
    assert isinstance(failed.exception, asyncbatch.RecordValidationError)
    assert failed.record is items[1]


# -- bounded read-ahead ---------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4, 32])
@pytest.mark.parametrize("ordered", [False, True])
async def test_an_endless_input_is_read_at_most_two_concurrency_ahead(
        concurrency: int, ordered: bool) -> None:
    source = Counted()

    async def handle(item: int) -> int:
        await anyio.lowlevel.checkpoint()
        return item

    processor = AsyncBatchProcessor(concurrency=concurrency)
    async with processor.stream(source.items(), handle, ordered=ordered) as stream:
        async for _ in stream:
            source.taken += 1
            if source.taken == 2_000:
                break
    assert source.most_ahead <= 2 * concurrency
    assert source.closed  # the generator's finally ran on leaving


async def test_a_slow_consumer_pauses_reading() -> None:
    source = Counted()
    release = anyio.Event()

    async def handle(item: int) -> None:
        pass

    async with AsyncBatchProcessor(concurrency=3).stream(source.items(), handle) as stream:
        first = await stream.__anext__()
        source.taken += 1
        for _ in range(50):  # give the workers every chance to read on
            await anyio.lowlevel.checkpoint()
        assert source.read - source.taken <= 2 * 3
        release.set()
    assert first.index == 0


async def test_in_order_a_slow_head_pauses_reading_instead_of_buffering() -> None:
    source = Counted()
    head = anyio.Event()

    async def handle(item: int) -> int:
        if item == 0:
            await head.wait()
        return item

    async with AsyncBatchProcessor(concurrency=4).stream(source.items(), handle,
                                                         ordered=True) as stream:
        for _ in range(100):
            await anyio.lowlevel.checkpoint()
        assert source.read <= 2 * 4  # held back by the head, not buffered
        head.set()
        seen = []
        async for outcome in stream:
            seen.append(outcome.index)
            source.taken += 1
            if len(seen) == 50:
                break
    assert seen == list(range(50))


def test_a_million_items_of_an_endless_input_keep_nothing_behind() -> None:
    """Nothing of an item stays in the run once its outcome is taken: the run's own
    containers stay at most as large as the read-ahead all along."""
    largest = 0

    async def handle(item: int) -> None:
        pass

    async def endless() -> AsyncIterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    async def main() -> None:
        nonlocal largest
        flow = AsyncBatchProcessor(concurrency=8).stream(endless(), handle)
        async with flow as stream:
            run = flow._run
            assert run is not None
            async for outcome in stream:
                if outcome.index % 1000 == 0:
                    largest = max(largest, len(run.records), len(run.status), len(run.out),
                                  len(run.errors), len(run.results))
                if outcome.index == 200_000:
                    break

    virtual(main)
    assert largest <= 16


# -- keys ------------------------------------------------------------------------------------


async def test_items_of_one_key_run_one_at_a_time_in_input_order_keys_concurrently() -> None:
    items = [(k, n) for n in range(6) for k in "abc"]
    running: dict[str, int] = {}
    order: dict[str, list[int]] = {}
    peak = 0
    active = 0

    async def handle(item: tuple[str, int]) -> None:
        nonlocal peak, active
        key, n = item
        running[key] = running.get(key, 0) + 1
        assert running[key] == 1, f"key {key} ran twice at once"
        active += 1
        peak = max(peak, active)
        order.setdefault(key, []).append(n)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        active -= 1
        running[key] -= 1

    report = await AsyncBatchProcessor(concurrency=8).run(items, handle, key=lambda i: i[0])
    assert len(report.succeeded) == 18
    assert order == {k: list(range(6)) for k in "abc"}
    assert peak == 3  # the keys ran side by side


async def test_after_an_item_fails_the_later_items_of_its_key_are_skipped() -> None:
    items = ["a0", "b0", "a1", "b1", "a2", "b2", "a3"]

    async def handle(item: str) -> None:
        await anyio.lowlevel.checkpoint()
        if item == "a1":
            raise ValueError("a1 fails")

    report = await AsyncBatchProcessor(concurrency=4).run(items, handle, key=lambda i: i[0])
    assert [o.record for o in report.failed] == ["a1"]
    assert [o.record for o in report.skipped] == ["a2", "a3"]
    assert {o.exception.reason for o in report.skipped} == {"group_failed"}  # type: ignore[union-attr]
    assert [o.record for o in report.succeeded] == ["a0", "b0", "b1", "b2"]


async def test_resume_failed_keys_skips_only_what_waits_behind_the_failure() -> None:
    """For an input that delivers a failed item again (an SQS FIFO queue): the items
    already waiting behind the failure are skipped, the key's later items run."""
    ran: list[str] = []

    def source() -> tuple[Any, Any]:
        read = anyio.Event()
        failed = anyio.Event()

        async def items() -> AsyncIterator[str]:
            for item in ("a0", "a1", "a2"):  # a1, a2 wait behind a0
                yield item
            read.set()
            await failed.wait()  # the queue delivers a0 again, then a1
            for item in ("a0", "a1"):
                yield item

        async def handle(item: str) -> None:
            ran.append(item)
            if len(ran) == 1:
                await read.wait()
                failed.set()
                raise ValueError("a0 fails the first time")

        return items(), handle

    items, handle = source()
    report = await AsyncBatchProcessor(concurrency=2).run(items, handle, key=lambda i: i[0])
    # by default a key that failed is skipped for the rest of the run
    assert ran == ["a0"] and [o.record for o in report.skipped] == ["a1", "a2", "a0", "a1"]

    ran.clear()
    items, handle = source()
    flow = AsyncBatchProcessor(concurrency=2).stream(items, handle, key=lambda i: i[0],
                                                     resume_failed_keys=True)
    outcomes = []
    async with flow as stream:
        async for outcome in stream:
            outcomes.append((outcome.index, outcome.record, outcome.status))
    assert ran == ["a0", "a0", "a1"]
    assert sorted(outcomes) == [(0, "a0", "failed"), (1, "a1", "skipped"),
                                (2, "a2", "skipped"), (3, "a0", "succeeded"),
                                (4, "a1", "succeeded")]


async def test_a_key_function_that_raises_fails_that_item_only() -> None:
    def key(item: Any) -> Any:
        return item["k"]

    async def handle(item: Any) -> None:
        pass

    report = await AsyncBatchProcessor().run([{"k": 1}, {"nokey": 1}, {"k": 1}], handle, key=key)
    (failed,) = report.failed
    assert failed.index == 1 and isinstance(failed.exception, asyncbatch.CallbackError)
    assert isinstance(failed.exception.__cause__, KeyError)
    assert len(report.succeeded) == 2


def test_with_one_worker_items_run_exactly_in_input_order() -> None:
    started: list[int] = []

    async def handle(item: tuple[int, str]) -> None:
        started.append(item[0])
        await anyio.sleep(0.1 * (item[0] % 3))

    async def main() -> None:
        items = [(i, "ab"[i % 2]) for i in range(10)]
        await AsyncBatchProcessor(concurrency=1).run(items, handle, key=lambda i: i[1])

    virtual(main)
    assert started == list(range(10))


# -- order of outcomes -------------------------------------------------------------------------


def test_unordered_outcomes_come_as_they_settle_ordered_ones_in_input_order() -> None:
    delays = [0.5, 0.1, 0.3, 0.2, 0.4]

    async def handle(item: int) -> int:
        await anyio.sleep(delays[item])
        return item

    async def collect(ordered: bool) -> list[int]:
        got = []
        flow = AsyncBatchProcessor(concurrency=5).stream(range(5), handle, ordered=ordered)
        async with flow as stream:
            async for outcome in stream:
                got.append(outcome.index)
        return got

    async def main() -> tuple[list[int], list[int]]:
        return await collect(False), await collect(True)

    settled, ordered = virtual(main)
    assert settled == [1, 3, 2, 4, 0]
    assert ordered == [0, 1, 2, 3, 4]


# -- every option -----------------------------------------------------------------------------


def test_retries_timeouts_and_the_concurrency_bound_apply() -> None:
    calls: dict[int, int] = {}
    active = 0
    peak = 0

    async def handle(item: int) -> int:
        nonlocal active, peak
        calls[item] = calls.get(item, 0) + 1
        active += 1
        peak = max(peak, active)
        try:
            if item == 3 and calls[item] == 1:
                raise TransientError("once")
            if item == 7:
                await anyio.sleep(10)  # past the timeout
            await anyio.sleep(0.1)
            return item
        finally:
            active -= 1

    async def main() -> asyncbatch.BatchReport:
        processor = AsyncBatchProcessor(concurrency=3, timeout=1.0,
                                        retry=Retry(attempts=2, base=0.0, cap=0.0,
                                                    on=TransientError))
        return await processor.run(range(10), handle)

    report = virtual(main)
    assert peak == 3
    assert calls[3] == 2 and report.succeeded[3].attempts == 2
    (failed,) = report.failed
    assert failed.index == 7 and isinstance(failed.exception, asyncbatch.RecordTimeoutError)


async def test_a_failure_sink_and_hooks_see_the_items() -> None:
    sunk: list[Any] = []
    started: list[Any] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        sunk.append((failure.record, failure.identifier, failure.event_type))

    class Seen(asyncbatch.Hooks):
        def record_started(self, record: Any, attempt: int) -> None:
            started.append(record)

        def batch_finished(self, report: asyncbatch.BatchReport) -> None:
            started.append(("finished", len(report)))

    async def handle(item: str) -> None:
        if item == "poison":
            raise ValueError("bad")

    processor = AsyncBatchProcessor(sink=sink, hooks=Seen())
    report = await processor.run(["ok", "poison", "fine"], handle)
    assert sunk == [("poison", 1, "Iterable")]
    assert report.response() == {"batchItemFailures": []} and len(report.sunk) == 1
    assert sorted(map(str, started[:3])) == ["fine", "ok", "poison"]
    assert started[3] == ("finished", 3)


async def test_sync_handlers_run_on_threads() -> None:
    import threading

    main_thread = threading.get_ident()
    threads: set[int] = set()

    def handle(item: int) -> int:
        threads.add(threading.get_ident())
        return item + 1

    report = await AsyncBatchProcessor(concurrency=4).run(range(20), handle)
    assert report.results() == list(range(1, 21))
    assert main_thread not in threads


async def test_idempotency_over_items_by_their_key() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()
    processor = AsyncBatchProcessor(
        idempotency=asyncbatch.Idempotency(store, key=lambda order: order["id"]))
    effects: list[int] = []

    async def handle(order: dict[str, int]) -> int:
        effects.append(order["id"])
        return order["id"] * 10

    orders = [{"id": i} for i in range(5)]
    first = await processor.run(orders, handle)
    again = await processor.run(list(reversed(orders)), handle)  # positions changed
    assert sorted(effects) == [0, 1, 2, 3, 4]  # each once
    assert len(again.replayed) == 5
    assert again.results() == [40, 30, 20, 10, 0] and first.results() == [0, 10, 20, 30, 40]


async def test_idempotency_needs_a_key_function_over_items() -> None:
    processor = AsyncBatchProcessor(
        idempotency=asyncbatch.Idempotency(asyncbatch.InMemoryIdempotencyStore()))

    async def handle(item: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ConfigurationError, match="key="):
        processor.stream([1], handle)


def test_a_lambda_context_deadline_stops_reading_and_skips_what_waits() -> None:
    started: list[int] = []

    async def handle(item: int) -> None:
        started.append(item)
        await anyio.sleep(1.0)

    async def main() -> tuple[list[Any], float]:
        processor = AsyncBatchProcessor(concurrency=2, deadline_margin=2.0, cancel_margin=1.0)
        got = []
        began = anyio.current_time()
        # one key: one item at a time, the others read ahead wait behind it
        flow = processor.stream(range(100), handle, key=lambda item: "one",
                                context=LambdaContext(10.0))
        async with flow as stream:
            async for outcome in stream:
                got.append(outcome)
        return got, anyio.current_time() - began

    outcomes, took = virtual(main)
    assert took < 10.0
    assert started == list(range(8))  # one at a time, a second each, until the margin
    assert [o.index for o in outcomes if o.status == "succeeded"] == list(range(8))
    skipped = [o for o in outcomes if o.status == "skipped"]
    assert skipped and {o.exception.reason for o in skipped} == {"deadline"}  # type: ignore[union-attr]
    assert len(outcomes) == 8 + len(skipped) <= 8 + 2 * 2  # read, never run: skipped


# -- stop(): start nothing more, let what runs finish ------------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("full", [False, True])
async def test_stop_starts_nothing_more_and_lets_the_running_finish(keyed: bool,
                                                                    full: bool) -> None:
    """After ``stop()``: the running handlers finish (their outcomes come back), the
    items read and not started (behind their key) come back skipped with reason
    "stopped", an item a read under way brings is skipped too, and nothing more is read."""
    release = anyio.Event()
    reading = anyio.Event()
    two_running = anyio.Event()
    running: set[int] = set()
    started: list[int] = []
    read = 0

    # keyed: items 0 and 1 run (keys 0 and 1), 2 and 3 wait behind them
    key = (lambda item: item % 2) if keyed else None
    blocked = 4 if keyed else 2

    async def items() -> AsyncIterator[int]:
        nonlocal read
        for item in range(100):
            if item == blocked:  # a read under way when the stream stops
                reading.set()
                await release.wait()
            read += 1
            yield item

    async def handle(item: int) -> None:
        started.append(item)
        running.add(item)
        if len(running) == 2:
            two_running.set()
        await release.wait()
        running.discard(item)

    options: dict[str, Any] = {"retry": Retry(attempts=2)} if full else {}
    processor = AsyncBatchProcessor(concurrency=3, **options)
    outcomes = []
    async with processor.stream(items(), handle, key=key) as stream:
        await two_running.wait()
        await reading.wait()
        stream.stop()
        release.set()
        async for outcome in stream:
            outcomes.append(outcome)
    status = {o.index: o.status for o in outcomes}
    assert sorted(started) == [0, 1]
    assert status[0] == status[1] == "succeeded"
    skipped = [o for o in outcomes if o.status == "skipped"]
    assert {o.index for o in skipped} == set(range(2, read))
    assert all(getattr(o.exception, "reason", None) == "stopped" for o in skipped)
    assert read == blocked + 1  # nothing read after the stop but the read under way


# -- leaving early, the input's own error ------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "exception", "cancel"])
async def test_leaving_early_stops_reading_cancels_handlers_and_closes_the_input(
        how: str) -> None:
    source = Counted()
    running = 0
    cancelled = 0
    four_running = anyio.Event()

    async def handle(item: int) -> None:
        nonlocal running, cancelled
        running += 1
        if running == 4:
            four_running.set()
        try:
            await anyio.sleep_forever()
        except BaseException:
            cancelled += 1
            raise
        finally:
            running -= 1

    class Boom(Exception):
        pass

    processor = AsyncBatchProcessor(concurrency=4)
    with anyio.CancelScope() as scope:
        try:
            async with processor.stream(source.items(), handle) as stream:
                await four_running.wait()
                if how == "break":
                    pass  # leave the block without taking anything
                elif how == "exception":
                    raise Boom()
                else:
                    scope.cancel()
                    await anyio.sleep_forever()
        except Boom:
            assert how == "exception"
    assert stream is not None
    read = source.read
    assert running == 0 and cancelled == 4
    assert source.closed
    for _ in range(10):
        await anyio.lowlevel.checkpoint()
    assert source.read == read  # nothing more is read


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_leaving_early_leaves_no_task() -> None:
    before = asyncio.all_tasks()

    async def handle(item: int) -> None:
        await asyncio.sleep(3600)

    async with AsyncBatchProcessor(concurrency=8).stream(Counted().items(), handle):
        for _ in range(5):
            await asyncio.sleep(0)
    assert asyncio.all_tasks() == before
    gc.collect()


async def test_the_inputs_own_error_comes_out_unchanged_after_what_was_taken() -> None:
    class Broken(Exception):
        pass

    error = Broken("the cursor broke")

    async def items() -> AsyncIterator[int]:
        for i in range(5):
            yield i
        raise error

    async def handle(item: int) -> int:
        await anyio.lowlevel.checkpoint()
        return item

    seen: list[int] = []

    async def consume() -> None:
        async with AsyncBatchProcessor(concurrency=3).stream(items(), handle) as stream:
            async for outcome in stream:
                seen.append(outcome.index)

    with pytest.raises(Broken) as caught:
        await consume()
    assert caught.value is error
    assert sorted(seen) == [0, 1, 2, 3, 4]  # everything taken settled and came back first
    with pytest.raises(Broken):
        await AsyncBatchProcessor().run(items(), handle)


def test_a_sync_iterables_error_comes_out_unchanged_too() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise LookupError("gone")

    async def handle(item: int) -> None:
        pass

    async def main() -> None:
        await AsyncBatchProcessor().run(items(), handle)

    with pytest.raises(LookupError, match="gone"):
        virtual(main)


async def test_a_stream_runs_once() -> None:
    async def handle(item: int) -> None:
        pass

    flow = AsyncBatchProcessor().stream([1], handle)
    async with flow as stream:
        assert [o.index async for o in stream] == [0]
    with pytest.raises(ConfigurationError, match="runs once"):
        async with flow:
            pass


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_keyboard_interrupt_in_a_handler_propagates_unwrapped(backend: str) -> None:
    async def handle(item: int) -> None:
        raise KeyboardInterrupt

    async def consume() -> None:
        async with AsyncBatchProcessor().stream([1, 2], handle) as stream:
            async for _ in stream:
                pass

    with pytest.raises(KeyboardInterrupt):
        anyio.run(consume, backend=backend)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("items", "words"), [
    (42, "items is a int, not an iterable"),
    (None, "items is a NoneType"),
    ("text", r"wrap it: \[text\]"),
])
async def test_an_input_that_is_not_iterable_is_refused_before_anything_runs(
        items: Any, words: str) -> None:
    async def handle(item: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ConfigurationError, match=words):
        AsyncBatchProcessor().stream(items, handle)
    with pytest.raises(ConfigurationError, match=words):
        await AsyncBatchProcessor().run(items, handle)


async def test_a_key_that_is_not_callable_is_refused_before_anything_runs() -> None:
    async def handle(item: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ConfigurationError, match="key='id': give a function"):
        AsyncBatchProcessor().stream([1], handle, key="id")  # type: ignore[arg-type]


async def test_a_handler_that_cannot_be_is_refused_before_anything_runs() -> None:
    with pytest.raises(ConfigurationError, match="not callable"):
        AsyncBatchProcessor().stream([1], "handle")  # type: ignore[arg-type]


def test_a_rate_limit_paces_a_stream() -> None:
    starts: list[float] = []

    async def handle(item: int) -> None:
        starts.append(anyio.current_time())

    async def main() -> None:
        processor = AsyncBatchProcessor(
            concurrency=10, rate_limit=asyncbatch.RateLimit(5, clock=anyio.current_time))
        await processor.run(range(11), handle)

    virtual(main)
    assert max(starts) - min(starts) == pytest.approx(2.0)


async def test_a_model_with_a_records_fields_validates_items_as_they_are() -> None:
    """Items shaped like SQS messages are items: a model with those fields validates them
    (it is not refused as a model of another source's record)."""
    from pydantic import BaseModel

    class Message(BaseModel):
        messageId: str
        body: str

    got: list[Message] = []

    async def handle(message: Message) -> None:
        got.append(message)

    report = await AsyncBatchProcessor(model=Message).run(
        [{"messageId": "m1", "body": "b"}, {"messageId": 2}], handle)
    assert [m.messageId for m in got] == ["m1"]
    assert report.failed[0].exception.fields == ("messageId", "body")  # type: ignore[union-attr]
