"""Apache Kafka: Amazon MSK (``"aws:kafka"``) and self-managed (``"SelfManagedKafka"``,
or ``"aws:SelfManagedKafka"`` as Powertools' sample event has it).

- Records: grouped by topic-partition under ``event["records"]["<topic>-<partition>"]``,
  each ``{"topic", "partition", "offset", "timestamp", "timestampType", "key" (base64 or
  null), "value" (base64), "headers": [{name: [byte, ...]}]}``. The event (not the
  record) names the source in ``eventSource``. The key of a group is only a label: each
  record belongs to its own topic and partition (AWS's Java and .NET sample events hold
  partition 12 under ``mytopic-0``, partition 0 under ``mytopic-01``).
- A repeated offset (one partition's offset twice, as in Powertools' sample) is accepted
  as every source accepts a repeated identifier: each record runs, in event order within
  its lane, and the response names the identifier once.
- Identifier: ``{"partition": "<topic>-<partition>", "offset": <int>}``; Lambda resumes
  each reported topic-partition from its lowest reported offset.
- Checkpoint group: the topic-partition (a failure in one never holds back another).
- Order: ``ordering="partition"`` (default): one lane per topic-partition in offset order;
  ``ordering="key"``: one lane per (topic-partition, key) in offset order, records without
  a key sharing one lane per partition.
- ``model=`` parses the base64-decoded value as JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Hashable, Mapping, Sequence
from itertools import chain, compress, repeat
from operator import itemgetter, lt, ne, or_
from typing import Any, Optional

from .._errors import InvalidEventError, safe_repr
from ._base import (
    EventType,
    FailureMode,
    Plan,
    Record,
    Source,
    group,
    lane_heads,
    payload_bytes,
    slices,
)

__all__ = ["KAFKA", "KafkaRecord", "KafkaSource"]

CLUSTER_ARN = ("arn:aws:kafka:us-east-1:123456789012:cluster/orders-cluster/"
               "751d2973-a626-431c-9d4e-d7975eb44dd7-2")
BOOTSTRAP_SERVERS = ("b-2.orders-cluster.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
                     "b-1.orders-cluster.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092")
_EVENT_SOURCES = ("aws:kafka", "SelfManagedKafka", "aws:SelfManagedKafka")


class KafkaRecord(Record):
    """One Kafka record; ``key`` and ``value`` are base64-decoded on access."""

    __slots__ = ()

    @property
    def topic(self) -> str:
        return self.raw["topic"]  # type: ignore[no-any-return]

    @property
    def partition(self) -> int:
        return self.raw["partition"]  # type: ignore[no-any-return]

    @property
    def offset(self) -> int:
        return self.raw["offset"]  # type: ignore[no-any-return]

    @property
    def topic_partition(self) -> str:
        """``"<topic>-<partition>"``: the checkpoint group, as the event names it."""
        return f"{self.raw['topic']}-{self.raw['partition']}"

    @property
    def identifier(self) -> dict[str, Any]:
        """``{"partition": "<topic>-<partition>", "offset": <int>}`` (a new dict)."""
        return {"partition": self.topic_partition, "offset": self.raw["offset"]}

    @property
    def timestamp(self) -> Optional[int]:
        """Milliseconds since the epoch (see ``timestamp_type``)."""
        return self.raw.get("timestamp")

    @property
    def timestamp_type(self) -> Optional[str]:
        """``CREATE_TIME`` or ``LOG_APPEND_TIME``."""
        return self.raw.get("timestampType")

    @property
    def key(self) -> Optional[bytes]:
        """The record key, base64-decoded; ``None`` for a record without a key."""
        key = self.raw.get("key")
        return None if key is None else self._b64(key, "key")

    @property
    def value(self) -> bytes:
        """The record value, base64-decoded (``b""`` for a null value, a tombstone)."""
        value = self.raw.get("value")
        return b"" if value is None else self._b64(value, "value")

    def json(self) -> Any:
        """The value parsed as JSON; ``RecordDecodeError`` when it is not JSON."""
        return self._json(self.value, "value")

    @property
    def headers(self) -> dict[str, bytes]:
        """The headers as ``{name: value bytes}`` (of a name given twice, the last value
        is kept). Lambda sends each value as a list of Java *signed* bytes, -128 to 127:
        every byte from 0x80 up (any non-ASCII text) is negative, and is taken modulo 256.
        A value that is not such a list (a number, a string, a byte out of range) is a
        ``RecordDecodeError`` naming it: Lambda never sends one (a base64 string is how
        Java's ``aws-lambda-java-events`` serialises a ``byte[]``)."""
        headers = self.raw.get("headers")
        if not headers:
            return {}
        if not isinstance(headers, list):
            raise self._bad_headers(f"'headers' is a {type(headers).__name__}")
        out: dict[str, bytes] = {}
        for position, header in enumerate(headers):
            if not isinstance(header, Mapping):
                raise self._bad_headers(f"headers[{position}] is a {type(header).__name__}")
            for name, value in header.items():
                out[name] = self._header_value(name, value)
        return out

    def _header_value(self, name: Any, value: Any) -> bytes:
        if type(value) is not list:
            shape = "a number" if isinstance(value, (int, float)) else \
                f"a {type(value).__name__}"
            raise self._bad_headers(
                f"header {safe_repr(name):.80} is {shape} ({safe_repr(value):.40}), not a "
                "list of byte values")
        try:
            return bytes(value)  # every byte below 0x80 (ASCII): the usual case
        except (TypeError, ValueError):
            pass
        data = bytearray()
        for position, byte in enumerate(value):
            if type(byte) is not int or not -128 <= byte <= 255:
                raise self._bad_headers(
                    f"header {safe_repr(name):.80} has {safe_repr(byte):.40} at position "
                    f"{position}, not a byte value (-128 to 127)")
            data.append(byte & 0xFF)
        return bytes(data)

    def _bad_headers(self, problem: str) -> Exception:
        from .._errors import RecordDecodeError

        return RecordDecodeError(
            f"record {self.identifier}: {problem}; Lambda sends headers as "
            "[{name: [byte, ...]}], each byte a Java signed byte (-128 to 127)",
            identifier=self.identifier)

    @property
    def ordering_key(self) -> Optional[Hashable]:
        """The topic-partition (the default lane)."""
        return self.topic_partition

    @property
    def event_source_arn(self) -> Optional[str]:
        return None  # the ARN is the event's (``eventSourceArn``), not the record's


def identity_of(identifier: Mapping[str, Any]) -> Optional[Hashable]:
    """Kafka's ``itemIdentifier`` (``{"partition": p, "offset": o}``) as a hashable key,
    ``(p, int(o))``; ``None`` for a mapping of another shape."""
    if set(identifier) != {"partition", "offset"}:
        return None
    offset = identifier["offset"]
    if isinstance(offset, str) and offset.isdigit():
        offset = int(offset)
    return (identifier["partition"], offset)


class KafkaSource(Source):
    event_type = EventType.KAFKA
    record_fields = frozenset({"topic", "partition", "offset", "value"})
    powertools_record_model = "KafkaRecordModel"
    event_sources = _EVENT_SOURCES
    view = KafkaRecord
    identifier_path = "offset"
    orderings = ("partition", "key")

    def find(self, event: Mapping[str, Any]) -> list[Any]:
        groups = event.get("records")
        if groups is None and event.get("Records") == []:
            return []  # the empty batch every source accepts
        if groups is None:
            raise InvalidEventError(
                "the Kafka event has no 'records' mapping of '<topic>-<partition>' to records")
        if not isinstance(groups, Mapping):
            raise InvalidEventError(
                f"the Kafka event's 'records' is a {type(groups).__name__}, not a mapping of "
                "'<topic>-<partition>' to lists of records")
        parts = list(groups.values())
        if set(map(type, parts)) == {list}:  # the common case at C speed: lists of dicts
            records = list(chain.from_iterable(parts))
            if set(map(type, records)) <= {dict}:
                return records
        records = []
        for name, part in groups.items():
            if not isinstance(part, list):
                raise InvalidEventError(
                    f"records[{safe_repr(name):.80}] is a {type(part).__name__}, not a list "
                    "of records")
            for position, raw in enumerate(part):
                if not isinstance(raw, Mapping):
                    raise _bad(len(records), f"records[{safe_repr(name):.80}][{position}] "
                                             f"is a {type(raw).__name__}, not a mapping")
                records.append(raw)  # of its own topic and partition, whatever the label
        return records

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return {"partition": f"{raw['topic']}-{raw['partition']}", "offset": raw["offset"]}

    def ordering_key(self, raw: Mapping[str, Any]) -> Optional[Hashable]:
        return f"{raw['topic']}-{raw['partition']}"

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        by_key = self.check_ordering(ordering) == "key"
        planned = _plan_grouped(records, by_key)
        if planned is not None:
            return planned
        return self._plan_walk(records, by_key)

    def _plan_walk(self, records: list[Any], by_key: bool) -> Plan:
        """The plan record by record: any batch, and the first bad record named."""
        ids: list[Any] = []
        parts: list[str] = []
        offsets: list[int] = []
        keys: list[Hashable] = []
        for index, raw in enumerate(records):
            if not isinstance(raw, Mapping):
                raise _bad(index, f"is a {type(raw).__name__}, not a mapping")
            topic, number, offset = raw.get("topic"), raw.get("partition"), raw.get("offset")
            if not isinstance(topic, str) or not topic:
                raise _bad(index, f"has topic={safe_repr(topic):.80}, not a topic name")
            if type(number) is not int or number < 0:
                raise _bad(index, f"has partition={safe_repr(number):.80}, not a partition "
                                  "number")
            if type(offset) is not int or offset < 0:
                raise _bad(index, f"has offset={safe_repr(offset):.80}, not an offset (its "
                                  "itemIdentifier)")
            part = f"{topic}-{number}"
            ids.append({"partition": part, "offset": offset})
            parts.append(part)
            offsets.append(offset)
            if by_key:
                key = raw.get("key")
                if key is not None and not isinstance(key, str):
                    raise _bad(index, f"has key={safe_repr(key):.80}, not base64 text or "
                                      "null")
                keys.append((part, key))
        lanes = _sort_by_offset(group(keys if by_key else parts), offsets)
        return Plan(len(records), lanes, FailureMode.CHECKPOINT, offsets.__getitem__,
                    identifiers=ids, partition=parts.__getitem__)

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.value, True

    def identifier_text(self, identifier: Any) -> str:
        """``orders-0@15``: the topic-partition and the offset."""
        if isinstance(identifier, Mapping):
            return f"{identifier.get('partition')}@{identifier.get('offset')}"
        return super().identifier_text(identifier)

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      topic: str = "orders", partition: int = 0, offset: Optional[int] = None,
                      headers: Optional[Mapping[str, bytes]] = None,
                      **options: Any) -> dict[str, Any]:
        """``key``: the record key (str/bytes, ``None`` for none); ``offset`` defaults to
        ``index``."""
        value = payload_bytes({"n": index} if payload is None else payload)
        key_bytes = None if key is None else payload_bytes(key)
        return {
            "topic": topic,
            "partition": partition,
            "offset": index if offset is None else offset,
            "timestamp": 1_700_000_000_000 + index,
            "timestampType": "CREATE_TIME",
            "key": None if key_bytes is None else base64.b64encode(key_bytes).decode("ascii"),
            "value": base64.b64encode(value).decode("ascii"),
            "headers": [{name: list(data)} for name, data in (headers or {}).items()],
        }

    def sample_event(self, records: list[dict[str, Any]], *, self_managed: bool = False,
                     **options: Any) -> dict[str, Any]:
        """An MSK event (``self_managed=True``: a self-managed Kafka one) grouping
        ``records`` by topic-partition."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for raw in records:
            grouped.setdefault(f"{raw['topic']}-{raw['partition']}", []).append(raw)
        event: dict[str, Any] = {"eventSource": _EVENT_SOURCES[1 if self_managed else 0]}
        if not self_managed:
            event["eventSourceArn"] = CLUSTER_ARN
        event["bootstrapServers"] = BOOTSTRAP_SERVERS
        event["records"] = grouped
        return event


def _bad(index: int, message: str) -> InvalidEventError:
    return InvalidEventError(f"Kafka record {index}: {message}", index=index)


def _sort_by_offset(lanes: list[list[int]], offsets: list[int]) -> list[list[int]]:
    """Each lane in offset order; lanes keep the order of their first record in the event
    (offsets of different partitions are unrelated numbers, so they never rank lanes)."""
    from operator import lt

    key = offsets.__getitem__
    for lane in lanes:
        values = list(map(key, lane))
        if not all(map(lt, values, values[1:])):
            lane.sort(key=key)
    return lanes


class _Identifiers(Sequence[dict[str, Any]]):
    """Every record's identifier, ``{"partition": "<topic>-<partition>", "offset": <int>}``,
    made when asked for (a new dict each time) from the topic-partitions and offsets read
    when the batch arrived: a batch that reports nothing never builds them."""

    __slots__ = ("offsets", "parts")

    def __init__(self, parts: list[str], offsets: list[int]) -> None:
        self.parts = parts
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return {"partition": self.parts[index], "offset": self.offsets[index]}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, _Identifiers)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


_topic = itemgetter("topic")
_partition = itemgetter("partition")
_offset = itemgetter("offset")


def _plan_grouped(records: list[Any], by_key: bool) -> Optional[Plan]:
    """The plan of a well-formed batch in a few C-speed passes, or ``None`` (then the
    batch is walked record by record, which names the first bad one).

    Lambda hands the records over grouped by topic-partition, so the batch is a few runs
    of one topic-partition each: found by comparing neighbours at C speed, each run is
    one ``extend`` of its lane; the per-record work left in Python is none (by
    partition) or the grouping by key (``ordering="key"``). The plan is the one
    ``_plan_walk`` makes (the tests compare them on generated batches)."""
    n = len(records)
    if not n:
        return None
    topics: list[Any] = []
    numbers: list[Any] = []
    offsets: list[Any] = []
    keys: Optional[list[Any]] = [] if by_key else None
    distinct: set[Any] = set()  # usually one topic (a value equal to a str is a str in JSON)
    # whether offsets increase wherever the partition number does not change (then each
    # partition's records are in offset order, unless it comes in several runs)
    ascending = True
    try:  # (find() made every record a mapping; another shape raises here)
        for _, part in slices(records):  # (slice by slice: see slices)
            chunk = list(map(_topic, part))
            distinct.update(chunk)
            topics += chunk
            those = list(map(_partition, part))
            if set(map(type, those)) != {int} or min(those) < 0:
                return None
            chunk = list(map(_offset, part))
            if set(map(type, chunk)) != {int} or min(chunk) < 0:
                return None
            if ascending:
                ascending = (not numbers or numbers[-1] != those[0]
                             or offsets[-1] < chunk[0]) \
                    and all(map(or_, map(lt, chunk, chunk[1:]), map(ne, those, those[1:])))
            numbers += those
            offsets += chunk
            if keys is not None:
                chunk = list(map(dict.get, part, repeat("key")))
                if not set(map(type, chunk)) <= {str, type(None)}:
                    return None
                keys += chunk
    except (KeyError, TypeError):  # (TypeError: a mapping that is not a dict: walked)
        return None
    if set(map(type, distinct)) != {str} or "" in distinct:
        return None
    # the runs of one topic-partition: where the topic or the partition changes
    changes = map(ne, numbers, numbers[1:])
    if len(distinct) > 1:
        changes = map(or_, changes, map(ne, topics, topics[1:]))
    cuts = list(compress(range(1, n), changes))
    labels: dict[tuple[str, int], str] = {}
    runs_by_part: dict[str, list[range]] = {}
    parts: list[str] = []
    heads: list[int] = []  # each record's lane: the position of its partition's first
    start = 0
    for end in (*cuts, n):
        pair = (topics[start], numbers[start])
        label = labels.get(pair)
        if label is None:
            label = labels[pair] = f"{pair[0]}-{pair[1]}"
        parts.extend(repeat(label, end - start))
        runs = runs_by_part.get(label)
        if runs is None:
            runs_by_part[label] = [range(start, end)]
            heads.extend(repeat(start, end - start))
        else:
            if offsets[runs[-1][-1]] >= offsets[start]:
                ascending = False  # a partition in several runs, not in offset order
            heads.extend(repeat(runs[0][0], end - start))
            runs.append(range(start, end))
        start = end
    identifiers = _Identifiers(parts, offsets)
    if ascending:
        # (the usual batch: each partition's records in offset order, as Lambda sends
        # them; its lanes are made only if asked for)
        width = len(runs_by_part)
        if keys is not None:
            heads, width = lane_heads(zip(parts, keys))
        return Plan(n, None, FailureMode.CHECKPOINT, offsets.__getitem__,
                    identifiers=identifiers,  # type: ignore[arg-type]
                    partition=parts.__getitem__, heads=heads, width=width)
    lanes = _sort_by_offset(
        [list(chain.from_iterable(runs)) for runs in runs_by_part.values()] if keys is None
        else group(list(zip(parts, keys))),
        offsets)
    return Plan(n, lanes, FailureMode.CHECKPOINT, offsets.__getitem__,
                identifiers=identifiers,  # type: ignore[arg-type]
                partition=parts.__getitem__)


KAFKA = KafkaSource()
