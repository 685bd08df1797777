"""Hypothesis strategies for Lambda batch events, for property tests of your handler.

::

    from hypothesis import given, strategies as st
    from asyncbatch.testing import strategies as events

    @given(events.sqs_events(bodies=st.builds(dict, order=st.integers(1, 99))))
    def test_every_order_is_handled(event): ...

Every strategy draws a whole event built by ``asyncbatch.testing``'s factories (so the
records are shaped as Lambda sends them), with the parts that change the processing
order drawn from small sets, so that they collide: FIFO message groups, Kinesis partition
keys, DynamoDB item keys, Kafka partitions and keys. Each takes ``min_size`` /
``max_size`` (records) and strategies for the parts you care about.

Needs hypothesis (``pip install hypothesis``); ``import asyncbatch.testing`` does not
import this module.
"""

from __future__ import annotations

from typing import Any, Optional

try:
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - hypothesis is in the test extra
    raise ImportError(
        "asyncbatch.testing.strategies needs hypothesis: pip install hypothesis") from exc

from . import (
    dynamodb_event,
    firehose_event,
    kafka_event,
    kinesis_event,
    pipes_event,
    sns_sqs_event,
    sqs_event,
)

__all__ = [
    "dynamodb_events",
    "events",
    "firehose_events",
    "kafka_events",
    "kinesis_events",
    "ordering_keys",
    "payloads",
    "pipes_batches",
    "sns_sqs_events",
    "sqs_events",
]

_EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")


def payloads() -> SearchStrategy[Any]:
    """Record payloads as producers send them: small JSON objects (dicts), or plain text."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9),
                        st.text(max_size=20))
    return st.one_of(
        st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=4),
        st.text(max_size=40),
    )


def ordering_keys(count: int = 4) -> SearchStrategy[str]:
    """Keys drawn from ``count`` values (``"k0"``...), so that records share them."""
    if count < 1:
        raise ValueError(f"count={count!r}: give the number of distinct keys, >= 1")
    return st.sampled_from([f"k{i}" for i in range(count)])


def sqs_events(*, fifo: Optional[bool] = None, bodies: Optional[SearchStrategy[Any]] = None,
               groups: Optional[SearchStrategy[str]] = None, min_size: int = 0,
               max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """SQS events: standard (``fifo=False``), FIFO (``fifo=True``, every message in one of
    the ``groups``) or either (``None``). ``bodies`` default: ``payloads()``."""
    bodies = payloads() if bodies is None else bodies
    groups = ordering_keys() if groups is None else groups
    fifo_flags = st.booleans() if fifo is None else st.just(fifo)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        if not draw(fifo_flags):
            return sqs_event(*draw(st.lists(bodies, min_size=min_size, max_size=max_size)))
        pairs = draw(st.lists(st.tuples(groups, bodies), min_size=min_size,
                              max_size=max_size))
        return sqs_event(*(body for _, body in pairs),
                         fifo_group=[group for group, _ in pairs])

    return build()


def kinesis_events(*, data: Optional[SearchStrategy[Any]] = None,
                   partition_keys: Optional[SearchStrategy[str]] = None, min_size: int = 0,
                   max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """Kinesis events: ``(partition_key, data)`` records of one shard, sequence numbers
    increasing. ``data`` default: ``payloads()``; keys from ``ordering_keys()``."""
    data = payloads() if data is None else data
    partition_keys = ordering_keys() if partition_keys is None else partition_keys
    return st.lists(st.tuples(partition_keys, data), min_size=min_size,
                    max_size=max_size).map(lambda pairs: kinesis_event(*pairs))


def dynamodb_events(*, items: Optional[SearchStrategy[dict[str, Any]]] = None,
                    keys: Optional[SearchStrategy[str]] = None,
                    event_names: Optional[SearchStrategy[str]] = None, min_size: int = 0,
                    max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """DynamoDB Streams events: ``(key, item, event_name)`` changes. ``items`` default:
    ``{"value": <int>}``; ``keys`` (the item's ``pk``) from ``ordering_keys()``;
    ``event_names`` from INSERT / MODIFY / REMOVE."""
    items = st.fixed_dictionaries({"value": st.integers(-10**6, 10**6)}) if items is None \
        else items
    keys = ordering_keys() if keys is None else keys
    event_names = st.sampled_from(_EVENT_NAMES) if event_names is None else event_names
    return st.lists(st.tuples(keys, items, event_names), min_size=min_size,
                    max_size=max_size).map(lambda changes: dynamodb_event(*changes))


def kafka_events(*, values: Optional[SearchStrategy[Any]] = None,
                 keys: Optional[SearchStrategy[Optional[str]]] = None,
                 partitions: Optional[SearchStrategy[int]] = None, topic: str = "orders",
                 self_managed: Optional[bool] = None, min_size: int = 0,
                 max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """Kafka events (MSK or self-managed, ``self_managed=None``: either):
    ``(partition, key, value)`` records of ``topic``, offsets increasing per partition.
    ``partitions`` default 0-2; ``keys`` from ``ordering_keys()`` or ``None`` (no key);
    ``values`` default ``payloads()``."""
    values = payloads() if values is None else values
    keys = st.one_of(st.none(), ordering_keys()) if keys is None else keys
    partitions = st.integers(0, 2) if partitions is None else partitions
    managed = st.booleans() if self_managed is None else st.just(self_managed)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        records = draw(st.lists(st.tuples(partitions, keys, values), min_size=min_size,
                                max_size=max_size))
        return kafka_event(*records, topic=topic, self_managed=draw(managed))

    return build()


def events(*, min_size: int = 0, max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """An event of any source asyncbatch processes (SQS standard or FIFO, Kinesis,
    DynamoDB Streams, Kafka), with the default parts."""
    return st.one_of(sqs_events(min_size=min_size, max_size=max_size),
                     kinesis_events(min_size=min_size, max_size=max_size),
                     dynamodb_events(min_size=min_size, max_size=max_size),
                     kafka_events(min_size=min_size, max_size=max_size))


# -- the other batch shapes (not in events(): their responses or payloads differ) ---------

def firehose_events(*, data: Optional[SearchStrategy[Any]] = None,
                    origin: Optional[str] = None, min_size: int = 0,
                    max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """Firehose transformation events (``origin``: ``"direct_put"``, ``"kinesis"``,
    ``"msk"``, or ``None``: any). ``data`` default: ``payloads()``. The response is
    Firehose's ``{"records": [...]}``, not ``batchItemFailures``."""
    data = payloads() if data is None else data
    origins = st.sampled_from(("direct_put", "kinesis", "msk")) if origin is None \
        else st.just(origin)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        items = draw(st.lists(data, min_size=min_size, max_size=max_size))
        return firehose_event(*items, origin=draw(origins))

    return build()


def pipes_batches(*, min_size: int = 0, max_size: int = 20) -> SearchStrategy[list[Any]]:
    """EventBridge Pipes batches: the records of an SQS (standard or FIFO), Kinesis or
    DynamoDB Streams event as a top-level list (``asyncbatch.testing.pipes_event``)."""
    return st.one_of(sqs_events(min_size=min_size, max_size=max_size),
                     kinesis_events(min_size=min_size, max_size=max_size),
                     dynamodb_events(min_size=min_size, max_size=max_size)).map(pipes_event)


def sns_sqs_events(*, messages: Optional[SearchStrategy[Any]] = None,
                   fifo: Optional[bool] = None, min_size: int = 0,
                   max_size: int = 20) -> SearchStrategy[dict[str, Any]]:
    """SQS events whose bodies are SNS notifications (``envelope="sns"``) of ``messages``
    (default: ``payloads()``); FIFO (one of ``ordering_keys()`` per message) when
    ``fifo`` is true, either when ``None``."""
    messages = payloads() if messages is None else messages
    fifo_flags = st.booleans() if fifo is None else st.just(fifo)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        if not draw(fifo_flags):
            return sns_sqs_event(*draw(st.lists(messages, min_size=min_size,
                                                max_size=max_size)))
        pairs = draw(st.lists(st.tuples(ordering_keys(), messages), min_size=min_size,
                              max_size=max_size))
        return sns_sqs_event(*(m for _, m in pairs), fifo_group=[g for g, _ in pairs])

    return build()
