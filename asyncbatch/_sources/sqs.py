"""Amazon SQS: standard and FIFO queues.

- Records: ``event["Records"]``, ``eventSource`` ``"aws:sqs"``.
- Identifier: ``messageId`` (a non-empty string).
- FIFO when, and only when, the queue ARN ends in ``.fifo``: records of one
  ``MessageGroupId`` run one at a time in event order. A standard queue may carry
  ``MessageGroupId`` too (SQS fair queues: a tenant id, no order): its records stay
  independent.
- ``model=`` parses the body as JSON.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from itertools import repeat
from operator import itemgetter
from typing import Any, Optional

from .._errors import safe_repr
from ._base import (
    _EMPTY,
    EventType,
    FailureMode,
    Plan,
    Record,
    Source,
    bad,
    heads_of,
    lane_heads,
    payload_text,
    slices,
)

__all__ = ["SQS", "SQSRecord", "SQSSource"]

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
FIFO_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders.fifo"


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
    def is_fifo(self) -> bool:
        """Whether the message came from a FIFO queue (its ARN ends in ``.fifo``)."""
        return is_fifo_arn(self.raw.get("eventSourceARN"))

    @property
    def ordering_key(self) -> Optional[Hashable]:
        return self.message_group_id if self.is_fifo else None


def is_fifo_arn(arn: Any) -> bool:
    """A FIFO queue's ARN (or URL) ends in ``.fifo``; nothing else makes a queue FIFO."""
    return isinstance(arn, str) and arn.endswith(".fifo")


_message_id = itemgetter("messageId")
_attributes = itemgetter("attributes")
_group_id = itemgetter("MessageGroupId")


class SQSSource(Source):
    event_type = EventType.SQS
    record_fields = frozenset({"messageId", "body"})
    powertools_record_model = "SqsRecordModel"
    event_sources = ("aws:sqs",)
    view = SQSRecord
    identifier_path = "messageId"
    envelopes = True  # an SNS notification or an EventBridge event, delivered through SQS

    def identifier(self, raw: Mapping[str, Any]) -> Any:
        return raw["messageId"]

    def ordering_key(self, raw: Mapping[str, Any]) -> Optional[Hashable]:
        if not is_fifo_arn(raw.get("eventSourceARN")):
            return None
        attributes = raw.get("attributes")
        return attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None

    def plan(self, records: list[Any], fifo_stop_batch: bool = False, *,
             ordering: Optional[str] = None) -> Plan:
        self.check_ordering(ordering)
        plan = self._plan_fast(records, fifo_stop_batch)
        if plan is not None:
            return plan
        ids = self._identifiers(records)
        n = len(records)
        if not (n and is_fifo_arn(records[0].get("eventSourceARN"))):
            return Plan(n, None, FailureMode.INDEPENDENT, identifiers=ids)
        groups = self._groups(records)
        mode = FailureMode.STOP_ALL if fifo_stop_batch else FailureMode.SKIP_LANE
        heads, width = lane_heads(groups)
        return Plan(n, None, mode, identifiers=ids, heads=heads, width=width)

    def _plan_fast(self, records: list[Any], fifo_stop_batch: bool) -> Optional[Plan]:
        """The common case in a few C-speed passes per slice of the batch (every record
        a dict of this source with a non-empty string ``messageId``, and in a FIFO queue
        a non-empty string ``MessageGroupId``), or ``None``: the batch is walked, which
        names the first bad record."""
        n = len(records)
        ids: list[Any] = []
        heads: list[int] = []
        first: dict[Hashable, int] = {}
        try:
            fifo = bool(n) and is_fifo_arn(records[0].get("eventSourceARN"))
            for start, part in slices(records):
                chunk = list(map(_message_id, part))
                sources = set(map(dict.get, part, repeat("eventSource"), repeat("aws:sqs")))
                if sources != {"aws:sqs"} or set(map(type, chunk)) != {str} \
                        or not all(chunk):
                    return None
                ids += chunk
                if fifo:
                    groups = list(map(_group_id, map(_attributes, part)))
                    if set(map(type, groups)) != {str} or not all(groups):
                        return None
                    heads += heads_of(groups, first, start)
        except (KeyError, TypeError, AttributeError):
            return None
        if not fifo:
            return Plan(n, None, FailureMode.INDEPENDENT, identifiers=ids)
        mode = FailureMode.STOP_ALL if fifo_stop_batch else FailureMode.SKIP_LANE
        return Plan(n, None, mode, identifiers=ids, heads=heads, width=len(first))

    def _identifiers(self, records: list[Any]) -> list[Any]:
        """Every record a dict of this source with a non-empty string ``messageId``,
        checked in a few C-speed passes; a batch that fails them is walked to name the
        first bad record."""
        try:
            ids = list(map(_message_id, records))
            sources = set(map(dict.get, records, repeat("eventSource"), repeat("aws:sqs")))
            if sources == {"aws:sqs"} and set(map(type, ids)) == {str} and all(ids):
                return ids
        except (KeyError, TypeError):
            pass
        self.check_records(records)
        for index, raw in enumerate(records):
            ident = raw.get("messageId")
            if not isinstance(ident, str) or not ident:
                raise bad(index, "has no messageId (its itemIdentifier)")
        return [raw["messageId"] for raw in records]  # pragma: no cover - Mapping, not dict

    def _groups(self, records: list[Any]) -> list[Any]:
        """Every FIFO record's ``MessageGroupId``, a non-empty string."""
        try:
            groups = [raw["attributes"]["MessageGroupId"] for raw in records]
            if set(map(type, groups)) == {str} and all(groups):
                return groups
        except (KeyError, TypeError):
            pass
        groups = []
        for index, raw in enumerate(records):
            attributes = raw.get("attributes")
            found = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) \
                else None
            if found is None:
                raise bad(index, "comes from a FIFO queue (its ARN ends in .fifo) but has no "
                                 "attributes.MessageGroupId")
            if not isinstance(found, str) or not found:
                raise bad(index, f"has attributes.MessageGroupId={safe_repr(found):.80}, not a "
                                 "non-empty string")
            groups.append(found)
        return groups

    def model_input(self, view: Any) -> tuple[Any, bool]:
        return view.body, True

    def sample_record(self, index: int, payload: Any = None, *, key: Any = None,
                      queue_arn: Optional[str] = None, **options: Any) -> dict[str, Any]:
        """``key`` is the ``MessageGroupId``: given, the record comes from a FIFO queue
        (unless ``queue_arn`` names a standard one: a fair queue). The ``messageId`` ends
        in ``index`` (12 decimal digits) unless ``message_id=`` is given."""
        import hashlib

        body = payload_text({"n": index} if payload is None else payload)
        arn = queue_arn or (FIFO_QUEUE_ARN if key is not None else QUEUE_ARN)
        sent = 1_700_000_000_000 + index
        attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": str(sent),
                      "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                      "ApproximateFirstReceiveTimestamp": str(sent + 1)}
        if key is not None:
            attributes["MessageGroupId"] = key
            if is_fifo_arn(arn):
                attributes["MessageDeduplicationId"] = f"dedup-{index}"
                attributes["SequenceNumber"] = str(18_849_496_460_467_696_128 + index)
        digest = hashlib.md5(body.encode("utf-8", "surrogateescape"),
                             usedforsecurity=False).hexdigest()
        return {
            "messageId": options.get("message_id") or f"059f36b4-87a3-44ab-83d2-{index:012d}",
            "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{index:010d}==",
            "body": body,
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": digest,
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": "us-east-1",
        }


SQS = SQSSource()
