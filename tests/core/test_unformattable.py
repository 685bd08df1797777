"""Exceptions that cannot be formatted, outside the scheduler: a user's exception whose
``__str__`` raises, whose ``__repr__`` raises, one that is huge and one holding lone
surrogates reach OpenTelemetry spans, the CLI, the local runner, the Powertools drop-in,
``simulate`` and the event readers' error messages. Each costs at most its record, and
every text made of it is bounded and UTF-8 (what a log shipper or an exporter accepts).
(The processor's own failure log is not under test here: ``log_summary=False``.)

The AWS paths (the SQS dead-letter sink, the S3 import) are in
``test_unformattable_aws.py``, against the moto server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asyncbatch
from asyncbatch import AsyncBatchProcessor, InvalidEventError
from asyncbatch._errors import MAX_TEXT, describe
from asyncbatch.testing import sqs_event
from tests._support.events import make_event

#: the longest text a test accepts for one exception (the formatter's bound and the
#: few words around it)
LIMIT = MAX_TEXT + 200


class StrRaises(ValueError):
    """``__str__`` formats one argument as two: ``TypeError``."""

    def __str__(self) -> str:
        return "%s: %s" % self.args  # noqa: UP031 - the bug under test


class ReprRaises(ValueError):
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class NothingWorks(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _huge() -> ValueError:
    return ValueError("x" * 3_000_000)


def _surrogates() -> ValueError:
    return ValueError("bytes from a socket: \udcff\udcfe, then text")


#: factories of the exceptions under test (fresh ones: tracebacks attach to them)
BAD: list[Any] = [
    pytest.param(lambda: StrRaises("one"), id="str-raises"),
    pytest.param(lambda: ReprRaises("no repr"), id="repr-raises"),
    pytest.param(lambda: NothingWorks(), id="str-and-repr-raise"),
    pytest.param(_huge, id="huge"),
    pytest.param(_surrogates, id="lone-surrogates"),
]


def assert_safe(text: Any, limit: int = LIMIT) -> None:
    """``text`` is a string of at most ``limit`` characters that encodes as UTF-8."""
    assert isinstance(text, str)
    text.encode("utf-8")
    assert len(text) <= limit, len(text)


# -- OpenTelemetry ----------------------------------------------------------------------

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")


@pytest.fixture
def exporter() -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = otel_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.mark.anyio
@pytest.mark.parametrize("record_spans", [True, False], ids=["record-spans", "batch-span"])
@pytest.mark.parametrize("make", BAD)
async def test_otel_spans_carry_an_unformattable_exception_safely(
        make: Callable[[], BaseException], record_spans: bool, provider: Any,
        exporter: Any) -> None:
    from asyncbatch.telemetry import OpenTelemetryHooks

    raised: list[BaseException] = []

    async def handle(record: Any) -> None:
        raised.append(make())
        raise raised[-1]

    processor = AsyncBatchProcessor(
        concurrency=1, hooks=OpenTelemetryHooks(provider, record_spans=record_spans),
        retry=asyncbatch.Retry(attempts=2, on=ValueError, base=0.0, cap=0.0),
        raise_on_all_failed=False, log_summary=False)
    report = await processor.process(make_event("sqs", "ab"), handle)

    # the record fails with its own exception, not with the hook's failure to format it
    assert [o.exception for o in report.failed] == [raised[1], raised[3]]
    spans = exporter.get_finished_spans()
    events = [event for span in spans for event in span.events if event.name == "exception"]
    assert len(events) == (4 if record_spans else 2)  # a retried attempt, a failure
    for event in events:
        attributes = dict(event.attributes)
        assert attributes["exception.type"].endswith(type(raised[0]).__name__)
        assert_safe(attributes["exception.message"])
        assert_safe(attributes["exception.stacktrace"], limit=30_000)
        assert "test_unformattable" in attributes["exception.stacktrace"]  # the frames
    for span in spans:
        if span.status.description is not None:
            assert_safe(span.status.description)
    if record_spans:
        failed = [s for s in spans if s.name == "asyncbatch.record"]
        assert [s.status.description for s in failed] == [describe(raised[1]),
                                                         describe(raised[3])]


# -- the Powertools drop-in ------------------------------------------------------------


@pytest.mark.parametrize("make", BAD)
def test_powertools_failure_tuples_of_an_unformattable_exception(
        make: Callable[[], BaseException]) -> None:
    pytest.importorskip("aws_lambda_powertools")
    from asyncbatch.powertools import BatchProcessor, EventType, process_partial_response

    raised: list[BaseException] = []

    def record_handler(record: Any) -> str:
        if record.body == "bad":
            raised.append(make())
            raise raised[-1]
        return record.body

    event = sqs_event("ok", "bad")
    processor = BatchProcessor(EventType.SQS, log_summary=False)
    with processor(event["Records"], record_handler) as batch:
        processed = batch.process()
    assert processed[0] == ("success", "ok", event["Records"][0])
    status, message, _ = processed[1]
    assert status == "fail"
    assert_safe(message)
    assert message.startswith(f"{type(raised[0])}:")
    assert batch.exceptions[0][1] is raised[0]  # the original, as Powertools keeps it
    assert process_partial_response(event, record_handler, processor) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}


# -- simulate ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("make", BAD)
async def test_simulate_lambda_reports_a_function_raising_an_unformattable_exception(
        make: Callable[[], BaseException]) -> None:
    from asyncbatch.testing import simulate_lambda

    raised: list[BaseException] = []

    async def function(event: Any, context: Any) -> Any:
        raised.append(make())
        raise raised[-1]

    simulation = await simulate_lambda(function, make_event("sqs", "ab"), max_attempts=2)
    assert [invocation.error for invocation in simulation.invocations] == raised
    assert len(simulation.dead_lettered) == 2


# -- the local runner and the CLI --------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("make", BAD)
async def test_the_runner_logs_a_handler_raising_an_unformattable_exception(
        make: Callable[[], BaseException], caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbatch.runner._core import _Invoker

    raised: list[BaseException] = []

    def handler(event: Any, context: Any) -> Any:
        raised.append(make())
        raise raised[-1]

    event = make_event("sqs", "ab")
    ids = [raw["messageId"] for raw in event["Records"]]
    with caplog.at_level(logging.WARNING):
        invocation = await _Invoker(handler, 30.0, "fn")(event, ids, "arn:aws:sqs:::q")
    assert invocation.error is raised[0]
    (logged,) = [r for r in caplog.records if "failed whole" in r.getMessage()]
    assert_safe(logged.getMessage())
    assert "Logging error" not in capsys.readouterr().err


@pytest.mark.parametrize("make", BAD)
def test_asyncbatch_run_prints_an_unformattable_batch_error(
        make: Callable[[], BaseException], capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbatch.cli.run import _print_batch
    from asyncbatch.runner import BatchResult

    error = make()
    _print_batch(BatchResult(source_arn="arn:aws:sqs:::q", shard_id=None,
                             identifiers=("m1", "m2"), failed=("m1", "m2"),
                             dead_lettered=(), redelivered=0, error=error, duration=0.1), 5)
    out = capsys.readouterr().out
    (line, *_) = out.splitlines()
    assert line.startswith("batch of 2 from queue: error ")
    assert type(error).__name__ in line
    assert_safe(line)


@pytest.mark.parametrize("make", BAD)
def test_bench_describes_an_unformattable_failure(make: Callable[[], BaseException]) -> None:
    from asyncbatch.bench import describe_failure

    error = make()
    text = describe_failure("msg-1", error)
    assert text.startswith(f"msg-1: {type(error).__name__}")
    assert_safe(text, limit=300)


@pytest.mark.anyio
@pytest.mark.parametrize("make", BAD)
async def test_the_demo_table_shows_an_unformattable_failure(
        make: Callable[[], BaseException]) -> None:
    from asyncbatch.cli.demo import _table

    async def handle(record: Any) -> None:
        raise make()

    report = await AsyncBatchProcessor(raise_on_all_failed=False, log_summary=False).process(
        make_event("sqs", "a"), handle)
    lines: list[str] = []
    _table(report, lines.append, lambda record: "k")
    assert "failed" in lines[1]
    for line in lines:
        assert_safe(line)


BROKEN_MODULE = '''
class Broken(Exception):
    def __str__(self):
        return "%s: %s" % self.args


raise Broken("at import")
'''


def test_a_handler_module_raising_an_unformattable_exception_at_import(
        tmp_path: Path) -> None:
    from asyncbatch.cli._common import load_callable

    (tmp_path / "broken_app.py").write_text(BROKEN_MODULE)
    with pytest.raises(ValueError, match=r"broken_app.py failed: Broken: <Broken: "
                                         r"str\(\) raised TypeError>"):
        load_callable(f"{tmp_path / 'broken_app.py'}:handler")


# -- the event readers' messages -----------------------------------------------------------


class Weird:
    """A value in an event whose ``repr`` raises (an event built by code, not JSON)."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _sqs(**changes: Any) -> dict[str, Any]:
    record = make_event("sqs", "a")["Records"][0]
    record.update(changes)
    return {"Records": [record]}


def _fifo_group(value: Any) -> dict[str, Any]:
    event = make_event("fifo", ["g"])
    event["Records"][0]["attributes"]["MessageGroupId"] = value
    return event


def _kafka(**changes: Any) -> dict[str, Any]:
    event = make_event("kafka", "a")
    (part,) = event["records"].values()
    part[0].update(changes)
    return event


@pytest.mark.anyio
@pytest.mark.parametrize(("event", "options", "match"), [
    pytest.param({"Records": [{"eventSource": Weird()}]}, {}, "cannot tell the event source",
                 id="detected-source"),
    pytest.param({"Records": [_sqs()["Records"][0], {"eventSource": Weird()}]}, {},
                 "one batch holds records of one source", id="mixed-source"),
    pytest.param(_fifo_group(Weird()), {}, "MessageGroupId", id="fifo-group"),
    pytest.param(_kafka(topic=Weird()), {}, "not a topic name", id="kafka-topic"),
    pytest.param(_kafka(partition=Weird()), {}, "not a partition number",
                 id="kafka-partition"),
    pytest.param(_kafka(offset=Weird()), {}, "not an offset", id="kafka-offset"),
    pytest.param(_kafka(key=Weird()), {"ordering": "key"}, "not base64 text",
                 id="kafka-key"),
    pytest.param({"eventSource": Weird(), "records": {}}, {}, "names its source",
                 id="kafka-event-source"),
])
async def test_an_event_value_whose_repr_raises_is_named_in_a_clear_error(
        event: Any, options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidEventError, match=match) as caught:
        await AsyncBatchProcessor(**options).process(event, _never)
    assert "repr() raised RuntimeError" in str(caught.value)


def test_an_event_type_whose_repr_raises_is_a_configuration_error() -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match="is not an event type"):
        AsyncBatchProcessor(event_type=Weird())  # type: ignore[arg-type]


async def _never(record: Any) -> None:
    raise AssertionError("no handler runs for a malformed event")


# -- idempotency keys ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("make", BAD)
async def test_a_key_function_raising_an_unformattable_exception_fails_its_record_only(
        make: Callable[[], BaseException]) -> None:
    from asyncbatch import Idempotency, IdempotencyKeyError, InMemoryIdempotencyStore

    raised: list[BaseException] = []

    def key(view: Any) -> Any:
        if view.message_id == "msg-000001":
            raised.append(make())
            raise raised[-1]
        return view.message_id

    async def handle(record: Any) -> None:
        pass

    processor = AsyncBatchProcessor(
        idempotency=Idempotency(InMemoryIdempotencyStore(), key=key), log_summary=False)
    report = await processor.process(make_event("sqs", "abc"), handle)

    assert [o.identifier for o in report.failed] == ["msg-000001"]
    (failed,) = report.failed
    assert isinstance(failed.exception, IdempotencyKeyError)
    assert failed.exception.__cause__ is raised[0]
    assert_safe(str(failed.exception))
    assert len(report.succeeded) == 2


# -- a Lambda context whose clock raises ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("make", BAD)
async def test_a_context_clock_raising_an_unformattable_exception_is_a_clear_error(
        make: Callable[[], BaseException]) -> None:
    raised: list[BaseException] = []

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            raised.append(make())
            raise raised[-1]

    with pytest.raises(asyncbatch.ConfigurationError,
                       match=r"get_remaining_time_in_millis\(\) raised") as caught:
        await AsyncBatchProcessor().process(make_event("sqs", "a"), _never, Context())
    assert caught.value.__cause__ is raised[0]
    assert_safe(str(caught.value))
