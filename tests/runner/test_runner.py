"""The local event source runner against a real moto server over HTTP (asyncio only:
aioboto3). Nothing of AWS is faked: queues, streams, tables and the checkpoint table are
moto's, reached through aioboto3 exactly as AWS would be.

Waits are on conditions (events, the queue's own attributes) under ``anyio.fail_after``;
no test sleeps to let something happen.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Optional

import anyio
import pytest

import asyncbatch
from asyncbatch import DynamoDBRecord, KinesisRecord, SQSRecord
from asyncbatch.runner import (
    BatchResult,
    DynamoDBCheckpointStore,
    DynamoDBStreamPoller,
    FunctionTimeoutError,
    InvalidResponseError,
    KinesisPoller,
    MemoryCheckpointStore,
    Runner,
    SQSPoller,
    parse_response,
)

pytestmark = pytest.mark.anyio

TIMEOUT = 60  # seconds any one run may take before the test fails


@pytest.fixture
def anyio_backend() -> str:
    """aioboto3 runs on asyncio only."""
    return "asyncio"


# -- AWS set-up, through the real API -------------------------------------------------------


_sessions: list[Any] = []


def session() -> Any:
    """One aioboto3 session for the module: a session loads its service models once."""
    if not _sessions:
        import aioboto3

        _sessions.append(aioboto3.Session())
    return _sessions[0]


@asynccontextmanager
async def clients(*services: str) -> AsyncIterator[list[Any]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(session().client(s)) for s in services]


async def make_queue(name: str, **attributes: str) -> tuple[str, str]:
    async with clients("sqs") as (sqs,):
        url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        found = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, found["Attributes"]["QueueArn"]


async def send(url: str, bodies: list[str], *, group: Optional[Callable[[str], str]] = None,
               attributes: Optional[dict[str, Any]] = None) -> None:
    async with clients("sqs") as (sqs,):
        for body in bodies:
            params: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
            if group is not None:
                params["MessageGroupId"] = group(body)
            if attributes:
                params["MessageAttributes"] = attributes
            await sqs.send_message(**params)


async def queue_counts(url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) as SQS reports them."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    async with clients("sqs") as (sqs,):
        found = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))
    attributes = found["Attributes"]
    return (int(attributes[names[0]]), int(attributes[names[1]]), int(attributes[names[2]]))


async def drain(url: str) -> list[dict[str, Any]]:
    """Every message now in a queue (received, not deleted)."""
    out: list[dict[str, Any]] = []
    async with clients("sqs") as (sqs,):
        while True:
            found = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                              MessageAttributeNames=["All"],
                                              VisibilityTimeout=60)
            if not found.get("Messages"):
                return out
            out.extend(found["Messages"])


async def in_flight(url: str, count: int) -> bool:
    return (await queue_counts(url))[1] == count


async def wait_until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll AWS state until ``condition`` holds; the caller bounds it with fail_after."""
    while True:
        if await condition():
            return
        await anyio.sleep(0.02)


class Stream:
    """A Kinesis stream or a DynamoDB table stream holding records ``0..n-1`` (each
    carrying its number ``n`` and its key), and a factory for the runner's source."""

    def __init__(self, kind: str, name: str, arn: str, shard_id: str,
                 sequence_numbers: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.arn = arn
        self.shard_id = shard_id
        self.sequence_numbers = sequence_numbers

    def source(self, **options: Any) -> KinesisPoller | DynamoDBStreamPoller:
        options.setdefault("poll_interval", 0.05)
        if self.kind == "kinesis":
            return KinesisPoller(self.name, **options)
        return DynamoDBStreamPoller(self.arn, **options)


async def make_stream(kind: str, keys: list[str], name: str = "orders") -> Stream:
    if kind == "kinesis":
        async with clients("kinesis") as (kinesis,):
            await kinesis.create_stream(StreamName=name, ShardCount=1)
            summary = await kinesis.describe_stream_summary(StreamName=name)
            arn = summary["StreamDescriptionSummary"]["StreamARN"]
            sequence_numbers = []
            for n, key in enumerate(keys):
                put = await kinesis.put_record(
                    StreamName=name, PartitionKey=key,
                    Data=json.dumps({"n": n, "key": key}).encode())
                sequence_numbers.append(put["SequenceNumber"])
            shard_id = put["ShardId"]
        return Stream(kind, name, arn, shard_id, sequence_numbers)
    async with clients("dynamodb", "dynamodbstreams") as (ddb, streams):
        table = await ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True,
                                 "StreamViewType": "NEW_AND_OLD_IMAGES"})
        arn = table["TableDescription"]["LatestStreamArn"]
        for n, key in enumerate(keys):
            await ddb.put_item(TableName=name, Item={
                "pk": {"S": key}, "n": {"N": str(n)}, "blob": {"B": f"b{n}".encode()}})
        described = await streams.describe_stream(StreamArn=arn)
        shard_id = described["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = (await streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
        records = (await streams.get_records(ShardIterator=iterator))["Records"]
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert len(sequence_numbers) == len(keys)
    return Stream(kind, name, arn, shard_id, sequence_numbers)


def make_runner(*args: Any, **options: Any) -> Runner:
    return Runner(*args, session=session(), **options)


def number(record: Any) -> int:
    """The record's number, whatever its source."""
    if isinstance(record, KinesisRecord):
        return int(record.json()["n"])
    if isinstance(record, DynamoDBRecord):
        image = record.new_image
        assert image is not None
        return int(image["n"])
    assert isinstance(record, SQSRecord)
    return int(record.body.rsplit(":", 1)[-1])


def lambda_handler(record_handler: Callable[[Any], Awaitable[None]], *, sync: bool = False,
                   concurrency: int = 8) -> Any:
    """A Lambda handler on asyncbatch: async (awaited by the runner) or sync (run in a
    worker thread by the runner, calling ``process_partial_response``)."""
    processor = asyncbatch.AsyncBatchProcessor(concurrency=concurrency, log_summary=False)
    if sync:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return asyncbatch.process_partial_response(event, record_handler, processor,
                                                       context)
        return handler

    async def async_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return await asyncbatch.async_process_partial_response(event, record_handler,
                                                               processor, context)
    return async_handler


# -- SQS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["async-handler", "sync-handler"])
async def test_sqs_first_delivery_failures_end_processed_exactly_once(
        aws: str, sync: bool) -> None:
    url, _ = await make_queue("work")
    bodies = [f"m:{i}" for i in range(40)]
    failing = {b for b in bodies if number_of(b) % 7 == 3}
    await send(url, bodies)
    deliveries: Counter[str] = Counter()
    succeeded: list[str] = []

    async def record_handler(record: SQSRecord) -> None:
        deliveries[record.body] += 1
        assert record.receive_count == deliveries[record.body]
        if record.body in failing and deliveries[record.body] == 1:
            raise RuntimeError("fails on first delivery")
        succeeded.append(record.body)

    snapshots = []
    runner: Runner

    def on_batch(result: BatchResult) -> None:
        snapshots.append(runner.counters)

    runner = make_runner(SQSPoller(url, wait_time=1, failure_visibility_timeout=0),
                         lambda_handler(record_handler, sync=sync), on_batch=on_batch)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    assert sorted(succeeded) == sorted(bodies)  # every record succeeded exactly once
    assert {b for b, n in deliveries.items() if n == 2} == failing
    assert await queue_counts(url) == (0, 0, 0)
    assert (counters.succeeded, counters.failed, counters.redelivered) == \
        (40, len(failing), len(failing))
    assert counters.records == 40 + len(failing) and counters.dead_lettered == 0
    assert [s.batches for s in snapshots] == list(range(1, counters.batches + 1))


def number_of(body: str) -> int:
    return int(body.rsplit(":", 1)[-1])


@pytest.mark.parametrize("mode", ["redrive-policy", "runner-moves"])
async def test_sqs_poison_message_ends_in_dead_letter_queue(aws: str, mode: str) -> None:
    dlq_url, dlq_arn = await make_queue("work-dlq")
    if mode == "redrive-policy":
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        url, _ = await make_queue("work", RedrivePolicy=policy)
        source = SQSPoller(url, wait_time=1, failure_visibility_timeout=0)
    else:
        url, _ = await make_queue("work")
        source = SQSPoller(url, wait_time=1, failure_visibility_timeout=0,
                           max_receive_count=3, dead_letter_queue_url=dlq_url)
    bodies = [f"m:{i}" for i in range(12)]
    await send(url, bodies,
               attributes={"kind": {"DataType": "String", "StringValue": "order"}})
    deliveries: Counter[str] = Counter()

    async def record_handler(record: SQSRecord) -> None:
        deliveries[record.body] += 1
        if record.body == "m:5":
            raise ValueError("poison")

    runner = make_runner(source, lambda_handler(record_handler))
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    assert deliveries["m:5"] == 3
    assert all(deliveries[b] == 1 for b in bodies if b != "m:5")
    dead = await drain(dlq_url)
    assert [m["Body"] for m in dead] == ["m:5"]
    assert dead[0]["MessageAttributes"]["kind"]["StringValue"] == "order"
    assert await queue_counts(url) == (0, 0, 0)
    assert (counters.dead_lettered, counters.failed, counters.redelivered,
            counters.succeeded) == (1, 3, 2, 11)


async def test_fifo_groups_keep_order_across_redelivery(aws: str) -> None:
    url, arn = await make_queue("work.fifo", FifoQueue="true",
                                ContentBasedDeduplication="true")
    groups = ["g0", "g1", "g2", "g3"]
    bodies = [f"{g}:{j}" for j in range(6) for g in groups]  # interleaved groups
    await send(url, bodies, group=lambda body: body.split(":")[0])
    failing = {"g1:2", "g3:4"}
    deliveries: Counter[str] = Counter()
    succeeded: list[str] = []
    seen_groups: set[Optional[str]] = set()

    async def record_handler(record: SQSRecord) -> None:
        seen_groups.add(record.message_group_id)
        deliveries[record.body] += 1
        if record.body in failing and deliveries[record.body] == 1:
            raise RuntimeError("fails on first delivery")
        succeeded.append(record.body)

    body_of: dict[str, str] = {}
    inner = lambda_handler(record_handler)

    async def handler(event: dict[str, Any], context: Any) -> Any:
        body_of.update((r["messageId"], r["body"]) for r in event["Records"])
        return await inner(event, context)

    results: list[BatchResult] = []
    runner = make_runner(SQSPoller(url, wait_time=1, failure_visibility_timeout=0,
                                   max_concurrency=2),
                         handler, on_batch=results.append)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    for g in groups:  # each group: every message once, in the order sent
        assert [b for b in succeeded if b.startswith(g)] == [f"{g}:{j}" for j in range(6)]
    assert sorted(succeeded) == sorted(bodies)
    assert {b for b, n in deliveries.items() if n > 1} == failing
    assert seen_groups == set(groups)
    assert all(r.source_arn == arn for r in results)
    # in each batch, a group's reported messages are the failed one and the rest of
    # its group after it (skipped, to be redelivered in order)
    for result in results:
        reported = {body_of[i] for i in result.failed}
        for g in groups:
            mine = [body_of[i] for i in result.identifiers if body_of[i].startswith(g)]
            tail = [b for b in mine if b in reported]
            assert tail == mine[len(mine) - len(tail):]
            assert not tail or tail[0] in failing
    assert counters.failed >= len(failing) and counters.succeeded == len(bodies)
    assert await queue_counts(url) == (0, 0, 0)


@pytest.mark.parametrize("misbehaviour", [
    "raises", "unknown-identifier", "empty-identifier", "not-a-mapping", "not-json",
    "timeout"])
async def test_sqs_whole_batch_fails_when_the_invocation_fails(
        aws: str, misbehaviour: str) -> None:
    url, _ = await make_queue("work")
    await send(url, [f"m:{i}" for i in range(5)])
    calls = 0

    async def handler(event: dict[str, Any], context: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            return {"batchItemFailures": []}
        if misbehaviour == "raises":
            raise RuntimeError("the function crashed")
        if misbehaviour == "unknown-identifier":
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        if misbehaviour == "empty-identifier":
            return {"batchItemFailures": [{"itemIdentifier": ""}]}
        if misbehaviour == "not-a-mapping":
            return "ok"
        if misbehaviour == "not-json":
            return {"batchItemFailures": [], "when": object()}
        await anyio.sleep_forever()  # past the function timeout: cancelled there

    results: list[BatchResult] = []
    runner = make_runner(SQSPoller(url, wait_time=1, failure_visibility_timeout=0), handler,
                         function_timeout=0.5, on_batch=results.append)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    expected = {"raises": RuntimeError, "timeout": FunctionTimeoutError}.get(
        misbehaviour, InvalidResponseError)
    first, second = results
    assert isinstance(first.error, expected)
    assert first.failed == first.identifiers and len(first.identifiers) == 5
    assert second.error is None and sorted(second.identifiers) == sorted(first.identifiers)
    assert second.redelivered == 5
    assert (counters.errors, counters.succeeded, counters.failed) == (1, 5, 5)
    assert await queue_counts(url) == (0, 0, 0)


async def test_sqs_event_and_context_are_shaped_as_lambda_shapes_them(aws: str) -> None:
    url, arn = await make_queue("work")
    blob = b"\x00\x01binary"
    await send(url, ["m:0"], attributes={
        "color": {"DataType": "String", "StringValue": "red"},
        "blob": {"DataType": "Binary", "BinaryValue": blob}})
    seen: list[tuple[dict[str, Any], Any, int]] = []

    def handler(event: dict[str, Any], context: Any) -> None:  # sync: in a worker thread
        seen.append((json.loads(json.dumps(event)), context,
                     context.get_remaining_time_in_millis()))

    runner = make_runner(SQSPoller(url, wait_time=1), handler, function_timeout=20,
                         function_name="orders")
    with anyio.fail_after(TIMEOUT):
        await runner.run(until_empty=True)

    ((event, context, remaining),) = seen
    (record,) = event["Records"]
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes",
                           "messageAttributes", "md5OfMessageAttributes", "md5OfBody",
                           "eventSource", "eventSourceARN", "awsRegion"}
    assert record["body"] == "m:0"
    assert record["md5OfBody"] == hashlib.md5(b"m:0").hexdigest()
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
            "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["color"] == {
        "stringValue": "red", "stringListValues": [], "binaryListValues": [],
        "dataType": "String"}
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == blob
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == \
        ("aws:sqs", arn, "us-east-1")
    assert 0 < remaining <= 20_000
    assert context.function_name == "orders"
    assert context.invoked_function_arn == \
        "arn:aws:lambda:us-east-1:123456789012:function:orders"
    assert SQSRecord(record).receive_count == 1


@pytest.mark.parametrize("how", ["stop", "abort"])
async def test_sqs_stop_mid_batch_loses_nothing(aws: str, how: str) -> None:
    url, _ = await make_queue("work")
    await send(url, [f"m:{i}" for i in range(25)])
    entered = anyio.Event()
    release = anyio.Event()
    handled: list[int] = []

    async def handler(event: dict[str, Any], context: Any) -> None:
        entered.set()
        await release.wait()
        handled.extend(number_of(r["body"]) for r in event["Records"])

    stop = anyio.Event()
    runner = make_runner(SQSPoller(url, wait_time=1), handler)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: runner.run(stop=stop))
            await entered.wait()
            if how == "stop":
                stop.set()  # finish the batch in flight, take no other
                release.set()
            else:
                runner.abort()  # cancel it: its messages are handed back
    visible, in_flight, _ = await queue_counts(url)
    assert in_flight == 0
    if how == "stop":
        assert len(handled) == 10 and runner.counters.succeeded == 10
        assert visible == 15
    else:
        assert handled == [] and runner.counters.succeeded == 0
        assert visible == 25


async def test_stop_inside_a_batching_window_hands_the_messages_back(aws: str) -> None:
    url, _ = await make_queue("work")
    await send(url, [f"m:{i}" for i in range(5)])
    calls = 0

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal calls
        calls += 1

    runner = make_runner(SQSPoller(url, batch_size=50, batching_window=30, wait_time=1),
                         handler)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: runner.run())
            await wait_until(lambda: in_flight(url, 5))  # gathered, window still open
            runner.stop()
    assert calls == 0 and runner.counters.batches == 0
    assert await queue_counts(url) == (5, 0, 0)


async def test_max_batches_stops_after_that_many_invocations(aws: str) -> None:
    url, _ = await make_queue("work")
    await send(url, [f"m:{i}" for i in range(25)])
    runner = make_runner(SQSPoller(url, wait_time=1), lambda event, context: None)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(max_batches=2)
    assert (counters.batches, counters.succeeded) == (2, 20)
    assert await queue_counts(url) == (5, 0, 0)


async def test_visibility_timeout_shorter_than_the_function_timeout_is_refused(
        aws: str) -> None:
    url, _ = await make_queue("work", VisibilityTimeout="5")
    runner = make_runner(SQSPoller(url, wait_time=1), lambda event, context: None,
                         function_timeout=30)
    with pytest.raises(asyncbatch.ConfigurationError, match="visibility timeout"):
        await runner.run(until_empty=True)


# -- Kinesis and DynamoDB Streams ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "factor"), [
    ("kinesis", 1), ("kinesis", 3), ("dynamodb", 1), ("dynamodb", 2)])
async def test_stream_failing_key_resumes_at_the_lowest_reported_sequence_number(
        aws: str, kind: str, factor: int) -> None:
    keys = [f"k{n % 5}" for n in range(30)]
    stream = await make_stream(kind, keys)
    seq = stream.sequence_numbers
    failing = 7  # key k2; k2's records 2 and 7 share a batch, so the failure is partial
    deliveries: Counter[int] = Counter()
    succeeded: list[int] = []

    async def record_handler(record: Any) -> None:
        n = number(record)
        assert record.identifier == seq[n]
        deliveries[n] += 1
        if n == failing and deliveries[n] == 1:
            raise RuntimeError("fails on first delivery")
        succeeded.append(n)

    store = MemoryCheckpointStore()
    results: list[BatchResult] = []
    runner = make_runner(stream.source(batch_size=10, parallelization_factor=factor,
                                       checkpoint_store=store),
                         lambda_handler(record_handler), on_batch=results.append)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    assert set(succeeded) == set(range(30))
    firsts = list(dict.fromkeys(succeeded))  # order of each record's first success
    for key in set(keys):
        mine = [n for n in firsts if keys[n] == key]
        assert mine == sorted(mine), f"{key} out of order: {mine}"
    # the failed batch reported from the failing record on; the retry starts exactly there
    (failed,) = [r for r in results if r.failed]
    assert failed.failed[0] == seq[failing] and failed.error is None
    retry = next(r for r in results[results.index(failed) + 1:] if seq[failing] in r.identifiers)
    assert retry.identifiers[0] == seq[failing]
    # below the lowest failure nothing is redelivered
    assert all(deliveries[n] == 1 for n in range(failing))
    assert deliveries[failing] == 2
    assert store.snapshot() == {(stream.arn, stream.shard_id): seq[-1]}
    assert counters.succeeded == 30 and counters.dead_lettered == 0


@pytest.mark.parametrize("destination", ["callback", "sqs"])
async def test_stream_bisects_then_discards_to_the_on_failure_destination(
        aws: str, destination: str) -> None:
    stream = await make_stream("kinesis", [f"k{n}" for n in range(8)])
    seq = stream.sequence_numbers
    number_at = {s: n for n, s in enumerate(seq)}
    poison = 4
    documents: list[dict[str, Any]] = []

    async def collect(document: dict[str, Any]) -> None:
        documents.append(document)

    target: Any = collect
    if destination == "sqs":
        target, _ = await make_queue("stream-failures")

    def handler(event: dict[str, Any], context: Any) -> None:  # no partial response
        numbers = [json.loads(base64.b64decode(r["kinesis"]["data"]))["n"]
                   for r in event["Records"]]
        if poison in numbers:
            raise RuntimeError("poison in the batch")

    batches: list[list[int]] = []
    runner = make_runner(stream.source(batch_size=8, bisect_on_error=True, max_retry_attempts=1,
                                       on_failure=target),
                         handler,
                         on_batch=lambda r: batches.append([number_at[i] for i in r.identifiers]))
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)

    assert batches == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [4],
                       [5], [6, 7]]
    if destination == "sqs":
        documents = [json.loads(m["Body"]) for m in await drain(target)]
    (document,) = documents
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 2
    assert document["responseContext"]["functionError"] == "Unhandled"
    info = document["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"],
            info["batchSize"], info["streamArn"]) == \
        (stream.shard_id, seq[poison], seq[poison], 1, stream.arn)
    assert (counters.succeeded, counters.dead_lettered, counters.errors) == (7, 1, 5)


@pytest.mark.parametrize("how", ["stop", "abort"])
async def test_stream_consumer_restarted_with_dynamodb_checkpoints_loses_nothing(
        aws: str, how: str) -> None:
    stream = await make_stream("kinesis", [f"k{n % 4}" for n in range(30)])
    seq = stream.sequence_numbers
    first_store = DynamoDBCheckpointStore("checkpoints", consumer="orders-app", session=session())
    await first_store.create_table()
    entered = anyio.Event()
    release = anyio.Event()
    handled: list[int] = []
    calls = 0

    def numbers(event: dict[str, Any]) -> list[int]:
        return [json.loads(base64.b64decode(r["kinesis"]["data"]))["n"]
                for r in event["Records"]]

    async def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second batch is in flight when the consumer is stopped
            entered.set()
            await release.wait()
        handled.extend(numbers(event))

    first = make_runner(stream.source(batch_size=10, checkpoint_store=first_store), handler)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: first.run())
            await entered.wait()
            if how == "stop":
                first.stop()
                release.set()
            else:
                first.abort()
    acknowledged = 20 if how == "stop" else 10
    assert handled == list(range(acknowledged))
    assert await first_store.load(stream.arn, stream.shard_id) == seq[acknowledged - 1]
    await first_store.aclose()

    # A new consumer, a new store object on the same table: it resumes after the checkpoint.
    second_store = DynamoDBCheckpointStore("checkpoints", consumer="orders-app", session=session())
    resumed: list[int] = []

    async def second_handler(event: dict[str, Any], context: Any) -> None:
        resumed.extend(numbers(event))

    second = make_runner(stream.source(batch_size=10, checkpoint_store=second_store),
                         second_handler)
    with anyio.fail_after(TIMEOUT):
        await second.run(until_empty=True)
    assert resumed == list(range(acknowledged, 30))
    assert await second_store.load(stream.arn, stream.shard_id) == seq[-1]
    await second_store.aclose()


async def test_stream_redelivery_is_a_fresh_event(aws: str) -> None:
    stream = await make_stream("kinesis", ["k0", "k1"])
    payloads: list[list[int]] = []

    async def handler(event: dict[str, Any], context: Any) -> None:
        payloads.append([json.loads(base64.b64decode(r["kinesis"]["data"]))["n"]
                         for r in event["Records"]])
        if len(payloads) == 1:
            for r in event["Records"]:  # a handler that changes its event, then fails
                r["kinesis"]["data"] = base64.b64encode(b'{"n": -1}').decode()
            raise RuntimeError("failed after changing the event")

    runner = make_runner(stream.source(batch_size=10), handler)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)
    assert payloads == [[0, 1], [0, 1]]
    assert (counters.errors, counters.redelivered, counters.succeeded) == (1, 2, 2)


async def test_kinesis_resharded_stream_is_read_parents_first(aws: str) -> None:
    async with clients("kinesis") as (kinesis,):
        await kinesis.create_stream(StreamName="resharded", ShardCount=1)
        for n in range(10):
            await kinesis.put_record(StreamName="resharded", PartitionKey=f"k{n % 3}",
                                     Data=json.dumps({"n": n}).encode())
        await kinesis.update_shard_count(StreamName="resharded", TargetShardCount=2,
                                         ScalingType="UNIFORM_SCALING")
        for n in range(10, 20):
            await kinesis.put_record(StreamName="resharded", PartitionKey=f"k{n % 3}",
                                     Data=json.dumps({"n": n}).encode())
        shards = (await kinesis.list_shards(StreamName="resharded"))["Shards"]
    assert len(shards) == 3 and sum(1 for s in shards if "ParentShardId" in s) == 2
    seen: list[tuple[str, int]] = []

    async def handler(event: dict[str, Any], context: Any) -> None:
        for r in event["Records"]:
            seen.append((r["eventID"].split(":")[0],
                         json.loads(base64.b64decode(r["kinesis"]["data"]))["n"]))

    runner = make_runner(KinesisPoller("resharded", poll_interval=0.05), handler)
    with anyio.fail_after(TIMEOUT):
        counters = await runner.run(until_empty=True)
    assert sorted(n for _, n in seen) == list(range(20))  # each record once
    parent = shards[0]["ShardId"]
    order = [shard for shard, _ in seen]
    assert parent not in order[order.index(parent) + order.count(parent):]  # parent first
    assert counters.succeeded == 20


@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
async def test_stream_events_are_shaped_as_lambda_shapes_them(aws: str, kind: str) -> None:
    stream = await make_stream(kind, ["k0", "k1"])
    events: list[dict[str, Any]] = []

    async def handler(event: dict[str, Any], context: Any) -> None:
        events.append(json.loads(json.dumps(event)))

    runner = make_runner(stream.source(batch_size=10), handler)
    with anyio.fail_after(TIMEOUT):
        await runner.run(until_empty=True)

    (event,) = events
    first, second = event["Records"]
    assert first["eventSourceARN"] == stream.arn and first["awsRegion"] == "us-east-1"
    if kind == "kinesis":
        assert set(first) == {"kinesis", "eventSource", "eventVersion", "eventID",
                              "eventName", "invokeIdentityArn", "awsRegion",
                              "eventSourceARN"}
        assert set(first["kinesis"]) == {"kinesisSchemaVersion", "partitionKey",
                                         "sequenceNumber", "data",
                                         "approximateArrivalTimestamp"}
        assert first["eventSource"] == "aws:kinesis"
        assert first["eventID"] == f"{stream.shard_id}:{stream.sequence_numbers[0]}"
        assert abs(first["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 600
        view = KinesisRecord(second)
        assert (view.json(), view.partition_key, view.sequence_number) == \
            ({"n": 1, "key": "k1"}, "k1", stream.sequence_numbers[1])
    else:
        assert first["eventSource"] == "aws:dynamodb" and first["eventName"] == "INSERT"
        assert {"Keys", "NewImage", "SequenceNumber", "SizeBytes", "StreamViewType",
                "ApproximateCreationDateTime"} <= set(first["dynamodb"])
        assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
        item = DynamoDBRecord(second)
        assert item.keys == {"pk": "k1"}
        assert item.new_image == {"pk": "k1", "n": Decimal(1), "blob": b"b1"}
        assert item.sequence_number == stream.sequence_numbers[1]


async def test_dynamodb_checkpoint_store_never_moves_back(aws: str) -> None:
    store = DynamoDBCheckpointStore("checkpoints", session=session())
    async with store:
        await store.create_table()
        await store.create_table()  # idempotent
        assert await store.load("arn", "shard") is None
        await store.save("arn", "shard", "9")
        await store.save("arn", "shard", "10")  # longer, so greater: not compared as text
        await store.save("arn", "shard", "8")   # a stale consumer: ignored
        assert await store.load("arn", "shard") == "10"
        other = DynamoDBCheckpointStore("checkpoints", consumer="other", session=session())
        async with other:
            assert await other.load("arn", "shard") is None


# -- the response contract, the CLI, imports ---------------------------------------------------


@pytest.mark.parametrize(("response", "reported"), [
    (None, []), ({}, []), ({"batchItemFailures": None}, []), ({"batchItemFailures": []}, []),
    ({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["b"]),
    ({"statusCode": 200}, []),
])
def test_valid_responses(response: Any, reported: list[str]) -> None:
    assert parse_response(response, ["a", "b"]) == reported


@pytest.mark.parametrize("response", [
    "ok", [], {"batchItemFailures": {}}, {"batchItemFailures": [{"id": "a"}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": "z"}]},
    {"batchItemFailures": [], "x": {1, 2}},
])
def test_invalid_responses_fail_the_whole_batch(response: Any) -> None:
    with pytest.raises(InvalidResponseError):
        parse_response(response, ["a", "b"])


@pytest.mark.parametrize(("make", "match"), [
    (lambda: SQSPoller("u", batch_size=11), "batching_window"),
    (lambda: SQSPoller("u", wait_time=21), "0..20"),
    (lambda: SQSPoller("u", max_receive_count=0), "max_receive_count"),
    (lambda: KinesisPoller("s", parallelization_factor=11), "at most 10"),
    (lambda: KinesisPoller("s", starting_position="AT_TIMESTAMP"), "TRIM_HORIZON"),
    (lambda: DynamoDBStreamPoller("t", max_retry_attempts=-2), "max_retry_attempts"),
    (lambda: Runner(SQSPoller("u"), "not callable"), "not callable"),  # type: ignore[arg-type]
])
def test_misconfiguration_says_how_to_fix_it(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match=match):
        make()


HANDLER_MODULE = '''
import asyncbatch, json, os, time
from pathlib import Path

processor = asyncbatch.AsyncBatchProcessor(concurrency=4, log_summary=False)
seen = set()

async def record_handler(record):
    if record.identifier not in seen and record.body.endswith("3"):
        seen.add(record.identifier)
        raise RuntimeError("first delivery fails")

def handler(event, context):
    return asyncbatch.process_partial_response(event, record_handler, processor, context)

def blocking_handler(event, context):
    # Says it has the batch, then waits until the test lets it finish.
    Path(os.environ["ENTERED"]).touch()
    deadline = time.monotonic() + 30
    while not Path(os.environ["RELEASE"]).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
'''


def _queue_sync(name: str, bodies: list[str]) -> str:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    sqs = boto3.client("sqs")
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return url


def _counts_sync(url: str) -> tuple[int, int]:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    found = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(found["ApproximateNumberOfMessages"]), \
        int(found["ApproximateNumberOfMessagesNotVisible"])


def test_cli_run_sqs_until_empty(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbatch.cli import main

    (tmp_path / "app_handlers.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = _queue_sync("cli", [f"m:{i}" for i in range(20)])
    code = main(["run", "--sqs", url, "--handler", "app_handlers:handler",
                 "--endpoint-url", aws, "--wait-time", "1",
                 "--failure-visibility-timeout", "0", "--until-empty", "-v"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == ("stopped: batches=3 records=22 succeeded=20 failed=2 "
                                    "redelivered=2 dead-lettered=0 errors=0")
    assert "batch of 10 from queue: 9 ok, 1 failed" in out
    assert _counts_sync(url) == (0, 0)


def test_cli_rejects_options_of_another_source(aws: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbatch.cli import main

    code = main(["run", "--kinesis", "s", "--handler", "json:dumps", "--max-receive-count", "3"])
    assert code == 2
    assert "--max-receive-count: for SQS only" in capsys.readouterr().err


def test_cli_sigterm_finishes_the_batch_in_flight(aws: str, tmp_path: Path) -> None:
    (tmp_path / "app_handlers.py").write_text(HANDLER_MODULE)
    url = _queue_sync("cli-signal", [f"m:{i}" for i in range(25)])
    entered, release = tmp_path / "entered", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ENTERED": str(entered),
           "RELEASE": str(release)}
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncbatch", "run", "--sqs", url, "--handler",
         "app_handlers:blocking_handler", "--endpoint-url", aws, "--wait-time", "1", "-q"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not entered.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the handler never got a batch"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        release.touch()
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("stopped: batches=1 records=10 succeeded=10")
    assert _counts_sync(url) == (15, 0)


def test_import_asyncbatch_does_not_import_aws_sdks() -> None:
    code = ("import sys, asyncbatch, asyncbatch.cli.run; "
            "print([m for m in ('aioboto3', 'boto3', 'botocore', 'aiobotocore') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_redelivery_example_runs() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "redelivery" / "run.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "every order but 13 charged exactly once, 13 dead-lettered"
    assert "in the dead-letter queue: [13]" in lines


def test_runner_all_matches_its_exports() -> None:
    import types

    import asyncbatch.runner as runner_module

    public = {name for name, value in vars(runner_module).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(runner_module.__all__)
