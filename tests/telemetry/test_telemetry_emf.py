"""EMFHooks: one CloudWatch Embedded Metric Format line per batch, checked against the
structure the EMF specification defines (a JSON Schema of it below) and against the
batch's report.

Time-dependent tests run on trio with ``MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

import asyncbatch
from asyncbatch import ConfigurationError, Failure, Retry, TransientError
from asyncbatch._core.hooks import implemented_hooks
from asyncbatch.telemetry import EMFHooks
from asyncbatch.telemetry.emf import METRICS
from asyncbatch.testing import LambdaContext
from tests._support.events import make_event, position

pytestmark = pytest.mark.anyio

# CloudWatch's MetricDatum units, the values the specification allows for ``Unit``.
UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
]

# The structure of an EMF document, from "Specification: Embedded metric format" (Amazon
# CloudWatch User Guide): the root holds the ``_aws`` metadata object; ``_aws`` holds
# ``Timestamp`` (epoch milliseconds) and ``CloudWatchMetrics``, an array of MetricDirective
# objects, each with ``Namespace``, ``Dimensions`` (an array of DimensionSets: arrays of
# dimension names, at most 30 each) and ``Metrics`` (MetricDefinitions: ``Name``, optional
# ``Unit`` from the list above and ``StorageResolution`` 1 or 60, at most 100 per
# directive). Objects the specification defines take no other members.
EMF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/MetricDirective"},
                },
            },
        },
    },
    "$defs": {
        "MetricDirective": {
            "type": "object",
            "required": ["Namespace", "Dimensions", "Metrics"],
            "additionalProperties": False,
            "properties": {
                "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024,
                              "pattern": "[^\\s]"},
                "Dimensions": {"type": "array", "items": {"$ref": "#/$defs/DimensionSet"}},
                "Metrics": {"type": "array", "maxItems": 100,
                            "items": {"$ref": "#/$defs/MetricDefinition"}},
            },
        },
        "DimensionSet": {
            "type": "array",
            "maxItems": 30,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 250},
        },
        "MetricDefinition": {
            "type": "object",
            "required": ["Name"],
            "additionalProperties": False,
            "properties": {
                "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                "Unit": {"enum": UNITS},
                "StorageResolution": {"enum": [1, 60]},
            },
        },
    },
}


def assert_valid_emf(document: dict[str, Any]) -> None:
    """The document follows the specification: its structure (JSON Schema), and every
    referenced dimension and metric is a top-level member of the right type."""
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(EMF_SCHEMA)
    jsonschema.validate(document, EMF_SCHEMA, cls=jsonschema.Draft202012Validator)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(document.get(name), str), f"dimension {name} missing"
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            assert isinstance(value, (int, float)) and not isinstance(value, bool), metric


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_the_schema_rejects_what_the_specification_forbids() -> None:
    """The schema is not vacuous: it refuses a bad unit, 31 dimensions and a missing _aws."""
    jsonschema = pytest.importorskip("jsonschema")
    good = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
        {"Namespace": "n", "Dimensions": [["A"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]},
        "A": "a", "M": 1}
    assert_valid_emf(good)
    bad_unit = json.loads(json.dumps(good))
    bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Records"
    too_many = json.loads(json.dumps(good))
    too_many["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = [[f"D{i}" for i in range(31)]]
    for document in (bad_unit, too_many, {"M": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, EMF_SCHEMA)


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.mark.parametrize("source", ["sqs", "fifo", "kinesis", "dynamodb"])
async def test_one_line_per_batch_follows_the_specification(source: str) -> None:
    stream = io.StringIO()
    hooks = EMFHooks(namespace="orders", function_name="consumer", stream=stream,
                     clock=lambda: 1_700_000_000.25)

    async def handle(record: Any) -> None:
        if position(record) == 2:
            raise ValueError("bad record")

    processor = asyncbatch.AsyncBatchProcessor(hooks=hooks)
    report = await processor.process(make_event(source, "aabbc"), handle)
    [document] = lines(stream)
    assert_valid_emf(document)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "orders"
    assert directive["Dimensions"] == [["EventSource", "FunctionName"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == dict(METRICS)
    assert document["_aws"]["Timestamp"] == 1_700_000_000_250
    assert document["EventSource"] == report.event_type.value
    assert document["FunctionName"] == "consumer"
    counts = report.counts
    assert (document["Records"], document["Succeeded"], document["Failed"],
            document["Skipped"], document["Sunk"]) == (
        5, counts["succeeded"], counts["failed"], counts["skipped"], 0)
    assert document["Failed"] == 1
    assert document["Skipped"] == (0 if source == "sqs" else len(report.skipped))
    assert document["Duration"] == pytest.approx(report.elapsed * 1000, abs=0.001)
    assert (document["Retried"], document["DeadlineStops"]) == (0, 0)


async def test_each_batch_writes_its_own_line() -> None:
    stream = io.StringIO()
    processor = asyncbatch.AsyncBatchProcessor(hooks=EMFHooks(stream=stream))

    async def handle(record: Any) -> None:
        pass

    for size in (1, 3, 0):
        await processor.process(make_event("sqs", "x" * size), handle)
    assert [d["Records"] for d in lines(stream)] == [1, 3, 0]


async def test_retries_sinks_and_deadline_stops_are_counted() -> None:
    stream = io.StringIO()
    calls: dict[int, int] = {}

    async def handle(record: Any) -> None:
        n = position(record)
        calls[n] = calls.get(n, 0) + 1
        if n == 0 and calls[n] < 3:
            raise TransientError("throttled")  # two retries, then success
        if n == 1:
            raise KeyError("poison")  # permanent: to the sink
        if n >= 2:
            await anyio.sleep(60)  # runs into the deadline

    async def sink(failure: Failure) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=3, retry=Retry(attempts=5, base=0.01, cap=0.01), sink=sink,
        hooks=EMFHooks(stream=stream))
    report = await processor.process(make_event("sqs", "abcdef"), handle,
                                     LambdaContext(5.0))
    [document] = lines(stream)
    assert_valid_emf(document)
    assert calls[0] == 3
    assert document["Retried"] == 2
    assert document["Sunk"] == 1 == len(report.sunk)
    assert document["Succeeded"] == 2  # record 0, and record 1 through the sink
    assert document["DeadlineStops"] == 1
    assert document["Failed"] + document["Skipped"] == 4
    assert document["Failed"] == len(report.failed) and document["Skipped"] == len(report.skipped)


async def test_concurrent_batches_on_one_hooks_object_keep_their_own_counts() -> None:
    """A processor (and its hooks) may serve concurrent process() calls: a retry is
    counted in the line of its own batch."""
    stream = io.StringIO()
    processor = asyncbatch.AsyncBatchProcessor(
        retry=Retry(attempts=3, base=0.5, cap=0.5), hooks=EMFHooks(stream=stream))
    seen: dict[str, int] = {}

    async def flaky(record: Any) -> None:  # every record fails once
        seen[record.identifier] = seen.get(record.identifier, 0) + 1
        if seen[record.identifier] == 1:
            raise TransientError("once")

    async def steady(record: Any) -> None:
        await anyio.sleep(0.2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(processor.process, make_event("kinesis", "abc"), flaky)
        tg.start_soon(processor.process, make_event("sqs", "abcd"), steady)
    by_source = {d["EventSource"]: d for d in lines(stream)}
    assert by_source["KinesisDataStreams"]["Retried"] == 3
    assert by_source["SQS"]["Retried"] == 0
    assert by_source["SQS"]["Records"] == 4


def test_the_hook_costs_nothing_per_record() -> None:
    """batch_finished only: the engine has no per-record call to make for it."""
    assert implemented_hooks(EMFHooks()) == {"batch_finished"}


def test_function_name_comes_from_the_lambda_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "from-env")
    assert EMFHooks().function_name == "from-env"
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert EMFHooks().function_name is None


async def test_without_a_function_name_the_metrics_are_by_event_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    stream = io.StringIO()
    hooks = EMFHooks(stream=stream, dimensions={"Service": "billing"})

    async def handle(record: Any) -> None:
        pass

    await asyncbatch.AsyncBatchProcessor(hooks=hooks).process(make_event("sqs", "ab"), handle)
    [document] = lines(stream)
    assert_valid_emf(document)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["EventSource", "Service"]]
    assert "FunctionName" not in document and document["Service"] == "billing"


async def test_lines_go_to_standard_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    async def handle(record: Any) -> None:
        pass

    processor = asyncbatch.AsyncBatchProcessor(hooks=EMFHooks(function_name="f"))
    await processor.process(make_event("sqs", "a"), handle)
    out = capsys.readouterr().out
    assert_valid_emf(json.loads(out))
    assert out.count("\n") == 1


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"namespace": " "}, "namespace"),
    ({"namespace": "n" * 256}, "namespace"),
    ({"dimensions": {"EventSource": "x"}}, "asyncbatch writes itself"),
    ({"dimensions": {"Failed": "x"}}, "asyncbatch writes itself"),
    ({"dimensions": {"Team": ""}}, "Team"),
    ({"dimensions": {"Team": 3}}, "Team"),
    ({"dimensions": {f"D{i}": "v" for i in range(30)}}, "at most 30"),
    ({"stream": object()}, "stream"),
])
def test_bad_options_say_what_to_do(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        EMFHooks(**kwargs)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"namespace": "AWS/Lambda"}, "'AWS/' namespaces are reserved for AWS services"),
    ({"namespace": ":orders"}, "it starts with ':'"),
    ({"namespace": "orders\n"}, r"a control character, '\\n', at position 6"),
    ({"namespace": "commandes-reçues"}, "a non-ASCII character, 'ç', at position 12"),
    ({"namespace": ""}, "empty or blank"),
    ({"namespace": "n" * 256}, "256 characters, more than 255"),
    ({"namespace": None}, "NoneType, not a string"),
    ({"namespace": Unprintable()}, "Unprintable, not a string"),
    ({"dimensions": {":Team": "core"}}, "it starts with ':'"),
    ({"dimensions": {"Équipe": "core"}}, "a non-ASCII character"),
    ({"dimensions": {"Te\tam": "core"}}, "a control character"),
    ({"dimensions": {"T" * 256: "core"}}, "256 characters, more than 255"),
    ({"dimensions": {"Team": "  "}}, "empty or blank"),
    ({"dimensions": {"Team": "v" * 1025}}, "1025 characters, more than 1024"),
    ({"dimensions": {"Team": "caf\u00e9"}}, "a non-ASCII character"),
    ({"dimensions": {"Team": "a\x7fb"}}, "a control character"),
    ({"dimensions": {"Team": Unprintable()}}, "Unprintable, not a string"),
    ({"function_name": "fn\x00"}, "a control character"),
])
def test_what_cloudwatch_refuses_is_refused_at_construction(
        kwargs: dict[str, Any], rule: str) -> None:
    """CloudWatch drops a line it refuses without a word: the metrics vanish."""
    with pytest.raises(ConfigurationError, match=f"CloudWatch refuses it \\({rule}"):
        EMFHooks(**kwargs)


def test_a_function_name_from_the_environment_is_checked_and_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn\u00e9")
    with pytest.raises(ConfigurationError, match="from AWS_LAMBDA_FUNCTION_NAME"):
        EMFHooks()


@pytest.mark.parametrize("kwargs", [
    {"namespace": "My App/orders:v2 #1_x.y-z"},  # every character CloudWatch lists
    {"namespace": "n" * 255},
    {"namespace": "aws/custom"},  # only 'AWS/' is reserved
    {"dimensions": {"Team": "v" * 1024, "T" * 255: "core", "With space": "a b"}},
])
def test_what_cloudwatch_takes_is_taken(kwargs: dict[str, Any]) -> None:
    EMFHooks(function_name="f", **kwargs)


async def test_the_widest_dimension_set_is_valid() -> None:
    stream = io.StringIO()
    hooks = EMFHooks(function_name="f", dimensions={f"D{i}": "v" for i in range(28)},
                     stream=stream)

    async def handle(record: Any) -> None:
        pass

    await asyncbatch.AsyncBatchProcessor(hooks=hooks).process(make_event("sqs", "a"), handle)
    [document] = lines(stream)
    assert_valid_emf(document)
    assert len(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == 30
