"""Plans read slice by slice (``_sources._base.slices``) are the plans of the whole batch:
whatever the slice size, a batch gets the same plan (lanes, identifiers, sequence numbers,
ranks, checkpoint groups, whether it runs off the cursor), and a bad batch the same error
naming the same record, wherever the slices cut it (a bad record or a break in sequence
order in a later slice, or at a slice's edge)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncbatch._sources._base as base
from asyncbatch import InvalidEventError
from asyncbatch._sources import SOURCES, EventType, read_event

FIFO_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders.fifo"


@contextmanager
def slice_size(size: int) -> Iterator[None]:
    saved = base.SLICE
    base.SLICE = size
    try:
        yield
    finally:
        base.SLICE = saved


def outcome(event: dict[str, Any]) -> Any:
    """What planning ``event`` gives, comparable across slice sizes."""
    try:
        _, _, plan = read_event(event, None)
    except InvalidEventError as exc:
        return ("error", exc.index, str(exc))
    n = plan.size
    return ("plan", n, plan.mode, plan.lanes, plan.heads, plan.width, plan.order,
            plan.rank is None,
            [plan.identifiers[i] for i in range(n)],
            None if plan.sequence is None else [plan.sequence(i) for i in range(n)],
            None if plan.partition is None else [plan.partition(i) for i in range(n)])


def same_everywhere(event: dict[str, Any]) -> None:
    with slice_size(10**9):
        whole = outcome(copy.deepcopy(event))
    for size in (1, 2, 3, 7):
        with slice_size(size):
            assert outcome(copy.deepcopy(event)) == whole, size


# a field broken in one record: (where, value)
_breaks = st.one_of(st.none(), st.tuples(st.integers(0, 40), st.sampled_from(
    ["", None, 7, "x1", "12a", {"a": 1}])))


def _break(records: list[dict[str, Any]], brk: Any, path: list[str]) -> None:
    if brk is None or not records:
        return
    at, value = brk
    raw = records[at % len(records)]
    for name in path[:-1]:
        raw = raw[name]
    raw[path[-1]] = value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=25), st.booleans(), _breaks,
       st.sampled_from([["messageId"], ["attributes", "MessageGroupId"], ["eventSource"]]))
def test_sqs(keys: list[str], fifo: bool, brk: Any, path: list[str]) -> None:
    source = SOURCES[EventType.SQS]
    records = [source.sample_record(i, {"n": i}, key=k if fifo else None,
                                    queue_arn=FIFO_ARN if fifo else None)
               for i, k in enumerate(keys)]
    _break(records, brk, path)
    same_everywhere(source.sample_event(records))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=25), _breaks,
       st.sampled_from([["kinesis", "sequenceNumber"], ["kinesis", "partitionKey"],
                        ["eventSource"]]),
       st.lists(st.integers(0, 24), max_size=2), st.booleans())
def test_kinesis(keys: list[str], brk: Any, path: list[str], swaps: list[int],
                 pipe: bool) -> None:
    source = SOURCES[EventType.KINESIS]
    records = [source.sample_record(i, {"n": i}, key=k) for i, k in enumerate(keys)]
    for at in swaps:  # out of sequence order somewhere (a slice's edge, or inside one)
        if at + 1 < len(records):
            records[at], records[at + 1] = records[at + 1], records[at]
    _break(records, brk, path)
    if pipe:  # as an EventBridge pipe hands them on: flattened, a top-level list
        flat = [source.pipes_record(r) if isinstance(r.get("kinesis"), dict) else r
                for r in records]
        with slice_size(10**9):
            whole = _pipe_outcome(flat)
        for size in (1, 3):
            with slice_size(size):
                assert _pipe_outcome(flat) == whole
        return
    same_everywhere(source.sample_event(records))


def _pipe_outcome(records: list[dict[str, Any]]) -> Any:
    try:
        _, _, plan = read_event(copy.deepcopy(records), EventType.KINESIS)
    except InvalidEventError as exc:
        return ("error", exc.index, str(exc))
    return ("plan", plan.lanes, plan.heads, [plan.identifiers[i] for i in range(plan.size)])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([None, "a2V5"])), max_size=25),
       _breaks, st.sampled_from(["offset", "partition", "topic"]),
       st.lists(st.integers(0, 24), max_size=2))
def test_kafka(spec: list[tuple[int, Any]], brk: Any, field: str, swaps: list[int]) -> None:
    source = SOURCES[EventType.KAFKA]
    records = [source.sample_record(i, {"n": i}, key=k, partition=p, offset=100 + i)
               for i, (p, k) in enumerate(spec)]
    event = source.sample_event(records)
    flat = [r for part in event["records"].values() for r in part]
    for at in swaps:  # offsets out of order within a partition, or across a slice's edge
        if at + 1 < len(flat):
            flat[at]["offset"], flat[at + 1]["offset"] = flat[at + 1]["offset"], \
                flat[at]["offset"]
    _break(flat, brk, [field])
    same_everywhere(event)


def test_a_batch_larger_than_a_slice_in_order_runs_off_the_cursor() -> None:
    """The default slice size, crossed: a Kinesis and a FIFO batch of 3 slices and a bit
    are planned by lane heads; a break in order at a slice's edge is seen."""
    n = 3 * base.SLICE + 5
    kinesis = SOURCES[EventType.KINESIS]
    records = [kinesis.sample_record(i, key=f"k{i % 7}") for i in range(n)]
    _, _, plan = read_event(kinesis.sample_event(records), None)
    assert plan.heads is not None and plan.width == 7
    edge = base.SLICE
    records[edge - 1], records[edge] = records[edge], records[edge - 1]
    _, _, swapped = read_event(kinesis.sample_event(records), None)
    assert swapped.rank is not None and swapped.order is not None  # sequence order
    assert [swapped.sequence(i) for i in swapped.order] == sorted(  # type: ignore[misc]
        swapped.sequence(i) for i in range(n))  # type: ignore[misc]
    sqs = SOURCES[EventType.SQS]
    fifo = [sqs.sample_record(i, key=f"g{i % 5}", queue_arn=FIFO_ARN) for i in range(n)]
    fifo[2 * edge + 1]["messageId"] = ""
    with pytest.raises(InvalidEventError) as caught:
        read_event(sqs.sample_event(fifo), None)
    assert caught.value.index == 2 * edge + 1
