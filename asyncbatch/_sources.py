"""Event sources as small policies beside the one scheduler.

A policy knows, for one kind of event: how to recognise it, how to identify and view a
record, which records must run in order (the lanes), and what a failure skips. The
scheduler knows none of that.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import contains, itemgetter
from typing import Any, Callable, Optional, Union

from ._dynamodb import DynamoDBJSONError, canonical_key
from ._errors import ConfigurationError, InvalidEventError
from ._records import DynamoDBRecord, KinesisRecord, Record, SQSRecord

__all__ = ["EventType", "FailureMode", "Plan", "SourcePolicy", "resolve_policy"]


class EventType(str, enum.Enum):
    """The event sources asyncbatch knows; the values are the names SEMANTICS.md uses."""

    SQS = "SQS"
    KINESIS = "KinesisDataStreams"
    DYNAMODB_STREAMS = "DynamoDBStreams"

    def __str__(self) -> str:
        return self.value


class FailureMode(enum.Enum):
    """What one failed record does to the records not yet started."""

    INDEPENDENT = "independent"  # nothing
    SKIP_LANE = "skip_lane"  # the rest of its lane (FIFO message group) is skipped
    STOP_ALL = "stop_all"  # everything not yet started is skipped
    CHECKPOINT = "checkpoint"  # rest of its lane, and every record above its sequence number


class Plan:
    """How one batch runs. The contract between a source and the scheduler:

    - ``size``: the number of records.
    - ``identifiers``: every record's ``itemIdentifier`` as the event held it when it
      arrived (validated before any handler runs); the response is built from these, so
      a handler that edits its record or the event cannot change what is reported.
    - ``lanes``: record indices that run one at a time, each lane in run order (sequence
      or offset order for streams, event order for FIFO groups); ``None`` when every
      record is independent.
    - ``mode``: what a failure skips.
    - ``sequence``: checkpoint mode: each record's sequence number (or offset) as an int.
    - ``partition``: checkpoint mode: the checkpoint group of each record (Kafka: its
      topic-partition); ``None`` when the whole batch is one group (one shard).
    - ``rank``: the scheduling priority of a record at the head of its lane (lower runs
      first); ``None``: its position in the event.
    """

    __slots__ = ("identifiers", "lanes", "mode", "partition", "rank", "sequence", "size")

    def __init__(self, size: int, lanes: Optional[list[list[int]]], mode: FailureMode,
                 sequence: Optional[Callable[[int], int]] = None, *,
                 identifiers: Optional[list[Any]] = None,
                 partition: Optional[Callable[[int], Hashable]] = None,
                 rank: Optional[Callable[[int], Any]] = None) -> None:
        self.size = size
        self.lanes = lanes
        self.mode = mode
        self.sequence = sequence
        self.identifiers = identifiers
        self.partition = partition
        self.rank = rank


_SOURCE_NAMES = {"aws:sqs": EventType.SQS, "aws:kinesis": EventType.KINESIS,
                 "aws:dynamodb": EventType.DYNAMODB_STREAMS}


def _lanes(keys: Sequence[object]) -> list[list[int]]:
    """Group record indices by key, keeping event order inside each lane; the longest
    lanes first, so that the longest chains start at once (makespan close to ideal)."""
    groups: dict[object, list[int]] = {}
    for index, key in enumerate(keys):
        lane = groups.get(key)
        if lane is None:
            groups[key] = [index]
        else:
            lane.append(index)
    lanes = list(groups.values())
    lanes.sort(key=len, reverse=True)  # stable: equal lengths keep first-appearance order
    return lanes


class SourcePolicy:
    """One event source. Subclasses fill in the class attributes and ``plan``."""

    event_type: EventType
    event_source: str
    view: type[Record]
    identifier_path: str
    identifier_keys: tuple[str, ...]

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def plan(self, records: list[Any], fifo_stop_batch: bool) -> Plan:
        raise NotImplementedError

    def model_input(self, view: Any) -> tuple[Any, bool]:
        """What ``model=`` validates: ``(value, is_json_text)``."""
        raise NotImplementedError

    def _check(self, records: list[Any]) -> list[Any]:
        """Validate every record's shape, source and identifier; return the identifiers.

        The common case (every record a dict of the right source with a string
        identifier) is checked in a few C-speed passes; only a batch that fails them is
        walked record by record to name the first bad record."""
        source = self.event_source
        identifier = self.identifier
        try:
            ids = _pluck(records, self.identifier_keys)
            sources = set(map(dict.get, records, repeat("eventSource"), repeat(source)))
            if sources == {source} and set(map(type, ids)) == {str} and all(ids):
                return ids
        except (KeyError, TypeError, AttributeError):
            pass
        for index, raw in enumerate(records):
            if not isinstance(raw, Mapping):
                raise InvalidEventError(
                    f"Records[{index}] is a {type(raw).__name__}, not a mapping", index=index
                )
            found = raw.get("eventSource", source)
            if found != source:
                raise InvalidEventError(
                    f"Records[{index}] comes from {found!r} but the batch is {source!r}: "
                    "one batch holds records of one source",
                    index=index,
                )
            try:
                ident = identifier(raw)
            except (KeyError, TypeError, AttributeError):
                ident = None
            if not isinstance(ident, str) or not ident:
                raise InvalidEventError(
                    f"Records[{index}] has no {self.identifier_path} (its itemIdentifier)",
                    index=index,
                )
        return [identifier(raw) for raw in records]  # pragma: no cover - mappings, not dicts


def _pluck(records: list[Any], keys: tuple[str, ...]) -> list[Any]:
    """``[r[k1][k2]... for r in records]`` at C speed."""
    values: Iterable[Any] = records
    for key in keys:
        values = map(itemgetter(key), values)
    return list(values)


def _group_id(raw: Mapping[str, Any]) -> Optional[str]:
    attributes = raw.get("attributes")
    if type(attributes) is dict:
        return attributes.get("MessageGroupId")
    return attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None


class SQSPolicy(SourcePolicy):
    event_type = EventType.SQS
    event_source = "aws:sqs"
    view = SQSRecord
    identifier_path = "messageId"
    identifier_keys = ("messageId",)

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["messageId"]

    def plan(self, records: list[Any], fifo_stop_batch: bool) -> Plan:
        self._check(records)
        arn = records[0].get("eventSourceARN") if records else None
        fifo = isinstance(arn, str) and arn.endswith(".fifo")
        if not fifo:
            # A FIFO record always carries its MessageGroupId, whatever the ARN says.
            try:
                attributes = map(itemgetter("attributes"), records)
                fifo = any(map(contains, attributes, repeat("MessageGroupId")))
            except (KeyError, TypeError):
                fifo = any(_group_id(raw) is not None for raw in records)
        if not fifo:
            return Plan(len(records), None, FailureMode.INDEPENDENT)
        groups = [_group_id(raw) for raw in records]
        # A FIFO record without a group id (never sent by SQS) shares the ``None`` lane:
        # run in order rather than risk reordering.
        mode = FailureMode.STOP_ALL if fifo_stop_batch else FailureMode.SKIP_LANE
        return Plan(len(records), _lanes(groups), mode)

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.body, True


class _StreamPolicy(SourcePolicy):
    def key(self, raw: Mapping[str, Any], index: int) -> object:
        raise NotImplementedError

    def keys(self, records: list[Any]) -> list[object]:
        """Every record's ordering key; ``InvalidEventError`` names the first bad one."""
        return [self.key(raw, index) for index, raw in enumerate(records)]

    def plan(self, records: list[Any], fifo_stop_batch: bool) -> Plan:
        ids = self._check(records)
        joined = "".join(ids)  # every id is a non-empty str (checked above)
        ids_ok = joined.isascii() and joined.isdigit()
        for index, ident in enumerate(() if ids_ok else ids):
            if not (ident.isascii() and ident.isdigit()):
                raise InvalidEventError(
                    f"Records[{index}] has {self.identifier_path}={ident!r}, "
                    "not a decimal sequence number",
                    index=index,
                )
        keys = self.keys(records)
        return Plan(len(records), _lanes(keys), FailureMode.CHECKPOINT,
                    lambda index: int(ids[index]))


class KinesisPolicy(_StreamPolicy):
    event_type = EventType.KINESIS
    event_source = "aws:kinesis"
    view = KinesisRecord
    identifier_path = "kinesis.sequenceNumber"
    identifier_keys = ("kinesis", "sequenceNumber")

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["kinesis"]["sequenceNumber"]

    def keys(self, records: list[Any]) -> list[object]:
        try:  # the common case at C speed; a bad record is then found and named below
            keys: list[object] = _pluck(records, ("kinesis", "partitionKey"))
            if set(map(type, keys)) == {str}:
                return keys
        except (KeyError, TypeError):
            pass
        return super().keys(records)

    def key(self, raw: Mapping[str, Any], index: int) -> object:
        key = raw["kinesis"].get("partitionKey")
        if not isinstance(key, str):
            raise InvalidEventError(f"Records[{index}] has no kinesis.partitionKey", index=index)
        return key

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.data, True


class DynamoDBPolicy(_StreamPolicy):
    event_type = EventType.DYNAMODB_STREAMS
    event_source = "aws:dynamodb"
    view = DynamoDBRecord
    identifier_path = "dynamodb.SequenceNumber"
    identifier_keys = ("dynamodb", "SequenceNumber")

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["dynamodb"]["SequenceNumber"]

    def key(self, raw: Mapping[str, Any], index: int) -> object:
        keys = raw["dynamodb"].get("Keys")
        if not isinstance(keys, Mapping) or not keys:
            raise InvalidEventError(f"Records[{index}] has no dynamodb.Keys", index=index)
        try:
            return canonical_key(keys)
        except DynamoDBJSONError as exc:
            raise InvalidEventError(f"Records[{index}]: {exc}", index=index) from None

    def model_input(self, view: Any) -> tuple[Any, bool]:
        image = view.old_image if view.event_name == "REMOVE" else view.new_image
        return image if image is not None else {}, False


_POLICIES: dict[EventType, SourcePolicy] = {
    EventType.SQS: SQSPolicy(),
    EventType.KINESIS: KinesisPolicy(),
    EventType.DYNAMODB_STREAMS: DynamoDBPolicy(),
}


def coerce_event_type(value: Union[EventType, str, None]) -> Optional[EventType]:
    """``EventType``, its value, its name, or ``None`` (detect); else ConfigurationError."""
    if value is None or isinstance(value, EventType):
        return value
    if isinstance(value, str):
        for member in EventType:
            if value in (member.value, member.name):
                return member
    names = ", ".join(repr(m.value) for m in EventType)
    raise ConfigurationError(
        f"event_type={value!r} is not an event type; use None (detect), an EventType or one "
        f"of {names}"
    )


def split_event(event: Any) -> list[Any]:
    """The event's ``Records`` list; InvalidEventError when the event has none."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(
            f"the event is a {type(event).__name__}, not a mapping with a 'Records' list"
        )
    records = event.get("Records")
    if records is None:
        raise InvalidEventError("the event has no 'Records' key")
    if not isinstance(records, list):
        raise InvalidEventError(f"the event's 'Records' is a {type(records).__name__}, not a list")
    return records


def resolve_policy(records: list[Any], event_type: Optional[EventType]) -> SourcePolicy:
    """The policy for these records: the given type, or the one their ``eventSource`` names."""
    if event_type is not None:
        return _POLICIES[event_type]
    if not records:
        return _POLICIES[EventType.SQS]  # an empty batch reports nothing whatever its source
    first = records[0]
    if not isinstance(first, Mapping):
        raise InvalidEventError(
            f"Records[0] is a {type(first).__name__}, not a mapping", index=0)
    source = first.get("eventSource")
    detected = _SOURCE_NAMES.get(source) if isinstance(source, str) else None
    if detected is None:
        known = ", ".join(sorted(_SOURCE_NAMES))
        raise InvalidEventError(
            f"cannot tell the event source: Records[0] has eventSource={source!r} (known: "
            f"{known}); pass event_type= to the processor",
            index=0,
        )
    return _POLICIES[detected]


def read_event(event: Any, event_type: Optional[EventType], *, fifo_stop_batch: bool = False,
               ordering: Optional[str] = None) -> tuple[SourcePolicy, list[Any], Plan]:
    """The event's source, its records (a new list: a handler that edits the event does not
    change it) and the plan the scheduler runs; ``InvalidEventError`` before any handler."""
    records = list(split_event(event))
    policy = resolve_policy(records, event_type)
    plan = policy.plan(records, fifo_stop_batch)
    if plan.identifiers is None:
        plan.identifiers = [policy.identifier(raw) for raw in records]
    return policy, records, plan
