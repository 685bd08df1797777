"""The bad-input catalogue: malformed events and misuse, the exact error each gives, and
proof that no handler ran (or, for a bad record payload, that only that record failed).

Every raised error is an ``asyncbatch.AsyncBatchError`` (``InvalidEventError`` and
``ConfigurationError`` are also ``ValueError``); none escapes as a bare ``KeyError`` or
``TypeError``. Format: input → message.

**Malformed events → `InvalidEventError`**, from `process()` and both entry points, before
any handler runs:

- event is a list / str / None → `the event is a list, not a mapping with a 'Records' list`
- no `Records` key, or `"Records": null` → `the event has no 'Records' key`
- `Records` is a dict / str → `the event's 'Records' is a dict, not a list`
- `"Records": []` → valid: `{"batchItemFailures": []}`, no error
- a record is not a mapping → `Records[1] is a str, not a mapping`
- the first record is not a mapping, source auto-detected →
  `Records[0] is a NoneType, not a mapping`
- SQS record without `messageId` (or `""`, or a number) →
  `Records[0] has no messageId (its itemIdentifier)`
- Kinesis record without `kinesis.sequenceNumber` (or no `kinesis`) →
  `Records[0] has no kinesis.sequenceNumber (its itemIdentifier)`
- DynamoDB record without `dynamodb.SequenceNumber` →
  `Records[0] has no dynamodb.SequenceNumber (its itemIdentifier)`
- records of two sources → `Records[1] comes from 'aws:kinesis' but the batch is 'aws:sqs'`
- source differs from `event_type=` →
  `the processor is made for KinesisDataStreams events (event_type='KinesisDataStreams')
  but this event comes from SQS (eventSource 'aws:sqs'); make the processor with
  event_type=None to detect the source from each event, or event_type='SQS' for this one`
- unknown or missing `eventSource`, no `event_type=` →
  `cannot tell the event source: Records[0] has eventSource='aws:s3' (known: aws:dynamodb,
  aws:kinesis, aws:sqs); pass event_type= to the processor`
- sequence number `abc`, `-2`, `1e5`, `" 12"` →
  `Records[0] has kinesis.sequenceNumber='abc', not a decimal sequence number`
- sequence number `1²` (a superscript digit) → the same
- Kinesis record without `partitionKey` (or not a str) →
  `Records[0] has no kinesis.partitionKey`
- DynamoDB record without `Keys` (or `{}`) → `Records[0] has no dynamodb.Keys`
- DynamoDB key not typed → `Records[0]: Keys.pk: expected a one-key type mapping`
- DynamoDB key `{"N": "abc"}` → `Records[0]: Keys.pk: 'abc' is not a DynamoDB number`
- DynamoDB key `{"N": "sNaN"}` → the same
- FIFO queue (ARN ends in `.fifo`) record whose `MessageGroupId` is not a non-empty string →
  `Records[1] has attributes.MessageGroupId=7, not a non-empty string`; without one →
  `Records[0] comes from a FIFO queue (its ARN ends in .fifo) but has no
  attributes.MessageGroupId` (a standard queue's `MessageGroupId` is not read: fair queues)
- DynamoDB number key beyond `Decimal`'s exponent range (`1e999999999999999999`) →
  `Records[0]: Keys.pk: '1e999999999999999999' is out of DynamoDB's number range`
- DynamoDB key of a type that is not S, N or B (`{"X": "a"}`, `{"BOOL": true}`) →
  `Records[0]: Keys.pk: type 'X' is not a key type (S, N or B)`
- sequence number longer than Python's int-digit limit (`sys.get_int_max_str_digits()`) →
  `Records[1] has a kinesis.sequenceNumber of 4301 digits, more than Python converts to int
  (4300, sys.get_int_max_str_digits())`
- `window` not a mapping → `the event's 'window' is not a mapping with start and end`
- Kafka: see `tests/sources/test_kafka.py` (records not a mapping, no offset/partition, ...)

**Bad payloads**: only that record fails (the error is on its outcome); the batch goes on:

- Kinesis `data` not base64, the handler reads `.data` → `RecordDecodeError`:
  `record 3: kinesis.data is not valid base64 (...)`
- Kinesis `data` not JSON, the handler calls `.json()` → `RecordDecodeError`:
  `record 2: kinesis.data is not valid JSON (...)`
- SQS body not JSON, the handler calls `.json()` → `RecordDecodeError`:
  `record msg-1: body is not valid JSON (...)`
- SQS body not JSON, with `model=` → `RecordValidationError`:
  `record msg-1: invalid <root> (<root>: Invalid JSON: ...)`
- body that fails `model=` → `RecordValidationError`, `.fields == ("id", "name")`:
  `record msg-1: invalid id, name (id: Input should be a valid integer, ...; name: Field
  required)`
- Kinesis `data` not base64, with `model=` → `RecordDecodeError`:
  `record 2: kinesis.data is not valid base64 (...)`
- DynamoDB image number `abc`, the handler reads `.new_image` → `RecordDecodeError`:
  `record 2: dynamodb.NewImage.n: 'abc' is not a DynamoDB number`
- DynamoDB image value of an unknown type (`{"Q": "1"}`) → `RecordDecodeError`:
  `record 2: dynamodb.NewImage.n: unknown DynamoDB type 'Q'`

**Misuse → `ConfigurationError`**, before anything runs:

- handler a sync def / lambda / object with a sync `__call__` / async generator function →
  `handler _sync_handler is not an async function: define it with 'async def
  _sync_handler(record): ...'`
- handler None / a str / an object → `handler None is not callable; give an async function`
- `concurrency` 0, -1, 1.5, True, "10", None →
  `concurrency=0: give a whole number >= 1 (the most handlers that may run at once), e.g.
  concurrency=32`
- `event_type` "sqs", "S3", "", 42 → `event_type='sqs' is not an event type; use None
  (detect), an EventType or one of 'SQS', 'KinesisDataStreams', 'DynamoDBStreams'`
- `model` dict, "Model", 5 →
  `model=<class 'dict'>: give a pydantic v2 model class (with model_validate_json)`
- `retry` "3", 3, the `Retry` class → `retry='3': give asyncbatch.Retry(...) or None`
- `Retry(attempts=0 / -1 / 1.5 / "3" / True)` →
  `Retry(attempts=0): attempts must be a whole number >= 1`
- `Retry(base=-1 / "x")`, `Retry(cap=-1 / None)` → `Retry(base=-1): give seconds >= 0`
- `Retry(on=5 / "ValueError" / (ValueError, "x"))` →
  `Retry(on=5): give exception types, a predicate or None`
- `timeout` 0, -1, "5", nan → `timeout=0: give seconds > 0, or None`
- `timeout=True` → `timeout=True: give seconds > 0, or None`
- `deadline_margin` / `cancel_margin` -1, "fast", None, nan →
  `deadline_margin=-1: give seconds >= 0 or 'auto'`
- `cancel_margin` above `deadline_margin` →
  `cancel_margin must not exceed deadline_margin: records stop being started first, ...`
- `sink=5` → `sink=5 is not an async callable: give 'async def sink(failure): ...' ...`
- `sink` a sync def → `sink=<function ...> is not an async callable ...`
- `sink_when=5` → `sink_when=5: give a function (exception -> bool) or None`
- `hooks=5` → `hooks=5 lacks batch_started, ...: subclass asyncbatch.Hooks ...`
- `window_reducer=5` → `window_reducer=5: give a function (state, record, window) -> new state`
- processor argument not an `AsyncBatchProcessor` (None, a str, the handler, the class) →
  `processor must be an asyncbatch.AsyncBatchProcessor, got NoneType`
- `process_partial_response` inside a running event loop →
  `process_partial_response was called inside a running event loop; use 'await
  async_process_partial_response(...)' there`
  (asyncio and trio)
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from collections.abc import AsyncIterator
from typing import Any, Callable, Optional

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncbatch
from asyncbatch import (
    AsyncBatchError,
    AsyncBatchProcessor,
    ConfigurationError,
    InvalidEventError,
    RecordDecodeError,
    RecordValidationError,
    Retry,
)


class Calls:
    """An async handler that records every record it is given."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[str] = []
        self.fail = fail

    async def __call__(self, record: Any) -> None:
        self.seen.append(getattr(record, "identifier", repr(record)))
        if self.fail:
            raise ValueError("handler failed")


def check_error(exc: BaseException, kind: type[AsyncBatchError], match: str) -> None:
    """The error is exactly what the catalogue says, and no bare KeyError/TypeError."""
    assert type(exc) not in (KeyError, TypeError, AttributeError, ValueError)
    assert isinstance(exc, AsyncBatchError)
    assert isinstance(exc, kind), f"{type(exc).__name__}: {exc}"
    assert re.search(match, str(exc)), f"{match!r} not in {str(exc)!r}"


# -- records -----------------------------------------------------------------------------


def sqs(i: int = 0, **changes: Any) -> dict[str, Any]:
    raw = {"messageId": f"msg-{i}", "body": json.dumps({"id": i, "name": f"n{i}"}),
           "attributes": {}, "eventSource": "aws:sqs",
           "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q"}
    raw.update(changes)
    return raw


def kinesis(seq: Any = "1", key: Any = "k", data: Any = None, **changes: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"sequenceNumber": seq, "partitionKey": key,
                             "data": base64.b64encode(b'{"id": 1, "name": "a"}').decode()
                             if data is None else data}
    for name in ("sequenceNumber", "partitionKey"):
        if block[name] is _MISSING:
            del block[name]
    raw = {"eventSource": "aws:kinesis", "kinesis": block}
    raw.update(changes)
    return raw


def dynamodb(
    seq: Any = "1", keys: Any = None, number: str = "1", **changes: Any
) -> dict[str, Any]:
    block: dict[str, Any] = {"SequenceNumber": seq,
                             "Keys": {"pk": {"S": "a"}} if keys is None else keys,
                             "NewImage": {"pk": {"S": "a"}, "n": {"N": number}}}
    for name in ("SequenceNumber", "Keys"):
        if block[name] is _MISSING:
            del block[name]
    raw = {"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": block}
    raw.update(changes)
    return raw


if sys.version_info < (3, 11):
    pass

_MISSING: Any = object()
_FIFO = "arn:aws:sqs:us-east-1:123456789012:q.fifo"
# Python's int-digit limit (4300 by default; 0 = none, then 4300 is as good as any)
_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300
_SQS_NO_ID = {k: v for k, v in sqs().items() if k != "messageId"}


_DID_NOT_RAISE = pytest.fail.Exception  # what pytest.raises raises when nothing was raised


# (id, event, event_type, match)
MALFORMED = [
    # (a top-level list is an EventBridge pipe's batch: tests/sources/test_pipes.py)
    pytest.param([{"Records": []}], None, r"record 0 of the pipe's batch .* is a whole event",
                 id="event-list-of-events"),
    pytest.param("Records", None, r"the event is a str, not a mapping", id="event-str"),
    pytest.param(None, None, r"the event is a NoneType, not a mapping", id="event-none"),
    pytest.param({}, None, r"the event has no 'Records' key", id="records-missing"),
    pytest.param({"records": [sqs()]}, None, r"the event has no 'Records' key",
                 id="records-lowercase"),
    pytest.param({"Records": None}, None, r"the event has no 'Records' key", id="records-null"),
    pytest.param({"Records": {"0": sqs()}}, None,
                 r"the event's 'Records' is a dict, not a list", id="records-dict"),
    pytest.param({"Records": "[]"}, None, r"the event's 'Records' is a str, not a list",
                 id="records-str"),
    pytest.param({"Records": [5]}, "SQS", r"Records\[0\] is a int, not a mapping",
                 id="record-int"),
    pytest.param({"Records": [sqs(), "msg-1"]}, None, r"Records\[1\] is a str, not a mapping",
                 id="record-str"),
    pytest.param({"Records": [sqs(), None]}, None, r"Records\[1\] is a NoneType, not a mapping",
                 id="record-none"),
    pytest.param({"Records": [None]}, None, r"Records\[0\] is a NoneType, not a mapping",
                 id="first-record-none-auto-detect"),
    pytest.param({"Records": [_SQS_NO_ID]}, None,
                 r"Records\[0\] has no messageId \(its itemIdentifier\)", id="sqs-no-messageId"),
    pytest.param({"Records": [sqs(messageId="")]}, None, r"Records\[0\] has no messageId",
                 id="sqs-empty-messageId"),
    pytest.param({"Records": [sqs(0), sqs(1, messageId=17)]}, None,
                 r"Records\[1\] has no messageId", id="sqs-int-messageId"),
    pytest.param({"Records": [kinesis(seq=_MISSING)]}, None,
                 r"Records\[0\] has no kinesis\.sequenceNumber \(its itemIdentifier\)",
                 id="kinesis-no-sequenceNumber"),
    pytest.param({"Records": [{"eventSource": "aws:kinesis"}]}, None,
                 r"Records\[0\] has no kinesis\.sequenceNumber", id="kinesis-no-kinesis"),
    pytest.param({"Records": [kinesis(kinesis="abc")]}, None,
                 r"Records\[0\] has no kinesis\.sequenceNumber", id="kinesis-kinesis-str"),
    pytest.param({"Records": [dynamodb(seq=_MISSING)]}, None,
                 r"Records\[0\] has no dynamodb\.SequenceNumber \(its itemIdentifier\)",
                 id="dynamodb-no-SequenceNumber"),
    pytest.param({"Records": [dynamodb(dynamodb=None)]}, None,
                 r"Records\[0\] has no dynamodb\.SequenceNumber", id="dynamodb-null"),
    pytest.param({"Records": [sqs(), kinesis()]}, None,
                 r"Records\[1\] comes from 'aws:kinesis' but the batch is 'aws:sqs'",
                 id="mixed-sources"),
    pytest.param({"Records": [dynamodb(), dynamodb("2"), sqs()]}, None,
                 r"Records\[2\] comes from 'aws:sqs' but the batch is 'aws:dynamodb'",
                 id="mixed-sources-late"),
    pytest.param({"Records": [sqs()]}, "KinesisDataStreams",
                 r"the processor is made for KinesisDataStreams events "
                 r"\(event_type='KinesisDataStreams'\) but this event comes from SQS "
                 r"\(eventSource 'aws:sqs'\); make the processor with event_type=None to "
                 r"detect the source from each event, or event_type='SQS' for this one",
                 id="source-differs-from-event_type"),
    pytest.param({"Records": [kinesis(), sqs()]}, "KinesisDataStreams",
                 r"Records\[1\] comes from 'aws:sqs' but the batch is 'aws:kinesis'",
                 id="mixed-sources-with-event_type"),
    pytest.param({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, None,
                 r"cannot tell the event source: Records\[0\] has eventSource='aws:s3' "
                 r"\(known: aws:dynamodb, aws:kinesis, aws:sqs\); pass event_type=",
                 id="unknown-eventSource"),
    pytest.param({"Records": [{"messageId": "m", "body": ""}]}, None,
                 r"cannot tell the event source: Records\[0\] has eventSource=None",
                 id="no-eventSource"),
    pytest.param({"Records": [kinesis("abc")]}, None,
                 r"Records\[0\] has kinesis\.sequenceNumber='abc', not a decimal sequence number",
                 id="kinesis-seq-letters"),
    pytest.param({"Records": [kinesis("1"), kinesis("-2")]}, None,
                 r"Records\[1\] has kinesis\.sequenceNumber='-2', not a decimal",
                 id="kinesis-seq-negative"),
    pytest.param({"Records": [kinesis("1e5")]}, None,
                 r"kinesis\.sequenceNumber='1e5', not a decimal", id="kinesis-seq-exponent"),
    pytest.param({"Records": [kinesis(" 12")]}, None,
                 r"kinesis\.sequenceNumber=' 12', not a decimal", id="kinesis-seq-space"),
    pytest.param({"Records": [kinesis(12)]}, None, r"Records\[0\] has no kinesis\.sequenceNumber",
                 id="kinesis-seq-int"),
    pytest.param({"Records": [dynamodb("12a")]}, None,
                 r"Records\[0\] has dynamodb\.SequenceNumber='12a', not a decimal",
                 id="dynamodb-seq-letters"),
    pytest.param({"Records": [kinesis("1²")]}, None,
                 r"kinesis\.sequenceNumber='1²', not a decimal sequence number",
                 id="kinesis-seq-superscript"),
    pytest.param({"Records": [kinesis(key=_MISSING)]}, None,
                 r"Records\[0\] has no kinesis\.partitionKey", id="kinesis-no-partitionKey"),
    pytest.param({"Records": [kinesis("1"), kinesis("2", key=7)]}, None,
                 r"Records\[1\] has no kinesis\.partitionKey", id="kinesis-int-partitionKey"),
    pytest.param({"Records": [dynamodb(keys=_MISSING)]}, None,
                 r"Records\[0\] has no dynamodb\.Keys", id="dynamodb-no-Keys"),
    pytest.param({"Records": [dynamodb(keys={})]}, None, r"Records\[0\] has no dynamodb\.Keys",
                 id="dynamodb-empty-Keys"),
    pytest.param({"Records": [dynamodb(keys={"pk": "a"})]}, None,
                 r"Records\[0\]: Keys\.pk: expected a one-key type mapping",
                 id="dynamodb-untyped-key"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"N": "abc"}})]}, None,
                 r"Records\[0\]: Keys\.pk: 'abc' is not a DynamoDB number",
                 id="dynamodb-bad-number-key"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"N": "sNaN"}})]}, None,
                 r"Records\[0\]: Keys\.pk: 'sNaN' is not a DynamoDB number",
                 id="dynamodb-sNaN-key"),
    # the validation gaps
    pytest.param({"Records": [sqs(0, eventSourceARN=_FIFO, attributes={"MessageGroupId": "g"}),
                              sqs(1, eventSourceARN=_FIFO, attributes={"MessageGroupId": 7})]},
                 None, r"Records\[1\] has attributes\.MessageGroupId=7, not a non-empty string",
                 id="fifo-int-MessageGroupId"),
    pytest.param({"Records": [sqs(0, eventSourceARN=_FIFO, attributes={"MessageGroupId": ["g"]})]},
                 None, r"Records\[0\] has attributes\.MessageGroupId=\['g'\], not a non-empty",
                 id="fifo-list-MessageGroupId"),
    pytest.param({"Records": [sqs(0, eventSourceARN=_FIFO)]}, None,
                 r"Records\[0\] comes from a FIFO queue \(its ARN ends in \.fifo\) but has no "
                 r"attributes\.MessageGroupId", id="fifo-no-MessageGroupId"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"N": "1e999999999999999999"}})]}, None,
                 r"Records\[0\]: Keys\.pk: '1e999999999999999999' is out of DynamoDB's number "
                 r"range", id="dynamodb-key-number-overflow"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"N": "1e-999999999999999999"}})]}, None,
                 r"Records\[0\]: Keys\.pk: '1e-999999999999999999' is out of DynamoDB's number",
                 id="dynamodb-key-number-underflow"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"X": "a"}})]}, None,
                 r"Records\[0\]: Keys\.pk: type 'X' is not a key type \(S, N or B\)",
                 id="dynamodb-unknown-key-tag"),
    pytest.param({"Records": [dynamodb(keys={"pk": {"BOOL": True}})]}, None,
                 r"Records\[0\]: Keys\.pk: type 'BOOL' is not a key type",
                 id="dynamodb-bool-key"),
    pytest.param({"Records": [kinesis("1"), kinesis("9" * (_DIGITS + 1))]}, None,
                 rf"Records\[1\] has a kinesis\.sequenceNumber of {_DIGITS + 1} digits, more "
                 rf"than Python converts to int \({_DIGITS}, sys\.get_int_max_str_digits\(\)\)",
                 id="kinesis-seq-beyond-int-digit-limit"),
    pytest.param({"Records": [dynamodb("9" * (_DIGITS + 1))]}, None,
                 rf"Records\[0\] has a dynamodb\.SequenceNumber of {_DIGITS + 1} digits",
                 id="dynamodb-seq-beyond-int-digit-limit"),
    pytest.param({"Records": [kinesis()], "window": "2026"}, None,
                 r"the event's 'window' is not a mapping with start and end",
                 id="window-not-mapping"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("event", "event_type", "match"), MALFORMED)
async def test_a_malformed_event_is_refused_before_any_handler_runs(
    event: Any, event_type: Optional[str], match: str
) -> None:
    # A failing handler: had any record run, a failure would exercise the sequence rules.
    handler = Calls(fail=True)
    processor = AsyncBatchProcessor(event_type=event_type)
    with pytest.raises(AsyncBatchError) as info:
        await processor.process(event, handler)
    check_error(info.value, InvalidEventError, match)
    assert handler.seen == []


@pytest.mark.parametrize(("event", "event_type", "match"), MALFORMED)
def test_the_sync_entry_point_refuses_a_malformed_event_the_same_way(
    event: Any, event_type: Optional[str], match: str
) -> None:
    handler = Calls(fail=True)
    processor = AsyncBatchProcessor(event_type=event_type)
    with pytest.raises(AsyncBatchError) as info:
        asyncbatch.process_partial_response(event, handler, processor)
    check_error(info.value, InvalidEventError, match)
    assert handler.seen == []


@pytest.mark.anyio
@pytest.mark.parametrize("event_type", [None, "SQS", "KinesisDataStreams", "DynamoDBStreams"])
async def test_an_empty_batch_is_valid(event_type: Optional[str]) -> None:
    processor = AsyncBatchProcessor(event_type=event_type)
    handler = Calls()
    response = await asyncbatch.async_process_partial_response(
        {"Records": []}, handler, processor)
    assert response == {"batchItemFailures": []}
    report = await processor.process({"Records": []}, handler)
    assert len(report) == 0
    assert not report.all_failed
    assert handler.seen == []


def test_an_empty_batch_is_valid_through_the_sync_entry_point() -> None:
    response = asyncbatch.process_partial_response({"Records": []}, Calls(), AsyncBatchProcessor())
    assert response == {"batchItemFailures": []}


# -- bad payloads: one record fails, the batch goes on -------------------------------------


async def _read_data(record: asyncbatch.KinesisRecord) -> None:
    record.data  # noqa: B018 - reading it is the point


async def _read_json(record: Any) -> None:
    record.json()


async def _read_new_image(record: asyncbatch.DynamoDBRecord) -> None:
    record.new_image  # noqa: B018


def _item_model() -> type[Any]:
    """The ``model=`` of the payload cases (pydantic imported only when they run)."""
    from pydantic import BaseModel

    class Item(BaseModel):
        id: int
        name: str

    return Item


def _b64(text: bytes) -> str:
    return base64.b64encode(text).decode()


# (records, handler, use model, the bad record's index, error type, match, fields)
BAD_PAYLOADS = [
    pytest.param([kinesis("1", "a"), kinesis("2", "b"), kinesis("3", "c", data="!!not base64")],
                 _read_data, False, 2, RecordDecodeError,
                 r"record 3: kinesis\.data is not valid base64", None, id="kinesis-base64-data"),
    pytest.param([kinesis("1", "a"), kinesis("2", "b", data=_b64(b"\xff not json"))],
                 _read_json, False, 1, RecordDecodeError,
                 r"record 2: kinesis\.data is not valid JSON", None, id="kinesis-json"),
    pytest.param([sqs(0), sqs(1, body="{not json"), sqs(2)], _read_json, False, 1,
                 RecordDecodeError, r"record msg-1: body is not valid JSON", None,
                 id="sqs-json"),
    pytest.param([sqs(0), sqs(1, body="{not json"), sqs(2)], Calls(), True, 1,
                 RecordValidationError, r"record msg-1: invalid <root> \(<root>: Invalid JSON",
                 ("<root>",), id="sqs-json-model"),
    pytest.param([sqs(0), sqs(1, body='{"id": "one"}'), sqs(2)], Calls(), True, 1,
                 RecordValidationError,
                 r"record msg-1: invalid id, name \(id: Input should be a valid integer.*; "
                 r"name: Field required\)", ("id", "name"), id="sqs-model-fields"),
    pytest.param([kinesis("1", "a"), kinesis("2", "b", data="%%%")], Calls(), True, 1,
                 RecordDecodeError, r"record 2: kinesis\.data is not valid base64", None,
                 id="kinesis-base64-model"),
    pytest.param([dynamodb("1"), dynamodb("2", keys={"pk": {"S": "b"}}, number="abc")],
                 _read_new_image, False, 1,
                 RecordDecodeError, r"record 2: dynamodb\.NewImage\.n: 'abc' is not a DynamoDB "
                 r"number", None, id="dynamodb-image-number"),
    pytest.param([dynamodb("1"), dynamodb("2", keys={"pk": {"S": "b"}}, dynamodb={
                     "SequenceNumber": "2", "Keys": {"pk": {"S": "b"}},
                     "NewImage": {"pk": {"S": "b"}, "n": {"Q": "1"}}})],
                 _read_new_image, False, 1, RecordDecodeError,
                 r"record 2: dynamodb\.NewImage\.n: unknown DynamoDB type 'Q'", None,
                 id="dynamodb-image-unknown-type"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("records", "handler", "use_model", "bad", "kind", "match", "fields"), BAD_PAYLOADS)
async def test_a_bad_payload_fails_its_record_and_the_batch_goes_on(
    records: list[dict[str, Any]], handler: Callable[[Any], Any], use_model: bool, bad: int,
    kind: type[AsyncBatchError], match: str, fields: Optional[tuple[str, ...]],
) -> None:
    records = json.loads(json.dumps(records))  # a fresh copy per run
    if isinstance(handler, Calls):
        handler = Calls()
    processor = AsyncBatchProcessor(model=_item_model() if use_model else None)

    report = await processor.process({"Records": records}, handler)

    (failed,) = report.failed
    assert failed.index == bad
    check_error(failed.exception, kind, match)  # type: ignore[arg-type]
    assert failed.exception.identifier == failed.identifier  # type: ignore[union-attr]
    if fields is not None:
        assert failed.exception.fields == fields  # type: ignore[union-attr]
    # Every other record ran and succeeded (the bad record is the last of the stream
    # records, so no checkpoint rule skips anything).
    assert [o.index for o in report.succeeded] == [i for i in range(len(records)) if i != bad]
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": failed.identifier}]}
    if isinstance(handler, Calls):  # with model=: the handler never saw the bad record
        assert len(handler.seen) == len(records) - 1


# -- handler misuse ----------------------------------------------------------------------


def _sync_handler(record: Any) -> None:
    _sync_handler.calls += 1  # type: ignore[attr-defined]


_sync_handler.calls = 0  # type: ignore[attr-defined]


class _SyncCallable:
    def __call__(self, record: Any) -> None:
        raise AssertionError("must not be called")


async def _async_gen(record: Any) -> AsyncIterator[None]:
    yield None


BAD_HANDLERS = [
    # plain 'def' handlers are accepted (run on worker threads):
    # tests/core/test_handlers.py covers them
    pytest.param(None, r"handler None is not callable; give an async function", id="none"),
    pytest.param("handle", r"handler 'handle' is not callable", id="str"),
    pytest.param(object(), r"handler <object object at .*> is not callable",
                 id="instance-no-call"),
    pytest.param(_async_gen, r"handler _async_gen is not an async function",
                 id="async-generator"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("handler", "match"), BAD_HANDLERS)
async def test_a_handler_that_is_not_a_coroutine_function_is_refused_up_front(
    handler: Any, match: str
) -> None:
    before = _sync_handler.calls  # type: ignore[attr-defined]
    event = {"Records": [sqs(0), sqs(1)]}
    for call in (
        lambda: AsyncBatchProcessor().process(event, handler),
        lambda: asyncbatch.async_process_partial_response(event, handler, AsyncBatchProcessor()),
    ):
        with pytest.raises(AsyncBatchError) as info:
            await call()
        check_error(info.value, ConfigurationError, match)
    with pytest.raises(AsyncBatchError) as info:
        await anyio.to_thread.run_sync(
            asyncbatch.process_partial_response, event, handler, AsyncBatchProcessor())
    check_error(info.value, ConfigurationError, match)
    assert _sync_handler.calls == before  # type: ignore[attr-defined]


# -- option misuse -----------------------------------------------------------------------


def _sync_sink(failure: asyncbatch.Failure) -> None:
    return None


BAD_OPTIONS = [
    *(pytest.param({"concurrency": value},
                   rf"concurrency={re.escape(repr(value))}: give a whole number >= 1",
                   id=f"concurrency-{value!r}")
      for value in (0, -1, 1.5, True, "10", None)),
    *(pytest.param({"event_type": value},
                   rf"event_type={re.escape(repr(value))} is not an event type; use "
                   r"None \(detect\), an EventType or one of 'SQS', 'KinesisDataStreams', "
                   r"'DynamoDBStreams'", id=f"event_type-{value!r}")
      for value in ("sqs", "S3", "", 42)),
    *(pytest.param({"model": value}, r"give a pydantic v2 model class", id=f"model-{value!r}")
      for value in (dict, "Model", 5)),
    *(pytest.param({"retry": value}, r"give asyncbatch\.Retry\(\.\.\.\) or None",
                   id=f"retry-{value!r}")
      for value in ("3", 3, Retry)),
    *(pytest.param({"timeout": value}, r"timeout=.*: give seconds > 0, or None",
                   id=f"timeout-{value!r}")
      for value in (0, -1, "5", math.nan)),
    pytest.param({"timeout": True}, r"timeout=True: give seconds > 0", id="timeout-True"),
    *(pytest.param({name: value}, rf"{name}=.*: give seconds >= 0 or 'auto'",
                   id=f"{name}-{value!r}")
      for name in ("deadline_margin", "cancel_margin") for value in (-1, "fast", None, math.nan)),
    pytest.param({"deadline_margin": 1.0, "cancel_margin": 2.0},
                 r"cancel_margin must not exceed deadline_margin", id="cancel-after-deadline"),
    pytest.param({"sink": 5}, r"sink=5 is not an async callable", id="sink-int"),
    pytest.param({"sink": _sync_sink}, r"sink .*async", id="sink-sync-def"),
    pytest.param({"sink_when": 5}, r"sink_when", id="sink_when-int"),
    pytest.param({"hooks": 5}, r"hooks", id="hooks-int"),
    pytest.param({"window_reducer": 5}, r"window_reducer", id="window_reducer-int"),
]


@pytest.mark.parametrize(("options", "match"), BAD_OPTIONS)
def test_a_bad_processor_option_is_a_configuration_error(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(AsyncBatchError) as info:
        AsyncBatchProcessor(**options)
    check_error(info.value, ConfigurationError, match)


BAD_RETRIES = [
    *(pytest.param({"attempts": value},
                   rf"Retry\(attempts={re.escape(repr(value))}\): attempts must be a whole "
                   r"number >= 1",
                   id=f"attempts-{value!r}")
      for value in (0, -1, 1.5, "3")),
    pytest.param({"attempts": True}, r"Retry\(attempts=True\)", id="attempts-True"),
    pytest.param({"base": -1}, r"Retry\(base=-1\): give seconds >= 0", id="base-negative"),
    pytest.param({"cap": -1}, r"Retry\(cap=-1\): give seconds >= 0", id="cap-negative"),
    pytest.param({"base": "x"}, r"base", id="base-str"),
    pytest.param({"cap": None}, r"cap", id="cap-none"),
    *(pytest.param({"on": value},
                   rf"Retry\(on={re.escape(repr(value))}\): give exception types, a "
                   r"predicate or None", id=f"on-{value!r}")
      for value in (5, "ValueError", (ValueError, "x"))),
]


@pytest.mark.parametrize(("options", "match"), BAD_RETRIES)
def test_a_bad_retry_policy_is_a_configuration_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(AsyncBatchError) as info:
        Retry(**options)
    check_error(info.value, ConfigurationError, match)


# -- entry point misuse ------------------------------------------------------------------


async def _handle(record: Any) -> None:
    raise AssertionError("must not run")


@pytest.mark.anyio
@pytest.mark.parametrize(("processor", "got"), [
    (None, "NoneType"), ("processor", "str"), (_handle, "function"),
    (AsyncBatchProcessor, "type"),
])
async def test_the_processor_argument_must_be_a_processor(processor: Any, got: str) -> None:
    event = {"Records": [sqs()]}
    match = rf"processor must be an asyncbatch\.AsyncBatchProcessor, got {got}"
    with pytest.raises(AsyncBatchError) as info:
        await asyncbatch.async_process_partial_response(event, _handle, processor)
    check_error(info.value, ConfigurationError, match)
    with pytest.raises(AsyncBatchError) as info:
        await anyio.to_thread.run_sync(
            asyncbatch.process_partial_response, event, _handle, processor)
    check_error(info.value, ConfigurationError, match)


@pytest.mark.anyio
async def test_process_partial_response_inside_a_running_loop_is_refused(
    anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    handler = Calls()
    with pytest.raises(AsyncBatchError) as info:
        asyncbatch.process_partial_response({"Records": [sqs()]}, handler, AsyncBatchProcessor())
    check_error(info.value, ConfigurationError,
                r"process_partial_response was called inside a running event loop; use "
                r"'await async_process_partial_response\(\.\.\.\)' there")
    assert handler.seen == []


# -- fuzz: nothing malformed escapes as anything but InvalidEventError ----------------------

_text = st.text(alphabet="ab01 -", max_size=4)
_seq = st.one_of(st.none(), st.integers(-5, 5), st.text(alphabet="0123456789abe -+.", max_size=5))
_number = st.sampled_from(["1", "1.0", "-0", "1e3", "abc", "NaN", "Infinity", "", "0x1"])
_key_value = st.one_of(
    _text, st.integers(), st.none(), st.lists(_text, max_size=2),
    st.fixed_dictionaries({"S": st.one_of(_text, st.integers())}),
    st.fixed_dictionaries({"N": _number}),
    st.fixed_dictionaries({"B": st.sampled_from(["YQ==", "!!", ""])}),
    st.fixed_dictionaries({"S": _text, "N": _number}),
)
_keys = st.one_of(st.none(), _text, st.dictionaries(st.sampled_from(["pk", "sk"]), _key_value,
                                                    max_size=2))
_source = st.sampled_from(["aws:sqs", "aws:kinesis", "aws:dynamodb", "aws:s3", None, 5])


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(_MISSING), strategy)


def _record() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries({}, optional={
        "eventSource": _source,
        "messageId": st.one_of(_seq, _text),
        "body": st.one_of(st.none(), _text, st.integers()),
        "attributes": st.one_of(st.none(), _text, st.fixed_dictionaries(
            {}, optional={"MessageGroupId": st.one_of(_text, st.integers())})),
        "eventSourceARN": st.one_of(st.none(), st.sampled_from(["arn:q", "arn:q.fifo"]),
                                    st.integers()),
        "kinesis": st.one_of(st.none(), _text, st.fixed_dictionaries({}, optional={
            "sequenceNumber": _seq, "partitionKey": st.one_of(st.none(), _text, st.integers()),
            "data": st.one_of(st.none(), _text, st.sampled_from(["eyJhIjoxfQ==", "!!"])),
        })),
        "dynamodb": st.one_of(st.none(), _text, st.fixed_dictionaries({}, optional={
            "SequenceNumber": _seq, "Keys": _keys, "NewImage": _keys,
        })),
    })
    return st.one_of(fields, st.none(), _text, st.integers())


_event = st.one_of(
    st.none(), _text, st.lists(st.integers(), max_size=1),
    st.fixed_dictionaries({}, optional={
        "Records": st.one_of(st.none(), _text, st.lists(_record(), max_size=4),
                             st.dictionaries(_text, st.integers(), max_size=1)),
        "window": st.one_of(st.none(), _text, st.fixed_dictionaries({"start": _text})),
        "state": st.one_of(st.none(), _text, st.dictionaries(_text, st.integers(), max_size=1)),
    }),
)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(event=_event, event_type=st.sampled_from([None, "SQS", "KinesisDataStreams",
                                                  "DynamoDBStreams"]))
def test_no_malformed_event_escapes_as_anything_but_invalid_event_error(
    event: Any, event_type: Optional[str]
) -> None:
    """Random event shapes: ``process()`` either returns a report or raises
    ``InvalidEventError`` (before the handler sees anything); a handler that reads the
    payload and fails makes its record fail, never the batch."""
    seen: list[Any] = []

    async def handle(record: Any) -> None:
        seen.append(record)
        if isinstance(record, asyncbatch.DynamoDBRecord):
            record.new_image  # noqa: B018
        else:
            record.json()
        raise ValueError("handler failed")  # exercises the sequence and skip rules too

    async def main() -> Optional[asyncbatch.BatchReport]:
        try:
            return await AsyncBatchProcessor(event_type=event_type).process(event, handle)
        except InvalidEventError:
            assert seen == []
            return None

    report = anyio.run(main)
    if report is not None:
        assert len(report.failed) + len(report.skipped) + len(report.succeeded) == len(report)
        for outcome in report.failed:
            assert isinstance(outcome.exception, (ValueError, AsyncBatchError))
            assert type(outcome.exception) not in (KeyError, TypeError, AttributeError)
