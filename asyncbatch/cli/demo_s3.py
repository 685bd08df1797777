"""The S3 CSV import, end to end, on whatever ``AWS_ENDPOINT_URL`` points at (a moto
server for ``asyncbatch demo``): bucket, table, topic and a queue subscribed to it are
made, a CSV of students is generated and uploaded, and the import runs on a real S3
event notification."""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import time
import uuid
from typing import Any, Callable, Optional
from urllib.parse import quote_plus

from pydantic import BaseModel, Field

from ..aws.s3_import import ImportProgress, ImportResult, S3CsvImporter

__all__ = ["MAX_ROWS", "STUDENT_TABLE", "DemoStudent", "make_csv", "run_s3_demo", "student_id"]

Out = Callable[[str], Any]

# The seed's student table: all courses of a student under one hash key.
STUDENT_TABLE: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "student_id", "AttributeType": "S"},
                             {"AttributeName": "course", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "student_id", "KeyType": "HASH"},
                  {"AttributeName": "course", "KeyType": "RANGE"}],
    "BillingMode": "PAY_PER_REQUEST",
}
TABLE = "asyncbatch-demo-students"
TOPIC = "asyncbatch-demo-imports"
QUEUE = "asyncbatch-demo-imports"
KEY = "incoming/students 2024-spring.csv"

_FIRST = ["Jack", "Sherlock", "Jane", "Hercule", "Nero", "Miss", "Kinsey", "Easy", "Lisbeth",
          "Kurt", "Precious", "Cormoran", "Adam", "Vera", "Harry", "Tempe", "Zoë", "Åsa",
          "Dorothy", "Philip", "Amelia", "Mikael", "Salvo", "Maigret", "Ruth", "Bernie"]
_LAST = ["Reacher", "Holmes", "Marple", "Poirot", "Wolfe", "Millhone", "Rawlins", "Salander",
         "Wallander", "Ramotswe", "Strike", "Dalgliesh", "Stanhope", "Bosch", "Brennan",
         "Larsson", "Sayers", "Marlowe", "Peabody", "Blomkvist", "Montalbano", "Galloway",
         "O'Brien", "Núñez"]
_COURSES = ["Advanced Physical Security", "Science Of Deduction", "Modern Forensics",
            "Knitting For Pros", "Orchid Cultivation", "Criminal Psychology",
            "Cryptography, Classical and Modern", "Fingerprint Analysis",
            "Interrogation Techniques", "Toxicology 101", "Surveillance \"In Practice\"",
            "Cold Case Review", "Chess For Detectives", "Lock Picking"]


class DemoStudent(BaseModel):
    """The seed's record (the example Lambda function uses the same)."""

    student_id: str = Field(pattern=r"^[A-Z]\d{5}$")
    fname: str = Field(min_length=1, max_length=100)
    lname: str = Field(min_length=1, max_length=100)
    course: str = Field(min_length=1, max_length=200)


# Student ids are a letter and five digits (DemoStudent's pattern): A10001 ... A99999,
# B10000 ... Z99999, 2,339,999 students; each takes at least one course.
_IDS_PER_LETTER = 90_000
MAX_STUDENTS = 26 * _IDS_PER_LETTER - 1
MAX_ROWS = 2_000_000  # the demo's bound: every row gets a valid id (at most one per row)


def student_id(number: int) -> str:
    """The id of the ``number``-th student (1-based): ``A10001``, ... ``A99999``,
    ``B10000``, ... always a letter and five digits."""
    if not 1 <= number <= MAX_STUDENTS:
        raise ValueError(f"student {number}: the demo's ids run from 1 to {MAX_STUDENTS:,}")
    letter, rest = divmod(number, _IDS_PER_LETTER)
    return f"{chr(ord('A') + letter)}{10_000 + rest}"


def make_csv(rows: int, *, seed: int = 7) -> tuple[bytes, dict[int, str], int]:
    """A CSV of ``rows`` data rows (1 to ``MAX_ROWS``): students A10001, A10002, ...
    (:func:`student_id`) taking one to three courses each, with a few invalid rows (about
    one in 2,000, at least three); returns the bytes, the invalid rows' line numbers with
    what is wrong with them, and the number of students."""
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"rows={rows!r}: give a whole number from 1 to {MAX_ROWS:,}")
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student_id", "fname", "lname", "course"])
    bad: dict[int, str] = {}
    faults = max(3, rows // 2000)
    bad_at = set(rng.sample(range(rows), min(faults, rows))) if rows else set()
    kinds = ["empty first name", "malformed student id", "empty course", "extra column"]
    written = 0
    student = 0
    while written < rows:
        student += 1
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        for course in rng.sample(_COURSES, rng.randint(1, 3)):
            if written >= rows:
                break
            row = [student_id(student), first, last, course]
            if written in bad_at:
                kind = kinds[len(bad) % len(kinds)]
                if kind == "empty first name":
                    row[1] = ""
                elif kind == "malformed student id":
                    row[0] = f"S-{10_000 + student}"
                elif kind == "empty course":
                    row[3] = "  "
                else:
                    row.append("unexpected")
                bad[written + 2] = kind  # line numbers: the header is line 1
            writer.writerow(row)
            written += 1
    return out.getvalue().encode("utf-8"), bad, student


def s3_put_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Put`` notification as Lambda receives it."""
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:DEMO"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper()},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "csv-import",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "DEMO"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size,
                       "eTag": etag.strip('"'), "sequencer": "0055AED6DCD90281E5"},
        },
    }]}


class _Progress:
    """On stderr: one updating line on a terminal; elsewhere a line when the import
    starts, every ``every`` seconds, and when it is done (whatever the file's size).

    The share shown is of the rows (``rows``: the file's data rows, which the demo knows
    since it wrote the file): the bytes downloaded run ahead of the rows parsed, so a
    share of bytes would say 100% with a few hundred rows read. Without ``rows``, the
    line says how much of the file was downloaded, in those words."""

    def __init__(self, rows: Optional[int] = None, every: float = 2.0) -> None:
        self.rows = rows
        self.tty = sys.stderr.isatty()
        self.every = every
        self.last_line: Optional[float] = None
        self.shown = False

    def line(self, p: ImportProgress) -> str:
        rate = p.rows_written / p.elapsed if p.elapsed > 0 else 0.0
        if self.rows:
            read = (f"read {p.rows_read:>7,} of {self.rows:,} rows "
                    f"({min(p.rows_read / self.rows, 1.0):4.0%})")
        else:
            downloaded = (f"{p.bytes_read / p.bytes_total:4.0%}" if p.bytes_total
                          else "  ? ")
            read = f"read {p.rows_read:>7,} rows ({downloaded} of the file downloaded)"
        return (f"  {read}  {p.rows_written:>7,} written  {p.rows_rejected:>3} rejected  "
                f"{rate:>7,.0f} rows/s")

    def __call__(self, p: ImportProgress) -> None:
        text = self.line(p)
        if self.tty:
            sys.stderr.write("\r" + text)
            sys.stderr.flush()
            self.shown = True
        else:
            now = time.monotonic()
            if self.last_line is None or now - self.last_line >= self.every or p.done:
                self.last_line = now
                print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def run_s3_demo(rows: int = 20000, *, out: Out = print,
                      progress: bool = True) -> ImportResult:
    """Run the S3 -> Lambda -> DynamoDB -> SNS pipeline once on the endpoint in
    ``AWS_ENDPOINT_URL`` (resources are created there); print what happened."""
    import aioboto3

    session = aioboto3.Session()
    bucket = f"asyncbatch-demo-{uuid.uuid4().hex[:12]}"
    async with session.client("s3") as s3, session.client("dynamodb") as dynamodb, \
            session.client("sns") as sns, session.client("sqs") as sqs:
        out(f"creating bucket {bucket}, table {TABLE} (student_id + course), topic {TOPIC} "
            f"and queue {QUEUE} subscribed to it")
        await s3.create_bucket(Bucket=bucket)
        try:
            await dynamodb.create_table(
                TableName=TABLE, **STUDENT_TABLE)
        except dynamodb.exceptions.ResourceInUseException:
            pass  # made by an earlier run on the same endpoint
        await dynamodb.get_waiter("table_exists").wait(
            TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        topic = (await sns.create_topic(Name=TOPIC))["TopicArn"]
        queue = (await sqs.create_queue(QueueName=QUEUE))["QueueUrl"]
        await sqs.purge_queue(QueueUrl=queue)
        queue_arn = (await sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        await sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        data, bad, students = make_csv(rows)
        put = await s3.put_object(Bucket=bucket, Key=KEY, Body=data, ContentType="text/csv")
        out(f"uploaded s3://{bucket}/{KEY}: {rows:,} rows, {len(data) / 1e6:.1f} MB, "
            f"{len(bad)} of them invalid on purpose (lines {', '.join(map(str, sorted(bad)))})")
        event = s3_put_event(bucket, KEY, len(data), put["ETag"])
        del data
        out(f"S3 event: Records[0].s3.object.key = {event['Records'][0]['s3']['object']['key']!r}")

        meter = _Progress(rows) if progress else None
        importer = S3CsvImporter(DemoStudent, TABLE, topic_arn=topic, concurrency=16,
                                 key_attributes=("student_id", "course"),
                                 on_progress=meter, progress_interval=0.2)
        try:
            result = await importer.run(event)
        finally:
            if meter is not None:
                meter.close()

        for obj in result.objects:
            rate = obj.rows_written / obj.duration if obj.duration else 0.0
            out(f"\n{obj.status.upper()}: s3://{obj.bucket}/{obj.key}")
            out(f"  rows read {obj.rows_read:,}, written {obj.rows_written:,}, duplicate "
                f"{obj.rows_duplicate}, rejected {obj.rows_rejected}, unwritten "
                f"{obj.rows_unwritten}")
            out(f"  {obj.duration:.2f} s, {rate:,.0f} rows/s, {obj.write_retries} write "
                "retries")
            if obj.error:
                out(f"  error: {obj.error}")
            out(f"  moved to s3://{obj.bucket}/{obj.destination_key}")
            if obj.errors_key:
                out(f"  rejected rows with their errors: s3://{obj.bucket}/{obj.errors_key}")
            for error in obj.errors[:5]:
                out(f"    line {error.line}: {error.message}")

        messages = (await sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)).get("Messages", [])
        for message in messages:
            envelope = json.loads(message["Body"])
            summary = json.loads(envelope["Message"])
            out(f"\nSNS summary (read back from SQS): {envelope.get('Subject')}")
            out("  " + json.dumps({k: summary[k] for k in ("status", "rows", "duration_seconds")
                                   if k in summary}))

        picks = sorted({1, max(1, students // 2), max(1, students)})
        out("\nitems read back (all courses of a student: the seed's access pattern):")
        for number in picks:
            found = await dynamodb.query(
                TableName=TABLE, KeyConditionExpression="student_id = :s",
                ExpressionAttributeValues={":s": {"S": student_id(number)}})
            for item in found["Items"]:
                out("  " + ", ".join(f"{k}={item[k]['S']}"
                                     for k in ("student_id", "fname", "lname", "course")))
    return result
