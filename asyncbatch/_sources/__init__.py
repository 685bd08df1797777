"""Event sources: one descriptor per source, beside the one scheduler.

Each source is described once, in its own module: ``sqs.py``, ``kinesis.py``,
``dynamodb.py``, ``kafka.py``, ``firehose.py`` (the shared parts in ``_base.py``; an
EventBridge pipe's list of records is read in ``pipes.py``). A descriptor knows, for
one kind of event, where its records are and how to validate them, the identifier and
how it goes into ``batchItemFailures``, the sequence and ordering key (the lanes), what
a failure skips, what ``model=`` parses, the record view and how to build a sample
record. The scheduler knows none of that: it runs the ``Plan`` a descriptor returns.

``read_event`` is the processor's one entry point. Adding a source is one module with
its descriptor, registered in ``SOURCES`` below, and its tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from .._errors import ConfigurationError, InvalidEventError, safe_repr
from ._base import EventType, FailureMode, Plan, Record, Source

if TYPE_CHECKING:
    from .dynamodb import DynamoDBRecord
    from .firehose import DROPPED, FirehoseRecord, FirehoseResult
    from .iterable import ITEMS
    from .kafka import KafkaRecord
    from .kinesis import KinesisRecord
    from .sqs import SQSRecord

__all__ = [
    "DROPPED",
    "SOURCES",
    "DynamoDBRecord",
    "EventType",
    "FailureMode",
    "FirehoseRecord",
    "FirehoseResult",
    "KafkaRecord",
    "KinesisRecord",
    "Plan",
    "Record",
    "SQSRecord",
    "Source",
    "coerce_event_type",
    "identity_key",
    "read_event",
    "ITEMS",
    "source_for",
    "split_event",
]

# Each source's module is imported when a batch first needs it (a cold start that
# handles SQS never loads the Kafka, Kinesis, DynamoDB or Firehose descriptors): its
# module and descriptor, by event type.
_MODULES: dict[EventType, tuple[str, str]] = {
    EventType.SQS: (".sqs", "SQS"),
    EventType.KINESIS: (".kinesis", "KINESIS"),
    EventType.DYNAMODB_STREAMS: (".dynamodb", "DYNAMODB"),
    EventType.KAFKA: (".kafka", "KAFKA"),
    EventType.FIREHOSE: (".firehose", "FIREHOSE"),
}
# eventSource value -> event type; a record's for SQS/Kinesis/DynamoDB, the event's for
# Kafka (each descriptor's ``event_sources``: a test keeps the two alike)
_BY_EVENT_SOURCE: dict[str, EventType] = {
    "aws:sqs": EventType.SQS,
    "aws:kinesis": EventType.KINESIS,
    "aws:dynamodb": EventType.DYNAMODB_STREAMS,
    "aws:kafka": EventType.KAFKA,
    "SelfManagedKafka": EventType.KAFKA,
    "aws:SelfManagedKafka": EventType.KAFKA,
}
_EVENT_LEVEL = ("aws:kafka", "SelfManagedKafka", "aws:SelfManagedKafka")
# the public names of the sources' modules, loaded with their module
_LAZY = {
    "SQSRecord": ".sqs", "KinesisRecord": ".kinesis", "DynamoDBRecord": ".dynamodb",
    "KafkaRecord": ".kafka", "FirehoseRecord": ".firehose", "FirehoseResult": ".firehose",
    "DROPPED": ".firehose",
}


def _import(module: str) -> Any:
    """A source's module; its public names report ``asyncbatch`` as their module from
    the moment it is loaded, however it was reached (see ``_public``)."""
    loaded = importlib.import_module(module, __name__)
    names = [name for name, where in _LAZY.items() if where == module]
    from .._public import publish

    publish({"__name__": "asyncbatch", **{name: getattr(loaded, name) for name in names}},
            names)
    return loaded


def _load(event_type: EventType) -> Source:
    module, name = _MODULES[event_type]
    source: Source = getattr(_import(module), name)
    return source


class _Sources(Mapping[EventType, Source]):
    """Every source by event type, each descriptor's module imported on first use."""

    __slots__ = ("_loaded",)

    def __init__(self) -> None:
        self._loaded: dict[EventType, Source] = {}

    def __getitem__(self, event_type: EventType) -> Source:
        try:
            return self._loaded[event_type]
        except KeyError:
            if event_type not in _MODULES:
                raise
        source = self._loaded[event_type] = _load(event_type)
        return source

    def __iter__(self) -> Iterator[EventType]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __contains__(self, event_type: object) -> bool:
        return event_type in _MODULES

    def __repr__(self) -> str:
        return f"SOURCES({', '.join(t.value for t in _MODULES)})"


#: every source, by event type
SOURCES: Mapping[EventType, Source] = _Sources()


def __getattr__(name: str) -> Any:
    if name == "ITEMS":  # the items of stream() and run(): loaded with the first of them
        from .iterable import ITEMS

        globals()["ITEMS"] = ITEMS
        return ITEMS
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import(module), name)
    globals()[name] = value
    return value


def _firehose_event(event: Mapping[str, Any]) -> bool:
    """A Firehose transformation event: ``deliveryStreamArn`` and ``records`` (as
    ``FirehoseSource.recognises`` says, without importing it)."""
    return "deliveryStreamArn" in event and "records" in event


def source_for(event_type: Union[EventType, str]) -> Source:
    """The descriptor of an event type (an ``EventType`` or its string)."""
    coerced = coerce_event_type(event_type)
    assert coerced is not None
    return SOURCES[coerced]


def coerce_event_type(value: Union[EventType, str, None]) -> Optional[EventType]:
    """``EventType``, its value, its name, or ``None`` (detect); else ConfigurationError."""
    if isinstance(value, str) and not isinstance(value, EventType):
        for member in EventType:
            if value in (member.value, member.name):
                value = member
                break
    if value is EventType.ITERABLE:
        raise ConfigurationError(
            "event_type='Iterable' names what stream() and run() process (any iterable); "
            "process() takes Lambda events: leave event_type None (detect) or name the "
            "event source")
    if value is None or isinstance(value, EventType):
        return value
    names = ", ".join(repr(m.value) for m in EventType if m is not EventType.ITERABLE)
    raise ConfigurationError(
        f"event_type={safe_repr(value)} is not an event type; use None (detect), an "
        f"EventType or one of {names}"
    )


def _detect(event: Mapping[str, Any]) -> Source:
    """The source the event names: its own ``eventSource`` (Kafka), a Firehose
    transformation's ``deliveryStreamArn``, else its first record's (an empty batch is
    SQS: it reports nothing whatever its source)."""
    top = event.get("eventSource")
    if isinstance(top, str) and top in _EVENT_LEVEL:
        return SOURCES[EventType.KAFKA]
    if _firehose_event(event):
        return SOURCES[EventType.FIREHOSE]
    if "Records" not in event and isinstance(event.get("records"), Mapping):
        raise InvalidEventError(
            f"the event has 'records' but eventSource={safe_repr(top):.80}: a Kafka event "
            "names its "
            f"source ({', '.join(map(repr, _EVENT_LEVEL))}); pass event_type= to the processor")
    records = split_event(event)
    if not records:
        return SOURCES[EventType.SQS]
    first = records[0]
    if not isinstance(first, Mapping):
        raise InvalidEventError(
            f"Records[0] is a {type(first).__name__}, not a mapping", index=0)
    name = first.get("eventSource")
    found = _BY_EVENT_SOURCE.get(name) if isinstance(name, str) else None
    if found is None or found is EventType.KAFKA:
        known = ", ".join(sorted(n for n in _BY_EVENT_SOURCE if n not in _EVENT_LEVEL))
        raise InvalidEventError(
            f"cannot tell the event source: Records[0] has eventSource={safe_repr(name):.80} "
            "(known: "
            f"{known}); pass event_type= to the processor",
            index=0,
        )
    return SOURCES[found]


def _check_source(event: Mapping[str, Any], source: Source) -> None:
    """``InvalidEventError`` when the event names another known source than the
    processor's (its own ``eventSource``, or its first record's): the processor's
    ``event_type`` and the event's source, and the fix."""
    name = event.get("eventSource")
    if not (isinstance(name, str) and name in _EVENT_LEVEL):
        records = event.get("Records")
        first = records[0] if isinstance(records, list) and records else None
        name = first.get("eventSource") if isinstance(first, Mapping) else None
    found = _BY_EVENT_SOURCE.get(name) if isinstance(name, str) else None
    where = f"eventSource {name!r}"
    if found is None and _firehose_event(event):
        found, where = EventType.FIREHOSE, "it has a deliveryStreamArn"
    if found is None or found is source.event_type:
        return
    mine, theirs = source.event_type.value, found.value
    raise InvalidEventError(
        f"the processor is made for {mine} events (event_type={mine!r}) but this event "
        f"comes from {theirs} ({where}); make the processor with "
        f"event_type=None to detect the source from each event, or "
        f"event_type={theirs!r} for this one")


def read_event(event: Any, event_type: Optional[EventType], *, fifo_stop_batch: bool = False,
               ordering: Optional[str] = None) -> tuple[Source, list[Any], Plan]:
    """The event's source, a new list of its records (a handler that edits the event does
    not change it) and the plan the scheduler runs, identifiers included.

    An EventBridge pipe's batch (a top-level list of records) is read as the same
    records under ``"Records"``. ``InvalidEventError`` (malformed event) or
    ``ConfigurationError`` (an ``ordering`` the source does not take) before any handler
    runs."""
    if isinstance(event, list):
        from .pipes import read_pipe_batch

        source, records = read_pipe_batch(event, event_type)
    elif not isinstance(event, Mapping):
        raise InvalidEventError(
            f"the event is a {type(event).__name__}, not a mapping with a 'Records' list "
            "(or an EventBridge pipe's list of records)")
    else:
        if event_type is None:
            source = _detect(event)
        else:
            source = SOURCES[event_type]
            _check_source(event, source)
        records = source.find(event)
    if not records and event_type is None:
        ordering = None  # an empty batch names no source: nothing to order
    plan = source.plan(records, fifo_stop_batch=fifo_stop_batch, ordering=ordering)
    return source, records, plan


# -- the names the scheduler used before read_event ----------------------------------

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


def identity_key(identifier: Any) -> Hashable:
    """An ``itemIdentifier`` as a hashable key: strings as they are, Kafka's
    ``{"partition": p, "offset": o}`` as ``(p, int(o))`` (``kafka.identity_of``)."""
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, Mapping):
        from .kafka import identity_of

        kafka = identity_of(identifier)
        if kafka is not None:
            return kafka
        return tuple(sorted(identifier.items(), key=repr))
    if isinstance(identifier, Hashable):
        return identifier
    return repr(identifier)
