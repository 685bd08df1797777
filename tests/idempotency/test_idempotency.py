"""Idempotency, store by store: the in-memory store (asyncio and trio) and the DynamoDB
store against a real moto server over HTTP (asyncio: aioboto3).

These tests drive the interface the processor calls (``prepare`` once per batch,
``begin`` / ``complete`` / ``release`` per record); the same body runs on every store.
Time is a clock the test holds (the store's ``clock=``), never a sleep.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import asyncbatch
from asyncbatch import (
    Idempotency,
    IdempotencyInProgressError,
    IdempotencyKeyError,
    IdempotencyValidationError,
    InMemoryIdempotencyStore,
    Replay,
    SQSRecord,
)
from tests._support.events import sqs_record

pytestmark = pytest.mark.anyio

TABLE = "idempotency"
T0 = 1_800_000_000.0  # the tests' clock starts here (UNIX seconds)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory-asyncio", "memory-trio", "dynamodb-asyncio"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(kind: str) -> str:
    return kind.split("-")[1]


@pytest.fixture
def stores(kind: str, request: pytest.FixtureRequest) -> Any:
    """A factory of stores (all on one table / dict per test): ``stores(clock)``."""
    if kind.startswith("memory"):
        shared: dict[str, Any] = {}

        @asynccontextmanager
        async def memory(clock: Clock) -> AsyncIterator[Any]:
            store = InMemoryIdempotencyStore(clock=clock)
            store.items = shared  # two stores, one table: two containers
            yield store

        return memory
    request.getfixturevalue("aws")
    create_table()
    from asyncbatch.aws.idempotency import DynamoDBIdempotencyStore

    @asynccontextmanager
    async def dynamodb(clock: Clock) -> AsyncIterator[Any]:
        async with DynamoDBIdempotencyStore(TABLE, clock=clock) as store:
            yield store

    return dynamodb


def create_table(name: str = TABLE) -> None:
    """The table as the README's SAM snippet declares it."""
    import boto3

    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})


def views(n: int, start: int = 0, body: Any = None) -> list[SQSRecord]:
    return [SQSRecord(sqs_record(i, body)) for i in range(start, start + n)]


async def run_once(idem: Idempotency, records: list[SQSRecord], deadline: Any = None,
                   results: Any = None) -> tuple[list[int], dict[int, Any]]:
    """Process ``records`` as the processor does, one by one; return which ran and what
    each replay gave."""
    batch = await idem.prepare(records, deadline)
    ran, replayed = [], {}
    for i, view in enumerate(records):
        replay = await batch.begin(i, view)
        if replay is not None:
            replayed[i] = replay.result
            continue
        ran.append(i)
        await batch.complete(i, view, {"n": i} if results is None else results(i))
    return ran, replayed


async def test_completed_keys_replay_their_result(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key_prefix="fn")
        ran, replayed = await run_once(idem, views(5))
        assert ran == [0, 1, 2, 3, 4] and replayed == {}
        fresh = Idempotency(store, key_prefix="fn")  # a new container: no local cache
        ran, replayed = await run_once(fresh, views(7))
        assert ran == [5, 6]
        assert replayed == {i: {"n": i} for i in range(5)}


async def test_a_live_claim_fails_the_record_transiently(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        first, second = Idempotency(store, key_prefix="fn"), Idempotency(store, key_prefix="fn")
        records = views(2)
        batch1 = await first.prepare(records, T0 + 60)
        assert await batch1.begin(0, records[0]) is None  # claimed, handler "running"
        batch2 = await second.prepare(records, T0 + 60)
        with pytest.raises(IdempotencyInProgressError) as caught:
            await batch2.begin(0, records[0])
        assert asyncbatch.is_transient(caught.value)
        assert caught.value.identifier == records[0].identifier
        assert caught.value.key == first.key_of(records[0])
        assert await batch2.begin(1, records[1]) is None  # other keys are free


async def test_racing_invocations_never_run_a_key_twice(stores: Any) -> None:
    """Two containers (two Idempotency objects, one table) begin the same 20 records at
    once, with nothing looked up first: every key is claimed by exactly one of them."""
    clock = Clock()
    async with stores(clock) as store:
        records = views(20)
        runs: dict[int, int] = {}
        refused: dict[int, int] = {}

        async def invocation() -> None:
            idem = Idempotency(store, key_prefix="fn")
            batch = await idem.prepare(records, T0 + 60)

            async def one(i: int) -> None:
                try:
                    replay = await batch.begin(i, records[i])
                except IdempotencyInProgressError:
                    refused[i] = refused.get(i, 0) + 1
                    return
                if replay is None:
                    runs[i] = runs.get(i, 0) + 1
                    await anyio.lowlevel.checkpoint()
                    await batch.complete(i, records[i], i)

            async with anyio.create_task_group() as tg:
                for i in range(len(records)):
                    tg.start_soon(one, i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(invocation)
            tg.start_soon(invocation)
        assert all(count == 1 for count in runs.values())
        assert set(runs) | set(refused) == set(range(20))
        # a redelivery of the refused records replays them
        idem = Idempotency(store, key_prefix="fn")
        ran, replayed = await run_once(idem, records)
        assert ran == [] and replayed == {i: i for i in range(20)}


async def test_release_lets_a_retry_run(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key_prefix="fn")
        records = views(1)
        batch = await idem.prepare(records, T0 + 60)
        assert await batch.begin(0, records[0]) is None
        await batch.release(0, records[0], ValueError("boom"))
        other = Idempotency(store, key_prefix="fn")
        batch = await other.prepare(records, T0 + 60)
        assert await batch.begin(0, records[0]) is None  # free again: runs


async def test_release_does_not_delete_a_claim_it_no_longer_holds(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        records = views(1)
        slow = Idempotency(store, key_prefix="fn")
        batch = await slow.prepare(records, T0 + 10)
        assert await batch.begin(0, records[0]) is None
        clock.now = T0 + 11  # its deadline passed: the claim is dead
        fresh = Idempotency(store, key_prefix="fn")
        batch2 = await fresh.prepare(records, T0 + 70)
        assert await batch2.begin(0, records[0]) is None  # took the key over
        await batch.release(0, records[0], TimeoutError())  # the slow one gives up late
        third = Idempotency(store, key_prefix="fn")
        with pytest.raises(IdempotencyInProgressError):
            await (await third.prepare(records, T0 + 70)).begin(0, records[0])


async def test_the_deadline_is_the_claims_expiry(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        records = views(3)
        crashed = Idempotency(store, key_prefix="fn")
        batch = await crashed.prepare(records, T0 + 30)
        for i in range(3):
            assert await batch.begin(i, records[i]) is None  # then the container dies
        clock.now = T0 + 29
        with pytest.raises(IdempotencyInProgressError):
            await (await Idempotency(store, key_prefix="fn").prepare(records, T0 + 90)).begin(
                0, records[0])
        clock.now = T0 + 31
        ran, replayed = await run_once(Idempotency(store, key_prefix="fn"), records, T0 + 90)
        assert ran == [0, 1, 2] and replayed == {}


async def test_without_a_deadline_a_claim_lasts_until_expiration(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        records = views(1)
        batch = await Idempotency(store, key_prefix="fn", expires_after=600).prepare(
            records, None)
        assert await batch.begin(0, records[0]) is None
        clock.now = T0 + 599
        with pytest.raises(IdempotencyInProgressError):
            await (await Idempotency(store, key_prefix="fn").prepare(records, None)).begin(
                0, records[0])
        clock.now = T0 + 602
        batch = await Idempotency(store, key_prefix="fn").prepare(records, None)
        assert await batch.begin(0, records[0]) is None


async def test_expiry_makes_a_key_runnable_again(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key_prefix="fn", expires_after=300)
        records = views(2)
        assert (await run_once(idem, records))[0] == [0, 1]
        clock.now = T0 + 299
        assert (await run_once(idem, records))[0] == []
        assert (await run_once(Idempotency(store, key_prefix="fn"), records))[0] == []
        clock.now = T0 + 302  # expired: the local cache forgets it too
        assert (await run_once(idem, records))[0] == [0, 1]


async def test_a_payload_key_dedupes_messages_with_different_ids(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key="order_id", key_prefix="fn")
        records = [SQSRecord(sqs_record(i, json.dumps({"order_id": f"o-{i % 2}"})))
                   for i in range(6)]
        ran, replayed = await run_once(idem, records, results=lambda i: f"charged by {i}")
        assert ran == [0, 1]
        assert replayed == {2: "charged by 0", 3: "charged by 1", 4: "charged by 0",
                            5: "charged by 1"}


async def test_key_mates_of_one_batch_wait_for_each_other(stores: Any) -> None:
    """Two records with one key begin at once: the second waits for the first and
    replays its result instead of failing as in progress."""
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key=lambda r: r.json()["order_id"], key_prefix="fn")
        records = [SQSRecord(sqs_record(i, json.dumps({"order_id": "o-1"}))) for i in range(2)]
        batch = await idem.prepare(records, T0 + 60)
        assert await batch.begin(0, records[0]) is None
        got: list[Any] = []

        async def second() -> None:
            got.append(await batch.begin(1, records[1]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert got == []  # waiting for its key-mate, not refused as in progress
            await batch.complete(0, records[0], {"charged": True})
        assert got == [Replay({"charged": True})]


async def test_a_failed_key_mate_lets_the_next_one_claim(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key="order_id", key_prefix="fn")
        records = [SQSRecord(sqs_record(i, json.dumps({"order_id": "o-1"}))) for i in range(2)]
        batch = await idem.prepare(records, T0 + 60)
        assert await batch.begin(0, records[0]) is None
        got: list[Any] = []

        async def second() -> None:
            got.append(await batch.begin(1, records[1]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            await batch.release(0, records[0], ValueError("declined"))
        assert got == [None]  # the second one claimed the key: it runs


async def test_a_payload_mismatch_is_reported(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key="order_id", validate="amount", key_prefix="fn")
        first = SQSRecord(sqs_record(1, json.dumps({"order_id": "o-1", "amount": 10})))
        same = SQSRecord(sqs_record(2, json.dumps({"order_id": "o-1", "amount": 10})))
        other = SQSRecord(sqs_record(3, json.dumps({"order_id": "o-1", "amount": 99})))
        assert (await run_once(idem, [first]))[0] == [0]
        fresh = Idempotency(store, key="order_id", validate="amount", key_prefix="fn")
        batch = await fresh.prepare([same, other], None)
        assert await batch.begin(0, same) == Replay({"n": 0})
        with pytest.raises(IdempotencyValidationError) as caught:
            await batch.begin(1, other)
        assert not asyncbatch.is_transient(caught.value)
        assert caught.value.identifier == other.identifier
        assert "different payload" in str(caught.value)


async def test_a_bad_key_costs_only_its_record(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        idem = Idempotency(store, key=lambda r: r.json()["order_id"], key_prefix="fn")
        good = SQSRecord(sqs_record(1, json.dumps({"order_id": "o-1"})))
        bad = SQSRecord(sqs_record(2, "not json"))
        empty = SQSRecord(sqs_record(3, json.dumps({"order_id": None})))
        batch = await idem.prepare([good, bad, empty], None)
        assert await batch.begin(0, good) is None
        with pytest.raises(IdempotencyKeyError) as caught:
            await batch.begin(1, bad)
        assert caught.value.identifier == bad.identifier
        assert isinstance(caught.value.__cause__, asyncbatch.RecordDecodeError)
        with pytest.raises(IdempotencyKeyError, match="empty"):
            await batch.begin(2, empty)


async def test_results_json_cannot_hold_are_not_stored(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        records = views(2)
        ran, _ = await run_once(Idempotency(store, key_prefix="fn"), records,
                                results=lambda i: object() if i == 0 else None)
        assert ran == [0, 1]
        ran, replayed = await run_once(Idempotency(store, key_prefix="fn"), records)
        assert ran == [] and replayed == {0: None, 1: None}


async def test_complete_and_release_without_a_claim_do_nothing(stores: Any) -> None:
    clock = Clock()
    async with stores(clock) as store:
        records = views(1)
        holder = Idempotency(store, key_prefix="fn")
        held = await holder.prepare(records, T0 + 60)
        assert await held.begin(0, records[0]) is None
        other = await Idempotency(store, key_prefix="fn").prepare(records, T0 + 60)
        with pytest.raises(IdempotencyInProgressError):
            await other.begin(0, records[0])
        await other.release(0, records[0], IdempotencyInProgressError("x"))  # not its claim
        await other.complete(0, records[0], "nope")
        with pytest.raises(IdempotencyInProgressError):
            await (await Idempotency(store, key_prefix="fn").prepare(records, None)).begin(
                0, records[0])


# -- the in-memory store and the local cache ---------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_local_cache_spares_the_lookup() -> None:
    store = InMemoryIdempotencyStore(clock=Clock())
    idem = Idempotency(store, key_prefix="fn")
    records = views(10)
    await run_once(idem, records)
    assert store.calls == {"get_many": 1, "claim": 10, "complete": 10, "release": 0}
    ran, replayed = await run_once(idem, records)
    assert ran == [] and len(replayed) == 10
    assert store.calls == {"get_many": 1, "claim": 10, "complete": 10, "release": 0}
    small = Idempotency(store, key_prefix="fn", local_cache=4)
    await run_once(small, records)  # one lookup; remembers only the last 4
    await run_once(small, records)
    assert store.calls["get_many"] == 3 and store.calls["claim"] == 10


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_transient_store_errors_are_retried() -> None:
    class Throttled(InMemoryIdempotencyStore):
        """The in-memory store refusing its first calls as DynamoDB throttles."""

        def __init__(self) -> None:
            super().__init__(clock=Clock())
            self.refuse = 2

        async def claim(self, item: Any) -> Any:
            if self.refuse:
                self.refuse -= 1
                raise asyncbatch.TransientError("throttled")
            return await super().claim(item)

    store = Throttled()
    idem = Idempotency(store, key_prefix="fn", retry=asyncbatch.Retry(attempts=3, base=0))
    records = views(1)
    batch = await idem.prepare(records, None)
    assert await batch.begin(0, records[0]) is None
    assert store.calls["claim"] == 1 and store.refuse == 0
    store.refuse = 5
    batch = await Idempotency(store, key_prefix="fn",
                              retry=asyncbatch.Retry(attempts=2, base=0)).prepare(views(1, 1),
                                                                                  None)
    with pytest.raises(asyncbatch.IdempotencyStoreError) as caught:
        await batch.begin(0, views(1, 1)[0])
    assert isinstance(caught.value.__cause__, asyncbatch.TransientError)


def test_bad_options_say_how_to_fix_them() -> None:
    store = InMemoryIdempotencyStore()
    for kwargs, words in (({"expires_after": 0}, "seconds > 0"),
                          ({"key": 3}, "dotted name"),
                          ({"validate": ""}, "dotted name"),
                          ({"local_cache": -1}, ">= 0"),
                          ({"key_prefix": ""}, "non-empty"),
                          ({"retry": 3}, "Retry")):
        with pytest.raises(asyncbatch.ConfigurationError, match=words):
            Idempotency(store, **kwargs)
    with pytest.raises(asyncbatch.ConfigurationError, match="lacks"):
        Idempotency(object())  # type: ignore[arg-type]


def test_ids_are_powertools_ids() -> None:
    """``<prefix>#<md5 of the key as sorted JSON>``, as Powertools builds them."""
    import hashlib

    idem = Idempotency(InMemoryIdempotencyStore(), key="order", key_prefix="fn.handler")
    view = SQSRecord(sqs_record(1, json.dumps({"order": {"b": 1, "a": "x"}})))
    digest = hashlib.md5(json.dumps({"a": "x", "b": 1}, sort_keys=True).encode()).hexdigest()
    assert idem.key_of(view) == f"fn.handler#{digest}"
    default = Idempotency(InMemoryIdempotencyStore(), key_prefix="fn.handler")
    digest = hashlib.md5(json.dumps(view.identifier).encode()).hexdigest()
    assert default.key_of(view) == f"fn.handler#{digest}"
