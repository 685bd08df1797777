"""Envelopes for ``model=`` (docs/sources/envelopes.md): the producer's
payload inside an SNS notification or an EventBridge event delivered through SQS.

Checked on Powertools' published SNS-over-SQS samples (standard and FIFO) and an
EventBridge event through SQS; a record whose envelope or payload is wrong fails alone,
the field named from the body; every misuse is a ``ConfigurationError`` saying what to
do; Powertools' envelope names (and the drop-in) work; the factories' bodies are what
Powertools' own models accept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest
from pydantic import BaseModel

import asyncbatch
from asyncbatch import (
    AsyncBatchProcessor,
    ConfigurationError,
    RecordValidationError,
    SQSRecord,
)
from asyncbatch.testing import (
    eventbridge_sqs_event,
    kinesis_event,
    pipes_event,
    sns_sqs_event,
    sqs_event,
)

pytestmark = pytest.mark.anyio

SHAPES = Path(__file__).parent.parent / "events" / "shapes"  # the samples: see the README there


def sample(name: str) -> Any:
    """A fresh copy of the sample event ``tests/events/shapes/<name>``."""
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))

QUIET = {"log_summary": False}


class Greeting(BaseModel):  # the Message of Powertools' SNS samples
    message: str
    username: str


class Instance(BaseModel):  # the detail of Powertools' EventBridge sample
    instance_id: str
    state: str


class Order(BaseModel):
    order_id: int
    qty: int = 1


async def run(event: Any, processor: AsyncBatchProcessor
              ) -> tuple[asyncbatch.BatchReport, list[Any]]:
    got: list[Any] = []

    async def handle(payload: Any) -> None:
        got.append(payload)

    return await processor.process(event, handle), got


# -- the published samples --------------------------------------------------------------

@pytest.mark.parametrize("name", ["powertools-snsSqsEvent.json", "powertools-snsSqsFifoEvent.json"])
async def test_the_model_parses_the_sns_message_of_each_sample(name: str) -> None:
    report, got = await run(sample(name), AsyncBatchProcessor(
        model=Greeting, envelope="sns", **QUIET))
    assert got == [Greeting(message="hello world", username="lessa")]
    assert report.response() == {"batchItemFailures": []}


async def test_a_fifo_sns_batch_keeps_its_message_groups() -> None:
    from asyncbatch._sources import read_event

    _, _, plan = read_event(sample("powertools-snsSqsFifoEvent.json"), None)
    assert plan.lanes == [[0]]  # FIFO: one lane per MessageGroupId
    event = sns_sqs_event({"order_id": 1}, {"order_id": -1}, {"order_id": 3},
                          fifo_group=["a", "a", "b"])

    async def handle(order: Order) -> None:
        if order.order_id < 0:
            raise ValueError("negative")

    report = await AsyncBatchProcessor(model=Order, envelope="sns", **QUIET).process(
        event, handle)
    assert [o.status for o in report] == ["succeeded", "failed", "succeeded"]


async def test_the_model_parses_the_detail_of_an_eventbridge_event() -> None:
    report, got = await run(sample("built-eventbridge-through-sqs-event.json"),
                            AsyncBatchProcessor(model=Instance, envelope="eventbridge", **QUIET))
    assert got == [Instance(instance_id="i-1234567890abcdef0", state="terminated")]
    assert not report.failed


async def test_a_handler_may_take_the_sqs_record_beside_the_payload() -> None:
    seen: list[tuple[str, str]] = []

    async def handle(greeting: Greeting, record: SQSRecord) -> None:
        seen.append((greeting.username, record.message_id))

    await AsyncBatchProcessor(model=Greeting, envelope="sns", **QUIET).process(
        sample("powertools-snsSqsEvent.json"), handle)
    assert seen == [("lessa", "79406a00-bf15-46ca-978c-22c3613fcb30")]


# -- a record that is wrong fails alone, the field named ------------------------------------

async def test_an_invalid_payload_fails_its_record_alone_naming_the_field() -> None:
    event = sns_sqs_event({"order_id": 1}, {"order_id": "x"}, {"qty": 2}, "not json",
                          {"order_id": 5})
    report, got = await run(event, AsyncBatchProcessor(model=Order, envelope="sns", **QUIET))
    assert [o.order_id for o in got] == [1, 5]
    fields = [o.exception.fields for o in report.failed]  # type: ignore[union-attr]
    assert fields == [("Message.order_id",), ("Message.order_id",), ("Message",)]
    assert all(isinstance(o.exception, RecordValidationError) for o in report.failed)
    assert "invalid Message.order_id" in str(report.failed[0].exception)
    assert [f["itemIdentifier"] for f in report.response()["batchItemFailures"]] == [
        raw["messageId"] for raw in event["Records"][1:4]]


async def test_an_invalid_detail_names_the_field_inside_detail() -> None:
    event = eventbridge_sqs_event({"order_id": 1}, {"order_id": [1]})
    report, _ = await run(event, AsyncBatchProcessor(model=Order, envelope="eventbridge",
                                                     **QUIET))
    (failed,) = report.failed
    assert failed.exception.fields == ("detail.order_id",)  # type: ignore[union-attr]


@pytest.mark.parametrize(("envelope", "body", "field", "says"), [
    ("sns", '{"order_id": 1}', "Type", "raw message delivery"),  # raw delivery: no envelope
    ("sns", "plain text", "body", "not JSON"),
    ("sns", "[1, 2]", "body", "a JSON list"),
    ("sns", json.dumps({"Type": "SubscriptionConfirmation", "Message": "{}"}), "Type",
     "SubscriptionConfirmation"),
    ("sns", json.dumps({"Type": "Notification", "Message": {"order_id": 1}}), "Message",
     "not text"),
    ("eventbridge", '{"order_id": 1}', "detail", "no 'detail'"),
    ("eventbridge", json.dumps({"detail": {"order_id": 1}}), "detail-type", "input transformer"),
    ("eventbridge", "", "body", "not JSON"),
])
async def test_a_body_that_is_not_the_envelope_fails_alone_saying_why(
        envelope: str, body: str, field: str, says: str) -> None:
    good = sns_sqs_event if envelope == "sns" else eventbridge_sqs_event
    event = good({"order_id": 1})
    event["Records"].append(sqs_event(body, start=1)["Records"][0])
    report, got = await run(event, AsyncBatchProcessor(model=Order, envelope=envelope,
                                                       **QUIET))
    assert got == [Order(order_id=1)]
    (failed,) = report.failed
    assert failed.exception.fields == (field,)  # type: ignore[union-attr]
    assert says in str(failed.exception)


# -- misuse: what to do instead -------------------------------------------------------------

@pytest.mark.parametrize(("options", "says"), [
    ({"envelope": "sns"}, "give model= too"),
    ({"envelope": "s3", "model": Order}, "give 'sns'"),
    ({"envelope": 1, "model": Order}, "give 'sns'"),
    ({"envelope": "sns", "model": Order, "event_type": "KinesisDataStreams"},
     "a KinesisDataStreams record has no such envelope"),
    ({"envelope": "eventbridge", "model": Order, "event_type": "Firehose"},
     "remove envelope="),
])
def test_a_misused_envelope_says_what_to_do(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        AsyncBatchProcessor(**options)


def test_an_envelope_with_a_model_of_the_whole_record_is_refused() -> None:
    class Whole(BaseModel):
        messageId: str
        body: str

    with pytest.raises(ConfigurationError, match="a model of the whole SQS record"):
        AsyncBatchProcessor(model=Whole, envelope="sns")


async def test_an_envelope_on_a_detected_stream_is_refused_before_anything_runs() -> None:
    async def handle(order: Order) -> None:
        raise AssertionError("must not run")

    processor = AsyncBatchProcessor(model=Order, envelope="sns")
    with pytest.raises(ConfigurationError, match="no such envelope"):
        await processor.process(kinesis_event(("k", {"order_id": 1})), handle)


def test_envelope_names_are_taken_in_any_case() -> None:
    assert AsyncBatchProcessor(model=Order, envelope="SNS").envelope == "sns"
    assert AsyncBatchProcessor(model=Order, envelope="EventBridge").envelope == "eventbridge"
    assert AsyncBatchProcessor(model=Order).envelope is None


async def test_a_pipes_batch_of_sqs_records_takes_an_envelope() -> None:
    batch = pipes_event(sns_sqs_event({"order_id": 7}))
    _, got = await run(batch, AsyncBatchProcessor(model=Order, envelope="sns", **QUIET))
    assert got == [Order(order_id=7)]


# -- Powertools' names, and the drop-in --------------------------------------------------------

envelopes = pytest.importorskip("aws_lambda_powertools.utilities.parser.envelopes")


@pytest.mark.parametrize(("given", "name"), [
    (envelopes.SnsSqsEnvelope, "sns"), (envelopes.SnsSqsEnvelope(), "sns"),
    (envelopes.EventBridgeEnvelope, "eventbridge"), (envelopes.SqsEnvelope, None)])
def test_powertools_envelopes_name_the_same_envelopes(given: Any, name: Optional[str]) -> None:
    assert AsyncBatchProcessor(model=Order, envelope=given).envelope == name


def test_a_powertools_envelope_asyncbatch_has_no_use_for_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not SnsEnvelope"):
        AsyncBatchProcessor(model=Order, envelope=envelopes.SnsEnvelope)


def test_the_powertools_drop_in_takes_its_envelope_names() -> None:
    from asyncbatch.powertools import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(EventType.SQS, model=Greeting, envelope=envelopes.SnsSqsEnvelope)
    got: list[Any] = []

    def handle(record: Greeting) -> None:
        got.append(record)

    event = sample("powertools-snsSqsEvent.json")
    bad = sns_sqs_event({"message": "hi"})["Records"][0]  # no username
    event["Records"].append(bad)
    response = process_partial_response(event, handle, processor)
    assert got == [Greeting(message="hello world", username="lessa")]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    (failure,) = processor.fail_messages
    assert failure.message_id == bad["messageId"]  # Powertools' data class of the record
    with pytest.raises(ConfigurationError, match="unwraps SQS message bodies"):
        BatchProcessor(EventType.KinesisDataStreams, model=Greeting,
                       envelope=envelopes.SnsSqsEnvelope)
    with pytest.raises(ConfigurationError, match="give model= too"):
        BatchProcessor(EventType.SQS, envelope="sns")


def test_the_factories_bodies_are_what_powertools_models_accept() -> None:
    from aws_lambda_powertools.utilities.parser.models import (
        EventBridgeModel,
        SnsNotificationModel,
        SqsModel,
    )

    for event in (sns_sqs_event({"a": 1}), sns_sqs_event("text", fifo_group="g")):
        for record in SqsModel.model_validate(event).Records:
            notification = SnsNotificationModel.model_validate_json(record.body)
            assert notification.Type == "Notification"
    (record,) = SqsModel.model_validate(eventbridge_sqs_event({"a": 1})).Records
    assert EventBridgeModel.model_validate_json(record.body).detail == {"a": 1}
    # and the published samples read through the same models
    for name in ("powertools-snsSqsEvent.json", "powertools-snsSqsFifoEvent.json"):
        (record,) = SqsModel.model_validate(sample(name)).Records
        SnsNotificationModel.model_validate_json(record.body)
