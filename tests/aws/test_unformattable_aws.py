"""Exceptions that cannot be formatted, on the AWS paths, against the moto server: the
SQS dead-letter sink's payload and the S3 import's errors report, result and SNS summary.
(The exceptions and checks are ``test_unformattable``'s.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("aioboto3")
pytest.importorskip("pydantic")

from pydantic import field_validator

from asyncbatch import AsyncBatchProcessor
from asyncbatch._errors import exception_text
from asyncbatch.aws.sqs import SQSDeadLetterSink
from tests._support.events import make_event
from tests.aws.test_s3_import import (  # noqa: F401 - fixtures
    BUCKET,
    Aws,
    Student,
    env,
    importer,
    s3_event,
    students,
)
from tests.aws.test_sqs_sink import drain, make_queue, sqs  # noqa: F401 - fixtures
from tests.core.test_unformattable import BAD, assert_safe

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """aioboto3 runs on asyncio only."""
    return "asyncio"


# -- the SQS dead-letter sink --------------------------------------------------------------


@pytest.mark.parametrize("make", BAD)
async def test_the_dead_letter_message_of_an_unformattable_exception(
        sqs: Any, make: Callable[[], BaseException]) -> None:  # noqa: F811
    dlq = await make_queue(sqs, "dlq")
    raised: list[BaseException] = []

    async def handle(record: Any) -> None:
        raised.append(make())
        raise raised[-1]

    processor = AsyncBatchProcessor(sink=SQSDeadLetterSink(dlq, client=sqs),
                                    log_summary=False)
    report = await processor.process(make_event("sqs", "a"), handle)

    assert [o.exception for o in report.sunk] == raised  # accepted: the record is handled
    (message,) = await drain(sqs, dlq)
    assert len(message["Body"].encode()) <= 256 * 1024
    error = json.loads(message["Body"])["error"]
    assert error["message"] == exception_text(raised[0])  # the shared formatter's text
    assert_safe(error["message"])
    assert error["truncated"] is False  # bounded text fits: nothing had to be cut
    assert_safe(error["traceback"], limit=25_000)
    assert "test_unformattable_aws" in error["traceback"]  # the handler's frame
    assert message["MessageAttributes"]["ErrorType"]["StringValue"].endswith(
        type(raised[0]).__qualname__)


# -- the S3 CSV import ---------------------------------------------------------------------


class Bad(RuntimeError):
    """Not a ValueError: pydantic lets it through a validator, so it stops the import."""


class BadStr(Bad):
    def __str__(self) -> str:
        return "%s: %s" % self.args  # noqa: UP031 - the bug under test


class BadRepr(Bad):
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class BadBoth(Bad):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _bad_runtime(kind: str) -> BaseException:
    if kind == "str-raises":
        return BadStr("one")
    if kind == "repr-raises":
        return BadRepr("no repr")
    if kind == "str-and-repr-raise":
        return BadBoth()
    if kind == "huge":
        return Bad("x" * 3_000_000)
    return Bad("bytes from a socket: \udcff\udcfe, then text")


KINDS = ["str-raises", "repr-raises", "str-and-repr-raise", "huge", "lone-surrogates"]


def _read_report(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


@pytest.mark.parametrize("make", BAD)
async def test_an_item_function_raising_an_unformattable_error_rejects_its_row_only(
        env: Aws, make: Callable[[], BaseException]) -> None:  # noqa: F811
    def item(model: Student) -> dict[str, Any]:
        if model.student_id == "A10001":
            raise make()  # a ValueError: the row cannot be stored
        return model.model_dump()

    await env.put("items.csv", students(3))
    (obj,) = (await importer(env, item=item).run(s3_event(BUCKET, "items.csv"))).objects

    assert (obj.status, obj.rows_written, obj.rows_rejected) == ("rejected", 2, 1)
    (error,) = obj.errors
    assert error.line == 3 and error.message.startswith("cannot be stored in DynamoDB: ")
    assert_safe(error.message)
    assert obj.errors_key is not None
    data = await env.get(obj.errors_key)
    assert data is not None
    table = _read_report(data)
    assert [row[:2] for row in table[1:]] == [["3", error.message]]
    (message,) = await env.messages()
    assert message["body"]["status"] == "rejected"
    assert_safe(message["body"]["first_errors"][0]["message"])


@pytest.mark.parametrize("kind", KINDS)
async def test_a_validator_raising_an_unformattable_error_fails_the_object_clearly(
        env: Aws, kind: str) -> None:  # noqa: F811
    raised: list[BaseException] = []

    class Picky(Student):
        @field_validator("lname")
        @classmethod
        def _check(cls, value: str) -> str:
            raised.append(_bad_runtime(kind))
            raise raised[-1]

    await env.put("picky.csv", students(2))
    (obj,) = (await _run_with(env, Picky, "picky.csv")).objects

    assert obj.status == "failed" and obj.exception is raised[0]
    assert obj.unfinished is None  # the report, the move and the summary all done
    assert obj.error is not None and obj.error.startswith(type(raised[0]).__name__)
    assert_safe(obj.error)
    json.dumps(obj.to_dict())
    assert obj.errors_key is not None
    data = await env.get(obj.errors_key)
    assert data is not None
    assert [row[1] for row in _read_report(data)[1:]] == [obj.error]
    (message,) = await env.messages()
    assert message["body"]["status"] == "failed"
    assert_safe(message["body"]["error"])


async def _run_with(env: Aws, model: type[Any], key: str) -> Any:  # noqa: F811
    from asyncbatch.aws.s3_import import S3CsvImporter
    from tests.aws.test_s3_import import TABLE

    chosen = S3CsvImporter(model, TABLE, topic_arn=env.topic, concurrency=8,
                           session=env.session)
    return await chosen.run(s3_event(BUCKET, key))
