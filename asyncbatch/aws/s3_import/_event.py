"""The S3 event notification: which objects to import."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote_plus, unquote_plus

from ..._errors import InvalidEventError

__all__ = ["S3Object", "s3_objects"]


@dataclass(frozen=True)
class S3Object:
    """One object of an S3 event notification, its key URL-decoded."""

    __slots__ = ("bucket", "event_name", "key", "size", "version_id")

    bucket: str
    key: str
    version_id: Optional[str]
    size: Optional[int]
    event_name: str


def s3_objects(event: Any) -> list[S3Object]:
    """The objects of an S3 event notification (``Records[].s3``), keys decoded
    (S3 URL-encodes them, a space as ``+``). An ``s3:TestEvent`` has none.

    Raises ``InvalidEventError`` naming the problem for anything else."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"an S3 event must be a mapping, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError("an S3 event needs a 'Records' list")
    objects = []
    for index, record in enumerate(records):
        try:
            source = record.get("eventSource", "aws:s3")
            if source != "aws:s3":
                raise InvalidEventError(
                    f"Records[{index}] comes from {source!r}, not from S3", index=index)
            s3 = record["s3"]
            bucket = s3["bucket"]["name"]
            obj = s3["object"]
            raw_key = obj["key"]
        except (KeyError, TypeError, AttributeError):
            raise InvalidEventError(
                f"Records[{index}] is not an S3 notification: it needs "
                "s3.bucket.name and s3.object.key", index=index) from None
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket:
            raise InvalidEventError(
                f"Records[{index}]: s3.bucket.name and s3.object.key must be strings",
                index=index)
        size = obj.get("size")
        objects.append(S3Object(
            bucket=bucket,
            key=unquote_plus(raw_key),
            version_id=obj.get("versionId") or None,
            size=size if isinstance(size, int) else None,
            event_name=str(record.get("eventName", "ObjectCreated:Put")),
        ))
    return objects


def object_event(bucket: str, key: str) -> dict[str, Any]:
    """The S3 notification of one created object (its key as stored)."""
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket},
                                "object": {"key": quote_plus(key, safe="/")}}}]}
