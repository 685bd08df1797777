"""What a record handler may be: sync or async, taking the context by name or position,
getting a payload model or a model of the whole record; and what it returns is kept."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field, Json, field_validator

import asyncbatch
from asyncbatch import testing

pytestmark = pytest.mark.anyio


# -- sync handlers -------------------------------------------------------------------------

async def test_a_sync_handler_runs_on_worker_threads_and_its_results_are_kept() -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def handle(record: asyncbatch.SQSRecord) -> int:
        threads.add(threading.get_ident())
        value = int(record.body)
        if value == 3:
            raise ValueError("three")
        return value * 10

    event = testing.sqs_event(*map(str, range(6)))
    report = await asyncbatch.AsyncBatchProcessor(concurrency=4).process(event, handle)
    assert loop_thread not in threads
    assert report.response() == {"batchItemFailures": [
        {"itemIdentifier": event["Records"][3]["messageId"]}]}
    assert report.results() == [0, 10, 20, None, 40, 50]
    assert [o.result for o in report.succeeded] == [0, 10, 20, 40, 50]
    assert isinstance(report.failed[0].exception, ValueError)


@pytest.mark.parametrize("concurrency", [3, 48])
async def test_sync_handlers_reach_the_concurrency_and_never_exceed_it(concurrency: int) -> None:
    """Handlers meet at a barrier of ``concurrency`` parties: the batch finishes only if
    that many run at once (48 is above anyio's default thread limiter of 40), and a
    counter shows that no more ever do."""
    barrier = threading.Barrier(concurrency, timeout=60)
    lock = threading.Lock()
    running = most = 0

    def handle(record: asyncbatch.SQSRecord) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        barrier.wait()
        with lock:
            running -= 1

    event = testing.sqs_event(*map(str, range(concurrency * 2)))
    report = await asyncbatch.AsyncBatchProcessor(concurrency=concurrency).process(event, handle)
    assert report.counts["succeeded"] == concurrency * 2
    assert most == concurrency


async def test_a_lambda_around_an_async_function_is_awaited() -> None:
    async def double(record: asyncbatch.SQSRecord) -> int:
        await anyio.lowlevel.checkpoint()
        return int(record.body) * 2

    report = await asyncbatch.AsyncBatchProcessor().process(
        testing.sqs_event("1", "2"), lambda record: double(record))
    assert report.results() == [2, 4]


def _sync_gen(record: Any) -> Iterator[None]:
    yield None


async def _async_gen(record: Any) -> AsyncIterator[None]:
    yield None


@pytest.mark.parametrize(("handler", "kind"), [(_sync_gen, "a generator function"),
                                               (_async_gen, "an async generator function")])
async def test_a_generator_function_is_refused_with_the_fix(handler: Any, kind: str) -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match=f"is {kind} .*it yields.*'async def"):
        await asyncbatch.AsyncBatchProcessor().process(testing.sqs_event("a"), handler)


def test_a_sync_handler_past_its_timeout_fails_on_time() -> None:
    """The thread cannot be interrupted: the call returns at the timeout (on trio's
    virtual clock, moved by hand once the thread runs), the record fails with a timeout
    error, the thread finishes later."""
    import trio
    import trio.testing

    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def handle(record: asyncbatch.SQSRecord) -> str:
        started.set()
        release.wait(60)
        finished.set()
        return record.body

    clock = trio.testing.MockClock()
    report: list[asyncbatch.BatchReport] = []

    async def main() -> None:
        processor = asyncbatch.AsyncBatchProcessor(concurrency=2, timeout=5)

        async def run() -> None:
            report.append(await processor.process(testing.sqs_event("stuck"), handle))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            assert await trio.to_thread.run_sync(started.wait, 60)
            clock.jump(5)

    trio.run(main, clock=clock)
    assert not finished.is_set()  # returned while the thread still ran
    assert report[0].results() == [None]
    assert isinstance(report[0].failed[0].exception, asyncbatch.RecordTimeoutError)
    release.set()
    assert finished.wait(60)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_sync_call_cancelled_before_its_thread_started_leaves_no_thread() -> None:
    """Cancelled while it waits for a thread, a call never runs its handler: its
    ``ThreadCall`` says it was dropped (no claim is kept for it, it is not counted as a
    handler call); cancelled while its thread runs, it leaves the thread's
    ``ThreadCall``, which says when it ended."""
    import anyio

    from asyncbatch._core.handlers import abandoned_thread, in_thread

    busy = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def handle(name: str) -> str:
        calls.append(name)
        busy.set()
        release.wait(60)
        return name

    call = in_thread(handle, 1)  # one thread at a time
    async with anyio.create_task_group() as tg:
        async def first() -> None:
            with anyio.CancelScope() as scope:
                first_scope.append(scope)
                await call("first")
            abandoned.append(abandoned_thread())

        first_scope: list[anyio.CancelScope] = []
        abandoned: list[Any] = []
        tg.start_soon(first)
        assert await anyio.to_thread.run_sync(busy.wait, 60)
        with anyio.CancelScope() as scope:
            scope.cancel()  # "second" waits for the only thread: cancelled before it runs
            await call("second")
        dropped = abandoned_thread()  # told, so that it is not counted as a call
        assert dropped is not None and dropped.dropped and not dropped.started
        first_scope[0].cancel()  # "first" runs on its thread: abandoned
    (thread,) = abandoned
    assert thread is not None and not thread.done
    release.set()
    assert calls == ["first"]


# -- the Lambda context --------------------------------------------------------------------

async def _async_kw(record: Any, lambda_context: Any) -> Any:
    return lambda_context


def _sync_kw(record: Any, lambda_context: Any) -> Any:
    return lambda_context


async def _async_kw_only(record: Any, *, lambda_context: Any = None) -> Any:
    return lambda_context


async def _async_positional(record: Any, context: Any) -> Any:
    return context


def _sync_positional(record: Any, context: Any) -> Any:
    return context


async def _async_none(record: Any) -> Any:
    return "no context"


@pytest.mark.parametrize(("handler", "expected"), [
    (_async_kw, "ctx"), (_sync_kw, "ctx"), (_async_kw_only, "ctx"),
    (_async_positional, "ctx"), (_sync_positional, "ctx"), (_async_none, "no context"),
])
async def test_the_context_reaches_lambda_context_or_a_second_parameter(
    handler: Any, expected: str
) -> None:
    context = testing.LambdaContext(60)
    report = await asyncbatch.AsyncBatchProcessor().process(testing.sqs_event("a"), handler,
                                                            context)
    assert report.results() == [context if expected == "ctx" else expected]


# -- models that keep the record's metadata ---------------------------------------------------

class Order(BaseModel):
    item: str
    qty: int


class OrderMessage(BaseModel):
    """A model of the whole SQS record: its metadata and the parsed body."""

    message_id: str = Field(alias="messageId")
    attributes: dict[str, str]
    body: Json[Order]


async def test_a_whole_record_model_gets_the_metadata_and_the_payload() -> None:
    got: list[OrderMessage] = []

    async def handle(message: OrderMessage) -> None:
        got.append(message)

    event = testing.sqs_event({"item": "tea", "qty": 2}, {"item": "cup"}, fifo_group="g1")
    report = await asyncbatch.AsyncBatchProcessor(model=OrderMessage).process(event, handle)
    assert [m.message_id for m in got] == [event["Records"][0]["messageId"]]
    assert got[0].body == Order(item="tea", qty=2)
    assert got[0].attributes["MessageGroupId"] == "g1"
    [failed] = report.failed
    assert isinstance(failed.exception, asyncbatch.RecordValidationError)
    assert list(failed.exception.fields) == ["body.qty"]


async def test_a_payload_model_still_gets_the_payload() -> None:
    got: list[Order] = []

    async def handle(order: Order) -> None:
        got.append(order)

    await asyncbatch.AsyncBatchProcessor(model=Order).process(
        testing.sqs_event({"item": "tea", "qty": 2}), handle)
    assert got == [Order(item="tea", qty=2)]


class Click(BaseModel):
    page: str


class ClickPayload(BaseModel):
    partition_key: str = Field(alias="partitionKey")
    sequence_number: str = Field(alias="sequenceNumber")
    data: Click

    @field_validator("data", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return json.loads(base64.b64decode(value)) if isinstance(value, str) else value


class ClickRecord(BaseModel):
    kinesis: ClickPayload
    event_source_arn: str = Field(alias="eventSourceARN")


async def test_a_kinesis_whole_record_model_keeps_partition_key_and_sequence() -> None:
    got: list[ClickRecord] = []

    async def handle(click: ClickRecord) -> None:
        got.append(click)

    event = testing.kinesis_event(("user-1", {"page": "/"}), ("user-2", {"page": "/a"}))
    processor = asyncbatch.AsyncBatchProcessor(model=ClickRecord, concurrency=1)
    await processor.process(event, handle)
    assert [(c.kinesis.partition_key, c.kinesis.data.page) for c in got] == [
        ("user-1", "/"), ("user-2", "/a")]
    assert got[0].kinesis.sequence_number == event["Records"][0]["kinesis"]["sequenceNumber"]


async def test_powertools_record_models_are_whole_record_models() -> None:
    parser = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")

    class OrderSqs(parser.SqsRecordModel):  # type: ignore[misc, name-defined]
        body: Json[Order]

    got: list[Any] = []

    async def handle(record: Any) -> None:
        got.append(record)

    event = testing.sqs_event({"item": "tea", "qty": 2})
    await asyncbatch.AsyncBatchProcessor(model=OrderSqs).process(event, handle)
    assert got[0].messageId == event["Records"][0]["messageId"]
    assert got[0].body == Order(item="tea", qty=2)


async def test_a_dynamodb_whole_record_model_gets_keys_and_sequence_number() -> None:
    class Change(BaseModel):
        keys: dict[str, Any] = Field(alias="Keys")
        sequence_number: str = Field(alias="SequenceNumber")

    class ChangeRecord(BaseModel):
        event_name: str = Field(alias="eventName")
        dynamodb: Change

    got: list[ChangeRecord] = []

    async def handle(change: ChangeRecord) -> None:
        got.append(change)

    event = testing.dynamodb_event(({"pk": "a"}, {"n": 1}), event_name="INSERT")
    await asyncbatch.AsyncBatchProcessor(model=ChangeRecord).process(event, handle)
    assert got[0].event_name == "INSERT"
    assert got[0].dynamodb.keys == {"pk": {"S": "a"}}


class Item(BaseModel):
    n: int


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_record_parameter_gets_the_view_next_to_the_payload_model(
    concurrency: int,
) -> None:
    """Each handler gets its own record's view, even with many running at once."""
    seen: list[tuple[int, str, Any]] = []

    async def handle(item: Item, record: asyncbatch.SQSRecord, lambda_context: Any) -> int:
        for _ in range(item.n % 3):
            await anyio.lowlevel.checkpoint()  # interleave with the other handlers
        seen.append((item.n, record.message_id, lambda_context))
        return item.n

    event = testing.sqs_event(*({"n": n} for n in range(40)))
    context = testing.LambdaContext(60)
    processor = asyncbatch.AsyncBatchProcessor(model=Item, concurrency=concurrency)
    report = await processor.process(event, handle, context)
    assert report.results() == list(range(40))
    ids = [r["messageId"] for r in event["Records"]]
    assert sorted(seen, key=lambda s: s[0]) == [(n, ids[n], context) for n in range(40)]


async def test_a_sync_handler_gets_the_view_too_and_the_context_positionally() -> None:
    def handle(item: Item, record: asyncbatch.KinesisRecord, context: Any) -> str:
        return f"{record.partition_key}:{item.n}:{context}"

    event = testing.kinesis_event(("a", {"n": 1}), ("b", {"n": 2}))
    report = await asyncbatch.AsyncBatchProcessor(model=Item).process(event, handle, "ctx")
    assert report.results() == ["a:1:ctx", "b:2:ctx"]


async def test_without_a_model_the_record_parameter_gets_the_view() -> None:
    async def handle(first: asyncbatch.SQSRecord, record: asyncbatch.SQSRecord) -> bool:
        return first is record

    report = await asyncbatch.AsyncBatchProcessor().process(testing.sqs_event("a"), handle)
    assert report.results() == [True]
