"""The public surface: names fixed by SEMANTICS.md, __all__ in sync, a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncbatch

FIXED = {  # SEMANTICS.md: users' code depends on these names
    "AsyncBatchProcessor", "EventType", "BatchReport", "BatchFailedError",
    "InvalidEventError", "process_partial_response", "async_process_partial_response",
}


def test_all_matches_the_real_exports() -> None:
    public = {name for name in vars(asyncbatch) if not name.startswith("_")}
    modules = {name for name, value in vars(asyncbatch).items()
               if type(value).__name__ == "module"}
    assert set(asyncbatch.__all__) == public - modules
    assert len(asyncbatch.__all__) == len(set(asyncbatch.__all__))
    assert set(asyncbatch.__all__) >= FIXED


def test_event_type_names() -> None:
    assert {e.value for e in asyncbatch.EventType} == {
        "SQS", "KinesisDataStreams", "DynamoDBStreams"}
    assert asyncbatch.EventType.SQS == "SQS"


def test_error_tree() -> None:
    for name in ("InvalidEventError", "ConfigurationError", "BatchFailedError", "RecordError",
                 "RecordDecodeError", "RecordValidationError", "RecordTimeoutError",
                 "DeadlineExceededError", "SinkError", "RecordSkippedError"):
        assert issubclass(getattr(asyncbatch, name), asyncbatch.AsyncBatchError), name
    assert issubclass(asyncbatch.InvalidEventError, ValueError)
    assert issubclass(asyncbatch.RecordTimeoutError, TimeoutError)


def test_package_is_typed() -> None:
    assert (Path(asyncbatch.__file__).parent / "py.typed").exists()


def test_import_is_cheap() -> None:
    code = (
        "import sys, json, asyncbatch; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'boto3', 'botocore', 'aioboto3', 'aiobotocore', 'moto', "
        "'aiohttp', 'trio', 'numpy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_cli_entry_point_lists_its_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "asyncbatch", "--help"], capture_output=True,
                         text=True, check=True)
    assert "demo" in out.stdout
