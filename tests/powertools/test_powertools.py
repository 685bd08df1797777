"""asyncbatch.powertools: Powertools' batch utility, name for name, on asyncbatch's engine.

Each test states a behaviour Powertools documents (or a deviation the README's migration
guide lists) and checks it against the drop-in module."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import warnings
from typing import Any, Optional
from unittest.mock import MagicMock

import pytest

pytest.importorskip("aws_lambda_powertools")

import aws_lambda_powertools.utilities.batch as pt
import aws_lambda_powertools.utilities.batch.exceptions as pt_exceptions
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamRecordModel,
    KinesisDataStreamRecord,
    SqsRecordModel,
)
from aws_lambda_powertools.warnings import PowertoolsDeprecationWarning
from pydantic import BaseModel, Json, ValidationError

import asyncbatch
from asyncbatch import powertools, testing
from asyncbatch.powertools import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    async_batch_processor,
    async_process_partial_response,
    batch_processor,
    process_partial_response,
)
from asyncbatch.powertools.exceptions import (
    BatchProcessingError,
    SQSFifoCircuitBreakerError,
    SQSFifoMessageGroupCircuitBreakerError,
    UnexpectedBatchTypeError,
)

# -- events (asyncbatch.testing's factories), one record at a time ------------------------------

QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"


def sqs(n: int, body: Any, group: Optional[str] = None, queue: str = QUEUE) -> dict[str, Any]:
    """Message ``n`` (its id depends on ``n`` only) of a standard queue, or of ``queue``."""
    return testing.sqs_event(body, fifo_group=group, queue_arn=queue, start=n)["Records"][0]


def kinesis(seq: int, key: str, data: Any) -> dict[str, Any]:
    return testing.kinesis_event((key, data), start=seq)["Records"][0]


def dynamodb(seq: int, key: int, message: str) -> dict[str, Any]:
    return testing.dynamodb_event(({"Id": key}, {"Message": message}), event_name="INSERT",
                                  start=seq)["Records"][0]


def handler(record: SQSRecord) -> str:
    """Powertools' own example handler: fails the records whose body says so."""
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.body}")
    return record.body.upper()


# -- names and signatures -------------------------------------------------------------------

def test_every_public_name_of_powertools_batch_is_exported() -> None:
    missing = set(pt.__all__) - set(powertools.__all__)
    assert not missing
    for name in powertools.__all__:
        assert getattr(powertools, name) is not None
    for name, value in vars(pt_exceptions).items():
        if isinstance(value, type) and value.__module__ == pt_exceptions.__name__:
            assert getattr(powertools.exceptions, name) is value


@pytest.mark.parametrize("name", ["EventType", "ExceptionInfo", "SuccessResponse",
                                  "FailureResponse", "BatchTypeModels", "BasePartialProcessor",
                                  "BasePartialBatchProcessor"])
def test_types_and_bases_are_powertools_own(name: str) -> None:
    assert getattr(powertools, name) is getattr(pt, name)


@pytest.mark.parametrize("name", ["BatchProcessor", "AsyncBatchProcessor",
                                  "SqsFifoPartialProcessor",
                                  "process_partial_response", "async_process_partial_response",
                                  "batch_processor", "async_batch_processor"])
def test_signatures_match_powertools(name: str) -> None:
    """Every Powertools parameter, in order, with its default; ours only add keyword-only
    options after them."""
    theirs = inspect.signature(getattr(pt, name)).parameters
    ours = inspect.signature(getattr(powertools, name)).parameters
    assert list(ours)[:len(theirs)] == list(theirs)
    for param in theirs.values():
        assert ours[param.name].default == param.default
    for extra in list(ours)[len(theirs):]:
        assert ours[extra].kind in (inspect.Parameter.KEYWORD_ONLY,
                                    inspect.Parameter.VAR_KEYWORD)


def test_event_type_has_the_four_sources() -> None:
    assert {member.value for member in EventType} >= {
        "SQS", "KinesisDataStreams", "DynamoDBStreams", "Kafka"}


def test_processors_are_powertools_partial_batch_processors() -> None:
    for processor in (BatchProcessor(EventType.SQS), AsyncBatchProcessor(EventType.SQS),
                      SqsFifoPartialProcessor()):
        assert isinstance(processor, pt.BasePartialBatchProcessor)


def test_import_asyncbatch_stays_free_of_powertools() -> None:
    code = ("import sys, asyncbatch; bad = [m for m in sys.modules if m.startswith("
            "('aws_lambda_powertools', 'pydantic', 'boto3'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_without_powertools_the_import_error_says_what_to_install() -> None:
    code = ("import sys; sys.modules['aws_lambda_powertools'] = None\n"
            "try:\n    import asyncbatch.powertools\n"
            "except ImportError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    # asyncbatch is not on a registry: the message gives what works from a clone or a wheel
    assert "pip install 'asyncbatch[powertools]'" not in out.stdout
    assert "pip install 'aws-lambda-powertools>=3'" in out.stdout
    assert "pip install -e '.[powertools]' in a clone of asyncbatch" in out.stdout
    assert "asyncbatch-VERSION-py3-none-any.whl[powertools]'" in out.stdout


# -- the context-manager form: tuples, messages, exceptions, response ------------------------

def test_context_manager_returns_status_result_record_tuples_in_record_order() -> None:
    records = [sqs(0, "a"), sqs(1, "fail b"), sqs(2, "c")]
    processor = BatchProcessor(event_type=EventType.SQS)
    with processor(records, handler) as batch:
        processed = batch.process()
    assert processed[0] == ("success", "A", records[0])
    assert processed[2] == ("success", "C", records[2])
    status, message, record = processed[1]
    assert status == "fail"
    assert message == "<class 'ValueError'>:cannot process fail b"
    assert isinstance(record, SQSRecord) and record.raw_event is records[1]
    assert batch.success_messages == [records[0], records[2]]
    assert [m.message_id for m in batch.fail_messages] == [records[1]["messageId"]]
    [(kind, exc, tb)] = batch.exceptions
    assert kind is ValueError and isinstance(exc, ValueError) and tb is not None
    assert batch.response() == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}


def test_a_warm_invocation_starts_from_an_empty_state() -> None:
    processor = BatchProcessor(EventType.SQS)
    with processor([sqs(0, "fail"), sqs(1, "ok")], handler):
        processor.process()
    records = [sqs(2, "ok"), sqs(3, "ok")]
    with processor(records, handler):
        processor.process()
    assert processor.fail_messages == [] and processor.exceptions == []
    assert processor.success_messages == records
    assert processor.response() == {"batchItemFailures": []}


@pytest.mark.parametrize(("event_type", "records", "data_class", "payload"), [
    (EventType.SQS, [sqs(0, "hello")], SQSRecord, lambda r: r.body),
    (EventType.KinesisDataStreams, [kinesis(1, "k", "hello")], KinesisStreamRecord,
     lambda r: r.kinesis.data_as_text()),
    (EventType.DynamoDBStreams, [dynamodb(1, 7, "hello")], DynamoDBRecord,
     lambda r: r.dynamodb.new_image["Message"]),
], ids=["sqs", "kinesis", "dynamodb"])
def test_handlers_receive_powertools_data_classes(
    event_type: Any, records: list[dict[str, Any]], data_class: type, payload: Any
) -> None:
    got: list[Any] = []

    def record_handler(record: Any) -> Any:
        got.append(record)
        return payload(record)

    response = process_partial_response({"Records": records}, record_handler,
                                        BatchProcessor(event_type))
    assert response == {"batchItemFailures": []}
    assert [type(r) for r in got] == [data_class]
    assert payload(got[0]) == "hello"
    assert got[0].raw_event is records[0]


def test_the_lambda_context_reaches_a_parameter_named_lambda_context() -> None:
    context = testing.LambdaContext(300)
    got: list[Any] = []

    def with_context(record: SQSRecord, lambda_context: Any) -> None:
        got.append(lambda_context)

    def without(record: SQSRecord) -> None:
        got.append("no context")

    event = {"Records": [sqs(0, "a")]}
    process_partial_response(event, with_context, BatchProcessor(EventType.SQS), context)
    process_partial_response(event, without, BatchProcessor(EventType.SQS), context)
    assert got == [context, "no context"]


def test_without_a_context_lambda_context_keeps_its_default() -> None:
    """Powertools injects the context only when one is given."""
    got: list[Any] = []

    def record_handler(record: SQSRecord, lambda_context: Any = "default") -> None:
        got.append(lambda_context)

    process_partial_response({"Records": [sqs(0, "a")]}, record_handler,
                             BatchProcessor(EventType.SQS))
    assert got == ["default"]


def test_a_handler_whose_parameter_is_not_named_record_gets_it_positionally() -> None:
    got: list[str] = []
    process_partial_response({"Records": [sqs(0, "a")]}, lambda r: got.append(r.body),
                             BatchProcessor(EventType.SQS))
    assert got == ["a"]


# -- entire-batch failure -------------------------------------------------------------------

def test_every_record_failed_raises_batch_processing_error_with_each_exception() -> None:
    records = [sqs(0, "fail 1"), sqs(1, "fail 2")]
    with pytest.raises(BatchProcessingError) as info:
        process_partial_response({"Records": records}, handler, BatchProcessor(EventType.SQS))
    assert "All records failed processing. 2 individual errors" in str(info.value)
    assert "cannot process fail 2" in str(info.value)  # each child, with its traceback
    assert [exc for _, exc, _ in info.value.child_exceptions] and all(
        isinstance(exc, ValueError) for _, exc, _ in info.value.child_exceptions)


def test_raise_on_entire_batch_failure_false_reports_every_record() -> None:
    records = [sqs(0, "fail 1"), sqs(1, "fail 2")]
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response({"Records": records}, handler, processor)
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                              for r in records]}


# -- entry points -----------------------------------------------------------------------------

def test_async_process_partial_response_is_sync_and_returns_the_response() -> None:
    async def record_handler(record: SQSRecord) -> str:
        if "fail" in record.body:
            raise ValueError("no")
        return record.body

    records = [sqs(0, "a"), sqs(1, "fail")]
    response = async_process_partial_response({"Records": records}, record_handler,
                                              AsyncBatchProcessor(EventType.SQS))
    assert not inspect.isawaitable(response)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}


@pytest.mark.parametrize("event", [123, [], False, object, "Records", None],
                         ids=["int", "list", "bool", "class", "str", "none"])
@pytest.mark.parametrize("entry", [process_partial_response, async_process_partial_response])
def test_an_event_that_is_not_a_mapping_is_a_value_error(event: Any, entry: Any) -> None:
    with pytest.raises(ValueError, match="Invalid event format"):
        entry(event, handler, BatchProcessor(EventType.SQS))


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": {"a": 1}}],
                         ids=["no-records", "empty", "not-a-list"])
def test_an_event_without_records_is_an_unexpected_batch_type(event: Any) -> None:
    with pytest.raises(UnexpectedBatchTypeError):
        process_partial_response(event, handler, BatchProcessor(EventType.SQS))


@pytest.mark.parametrize(("decorator", "processor_class"), [
    (batch_processor, BatchProcessor), (async_batch_processor, AsyncBatchProcessor)])
def test_the_deprecated_decorators_process_then_call_the_handler(
    decorator: Any, processor_class: Any
) -> None:
    processor = processor_class(EventType.SQS)
    records = [sqs(0, "a"), sqs(1, "fail")]

    @decorator(record_handler=handler, processor=processor)
    def lambda_handler(event: Any, context: Any) -> Any:
        return {"seen": len(processor.success_messages), **processor.response()}

    with pytest.warns(PowertoolsDeprecationWarning, match=f"`{decorator.__name__}` decorator "
                      "is deprecated in V3"):
        result = lambda_handler({"Records": records}, testing.LambdaContext(300))
    assert result == {"seen": 1,
                      "batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}


# -- models: Powertools' parser models of the whole record ----------------------------------

class Order(BaseModel):
    item: str
    qty: int


class OrderSqs(SqsRecordModel):
    body: Json[Order]  # type: ignore[assignment]


def test_a_whole_record_model_keeps_metadata_and_a_poison_pill_fails_alone() -> None:
    records = [sqs(0, {"item": "tea", "qty": 2}), sqs(1, {"poison": "pill"}),
               sqs(2, {"item": "cup", "qty": 1})]
    got: list[Any] = []

    def record_handler(record: OrderSqs) -> str:
        got.append(record)
        return f"{record.messageId}:{record.body.item}"

    processor = BatchProcessor(EventType.SQS, model=OrderSqs)
    with processor(records, record_handler) as batch:
        processed = batch.process()
    assert [type(r) for r in got] == [OrderSqs, OrderSqs]
    assert processed[0] == ("success", f"{records[0]['messageId']}:tea", records[0])
    assert processed[1][0] == "fail"
    # Powertools: a record the model refuses is reported with its data class.
    assert isinstance(batch.fail_messages[0], SQSRecord)
    assert isinstance(batch.exceptions[0][1], ValidationError)
    assert batch.response() == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}


def test_a_failed_model_record_is_reported_with_its_model() -> None:
    records = [sqs(0, {"item": "tea", "qty": 0}), sqs(1, {"item": "cup", "qty": 1})]

    def record_handler(record: OrderSqs) -> None:
        if record.body.qty < 1:
            raise ValueError("qty")

    processor = BatchProcessor(EventType.SQS, model=OrderSqs)
    with processor(records, record_handler):
        processor.process()
    assert isinstance(processor.fail_messages[0], OrderSqs)
    assert processor.response() == {
        "batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}


class Reading(BaseModel):
    sensor: str
    value: float


def test_kinesis_and_dynamodb_models_parse_the_whole_record() -> None:
    class ReadingPayload(KinesisDataStreamRecord.model_fields["kinesis"].annotation):  # type: ignore[misc, name-defined]
        data: Json[Reading]  # type: ignore[assignment]

    class ReadingRecord(KinesisDataStreamRecord):
        kinesis: ReadingPayload

    got: list[Any] = []
    records = [kinesis(1, "s1", {"sensor": "s1", "value": 1.5})]
    process_partial_response({"Records": records}, lambda record: got.append(record),
                             BatchProcessor(EventType.KinesisDataStreams, model=ReadingRecord))
    assert got[0].kinesis.partitionKey == "s1" and got[0].kinesis.data.value == 1.5

    got.clear()
    ddb = [dynamodb(1, 7, "hi")]
    process_partial_response({"Records": ddb}, lambda record: got.append(record),
                             BatchProcessor(EventType.DynamoDBStreams,
                                            model=DynamoDBStreamRecordModel))
    assert isinstance(got[0], DynamoDBStreamRecordModel)
    assert got[0].dynamodb.SequenceNumber == ddb[0]["dynamodb"]["SequenceNumber"]


# -- sync and async handlers, and the bound -----------------------------------------------

def test_a_sync_handler_runs_sequentially_on_the_calling_thread_by_default() -> None:
    caller = threading.get_ident()
    running = 0
    most = 0
    threads: set[int] = set()

    def record_handler(record: SQSRecord) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        threads.add(threading.get_ident())
        running -= 1

    order: list[str] = []
    records = [sqs(n, str(n)) for n in range(20)]
    process_partial_response({"Records": records},
                             lambda record: (record_handler(record), order.append(record.body)),
                             BatchProcessor(EventType.SQS))
    assert threads == {caller} and most == 1
    assert order == [str(n) for n in range(20)]


@pytest.mark.parametrize("processor_class", [BatchProcessor, AsyncBatchProcessor])
def test_concurrency_runs_a_sync_handler_on_that_many_worker_threads(
    processor_class: Any,
) -> None:
    """Four handlers meet at a barrier: only four running at once can pass it."""
    barrier = threading.Barrier(4, timeout=30)
    caller = threading.get_ident()
    threads: set[int] = set()

    def record_handler(record: SQSRecord) -> str:
        threads.add(threading.get_ident())
        barrier.wait()
        return record.body

    records = [sqs(n, str(n)) for n in range(8)]
    processor = processor_class(EventType.SQS, concurrency=4)
    with processor(records, record_handler) as batch:
        processed = batch.process()
    assert [entry[:2] for entry in processed] == [("success", str(n)) for n in range(8)]
    assert caller not in threads and len(threads) >= 4


def test_an_async_handler_runs_on_the_bounded_pool() -> None:
    """Handlers wait until ``expected`` of them run at once: the batch succeeds only if
    the bound is reached, and the high-water mark shows it is never passed."""
    import asyncio

    for concurrency, expected in ((3, 3), (None, powertools.DEFAULT_ASYNC_CONCURRENCY)):
        running = most = 0
        full: Optional[asyncio.Event] = None

        async def record_handler(record: SQSRecord, expected: int = expected) -> str:
            nonlocal running, most, full
            if full is None:
                full = asyncio.Event()
            running += 1
            most = max(most, running)
            if running == expected:
                full.set()
            await asyncio.wait_for(full.wait(), 30)
            running -= 1
            return record.body

        records = [sqs(n, str(n)) for n in range(40)]
        processor = AsyncBatchProcessor(EventType.SQS, concurrency=concurrency)
        with processor(records, record_handler):
            processed = processor.async_process()
        assert [r for _, r, _ in processed] == [str(n) for n in range(40)]
        assert most == expected


def test_an_async_handler_given_to_batch_processor_is_awaited() -> None:
    """Powertools would return the un-awaited coroutine as the result."""
    async def record_handler(record: SQSRecord) -> str:
        return record.body

    processor = BatchProcessor(EventType.SQS)
    with processor([sqs(0, "a")], record_handler):
        assert processor.process() == [("success", "a", processor.records[0])]


def test_entry_points_refuse_a_running_event_loop_and_run_in_a_worker_thread() -> None:
    """As asyncbatch.process_partial_response (see test_entry_points.py)."""
    import asyncio

    def invoke() -> Any:
        return process_partial_response({"Records": [sqs(0, "a"), sqs(1, "fail")]}, handler,
                                        BatchProcessor(EventType.SQS))

    async def main() -> Any:
        return invoke()

    with pytest.raises(asyncbatch.ConfigurationError, match="inside a running event loop"):
        asyncio.run(main())

    async def in_a_thread() -> Any:
        return await asyncio.to_thread(invoke)

    assert asyncio.run(in_a_thread()) == {
        "batchItemFailures": [{"itemIdentifier": sqs(1, "")["messageId"]}]}


# -- SQS FIFO ---------------------------------------------------------------------------------

FIFO = "arn:aws:sqs:us-east-1:123456789012:orders.fifo"


def test_fifo_stops_at_the_first_failure_and_reports_the_rest() -> None:
    records = [sqs(0, "a", "g1"), sqs(1, "fail", "g2"), sqs(2, "c", "g1"), sqs(3, "d", "g3")]
    ran: list[str] = []

    def record_handler(record: SQSRecord) -> str:
        ran.append(record.body)
        return handler(record)

    processor = SqsFifoPartialProcessor()
    with processor(records, record_handler) as batch:
        processed = batch.process()
    assert ran == ["a", "fail"]
    assert [status for status, _, _ in processed] == ["success", "fail", "fail", "fail"]
    assert processed[2][1] == (f"{SQSFifoCircuitBreakerError}:A previous record failed "
                               "processing")
    assert batch.response() == {"batchItemFailures": [
        {"itemIdentifier": r["messageId"]} for r in records[1:]]}


@pytest.mark.parametrize("queue", [QUEUE, FIFO], ids=["any-arn", "fifo-arn"])
def test_fifo_skip_group_on_error_skips_only_that_group(queue: str) -> None:
    records = [sqs(0, "a", "g1"), sqs(1, "fail", "g2"), sqs(2, "c", "g2"), sqs(3, "d", "g1"),
               sqs(4, "e", "g3")]
    for record in records:
        record["eventSourceARN"] = queue
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    with processor(records, handler) as batch:
        processed = batch.process()
    assert [status for status, _, _ in processed] == [
        "success", "fail", "fail", "success", "success"]
    assert processed[2][1].startswith(f"{SQSFifoMessageGroupCircuitBreakerError}:")
    assert batch.response() == {"batchItemFailures": [
        {"itemIdentifier": records[1]["messageId"]}, {"itemIdentifier": records[2]["messageId"]}]}


def test_fifo_with_concurrency_runs_groups_in_parallel_each_in_order() -> None:
    barrier = threading.Barrier(2, timeout=30)
    order: dict[str, list[int]] = {"g1": [], "g2": []}
    records = [sqs(n, str(n), "g1" if n % 2 else "g2", FIFO) for n in range(8)]

    def record_handler(record: SQSRecord) -> None:
        if record.body in ("0", "1"):
            barrier.wait()  # the first record of each group: both groups run at once
        order[record.attributes.message_group_id or ""].append(int(record.body))

    processor = SqsFifoPartialProcessor(concurrency=2)
    assert process_partial_response({"Records": records}, record_handler, processor) == {
        "batchItemFailures": []}
    assert order == {"g1": [1, 3, 5, 7], "g2": [0, 2, 4, 6]}


# -- streams: where asyncbatch's semantics win -----------------------------------------------

def test_a_failed_stream_record_skips_the_later_records_of_its_key() -> None:
    """Powertools runs k1's third record after its first failed; Lambda then replays it
    from the checkpoint, out of order. Here it is skipped and reported; the other key,
    below the failure's sequence number, still runs."""
    records = [kinesis(1, "k2", "a"), kinesis(2, "k1", "fail"), kinesis(3, "k1", "c")]
    ran: list[str] = []

    def record_handler(record: KinesisStreamRecord) -> str:
        ran.append(record.kinesis.data_as_text())
        if "fail" in ran[-1]:
            raise ValueError("broken")
        return ran[-1]

    processor = BatchProcessor(EventType.KinesisDataStreams)
    with processor(records, record_handler) as batch:
        processed = batch.process()
    assert ran == ["a", "fail"]
    assert [status for status, _, _ in processed] == ["success", "fail", "fail"]
    assert processed[2][1].startswith(f"{asyncbatch.RecordSkippedError}:not started")
    assert isinstance(batch.fail_messages[1], KinesisStreamRecord)
    assert batch.response() == {"batchItemFailures": [
        {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in records[1:]]}


@pytest.mark.parametrize("concurrency", [None, 4])
def test_after_a_stream_failure_records_of_other_keys_above_it_are_skipped_too(
        concurrency: Optional[int]) -> None:
    """As the migration page says (and Getting started): after a failure, nothing above
    its sequence number is started, whatever its key; records of other keys below it run."""
    records = [kinesis(1, "k2", "a"), kinesis(2, "k1", "fail"), kinesis(3, "k3", "c"),
               kinesis(4, "k2", "d")]
    ran: list[str] = []

    async def record_handler(record: KinesisStreamRecord) -> str:
        text = record.kinesis.data_as_text()
        if text != "fail":
            await anyio.sleep(0.05)  # the failure comes first: nothing above it started
        ran.append(text)
        if text == "fail":
            raise ValueError("broken")
        return text

    import anyio

    processor = BatchProcessor(EventType.KinesisDataStreams, concurrency=concurrency)
    with processor(records, record_handler) as batch:
        processed = batch.process()
    statuses = [status for status, _, _ in processed]
    assert statuses[:2] == ["success", "fail"]
    # k3 and k2's second record are above the failure: reported, and (those not started
    # before it failed) never run
    assert statuses[2:] == ["fail", "fail"]
    assert "d" not in ran
    assert batch.response() == {"batchItemFailures": [
        {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in records[1:]]}


def test_a_stream_key_runs_in_sequence_order() -> None:
    records = [dynamodb(9, 1, "nine"), dynamodb(5, 1, "five"), dynamodb(3, 1, "three")]
    ran: list[str] = []
    process_partial_response(
        {"Records": records},
        lambda record: ran.append(record.dynamodb.new_image["Message"]),
        AsyncBatchProcessor(EventType.DynamoDBStreams, concurrency=4))
    assert ran == ["three", "five", "nine"]


# -- extending, options, contexts ----------------------------------------------------------------

def test_a_subclass_failure_handler_sees_every_failed_record() -> None:
    seen: list[str] = []

    class Counting(BatchProcessor):
        def failure_handler(self, record: Any, exception: Any) -> Any:
            seen.append(record.message_id)
            return super().failure_handler(record, exception)

    records = [sqs(0, "fail"), sqs(1, "ok"), sqs(2, "fail too")]
    process_partial_response({"Records": records}, handler, Counting(EventType.SQS))
    assert seen == [records[0]["messageId"], records[2]["messageId"]]


def _refusing_success_handler(base: type) -> type:
    """A subclass of ``base`` whose ``success_handler`` raises for a body "refuse ..."."""

    class Refusing(base):  # type: ignore[misc, valid-type]
        def success_handler(self, record: Any, result: Any) -> Any:
            if record["body"].startswith("refuse"):
                raise RuntimeError(f"cannot record {record['body']}")
            return super().success_handler(record, result)

    return Refusing


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), [
    (BatchProcessor, pt.BatchProcessor, {"event_type": EventType.SQS}),
    (SqsFifoPartialProcessor, pt.SqsFifoPartialProcessor, {}),
    (SqsFifoPartialProcessor, pt.SqsFifoPartialProcessor, {"skip_group_on_error": True}),
], ids=["batch", "fifo", "fifo-skip-group"])
def test_an_exception_in_a_subclass_success_handler_fails_that_record_as_in_powertools(
        ours: type, theirs: type, kwargs: dict[str, Any]) -> None:
    # Powertools calls success_handler inside the try around the record handler: an
    # exception there goes to failure_handler (the record fails, with that exception; in a
    # FIFO processor, it trips the circuit breaker); it does not escape process().
    records = [sqs(0, "a", "g1"), sqs(1, "refuse b", "g1"), sqs(2, "c", "g2"),
               sqs(3, "d", "g1")]
    got = {}
    for name, base in (("ours", ours), ("theirs", theirs)):
        processor = _refusing_success_handler(base)(**kwargs)
        with processor(records, handler) as batch:
            processed = batch.process()
        got[name] = (
            [(status, result) for status, result, _ in processed],
            [type(record) for _, _, record in processed],
            [m.message_id for m in batch.fail_messages],
            [(kind, str(exc)) for kind, exc, _ in batch.exceptions],
            batch.response())
    assert got["ours"] == got["theirs"]
    statuses, _, failed, exceptions, _ = got["ours"]
    assert statuses[1] == ("fail", "<class 'RuntimeError'>:cannot record refuse b")
    assert failed[0] == records[1]["messageId"]
    assert exceptions[0] == (RuntimeError, "cannot record refuse b")


def test_a_success_handler_failure_of_every_record_raises_batch_processing_error() -> None:
    records = [sqs(0, "refuse a"), sqs(1, "refuse b")]
    processor = _refusing_success_handler(BatchProcessor)(EventType.SQS)
    with pytest.raises(BatchProcessingError):
        process_partial_response({"Records": records}, handler, processor)


def test_a_base_exception_in_success_handler_escapes_as_in_powertools() -> None:
    class Stopping(BatchProcessor):
        def success_handler(self, record: Any, result: Any) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), Stopping(EventType.SQS)([sqs(0, "a")], handler) \
            as batch:
        batch.process()


def test_engine_options_pass_through() -> None:
    calls: dict[str, int] = {}

    def flaky(record: SQSRecord) -> str:
        calls[record.body] = calls.get(record.body, 0) + 1
        if calls[record.body] == 1:
            raise asyncbatch.TransientError("throttled")
        return record.body

    processor = BatchProcessor(EventType.SQS,
                               retry=asyncbatch.Retry(attempts=2, base=0.0, cap=0.0))
    assert process_partial_response({"Records": [sqs(0, "a")]}, flaky, processor) == {
        "batchItemFailures": []}
    assert calls == {"a": 2}


@pytest.mark.parametrize("kwargs", [{"concurrency": 0}, {"concurrency": "8"},
                                    {"concurrency": True}, {"model_name": "x"},
                                    {"raise_on_all_failed": False}])
def test_bad_options_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(asyncbatch.ConfigurationError):
        BatchProcessor(EventType.SQS, **kwargs)


@pytest.mark.parametrize("context", [{}, MagicMock(), None], ids=["dict", "mock", "none"])
def test_a_test_context_does_not_stop_the_batch(context: Any) -> None:
    """``MagicMock().get_remaining_time_in_millis()`` is not a number of milliseconds:
    it must not read as 'the deadline is now'."""
    records = [sqs(n, "ok") for n in range(3)]
    assert process_partial_response({"Records": records}, handler,
                                    BatchProcessor(EventType.SQS), context) == {
        "batchItemFailures": []}


def test_records_not_started_before_the_deadline_are_reported() -> None:
    records = [sqs(n, "ok") for n in range(3)]
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response({"Records": records}, handler, processor,
                                        testing.LambdaContext(0.1))  # < the 0.5 s margin
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                              for r in records]}
    assert all(isinstance(exc, asyncbatch.RecordSkippedError)
               for _, exc, _ in processor.exceptions)


# -- Kafka --------------------------------------------------------------------------------------

def _kafka_ready() -> bool:
    try:
        BatchProcessor(EventType.Kafka)
    except asyncbatch.ConfigurationError:
        return False
    return True


@pytest.fixture
def kafka() -> None:
    if not _kafka_ready():
        pytest.skip("this asyncbatch engine has no Kafka source yet")


@pytest.mark.usefixtures("kafka")
def test_kafka_failures_name_partition_and_offset() -> None:
    from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord

    got: list[Any] = []

    def record_handler(record: KafkaEventRecord) -> str:
        got.append(type(record))
        if record.decoded_value == b"fail":
            raise ValueError("no")
        return record.decoded_value.decode()

    event = testing.kafka_event((0, "k", "a"), (1, "k", "fail"), (0, "k", "b"), start=10)
    response = process_partial_response(event, record_handler, BatchProcessor(EventType.Kafka))
    assert set(got) == {KafkaEventRecord}
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"partition": "orders-1", "offset": 10}}]}


def test_no_warning_from_a_plain_run() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        process_partial_response({"Records": [sqs(0, "a")]}, handler,
                                 BatchProcessor(EventType.SQS))


@pytest.mark.usefixtures("kafka")
def test_kafka_skips_the_later_offsets_of_a_failed_partition_only() -> None:
    ran: list[str] = []

    def record_handler(record: Any) -> None:
        ran.append(record.decoded_value.decode())
        if ran[-1] == "fail":
            raise ValueError("no")

    event = testing.kafka_event((0, "k", "fail"), (1, "k", "b"), (0, "k", "c"), start=5)
    processor = BatchProcessor(EventType.Kafka)
    response = process_partial_response(event, record_handler, processor)
    assert sorted(ran) == ["b", "fail"]
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"partition": "orders-0", "offset": 5}},
        {"itemIdentifier": {"partition": "orders-0", "offset": 6}}]}
