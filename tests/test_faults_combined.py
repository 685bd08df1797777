"""Faults where features meet: each test here failed on the engine before its fix.

An exception nobody can format, a stop rule across an await (an adaptive gate, a slow
failure sink, an idempotency release), a caller cancelling while claims are held, a sync
handler's thread outliving its timeout, a cancel request leaked onto a worker.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import asyncbatch
from asyncbatch import (
    CallbackError,
    Hooks,
    Retry,
    SinkError,
    TransientError,
)
from asyncbatch.testing import sqs_event

pytestmark = pytest.mark.anyio


def number(record: Any) -> int:
    return int(record.json()["n"])


def numbered_sqs(count: int, **kwargs: Any) -> dict[str, Any]:
    return sqs_event(*({"n": i} for i in range(count)), **kwargs)


def ids(report: asyncbatch.BatchReport) -> list[Any]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


# -- exceptions that cannot be formatted -------------------------------------------------


class BadStr(Exception):
    """A format-string bug in a custom exception: ``__str__`` raises TypeError."""

    def __str__(self) -> str:
        return "%s: %s" % self.args  # noqa: UP031 - one arg: "not enough arguments"


class BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken too")

    def __str__(self) -> str:
        raise RuntimeError("and str")


class BadStrTransient(TransientError):
    def __str__(self) -> str:
        raise ValueError("unprintable")


async def test_a_handler_exception_whose_str_raises_fails_only_its_record(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncbatch")

    async def handle(record: Any) -> None:
        if number(record) == 1:
            raise BadStr("only one argument")

    event = numbered_sqs(3)
    report = await asyncbatch.AsyncBatchProcessor().process(event, handle)
    assert [o.index for o in report.failed] == [1]
    assert isinstance(report.failed[0].exception, BadStr)
    assert report.response()["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][1]["messageId"]}]
    line = next(r for r in caplog.records if "failed" in r.getMessage() and r.levelno
                == logging.WARNING)
    assert "BadStr" in line.getMessage() and "str() raised TypeError" in line.getMessage()


def test_the_sync_entry_point_answers_when_a_handler_exception_cannot_be_formatted() -> None:
    async def handle(record: Any) -> None:
        if number(record) == 0:
            raise BadRepr()

    event = numbered_sqs(2)
    response = asyncbatch.process_partial_response(event, handle,
                                                   asyncbatch.AsyncBatchProcessor())
    assert response == {"batchItemFailures": [
        {"itemIdentifier": event["Records"][0]["messageId"]}]}


async def test_a_sink_raising_an_unformattable_exception_is_a_sink_error() -> None:
    async def sink(failure: asyncbatch.Failure) -> None:
        raise BadRepr()

    async def handle(record: Any) -> None:
        raise ValueError("poison")

    report = await asyncbatch.AsyncBatchProcessor(sink=sink).process(numbered_sqs(2), handle)
    assert len(report.failed) == 2
    for outcome in report.failed:
        assert isinstance(outcome.exception, SinkError)
        assert "BadRepr" in str(outcome.exception)


@pytest.mark.parametrize("method", ["record_started", "record_retried"])
async def test_a_hook_raising_an_unformattable_exception_fails_only_its_record(
        method: str) -> None:
    class Raising(Hooks):
        pass

    raised = []

    def hook(*args: Any) -> None:
        if not raised:  # once: the other records are innocent
            raised.append(1)
            raise BadRepr()

    hooks = Raising()
    setattr(hooks, method, hook)
    calls = 0

    async def handle(record: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("again")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=1, hooks=hooks, retry=Retry(attempts=3, base=0.0, cap=0.0))
    report = await processor.process(numbered_sqs(3), handle)
    assert len(report.failed) == 1
    error = report.failed[0].exception
    assert isinstance(error, CallbackError) and error.callback == f"hooks.{method}"
    assert "BadRepr" in str(error)
    assert len(report.succeeded) + len(report.failed) == 3


async def test_a_retry_predicate_raising_an_unformattable_exception_fails_its_record() -> None:
    def on(exc: BaseException) -> bool:
        raise BadRepr()

    async def handle(record: Any) -> None:
        if number(record) == 0:
            raise BadStrTransient()

    processor = asyncbatch.AsyncBatchProcessor(retry=Retry(attempts=3, on=on))
    report = await processor.process(numbered_sqs(2), handle)
    assert [o.index for o in report.failed] == [0]
    error = report.failed[0].exception
    assert isinstance(error, CallbackError) and "predicate" in error.callback
    assert isinstance(error.original, BadStrTransient)


async def test_sink_when_raising_an_unformattable_exception_fails_its_record() -> None:
    sunk: list[Any] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        sunk.append(failure)

    def when(exc: BaseException) -> bool:
        raise BadRepr()

    async def handle(record: Any) -> None:
        raise BadStr("x")

    processor = asyncbatch.AsyncBatchProcessor(sink=sink, sink_when=when)
    report = await processor.process(numbered_sqs(2), handle)
    assert not sunk
    assert [type(o.exception) for o in report.failed] == [CallbackError, CallbackError]


@pytest.mark.parametrize("text", ["x" * 100_000, "caf\udce9"])
async def test_huge_and_non_utf8_messages_are_logged_bounded_and_encodable(
        text: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asyncbatch")

    async def handle(record: Any) -> None:
        raise ValueError(text)

    report = await asyncbatch.AsyncBatchProcessor().process(numbered_sqs(1), handle)
    assert len(report.failed) == 1
    [line] = [r for r in caplog.records if "record" in r.getMessage()]
    message = line.getMessage()
    assert len(message) < 3_000
    message.encode("utf-8")  # raises if a lone surrogate got through
    assert line.asyncbatch["error"].encode("utf-8")  # type: ignore[attr-defined]


async def test_an_idempotency_key_function_raising_an_unformattable_exception() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()

    def key(record: Any) -> Any:
        if number(record) == 0:
            raise BadStr("k")
        return record.identifier

    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store, key))

    async def handle(record: Any) -> None:
        pass

    report = await processor.process(numbered_sqs(3), handle)
    assert [o.index for o in report.failed] == [0]
    assert isinstance(report.failed[0].exception, asyncbatch.IdempotencyKeyError)
    assert len(report.succeeded) == 2
    await anyio.lowlevel.checkpoint()
