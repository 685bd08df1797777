"""A model of another source's whole record (Powertools' ``KinesisDataStreamRecord`` on
SQS, or any model with another source's record fields) failed every record, forever. It
is refused before any handler runs, where the mismatch can be told: at construction when
the processor's ``event_type`` is given, else when the event shows its source."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("aws_lambda_powertools")

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamRecordModel,
    KafkaRecordModel,
    KinesisDataStreamRecord,
    SqsRecordModel,
)
from pydantic import BaseModel

import asyncbatch
from asyncbatch import AsyncBatchProcessor, ConfigurationError
from tests._support.events import make_event


class HasKinesis(BaseModel):
    """Any model with a Kinesis record's own fields."""

    kinesis: dict[str, Any]
    eventID: str = ""


class HasDynamoDB(BaseModel):
    dynamodb: dict[str, Any]


class Order(BaseModel):
    """A payload model: fine for any source."""

    n: int = 0


MISMATCHES = [
    pytest.param(KinesisDataStreamRecord, "SQS", "KinesisDataStreams", id="kinesis-on-sqs"),
    pytest.param(SqsRecordModel, "KinesisDataStreams", "SQS", id="sqs-on-kinesis"),
    pytest.param(DynamoDBStreamRecordModel, "SQS", "DynamoDBStreams", id="dynamodb-on-sqs"),
    pytest.param(KafkaRecordModel, "DynamoDBStreams", "Kafka", id="kafka-on-dynamodb"),
    pytest.param(HasKinesis, "SQS", "KinesisDataStreams", id="kinesis-fields-on-sqs"),
    pytest.param(HasDynamoDB, "KinesisDataStreams", "DynamoDBStreams",
                 id="dynamodb-fields-on-kinesis"),
]

EVENTS = {"SQS": "sqs", "KinesisDataStreams": "kinesis", "DynamoDBStreams": "dynamodb",
          "Kafka": "kafka"}


@pytest.mark.parametrize(("model", "events", "model_source"), MISMATCHES)
def test_a_model_of_another_source_is_refused_at_construction(
        model: type[BaseModel], events: str, model_source: str) -> None:
    with pytest.raises(ConfigurationError,
                       match=f"describes a whole {model_source} record, but these are "
                             f"{events} events") as caught:
        AsyncBatchProcessor(event_type=events, model=model)
    assert model.__name__ in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize(("model", "events", "model_source"), MISMATCHES)
async def test_a_model_of_another_source_is_refused_before_any_handler_runs(
        model: type[BaseModel], events: str, model_source: str) -> None:
    ran: list[Any] = []

    async def handle(record: Any) -> None:
        ran.append(record)

    processor = AsyncBatchProcessor(model=model)  # the source is told by the event
    with pytest.raises(ConfigurationError, match=f"these are {events} events"):
        await processor.process(make_event(EVENTS[events], "ab"), handle)
    assert ran == []


@pytest.mark.parametrize(("model", "events", "model_source"), MISMATCHES[:4])
def test_the_powertools_drop_in_refuses_it_at_construction(
        model: type[BaseModel], events: str, model_source: str) -> None:
    from asyncbatch.powertools import BatchProcessor, EventType

    with pytest.raises(ConfigurationError, match=f"whole {model_source} record"):
        BatchProcessor(EventType(events), model=model)


@pytest.mark.anyio
@pytest.mark.parametrize(("model", "source"), [
    (SqsRecordModel, "sqs"), (KinesisDataStreamRecord, "kinesis"),
    (DynamoDBStreamRecordModel, "dynamodb"), (Order, "sqs"), (Order, "kinesis"),
])
async def test_a_model_of_the_right_record_or_of_the_payload_is_taken(
        model: type[BaseModel], source: str) -> None:
    got: list[Any] = []

    async def handle(record: Any) -> None:
        got.append(record)

    report = await AsyncBatchProcessor(model=model, log_summary=False).process(
        make_event(source, "ab"), handle)
    assert report.response() == {"batchItemFailures": []}
    assert all(isinstance(record, model) for record in got) and len(got) == 2


def test_a_processor_without_a_model_takes_any_source() -> None:
    assert asyncbatch.process_partial_response(
        make_event("kinesis", "a"), _ok, AsyncBatchProcessor()) == {"batchItemFailures": []}


async def _ok(record: Any) -> None:
    pass
