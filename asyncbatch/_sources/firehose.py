"""Amazon Data Firehose: a transformation invocation (Direct PUT, Kinesis or MSK source).

- Records: ``event["records"]``; the event holds ``deliveryStreamArn`` (how it is told
  apart), ``invocationId``, ``region`` and, for a Kinesis Data Streams or MSK source,
  ``sourceKinesisStreamArn`` / ``sourceMSKArn``. Each record has ``recordId``,
  ``approximateArrivalTimestamp`` (milliseconds) and its payload, base64: ``data``, or
  ``kafkaRecordValue`` for an MSK source; ``kinesisRecordMetadata`` / ``mskRecordMetadata``
  say where it came from.
- Identifier: ``recordId`` (a non-empty string). Records are independent.
- The response is Firehose's, not Lambda's: every ``recordId`` exactly once, in event
  order, as ``Ok`` (the transformed data), ``Dropped`` or ``ProcessingFailed`` (with the
  original data), never more than Lambda's 6 MB response limit: see
  ``firehose_response.py`` (loaded on the first response).
- What a handler returns is the transformed data: bytes as they are, str as UTF-8, any
  other value as compact JSON; ``None`` passes the record through unchanged;
  ``DROPPED`` drops it; ``FirehoseResult(data, partition_keys)`` adds dynamic
  partitioning keys.
- ``model=`` parses the base64-decoded payload as JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Hashable, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._errors import ConfigurationError, InvalidEventError
from ._base import EventType, FailureMode, Plan, Record, Source, payload_bytes

if TYPE_CHECKING:
    from .._core.report import BatchReport

__all__ = ["DROPPED", "FIREHOSE", "FirehoseRecord", "FirehoseResult", "FirehoseSource",
           "RecordId", "data_key", "encode_data"]

DELIVERY_STREAM_ARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders"
SOURCE_STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
SOURCE_MSK_ARN = ("arn:aws:kafka:us-east-1:123456789012:cluster/orders-cluster/"
                  "751d2973-a626-431c-9d4e-d7975eb44dd7-2")
# Record ids as Firehose writes them (62 digits); sample record i gets RECORD_BASE + i.
RECORD_BASE = 49640912821178817833517986466168945147170627572855734274
ORIGINS = ("direct_put", "kinesis", "msk")


class Dropped:
    """The type of ``asyncbatch.DROPPED``: one instance, which pickles as itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "asyncbatch.DROPPED"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return "DROPPED"  # this module's DROPPED


#: Return it from a Firehose handler to drop the record: it is answered ``Dropped`` and
#: Firehose delivers nothing for it (and counts it as processed).
DROPPED = Dropped()


class FirehoseResult:
    """A Firehose handler's result with dynamic partitioning keys:
    ``FirehoseResult(data, partition_keys={"customer": "c-1"})``.

    ``data`` is the transformed record (bytes, str as UTF-8, any other value as compact
    JSON; ``None``: the record's original data); ``partition_keys`` (str to str) go to
    the response as ``metadata.partitionKeys``, which a Firehose stream with dynamic
    partitioning reads (``!{partitionKeyFromLambda:customer}`` in its S3 prefix)."""

    __slots__ = ("data", "partition_keys")

    data: Any
    partition_keys: Optional[dict[str, str]]

    def __init__(self, data: Any, partition_keys: Optional[Mapping[str, str]] = None) -> None:
        if data is DROPPED:
            raise TypeError("FirehoseResult(DROPPED): return asyncbatch.DROPPED itself to "
                            "drop a record")
        keys: Optional[dict[str, str]] = None
        if partition_keys is not None:
            if not isinstance(partition_keys, Mapping):
                raise TypeError(f"partition_keys={partition_keys!r:.80}: give a mapping of "
                                "partition key names to str values, or None")
            keys = dict(partition_keys)
            for name, value in keys.items():
                if not isinstance(name, str) or not name or not isinstance(value, str):
                    raise TypeError(
                        f"partition_keys: {name!r:.40}: {value!r:.40}: Firehose takes "
                        "non-empty str names and str values (e.g. str(year))")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "partition_keys", keys)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"FirehoseResult is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not FirehoseResult:
            return NotImplemented
        return (self.data, self.partition_keys) == (other.data, other.partition_keys)

    __hash__ = None  # type: ignore[assignment]  # partition_keys is a dict

    def __reduce__(self) -> Any:
        return FirehoseResult, (self.data, self.partition_keys)

    def __repr__(self) -> str:
        return f"FirehoseResult(data={self.data!r}, partition_keys={self.partition_keys!r})"


def encode_data(value: Any) -> str:
    """Transformed data as Firehose takes it, base64 text: bytes as they are, str as
    UTF-8, any other value as compact JSON (UTF-8). ``TypeError`` / ``ValueError`` for a
    value none of these can hold."""
    import base64

    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
    else:
        import json

        try:
            raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                             allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"the handler returned {type(value).__name__} {value!r:.60}, which Firehose "
                f"data cannot hold ({exc}): return bytes, str, a JSON value, "
                "asyncbatch.DROPPED or asyncbatch.FirehoseResult(data, partition_keys)"
            ) from None
    return base64.b64encode(raw).decode("ascii")


def data_key(raw: Mapping[str, Any]) -> str:
    """Where a record's payload is: ``data``, or ``kafkaRecordValue`` (an MSK source);
    its response entry puts the transformed payload under the same name."""
    return "kafkaRecordValue" if "data" not in raw and "kafkaRecordValue" in raw else "data"


class RecordId(str):
    """A ``recordId`` as the event held it, carrying the record's payload as it arrived
    (``arrived``: the field's name and its base64 text): a record answered
    ``ProcessingFailed`` carries that, whatever a handler did to its record since."""

    arrived: tuple[str, Any]


def _arrived(ids: list[str], records: list[Any]) -> list[str]:
    """``ids`` as ``RecordId`` instances holding their records' payloads."""
    out: list[str] = []
    for ident, raw in zip(ids, records):
        key = data_key(raw)
        rid = RecordId(ident)
        rid.arrived = (key, raw.get(key, ""))
        out.append(rid)
    return out


class FirehoseRecord(Record):
    """A record of a Firehose transformation; ``data`` is the base64-decoded payload."""

    __slots__ = ("_data",)

    _data: bytes

    @property
    def identifier(self) -> str:
        return self.raw["recordId"]  # type: ignore[no-any-return]

    @property
    def record_id(self) -> str:
        return self.raw["recordId"]  # type: ignore[no-any-return]

    @property
    def data(self) -> bytes:
        """The payload (``data``, or an MSK source's ``kafkaRecordValue``), base64-decoded
        on first access; ``RecordDecodeError`` if it is not base64."""
        try:
            return self._data
        except AttributeError:  # not decoded yet (views are made without __init__)
            key = data_key(self.raw)
            data = self._data = self._b64(self.raw.get(key) or "", key)
            return data

    def json(self) -> Any:
        """The payload parsed as JSON; ``RecordDecodeError`` when it is not JSON."""
        return self._json(self.data, data_key(self.raw))

    @property
    def approximate_arrival_timestamp(self) -> Optional[int]:
        """When Firehose received the record, in milliseconds since the epoch."""
        return self.raw.get("approximateArrivalTimestamp")

    @property
    def kinesis_metadata(self) -> Optional[dict[str, Any]]:
        """A Kinesis Data Streams source's ``kinesisRecordMetadata`` (``shardId``,
        ``partitionKey``, ``sequenceNumber``, ...); ``None`` for other sources."""
        return self.raw.get("kinesisRecordMetadata")

    @property
    def msk_metadata(self) -> Optional[dict[str, Any]]:
        """An Amazon MSK source's ``mskRecordMetadata`` (``offset``, ``partitionId``,
        ...); ``None`` for other sources."""
        return self.raw.get("mskRecordMetadata")

    @property
    def event_source_arn(self) -> Optional[str]:
        return None  # the delivery stream's ARN is the event's, not the record's


_record_id = itemgetter("recordId")


class FirehoseSource(Source):
    event_type = EventType.FIREHOSE
    record_fields = frozenset({"recordId", "data"})
    powertools_record_model = "KinesisFirehoseRecord"
    event_sources = ()
    view = FirehoseRecord
    identifier_path = "recordId"

    @staticmethod
    def recognises(event: Mapping[str, Any]) -> bool:
        """A Firehose transformation event: ``deliveryStreamArn`` and ``records``."""
        return "deliveryStreamArn" in event and "records" in event

    def find(self, event: Mapping[str, Any]) -> list[Any]:
        records = event.get("records")
        if records is None and event.get("Records") == []:
            return []  # the empty batch every source accepts
        if records is None:
            raise InvalidEventError("the Firehose event has no 'records' list")
        if not isinstance(records, list):
            raise InvalidEventError(
                f"the Firehose event's 'records' is a {type(records).__name__}, not a list")
        return records[:]

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["recordId"]

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        if ordering is not None:
            raise ConfigurationError(
                f"ordering={ordering!r}: Firehose records are independent (each is answered "
                "on its own); leave it None")
        try:
            ids = list(map(_record_id, records))
            if not ids or (set(map(type, ids)) == {str} and all(ids)):
                return Plan(len(ids), None, FailureMode.INDEPENDENT,
                            identifiers=_arrived(ids, records))
        except (KeyError, TypeError, AttributeError):
            pass
        for index, raw in enumerate(records):
            if not isinstance(raw, Mapping):
                raise _bad(index, f"is a {type(raw).__name__}, not a mapping")
            ident = raw.get("recordId")
            if not isinstance(ident, str) or not ident:
                raise _bad(index, "has no recordId (the id its answer must carry)")
        raise AssertionError("unreachable: the loop above names the bad record")  # pragma: no cover

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.data, True

    def checked(self, call: Callable[[Any], Awaitable[Any]]
                ) -> Callable[[Any], Awaitable[Any]]:
        """The call, with its return value checked: one that Firehose data cannot hold
        fails its record (``TypeError``) instead of the response."""

        async def call_checked(record: Any) -> Any:
            result = await call(record)
            kind = type(result)
            if kind is bytes or kind is str or result is None or result is DROPPED:
                return result
            encode_data(result.data if kind is FirehoseResult else result)
            return result

        return call_checked

    def check_options(self, *, idempotency: Any = None, envelope: Any = None) -> None:
        super().check_options(envelope=envelope)
        if idempotency is not None:
            raise ConfigurationError(
                "idempotency= cannot serve a Firehose transformation: the transformed data "
                "is the response itself, so a record skipped because it ran before would "
                "have no data to return (and Firehose invokes again only when the previous "
                "invocation failed, keeping none of its output); remove idempotency=")

    def response(self, report: BatchReport) -> dict[str, Any]:
        """Firehose's ``{"records": [...]}``: see ``firehose_response.py``."""
        from .firehose_response import build

        return build(report)

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      origin: str = "direct_put", **options: Any) -> dict[str, Any]:
        """``origin``: ``"direct_put"``, ``"kinesis"`` (``key`` is the partition key) or
        ``"msk"`` (the payload in ``kafkaRecordValue``). The ``recordId`` is 62 digits
        ending in ``index``, unless ``record_id=`` is given."""
        import base64

        if origin not in ORIGINS:
            raise ValueError(f"origin={origin!r}: give one of {', '.join(ORIGINS)}")
        data = base64.b64encode(payload_bytes({"n": index} if payload is None else payload)
                                ).decode("ascii")
        arrived = 1_700_000_000_000 + index
        record: dict[str, Any] = {
            "recordId": options.get("record_id") or f"{RECORD_BASE + index}000000",
            "approximateArrivalTimestamp": arrived,
        }
        if origin == "kinesis":
            record["kinesisRecordMetadata"] = {
                "shardId": "shardId-000000000000",
                "partitionKey": f"key-{index}" if key is None else str(key),
                "approximateArrivalTimestamp": arrived,
                "sequenceNumber": str(49546986683135544286507457936321625675700192471156785154
                                      + index),
                "subsequenceNumber": 0,
            }
        if origin == "msk":
            record["mskRecordMetadata"] = {"offset": str(index), "partitionId": "0",
                                           "approximateArrivalTimestamp": arrived}
            record["kafkaRecordValue"] = data
        else:
            record["data"] = data
        return record

    def sample_event(self, records: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        """A transformation event of ``records``, with the source ARN their origin has."""
        event: dict[str, Any] = {"invocationId": "2b4d1ad9-2f48-94bd-a088-767c317e994a"}
        if any("kinesisRecordMetadata" in raw for raw in records):
            event["sourceKinesisStreamArn"] = SOURCE_STREAM_ARN
        if any("mskRecordMetadata" in raw for raw in records):
            event["sourceMSKArn"] = SOURCE_MSK_ARN
        event.update(deliveryStreamArn=DELIVERY_STREAM_ARN, region="us-east-1",
                     records=records)
        return event

    def ordering_key(self, raw: Mapping[str, Any]) -> Optional[Hashable]:
        return None


def _bad(index: int, message: str) -> InvalidEventError:
    return InvalidEventError(f"records[{index}] {message}", index=index)


FIREHOSE = FirehoseSource()
