"""The continuous SQS worker, ``asyncbatch.aws.sqs.consume``, rule by rule of the
contract's "A continuous SQS worker" section, against a real moto server over HTTP.

Every consumer talks to moto through the fault-injecting proxy with ``serialize_sqs``:
moto's SQS is not thread-safe (two concurrent receives can hand out one message twice),
so the proxy forwards one SQS request at a time and plays long polls as short polls.
What a test asserts is then SQS's behaviour and ours, not moto's races.

Waiting is on events and conditions (``anyio.fail_after`` bounds it); where real time is
the subject (visibility timeouts), only bounds a loaded machine cannot break are asserted.
Set-up and inspection go to moto directly, never through the proxy's faults.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional

import anyio
import pytest

import asyncbatch
from asyncbatch import AsyncBatchProcessor, ConfigurationError
from asyncbatch.aws.sqs import ConsumeSummary, SQSDeadLetterSink, consume
from tests.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.anyio

# botocore's own retries off: the worker's retries are what is tested
NO_SDK_RETRY: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 1}}


@pytest.fixture
def anyio_backend() -> str:
    """aioboto3 runs on asyncio only."""
    return "asyncio"


@pytest.fixture
def proxy(aws: str) -> Iterator[FaultProxy]:
    with FaultProxy(aws, seed=11, serialize_sqs=True) as running:
        yield running


@asynccontextmanager
async def sqs_client(endpoint: str, **options: Any) -> AsyncIterator[Any]:
    import aioboto3

    async with aioboto3.Session().client("sqs", endpoint_url=endpoint, **options) as client:
        yield client


async def make_queue(sqs: Any, name: str, *, visibility: int = 30, fifo: bool = False,
                     dead_letter_arn: Optional[str] = None, max_receives: int = 2) -> str:
    attributes = {"VisibilityTimeout": str(visibility)}
    if fifo:
        name += ".fifo"
        attributes.update(FifoQueue="true", ContentBasedDeduplication="true")
    if dead_letter_arn is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives})
    return str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])


async def send(sqs: Any, url: str, bodies: list[Any], groups: Optional[list[str]] = None
               ) -> None:
    for start in range(0, len(bodies), 10):
        entries = []
        for i in range(start, min(start + 10, len(bodies))):
            entry = {"Id": str(i), "MessageBody": json.dumps(bodies[i])}
            if groups is not None:
                entry["MessageGroupId"] = groups[i]
            entries.append(entry)
        response = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed")


async def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll ``condition`` until it holds (a condition to wait for, not a race to hide)."""
    with anyio.fail_after(seconds):
        while not await condition():  # noqa: ASYNC110 - a state of moto, not an event
            await anyio.sleep(0.05)


class Seen:
    """What a handler saw: each message's deliveries, in order, and how many run at once;
    ``done`` is set once ``expected`` distinct messages have succeeded."""

    def __init__(self, expected: int = -1) -> None:
        self.expected = expected
        self.order: list[Any] = []
        self.deliveries: Counter[str] = Counter()
        self.succeeded: set[str] = set()
        self.running: set[str] = set()
        self.overlaps: list[str] = []  # a message started while it ran already
        self.done = anyio.Event()

    def start(self, record: asyncbatch.SQSRecord) -> None:
        self.order.append(record.json())
        self.deliveries[record.message_id] += 1
        if record.message_id in self.running:
            self.overlaps.append(record.message_id)
        self.running.add(record.message_id)

    def end(self, record: asyncbatch.SQSRecord, ok: bool = True) -> None:
        self.running.discard(record.message_id)
        if ok:
            self.succeeded.add(record.message_id)
            if len(self.succeeded) == self.expected:
                self.done.set()


async def run(url: str, handle: Any, processor: AsyncBatchProcessor, stop: anyio.Event,
              endpoint: str, **options: Any) -> ConsumeSummary:
    options.setdefault("wait_time", 1)
    return await consume(url, handle, processor, stop=stop, endpoint_url=endpoint, **options)


class Background:
    """A ``consume`` running in a task of its own; ``summary`` once it has returned."""

    summary: Optional[ConsumeSummary] = None


@asynccontextmanager
async def in_background(*args: Any, **options: Any) -> AsyncIterator[Background]:
    """``run(*args, **options)`` in the background while the block runs; the block's end
    waits for it."""
    job = Background()

    async def work() -> None:
        job.summary = await run(*args, **options)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(work)
        yield job


# -- at least once: every message handled, deleted after success ---------------------------


async def test_every_message_is_handled_once_and_deleted(aws: str, proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "orders")
        await send(sqs, url, [{"n": i} for i in range(300)])
        seen = Seen(expected=300)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            seen.start(record)
            await anyio.sleep(0.001)
            seen.end(record)

        summary = await run(url, handle, AsyncBatchProcessor(concurrency=16), seen.done,
                            proxy.url)
        assert sorted(n["n"] for n in seen.order) == list(range(300))
        assert set(seen.deliveries.values()) == {1}
        assert (summary.received, summary.succeeded, summary.deleted) == (300, 300, 300)
        assert summary.failed == summary.released == summary.undeleted == 0
        assert summary.in_flight == 0
        assert await counts(sqs, url) == (0, 0)
    assert proxy.seen["DeleteMessageBatch"] < 300  # deletes are batched


async def test_the_handler_gets_a_lambda_shaped_sqs_record(aws: str,
                                                         proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "shaped")
        await sqs.send_message(
            QueueUrl=url, MessageBody='{"order": 7}',
            MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}})
        got: list[asyncbatch.SQSRecord] = []
        stop = anyio.Event()

        async def handle(record: asyncbatch.SQSRecord) -> None:
            got.append(record)
            stop.set()

        await run(url, handle, AsyncBatchProcessor(), stop, proxy.url)
    (record,) = got
    assert isinstance(record, asyncbatch.SQSRecord)
    raw = record.raw
    assert raw["eventSource"] == "aws:sqs"
    assert raw["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:shaped"
    assert raw["awsRegion"] == "us-east-1" and raw["md5OfBody"]
    assert raw["receiptHandle"] and record.identifier == record.message_id
    assert record.json() == {"order": 7} and record.receive_count == 1
    assert record.message_attributes["tenant"]["stringValue"] == "acme"
    assert record.ordering_key is None and not record.is_fifo


# -- failures: left for SQS to deliver again, dead-lettered by the redrive policy ----------


async def test_failures_are_delivered_again_and_dead_lettered_by_the_redrive_policy(
        aws: str, proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        dlq = await make_queue(sqs, "orders-dlq")
        dlq_arn = (await sqs.get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        url = await make_queue(sqs, "orders", dead_letter_arn=dlq_arn, max_receives=2)
        await send(sqs, url, [{"n": i} for i in range(40)])
        poison = {n for n in range(40) if n % 8 == 0}
        seen = Seen()
        receives: dict[int, list[int]] = {}

        async def handle(record: asyncbatch.SQSRecord) -> None:
            n = record.json()["n"]
            receives.setdefault(n, []).append(record.receive_count)
            if n in poison:
                raise ValueError(f"cannot handle order {n}")

        async def all_dead_lettered() -> bool:
            return (await counts(sqs, dlq))[0] == len(poison)

        stop = anyio.Event()
        # failure visibility 0: a failed message comes back at once
        async with in_background(url, handle, AsyncBatchProcessor(concurrency=8), stop,
                                 proxy.url, failure_visibility_timeout=0) as job:
            await wait_for(all_dead_lettered)
            stop.set()
        summary = job.summary
        assert summary is not None
        # every poison message ran on its first and second delivery, then SQS moved it
        assert {n: receives[n] for n in poison} == {n: [1, 2] for n in poison}
        assert all(receives[n] == [1] for n in set(range(40)) - poison)
        assert summary.failed == 2 * len(poison) and summary.succeeded == 40 - len(poison)
        got = await sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)
        assert {json.loads(m["Body"])["n"] for m in got["Messages"]} == poison
        assert await counts(sqs, url) == (0, 0)
    del seen


async def test_a_failed_message_is_left_until_its_visibility_runs_out(
        aws: str, proxy: FaultProxy) -> None:
    """Without ``failure_visibility_timeout`` the worker leaves a failed message alone:
    SQS delivers it again when its visibility timeout (1 s here) runs out, not before."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "slow-retry", visibility=1)
        await send(sqs, url, [{"n": 0}])
        gaps: list[float] = []
        stop = anyio.Event()

        async def handle(record: asyncbatch.SQSRecord) -> None:
            if record.receive_count == 1:
                raise ValueError("first delivery fails")
            # from the first receive (SQS's clock, ms) to now, after the second receive
            first = int(record.attributes["ApproximateFirstReceiveTimestamp"]) / 1000
            gaps.append(time.time() - first)
            stop.set()

        summary = await run(url, handle, AsyncBatchProcessor(), stop, proxy.url)
    assert len(gaps) == 1 and gaps[0] >= 0.99  # a lower bound: load only adds to it
    assert (summary.failed, summary.succeeded, summary.deleted) == (1, 1, 1)


# -- the visibility heartbeat --------------------------------------------------------------


async def test_a_slow_handler_is_not_delivered_again_while_it_runs(
        aws: str, proxy: FaultProxy) -> None:
    """A 5 s handler on a 2 s visibility timeout: the heartbeat keeps the message
    invisible while it runs, so neither this worker (it has free places) nor another
    one receives it again; once it succeeds it is deleted."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "slow", visibility=2)
        await send(sqs, url, [{"n": 0}])
        seen = Seen(expected=1)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            seen.start(record)
            await anyio.sleep(5)
            seen.end(record)

        results: list[ConsumeSummary] = []
        async with anyio.create_task_group() as tasks:
            for _ in range(2):
                async def worker() -> None:
                    results.append(await run(url, handle, AsyncBatchProcessor(concurrency=4),
                                             seen.done, proxy.url))
                tasks.start_soon(worker)
        assert seen.deliveries and set(seen.deliveries.values()) == {1}
        assert sum(s.received for s in results) == 1 and sum(s.deleted for s in results) == 1
        assert sum(s.expired for s in results) == 0
        assert await counts(sqs, url) == (0, 0)
    assert proxy.seen["ChangeMessageVisibilityBatch"] >= 3  # renewed while it ran


# -- no batch barrier, bounded prefetch ----------------------------------------------------


async def test_one_slow_message_does_not_hold_back_the_others(aws: str,
                                                               proxy: FaultProxy) -> None:
    """The first message's handler waits until every other message has been handled:
    with a batch barrier (receive 10, run them, delete, receive again) it never would."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "flow")
        await send(sqs, url, [{"n": i} for i in range(60)])
        others = Seen(expected=59)
        slow_running = False

        async def handle(record: asyncbatch.SQSRecord) -> None:
            nonlocal slow_running
            if record.json()["n"] == 0:
                slow_running = True
                await others.done.wait()
                slow_running = False
                return
            others.start(record)
            others.end(record)

        stop = anyio.Event()
        async with in_background(url, handle, AsyncBatchProcessor(concurrency=4), stop,
                                 proxy.url) as job:
            with anyio.fail_after(60):
                await others.done.wait()
            stop.set()  # the slow one finishes in the grace period
        summary = job.summary
        assert summary is not None and summary.succeeded == 60 and summary.deleted == 60
        assert not slow_running


async def _true(value: bool) -> bool:
    return value


class SpySession:
    """An aioboto3 session whose SQS clients report every ``ReceiveMessage`` (how many
    messages it asked for, how many came back) before and after the real call."""

    def __init__(self, on_ask: Callable[[int], None], on_got: Callable[[int, int], None]
                 ) -> None:
        import aioboto3

        self.session = aioboto3.Session()
        self.on_ask = on_ask
        self.on_got = on_got

    def client(self, *args: Any, **kwargs: Any) -> Any:
        spy = self

        @asynccontextmanager
        async def opened() -> AsyncIterator[Any]:
            async with spy.session.client(*args, **kwargs) as client:
                real = client.receive_message

                async def receive_message(**params: Any) -> Any:
                    asked = params["MaxNumberOfMessages"]
                    spy.on_ask(asked)
                    try:
                        response = await real(**params)
                    except BaseException:
                        spy.on_got(asked, 0)
                        raise
                    spy.on_got(asked, len(response.get("Messages") or ()))
                    return response

                client.receive_message = receive_message
                yield client

        return opened()


async def test_prefetch_is_bounded_by_concurrency_plus_prefetch(aws: str,
                                                                proxy: FaultProxy) -> None:
    """While every handler is blocked, at most ``concurrency + prefetch`` messages are
    received: every ReceiveMessage asks for at most 10 and for no more places than are
    free (counting the messages held and those asked for by receives under way)."""
    concurrency, prefetch = 5, 7
    places = concurrency + prefetch
    asking = held = 0  # held: received so far (nothing settles while the handlers block)
    most = 0
    blocked = True
    asks: list[int] = []
    full = anyio.Event()

    def on_ask(count: int) -> None:
        nonlocal asking, most
        asks.append(count)
        asking += count
        if blocked:
            most = max(most, asking + held)

    def on_got(asked: int, got: int) -> None:
        nonlocal asking, held
        asking -= asked
        held += got
        if held > concurrency:
            full.set()  # every handler runs, and some messages wait

    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "bounded")
        await send(sqs, url, [{"n": i} for i in range(60)])
        release = anyio.Event()
        seen = Seen(expected=60)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            seen.start(record)
            await release.wait()
            seen.end(record)

        async with in_background(url, handle, AsyncBatchProcessor(concurrency=concurrency),
                                 seen.done, proxy.url, prefetch=prefetch,
                                 session=SpySession(on_ask, on_got)) as job:
            with anyio.fail_after(30):
                await full.wait()
            # while the handlers are blocked, the receivers go on only within the bound
            for _ in range(20):
                await anyio.sleep(0.05)
                assert held + asking <= places
            assert len(seen.running) == concurrency
            visible, hidden = await counts(sqs, url)  # as SQS sees it
            assert hidden <= places and visible + hidden == 60
            blocked = False
            release.set()
        summary = job.summary
        assert summary is not None and summary.succeeded == 60
    assert most <= places and max(asks) <= 10


# -- FIFO ----------------------------------------------------------------------------------


async def test_fifo_groups_run_in_order_and_a_failed_groups_rest_is_released(
        aws: str, proxy: FaultProxy) -> None:
    """Three groups of 10, group A sent first (one receive brings A0..A9: SQS hands out
    a group's later messages only with its earlier ones). A3 fails once: A4..A9, held,
    are not run but made visible at once; A3 comes back at once too (failure visibility
    0) and A runs again from A3, in order, long before the 60 s visibility timeout. B and
    C run once each, in order."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "fifo", fifo=True, visibility=60)
        bodies: list[dict[str, Any]] = [{"g": g, "i": i} for g in "ABC" for i in range(10)]
        await send(sqs, url, bodies, groups=[b["g"] for b in bodies])
        order: dict[str, list[tuple[int, int]]] = {"A": [], "B": [], "C": []}
        failed_once = False
        seen = Seen(expected=30)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            nonlocal failed_once
            body = record.json()
            assert record.message_group_id == body["g"] and record.is_fifo
            seen.start(record)
            order[body["g"]].append((body["i"], record.receive_count))
            if body == {"g": "A", "i": 3} and not failed_once:
                failed_once = True
                seen.end(record, ok=False)
                raise ValueError("A3 fails once")
            seen.end(record)

        started = time.monotonic()
        summary = await run(url, handle, AsyncBatchProcessor(concurrency=3), seen.done,
                            proxy.url, prefetch=30, failure_visibility_timeout=0)
        assert time.monotonic() - started < 50  # nothing waited for a visibility timeout
        assert await counts(sqs, url) == (0, 0)
    assert order["B"] == [(i, 1) for i in range(10)]
    assert order["C"] == [(i, 1) for i in range(10)]
    assert order["A"] == [(i, 1) for i in range(4)] + [(i, 2) for i in range(3, 10)]
    assert (summary.failed, summary.released, summary.succeeded) == (1, 6, 30)
    assert summary.received == 37


# -- graceful stop -------------------------------------------------------------------------


async def test_stop_releases_what_did_not_start_and_lets_the_running_finish(
        aws: str, proxy: FaultProxy) -> None:
    """A worker holds 4 running + 6 waiting messages when stopped. The 6 are made visible
    at once (a second worker started then receives them, with the 30 never received,
    long before the 60 s visibility timeout), the 4 running finish within the grace
    period and are deleted."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "stop", visibility=60)
        await send(sqs, url, [{"n": i} for i in range(40)])
        finish = anyio.Event()
        first = Seen()
        full = anyio.Event()

        def progress(summary: ConsumeSummary) -> None:
            if summary.received == 10 and len(first.running) == 4:
                full.set()

        async def slow(record: asyncbatch.SQSRecord) -> None:
            first.start(record)
            await finish.wait()
            first.end(record)

        second = Seen(expected=36)

        async def fast(record: asyncbatch.SQSRecord) -> None:
            second.start(record)
            second.end(record)

        stop_first = anyio.Event()
        async with in_background(url, slow, AsyncBatchProcessor(concurrency=4), stop_first,
                                 proxy.url, prefetch=6, grace=60, on_progress=progress,
                                 progress_every=0.02) as job:
            with anyio.fail_after(30):
                await full.wait()
            stop_first.set()
            started = time.monotonic()
            other = await run(url, fast, AsyncBatchProcessor(concurrency=8), second.done,
                              proxy.url)
            assert time.monotonic() - started < 50  # not after a 60 s visibility timeout
            assert job.summary is None  # the first still waits for its running handlers
            finish.set()
        summary = job.summary
        assert summary is not None
    assert (summary.received, summary.succeeded, summary.released) == (10, 4, 6)
    assert summary.deleted == 4
    assert other.received == 36 and other.succeeded == 36
    handled_first = {n["n"] for n in first.order}
    assert {n["n"] for n in second.order} == set(range(40)) - handled_first


async def test_handlers_still_running_at_the_end_of_the_grace_period_are_cancelled_and_released(
        aws: str, proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "grace", visibility=30)
        await send(sqs, url, [{"n": i} for i in range(6)])
        running = Seen()
        all_running = anyio.Event()
        cancelled = 0

        async def stuck(record: asyncbatch.SQSRecord) -> None:
            nonlocal cancelled
            running.start(record)
            if len(running.running) == 6:
                all_running.set()
            try:
                await anyio.sleep_forever()
            except BaseException:
                cancelled += 1
                raise

        stop = anyio.Event()
        async with in_background(url, stuck, AsyncBatchProcessor(concurrency=6), stop,
                                 proxy.url, grace=0.5) as job:
            with anyio.fail_after(30):
                await all_running.wait()
            stopped = time.monotonic()
            stop.set()
        summary = job.summary
        assert summary is not None
        assert time.monotonic() - stopped >= 0.5  # the grace period, a lower bound
        assert cancelled == 6
        assert (summary.received, summary.released, summary.succeeded) == (6, 6, 0)
        assert await counts(sqs, url) == (6, 0)  # visible again at once


async def test_cancelling_consume_hands_back_what_it_holds(aws: str,
                                                           proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "cancelled", visibility=30)
        await send(sqs, url, [{"n": i} for i in range(8)])
        seen = Seen()
        four = anyio.Event()

        async def handle(record: asyncbatch.SQSRecord) -> None:
            seen.start(record)
            if record.json()["n"] % 2:
                seen.end(record)
                return  # succeeds: deleted
            if len(seen.running) == 4:
                four.set()
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, url, handle, AsyncBatchProcessor(concurrency=8),
                             anyio.Event(), proxy.url)
            with anyio.fail_after(30):
                await four.wait()
            await wait_for(lambda: _true(len(seen.succeeded) == 4))
            tasks.cancel_scope.cancel()
        # the 4 that succeeded are deleted, the 4 still running visible again at once
        assert await counts(sqs, url) == (4, 0)


# -- throttling and 5xx --------------------------------------------------------------------


async def test_throttling_and_5xx_on_every_call_lose_nothing(aws: str,
                                                              proxy: FaultProxy) -> None:
    """20% of every SQS call throttled and 5% failing (botocore's own retries off): the
    worker retries with backoff and never crashes; every message is handled exactly once
    and deleted. A few 2.5 s handlers on a 2 s visibility timeout need heartbeats through
    the faults too."""
    from botocore.config import Config

    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "throttled", visibility=2)
        await send(sqs, url, [{"n": i} for i in range(200)])
        for operation in ("ReceiveMessage", "DeleteMessageBatch",
                          "ChangeMessageVisibilityBatch"):  # each of them surely, first
            proxy.add(Fault(operation, "throttle", times=1))
            proxy.add(Fault(operation, "5xx", times=1))
        proxy.add(Fault(None, "throttle", rate=0.2))
        proxy.add(Fault(None, "5xx", rate=0.05))
        seen = Seen(expected=200)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            seen.start(record)
            await anyio.sleep(2.5 if record.json()["n"] % 20 == 0 else 0.001)
            seen.end(record)

        # 12 attempts: a delete given up (0.25 ** 12) would be delivered again
        summary = await run(url, handle, AsyncBatchProcessor(concurrency=16), seen.done,
                            proxy.url, config=Config(**NO_SDK_RETRY),
                            sqs_retry=asyncbatch.Retry(attempts=12, base=0.05, cap=0.5))
        proxy.clear()
        assert set(seen.deliveries.values()) == {1} and len(seen.deliveries) == 200
        assert (summary.received, summary.succeeded, summary.deleted) == (200, 200, 200)
        assert summary.undeleted == summary.expired == 0
        assert await counts(sqs, url) == (0, 0)
    for operation in ("ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
        assert proxy.injected[operation] >= 2, operation


async def test_a_call_no_retry_mends_stops_the_worker_and_is_raised(
        aws: str, proxy: FaultProxy) -> None:
    from botocore.exceptions import ClientError

    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "deleted-under-it")
        await send(sqs, url, [{"n": 0}])
        handled = anyio.Event()

        async def handle(record: asyncbatch.SQSRecord) -> None:
            handled.set()

        async with anyio.create_task_group() as tasks:
            async def worker() -> None:
                with pytest.raises(ClientError) as caught:
                    await run(url, handle, AsyncBatchProcessor(), anyio.Event(), proxy.url)
                assert "NonExistentQueue" in str(caught.value) \
                    or "QueueDoesNotExist" in str(caught.value)

            tasks.start_soon(worker)
            with anyio.fail_after(30):
                await handled.wait()
            await sqs.delete_queue(QueueUrl=url)


async def test_the_proxy_answers_sqs_faults_as_sqs_does(aws: str, proxy: FaultProxy) -> None:
    """What the throttling test injects reaches botocore as SQS's own errors, which the
    worker's retry predicate takes as transient."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from asyncbatch import is_transient

    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "faults")
    async with sqs_client(proxy.url, config=Config(**NO_SDK_RETRY)) as faulty:
        proxy.add(Fault("ReceiveMessage", "throttle", times=1))
        proxy.add(Fault("DeleteMessageBatch", "5xx", times=1))
        calls = [
            (faulty.receive_message(QueueUrl=url), "RequestThrottled", 400),
            (faulty.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": "r"}]),
             "InternalFailure", 500),
        ]
        for call, code, status in calls:
            with pytest.raises(ClientError) as caught:
                await call
            assert caught.value.response["Error"]["Code"] == code
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
            assert is_transient(caught.value)


async def test_a_long_poll_abandoned_by_its_client_takes_no_message(
        aws: str, proxy: FaultProxy) -> None:
    """The serialising proxy plays a long poll as short polls; once its client hangs up
    (a cancelled receive) it polls no more, so a message sent later stays visible."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "abandoned")
        async with sqs_client(proxy.url) as through:
            with anyio.move_on_after(0.3):
                await through.receive_message(QueueUrl=url, WaitTimeSeconds=10)
        # found at its next short poll, long before its 10 s are over
        await wait_for(lambda: _true(proxy.polling == 0), seconds=5)
        await send(sqs, url, [{"n": 0}])
        assert await counts(sqs, url) == (1, 0)


# -- two workers on one queue --------------------------------------------------------------


async def test_two_workers_never_handle_one_message_at_once(aws: str,
                                                             proxy: FaultProxy) -> None:
    """Two workers on one queue, a 2 s visibility timeout, some handlers slower than it:
    no message is ever handled by both at once (nor twice at all: nothing fails)."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "shared", visibility=2)
        await send(sqs, url, [{"n": i} for i in range(200)])
        seen = Seen(expected=200)
        by_worker: Counter[int] = Counter()

        def handler(worker: int) -> Callable[[asyncbatch.SQSRecord], Awaitable[None]]:
            async def handle(record: asyncbatch.SQSRecord) -> None:
                seen.start(record)
                by_worker[worker] += 1
                await anyio.sleep(2.5 if record.json()["n"] % 40 == 0 else 0.005)
                seen.end(record)

            return handle

        results: list[ConsumeSummary] = []
        async with anyio.create_task_group() as tasks:
            for worker in (1, 2):
                async def one(worker: int = worker) -> None:
                    results.append(await run(url, handler(worker),
                                             AsyncBatchProcessor(concurrency=8), seen.done,
                                             proxy.url))
                tasks.start_soon(one)
        assert not seen.overlaps
        assert set(seen.deliveries.values()) == {1} and len(seen.deliveries) == 200
        assert by_worker[1] > 0 and by_worker[2] > 0
        assert sum(s.deleted for s in results) == 200
        assert await counts(sqs, url) == (0, 0)


# -- every processor option applies --------------------------------------------------------


async def test_model_sink_and_idempotency_work_as_for_lambda_events(
        aws: str, proxy: FaultProxy) -> None:
    """``model=`` parses the body, a message that does not validate goes to the failure
    sink (a dead-letter queue) and is deleted, and an idempotency key over the body makes
    a duplicate send succeed without running again."""
    from pydantic import BaseModel

    class Order(BaseModel):
        order: int

    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "typed")
        dlq = await make_queue(sqs, "typed-dlq")
        await send(sqs, url, [{"order": 1}, {"order": 2}, {"order": "x"}, {"order": 1}])
        runs: list[int] = []
        stop = anyio.Event()
        total = 0

        async def handle(order: Order) -> None:
            runs.append(order.order)

        def progress(summary: ConsumeSummary) -> None:
            if summary.succeeded + summary.sunk == 4:
                stop.set()

        store = asyncbatch.InMemoryIdempotencyStore()
        async with SQSDeadLetterSink.open(dlq, endpoint_url=aws) as sink:
            processor = AsyncBatchProcessor(
                model=Order, sink=sink, concurrency=1,
                idempotency=asyncbatch.Idempotency(store, key=lambda r: r.json()["order"]))
            summary = await run(url, handle, processor, stop, proxy.url,
                                on_progress=progress, progress_every=0.05)
        total = summary.succeeded
        assert sorted(runs) == [1, 2]  # the second order 1 was replayed
        assert (total, summary.sunk, summary.deleted) == (3, 1, 4)
        dead = await sqs.receive_message(QueueUrl=dlq)
        assert json.loads(dead["Messages"][0]["Body"])["record"]["body"] == '{"order": "x"}'
        assert await counts(sqs, url) == (0, 0)


async def test_a_handler_that_wrecks_its_record_costs_nothing_but_its_own_outcome(
        aws: str, proxy: FaultProxy) -> None:
    """Messages are settled with what was received, not with what the handler left of its
    record: one that empties its record and succeeds is deleted, one that replaces it and
    fails is left for SQS and logged, and the worker goes on."""
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "wrecked", visibility=60)
        await send(sqs, url, [{"n": i} for i in range(6)])
        seen = Seen(expected=6)

        async def handle(record: asyncbatch.SQSRecord) -> None:
            n = record.json()["n"]
            seen.start(record)
            seen.end(record)
            if n % 2:
                record.raw = None  # type: ignore[assignment]
                raise ValueError("and the record is gone")
            record.raw.clear()

        summary = await run(url, handle, AsyncBatchProcessor(concurrency=3), seen.done,
                            proxy.url)
        assert (summary.succeeded, summary.failed, summary.deleted) == (3, 3, 3)
        assert await counts(sqs, url) == (0, 3)  # the failed ones wait for SQS


# -- misuse --------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "match"), [
    ({"wait_time": 21}, "wait_time=21"),
    ({"visibility_timeout": 0}, "visibility_timeout=0"),
    ({"failure_visibility_timeout": -1}, "failure_visibility_timeout=-1"),
    ({"prefetch": -1}, "prefetch=-1"),
    ({"receivers": 0}, "receivers=0"),
    ({"grace": -1}, "grace=-1"),
    ({"stop": object()}, "stop="),
    ({"sqs_retry": 3}, "sqs_retry=3"),
    ({"on_progress": 1}, "on_progress=1"),
])
async def test_a_bad_option_is_refused_before_anything_runs(options: dict[str, Any],
                                                             match: str) -> None:
    async def handle(record: Any) -> None: ...

    with pytest.raises(ConfigurationError, match=match):
        await consume("https://sqs.us-east-1.amazonaws.com/1/q", handle, AsyncBatchProcessor(),
                      **options)


async def test_idempotency_without_a_key_is_refused_with_the_keys_to_give() -> None:
    async def handle(record: Any) -> None: ...

    processor = AsyncBatchProcessor(
        idempotency=asyncbatch.Idempotency(asyncbatch.InMemoryIdempotencyStore()))
    with pytest.raises(ConfigurationError, match=r"record\.message_id"):
        await consume("https://sqs.us-east-1.amazonaws.com/1/q", handle, processor)


async def test_a_processor_that_stops_at_the_first_failure_is_refused() -> None:
    async def handle(record: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="fifo_stop_on_failure"):
        await consume("https://sqs.us-east-1.amazonaws.com/1/q.fifo", handle,
                      AsyncBatchProcessor(fifo_stop_on_failure=True))


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_it_says_it_needs_asyncio() -> None:
    async def handle(record: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="needs asyncio"):
        await consume("https://sqs.us-east-1.amazonaws.com/1/q", handle, AsyncBatchProcessor())


async def test_a_missing_queue_is_an_error_before_anything_runs(aws: str) -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("nothing runs")

    with pytest.raises(ConfigurationError, match="missing does not exist"):
        await consume(f"{aws}/123456789012/missing", handle, AsyncBatchProcessor())


async def test_a_stop_already_set_receives_nothing(aws: str, proxy: FaultProxy) -> None:
    async with sqs_client(aws) as sqs:
        url = await make_queue(sqs, "idle")
        await send(sqs, url, [{"n": 0}])
        stop = anyio.Event()
        stop.set()

        async def handle(record: Any) -> None:
            raise AssertionError("nothing runs")

        summary = await run(url, handle, AsyncBatchProcessor(), stop, proxy.url)
        assert summary.received == 0
        assert await counts(sqs, url) == (1, 0)
    assert "ReceiveMessage" not in proxy.seen


def test_the_summary_is_frozen_and_reads_well() -> None:
    summary = ConsumeSummary(received=5, succeeded=2, failed=1, sunk=1, released=0,
                             deleted=3, elapsed=1.25)
    assert summary.in_flight == 1
    assert str(summary) == ("5 received: 2 succeeded, 1 failed, 1 sunk, 0 released; "
                            "3 deleted in 1.2 s")
    with pytest.raises(AttributeError):
        summary.received = 6
    assert ConsumeSummary.__module__ == "asyncbatch.aws.sqs"


def test_a_message_made_visible_is_visible_in_the_same_microsecond(
        moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server's moto is corrected (conftest): a message whose visibility is
    changed to 0 s is visible at once, even to a receive in the same microsecond, and so
    leaves the in-flight set at once; a FIFO group's order then holds as on SQS."""
    import moto.sqs.models

    frozen = moto.sqs.models.unix_time_millis()
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda *_: frozen)
    message = moto.sqs.models.Message("m-1", "body")
    message.change_visibility(30)
    assert not message.visible
    message.change_visibility(0)
    assert message.visible
