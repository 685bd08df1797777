"""Events of the other batch shapes: EventBridge Pipes batches.

Built, as the other factories, from the descriptors' own samples (``Source.pipes_record``):

    >>> from asyncbatch.testing import pipes_event
    >>> batch = pipes_event(kinesis_event(("customer-1", {"clicks": 3})))
"""

from __future__ import annotations

from typing import Any

from .._sources import read_event
from .._sources.pipes import PIPE_SOURCES

__all__ = ["pipes_event"]


def pipes_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch an EventBridge pipe hands its Lambda target for the records of ``event``
    (from ``sqs_event``, ``kinesis_event`` or ``dynamodb_event``): a top-level list of the
    records (new copies), Kinesis records flattened as Pipes flattens them."""
    source, records, _ = read_event(event, None)
    if records and source.event_type not in PIPE_SOURCES:
        names = ", ".join(t.value for t in PIPE_SOURCES)
        raise ValueError(f"a pipe hands a Lambda target {names} records as a list, not "
                         f"{source.event_type.value} ones")
    return [source.pipes_record(raw) for raw in records]
