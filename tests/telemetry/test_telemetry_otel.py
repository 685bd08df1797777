"""OpenTelemetryHooks, observed through the OpenTelemetry SDK's InMemorySpanExporter."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncbatch
from asyncbatch import ConfigurationError, Retry, TransientError
from asyncbatch._core.hooks import implemented_hooks
from asyncbatch.telemetry import OpenTelemetryHooks
from asyncbatch.testing import LambdaContext
from tests._support.events import make_event, position

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

pytestmark = pytest.mark.anyio

StatusCode = trace.StatusCode


@pytest.fixture
def exporter() -> Any:
    return in_memory.InMemorySpanExporter()


@pytest.fixture
def provider(exporter: Any) -> Any:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    return provider


def named(exporter: Any, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_one_span_per_batch_with_its_counts(provider: Any, exporter: Any) -> None:
    async def handle(record: Any) -> None:
        if position(record) in (1, 3):
            raise ValueError(f"bad {position(record)}")

    processor = asyncbatch.AsyncBatchProcessor(
        hooks=OpenTelemetryHooks(provider), raise_on_all_failed=False)
    await processor.process(make_event("sqs", "abcde"), handle)
    await processor.process(make_event("kinesis", "ab"), handle)
    first, second = named(exporter, "asyncbatch.batch")
    assert named(exporter, "asyncbatch.record") == []
    assert first.kind == trace.SpanKind.CONSUMER
    attrs = dict(first.attributes)
    assert attrs["asyncbatch.event_source"] == "SQS"
    assert attrs["messaging.system"] == "aws_sqs"
    assert attrs["messaging.batch.message_count"] == 5
    assert (attrs["asyncbatch.succeeded"], attrs["asyncbatch.failed"],
            attrs["asyncbatch.skipped"]) == (3, 2, 0)
    assert first.status.status_code == StatusCode.ERROR
    assert "2 of 5" in (first.status.description or "")
    events = [e for e in first.events if e.name == "exception"]
    assert [e.attributes["exception.message"] for e in events] == ["bad 1", "bad 3"]
    assert [e.attributes["asyncbatch.record.identifier"] for e in events] == [
        "msg-000001", "msg-000003"]
    assert dict(second.attributes)["asyncbatch.event_source"] == "KinesisDataStreams"
    assert second.status.status_code == StatusCode.ERROR  # record 1 failed
    assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored


async def test_a_clean_batch_span_is_not_an_error(provider: Any, exporter: Any) -> None:
    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(hooks=OpenTelemetryHooks(provider))
    await processor.process(make_event("sqs", "ab"), handle)
    [span] = named(exporter, "asyncbatch.batch")
    assert span.status.status_code == StatusCode.UNSET
    assert not span.events


async def test_record_spans_parent_the_handlers_spans(provider: Any, exporter: Any) -> None:
    tracer = provider.get_tracer("user-code")
    attempts: dict[int, int] = {}

    async def handle(record: Any) -> None:
        n = position(record)
        attempts[n] = attempts.get(n, 0) + 1
        with tracer.start_as_current_span(f"user {n}"):
            await anyio.lowlevel.checkpoint()
        if n == 1 and attempts[n] == 1:
            raise TransientError("throttled")
        if n == 2:
            raise ValueError("bad 2")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=2, retry=Retry(attempts=2, base=0.001, cap=0.001),
        hooks=OpenTelemetryHooks(provider, record_spans=True))
    await processor.process(make_event("sqs", "abcd"), handle)
    [batch] = named(exporter, "asyncbatch.batch")
    records = named(exporter, "asyncbatch.record")
    assert len(records) == 4  # one per record, not per attempt
    by_id = {dict(s.attributes)["asyncbatch.record.identifier"]: s for s in records}
    for span in records:
        assert span.parent.span_id == batch.context.span_id
        assert span.context.trace_id == batch.context.trace_id
    for n in range(4):
        record_span = by_id[f"msg-{n:06d}"]
        user_spans = [s for s in exporter.get_finished_spans() if s.name == f"user {n}"]
        assert user_spans and all(
            s.parent.span_id == record_span.context.span_id for s in user_spans)
    retried = by_id["msg-000001"]
    assert dict(retried.attributes)["asyncbatch.attempts"] == 2
    assert retried.status.status_code == StatusCode.UNSET
    assert [e.attributes["exception.message"] for e in retried.events
            if e.name == "exception"] == ["throttled"]
    failed = by_id["msg-000002"]
    assert failed.status.status_code == StatusCode.ERROR
    assert [e.attributes["exception.message"] for e in failed.events
            if e.name == "exception"] == ["bad 2"]
    assert batch.status.status_code == StatusCode.ERROR
    assert not [e for e in batch.events if e.name == "exception"]  # on the record span


def test_records_cancelled_at_the_deadline_end_their_spans(
        provider: Any, exporter: Any) -> None:
    import trio
    from trio.testing import MockClock

    async def run() -> None:
        async def handle(record: Any) -> None:
            await trio.sleep(60)

        processor = asyncbatch.AsyncBatchProcessor(
            concurrency=2, hooks=OpenTelemetryHooks(provider, record_spans=True))
        await processor.process(make_event("sqs", "abcd"), handle, LambdaContext(2.0))

    trio.run(run, clock=MockClock(autojump_threshold=0))  # the deadline in no real time
    records = named(exporter, "asyncbatch.record")
    assert len(records) == 2  # the two started; the others were never run
    assert all(s.status.status_code == StatusCode.ERROR for s in records)
    assert all("deadline" in (s.status.description or "") for s in records)
    [batch] = named(exporter, "asyncbatch.batch")
    assert dict(batch.attributes)["asyncbatch.skipped"] == 2


async def test_concurrent_batches_get_their_own_trees(provider: Any, exporter: Any) -> None:
    processor = asyncbatch.AsyncBatchProcessor(
        hooks=OpenTelemetryHooks(provider, record_spans=True))

    async def handle(record: Any) -> None:
        await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(processor.process, make_event("sqs", "abc"), handle)
        tg.start_soon(processor.process, make_event("kinesis", "ab"), handle)
    batches = {dict(s.attributes)["asyncbatch.event_source"]: s
               for s in named(exporter, "asyncbatch.batch")}
    children: dict[str, int] = {}
    for span in named(exporter, "asyncbatch.record"):
        [source] = [k for k, b in batches.items() if b.context.span_id == span.parent.span_id]
        children[source] = children.get(source, 0) + 1
    assert children == {"SQS": 3, "KinesisDataStreams": 2}


def test_without_record_spans_nothing_runs_per_record(provider: Any) -> None:
    assert implemented_hooks(OpenTelemetryHooks(provider)) == {"batch_started",
                                                                "batch_finished"}
    assert implemented_hooks(OpenTelemetryHooks(provider, record_spans=True)) == {
        "batch_started", "batch_finished", "record_started", "record_succeeded",
        "record_failed", "record_retried"}


def test_bad_options_say_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="max_exceptions"):
        OpenTelemetryHooks(max_exceptions=-1)
