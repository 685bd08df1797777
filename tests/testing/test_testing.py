"""asyncbatch.testing: the Lambda context and ``simulate`` (Lambda's event source mapping in
memory). The pytest plugin and the strategies are tested in test_testing_plugin.py and
test_testing_strategies.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Hashable
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import asyncbatch
from asyncbatch.testing import (
    ClientContext,
    CognitoIdentity,
    InvalidResponseError,
    LambdaContext,
    Simulation,
    dynamodb_event,
    kafka_event,
    kinesis_event,
    simulate,
    simulate_lambda,
    sqs_event,
)

# -- LambdaContext ----------------------------------------------------------------------


def test_the_context_has_the_attributes_of_lambdas_python_runtime() -> None:
    context = LambdaContext(3.0, function_name="orders", region="eu-west-1",
                            account="111122223333", memory_limit_in_mb=512,
                            tenant_id="tenant-7")
    assert context.function_name == "orders"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn == "arn:aws:lambda:eu-west-1:111122223333:function:orders"
    assert context.memory_limit_in_mb == "512"  # a string, as the runtime reads it from env
    assert context.log_group_name == "/aws/lambda/orders"
    assert "/[$LATEST]" in context.log_stream_name
    assert isinstance(context.identity, CognitoIdentity)
    assert context.identity.cognito_identity_id is None
    assert context.client_context is None
    assert context.tenant_id == "tenant-7"
    assert context.w3c() == {}
    assert context.aws_request_id != LambdaContext().aws_request_id  # a fresh id each


def test_a_client_context_dict_becomes_the_runtimes_objects() -> None:
    context = LambdaContext(client_context={"client": {"app_title": "shop"},
                                            "custom": {"a": 1}, "env": {"b": 2}},
                            w3c={"traceparent": "00-abc-def-01"})
    assert isinstance(context.client_context, ClientContext)
    client = context.client_context.client
    assert client is not None and client.app_title == "shop"
    assert client.installation_id is None
    assert (context.client_context.custom, context.client_context.env) == ({"a": 1}, {"b": 2})
    assert context.w3c() == {"traceparent": "00-abc-def-01"}


def test_remaining_time_counts_down_on_an_injected_clock() -> None:
    now = [100.0]
    context = LambdaContext(remaining=2.0, clock=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 2000
    now[0] += 0.5
    assert context.get_remaining_time_in_millis() == 1500
    now[0] += 10
    assert context.get_remaining_time_in_millis() == 0  # never negative


@pytest.mark.parametrize("bad", [-1, "3", None, True, float("nan")])
def test_a_bad_remaining_time_says_what_to_give(bad: Any) -> None:
    with pytest.raises(ValueError, match="remaining="):
        LambdaContext(bad)


def test_under_trio_the_context_follows_the_mock_clock() -> None:
    async def main() -> tuple[int, int, int]:
        context = LambdaContext(30.0)
        first = context.get_remaining_time_in_millis()
        await trio.sleep(10)
        second = context.get_remaining_time_in_millis()
        await trio.sleep(25)
        return first, second, context.get_remaining_time_in_millis()

    first, second, third = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (first, second, third) == (30000, 20000, 0)


def test_a_context_made_outside_the_loop_carries_its_time_into_the_loop_clock() -> None:
    context = LambdaContext(60.0)  # as a pytest fixture makes it: no loop running yet

    async def main() -> tuple[int, int]:
        first = context.get_remaining_time_in_millis()
        await trio.sleep(7)
        return first, context.get_remaining_time_in_millis()

    first, second = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert 0 < first <= 60000
    assert first - second in (7000, 7001)  # virtual time only (int truncation: +-1 ms)


class _FrozenLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock moves only when the test moves it."""

    now = 1000.0

    def time(self) -> float:
        return self.now


def test_under_asyncio_the_context_follows_the_loops_clock() -> None:
    loop = _FrozenLoop()

    async def main() -> tuple[int, int]:
        context = LambdaContext(10.0)
        first = context.get_remaining_time_in_millis()
        loop.now += 4
        return first, context.get_remaining_time_in_millis()

    try:
        assert loop.run_until_complete(main()) == (10000, 6000)
    finally:
        loop.close()


def test_the_processors_deadline_runs_on_the_contexts_virtual_time() -> None:
    """LambdaContext drives the processor's deadline: under MockClock a handler that
    would sleep 60 s is cancelled at the auto margins of a 2 s invocation."""
    async def handle(record: Any) -> None:
        await anyio.sleep(60)

    async def main() -> tuple[float, asyncbatch.BatchReport]:
        context = LambdaContext(2.0)
        start = trio.current_time()
        report = await asyncbatch.AsyncBatchProcessor().process(
            sqs_event("a", "b"), handle, context)
        return trio.current_time() - start, report

    elapsed, report = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert elapsed == pytest.approx(1.8)  # cancel margin: 5% of 2 s, at least 0.2 s
    assert len(report.failed) == 2


def test_importing_asyncbatch_testing_stays_light() -> None:
    code = ("import sys, asyncbatch; assert 'asyncbatch.testing' not in sys.modules; "
            "import asyncbatch.testing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aioboto3', 'boto3', 'botocore', 'pytest', '_pytest', 'hypothesis', 'pydantic') "
            "or m.startswith('anyio._backends')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- simulate: SQS ----------------------------------------------------------------------

def ids(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"]]


@pytest.mark.anyio
async def test_sqs_redelivers_only_what_failed_with_the_receive_count_raised() -> None:
    event = sqs_event(*({"order": n} for n in range(4)))
    seen: list[tuple[int, int, str]] = []

    async def handle(record: asyncbatch.SQSRecord) -> None:
        order = record.json()["order"]
        seen.append((order, record.receive_count, record.raw["receiptHandle"]))
        if order == 2 and record.receive_count < 3:
            raise ConnectionError("flaky")

    result = await simulate(handle, event)
    m = ids(event)
    assert result.deliveries == {m[0]: 1, m[1]: 1, m[2]: 3, m[3]: 1}
    assert result.redelivered == {m[2]: 3}
    assert result.dead_letters == ()
    assert [count for order, count, _ in seen if order == 2] == [1, 2, 3]
    assert len({handle for order, _, handle in seen if order == 2}) == 3  # new receipt each
    assert [inv.delivered for inv in result.invocations] == [tuple(m), (m[2],), (m[2],)]
    assert set(result.acknowledged) == set(m)


@pytest.mark.anyio
async def test_sqs_dead_letters_a_poison_message_after_max_attempts() -> None:
    event = sqs_event("ok", "poison", "ok too")

    async def handle(record: asyncbatch.SQSRecord) -> None:
        if record.body == "poison":
            raise ValueError("cannot parse")

    result = await simulate(handle, event, max_attempts=4)
    m = ids(event)
    assert result.deliveries[m[1]] == 4
    assert result.dead_lettered == (m[1],)
    (letter,) = result.dead_letters
    assert letter["messageId"] == m[1]
    assert letter["attributes"]["ApproximateReceiveCount"] == "4"
    assert len(result.invocations) == 4


@pytest.mark.anyio
async def test_fifo_redelivers_the_rest_of_a_failed_group_only() -> None:
    event = sqs_event("a1", "b1", "a2", "b2", "a3", fifo_group=["a", "b", "a", "b", "a"])
    failed_once: set[str] = set()

    async def handle(record: asyncbatch.SQSRecord) -> None:
        if record.body == "a2" and record.body not in failed_once:
            failed_once.add(record.body)
            raise ConnectionError("flaky")

    result = await simulate(handle, event)
    m = ids(event)
    assert result.deliveries == {m[0]: 1, m[1]: 1, m[2]: 2, m[3]: 1, m[4]: 2}
    assert result.invocations[1].delivered == (m[2], m[4])  # a3 was skipped behind a2


@pytest.mark.anyio
async def test_when_every_record_fails_lambda_retries_the_whole_batch() -> None:
    calls = {"n": 0}

    async def handle(record: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:  # the first invocation: both records fail
            raise ConnectionError("the database is down")

    event = sqs_event("x", "y")
    result = await simulate(handle, event)
    first, second = result.invocations
    assert isinstance(first.error, asyncbatch.BatchFailedError)
    assert first.failed == tuple(ids(event))
    assert second.error is None and second.failed == ()
    assert result.deliveries == dict.fromkeys(ids(event), 2)


# -- simulate: streams ------------------------------------------------------------------


STREAMS = {
    "kinesis": lambda keys: kinesis_event(*((k, {"i": i}) for i, k in enumerate(keys))),
    "dynamodb": lambda keys: dynamodb_event(*((k, {"i": i}) for i, k in enumerate(keys))),
}


def stream_ids(event: dict[str, Any]) -> list[str]:
    return [raw["kinesis"]["sequenceNumber"] if "kinesis" in raw
            else raw["dynamodb"]["SequenceNumber"] for raw in event["Records"]]


@pytest.mark.anyio
@pytest.mark.parametrize("source", sorted(STREAMS))
async def test_streams_resume_from_the_checkpoint_and_redeliver_everything_after_it(
    source: str,
) -> None:
    event = STREAMS[source](["a", "b", "a", "c", "b", "c"])
    s = stream_ids(event)
    failed_once: set[str] = set()

    async def handle(record: Any) -> None:
        if record.identifier == s[2] and s[2] not in failed_once:
            failed_once.add(s[2])
            raise ConnectionError("flaky")

    result = await simulate(handle, event, processor=asyncbatch.AsyncBatchProcessor(
        concurrency=1))
    # checkpoint at s[2]: s[0], s[1] done; s[2]..s[5] redelivered once
    assert result.deliveries == {s[0]: 1, s[1]: 1, s[2]: 2, s[3]: 2, s[4]: 2, s[5]: 2}
    assert result.invocations[1].delivered == tuple(s[2:])
    assert result.dead_letters == ()


@pytest.mark.anyio
@pytest.mark.parametrize("source", sorted(STREAMS))
async def test_a_stream_poison_record_discards_the_rest_of_its_batch_after_max_attempts(
    source: str,
) -> None:
    event = STREAMS[source](["a", "b", "c", "d"])
    s = stream_ids(event)

    async def handle(record: Any) -> None:
        if record.identifier == s[1]:
            raise ValueError("poison")

    result = await simulate(handle, event, max_attempts=2)
    assert result.deliveries == {s[0]: 1, s[1]: 2, s[2]: 2, s[3]: 2}
    assert result.dead_lettered == tuple(s[1:])  # Lambda discards the retried batch
    assert [r for r in result.dead_letters] == event["Records"][1:]


@pytest.mark.anyio
async def test_kafka_checkpoints_per_partition() -> None:
    event = kafka_event((0, "k", "p0-a"), (1, "k", "p1-a"), (0, "k", "p0-b"),
                        (1, "k", "p1-b"), (0, None, "p0-c"))
    failed_once: set[bytes] = set()

    async def handle(record: Any) -> None:
        if record.value == b"p0-b" and record.value not in failed_once:
            failed_once.add(record.value)
            raise ConnectionError("flaky")

    result = await simulate(handle, event)
    assert result.deliveries == {("orders-0", 0): 1, ("orders-0", 1): 2, ("orders-0", 2): 2,
                                 ("orders-1", 0): 1, ("orders-1", 1): 1}
    redelivery = result.invocations[1].event
    assert list(redelivery["records"]) == ["orders-0"]
    assert [r["offset"] for r in redelivery["records"]["orders-0"]] == [1, 2]
    assert redelivery["eventSource"] == event["eventSource"]


# -- simulate: what Lambda makes of a function's answer ----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"id": "x"}]},
    {"batchItemFailures": "x"},
    ["not", "a", "mapping"],
    {"batchItemFailures": [], "when": object()},  # not JSON
])
async def test_a_response_lambda_rejects_fails_the_whole_batch(response: Any) -> None:
    event = sqs_event("a", "b")

    async def function(event: dict[str, Any], context: Any) -> Any:
        return response

    result = await simulate_lambda(function, event, max_attempts=2)
    assert all(isinstance(inv.error, InvalidResponseError) for inv in result.invocations)
    assert result.deliveries == dict.fromkeys(ids(event), 2)
    assert result.dead_lettered == tuple(ids(event))


@pytest.mark.anyio
@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": None},
                                      {"batchItemFailures": []}])
async def test_an_empty_response_acknowledges_everything(response: Any) -> None:
    async def function(event: dict[str, Any], context: Any) -> Any:
        return response

    result = await simulate_lambda(function, sqs_event("a", "b"))
    assert len(result.invocations) == 1 and result.invocations[0].error is None
    assert list(result.deliveries.values()) == [1, 1]


@pytest.mark.anyio
async def test_a_sync_lambda_handler_runs_on_a_worker_thread() -> None:
    processor = asyncbatch.AsyncBatchProcessor()
    seen: list[str] = []

    async def handle(record: asyncbatch.SQSRecord) -> None:
        seen.append(record.body)
        if record.body == "b" and record.receive_count == 1:
            raise ConnectionError("flaky")

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return asyncbatch.process_partial_response(event, handle, processor, context)

    result = await simulate_lambda(lambda_handler, sqs_event("a", "b"))
    assert sorted(seen) == ["a", "b", "b"]
    assert len(result.invocations) == 2 and result.dead_letters == ()


@pytest.mark.anyio
async def test_a_function_that_raises_fails_the_batch() -> None:
    async def function(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("init failed")

    result = await simulate_lambda(function, sqs_event("a"), max_attempts=3)
    assert [type(inv.error) for inv in result.invocations] == [RuntimeError] * 3
    assert len(result.dead_letters) == 1


# -- simulate: contexts, copies, misuse ---------------------------------------------------


@pytest.mark.anyio
async def test_each_invocation_gets_a_fresh_context_by_default() -> None:
    requests: list[str] = []

    async def handle(record: Any, context: LambdaContext) -> None:
        requests.append(context.aws_request_id)
        if record.body == "b" and record.receive_count == 1:
            raise ConnectionError("flaky")

    await simulate(handle, sqs_event("a", "b"), processor=asyncbatch.AsyncBatchProcessor(
        concurrency=1))
    assert len(requests) == 3 and requests[0] == requests[1] != requests[2]


@pytest.mark.anyio
async def test_context_may_be_one_object_or_a_factory() -> None:
    used: list[Any] = []

    async def handle(record: Any, context: Any) -> None:
        used.append(context)

    shared = LambdaContext(function_name="shared")
    await simulate(handle, sqs_event("a"), context=shared)
    await simulate(handle, sqs_event("a"), context=lambda: LambdaContext(function_name="made"))
    await simulate(handle, sqs_event("a"), context=LambdaContext)  # the class: a factory
    assert used[0] is shared and used[1].function_name == "made"
    assert isinstance(used[2], LambdaContext) and used[2] is not shared


@pytest.mark.anyio
async def test_a_handler_editing_its_record_does_not_change_the_redelivery() -> None:
    event = sqs_event("original")
    bodies: list[str] = []

    async def handle(record: asyncbatch.SQSRecord) -> None:
        bodies.append(record.raw["body"])
        record.raw["body"] = "edited"
        if len(bodies) == 1:
            raise ConnectionError("flaky")

    await simulate(handle, event)
    assert bodies == ["original", "original"]
    assert event["Records"][0]["body"] == "original"  # the caller's event is untouched


@pytest.mark.anyio
async def test_bad_input_raises_at_once() -> None:
    async def handle(record: Any) -> None:
        pass

    with pytest.raises(asyncbatch.InvalidEventError):
        await simulate(handle, {"Records": [{"eventSource": "aws:sqs"}]})
    with pytest.raises(ValueError, match="max_attempts"):
        await simulate(handle, sqs_event("a"), max_attempts=0)
    with pytest.raises(asyncbatch.ConfigurationError):
        await simulate("not a function", sqs_event("a"))  # type: ignore[arg-type]


def test_public_names_report_asyncbatch_testing() -> None:
    import asyncbatch.testing as testing

    assert LambdaContext.__module__ == simulate.__module__ == "asyncbatch.testing"
    assert sqs_event.__module__ == "asyncbatch.testing"
    assert sorted(testing.__all__) == sorted(
        name for name in vars(testing) if not name.startswith("_")
        and name not in {"annotations"} and not isinstance(getattr(testing, name), type(sys)))


def test_simulation_results_read_as_the_docs_say() -> None:
    result = Simulation(deliveries={"a": 1, "b": 3}, dead_letters=(), invocations=())
    assert result.redelivered == {"b": 3}
    key: Hashable = next(iter(result.deliveries))
    assert key == "a"
    assert json.dumps(result.deliveries)
