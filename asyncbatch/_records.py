"""The record views, re-exported: each lives beside its source's descriptor in
``asyncbatch/_sources/`` (one module per source).

A view holds a reference to the original record dict (``.raw``, never modified) and
decodes on first access: a handler that reads nothing costs nothing.
"""

from typing import TYPE_CHECKING, Any

from ._sources import Record

if TYPE_CHECKING:
    from ._sources import (
        DynamoDBRecord,
        FirehoseRecord,
        KafkaRecord,
        KinesisRecord,
        SQSRecord,
    )


def __getattr__(name: str) -> Any:
    """A source's view, its module loaded on first use (see ``_sources``)."""
    if name in __all__:
        from . import _sources

        return getattr(_sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DynamoDBRecord", "FirehoseRecord", "KafkaRecord", "KinesisRecord", "Record",
           "SQSRecord"]
