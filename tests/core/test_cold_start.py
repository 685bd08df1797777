"""What a Lambda cold start loads: ``import asyncbatch`` and the first batch import only
the engine and the descriptor of the batch's own source (never pydantic, boto3 or
aioboto3). The lists are exact, so that a new import on this path is a decision: add it
here, with its reason, or make it lazy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import asyncbatch
from asyncbatch._sources import (
    _BY_EVENT_SOURCE,
    _EVENT_LEVEL,
    _MODULES,
    SOURCES,
    EventType,
    _firehose_event,
)

ROOT = Path(__file__).resolve().parents[2]

#: what ``import asyncbatch`` loads after ``import asyncio`` (the Lambda runtime and any
#: asyncio handler have it already): the engine, no source descriptor
ENGINE = [
    "asyncbatch", "asyncbatch._core", "asyncbatch._core.backends", "asyncbatch._core.deadline",
    "asyncbatch._core.handlers", "asyncbatch._core.loop", "asyncbatch._core.pool",
    "asyncbatch._core.processor", "asyncbatch._core.report", "asyncbatch._core.run",
    "asyncbatch._errors", "asyncbatch._frozen", "asyncbatch._public", "asyncbatch._sources",
    "asyncbatch._sources._base",
]
#: what a plain batch never needs, loaded on first use: hooks and failure sinks
#: (``hooks=``, ``sink=``), streams (``stream()``, ``run()`` and their items), adaptive
#: limits (``concurrency=`` a limit or ``"auto"``), the rate limit, the retry policy,
#: tumbling windows (an event with a ``window``), the response check of ``testing`` and
#: ``runner`` (``InvalidResponseError``)
DEFERRED = [
    "asyncbatch._core.hooks", "asyncbatch._core.limits", "asyncbatch._core.rate",
    "asyncbatch._core.retry", "asyncbatch._core.stream", "asyncbatch._lambda",
    "asyncbatch._lambda.response", "asyncbatch._sources.iterable",
    "asyncbatch._sources.windows",
]

_CHILD = """
import asyncio, json, sys
event = json.loads(sys.argv[1])
before = set(sys.modules)
import asyncbatch
imported = set(sys.modules)

async def handler(record):
    pass

response = asyncbatch.process_partial_response(
    event, handler, asyncbatch.AsyncBatchProcessor(concurrency=10))
assert response == {"batchItemFailures": []}, response
print(json.dumps({"import": sorted(imported - before),
                  "first_batch": sorted(set(sys.modules) - imported)}))
"""


def _cold(event: dict[str, Any]) -> dict[str, list[str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(event)], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    loaded: dict[str, list[str]] = json.loads(out.stdout)
    return loaded


def _ours(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "asyncbatch"]


def _event(event_type: EventType) -> dict[str, Any]:
    source = SOURCES[event_type]
    return source.sample_event([source.sample_record(i, {"n": i}) for i in range(3)])


def test_the_first_sqs_batch_imports_only_the_engine_and_the_sqs_descriptor() -> None:
    loaded = _cold(_event(EventType.SQS))
    assert _ours(loaded["import"]) == ENGINE
    assert _ours(loaded["first_batch"]) == ["asyncbatch._sources.sqs"]
    heavy = ("pydantic", "boto3", "botocore", "aioboto3", "aiobotocore")
    assert not [m for m in loaded["import"] + loaded["first_batch"]
                if m.split(".")[0] in heavy]
    if sys.version_info >= (3, 11):  # (3.10 runs on anyio: it loads with the first batch)
        # nothing beyond what asyncio has loaded already; 3.14's asyncio no longer loads
        # typing and array, which the engine uses
        others = {m for m in loaded["import"] if not m.startswith("asyncbatch")}
        assert others <= ({"typing", "_typing", "array"} if sys.version_info >= (3, 14)
                          else set()), sorted(others)
        assert loaded["first_batch"] == ["asyncbatch._sources.sqs"]


@pytest.mark.parametrize(("event_type", "modules"), [
    (EventType.KINESIS, ["asyncbatch._sources.kinesis"]),
    (EventType.KAFKA, ["asyncbatch._sources.kafka"]),
    (EventType.DYNAMODB_STREAMS,
     ["asyncbatch._sources.dynamodb", "asyncbatch._sources.dynamodb_json"]),
])
def test_a_first_batch_loads_its_own_source_only(event_type: EventType,
                                                 modules: list[str]) -> None:
    loaded = _cold(_event(event_type))
    assert _ours(loaded["import"]) == ENGINE
    assert _ours(loaded["first_batch"]) == modules
    heavy = ("pydantic", "boto3", "botocore", "aioboto3", "aiobotocore")
    assert not [m for m in loaded["first_batch"] if m.split(".")[0] in heavy]


def test_the_event_source_table_is_the_descriptors() -> None:
    """``_sources`` names each source's ``eventSource`` values without importing it: the
    table must say what the descriptors say."""
    expected = {name: event_type for event_type in _MODULES
                for name in SOURCES[event_type].event_sources}
    assert expected == _BY_EVENT_SOURCE
    assert SOURCES[EventType.KAFKA].event_sources == _EVENT_LEVEL
    assert set(SOURCES) == set(_MODULES) == set(EventType) - {EventType.ITERABLE}
    assert EventType.ITERABLE not in SOURCES and SOURCES.get(EventType.ITERABLE) is None
    firehose = SOURCES[EventType.FIREHOSE]
    for event in ({"deliveryStreamArn": "a", "records": []}, {"records": []},
                  {"deliveryStreamArn": "a"}, {}):
        assert _firehose_event(event) is firehose.recognises(event)  # type: ignore[attr-defined]


def test_lazily_loaded_views_report_the_public_module() -> None:
    for name in ("SQSRecord", "KinesisRecord", "DynamoDBRecord", "KafkaRecord",
                 "FirehoseRecord", "FirehoseResult"):
        assert getattr(asyncbatch, name).__module__ == "asyncbatch", name
    for event_type in _MODULES:
        assert SOURCES[event_type].view.__module__ == "asyncbatch", event_type


_LAZY_CHILD = """
import json, sys
from types import FunctionType
import asyncbatch
deferred = json.loads(sys.argv[1])
out = {"loaded_by_import": sorted(m for m in deferred if m in sys.modules),
       "dir": [name for name in dir(asyncbatch) if not name.startswith("_")]}
limit = asyncbatch.AIMDLimit(initial=2, max=5)
assert limit.max == 5
out["limits_loaded"] = "asyncbatch._core.limits" in sys.modules
from asyncbatch import RateLimit, Retry, Window
out["from_import"] = [RateLimit.__name__, Retry.__name__, Window.__name__]
values = {name: getattr(asyncbatch, name) for name in asyncbatch.__all__}
out["resolved"] = {name: value.__module__ if isinstance(value, (type, FunctionType)) else None
                   for name, value in values.items()}
out["all"] = list(asyncbatch.__all__)
print(json.dumps(out))
"""


def test_the_deferred_public_names_resolve_on_first_use() -> None:
    """``import asyncbatch`` loads none of ``DEFERRED``; their public names still resolve
    (``asyncbatch.AIMDLimit``, ``from asyncbatch import Retry``) and report ``asyncbatch``,
    ``dir()`` lists them as before, and every name of ``__all__`` resolves."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, "-c", _LAZY_CHILD, json.dumps(DEFERRED)], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    assert got["loaded_by_import"] == []
    assert got["limits_loaded"]
    assert got["from_import"] == ["RateLimit", "Retry", "Window"]
    assert got["all"] == asyncbatch.__all__
    # every name resolves; the deferred ones (and every other class or function of
    # __all__) report the public module
    assert set(got["resolved"]) == set(asyncbatch.__all__)
    assert set(got["resolved"].values()) <= {"asyncbatch", None}, got["resolved"]
    # dir() before any lazy load: every public name but the idempotency names and the
    # sources' views (loaded with their module, never listed before they were)
    later = {name for name, module in asyncbatch._LAZY.items()
             if module in (".idempotency", "._sources")}
    assert set(got["dir"]) == set(asyncbatch.__all__) - later


@pytest.mark.parametrize("module", [
    "asyncbatch._core.hooks", "asyncbatch._core.limits", "asyncbatch._core.rate",
    "asyncbatch._core.retry", "asyncbatch._core.stream", "asyncbatch._lambda.response",
    "asyncbatch._sources.windows",
])
def test_a_deferred_module_reached_directly_publishes_its_names(module: str) -> None:
    """Reached by the engine (``idempotency`` raising ``TransientError``, a report's
    ``Window``) before ``asyncbatch.<name>`` was ever read, a deferred name still reports
    ``asyncbatch``: in reprs, pickles and the error type a dead-letter message stores."""
    code = (f"import importlib, json, asyncbatch\nm = importlib.import_module({module!r})\n"
            "print(json.dumps({n: getattr(m, n).__module__ for n, where in "
            "asyncbatch._LAZY.items() if where == '.' + m.__name__.split('.', 1)[1]}))")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    reported = json.loads(out.stdout)
    assert reported and set(reported.values()) == {"asyncbatch"}, reported
