"""S3 -> Lambda -> DynamoDB -> SNS: import the student CSV files dropped into a bucket.

A CSV put under ``incoming/`` triggers this function. Every row is validated against
``Student``; valid rows go to the DynamoDB table (``student_id`` hash key, ``course``
range key) with BatchWriteItem, 16 requests in flight; one summary goes to the SNS
topic; the file moves to ``archive/`` (every row written) or ``error/``, and the
rejected rows with why go to ``reports/<key>.errors.csv``, in the same bucket. If the
move or the summary does not finish, the function raises so that S3 invokes it again.

Configuration (environment):

- ``TABLE_NAME`` (required): the DynamoDB table.
- ``TOPIC_ARN`` (optional): the SNS topic for the summaries.
- ``CONCURRENCY`` (optional, default 16): BatchWriteItem requests in flight.
- ``AWS_ENDPOINT_URL`` (optional): another endpoint for every AWS client, e.g. a moto
  server for local runs (botocore reads it).

Sample file::

    student_id,fname,lname,course
    A10001,Jack,Reacher,"Advanced Physical Security"
    A10002,Sherlock,Holmes,"Science Of Deduction"
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from pydantic import BaseModel, Field

from asyncbatch.aws.s3_import import S3CsvImporter

logging.getLogger().setLevel(logging.INFO)


class Student(BaseModel):
    """One row of the file. Blanks around cells are stripped by the importer; an empty
    cell is a missing value, so a required column left empty rejects the row."""

    student_id: str = Field(pattern=r"^[A-Z]\d{5}$", description="e.g. A10001")
    fname: str = Field(min_length=1, max_length=100)
    lname: str = Field(min_length=1, max_length=100)
    course: str = Field(min_length=1, max_length=200)


def importer() -> S3CsvImporter[Student]:
    """The importer the environment configures, made once per configuration and kept
    for the warm invocations of this container (it keeps its aioboto3 session, whose
    service models take a moment to load)."""
    table = os.environ.get("TABLE_NAME")
    if not table:
        raise RuntimeError("set TABLE_NAME to the DynamoDB table's name")
    return _importer(table, os.environ.get("TOPIC_ARN") or None,
                     int(os.environ.get("CONCURRENCY", "16")))


@functools.lru_cache(maxsize=4)
def _importer(table: str, topic_arn: str | None, concurrency: int) -> S3CsvImporter[Student]:
    return S3CsvImporter(
        Student,
        table,
        topic_arn=topic_arn,
        concurrency=concurrency,
        # The table's keys, given here so that no DescribeTable permission is needed.
        key_attributes=("student_id", "course"),
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The S3 notification in, a JSON summary per object out (also sent to SNS)."""
    return importer().lambda_handler(event, context)
