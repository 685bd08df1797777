"""The S3 CSV import under AWS faults: throttling, 5xx, a failed copy, delete or publish.

The importer talks to moto through ``tests/_support/faultproxy.py``, which answers chosen
requests as AWS does when it throttles or fails; the test's own clients talk to moto
directly. Faults are picked by counting or by a seeded draw, so every run sees the same.
The importer's ``lambda_handler`` is the entry point, as in Lambda.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("aioboto3")
pytest.importorskip("pydantic")

from pydantic import BaseModel, Field

from asyncbatch import Retry
from asyncbatch.aws.s3_import import ImportIncompleteError, S3CsvImporter
from asyncbatch.cli.demo_s3 import STUDENT_TABLE
from asyncbatch.testing import LambdaContext

from .._support.faultproxy import Fault, FaultProxy

BUCKET = "inbound-faults"
TABLE = "FAULT_STUDENTS"
HEADER = "student_id,fname,lname,course\n"


class Student(BaseModel):
    student_id: str = Field(pattern=r"^A\d{5}$")
    fname: str = Field(min_length=1)
    lname: str = Field(min_length=1)
    course: str = Field(min_length=1)


def students(n: int, bad: int = 0, start: int = 0) -> str:
    rows = [f"A{10000 + i:05d},F{i},L{i},Course {i % 5}\n" for i in range(start, start + n)]
    rows += [f"bad{i},,x,y\n" for i in range(bad)]
    return HEADER + "".join(rows)


def event(*keys: str) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
                        for key in keys]}


class World:
    """moto's resources, read and written directly (not through the proxy)."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        sns = boto3.client("sns", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", endpoint_url=endpoint)
        self.s3.create_bucket(Bucket=BUCKET)
        self.dynamodb.create_table(TableName=TABLE, **STUDENT_TABLE)
        self.topic = sns.create_topic(Name="fault-imports")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="fault-imports")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=self.topic, Protocol="sqs",
                      Endpoint=arn["Attributes"]["QueueArn"])

    def listing(self) -> list[str]:
        response = self.s3.list_objects_v2(Bucket=BUCKET)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    def get(self, key: str) -> bytes:
        data: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return data

    def count(self) -> int:
        return int(self.dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"])

    def summaries(self) -> list[dict[str, Any]]:
        found = []
        for _ in range(5):
            response = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            for message in response.get("Messages", []):
                found.append(json.loads(json.loads(message["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=self.queue,
                                        ReceiptHandle=message["ReceiptHandle"])
            if not response.get("Messages"):
                break
        return found


@pytest.fixture
def world(aws: str) -> World:
    return World(aws)


@pytest.fixture
def proxy(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The proxy in front of moto; the importer's clients (made from the environment)
    go through it."""
    with FaultProxy(aws, seed=7) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


def importer(world: World) -> S3CsvImporter[Student]:
    return S3CsvImporter(Student, TABLE, topic_arn=world.topic, concurrency=4,
                         key_attributes=("student_id", "course"),
                         retry=Retry(attempts=12, base=0.001, cap=0.02, seed=1))


def test_throttling_and_5xx_on_every_step_still_import_everything(
        world: World, proxy: FaultProxy) -> None:
    """A third of the writes throttled, and each other call failing or throttled a few
    times: retried in-process (botocore's own retries are off), the result is the same
    as without faults."""
    world.s3.put_object(Bucket=BUCKET, Key="incoming/ok.csv", Body=students(120).encode())
    world.s3.put_object(Bucket=BUCKET, Key="incoming/bad.csv",
                        Body=students(30, bad=2, start=500).encode())
    proxy.add(Fault("BatchWriteItem", "throttle", rate=0.33))
    proxy.add(Fault("GetObject", "5xx", times=2))
    proxy.add(Fault("PutObject", "5xx", times=1))
    proxy.add(Fault("HeadObject", "throttle", times=2))
    proxy.add(Fault("CopyObject", "throttle", times=2))
    proxy.add(Fault("CopyObject", "5xx", times=1))
    proxy.add(Fault("Publish", "throttle", times=1))
    proxy.add(Fault("Publish", "5xx", times=1))
    proxy.add(Fault("DeleteObject", "throttle", times=1))
    proxy.add(Fault("DeleteObject", "5xx", times=2))

    response = importer(world).lambda_handler(event("incoming/ok.csv", "incoming/bad.csv"),
                                              LambdaContext(300.0))

    ok, bad = response["objects"]
    assert (ok["status"], ok["rows"]["written"], ok["unfinished"]) == ("archived", 120, None)
    assert (bad["status"], bad["rows"]["written"], bad["rows"]["rejected"]) == \
        ("rejected", 30, 2)
    assert ok["write_retries"] + bad["write_retries"] > 0
    assert world.count() == 150
    assert world.listing() == ["archive/incoming/ok.csv", "error/incoming/bad.csv",
                            "reports/incoming/bad.csv.errors.csv"]
    report = world.get("reports/incoming/bad.csv.errors.csv").decode()
    assert [row[2] for row in csv.reader(io.StringIO(report))] == \
        ["student_id", "bad0", "bad1"]  # the retried put sent the whole report
    assert sorted(s["status"] for s in world.summaries()) == ["archived", "rejected"]
    for op in ("BatchWriteItem", "GetObject", "PutObject", "HeadObject", "CopyObject",
               "Publish", "DeleteObject"):
        assert proxy.injected[op] > 0, op


def test_copy_done_but_delete_failed_fails_the_invocation_and_the_retry_finishes(
        world: World, proxy: FaultProxy) -> None:
    world.s3.put_object(Bucket=BUCKET, Key="incoming/s.csv", Body=students(40).encode())
    imp = importer(world)
    proxy.add(Fault("DeleteObject", "5xx", times=1000))

    with pytest.raises(ImportIncompleteError, match="delete step") as caught:
        imp.lambda_handler(event("incoming/s.csv"), LambdaContext(300.0))

    (obj,) = caught.value.result.objects
    assert obj.status == "failed" and not obj.ok  # never "archived" with the file in place
    assert obj.unfinished is not None and obj.unfinished.step == "delete"
    assert obj.destination_key == "archive/incoming/s.csv" and obj.rows_written == 40
    assert world.listing() == ["archive/incoming/s.csv", "incoming/s.csv"]

    proxy.clear()  # S3 invokes the function again with the same event
    response = imp.lambda_handler(event("incoming/s.csv"), LambdaContext(300.0))

    (again,) = response["objects"]
    assert again["status"] == "archived" and again["unfinished"] is None
    assert again["destination_key"] == "archive/incoming/s.csv"  # the copy is reused
    assert world.listing() == ["archive/incoming/s.csv"] and world.count() == 40
    assert len(world.summaries()) == 2  # one per invocation (at least once)


def test_failed_sns_leaves_the_source_and_the_retry_finishes(
        world: World, proxy: FaultProxy) -> None:
    world.s3.put_object(Bucket=BUCKET, Key="incoming/n.csv", Body=students(5, bad=1).encode())
    imp = importer(world)
    proxy.add(Fault("Publish", "5xx", times=1000))

    with pytest.raises(ImportIncompleteError, match="publish step") as caught:
        imp.lambda_handler(event("incoming/n.csv"), LambdaContext(300.0))

    (obj,) = caught.value.result.objects
    assert obj.unfinished is not None and obj.unfinished.step == "publish"
    assert obj.message_id is None and obj.status == "failed"
    assert "incoming/n.csv" in world.listing() and world.summaries() == []

    proxy.clear()
    (again,) = imp.lambda_handler(event("incoming/n.csv"), LambdaContext(300.0))["objects"]
    assert again["status"] == "rejected" and again["unfinished"] is None
    # The report and the copy of the first run are the very same bytes: reused.
    assert world.listing() == ["error/incoming/n.csv", "reports/incoming/n.csv.errors.csv"]
    (summary,) = world.summaries()
    assert summary["status"] == "rejected"


def test_failed_copy_moves_nothing_and_the_retry_finishes(
        world: World, proxy: FaultProxy) -> None:
    world.s3.put_object(Bucket=BUCKET, Key="incoming/c.csv", Body=students(5, bad=1).encode())
    imp = importer(world)
    proxy.add(Fault("CopyObject", "throttle", times=1000))

    with pytest.raises(ImportIncompleteError, match="copy step") as caught:
        imp.lambda_handler(event("incoming/c.csv"), LambdaContext(300.0))

    (obj,) = caught.value.result.objects
    assert obj.unfinished is not None and obj.unfinished.step == "copy"
    assert obj.destination_key is None
    assert world.listing() == ["incoming/c.csv", "reports/incoming/c.csv.errors.csv"]
    (summary,) = world.summaries()  # the failure is published
    assert summary["unfinished"]["step"] == "copy"

    proxy.clear()
    (again,) = imp.lambda_handler(event("incoming/c.csv"), LambdaContext(300.0))["objects"]
    assert again["status"] == "rejected"
    assert world.listing() == ["error/incoming/c.csv", "reports/incoming/c.csv.errors.csv"]
    report = list(csv.reader(io.StringIO(world.get("reports/incoming/c.csv.errors.csv")
                                         .decode())))
    assert [row[0] for row in report] == ["line", "7"]


# -- the proxy itself ----------------------------------------------------------------


def test_proxy_picks_the_same_faults_for_the_same_seed() -> None:
    ops = ["BatchWriteItem", "CopyObject", "BatchWriteItem", "CopyObject", "CopyObject",
           "BatchWriteItem"] * 20
    picks = []
    for _ in range(2):
        proxy = FaultProxy("http://127.0.0.1:9", seed=3)
        proxy.add(Fault("BatchWriteItem", "throttle", rate=0.5))
        proxy.add(Fault("CopyObject", "5xx", times=2))
        picks.append([proxy.decide(op, "/bucket/key") is not None for op in ops])
    assert picks[0] == picks[1]
    copies = [picked for op, picked in zip(ops, picks[0]) if op == "CopyObject"]
    assert copies[:3] == [True, True, False] and not any(copies[2:])
    writes = [picked for op, picked in zip(ops, picks[0]) if op == "BatchWriteItem"]
    assert 0 < sum(writes) < len(writes)


def test_proxy_answers_as_aws_does_and_delays(aws: str) -> None:
    """What the proxy injects reaches botocore as AWS's own errors (codes, statuses),
    which the engine's retry predicate takes as transient; a delayed request still
    reaches moto."""
    import time

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from asyncbatch import is_transient

    with FaultProxy(aws) as proxy:
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        s3 = boto3.client("s3", endpoint_url=proxy.url, config=config)
        dynamodb = boto3.client("dynamodb", endpoint_url=proxy.url, config=config)
        sns = boto3.client("sns", endpoint_url=proxy.url, config=config)
        s3.create_bucket(Bucket=BUCKET)
        proxy.add(Fault("PutObject", "throttle", times=1))
        proxy.add(Fault("DeleteObject", "5xx", times=1))
        proxy.add(Fault("DescribeTable", "throttle", times=1))
        proxy.add(Fault("Publish", "throttle", times=1))
        calls: list[tuple[Callable[[], Any], str, int]] = [
            (lambda: s3.put_object(Bucket=BUCKET, Key="k", Body=b"x"), "SlowDown", 503),
            (lambda: s3.delete_object(Bucket=BUCKET, Key="k"), "InternalError", 500),
            (lambda: dynamodb.describe_table(TableName="t"), "ThrottlingException", 400),
            (lambda: sns.publish(TopicArn="arn:aws:sns:us-east-1:123456789012:t",
                                 Message="m"), "Throttling", 400),
        ]
        for call, code, status in calls:
            with pytest.raises(ClientError) as caught:
                call()
            assert caught.value.response["Error"]["Code"] == code
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
            assert is_transient(caught.value)
        proxy.add(Fault("HeadBucket", "delay", delay=0.3, times=1))
        started = time.monotonic()
        s3.head_bucket(Bucket=BUCKET)
        assert time.monotonic() - started >= 0.3  # a lower bound: load cannot break it
    assert proxy.injected == {"PutObject": 1, "DeleteObject": 1, "DescribeTable": 1,
                              "Publish": 1, "HeadBucket": 1}
