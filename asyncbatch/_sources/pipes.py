"""EventBridge Pipes: a batch as a top-level JSON list of records.

A pipe whose source is an SQS queue, a Kinesis stream or a DynamoDB stream invokes a
Lambda target with the batch as a list of the source's own records (not under
``"Records"``), and reads ``batchItemFailures`` back as Lambda's event source mapping
does. So the list is read here, and then planned, run and answered by the records'
descriptor exactly as the same records under ``"Records"``. (Pipes flattens a Kinesis
record: the fields of ``kinesis`` are at its top level; the Kinesis descriptor reads both
shapes.)

- An empty list is a batch with nothing to do.
- The first record's ``eventSource`` names the source; a record of another source, a
  record that is not a mapping, or a source Pipes does not hand to Lambda in batches with
  partial failures is an ``InvalidEventError`` naming the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any, Optional

from .._errors import InvalidEventError
from ._base import EventType, Source
from .dynamodb import DYNAMODB
from .kinesis import KINESIS
from .sqs import SQS

__all__ = ["PIPE_SOURCES", "read_pipe_batch"]

#: the sources a pipe hands its Lambda target as a list, honouring batchItemFailures
PIPE_SOURCES: dict[EventType, Source] = {s.event_type: s for s in (SQS, KINESIS, DYNAMODB)}
_BY_NAME: dict[str, Source] = {s.event_source: s for s in PIPE_SOURCES.values()}
_NAMES = ", ".join(f"{s.event_type.value} ({s.event_source!r})" for s in PIPE_SOURCES.values())


def read_pipe_batch(batch: list[Any], event_type: Optional[EventType]
                    ) -> tuple[Source, list[Any]]:
    """The source of a pipe's batch and a new list of its records (a handler that edits
    the list does not change it); ``InvalidEventError`` names the record to blame."""
    if event_type is not None and event_type not in PIPE_SOURCES:
        raise InvalidEventError(
            f"the event is a list: an EventBridge Pipes batch of {_NAMES} records, but the "
            f"processor takes {event_type.value} events")
    records = batch[:]
    if not records:
        return PIPE_SOURCES[event_type or EventType.SQS], records
    expected = PIPE_SOURCES[event_type].event_source if event_type is not None else None
    try:  # the common case at C speed: dicts, all of one named source
        names = set(map(dict.get, records, repeat("eventSource"), repeat(expected)))
    except TypeError:
        names = set()
    if len(names) != 1 or (expected is not None and names != {expected}):
        _walk(records, expected)
    name = next(iter(names)) if len(names) == 1 else records[0].get("eventSource", expected)
    source = _BY_NAME.get(name) if isinstance(name, str) else None
    if source is None and ("Records" in records[0] or "records" in records[0]):
        raise _bad(0, "is a whole event (it has 'Records'), not a record: give one event "
                      "(a mapping), or a pipe's list of records")
    if source is None and name is None:
        raise InvalidEventError(
            "cannot tell the source of the pipe's batch: its first record has no "
            f"eventSource; pass event_type= to the processor (one of {_NAMES})", index=0)
    if source is None:
        raise InvalidEventError(
            f"cannot tell the source of the pipe's batch: its first record has "
            f"eventSource={name!r:.80}; a pipe hands a Lambda target a list of {_NAMES} "
            "records (and reads batchItemFailures back): asyncbatch takes those", index=0)
    return source, records


def _walk(records: list[Any], expected: Optional[str]) -> None:
    """Name the first record that is not a mapping of the batch's source."""
    first = records[0]
    if not isinstance(first, Mapping):
        raise _bad(0, f"is a {type(first).__name__}, not a record (a mapping)")
    name = first.get("eventSource", expected) if expected is None else expected
    for index, raw in enumerate(records):
        if not isinstance(raw, Mapping):
            raise _bad(index, f"is a {type(raw).__name__}, not a record (a mapping)")
        found = raw.get("eventSource", expected)
        if found != name:
            where = "the processor's event_type" if expected is not None else "record 0"
            raise _bad(index, f"comes from {found!r:.80} but {where} from {name!r}: a pipe's "
                              "batch holds records of one source")


def _bad(index: int, message: str) -> InvalidEventError:
    return InvalidEventError(f"record {index} of the pipe's batch (a top-level list) {message}",
                             index=index)
