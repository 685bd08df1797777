"""Amazon DynamoDB Streams.

- Records: ``event["Records"]``, ``eventSource`` ``"aws:dynamodb"``; one batch comes from
  one shard.
- Identifier: ``dynamodb.SequenceNumber``, a decimal string compared as an integer.
- Ordering key: the item's primary key (``dynamodb.Keys``), canonicalised so that
  attribute order and number spelling do not matter (``ordering="key"``, the default);
  ``ordering="partition"`` runs the whole shard batch as one lane.
- ``model=`` validates the new image (the old one for ``REMOVE``) as plain Python values.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from itertools import repeat
from operator import itemgetter
from typing import Any, Optional

from .._errors import InvalidEventError, RecordDecodeError
from ._base import _EMPTY, EventType, Plan, Record, Source, bad, stream_plan
from .dynamodb_json import DynamoDBJSONError, canonical_key, deserialize_item, serialize_item

__all__ = ["DYNAMODB", "DynamoDBRecord", "DynamoDBSource"]

STREAM_ARN = ("arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/"
              "2024-01-01T00:00:00.000")
SEQUENCE_BASE = 100_000_000_000_000_000_000  # 21 digits, as DynamoDB's


class DynamoDBRecord(Record):
    """A DynamoDB Streams record; images are plain Python values (numbers as Decimal)."""

    __slots__ = ()

    @property
    def _ddb(self) -> Mapping[str, Any]:
        return self.raw.get("dynamodb") or _EMPTY

    @property
    def identifier(self) -> str:
        return self.raw["dynamodb"]["SequenceNumber"]  # type: ignore[no-any-return]

    @property
    def sequence_number(self) -> str:
        return self.identifier

    @property
    def event_name(self) -> Optional[str]:
        """``INSERT``, ``MODIFY`` or ``REMOVE``."""
        return self.raw.get("eventName")

    def _image(self, name: str) -> Optional[dict[str, Any]]:
        image = self._ddb.get(name)
        if image is None:
            return None
        try:
            return deserialize_item(image, f"dynamodb.{name}")
        except DynamoDBJSONError as exc:
            raise RecordDecodeError(
                f"record {self.identifier}: {exc}", identifier=self.identifier
            ) from exc

    @property
    def keys(self) -> dict[str, Any]:
        return self._image("Keys") or {}

    @property
    def new_image(self) -> Optional[dict[str, Any]]:
        return self._image("NewImage")

    @property
    def old_image(self) -> Optional[dict[str, Any]]:
        return self._image("OldImage")

    @property
    def ordering_key(self) -> Optional[Hashable]:
        return canonical_key(self._ddb.get("Keys") or _EMPTY)


_dynamodb = itemgetter("dynamodb")
_sequence = itemgetter("SequenceNumber")


class DynamoDBSource(Source):
    event_type = EventType.DYNAMODB_STREAMS
    record_fields = frozenset({"dynamodb"})
    powertools_record_model = "DynamoDBStreamRecordModel"
    event_sources = ("aws:dynamodb",)
    view = DynamoDBRecord
    identifier_path = "dynamodb.SequenceNumber"
    orderings = ("key", "partition")

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["dynamodb"]["SequenceNumber"]

    def ordering_key(self, raw: Mapping[str, Any]) -> tuple[tuple[str, str, Any], ...]:
        return canonical_key(raw["dynamodb"].get("Keys") or _EMPTY)

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        by_key = self.check_ordering(ordering) == "key"
        try:
            inner = list(map(_dynamodb, records))
            ids = list(map(_sequence, inner))
            sources = set(map(dict.get, records, repeat("eventSource"), repeat("aws:dynamodb")))
            fast = sources == {"aws:dynamodb"} and set(map(type, inner)) == {dict}
        except (KeyError, TypeError):
            fast = False
        if not fast:
            self.check_records(records)
            inner, ids = [], []
            for index, raw in enumerate(records):
                body = raw.get("dynamodb")
                if not isinstance(body, Mapping):
                    raise bad(index, "has no dynamodb.SequenceNumber (its itemIdentifier)")
                ident = body.get("SequenceNumber")
                if not isinstance(ident, str) or not ident:
                    raise bad(index, "has no dynamodb.SequenceNumber (its itemIdentifier)")
                inner.append(body)
                ids.append(ident)
        keys = [self._key(body, index) for index, body in enumerate(inner)] if by_key else None
        return stream_plan(ids, self.identifier_path, keys)

    def key_text(self, raw: Mapping[str, Any]) -> Optional[str]:
        """``pk=S:user-1,sk=N:5``: the canonical primary key, attribute by attribute."""
        key = self.ordering_key(raw)
        return ",".join(f"{name}={tag}:{value}" for name, tag, value in key) or None

    @staticmethod
    def _key(body: Mapping[str, Any], index: int) -> Hashable:
        keys = body.get("Keys")
        if not isinstance(keys, Mapping) or not keys:
            raise bad(index, "has no dynamodb.Keys")
        try:
            return canonical_key(keys)
        except DynamoDBJSONError as exc:
            raise InvalidEventError(f"Records[{index}]: {exc}", index=index) from None

    def model_input(self, view: Any) -> tuple[Any, bool]:
        image = view.old_image if view.event_name == "REMOVE" else view.new_image
        return image if image is not None else {}, False

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      event_name: str = "MODIFY", stream_arn: str = STREAM_ARN,
                      **options: Any) -> dict[str, Any]:
        """``key``: the item's primary key as plain values (a str is the ``pk``);
        ``payload``: the rest of the item (plain values), in the new and old images as
        ``event_name`` says."""
        if key is None:
            key = f"item-{index}"
        plain_keys = key if isinstance(key, Mapping) else {"pk": key}
        keys = serialize_item(plain_keys)
        image = {**keys, **serialize_item({"n": index} if payload is None else payload)}
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": 1_700_000_000 + index,
            "Keys": keys,
            "SequenceNumber": str(SEQUENCE_BASE + index),
            "SizeBytes": 26 + len(repr(image)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if event_name != "REMOVE":
            body["NewImage"] = image
        if event_name != "INSERT":
            body["OldImage"] = image
        return {
            "eventID": f"{index:08x}c4ca4238a0b923820dcc509a6f75849b",
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": body,
            "eventSourceARN": stream_arn,
        }


DYNAMODB = DynamoDBSource()
