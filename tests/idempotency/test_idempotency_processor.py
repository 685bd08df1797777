"""Idempotency end to end: ``AsyncBatchProcessor(idempotency=...)`` over whole events,
on the in-memory store (asyncio and trio) and on DynamoDB through moto (asyncio).

Overlap is forced with events and ``wait_all_tasks_blocked``; time is trio's MockClock
or the store's injected clock, never a sleep.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

import asyncbatch
from asyncbatch import (
    AsyncBatchProcessor,
    Idempotency,
    IdempotencyInProgressError,
    IdempotencyValidationError,
    InMemoryIdempotencyStore,
)
from asyncbatch.testing import LambdaContext
from tests._support.events import SOURCE_NAMES as SOURCES
from tests._support.events import make_event, position, sqs_record
from tests.idempotency.test_idempotency import TABLE, Clock, create_table

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("source", SOURCES)
async def test_a_redelivered_batch_runs_only_what_had_not_succeeded(source: str) -> None:
    store = InMemoryIdempotencyStore()
    processor = AsyncBatchProcessor(idempotency=Idempotency(store, key_prefix="fn"))
    event = make_event(source, ["a", "b", "a", "c", "b", "a", "c", "d"])
    ran: list[int] = []
    broken = {3}

    async def handle(record: Any) -> str:
        pos = position(record)
        ran.append(pos)
        if pos in broken:
            raise ValueError(f"record {pos} failed")
        return f"done {pos}"

    first = await processor.process(event, handle)
    done = {position(o.record) for o in first.succeeded}
    assert first.failed and done and not first.replayed
    assert {position(o.record) for o in first.failed} == broken
    ran.clear()
    broken.clear()
    # Lambda redelivers: here the whole batch (a stream retries from its checkpoint, SQS
    # may redeliver everything after a batch failure or a lost response)
    second = await processor.process(make_event(source, ["a", "b", "a", "c", "b", "a", "c",
                                                         "d"]), handle)
    assert sorted(ran) == sorted(set(range(8)) - done)
    assert len(second.succeeded) == 8
    assert {position(o.record) for o in second.replayed} == done
    assert all(o.result == f"done {position(o.record)}" and o.attempts == 0
               for o in second.replayed)
    assert second.response() == {"batchItemFailures": []}


async def test_racing_invocations_never_run_a_record_twice() -> None:
    """Two containers (one Idempotency each, one store) get the same batch at once;
    every handler holds until both have begun every record."""
    store = InMemoryIdempotencyStore()
    event = make_event("sqs", ["k"] * 12)
    gate = anyio.Event()
    runs: Counter[str] = Counter()

    async def handle(record: Any) -> None:
        runs[record.identifier] += 1
        await gate.wait()

    reports: list[Any] = []

    async def invocation() -> None:
        processor = AsyncBatchProcessor(idempotency=Idempotency(store, key_prefix="fn"))
        reports.append(await processor.process(event, handle))

    async with anyio.create_task_group() as tg:
        tg.start_soon(invocation)
        tg.start_soon(invocation)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert set(runs.values()) == {1} and len(runs) == 12
    ran = [o.identifier for r in reports for o in r.succeeded if not o.replayed]
    refused = [o for r in reports for o in r.failed]
    assert sorted(ran) == sorted(runs)
    assert len(refused) == 12
    assert all(isinstance(o.exception, IdempotencyInProgressError) for o in refused)
    assert all(asyncbatch.is_transient(o.exception) for o in refused)


async def test_a_payload_key_dedupes_messages_with_different_ids() -> None:
    store = InMemoryIdempotencyStore()
    processor = AsyncBatchProcessor(
        idempotency=Idempotency(store, key="order_id", key_prefix="fn"))
    orders = ["o-1", "o-2", "o-1", "o-3", "o-2", "o-1"]
    event = {"Records": [sqs_record(i, json.dumps({"order_id": o}))
                         for i, o in enumerate(orders)]}
    charged: Counter[str] = Counter()

    async def handle(record: Any) -> dict[str, Any]:
        order = record.json()["order_id"]
        charged[order] += 1
        await anyio.lowlevel.checkpoint()
        return {"order": order, "by": record.identifier}

    report = await processor.process(event, handle)
    assert charged == {"o-1": 1, "o-2": 1, "o-3": 1}
    assert len(report.succeeded) == 6 and len(report.replayed) == 3
    assert [r["order"] for r in report.results()] == orders


async def test_a_payload_mismatch_is_reported() -> None:
    store = InMemoryIdempotencyStore()
    processor = AsyncBatchProcessor(idempotency=Idempotency(
        store, key="order_id", validate="amount", key_prefix="fn"))
    ran: list[str] = []

    async def handle(record: Any) -> None:
        ran.append(record.identifier)

    await processor.process(
        {"Records": [sqs_record(1, json.dumps({"order_id": "o-1", "amount": 10}))]}, handle)
    report = await processor.process(
        {"Records": [sqs_record(2, json.dumps({"order_id": "o-1", "amount": 99})),
                     sqs_record(3, json.dumps({"order_id": "o-1", "amount": 10}))]}, handle)
    assert ran == ["msg-000001"]
    (failed,) = report.failed
    assert failed.identifier == "msg-000002"
    assert isinstance(failed.exception, IdempotencyValidationError)
    assert [o.identifier for o in report.replayed] == ["msg-000003"]
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-000002"}]}


async def test_expiry_makes_a_key_runnable_again() -> None:
    clock = Clock()
    store = InMemoryIdempotencyStore(clock=clock)
    processor = AsyncBatchProcessor(
        idempotency=Idempotency(store, key_prefix="fn", expires_after=60))
    event = make_event("sqs", ["k"] * 3)
    runs: Counter[str] = Counter()

    async def handle(record: Any) -> None:
        runs[record.identifier] += 1

    await processor.process(event, handle)
    clock.now += 59
    assert len((await processor.process(event, handle)).replayed) == 3
    clock.now += 2
    report = await processor.process(event, handle)
    assert not report.replayed and set(runs.values()) == {2}


@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": MockClock(autojump_threshold=0)})])
async def test_the_deadline_gives_back_the_claims_it_cancels() -> None:
    """A handler cancelled at the hard deadline has ended (its coroutine is done): its
    claim is released before process() returns, so a redelivery runs the record."""
    offset = Clock(0.0)
    store = InMemoryIdempotencyStore(clock=lambda: time.time() + offset.now)
    idem = Idempotency(store, key_prefix="fn")
    processor = AsyncBatchProcessor(idempotency=idem, concurrency=2)
    event = make_event("sqs", ["k"] * 6)
    slow = True

    async def handle(record: Any) -> None:
        if position(record) == 1 and slow:
            await anyio.sleep(3600)  # runs past the deadline: cancelled

    before = time.time()
    report = await processor.process(event, handle, LambdaContext(10.0))
    failed = {o.identifier: o.exception for o in report.failed}
    assert list(failed) == ["msg-000001"]
    assert isinstance(failed["msg-000001"], asyncbatch.DeadlineExceededError)
    views = {raw["messageId"]: asyncbatch.SQSRecord(raw) for raw in event["Records"]}
    assert idem.key_of(views["msg-000001"]) not in store.items  # released
    assert store.calls["release"] == 1
    for outcome in report.succeeded:
        assert store.items[idem.key_of(views[outcome.identifier])].status == "COMPLETED"
    for outcome in report.skipped:  # never started: never claimed
        assert idem.key_of(views[outcome.identifier]) not in store.items
    assert time.time() - before < 10  # before the invocation's end
    slow = False
    again = await processor.process(event, handle)  # redelivered within the deadline
    assert not again.failed and len(again.succeeded) == 6
    assert [o.identifier for o in again.succeeded if not o.replayed] == ["msg-000001"]


class _Crashing(InMemoryIdempotencyStore):
    """A store whose claims nobody gives back (the invocation's container died)."""

    tried = 0

    async def release(self, claim: Any) -> None:
        self.tried += 1
        raise ConnectionError("the container is gone")


async def test_a_crashed_invocations_claims_expire_with_its_deadline() -> None:
    """The task awaiting process() is cancelled mid-handler and its claim cannot be given
    back (the container dies): the claim stays until the Lambda deadline, then the key
    runs again."""
    offset = Clock(0.0)
    store = _Crashing(clock=lambda: time.time() + offset.now)
    event = make_event("sqs", ["k"])
    started = anyio.Event()

    async def hang(record: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        async def doomed() -> None:
            processor = AsyncBatchProcessor(idempotency=Idempotency(
                store, key_prefix="fn", retry=asyncbatch.Retry(attempts=1)))
            await processor.process(event, hang, LambdaContext(30.0))

        tg.start_soon(doomed)
        await started.wait()
        tg.cancel_scope.cancel()
    assert store.tried == 1  # the cancellation tried to give the claim back
    (claim,) = store.items.values()
    assert claim.status == "INPROGRESS" and claim.in_progress_expiration is not None
    ran: list[str] = []

    async def handle(record: Any) -> None:
        ran.append(record.identifier)

    processor = AsyncBatchProcessor(idempotency=Idempotency(store, key_prefix="fn"))
    report = await processor.process(event, handle)
    assert isinstance(report.failed[0].exception, IdempotencyInProgressError)
    offset.now = 31.0  # past the dead invocation's deadline
    report = await processor.process(event, handle)
    assert ran == ["msg-000000"] and len(report.succeeded) == 1


# -- on DynamoDB (moto) ----------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_on_dynamodb_redelivery_and_races(aws: str) -> None:
    from asyncbatch.aws.idempotency import DynamoDBIdempotencyStore

    create_table()
    event = make_event("kinesis", [f"p{i % 7}" for i in range(150)])
    gate = anyio.Event()
    runs: Counter[str] = Counter()
    # The two invocations race for the claims: each runs the records whose claims it won
    # below its own first lost one (a lost claim is a failure: a checkpoint). How many
    # run depends on that race, so the gate opens when nothing moves any more: both
    # batches read their items, no store call in flight, a handler waiting at the gate.
    state = {"in_flight": 0, "batches": 0}
    changed = [anyio.Event()]

    def moved() -> None:
        changed[0].set()

    class Watched(DynamoDBIdempotencyStore):
        async def _watched(self, call: Any, *args: Any) -> Any:
            state["in_flight"] += 1
            try:
                return await call(*args)
            finally:
                state["in_flight"] -= 1
                moved()

        async def get_many(self, keys: Any) -> Any:
            found = await self._watched(super().get_many, keys)
            state["batches"] += 1
            return found

        async def claim(self, item: Any) -> Any:
            return await self._watched(super().claim, item)

        async def complete(self, item: Any) -> None:
            await self._watched(super().complete, item)

        async def release(self, claim: Any) -> None:
            await self._watched(super().release, claim)

    async def handle(record: Any) -> int:
        runs[record.identifier] += 1
        moved()
        await gate.wait()
        return position(record)

    reports: list[Any] = []

    async def invocation() -> None:
        async with Watched(TABLE) as store:  # one container each
            processor = AsyncBatchProcessor(
                idempotency=Idempotency(store, key_prefix="fn"), concurrency=64)
            reports.append(await processor.process(event, handle))

    async with anyio.create_task_group() as tg:
        tg.start_soon(invocation)
        tg.start_soon(invocation)
        with anyio.fail_after(60):
            while not (state["batches"] == 2 and state["in_flight"] == 0 and runs):
                changed[0] = anyio.Event()
                await changed[0].wait()
        assert len(runs) <= 7  # one record of a partition key at a time, both together
        gate.set()
    assert set(runs.values()) == {1}  # never one record twice
    for report in reports:
        for outcome in report.failed:
            assert isinstance(outcome.exception, IdempotencyInProgressError)
    # the redelivery: everything that has not succeeded yet runs once, the rest replays
    async with DynamoDBIdempotencyStore(TABLE) as store:
        processor = AsyncBatchProcessor(idempotency=Idempotency(store, key_prefix="fn"),
                                        concurrency=64)
        for _ in range(3):
            report = await processor.process(event, handle)
            if not report.failed and not report.skipped:
                break
        assert len(report.succeeded) == 150
        assert set(runs.values()) == {1} and len(runs) == 150
        assert report.results() == list(range(150))
