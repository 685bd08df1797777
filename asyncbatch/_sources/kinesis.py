"""Amazon Kinesis Data Streams.

- Records: ``event["Records"]``, ``eventSource`` ``"aws:kinesis"``; one batch comes from
  one shard. An EventBridge pipe flattens a record (the fields of ``kinesis`` at its top
  level): both shapes are read alike.
- Identifier: ``kinesis.sequenceNumber``, a decimal string compared as an integer.
- Ordering key: ``kinesis.partitionKey`` (``ordering="key"``, the default);
  ``ordering="partition"`` runs the whole shard batch as one lane.
- ``model=`` parses the base64-decoded data as JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Hashable, Mapping
from itertools import repeat
from operator import itemgetter
from typing import Any, Optional

from ._base import (
    _EMPTY,
    EventType,
    Plan,
    Record,
    Source,
    StreamPlanner,
    bad,
    payload_bytes,
    slices,
    stream_plan,
)

__all__ = ["KINESIS", "KinesisRecord", "KinesisSource"]

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
# A realistic sequence number (56 decimal digits); sample record i gets SEQUENCE_BASE + i.
SEQUENCE_BASE = 49590338271490256608559692538361571095921575989136588898


class KinesisRecord(Record):
    """A Kinesis Data Streams record; ``data`` is the base64-decoded payload."""

    __slots__ = ("_data",)

    _data: bytes

    @property
    def _kinesis(self) -> Mapping[str, Any]:
        raw = self.raw
        inner = raw.get("kinesis")
        if inner is None:
            return raw if "sequenceNumber" in raw else _EMPTY  # an EventBridge pipe's
        return inner or _EMPTY

    @property
    def identifier(self) -> str:
        return self._kinesis["sequenceNumber"]  # type: ignore[no-any-return]

    @property
    def sequence_number(self) -> str:
        return self.identifier

    @property
    def partition_key(self) -> str:
        return self._kinesis.get("partitionKey", "")  # type: ignore[no-any-return]

    @property
    def ordering_key(self) -> Optional[Hashable]:
        return self.partition_key

    @property
    def approximate_arrival_timestamp(self) -> Optional[float]:
        return self._kinesis.get("approximateArrivalTimestamp")

    @property
    def data(self) -> bytes:
        """The payload, base64-decoded on first access; ``RecordDecodeError`` if invalid."""
        try:
            return self._data
        except AttributeError:  # not decoded yet (views are made without __init__)
            data = self._data = self._b64(self._kinesis.get("data", ""), "kinesis.data")
            return data

    def json(self) -> Any:
        return self._json(self.data, "kinesis.data")


_kinesis = itemgetter("kinesis")


def _inner(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record's ``kinesis`` fields: nested as Lambda sends them, or at the top level
    of a record an EventBridge pipe flattened."""
    inner = raw.get("kinesis")
    return raw if inner is None else inner


_sequence = itemgetter("sequenceNumber")
_partition_key = itemgetter("partitionKey")


class KinesisSource(Source):
    event_type = EventType.KINESIS
    record_fields = frozenset({"kinesis"})
    powertools_record_model = "KinesisDataStreamRecord"
    event_sources = ("aws:kinesis",)
    view = KinesisRecord
    identifier_path = "kinesis.sequenceNumber"
    orderings = ("key", "partition")

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return _inner(raw)["sequenceNumber"]

    def ordering_key(self, raw: Mapping[str, Any]) -> Optional[Hashable]:
        return _inner(raw)["partitionKey"]  # type: ignore[no-any-return]

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        by_key = self.check_ordering(ordering) == "key"
        for shape in (_kinesis, None):  # as Lambda sends them, then as a pipe does
            plan = self._plan_fast(records, shape, by_key)
            if plan is not None:
                return plan
        self.check_records(records)
        ids, key_list = [], []
        for index, raw in enumerate(records):
            inner = raw.get("kinesis")
            if inner is None and "sequenceNumber" in raw:
                inner = raw  # flattened by an EventBridge pipe
            if not isinstance(inner, Mapping):
                raise bad(index, "has no kinesis.sequenceNumber (its itemIdentifier)")
            ident = inner.get("sequenceNumber")
            if not isinstance(ident, str) or not ident:
                raise bad(index, "has no kinesis.sequenceNumber (its itemIdentifier)")
            key = inner.get("partitionKey")
            if by_key and not isinstance(key, str):
                raise bad(index, "has no kinesis.partitionKey")
            ids.append(ident)
            key_list.append(key)
        return stream_plan(ids, self.identifier_path, key_list if by_key else None)

    def _plan_fast(self, records: list[Any], shape: Optional[Callable[[Any], Any]],
                   by_key: bool) -> Optional[Plan]:
        """The common case in a few C-speed passes per slice of the batch (``shape``:
        how a record holds its fields), or ``None``: the batch is walked, which names
        the first bad record."""
        planner = StreamPlanner(self.identifier_path, by_key)
        try:
            for _, part in slices(records):
                inner = part if shape is None else list(map(shape, part))
                ids = list(map(_sequence, inner))
                keys = list(map(_partition_key, inner)) if by_key else None
                sources = set(map(dict.get, part, repeat("eventSource"),
                                  repeat("aws:kinesis")))
                if sources != {"aws:kinesis"} or (keys is not None
                                                  and set(map(type, keys)) != {str}):
                    return None
                planner.feed(ids, keys)
        except (KeyError, TypeError):
            return None
        return planner.plan()

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.data, True

    def pipes_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """As an EventBridge pipe hands it on: the fields of ``kinesis`` at the top level."""
        import copy

        flat = dict(copy.deepcopy(raw.get("kinesis") or {}))
        flat.update((k, copy.deepcopy(v)) for k, v in raw.items() if k != "kinesis")
        return flat

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      stream_arn: str = STREAM_ARN, shard: str = "shardId-000000000006",
                      **options: Any) -> dict[str, Any]:
        data = payload_bytes({"n": index} if payload is None else payload)
        sequence = SEQUENCE_BASE + index
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": f"key-{index}" if key is None else key,
                "sequenceNumber": str(sequence),
                "data": base64.b64encode(data).decode("ascii"),
                "approximateArrivalTimestamp": 1_700_000_000.0 + index / 1000,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "us-east-1",
            "eventSourceARN": stream_arn,
        }


KINESIS = KinesisSource()
