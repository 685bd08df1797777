"""Event order when the batch cannot all run at once (docs/contract.md, "Order").

Ready work starts lowest rank first (its position in the event; for streams, its
sequence number): at ``concurrency=1`` processing is exactly event order, so nothing above
an eventual failure is started when the bound allows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncbatch
from asyncbatch.testing import dynamodb_event, kafka_event, kinesis_event, sqs_event

pytestmark = pytest.mark.anyio


def ids(report: asyncbatch.BatchReport) -> list[Any]:
    return [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]


def n_of(record: Any) -> int:
    if isinstance(record, asyncbatch.DynamoDBRecord):
        return int((record.new_image or {})["n"])
    return int(record.json()["n"])


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
async def test_a_stream_batch_runs_in_sequence_order_at_concurrency_one(source: str) -> None:
    keys = ["k1", "k2", "k1", "k3", "k2", "k1"]
    if source == "kinesis":
        event = kinesis_event(*((k, {"n": i}) for i, k in enumerate(keys)))
    else:
        event = dynamodb_event(*((k, {"n": i}) for i, k in enumerate(keys)))
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(n_of(record))
        if n_of(record) == 2:
            raise ValueError("fails")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)
    # before the failure everything ran in event order; above it nothing started
    assert ran == [0, 1, 2]
    assert [o.index for o in report.succeeded] == [0, 1]
    assert ids(report) == [report.failed[0].identifier, *(o.identifier for o in report.skipped)]
    assert {o.index: o.exception.reason for o in report.skipped} == {  # type: ignore[union-attr]
        3: "checkpoint", 4: "checkpoint", 5: "group_failed"}


async def test_a_key_out_of_order_in_the_event_runs_by_integer_sequence_number() -> None:
    event = kinesis_event(("k", {"n": 0}), ("k", {"n": 1}), ("k", {"n": 2}))
    for record, seq in zip(event["Records"], ("9", "5", "3")):
        record["kinesis"]["sequenceNumber"] = seq
    ran: list[str] = []

    async def handle(record: Any) -> None:
        ran.append(record.sequence_number)
        if record.sequence_number == "5":
            raise ValueError("fails")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=4).process(event, handle)
    assert ran == ["3", "5"]
    assert ids(report) == ["9", "5"]  # event order; the lowest reported is the failure
    assert [o.identifier for o in report.succeeded] == ["3"]


def test_fifo_stop_on_failure_reports_the_failure_and_everything_after_it() -> None:
    # [m1 group b, m2 group a (fails), m3 group a] at concurrency 1: AWS's FIFO rule
    event = sqs_event({"n": 0}, {"n": 1}, {"n": 2}, fifo_group=["b", "a", "a"])
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(n_of(record))
        if n_of(record) == 1:
            raise ValueError("fails")

    processor = asyncbatch.AsyncBatchProcessor(concurrency=1, fifo_stop_on_failure=True)
    response = asyncbatch.process_partial_response(event, handle, processor)
    assert ran == [0, 1]
    records = event["Records"]
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]},
                                              {"itemIdentifier": records[2]["messageId"]}]}


async def test_fifo_groups_interleave_in_event_order_at_concurrency_one() -> None:
    groups = ["a", "b", "a", "c", "b", "a"]
    event = sqs_event(*({"n": i} for i in range(6)), fifo_group=groups)
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(n_of(record))
        if n_of(record) == 1:
            raise ValueError("group b fails")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)
    assert ran == [0, 1, 2, 3, 5]
    assert [o.index for o in report.skipped] == [4]


async def test_kafka_partitions_keep_their_own_checkpoint_in_event_order() -> None:
    event = kafka_event((0, "a", {"n": 0}), (0, "b", {"n": 1}), (0, "a", {"n": 2}),
                        (1, "a", {"n": 3}), (1, "b", {"n": 4}))
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(n_of(record))
        if n_of(record) == 1:
            raise ValueError("fails")

    report = await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)
    assert ran == [0, 1, 3, 4]  # partition 1 is not held back by partition 0's failure
    assert [o.index for o in report.skipped] == [2]
    (failure, skipped) = ids(report)
    assert failure["offset"] + 1 == skipped["offset"]
    assert failure["partition"] == skipped["partition"] == "orders-0"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.booleans()), min_size=1, max_size=25),
       st.randoms(use_true_random=False))
def test_at_concurrency_one_a_stream_runs_in_sequence_order_and_stops_at_the_failure(
        spec: list[tuple[str, bool]], rnd: Any) -> None:
    event = kinesis_event(*((key, {"n": i}) for i, (key, _) in enumerate(spec)))
    sequences = [int(r["kinesis"]["sequenceNumber"]) for r in event["Records"]]
    rnd.shuffle(event["Records"])  # the event's order need not be the sequence order
    fails = {i for i, (_, bad) in enumerate(spec) if bad}
    ran: list[int] = []

    async def handle(record: Any) -> None:
        ran.append(n_of(record))
        if n_of(record) in fails:
            raise ValueError("fails")

    async def main() -> asyncbatch.BatchReport:
        return await asyncbatch.AsyncBatchProcessor(concurrency=1).process(event, handle)

    report = anyio.run(main)
    by_sequence = sorted(range(len(spec)), key=lambda i: sequences[i])
    first_failure = next((pos for pos, i in enumerate(by_sequence) if i in fails), None)
    expected = by_sequence if first_failure is None else by_sequence[:first_failure + 1]
    assert ran == expected
    reported = [int(i) for i in ids(report)]
    if first_failure is not None:
        assert min(reported) == sequences[by_sequence[first_failure]]
    assert sorted(reported) == sorted(sequences[i] for i in by_sequence[len(expected) - (
        0 if first_failure is None else 1):])


# -- the lowest ready record first, at any concurrency, on both lane engines ------------
#
# A batch in sequence order (every Lambda batch) runs off one cursor (``plan.heads``);
# any other runs from a heap of lane heads. Both must pick, whenever a worker takes
# work, the ready record of lowest rank: not started, every earlier record of its key
# finished, none of its key running, nothing decided that forbids it.


def _shuffled_kinesis(keys: list[str], order: list[int]) -> dict[str, Any]:
    event = kinesis_event(*((k, {"n": i}) for i, k in enumerate(keys)))
    event["Records"] = [event["Records"][i] for i in order]
    return event


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 3), st.booleans()),
             min_size=1, max_size=40),
    st.integers(1, 6),
    st.sampled_from(["fifo", "kinesis", "kinesis_shuffled", "kafka", "kafka_unsorted"]),
    st.randoms(use_true_random=False),
)
def test_whenever_a_worker_takes_work_it_is_the_lowest_ready_record(
        spec: list[tuple[str, int, bool]], concurrency: int, shape: str, rnd: Any) -> None:
    from tests.fuzz.vtime import VirtualLoop

    keys = [k for k, _, _ in spec]
    n = len(spec)
    order = list(range(n))
    if shape == "fifo":
        event = sqs_event(*({"n": i} for i in range(n)), fifo_group=keys)
    elif shape.startswith("kafka"):  # two partitions, grouped by partition as Lambda does
        event = kafka_event(*((int(k in "abc"), None, {"n": i}) for i, k in enumerate(keys)))
        if shape == "kafka_unsorted":  # a partition's offsets out of order in the event
            for part in event["records"].values():
                rnd.shuffle(offsets := [r["offset"] for r in part])
                for raw, offset in zip(part, offsets):
                    raw["offset"] = offset
    elif shape == "kinesis":
        event = kinesis_event(*((k, {"n": i}) for i, k in enumerate(keys)))
    else:
        rnd.shuffle(order)
        event = _shuffled_kinesis(keys, order)
    checkpoint = shape != "fifo"
    # rank: the sequence number (kinesis: i; kafka: the position in the event, as its
    # lanes are ranked); lane: the key (kafka: the partition), in sequence (offset) order
    kafka = shape.startswith("kafka")
    if kafka:
        raws = [r for part in event["records"].values() for r in part]
        ns = [json_n(r["value"]) for r in raws]
        seq = {m: r["offset"] for m, r in zip(ns, raws)}
    else:
        ns = [json_n_record(r) for r in event["Records"]]
        seq = {m: m for m in ns}
    rank = {m: (pos if kafka else m) for pos, m in enumerate(ns)}
    lane = {m: (("abc" if keys[m] in "abc" else "def") if kafka else keys[m]) for m in ns}
    in_lane = {m: sorted((x for x in ns if lane[x] == lane[m]), key=seq.__getitem__)
               for m in ns}
    started: set[int] = set()
    finished: set[int] = set()
    failed: set[int] = set()
    running: set[int] = set()
    problems: list[str] = []

    def forbidden(m: int) -> bool:
        earlier = in_lane[m][:in_lane[m].index(m)]
        if any(x in failed for x in earlier):
            return True
        # checkpoint: nothing above a failed record's sequence number in its group
        # (kinesis: the shard; kafka: the partition)
        group = [x for x in failed if not kafka or lane[x] == lane[m]]
        return checkpoint and any(seq[m] > seq[x] for x in group)

    def ready(m: int) -> bool:
        earlier = in_lane[m][:in_lane[m].index(m)]
        return (m not in started and all(x in finished for x in earlier)
                and not any(x in running for x in in_lane[m]) and not forbidden(m))

    async def handle(record: Any) -> None:
        m = n_of(record)
        if not ready(m):  # an earlier one of its lane unfinished or running, or forbidden
            problems.append(f"{m} started out of its lane's order or after a failure")
        lower = [x for x in ns if rank[x] < rank[m] and ready(x)]
        if lower:
            problems.append(f"{m} started while {lower} were ready")
        started.add(m)
        running.add(m)
        if len(running) > concurrency:
            problems.append(f"{len(running)} running at concurrency {concurrency}")
        await asyncio.sleep(spec[m][1])
        running.discard(m)
        if spec[m][2]:
            failed.add(m)
            raise ValueError(m)
        finished.add(m)

    loop = VirtualLoop()
    try:
        processor = asyncbatch.AsyncBatchProcessor(concurrency=concurrency,
                                                   log_summary=False)
        report = loop.run_until_complete(processor.process(event, handle))
    finally:
        loop.close()
    assert not problems, problems
    assert len(report) == n
    # every record not started was forbidden by a failure (nothing stalled), and the
    # report says what ran
    assert all(m in started or forbidden(m) for m in ns)
    assert {n_of(o.record) for o in report.succeeded} == finished
    assert {n_of(o.record) for o in report.failed} >= failed


def json_n(value: str) -> int:
    import base64
    import json

    return int(json.loads(base64.b64decode(value))["n"])


def json_n_record(raw: dict[str, Any]) -> int:
    import base64
    import json

    if "body" in raw:
        return int(json.loads(raw["body"])["n"])
    return int(json.loads(base64.b64decode(raw["kinesis"]["data"]))["n"])
