"""Moved: the event builders live in ``asyncbatch.testing._events`` (built from the source
descriptors). This shim stays until every test imports from there."""

from asyncbatch.testing._events import (
    SOURCE_NAMES as SOURCES,
)
from asyncbatch.testing._events import (
    ddb_record,
    key_of,
    kinesis_record,
    make_event,
    position,
    sqs_record,
)

__all__ = ["SOURCES", "ddb_record", "key_of", "kinesis_record", "make_event", "position",
           "sqs_record"]
