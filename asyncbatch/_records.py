"""Light views over the records of a Lambda event.

A view holds a reference to the original record dict (``.raw``, never modified) and
decodes on first access: a handler that reads nothing costs nothing.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, Optional

from ._dynamodb import DynamoDBJSONError, canonical_key, deserialize_item
from ._errors import RecordDecodeError

__all__ = ["DynamoDBRecord", "KinesisRecord", "Record", "SQSRecord"]

_EMPTY: Mapping[str, Any] = {}


class Record:
    """Base of the record views. ``raw`` is the record exactly as the event holds it."""

    __slots__ = ("raw",)

    raw: dict[str, Any]

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def identifier(self) -> str:
        """The ``itemIdentifier`` Lambda expects in ``batchItemFailures``."""
        raise NotImplementedError

    @property
    def ordering_key(self) -> Optional[object]:
        """Records with equal keys run one at a time, in order; ``None``: independent."""
        return None

    @property
    def event_source_arn(self) -> Optional[str]:
        return self.raw.get("eventSourceARN")

    def _json(self, text: str | bytes, what: str) -> Any:
        import json

        try:
            return json.loads(text)
        except (ValueError, TypeError) as exc:
            raise RecordDecodeError(
                f"record {self.identifier}: {what} is not valid JSON ({exc})",
                identifier=self.identifier,
            ) from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identifier={self.identifier!r})"


class SQSRecord(Record):
    """An SQS message. FIFO messages carry ``message_group_id``."""

    __slots__ = ()

    @property
    def identifier(self) -> str:
        return self.raw["messageId"]  # type: ignore[no-any-return]

    @property
    def message_id(self) -> str:
        return self.raw["messageId"]  # type: ignore[no-any-return]

    @property
    def body(self) -> str:
        return self.raw.get("body") or ""

    def json(self) -> Any:
        """The body parsed as JSON; ``RecordDecodeError`` when it is not JSON."""
        return self._json(self.body, "body")

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.raw.get("attributes") or _EMPTY

    @property
    def message_attributes(self) -> Mapping[str, Any]:
        return self.raw.get("messageAttributes") or _EMPTY

    @property
    def message_group_id(self) -> Optional[str]:
        return self.attributes.get("MessageGroupId")

    @property
    def receive_count(self) -> int:
        """``ApproximateReceiveCount``: 1 on first delivery."""
        try:
            return int(self.attributes.get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError):
            return 1

    @property
    def ordering_key(self) -> Optional[object]:
        return self.message_group_id


class KinesisRecord(Record):
    """A Kinesis Data Streams record; ``data`` is the base64-decoded payload."""

    __slots__ = ("_data",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._data: Optional[bytes] = None

    @property
    def _kinesis(self) -> Mapping[str, Any]:
        return self.raw.get("kinesis") or _EMPTY

    @property
    def identifier(self) -> str:
        return self.raw["kinesis"]["sequenceNumber"]  # type: ignore[no-any-return]

    @property
    def sequence_number(self) -> str:
        return self.identifier

    @property
    def partition_key(self) -> str:
        return self._kinesis.get("partitionKey", "")  # type: ignore[no-any-return]

    @property
    def ordering_key(self) -> Optional[object]:
        return self.partition_key

    @property
    def approximate_arrival_timestamp(self) -> Optional[float]:
        return self._kinesis.get("approximateArrivalTimestamp")

    @property
    def data(self) -> bytes:
        """The payload, base64-decoded on first access; ``RecordDecodeError`` if invalid."""
        if self._data is None:
            import base64

            try:
                self._data = base64.b64decode(self._kinesis.get("data", ""), validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise RecordDecodeError(
                    f"record {self.identifier}: kinesis.data is not valid base64 ({exc})",
                    identifier=self.identifier,
                ) from exc
        return self._data

    def json(self) -> Any:
        return self._json(self.data, "kinesis.data")


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
    def ordering_key(self) -> Optional[object]:
        return canonical_key(self._ddb.get("Keys") or _EMPTY)
