"""The SQS dead-letter sink against a real moto server over HTTP (asyncio: aioboto3).

No fake of AWS: where a test needs to count ``SendMessageBatch`` calls or make SQS
refuse one entry, it wraps the real client's method and still calls it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional

import anyio
import pytest

import asyncbatch
from asyncbatch import AsyncBatchProcessor, Failure, SinkError, TransientError
from asyncbatch.aws.sqs import SQSDeadLetterSink, SQSSinkError

pytestmark = pytest.mark.anyio

ACCOUNT = "123456789012"
SOURCE_ARNS = {
    "SQS": f"arn:aws:sqs:us-east-1:{ACCOUNT}:source",
    "SQS FIFO": f"arn:aws:sqs:us-east-1:{ACCOUNT}:source.fifo",
    "KinesisDataStreams": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/source",
    "DynamoDBStreams": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/2026-01-01T00:00:00",
}


@pytest.fixture
def anyio_backend() -> str:
    """aioboto3 runs on asyncio only."""
    return "asyncio"


class Poison(Exception):
    """A permanent failure (not transient): the default sink policy sinks it."""


# -- events ------------------------------------------------------------------------------


def sqs_record(i: int, group: Optional[str] = None, body: Optional[str] = None) -> dict[str, Any]:
    arn = SOURCE_ARNS["SQS FIFO" if group is not None else "SQS"]
    attributes: dict[str, Any] = {"ApproximateReceiveCount": "1"}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {
        "messageId": f"msg-{i}", "receiptHandle": f"rh-{i}",
        "body": json.dumps({"n": i}) if body is None else body,
        "attributes": attributes, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1",
    }


def kinesis_record(i: int, key: str) -> dict[str, Any]:
    seq = str(49590338271490256608559692538361571095921575989136588898 + i)
    return {
        "eventSource": "aws:kinesis", "eventSourceARN": SOURCE_ARNS["KinesisDataStreams"],
        "eventID": f"shardId-000000000006:{seq}", "eventName": "aws:kinesis:record",
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key,
                    "sequenceNumber": seq,
                    "data": base64.b64encode(json.dumps({"n": i}).encode()).decode()},
    }


def dynamodb_record(i: int, key: str) -> dict[str, Any]:
    return {
        "eventSource": "aws:dynamodb", "eventSourceARN": SOURCE_ARNS["DynamoDBStreams"],
        "eventName": "INSERT", "eventID": f"ev-{i}",
        "dynamodb": {"SequenceNumber": str(111000000000000000000 + i),
                     "Keys": {"pk": {"S": key}},
                     "NewImage": {"pk": {"S": key}, "n": {"N": str(i)}}},
    }


def make_event(source: str, count: int, keys: int = 2) -> dict[str, Any]:
    """``count`` records of ``source``; ordered sources spread over ``keys`` keys."""
    if source == "SQS":
        records = [sqs_record(i) for i in range(count)]
    elif source == "SQS FIFO":
        records = [sqs_record(i, group=f"group-{i % keys}") for i in range(count)]
    elif source == "KinesisDataStreams":
        records = [kinesis_record(i, f"user-{i % keys}") for i in range(count)]
    else:
        records = [dynamodb_record(i, f"item-{i % keys}") for i in range(count)]
    return {"Records": records}


def identifier(raw: dict[str, Any]) -> str:
    if "messageId" in raw:
        return str(raw["messageId"])
    if "kinesis" in raw:
        return str(raw["kinesis"]["sequenceNumber"])
    return str(raw["dynamodb"]["SequenceNumber"])


def poisoning(poison: set[str]) -> Callable[[Any], Awaitable[None]]:
    async def handle(record: Any) -> None:
        if record.identifier in poison:
            raise Poison(f"cannot process {record.identifier}")

    return handle


# -- SQS helpers -------------------------------------------------------------------------


@pytest.fixture
async def sqs(aws: str) -> AsyncIterator[Any]:
    """A real aioboto3 SQS client on the moto server."""
    import aioboto3

    async with aioboto3.Session().client("sqs") as client:
        yield client


async def make_queue(sqs: Any, name: str) -> str:
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    response = await sqs.create_queue(QueueName=name, Attributes=attributes)
    return str(response["QueueUrl"])


async def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of the queue (received and deleted)."""
    messages: list[dict[str, Any]] = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
            MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
        batch = response.get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        await sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])


def record_batches(
    sqs: Any, monkeypatch: pytest.MonkeyPatch, refuse: Optional[set[str]] = None
) -> list[list[dict[str, Any]]]:
    """Wrap the real client's ``send_message_batch``: record each call's entries, and
    (``refuse``) take the entries of those record identifiers out of the real call and
    report them in ``Failed``, as SQS does for an entry it rejects."""
    calls: list[list[dict[str, Any]]] = []
    real = sqs.send_message_batch

    async def send_message_batch(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        calls.append(entries)
        refused = [e for e in entries
                   if json.loads(e["MessageBody"])["identifier"] in (refuse or set())]
        kept = [e for e in entries if e not in refused]
        response = await real(**{**kwargs, "Entries": kept}) if kept else {"Successful": []}
        response["Failed"] = [*response.get("Failed", []), *(
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
             "Message": "injected per-entry failure"} for e in refused)]
        return response

    monkeypatch.setattr(sqs, "send_message_batch", send_message_batch)
    return calls


# -- poison pills end in the DLQ ---------------------------------------------------------


@pytest.mark.parametrize("source", ["SQS", "SQS FIFO", "KinesisDataStreams", "DynamoDBStreams"])
async def test_poison_records_land_in_the_dlq_with_record_and_error(
    sqs: Any, source: str
) -> None:
    dlq = await make_queue(sqs, "dlq")
    event = make_event(source, 6)
    poison = {identifier(event["Records"][i]) for i in (1, 4)}
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))

    report = await processor.process(event, poisoning(poison))

    assert report.response() == {"batchItemFailures": []}
    assert {o.identifier for o in report.sunk} == poison
    assert all(isinstance(o.exception, Poison) and o.sunk for o in report.sunk)
    assert len(report.succeeded) == 6
    assert not report.failed
    assert not report.skipped
    messages = await drain(sqs, dlq)
    bodies = {json.loads(m["Body"])["identifier"]: (json.loads(m["Body"]), m) for m in messages}
    assert set(bodies) == poison
    assert len(messages) == 2
    type_name = f"{Poison.__module__}.{Poison.__qualname__}"
    for raw in event["Records"]:
        ident = identifier(raw)
        if ident not in poison:
            continue
        body, message = bodies[ident]
        assert body["record"] == raw
        assert body["eventType"] == report.event_type.value
        assert body["eventSourceARN"] == raw["eventSourceARN"]
        assert body["attempts"] == 1
        assert body["error"]["type"] == type_name
        assert body["error"]["message"] == f"cannot process {ident}"
        assert body["error"]["truncated"] is False
        assert "Poison: cannot process" in body["error"]["traceback"]
        attributes = message["MessageAttributes"]
        assert attributes["ErrorType"]["StringValue"] == type_name
        assert attributes["EventType"]["StringValue"] == report.event_type.value
        assert attributes["Attempts"] == {"DataType": "Number", "StringValue": "1"}


async def test_a_batch_of_only_poison_pills_is_handled_not_a_failed_batch(sqs: Any) -> None:
    dlq = await make_queue(sqs, "dlq")
    event = make_event("SQS", 3)
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))

    response = await asyncbatch.async_process_partial_response(
        event, poisoning({"msg-0", "msg-1", "msg-2"}), processor)

    assert response == {"batchItemFailures": []}
    assert len(await drain(sqs, dlq)) == 3


@pytest.mark.parametrize("retry", [None, asyncbatch.Retry(attempts=2, base=0.0)],
                         ids=["no-retry", "retry"])
async def test_transient_failures_are_not_sunk(
    sqs: Any, retry: Optional[asyncbatch.Retry]
) -> None:
    dlq = await make_queue(sqs, "dlq")
    processor = AsyncBatchProcessor(retry=retry, sink=SQSDeadLetterSink(dlq, client=sqs))

    async def handle(record: asyncbatch.SQSRecord) -> None:
        if record.identifier == "msg-1":
            raise TransientError("throttled")
        if record.identifier == "msg-2":
            raise Poison("bad payload")

    report = await processor.process(make_event("SQS", 3), handle)

    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    (failed,) = report.failed
    assert isinstance(failed.exception, TransientError)
    assert failed.attempts == (1 if retry is None else 2)
    assert [o.identifier for o in report.sunk] == ["msg-2"]
    assert [json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq)] == ["msg-2"]


# -- a sink that refuses -----------------------------------------------------------------


async def test_a_missing_queue_refuses_every_record_of_its_batch(
    sqs: Any, aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"{aws}/{ACCOUNT}/no-such-queue"
    calls = record_batches(sqs, monkeypatch)
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(missing, client=sqs))
    poison = {"msg-0", "msg-2", "msg-3"}

    report = await processor.process(make_event("SQS", 4), poisoning(poison))

    assert [len(entries) for entries in calls] == [3]  # one call, every caller refused
    assert report.response() == {"batchItemFailures": [
        {"itemIdentifier": i} for i in ("msg-0", "msg-2", "msg-3")]}
    assert not report.sunk
    for outcome in report.failed:
        error = outcome.exception
        assert isinstance(error, SinkError)
        assert isinstance(error.original, Poison)
        assert isinstance(error.__cause__, SQSSinkError)
        assert error.__cause__.code == "AWS.SimpleQueueService.NonExistentQueue"
        assert error.__cause__.identifier == outcome.identifier
        assert "no-such-queue" in str(error.__cause__)


async def test_a_failed_entry_refuses_only_its_own_record(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = await make_queue(sqs, "dlq")
    calls = record_batches(sqs, monkeypatch, refuse={"msg-2"})
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))

    report = await processor.process(
        make_event("SQS", 5), poisoning({"msg-1", "msg-2", "msg-3"}))

    assert [len(entries) for entries in calls] == [3]
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
    (failed,) = report.failed
    assert isinstance(failed.exception, SinkError)
    cause = failed.exception.__cause__
    assert isinstance(cause, SQSSinkError)
    assert (cause.code, cause.sender_fault) == ("InternalError", False)
    assert "injected per-entry failure" in str(cause)
    assert sorted(o.identifier for o in report.sunk) == ["msg-1", "msg-3"]
    delivered = sorted(json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq))
    assert delivered == ["msg-1", "msg-3"]


# -- batching ----------------------------------------------------------------------------


@pytest.mark.parametrize(("max_batch", "most_calls"), [(10, 3), (4, 7)])
async def test_concurrent_failures_are_coalesced_into_few_batch_calls(
    sqs: Any, monkeypatch: pytest.MonkeyPatch, max_batch: int, most_calls: int
) -> None:
    dlq = await make_queue(sqs, "dlq")
    calls = record_batches(sqs, monkeypatch)
    sink = SQSDeadLetterSink(dlq, client=sqs, max_batch=max_batch)
    processor = AsyncBatchProcessor(concurrency=32, sink=sink)
    event = make_event("SQS", 25)

    report = await processor.process(event, poisoning({f"msg-{i}" for i in range(25)}))

    assert len(report.sunk) == 25
    assert report.response() == {"batchItemFailures": []}
    assert len(calls) <= most_calls
    assert all(1 <= len(entries) <= max_batch for entries in calls)
    for entries in calls:  # ids unique within each call
        assert len({e["Id"] for e in entries}) == len(entries)
    sent = [json.loads(e["MessageBody"])["identifier"] for entries in calls for e in entries]
    assert sorted(sent) == sorted(f"msg-{i}" for i in range(25))
    delivered = [json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq)]
    assert sorted(delivered) == sorted(sent)


async def test_a_cancelled_leader_refuses_its_batch_and_frees_the_others(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = await make_queue(sqs, "dlq")
    calls = record_batches(sqs, monkeypatch)
    sink = SQSDeadLetterSink(dlq, client=sqs, linger=3600)  # the leader waits for a full batch

    def failure(i: int) -> Failure:
        raw = sqs_record(i)
        return Failure(asyncbatch.SQSRecord(raw), raw["messageId"], Poison("x"), 1, "SQS",
                       raw["eventSourceARN"])

    outcomes: dict[int, BaseException] = {}

    async def follow(i: int) -> None:
        try:
            await sink(failure(i))
        except SQSSinkError as exc:
            outcomes[i] = exc

    leader_scope = anyio.CancelScope()

    async def lead() -> None:
        with leader_scope:
            await sink(failure(0))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lead)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(follow, 1)
            tg.start_soon(follow, 2)
            await anyio.wait_all_tasks_blocked()
            leader_scope.cancel()

    assert leader_scope.cancelled_caught
    assert sorted(outcomes) == [1, 2]
    assert all("was cancelled" in str(exc) for exc in outcomes.values())
    assert calls == []
    # The sink is usable again: the next caller leads a new batch.
    sink.linger = 0.0
    await sink(failure(3))
    assert [json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq)] == ["msg-3"]


# -- FIFO --------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return "sha256-" + hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("source", "keys", "expected_groups"), [
    ("SQS FIFO", ["group-0", "group-1"], ["group-0", "group-1"]),
    ("KinesisDataStreams", ["user-0", "user 1 ü"], ["user-0", _sha("user 1 ü")]),
    ("DynamoDBStreams", ["item-0", "item-1"], ["pk=S:item-0", "pk=S:item-1"]),
    ("SQS", [], None),  # no ordering key: each message its own group
])
async def test_a_fifo_dlq_gets_group_and_deduplication_ids(
    sqs: Any, source: str, keys: list[str], expected_groups: Optional[list[str]]
) -> None:
    dlq = await make_queue(sqs, "dlq.fifo")
    event = make_event(source, 4)
    for n, raw in enumerate(event["Records"]):  # put the chosen keys on the records
        if source == "KinesisDataStreams":
            raw["kinesis"]["partitionKey"] = keys[n % 2]
        elif source == "DynamoDBStreams":
            raw["dynamodb"]["Keys"] = {"pk": {"S": keys[n % 2]}}
    poison = {identifier(raw) for raw in event["Records"]}
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))

    report = await processor.process(event, poisoning(poison))

    assert len(report.sunk) == 4
    messages = await drain(sqs, dlq)
    by_id = {json.loads(m["Body"])["identifier"]: m["Attributes"] for m in messages}
    assert set(by_id) == poison
    for n, raw in enumerate(event["Records"]):
        ident = identifier(raw)
        group = ident if expected_groups is None else expected_groups[n % 2]
        assert by_id[ident]["MessageGroupId"] == group
        assert by_id[ident]["MessageDeduplicationId"] == ident


@pytest.mark.parametrize("dlq_name", ["dlq", None], ids=["accepting-sink", "refusing-sink"])
async def test_a_sunk_record_lets_its_fifo_group_go_on(
    sqs: Any, aws: str, dlq_name: Optional[str]
) -> None:
    url = await make_queue(sqs, dlq_name) if dlq_name else f"{aws}/{ACCOUNT}/missing"
    event = {"Records": [sqs_record(0, "g1"), sqs_record(1, "g1"), sqs_record(2, "g2"),
                         sqs_record(3, "g1"), sqs_record(4, "g2")]}
    seen: list[str] = []

    async def handle(record: asyncbatch.SQSRecord) -> None:
        seen.append(record.identifier)
        if record.identifier == "msg-1":
            raise Poison("poison in g1")

    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(url, client=sqs))
    report = await processor.process(event, handle)

    g1 = [i for i in seen if i in ("msg-0", "msg-1", "msg-3")]
    if dlq_name:
        assert g1 == ["msg-0", "msg-1", "msg-3"]  # the group went on, in order
        assert report.response() == {"batchItemFailures": []}
        assert [o.identifier for o in report.sunk] == ["msg-1"]
    else:
        assert g1 == ["msg-0", "msg-1"]  # refused: the rest of g1 is skipped
        assert report.response() == {"batchItemFailures": [
            {"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-3"}]}
        (skipped,) = report.skipped
        assert isinstance(skipped.exception, asyncbatch.RecordSkippedError)
        assert skipped.exception.reason == "group_failed"
    assert [i for i in seen if i in ("msg-2", "msg-4")] == ["msg-2", "msg-4"]


# -- size --------------------------------------------------------------------------------


async def test_a_huge_error_message_is_bounded_and_says_so(sqs: Any) -> None:
    """The message is asyncbatch's bounded text of the exception: the first 2,000
    characters and how many were left out; the traceback stays."""
    dlq = await make_queue(sqs, "dlq")
    huge = "é" * 200_000  # 400,000 bytes of UTF-8

    async def handle(record: asyncbatch.SQSRecord) -> None:
        raise Poison(huge)

    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))
    report = await processor.process(make_event("SQS", 1), handle)

    assert len(report.sunk) == 1
    (message,) = await drain(sqs, dlq)
    error = json.loads(message["Body"])["error"]
    assert error["message"] == "é" * 2000 + "... (198000 more characters)"
    assert error["truncated"] is False
    assert "Poison: éé" in error["traceback"] and len(error["traceback"]) < 25_000


async def test_an_error_that_does_not_fit_beside_its_record_is_truncated_and_says_so(
        sqs: Any) -> None:
    dlq = await make_queue(sqs, "dlq")
    record = sqs_record(0, body="b" * (256 * 1024 - 2500))  # room for ~1,700 bytes of error

    async def handle(record: asyncbatch.SQSRecord) -> None:
        raise Poison("é" * 3000)

    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))
    report = await processor.process({"Records": [record]}, handle)

    assert len(report.sunk) == 1
    (message,) = await drain(sqs, dlq)
    assert len(message["Body"].encode()) <= 256 * 1024
    body = json.loads(message["Body"])
    error = body["error"]
    text = "é" * 2000 + "... (1000 more characters)"  # what the formatter gives
    assert error["truncated"] is True
    assert error["traceback"] is None
    assert error["messageLength"] == len(text)
    assert 0 < len(error["message"]) < 2000
    assert text.startswith(error["message"])
    assert len(message["Body"].encode()) > 255 * 1024  # kept as much as fits
    assert body["record"] == record


async def test_a_record_too_large_for_sqs_is_refused_not_cut(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = await make_queue(sqs, "dlq")
    calls = record_batches(sqs, monkeypatch)
    event = {"Records": [sqs_record(0, body="x" * 300_000), sqs_record(1)]}
    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs))

    report = await processor.process(event, poisoning({"msg-0", "msg-1"}))

    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    error = report.failed[0].exception
    assert isinstance(error, SinkError)
    assert isinstance(error.__cause__, SQSSinkError)
    assert error.__cause__.code == "MessageTooLarge"
    assert "does not fit in 262144 bytes" in str(error.__cause__)
    assert [json.loads(e["MessageBody"])["identifier"] for c in calls for e in c] == ["msg-1"]
    assert [json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq)] == ["msg-1"]


async def test_oversize_omit_record_sends_the_error_without_the_record(sqs: Any) -> None:
    dlq = await make_queue(sqs, "dlq")
    event = {"Records": [sqs_record(0, body="x" * 300_000)]}
    sink = SQSDeadLetterSink(dlq, client=sqs, oversize="omit_record")

    report = await AsyncBatchProcessor(sink=sink).process(event, poisoning({"msg-0"}))

    assert [o.identifier for o in report.sunk] == ["msg-0"]
    (message,) = await drain(sqs, dlq)
    body = json.loads(message["Body"])
    assert body["record"] is None
    assert body["recordOmitted"]["bytes"] > 300_000
    assert body["identifier"] == "msg-0"
    assert body["error"]["message"] == "cannot process msg-0"
    assert body["error"]["truncated"] is False


# -- owning a client ---------------------------------------------------------------------


async def test_open_owns_its_client_for_the_block(sqs: Any) -> None:
    dlq = await make_queue(sqs, "dlq")
    event = make_event("SQS", 2)
    handle = poisoning({"msg-1"})

    async with SQSDeadLetterSink.open(dlq) as sink:
        report = await AsyncBatchProcessor(sink=sink).process(event, handle)
        assert [o.identifier for o in report.sunk] == ["msg-1"]
    assert [json.loads(m["Body"])["identifier"] for m in await drain(sqs, dlq)] == ["msg-1"]

    # Closed now: the sink refuses, so the record is reported, not lost.
    report = await AsyncBatchProcessor(sink=sink).process(event, handle)
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    cause = report.failed[0].exception.__cause__
    assert isinstance(cause, SQSSinkError)
    assert "is not open" in str(cause)


async def test_a_sink_entered_twice_stays_open_until_the_last_exit(sqs: Any) -> None:
    dlq = await make_queue(sqs, "dlq")
    sink = SQSDeadLetterSink(dlq)
    processor = AsyncBatchProcessor(sink=sink)
    async with sink:
        async with sink:
            pass
        report = await processor.process(make_event("SQS", 1), poisoning({"msg-0"}))
        assert [o.identifier for o in report.sunk] == ["msg-0"]
    report = await processor.process(make_event("SQS", 1), poisoning({"msg-0"}))
    assert not report.sunk
    assert len(report.failed) == 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_sink_says_it_needs_asyncio(aws: str) -> None:
    with pytest.raises(SQSSinkError, match="needs asyncio"):
        async with SQSDeadLetterSink.open(f"{aws}/{ACCOUNT}/dlq"):
            pass


@pytest.mark.parametrize(("options", "match"), [
    ({"max_batch": 11}, "max_batch=11"),
    ({"max_batch": 0}, "max_batch=0"),
    ({"max_batch": True}, "max_batch=True"),
    ({"linger": -1}, "linger=-1"),
    ({"max_message_bytes": 2_000_000}, "max_message_bytes=2000000"),
    ({"oversize": "truncate"}, "oversize='truncate'"),
    ({"client": object(), "endpoint_url": "http://x"}, "not both"),
])
def test_bad_sink_options_are_configuration_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match=match):
        SQSDeadLetterSink("https://sqs.us-east-1.amazonaws.com/123456789012/dlq", **options)
