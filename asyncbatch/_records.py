"""The record views, re-exported: each lives beside its source's descriptor in
``asyncbatch/_sources/`` (one module per source).

A view holds a reference to the original record dict (``.raw``, never modified) and
decodes on first access: a handler that reads nothing costs nothing.
"""

from ._sources import (
    DynamoDBRecord,
    FirehoseRecord,
    KafkaRecord,
    KinesisRecord,
    Record,
    SQSRecord,
)

__all__ = ["DynamoDBRecord", "FirehoseRecord", "KafkaRecord", "KinesisRecord", "Record",
           "SQSRecord"]
