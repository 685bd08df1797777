"""Kafka's C-speed planning (``_plan_grouped``) makes exactly the plan of the record-by-record
walk (``_plan_walk``) on generated batches: lanes, identifiers, offsets, checkpoint groups,
in both orderings; a batch it does not take is walked, and the walk names the bad record."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncbatch import InvalidEventError
from asyncbatch._sources import read_event
from asyncbatch._sources.kafka import KAFKA, _plan_grouped

_records = st.lists(
    st.fixed_dictionaries({
        "topic": st.sampled_from(["orders", "orders-1", "a-1", "a", "t"]),
        "partition": st.integers(0, 12),
        "offset": st.integers(0, 40),
        "key": st.sampled_from([None, "a2V5", "b3RoZXI=", ""]),
        "value": st.just("e30="),
    }),
    max_size=60)


def _event(records: list[dict[str, Any]], grouped: bool) -> dict[str, Any]:
    """Records grouped by topic-partition as Lambda sends them, or in labelled lists of
    mixed records (the label is only a label)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, raw in enumerate(records):
        label = f"{raw['topic']}-{raw['partition']}" if grouped else f"t-{i % 3}"
        groups.setdefault(label, []).append(raw)
    return {"eventSource": "aws:kafka", "records": groups}


def _same(a: Any, b: Any) -> None:
    assert a.size == b.size
    assert a.lanes == b.lanes
    assert a.mode is b.mode
    assert a.rank is b.rank is None
    n = a.size
    assert [a.identifiers[i] for i in range(n)] == [b.identifiers[i] for i in range(n)]
    assert list(a.identifiers) == list(b.identifiers)
    assert [a.sequence(i) for i in range(n)] == [b.sequence(i) for i in range(n)]
    assert [a.partition(i) for i in range(n)] == [b.partition(i) for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(_records, st.booleans(), st.sampled_from(["partition", "key"]))
def test_grouped_plan_is_the_walked_plan(records: list[dict[str, Any]], grouped: bool,
                                         ordering: str) -> None:
    event = _event(records, grouped)
    flat = KAFKA.find(event)
    walked = KAFKA._plan_walk(flat, ordering == "key")
    fast = _plan_grouped(flat, ordering == "key")
    assert (fast is None) == (not flat)
    if fast is not None:
        _same(fast, walked)
    _, _, plan = read_event(event, None, ordering=ordering) if flat else (None, None, walked)
    _same(plan, walked)


@pytest.mark.parametrize(("field", "value"), [
    ("topic", ""), ("topic", 3), ("partition", -1), ("partition", "0"), ("partition", True),
    ("offset", -5), ("offset", 1.0), ("offset", None), ("key", 7),
])
def test_a_bad_record_is_walked_and_named(field: str, value: Any) -> None:
    records = [{"topic": "orders", "partition": 0, "offset": i, "key": None, "value": "e30="}
               for i in range(5)]
    records[3] = copy.deepcopy(records[3])
    records[3][field] = value
    assert _plan_grouped(records, True) is None
    with pytest.raises(InvalidEventError) as caught:
        KAFKA.plan(records, ordering="key")
    assert caught.value.index == 3


def test_identifiers_are_made_when_asked_and_as_the_event_arrived() -> None:
    event = _event([{"topic": "orders", "partition": 2, "offset": 7 + i, "key": None,
                     "value": "e30="} for i in range(3)], grouped=True)
    _, records, plan = read_event(event, None)
    records[1]["offset"] = 99  # a handler edits its record: the identifier stays
    assert plan.identifiers is not None
    assert plan.identifiers[1] == {"partition": "orders-2", "offset": 8}
    assert plan.identifiers[1] is not plan.identifiers[1]  # a new dict each time
    assert len(plan.identifiers) == 3
    assert plan.identifiers[-1] == {"partition": "orders-2", "offset": 9}
    assert plan.identifiers[0:2] == [{"partition": "orders-2", "offset": 7},
                                     {"partition": "orders-2", "offset": 8}]
