"""Amazon Data Firehose transformations (docs/sources/firehose.md).

Detection and the record view on the sample events AWS and its SDKs publish (Kinesis,
Direct PUT and MSK sources), the response (every recordId once, in event order; ``Ok`` /
``Dropped`` / ``ProcessingFailed`` with the original data; partition keys), the 6 MB
rule, the deadline, the concurrency bound, the options Firehose cannot take, and
Firehose's own side in ``asyncbatch.testing.simulate``.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

import asyncbatch
from asyncbatch import (
    DROPPED,
    AsyncBatchProcessor,
    BatchFailedError,
    ConfigurationError,
    EventType,
    FirehoseRecord,
    FirehoseResult,
    InvalidEventError,
    ResponseTooLargeError,
)
from asyncbatch._sources import firehose_response, read_event
from asyncbatch._sources.firehose_response import LIMIT, response_size
from asyncbatch.testing import (
    LambdaContext,
    firehose_event,
    simulate,
    simulate_lambda,
    sqs_event,
    strategies,
)
from tests._support.events import position

pytestmark = pytest.mark.anyio

SHAPES = Path(__file__).parent.parent / "events" / "shapes"  # the samples: see the README there


def sample(name: str) -> Any:
    """A fresh copy of the sample event ``tests/events/shapes/<name>``."""
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))

QUIET = {"log_summary": False}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def respond(event: Any, handle: Any, **options: Any) -> dict[str, Any]:
    processor = AsyncBatchProcessor(raise_on_all_failed=False, **QUIET, **options)
    return await asyncbatch.async_process_partial_response(event, handle, processor)


# -- the published sample events ---------------------------------------------------------

SAMPLES = {
    # file: (record ids, decoded payloads, the payload's field, has Kinesis metadata)
    "powertools-kinesisFirehoseKinesisEvent.json": (
        ["record1", "record2"], [b"Hello World", b'{"Hello": "World"}'], "data", True),
    "powertools-kinesisFirehosePutEvent.json": (
        ["record1", "record2"], [b"Hello World", b'{"Hello": "World"}'], "data", False),
    "aws-lambda-go-kinesis-firehose-event.json": (
        ["record1", "record2"], [b"Hello World", b"Hello World"], "data", True),
    "lambda-docs-kinesis-firehose-event.json": (
        ["record1", "record2"], [b"Hello World", b"Hello World"], "data", True),
    "aws-lambda-java-events-msk-firehose-event.json": (
        ["0" * 62], [b'{"Name":"Hello World"}'], "kafkaRecordValue", False),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_published_sample_is_detected_and_read(name: str) -> None:
    event = sample(name)
    ids, payloads, key, from_kinesis = SAMPLES[name]
    source, records, plan = read_event(event, None)
    assert source.event_type is EventType.FIREHOSE
    assert plan.identifiers == ids and plan.lanes is None  # independent records
    for raw, ident, payload in zip(records, ids, payloads):
        view = FirehoseRecord(raw)
        assert view.identifier == view.record_id == ident
        assert view.data == payload
        assert view.approximate_arrival_timestamp == raw["approximateArrivalTimestamp"]
        assert (view.kinesis_metadata is not None) == from_kinesis
        assert key in raw
    assert event == sample(name)  # reading changed nothing


def test_the_kinesis_and_msk_metadata() -> None:
    kinesis = sample("powertools-kinesisFirehoseKinesisEvent.json")
    (first, _) = (FirehoseRecord(r) for r in kinesis["records"])
    assert first.kinesis_metadata == {
        "shardId": "shardId-000000000000",
        "partitionKey": "4d1ad2b9-24f8-4b9d-a088-76e9947c317a",
        "approximateArrivalTimestamp": 1664028820148,
        "sequenceNumber": "49546986683135544286507457936321625675700192471156785154",
        "subsequenceNumber": 0}
    assert first.msk_metadata is None
    msk_event = sample("aws-lambda-java-events-msk-firehose-event.json")
    (msk,) = (FirehoseRecord(r) for r in msk_event["records"])
    assert msk.msk_metadata == {"offset": "0", "partitionId": "1",
                                "approximateArrivalTimestamp": 1716369573887}
    assert msk.json() == {"Name": "Hello World"} and msk.kinesis_metadata is None


def test_a_direct_put_of_an_sqs_message_reads_as_json() -> None:
    (record,) = (FirehoseRecord(r) for r in
                 sample("powertools-kinesisFirehoseSQSEvent.json")["records"])
    message = record.json()
    assert message["messageId"] == "5ab807d4-5644-4c55-97a3-47396635ac74"
    assert message["body"] == "Test message."


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_each_sample_is_answered_record_by_record(name: str) -> None:
    ids, payloads, key, _ = SAMPLES[name]

    async def shout(record: FirehoseRecord) -> bytes:
        return record.data.upper()

    response = await respond(sample(name), shout)
    assert response == {"records": [
        {"recordId": ident, "result": "Ok", key: b64(payload.upper())}
        for ident, payload in zip(ids, payloads)]}

    async def fail(record: FirehoseRecord) -> bytes:
        raise ValueError("enrichment service down")

    # answered ProcessingFailed with the original data, as it came
    originals = [raw[key] for raw in sample(name)["records"]]
    failed = await respond(sample(name), fail)
    assert failed == {"records": [
        {"recordId": ident, "result": "ProcessingFailed", key: data}
        for ident, data in zip(ids, originals)]}


# -- what a handler returns --------------------------------------------------------------

async def test_what_a_handler_returns_becomes_the_records_answer() -> None:
    event = firehose_event({"n": 0}, "é", b"\x00\xff", {"n": 3}, {"n": 4}, {"n": 5}, {"n": 6},
                           {"n": 7})
    originals = [raw["data"] for raw in event["records"]]

    async def handle(record: FirehoseRecord) -> Any:
        i = position(record)
        if i == 0:
            return {"n": 0, "city": "Zürich"}  # any JSON value: compact JSON, UTF-8
        if i == 1:
            return "é"  # str: UTF-8
        if i == 2:
            return record.data  # bytes as they are
        if i == 3:
            return None  # passes through unchanged
        if i == 4:
            return DROPPED
        if i == 5:
            return FirehoseResult({"n": 5}, partition_keys={"customer": "c-5"})
        if i == 6:
            return FirehoseResult(None, {"year": "2024"})  # original data, with keys
        raise ValueError("no")

    response = await respond(event, handle)
    ids = [raw["recordId"] for raw in event["records"]]
    assert [r["recordId"] for r in response["records"]] == ids  # each once, in event order
    r = response["records"]
    assert r[0] == {"recordId": ids[0], "result": "Ok",
                    "data": b64('{"n":0,"city":"Zürich"}'.encode())}
    assert unb64(r[1]["data"]).decode() == "é" and r[1]["result"] == "Ok"
    assert unb64(r[2]["data"]) == b"\x00\xff"
    assert r[3] == {"recordId": ids[3], "result": "Ok", "data": originals[3]}
    assert r[4] == {"recordId": ids[4], "result": "Dropped", "data": ""}
    assert r[5] == {"recordId": ids[5], "result": "Ok", "data": b64(b'{"n":5}'),
                    "metadata": {"partitionKeys": {"customer": "c-5"}}}
    assert r[6] == {"recordId": ids[6], "result": "Ok", "data": originals[6],
                    "metadata": {"partitionKeys": {"year": "2024"}}}
    assert r[7] == {"recordId": ids[7], "result": "ProcessingFailed", "data": originals[7]}


async def test_a_return_value_firehose_cannot_hold_fails_its_record_only() -> None:
    event = firehose_event({"n": 0}, {"n": 1})

    async def handle(record: FirehoseRecord) -> Any:
        return {1, 2} if position(record) == 0 else record.json()

    processor = AsyncBatchProcessor(**QUIET)
    report = await processor.process(event, handle)
    (failed,) = report.failed
    assert failed.index == 0 and isinstance(failed.exception, TypeError)
    assert "asyncbatch.DROPPED" in str(failed.exception)
    assert [r["result"] for r in report.response()["records"]] == ["ProcessingFailed", "Ok"]


def test_firehose_result_checks_its_partition_keys() -> None:
    assert FirehoseResult(b"x", {"a": "1"}) == FirehoseResult(b"x", {"a": "1"})
    assert FirehoseResult("x").partition_keys is None
    for bad in ({"year": 2024}, {"": "x"}, ["a"]):
        with pytest.raises(TypeError, match="partition_keys"):
            FirehoseResult(b"x", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"return asyncbatch\.DROPPED itself"):
        FirehoseResult(DROPPED)
    with pytest.raises(AttributeError):
        FirehoseResult(b"x").data = b"y"  # type: ignore[misc]
    assert repr(DROPPED) == str(DROPPED) == "asyncbatch.DROPPED"
    import pickle

    assert pickle.loads(pickle.dumps(DROPPED)) is DROPPED
    assert pickle.loads(pickle.dumps(FirehoseResult(b"x", {"a": "b"}))) == FirehoseResult(
        b"x", {"a": "b"})


async def test_an_msk_source_is_answered_in_kafka_record_value() -> None:
    event = firehose_event({"n": 0}, {"n": 1}, origin="msk")
    assert "sourceMSKArn" in event and "data" not in event["records"][0]

    async def handle(record: FirehoseRecord) -> Any:
        if position(record) == 1:
            raise ValueError("no")
        return {"seen": record.json()["n"]}

    response = await respond(event, handle)
    assert response["records"][0] == {"recordId": event["records"][0]["recordId"],
                                      "result": "Ok", "kafkaRecordValue": b64(b'{"seen":0}')}
    assert response["records"][1] == {
        "recordId": event["records"][1]["recordId"], "result": "ProcessingFailed",
        "kafkaRecordValue": event["records"][1]["kafkaRecordValue"]}


async def test_a_sync_handler_returns_data_from_its_thread() -> None:
    def handle(record: FirehoseRecord) -> bytes:
        return record.data[::-1]

    response = await respond(firehose_event("abc"), handle, concurrency=4)
    assert unb64(response["records"][0]["data"]) == b'cba'


async def test_model_parses_the_payload_and_a_bad_one_fails_alone() -> None:
    from pydantic import BaseModel

    class Click(BaseModel):
        page: str

    event = firehose_event({"page": "/home"}, {"pages": 3})
    seen: list[str] = []

    async def handle(click: Click) -> Any:
        seen.append(click.page)
        return {"page": click.page.upper()}

    processor = AsyncBatchProcessor(model=Click, **QUIET)
    report = await processor.process(event, handle)
    assert seen == ["/home"]
    (failed,) = report.failed
    assert failed.exception.fields == ("page",)  # type: ignore[union-attr]
    assert [r["result"] for r in report.response()["records"]] == ["Ok", "ProcessingFailed"]


async def test_a_record_the_failure_sink_took_is_dropped() -> None:
    taken: list[str] = []

    async def sink(failure: asyncbatch.Failure) -> None:
        taken.append(failure.identifier)

    async def handle(record: FirehoseRecord) -> Any:
        if position(record) == 1:
            raise ValueError("poison")
        return record.data

    event = firehose_event("a", "b")
    response = await respond(event, handle, sink=sink)
    assert taken == [event["records"][1]["recordId"]]
    assert [r["result"] for r in response["records"]] == ["Ok", "Dropped"]


async def test_a_repeated_record_id_is_answered_once() -> None:
    event = firehose_event("a", "b", "c")
    event["records"][2]["recordId"] = event["records"][0]["recordId"]

    async def handle(record: FirehoseRecord) -> Any:
        if record.data == b"c":
            raise ValueError("no")
        return record.data

    response = await respond(event, handle)
    assert [(r["recordId"], r["result"]) for r in response["records"]] == [
        (event["records"][0]["recordId"], "ProcessingFailed"),
        (event["records"][1]["recordId"], "Ok")]
    # answered with the data of the record at the id's first position
    assert response["records"][0]["data"] == event["records"][0]["data"]


async def test_a_handler_editing_its_record_changes_no_answer() -> None:
    event = firehose_event("a", "b")
    arrived = copy.deepcopy(event["records"])

    async def handle(record: FirehoseRecord) -> Any:
        i = position(record)
        record.raw["data"] = b64(b"edited")
        record.raw["recordId"] = "edited"
        if i == 1:
            raise ValueError("no")
        return None  # passes the record through: its data as it arrived

    report = await AsyncBatchProcessor(**QUIET).process(event, handle)
    assert report.response()["records"] == [
        {"recordId": arrived[0]["recordId"], "result": "Ok", "data": arrived[0]["data"]},
        {"recordId": arrived[1]["recordId"], "result": "ProcessingFailed",
         "data": arrived[1]["data"]}]


# -- when nothing succeeded ------------------------------------------------------------

async def test_every_record_failed_fails_the_invocation_so_firehose_retries_it() -> None:
    event = firehose_event("a", "b")

    async def handle(record: FirehoseRecord) -> Any:
        raise ConnectionError("lookup service down")

    processor = AsyncBatchProcessor(**QUIET)
    with pytest.raises(BatchFailedError, match="Firehose"):
        await asyncbatch.async_process_partial_response(event, handle, processor)
    # the documented option answers every record ProcessingFailed instead
    response = await respond(event, handle)
    assert [r["result"] for r in response["records"]] == ["ProcessingFailed"] * 2

    async def drop(record: FirehoseRecord) -> Any:
        return DROPPED

    # dropping every record is a success, not a failure
    assert [r["result"] for r in (await asyncbatch.async_process_partial_response(
        event, drop, processor))["records"]] == ["Dropped"] * 2


# -- the 6 MB rule -----------------------------------------------------------------------

def _big_event(sizes: list[int]) -> dict[str, Any]:
    """One record per size: that many bytes of payload."""
    return firehose_event(*(bytes([65 + i % 26]) * size for i, size in enumerate(sizes)))


async def test_records_that_do_not_fit_are_failed_with_their_data_and_later_ones_stay_ok(
        caplog: pytest.LogCaptureFixture) -> None:
    # eight records of 300 kB (400 kB of base64: a 3.2 MB request); each grows to 1.2 MB
    # (1.6 MB of base64), except record 3, which grows to 450 kB, and record 6, which
    # shrinks to 10 bytes
    event = _big_event([300_000] * 8)
    grown = {3: 450_000, 6: 10}

    async def enrich(record: FirehoseRecord) -> bytes:
        return record.data[:1] * grown.get(position(record), 1_200_000)

    with caplog.at_level("WARNING", logger="asyncbatch"):
        response = await respond(event, enrich)
    assert response_size(response) <= LIMIT
    results = [r["result"] for r in response["records"]]
    # 3.2 MB is kept for the fallbacks, 3.09 MB of growth is left, 3.49 MB once record 6
    # shrank: records 0 and 1 (+1.2 MB each) fit, 2 does not, 3 (+0.2 MB) does, 4, 5 and 7
    # do not
    assert results == ["Ok", "Ok", "ProcessingFailed", "Ok", "ProcessingFailed",
                       "ProcessingFailed", "Ok", "ProcessingFailed"]
    for raw, answer in zip(event["records"], response["records"]):
        assert answer["recordId"] == raw["recordId"]
        if answer["result"] == "ProcessingFailed":
            assert answer["data"] == raw["data"]  # the original data, for processing-failed
    assert "did not fit" in caplog.text


async def test_a_shrinking_record_makes_room_for_an_earlier_one() -> None:
    # record 0 grows by 1 MB beyond what is left; record 1 shrinks by 2 MB: both fit
    event = _big_event([2_000_000, 2_200_000])

    async def handle(record: FirehoseRecord) -> bytes:
        return b"x" * (4_000_000 if position(record) == 0 else 1)

    response = await respond(event, handle)
    assert [r["result"] for r in response["records"]] == ["Ok", "Ok"]
    assert response_size(response) <= LIMIT


async def test_the_limit_is_counted_to_the_byte() -> None:
    async def fill(record: FirehoseRecord) -> bytes:
        return b"\x00" * target

    # one record whose answer is exactly LIMIT bytes fits; one byte more does not
    overhead = response_size({"records": [{"recordId": "r", "result": "Ok", "data": ""}]})
    for extra_id_chars in range(4):  # make the base64 length land exactly on the limit
        if (LIMIT - overhead - extra_id_chars) % 4 == 0:
            break
    target = (LIMIT - overhead - extra_id_chars) // 4 * 3
    event = firehose_event("x")
    event["records"][0]["recordId"] = "r" * (1 + extra_id_chars)
    response = await respond(copy.deepcopy(event), fill)
    assert response_size(response) == LIMIT and response["records"][0]["result"] == "Ok"
    event["records"][0]["recordId"] += "r"
    response = await respond(event, fill)
    assert response["records"][0] == {"recordId": event["records"][0]["recordId"],
                                      "result": "ProcessingFailed",
                                      "data": event["records"][0]["data"]}


async def test_when_not_even_the_original_data_fits_the_invocation_fails() -> None:
    # an event Firehose never sends (7 MB of data): no response can hold every record's
    # original data, so the function fails and Firehose keeps its own copy
    event = _big_event([1_000_000] * 6)  # 8 MB of base64

    async def same(record: FirehoseRecord) -> bytes:
        return record.data

    processor = AsyncBatchProcessor(**QUIET)
    report = await processor.process(event, same)
    with pytest.raises(ResponseTooLargeError) as caught:
        report.response()
    assert caught.value.size > caught.value.limit == LIMIT
    with pytest.raises(ResponseTooLargeError):
        await asyncbatch.async_process_partial_response(event, same, processor)


# -- time and concurrency ------------------------------------------------------------------

class TestTheDeadline:
    """On trio's MockClock: a 10 s handler "runs" in no real time, deadlines are exact."""

    @pytest.fixture
    def anyio_backend(self) -> Any:
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_records_cut_by_the_deadline_are_failed_with_their_data(self) -> None:
        event = firehose_event(*range(12))

        async def slow(record: FirehoseRecord) -> bytes:
            await anyio.sleep(0.4 if position(record) < 3 else 10)
            return b"done"

        processor = AsyncBatchProcessor(concurrency=3, **QUIET)
        t0 = anyio.current_time()
        report = await processor.process(event, slow, LambdaContext(2.0))
        assert anyio.current_time() - t0 < 2.0
        records = report.response()["records"]
        ids = [raw["recordId"] for raw in event["records"]]
        assert [r["recordId"] for r in records] == ids
        assert [r["result"] for r in records[:3]] == ["Ok"] * 3
        for raw, answer in zip(event["records"][3:], records[3:]):
            assert answer == {"recordId": raw["recordId"], "result": "ProcessingFailed",
                              "data": raw["data"]}
        assert len(report.skipped) + len(report.failed) == 9


async def test_the_concurrency_bound_is_reached_and_never_exceeded() -> None:
    bound, running, peak = 4, 0, 0

    async def handle(record: FirehoseRecord) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return record.data

    report = await AsyncBatchProcessor(concurrency=bound, **QUIET).process(
        firehose_event(*range(40)), handle)
    assert peak == bound and len(report.succeeded) == 40


# -- options and bad input -----------------------------------------------------------------

async def test_idempotency_is_refused_for_firehose() -> None:
    store = asyncbatch.InMemoryIdempotencyStore()
    with pytest.raises(ConfigurationError, match="transformed data is the response"):
        AsyncBatchProcessor(event_type="Firehose", idempotency=asyncbatch.Idempotency(store))
    processor = AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store))
    with pytest.raises(ConfigurationError, match="remove idempotency="):
        await processor.process(firehose_event("a"), lambda record: None)


@pytest.mark.parametrize(("event", "match"), [
    ({"deliveryStreamArn": "arn", "records": {"a": 1}}, "'records' is a dict, not a list"),
    ({"deliveryStreamArn": "arn", "records": [{"data": ""}]}, r"records\[0\] has no recordId"),
    ({"deliveryStreamArn": "arn", "records": [{"recordId": "a"}, "x"]},
     r"records\[1\] is a str"),
    ({"deliveryStreamArn": "arn", "records": [{"recordId": ""}]}, r"records\[0\] has no"),
])
async def test_a_malformed_firehose_event_is_refused_before_anything_runs(
        event: dict[str, Any], match: str) -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidEventError, match=match):
        await AsyncBatchProcessor().process(event, handle)


async def test_a_processor_made_for_another_source_names_both() -> None:
    async def handle(record: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidEventError,
                       match=r"made for SQS events .* comes from Firehose \(it has a "
                             r"deliveryStreamArn\).*event_type='Firehose'"):
        await AsyncBatchProcessor(event_type="SQS").process(firehose_event("a"), handle)
    with pytest.raises(InvalidEventError, match=r"made for Firehose events .* comes from SQS"):
        await AsyncBatchProcessor(event_type="Firehose").process(sqs_event("a"), handle)


def test_firehose_records_have_no_ordering_to_choose() -> None:
    with pytest.raises(ConfigurationError, match="independent"):
        read_event(firehose_event("a"), EventType.FIREHOSE, ordering="key")


async def test_event_type_may_be_given_by_name() -> None:
    async def handle(record: FirehoseRecord) -> bytes:
        return record.data

    report = await AsyncBatchProcessor(event_type="Firehose", **QUIET).process(
        sample("powertools-kinesisFirehoseKinesisEvent.json"), handle)
    assert report.event_type is EventType.FIREHOSE and len(report.succeeded) == 2


# -- Firehose's side: asyncbatch.testing.simulate ---------------------------------------------

async def test_simulate_delivers_ok_drops_dropped_and_writes_failures_to_the_error_prefix(
        ) -> None:
    event = firehose_event({"n": 0}, {"n": 1}, {"n": 2})

    async def handle(record: FirehoseRecord) -> Any:
        n = record.json()["n"]
        if n == 1:
            return DROPPED
        if n == 2:
            raise ValueError("bad record")
        return FirehoseResult({"n": n, "ok": True}, {"n": str(n)})

    result = await simulate(handle, event, processor=AsyncBatchProcessor(**QUIET))
    ids = [raw["recordId"] for raw in event["records"]]
    assert result.transformed == {ids[0]: FirehoseResult(b'{"n":0,"ok":true}', {"n": "0"})}
    assert result.dropped == (ids[1],)
    # ProcessingFailed is not retried: written to processing-failed at once
    assert result.dead_letters == (event["records"][2],)
    assert result.deliveries == dict.fromkeys(ids, 1) and len(result.invocations) == 1


async def test_simulate_retries_a_failed_invocation_then_fails_every_record() -> None:
    event = firehose_event("a", "b")
    calls = 0

    async def handle(record: FirehoseRecord) -> bytes:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    result = await simulate(handle, event, processor=AsyncBatchProcessor(**QUIET),
                            max_attempts=4)
    assert calls == 8 and len(result.invocations) == 4
    assert all(isinstance(inv.error, BatchFailedError) for inv in result.invocations)
    assert result.dead_letters == tuple(event["records"]) and not result.transformed

    # a transient failure: the retried invocation succeeds, nothing reaches the error prefix
    flaky = iter([True, True, False, False])

    async def recovers(record: FirehoseRecord) -> bytes:
        if next(flaky):
            raise ConnectionError("down")
        return record.data

    result = await simulate(recovers, event, processor=AsyncBatchProcessor(**QUIET))
    assert len(result.invocations) == 2 and not result.dead_letters
    assert set(result.transformed) == {raw["recordId"] for raw in event["records"]}


@pytest.mark.parametrize("response", [
    None, {"records": []}, {"records": [{"recordId": "nope", "result": "Ok", "data": ""}]},
    "records"])
async def test_simulate_lambda_retries_a_response_firehose_refuses(response: Any) -> None:
    async def function(event: Any, context: Any) -> Any:
        return response

    result = await simulate_lambda(function, firehose_event("a"), max_attempts=2)
    assert len(result.invocations) == 2
    assert all(isinstance(inv.error, asyncbatch.InvalidResponseError)
               for inv in result.invocations)
    assert len(result.dead_letters) == 1


async def test_simulate_lambda_refuses_a_response_over_6_mb() -> None:
    event = firehose_event("a")

    async def function(event: Any, context: Any) -> Any:
        return {"records": [{"recordId": event["records"][0]["recordId"], "result": "Ok",
                             "data": b64(b"x" * LIMIT)}]}

    result = await simulate_lambda(function, event, max_attempts=1)
    assert "ResponseSizeTooLarge" in str(result.invocations[0].error)


def test_the_sample_records_are_shaped_as_firehose_sends_them() -> None:
    event = firehose_event({"a": 1}, origin="kinesis", start=5)
    (raw,) = event["records"]
    assert event["sourceKinesisStreamArn"].startswith("arn:aws:kinesis:")
    assert raw["kinesisRecordMetadata"]["partitionKey"] == "key-5"
    assert len(raw["recordId"]) == 62 and position(raw) == 5
    assert json.loads(unb64(raw["data"])) == {"a": 1}
    with pytest.raises(ValueError, match="origin"):
        firehose_event("a", origin="s3")


# -- properties over random batches ------------------------------------------------------------

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
OUTCOMES = ("bytes", "json", "none", "drop", "keys", "raise", "slow")


def run_virtual(main: Any) -> Any:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def expected_data(outcome: str, raw: dict[str, Any], key: str) -> Any:
    return {"bytes": b64(b"t" + unb64(raw[key])), "json": b64(b'{"ok":1}'),
            "none": raw[key], "keys": b64(b"k"), "slow": b64(b"slow")}[outcome]


@SETTINGS
@given(event=strategies.firehose_events(max_size=25),
       outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=25, max_size=25),
       concurrency=st.integers(1, 6), deadline=st.sampled_from([None, 0.3, 1.0]))
def test_every_record_id_is_answered_once_in_order_as_its_outcome_says(
        event: dict[str, Any], outcomes: list[str], concurrency: int,
        deadline: Any) -> None:
    records = event["records"]
    key = "kafkaRecordValue" if "sourceMSKArn" in event else "data"
    running = peak = 0

    async def handle(record: FirehoseRecord) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            outcome = outcomes[position(record)]
            await anyio.sleep(5 if outcome == "slow" else 0.05)
            if outcome == "raise":
                raise ValueError("no")
            return {"bytes": b"t" + record.data, "json": {"ok": 1}, "none": None,
                    "drop": DROPPED, "keys": FirehoseResult("k", {"p": "v"}),
                    "slow": b"slow"}[outcome]
        finally:
            running -= 1

    async def main() -> Any:
        processor = AsyncBatchProcessor(concurrency=concurrency, **QUIET)
        context = LambdaContext(deadline) if deadline is not None else None
        return await processor.process(copy.deepcopy(event), handle, context)

    report = run_virtual(main)
    assert peak <= concurrency
    response = report.response()
    answers = response["records"]
    assert [a["recordId"] for a in answers] == [raw["recordId"] for raw in records]
    assert response_size(response) <= LIMIT
    status = {o.index: o.status for o in report}
    for index, (raw, answer) in enumerate(zip(records, answers)):
        outcome = outcomes[index]
        if status[index] != "succeeded":
            assert answer == {"recordId": raw["recordId"], "result": "ProcessingFailed",
                              key: raw[key]}
        elif outcome == "drop":
            assert answer["result"] == "Dropped"
        else:
            assert answer["result"] == "Ok" and answer[key] == expected_data(outcome, raw, key)
            assert ("metadata" in answer) == (outcome == "keys")


@SETTINGS
@given(sizes=st.lists(st.integers(0, 300), max_size=12),
       grown=st.lists(st.integers(0, 600), min_size=12, max_size=12),
       limit=st.integers(200, 3000))
def test_the_response_fits_and_a_record_left_out_could_not_have_fit(
        sizes: list[int], grown: list[int], limit: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firehose_response, "LIMIT", limit)  # a small limit, same rule
    event = firehose_event(*(b"x" * size for size in sizes))

    async def handle(record: FirehoseRecord) -> bytes:
        return b"y" * grown[position(record)]

    async def main() -> Any:
        return await AsyncBatchProcessor(**QUIET).process(copy.deepcopy(event), handle)

    report = run_virtual(main)
    floor = {"records": [{"recordId": raw["recordId"], "result": "ProcessingFailed",
                          "data": raw["data"]} for raw in event["records"]]}
    if response_size(floor) > limit:
        with pytest.raises(ResponseTooLargeError):
            report.response()
        return
    response = report.response()
    assert response_size(response) <= limit
    answers = response["records"]
    for index, (raw, answer) in enumerate(zip(event["records"], answers)):
        assert answer["recordId"] == raw["recordId"]
        if answer["result"] == "ProcessingFailed":
            assert answer["data"] == raw["data"]  # left out: with its original data
            with_it = copy.deepcopy(response)
            with_it["records"][index] = {"recordId": raw["recordId"], "result": "Ok",
                                         "data": b64(b"y" * grown[index])}
            assert response_size(with_it) > limit  # and it could not have been answered Ok
        else:
            assert answer == {"recordId": raw["recordId"], "result": "Ok",
                              "data": b64(b"y" * grown[index])}
