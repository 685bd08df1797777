"""asyncbatch.testing.strategies: events of every source that the processor reads, with
colliding groups / keys / partitions; and, as a user would write it, a property test of
redelivery with ``simulate``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncbatch
from asyncbatch._sources import read_event
from asyncbatch.testing import simulate
from asyncbatch.testing import strategies as events

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def source_of(event: dict[str, Any]) -> tuple[str, list[Any]]:
    source, records, _ = read_event(event, None)  # InvalidEventError if malformed
    return source.event_type.value, records


@FAST
@given(events.sqs_events(fifo=True, min_size=1, max_size=12))
def test_fifo_events_are_fifo_with_shared_groups(event: dict[str, Any]) -> None:
    kind, records = source_of(event)
    assert kind == "SQS"
    assert all(r["eventSourceARN"].endswith(".fifo") for r in records)
    assert {r["attributes"]["MessageGroupId"] for r in records} <= {"k0", "k1", "k2", "k3"}
    assert len({r["messageId"] for r in records}) == len(records)


@FAST
@given(events.sqs_events(fifo=False, max_size=12))
def test_standard_sqs_events_have_no_groups(event: dict[str, Any]) -> None:
    kind, records = source_of(event)
    assert kind == "SQS" and len(records) <= 12
    assert not any(r["eventSourceARN"].endswith(".fifo") for r in records)
    assert not any("MessageGroupId" in r["attributes"] for r in records)


@FAST
@given(events.kinesis_events(min_size=1, max_size=12))
def test_kinesis_events_have_increasing_sequences_and_shared_keys(
    event: dict[str, Any],
) -> None:
    kind, records = source_of(event)
    assert kind == "KinesisDataStreams"
    sequences = [int(r["kinesis"]["sequenceNumber"]) for r in records]
    assert sequences == sorted(set(sequences))
    assert {r["kinesis"]["partitionKey"] for r in records} <= {"k0", "k1", "k2", "k3"}


@FAST
@given(events.dynamodb_events(min_size=1, max_size=12))
def test_dynamodb_events_read_as_dynamodb(event: dict[str, Any]) -> None:
    kind, records = source_of(event)
    assert kind == "DynamoDBStreams"
    assert {r["eventName"] for r in records} <= {"INSERT", "MODIFY", "REMOVE"}


@FAST
@given(events.kafka_events(min_size=1, max_size=12))
def test_kafka_events_group_records_by_partition_with_offsets_from_zero(
    event: dict[str, Any],
) -> None:
    kind, _ = source_of(event)
    assert kind == "Kafka"
    for name, part in event["records"].items():
        assert name in {"orders-0", "orders-1", "orders-2"}
        assert [r["offset"] for r in part] == list(range(len(part)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events.events(max_size=10))
def test_every_strategy_is_covered_and_processable(event: dict[str, Any]) -> None:
    kind, records = source_of(event)

    async def handle(record: Any) -> None:
        pass

    report = anyio.run(asyncbatch.AsyncBatchProcessor().process, event, handle)
    assert len(report.succeeded) == len(records)
    assert kind in {"SQS", "KinesisDataStreams", "DynamoDBStreams", "Kafka"}


@pytest.mark.parametrize("bad", [0, -3])
def test_ordering_keys_needs_at_least_one_key(bad: int) -> None:
    with pytest.raises(ValueError, match="count="):
        events.ordering_keys(bad)


# -- a user's property test: redelivery never loses a record nor repeats a success --------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events.events(min_size=1, max_size=10), data=st.data())
def test_a_handler_that_fails_once_per_record_is_safe_under_redelivery(
    event: dict[str, Any], data: st.DataObject,
) -> None:
    _, records, plan = read_event(event, None)
    n = len(records)
    flaky = data.draw(st.sets(st.integers(0, n - 1)), label="fails on its first run")
    flaky_ids = {repr(plan.identifiers[i]) for i in flaky}  # type: ignore[index]
    runs: Counter[str] = Counter()
    done: Counter[str] = Counter()

    async def handle(record: Any) -> None:
        key = repr(record.identifier)
        runs[key] += 1
        if key in flaky_ids and runs[key] == 1:
            raise ConnectionError("flaky")
        done[key] += 1

    # concurrency=1: records run in event order, so nothing above a failure has started
    # (at higher concurrency a stream record above it may already have succeeded, and
    # Lambda redelivers it: a handler must then be idempotent).
    processor = asyncbatch.AsyncBatchProcessor(concurrency=1)
    result = anyio.run(lambda: simulate(handle, event, processor=processor,
                                        max_attempts=n + 2))
    assert result.dead_letters == ()
    assert set(done) == {repr(i) for i in plan.identifiers}  # type: ignore[union-attr]
    assert all(count == 1 for count in done.values())  # each ran to success once
    assert all(1 <= d <= n + 1 for d in result.deliveries.values())
    if not flaky:
        assert len(result.invocations) == 1
