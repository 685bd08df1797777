"""Every sample event AWS and its SDKs publish parses and decodes right (``tests/events/``,
copied from their repositories: see the README there), and a repeated identifier is
accepted alike by every source and reported once."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

import asyncbatch
from asyncbatch import AsyncBatchProcessor, EventType, KafkaRecord
from asyncbatch._sources import read_event
from tests._support.events import make_event

EVENTS = Path(__file__).parent.parent / "events"
ROUNDTRIP = "aws-lambda-java-events-kafka-event-roundtrip.json"
KAFKA_SAMPLES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != ROUNDTRIP)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8-sig"))
    return data


def own_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [raw for part in event["records"].values() for raw in part]


def test_the_samples_are_there() -> None:
    assert len(KAFKA_SAMPLES) == 8


@pytest.mark.parametrize("name", KAFKA_SAMPLES)
def test_every_published_kafka_sample_parses_and_decodes(name: str) -> None:
    event = load(name)
    pristine = copy.deepcopy(event)
    source, records, plan = read_event(event, None)
    assert source.event_type is EventType.KAFKA
    raws = own_records(event)
    assert records == raws
    # grouped by each record's own topic and partition, whatever the records key says
    assert plan.identifiers == [
        {"partition": f"{raw['topic']}-{raw['partition']}", "offset": raw["offset"]}
        for raw in raws]
    for raw in records:
        view = KafkaRecord(raw)
        key = raw.get("key")
        assert view.key == (None if key is None else base64.b64decode(key))
        assert view.value == base64.b64decode(raw["value"])
        headers = view.headers
        for header in raw.get("headers") or ():
            for header_name, sent in header.items():
                assert headers[header_name] == bytes(b & 0xFF for b in sent)
    assert event == pristine  # reading changed nothing


def test_what_the_samples_hold() -> None:
    """The shapes that broke before: each is in a sample, decoded as meant."""
    dotnet = KafkaRecord(own_records(load("aws-lambda-dotnet-kafka-event.json"))[0])
    assert dotnet.topic_partition == "mytopic-12"  # filed under 'mytopic-0'
    assert dotnet.headers["OriginationTimestamp"] == bytes(
        [0, 0, 1, 0x85, 0xF5, 0xAF, 0xCE, 0xFE])  # -123, -11, -81, -50, -2
    assert dotnet.headers["Id"] == b"709e49b6-998d-4c0c-8ef7-b98cfafed08b"
    java = KafkaRecord(own_records(load("aws-lambda-java-events-kafka-event.json"))[0])
    assert java.topic_partition == "mytopic-0"  # filed under 'mytopic-01'
    assert java.value == b"Hello from Kafka !!"
    go = KafkaRecord(own_records(load("aws-lambda-go-kafka-event.json"))[0])
    assert go.headers == {"headerKey": b"v\xdc\x00\x7f\x80"}
    msk = [KafkaRecord(raw) for raw in own_records(load("powertools-kafkaEventMsk.json"))]
    assert [r.offset for r in msk] == [15, 15, 15]
    assert [r.key for r in msk] == [b"recordKey", None, None]
    assert msk[0].json() == {"key": "value"}
    for name in ("powertools-kafkaEventSelfManaged.json",
                 "lambda-docs-self-managed-kafka-event.json"):
        assert read_event(load(name), None)[0].event_type is EventType.KAFKA


@pytest.mark.anyio
@pytest.mark.parametrize("name", KAFKA_SAMPLES)
async def test_a_failing_sample_record_is_reported_by_its_own_partition(name: str) -> None:
    event = load(name)
    raws = own_records(event)
    last = raws[-1]

    async def handle(record: KafkaRecord) -> None:
        if record.raw is last:
            raise ValueError("bad record")

    processor = AsyncBatchProcessor(raise_on_all_failed=False, log_summary=False)
    response = await asyncbatch.async_process_partial_response(event, handle, processor)
    # the failure and what Lambda must redeliver after it (the records of its partition
    # at or above its offset that did not succeed), each identifier once
    partition = f"{last['topic']}-{last['partition']}"
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"partition": partition, "offset": last["offset"]}}]}
    ok = await asyncbatch.async_process_partial_response(
        load(name), _succeed, AsyncBatchProcessor(log_summary=False))
    assert ok == {"batchItemFailures": []}


async def _succeed(record: Any) -> None:
    assert isinstance(record, KafkaRecord)


@pytest.mark.anyio
async def test_the_java_roundtrip_file_has_base64_headers_named_as_such() -> None:
    """Not a Lambda event: what aws-lambda-java-events writes back (a byte[] as base64).
    It parses; its headers are a clear RecordDecodeError, failing the record only."""
    event = load(ROUNDTRIP)

    async def handle(record: KafkaRecord) -> None:
        assert record.value == b"Hello from Kafka !!"
        _ = record.headers

    report = await AsyncBatchProcessor(raise_on_all_failed=False, log_summary=False).process(
        event, handle)
    (failed,) = report.failed
    assert isinstance(failed.exception, asyncbatch.RecordDecodeError)
    assert "header 'headerKey' is a str ('aGVhZGVyVmFsdWU=')" in str(failed.exception)
    assert report.response() == {"batchItemFailures": [
        {"itemIdentifier": {"partition": "mytopic-0", "offset": 15}}]}


# -- a repeated identifier, alike for every source ------------------------------------------


def _repeat_first_identifier(source: str) -> tuple[dict[str, Any], Any]:
    """An event of three records whose third repeats the first's identifier (for the
    streams: the same ordering key too, so that it runs after it in the same lane)."""
    event = make_event(source, ["a", "b", "a"])
    if source == "kafka":
        records = event["records"]["orders-0"]
        records[2]["offset"] = records[0]["offset"]
        return event, {"partition": "orders-0", "offset": records[0]["offset"]}
    first, third = event["Records"][0], event["Records"][2]
    if source in ("sqs", "fifo"):
        third["messageId"] = first["messageId"]
        return event, first["messageId"]
    if source == "kinesis":
        third["kinesis"]["sequenceNumber"] = first["kinesis"]["sequenceNumber"]
        return event, first["kinesis"]["sequenceNumber"]
    third["dynamodb"]["SequenceNumber"] = first["dynamodb"]["SequenceNumber"]
    return event, first["dynamodb"]["SequenceNumber"]


SOURCES = ["sqs", "fifo", "kinesis", "dynamodb", "kafka"]


@pytest.mark.anyio
@pytest.mark.parametrize("source", SOURCES)
async def test_a_repeated_identifier_is_accepted_and_every_record_runs(source: str) -> None:
    event, _ = _repeat_first_identifier(source)
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(_position(record))

    report = await AsyncBatchProcessor(concurrency=1, log_summary=False).process(event, handle)
    assert sorted(ran) == [0, 1, 2]
    assert ran.index(0) < ran.index(2)  # the lane keeps event order for equal identifiers
    assert report.response() == {"batchItemFailures": []}


@pytest.mark.anyio
@pytest.mark.parametrize("source", SOURCES)
async def test_a_repeated_identifier_is_reported_once(source: str) -> None:
    event, identifier = _repeat_first_identifier(source)

    async def handle(record: Any) -> None:
        if _position(record) in (0, 2):
            raise ValueError("fails")

    report = await AsyncBatchProcessor(log_summary=False).process(event, handle)
    assert report.response()["batchItemFailures"].count({"itemIdentifier": identifier}) == 1
    assert len(report.failed) + len(report.skipped) >= 2  # both records are reported


def _position(record: Any) -> int:
    """The record's position as built (the third keeps its own payload)."""
    from tests._support.events import position

    raw = record.raw
    if "kinesis" in raw:
        return int(json.loads(base64.b64decode(raw["kinesis"]["data"]))["seq"])
    if "dynamodb" in raw:
        return int(raw["dynamodb"]["NewImage"]["seq"]["N"])
    if "messageId" in raw:
        return int(raw["receiptHandle"][-12:-2])
    return position(record)
