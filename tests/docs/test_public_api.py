"""The public surface: names fixed by docs/contract.md, ``__all__`` in sync in every public
package, public names reporting a public module, hooks as a Protocol, a cheap import."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pytest

import asyncbatch
from asyncbatch import ConfigurationError, Hooks
from asyncbatch._core.hooks import HOOK_METHODS, coerce_hooks, implemented_hooks

FIXED = {  # docs/contract.md, "The names": users' code depends on these names
    "AsyncBatchProcessor", "EventType", "BatchReport", "BatchFailedError",
    "InvalidEventError", "process_partial_response", "async_process_partial_response",
}

ROOT = Path(asyncbatch.__file__).resolve().parent
# The command line is run, not imported: it is not part of the import API.
NOT_AN_IMPORT_API = ("asyncbatch.cli",)


def public_modules() -> list[str]:
    """Every module a user may import: no path component starting with '_'. Discovered
    from the files, so a new public package (``asyncbatch.powertools``...) is checked as
    soon as it exists."""
    found = {"asyncbatch"}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if any(part.startswith("_") for part in parts) or any(
                name == api or name.startswith(api + ".") for api in NOT_AN_IMPORT_API):
            continue
        found.add(name)
    return sorted(found)


PUBLIC = public_modules()


def test_the_public_packages_are_found() -> None:
    assert {"asyncbatch", "asyncbatch.runner", "asyncbatch.aws.sqs", "asyncbatch.telemetry",
            "asyncbatch.telemetry.emf", "asyncbatch.telemetry.otel"} <= set(PUBLIC)
    assert not [name for name in PUBLIC if "._" in name]


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import time (into if/try/with blocks, not into functions)."""
    out: list[ast.stmt] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        for field in ("body", "orelse", "finalbody"):
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                todo.extend(getattr(node, field, []))
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                todo.extend(handler.body)
    return out


def defined_public_names(module: ModuleType) -> set[str]:
    """The public names ``module`` defines (def, class, assignment) and, for a package,
    re-exports (``from .x import Y``), as they exist at runtime."""
    source = Path(module.__file__ or "").read_text(encoding="utf-8")
    is_package = Path(module.__file__ or "").name == "__init__.py"
    names: set[str] = set()
    for node in _top_level(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
        elif isinstance(node, ast.ImportFrom) and is_package and (
                node.level > 0 or (node.module or "").startswith("asyncbatch")):
            names.update(alias.asname or alias.name for alias in node.names)
    namespace = vars(module)
    return {name for name in names if not name.startswith("_") and name in namespace
            and not isinstance(namespace[name], ModuleType)}


@pytest.mark.parametrize("name", PUBLIC)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, (list, tuple)), f"{name} has no __all__"
    assert all(isinstance(item, str) for item in exported)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    unlisted = sorted(defined_public_names(module) - set(exported))
    assert not unlisted, (
        f"{name} defines public names missing from __all__: {unlisted} "
        "(list them, or rename them with a leading underscore)")


def test_the_root_exports_nothing_else() -> None:
    for name in asyncbatch.__all__:  # loads the lazily imported ones
        getattr(asyncbatch, name)
    public = {name for name in vars(asyncbatch) if not name.startswith("_")}
    modules = {name for name, value in vars(asyncbatch).items()
               if isinstance(value, ModuleType)}
    assert set(asyncbatch.__all__) == public - modules
    assert set(asyncbatch.__all__) >= FIXED


def _public_objects() -> list[tuple[str, str, Any]]:
    out = []
    for name in PUBLIC:
        try:
            module = importlib.import_module(name)
        except Exception:  # test_all_lists_exactly_the_public_names reports it
            continue
        for item in getattr(module, "__all__", ()):
            value = getattr(module, item)
            if isinstance(value, (type, FunctionType)) \
                    and str(value.__module__).startswith("asyncbatch"):
                out.append((name, item, value))
    return out


@pytest.mark.parametrize(("module", "name", "value"), _public_objects(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_public_names_report_a_public_module(module: str, name: str, value: Any) -> None:
    """What reprs, tracebacks, pickles and a dead-letter message's ErrorType show."""
    owner = value.__module__
    assert not any(part.startswith("_") for part in owner.split(".")), (
        f"{module}.{name} reports {owner}: call _public.publish(globals(), __all__) at the "
        "end of the package's __init__")
    assert getattr(importlib.import_module(owner), value.__qualname__) is value
    assert pickle.loads(pickle.dumps(value)) is value
    if module == "asyncbatch" and name not in ("Record",):
        assert owner == "asyncbatch"


def test_reprs_name_the_public_module() -> None:
    assert repr(asyncbatch.InvalidEventError) == "<class 'asyncbatch.InvalidEventError'>"
    assert repr(asyncbatch.InvalidEventError("no Records", index=None)) == (
        "InvalidEventError('no Records')")
    assert repr(asyncbatch.EventType.SQS) == "<EventType.SQS: 'SQS'>"
    runner = importlib.import_module("asyncbatch.runner")
    assert runner.FunctionTimeoutError.__module__ == "asyncbatch.runner"


def _report() -> asyncbatch.BatchReport:
    import asyncio

    async def handle(record: Any) -> None:
        raise ValueError(f"bad {record.identifier}")

    event = {"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q"}]}
    processor = asyncbatch.AsyncBatchProcessor(log_summary=False)
    return asyncio.run(processor.process(event, handle))


# Sample values for the constructor arguments of the public exceptions.
SAMPLES: dict[str, Any] = {
    "message": "it broke", "identifier": "msg-1", "index": 3, "reason": "deadline",
    "cause": ValueError("cause"), "original": ValueError("original"),
    "callback": "hooks.record_started", "fields": ["a.b"], "errors": [{"loc": ["a", "b"]}],
    "key": "k-1", "code": "Throttling", "offset": 17,
}


def _sample(cls: type[BaseException]) -> BaseException:
    try:
        signature = inspect.signature(cls)
    except ValueError:  # no __init__ of its own: Exception's
        return cls(SAMPLES["message"])
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name == "exceptions":
            value: Any = [ValueError("one")]
        elif param.name == "report":
            value = _report()
        elif param.name in SAMPLES:
            value = SAMPLES[param.name]
        elif param.default is not param.empty:
            continue
        else:
            value = "x"
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


ERRORS = sorted({(item, value) for _m, item, value in _public_objects()
                 if isinstance(value, type) and issubclass(value, BaseException)},
                key=lambda pair: pair[0])


@pytest.mark.parametrize("cls", [value for _name, value in ERRORS],
                         ids=[name for name, _value in ERRORS])
def test_errors_survive_pickling_with_their_context(cls: type[BaseException]) -> None:
    """A multiprocessing worker or a queue can carry them: type, message and context."""
    error = _sample(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert set(vars(copy)) == set(vars(error))
    for attr, value in vars(error).items():
        if isinstance(value, (str, int, tuple, list, dict, type(None))):
            assert _comparable(getattr(copy, attr)) == _comparable(value), attr


def _comparable(value: Any) -> Any:
    """Exceptions as type and arguments: they compare by identity, and a copy has new ones
    (before 3.11 the ExceptionGroup backport keeps its exceptions in an attribute)."""
    if isinstance(value, BaseException):
        return (type(value), value.args)
    if isinstance(value, (tuple, list)):
        return type(value)(_comparable(item) for item in value)
    return value


def test_the_error_type_a_dead_letter_message_stores_is_public() -> None:
    from asyncbatch.aws.sqs import SQSDeadLetterSink

    assert SQSDeadLetterSink.__module__ == "asyncbatch.aws.sqs"
    for _name, cls in ERRORS:
        assert "._" not in f"{cls.__module__}.{cls.__qualname__}"


def test_event_type_names() -> None:
    assert {e.value for e in asyncbatch.EventType} == {
        "SQS", "KinesisDataStreams", "DynamoDBStreams", "Kafka", "Firehose", "Iterable"}
    assert asyncbatch.EventType.SQS == "SQS"


@pytest.mark.parametrize("name", ["Iterable", "ITERABLE"])
def test_iterable_names_reports_of_stream_and_run_not_an_event_source(name: str) -> None:
    with pytest.raises(asyncbatch.ConfigurationError, match="stream\\(\\) and run\\(\\)"):
        asyncbatch.AsyncBatchProcessor(event_type=name)
    with pytest.raises(asyncbatch.ConfigurationError):
        asyncbatch.AsyncBatchProcessor(event_type=asyncbatch.EventType.ITERABLE)


def test_error_tree() -> None:
    for name in ("InvalidEventError", "ConfigurationError", "BatchFailedError", "RecordError",
                 "RecordDecodeError", "RecordValidationError", "RecordTimeoutError",
                 "DeadlineExceededError", "SinkError", "RecordSkippedError"):
        assert issubclass(getattr(asyncbatch, name), asyncbatch.AsyncBatchError), name
    assert issubclass(asyncbatch.InvalidEventError, ValueError)
    assert issubclass(asyncbatch.RecordTimeoutError, TimeoutError)


def test_package_is_typed() -> None:
    assert (ROOT / "py.typed").exists()


def test_import_is_cheap() -> None:
    code = (
        "import sys, json, asyncbatch; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'boto3', 'botocore', 'aioboto3', 'aiobotocore', 'moto', "
        "'aiohttp', 'trio', 'numpy', 'opentelemetry', 'aws_lambda_powertools') "
        "or m.startswith('asyncbatch.telemetry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_telemetry_imports_without_opentelemetry() -> None:
    """``from asyncbatch.telemetry import ...`` works without the otel extra; creating an
    OpenTelemetryHooks then says what to install."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from asyncbatch.telemetry import EMFHooks, OpenTelemetryHooks\n"
        "EMFHooks()\n"
        "try:\n    OpenTelemetryHooks()\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("ConfigurationError")
    assert "pip install opentelemetry-api" in out.stdout and "[otel]" in out.stdout


def test_cli_entry_point_lists_its_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "asyncbatch", "--help"], capture_output=True,
                         text=True, check=True)
    assert "demo" in out.stdout


# -- hooks: any object with some of the methods -------------------------------------------


def test_hooks_subclasses_are_taken_as_they_are() -> None:
    class Mine(Hooks):
        def batch_finished(self, report: Any) -> None:
            pass

    hooks = Mine()
    assert coerce_hooks(hooks) is hooks
    assert implemented_hooks(hooks) == {"batch_finished"}
    assert implemented_hooks(Hooks()) == frozenset()


def test_an_object_with_some_methods_gets_the_others_as_no_ops() -> None:
    seen: list[tuple[str, Any]] = []

    class Counter:  # not a Hooks subclass
        def batch_started(self, event_type: str, size: int) -> None:
            seen.append(("started", size))

        def record_failed(self, record: Any, exception: BaseException, attempts: int) -> None:
            seen.append(("failed", str(exception)))

    target = Counter()
    hooks = coerce_hooks(target)
    assert isinstance(hooks, Hooks)
    assert implemented_hooks(hooks) == {"batch_started", "record_failed"}
    for name, params in HOOK_METHODS.items():
        getattr(hooks, name)(*[None] * len(params))  # all seven exist and can be called
    assert seen == [("started", None), ("failed", "None")]
    assert "Counter" in repr(hooks)


async def _run_with(hooks: Any) -> asyncbatch.BatchReport:
    async def handle(record: Any) -> None:
        if record.identifier == "m2":
            raise ValueError("no")

    event = {"Records": [{"messageId": f"m{i}", "body": "{}", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q"}
                         for i in range(4)]}
    processor = asyncbatch.AsyncBatchProcessor(hooks=hooks, log_summary=False)
    return await processor.process(event, handle)


def test_the_processor_accepts_an_object_with_one_method() -> None:
    """The contract end to end: a plain object with batch_finished only observes the batch.
    (Needs AsyncBatchProcessor to call coerce_hooks.)"""
    import asyncio

    class Finished:
        def __init__(self) -> None:
            self.reports: list[Any] = []

        def batch_finished(self, report: Any) -> None:
            self.reports.append(report)

    observer = Finished()
    report = asyncio.run(_run_with(observer))
    assert observer.reports == [report]
    assert report.counts["failed"] == 1


@pytest.mark.parametrize(("obj", "says"), [
    (object(), "none of the hook methods"),
    (lambda report: None, "none of the hook methods"),
    (type("T", (), {"batch_finished": 3})(), "batch_finished is 3"),
    (type("T", (Hooks,), {"record_started": None})(), "record_started is None"),
    (type("T", (), {"batch_finished": lambda self: None})(), "cannot take the arguments"),
    (type("T", (), {"record_skipped": lambda self, record: None})(), "record_skipped"),
])
def test_unusable_hooks_say_how_to_fix_them(obj: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        coerce_hooks(obj)


def test_async_hook_methods_are_refused() -> None:
    class Async:
        async def batch_finished(self, report: Any) -> None:
            pass

    with pytest.raises(ConfigurationError, match="async def"):
        coerce_hooks(Async())


def test_hooks_typing_accepts_partial_objects(tmp_path: Path) -> None:
    """``HooksLike`` (what ``hooks=`` can be annotated with): mypy accepts a plain object
    with one of the methods, whatever its parameter names, and refuses one with none."""
    pytest.importorskip("mypy")
    snippet = tmp_path / "hooks_typing.py"
    snippet.write_text(
        "from typing import Any\n"
        "from asyncbatch._core.hooks import HooksLike\n"
        "class One:\n"
        "    def batch_finished(self, r: Any) -> None: ...\n"
        "class Nothing:\n"
        "    def other(self) -> None: ...\n"
        "ok: HooksLike = One()\n"
        "bad: HooksLike = Nothing()  # line 8\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True, text=True, cwd=ROOT.parent)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["8"], out.stdout


def test_the_pollers_former_names_still_work() -> None:
    from asyncbatch import runner

    assert runner.SQSSource is runner.SQSPoller
    assert runner.KinesisSource is runner.KinesisPoller
    assert runner.DynamoDBStreamSource is runner.DynamoDBStreamPoller
    assert runner.Source is runner.Poller



#: Every public module and its ``__all__`` before the layout of docs/design.md (the
#: engine in _core/, idempotency/, _lambda/): each name still imports from its path.
BEFORE_THE_LAYOUT: dict[str, tuple[str, ...]] = {
    'asyncbatch': (
        'AIMDLimit', 'AsyncBatchError', 'AsyncBatchProcessor', 'BatchFailedError',
        'BatchIdempotency', 'BatchReport', 'CallbackError', 'ConcurrencyLimit',
        'ConfigurationError', 'DROPPED', 'DeadlineExceededError', 'DynamoDBRecord', 'EventType',
        'Failure', 'FailureSink', 'FirehoseRecord', 'FirehoseResult', 'GradientLimit', 'Handler',
        'HandlerCancelledError', 'Hooks', 'Idempotency', 'IdempotencyError',
        'IdempotencyInProgressError', 'IdempotencyItem', 'IdempotencyKeyError',
        'IdempotencyStore', 'IdempotencyStoreError', 'IdempotencyValidationError',
        'InMemoryIdempotencyStore', 'InvalidEventError', 'InvalidResponseError', 'KafkaRecord',
        'KinesisRecord', 'Outcome', 'RateLimit', 'Record', 'RecordDecodeError', 'RecordError',
        'RecordSkippedError', 'RecordTimeoutError', 'RecordValidationError', 'Replay',
        'ResponseTooLargeError', 'Retry', 'SQSRecord', 'SinkError', 'Stream', 'TransientError',
        'Window', 'WindowReducer', 'WindowedLimit', 'async_process_partial_response',
        'is_transient', 'process_partial_response',
    ),
    'asyncbatch.aws': (),
    'asyncbatch.aws.idempotency': (
        'BATCH_GET_MAX_KEYS', 'BATCH_WRITE_MAX_ITEMS', 'DynamoDBIdempotencyStore',
    ),
    'asyncbatch.aws.s3_import': (
        'BATCH_SIZE', 'Clients', 'CsvDecodeError', 'CsvHeaderError', 'ImportDeadlineError',
        'ImportIncompleteError', 'ImportProgress', 'ImportResult', 'MESSAGE_LIMIT',
        'ObjectResult', 'RowError', 'S3CsvImporter', 'S3ImportError', 'S3MoveError', 'S3Object',
        'import_csv_objects', 'neutralise', 's3_objects',
    ),
    'asyncbatch.aws.sqs': (
        'ConsumeSummary', 'DEFAULT_MAX_MESSAGE_BYTES', 'SQSDeadLetterSink', 'SQSSinkError',
        'SQS_MAX_BATCH', 'consume',
    ),
    'asyncbatch.powertools': (
        'AsyncBatchProcessor', 'BasePartialBatchProcessor', 'BasePartialProcessor',
        'BatchProcessor', 'BatchTypeModels', 'DEFAULT_ASYNC_CONCURRENCY', 'EventType',
        'ExceptionInfo', 'FailureResponse', 'SqsFifoPartialProcessor', 'SuccessResponse',
        'async_batch_processor', 'async_process_partial_response', 'batch_processor',
        'exceptions', 'process_partial_response',
    ),
    'asyncbatch.powertools.exceptions': (
        'BaseBatchProcessingError', 'BatchProcessingError', 'ExceptionInfo',
        'SQSFifoCircuitBreakerError', 'SQSFifoMessageGroupCircuitBreakerError',
        'UnexpectedBatchTypeError',
    ),
    'asyncbatch.runner': (
        'BatchResult', 'CheckpointStore', 'Counters', 'DynamoDBCheckpointStore',
        'DynamoDBStreamSource', 'FunctionTimeoutError', 'InvalidResponseError', 'KinesisSource',
        'LambdaContext', 'LambdaHandler', 'MemoryCheckpointStore', 'OnFailure', 'Runner',
        'RunnerError', 'SQSSource', 'Source', 'parse_response',
    ),
    'asyncbatch.telemetry': (
        'EMFHooks', 'OpenTelemetryHooks',
    ),
    'asyncbatch.telemetry.emf': (
        'EMFHooks', 'METRICS',
    ),
    'asyncbatch.telemetry.otel': (
        'OpenTelemetryHooks',
    ),
    'asyncbatch.testing': (
        'ClientContext', 'CognitoIdentity', 'InvalidResponseError', 'Invocation', 'LambdaContext',
        'Simulation', 'dynamodb_event', 'eventbridge_sqs_event', 'firehose_event', 'kafka_event',
        'kinesis_event', 'pipes_event', 's3_event', 'simulate', 'simulate_lambda',
        'sns_sqs_event', 'sqs_event',
    ),
    'asyncbatch.testing.pytest_plugin': (
        'dynamodb_event', 'eventbridge_sqs_event', 'firehose_event', 'kafka_event',
        'kinesis_event', 'lambda_context', 'pipes_event', 'pytest_configure', 's3_event',
        'sns_sqs_event', 'sqs_event',
    ),
    'asyncbatch.testing.strategies': (
        'dynamodb_events', 'events', 'firehose_events', 'kafka_events', 'kinesis_events',
        'ordering_keys', 'payloads', 'pipes_batches', 'sns_sqs_events', 'sqs_events',
    ),
}


@pytest.mark.parametrize("module", sorted(BEFORE_THE_LAYOUT))
def test_every_former_import_path_still_works(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in BEFORE_THE_LAYOUT[module] if not hasattr(imported, name)]
    assert not missing, f"{module} no longer has {missing}"
    assert set(BEFORE_THE_LAYOUT[module]) <= set(imported.__all__)


def test_the_local_aws_keeps_its_former_path() -> None:
    from asyncbatch.aws import _local, local

    assert _local.local_aws is local.local_aws
    assert _local.local_aws_process is local.local_aws_process
    assert _local.LOCAL_ENV is local.LOCAL_ENV
