"""Firehose's response to a transformation invocation, within Lambda's 6 MB.

Firehose reads ``{"records": [{"recordId", "result", "data", "metadata"?}, ...]}``: every
``recordId`` it sent, exactly once, or the whole invocation fails. ``result`` is ``Ok``
(``data``: the transformed record, base64), ``Dropped`` or ``ProcessingFailed`` (``data``:
the original record, which Firehose writes to the ``processing-failed`` prefix of the
stream's S3 bucket). For an MSK source the payload goes under ``kafkaRecordValue``
instead of ``data``, as it came.

Lambda refuses a response over 6 MB (6,291,456 bytes); Firehose then counts the
invocation as failed. So the size is counted as the Lambda runtime encodes it (``json``
with its default separators and ASCII escapes: an upper bound of any other encoder) and
the response is built to fit:

1. Every record is first counted at its *fallback*: ``ProcessingFailed`` with its
   original data (``Dropped``, with no data, for a record the handler dropped). That
   always fits a response to a request Firehose could send: a fallback entry is no
   larger than the record was in the request (the same id and data, a shorter field
   than ``approximateArrivalTimestamp``), and the request itself was within 6 MB.
2. A transformed record then replaces its fallback: first every record whose ``Ok`` entry
   is no larger than its fallback (that only frees room), then the others in event
   order while they fit. A transformed record that does not fit stays ``ProcessingFailed``
   with its original data; the records after it that fit are still ``Ok``.
3. If even the fallbacks exceed 6 MB (an event Firehose never sends: records carrying
   less than their own size in the request), ``ResponseTooLargeError`` is raised: the
   function fails, Firehose retries the invocation and then writes its own copy of
   every record to ``processing-failed``. Answering some records without their original
   data would lose them instead.

A ``recordId`` that the event repeats is answered once, at its first position:
``ProcessingFailed`` if any of its records did not succeed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from .._errors import ResponseTooLargeError
from .firehose import DROPPED, FirehoseResult, RecordId, data_key, encode_data

if TYPE_CHECKING:
    from .._core.report import BatchReport

__all__ = ["LIMIT", "build", "response_size"]

#: Lambda's limit on a synchronous invocation's response: 6 MB (6,291,456 bytes).
LIMIT = 6 * 1024 * 1024

# The size as the Lambda runtime's json.dumps writes it: ", " and ": ", ASCII escapes.
_dumps = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=True).encode
_OK, _DROPPED, _FAILED = "Ok", "Dropped", "ProcessingFailed"


def response_size(response: Any) -> int:
    """The bytes of ``response`` as the Lambda runtime encodes it (``json.dumps``)."""
    return len(_dumps(response))


def _entry(ident: Any, result: str, key: str, data: Any,
           partition_keys: Optional[dict[str, str]] = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"recordId": ident, "result": result, key: data}
    if partition_keys:
        entry["metadata"] = {"partitionKeys": partition_keys}
    return entry


def _answers(status: str, ident: Any, raw: Any, result: Any
             ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A record's entries: the one it asks for, its fallback (what it is answered when
    that does not fit) and its failure (``ProcessingFailed`` with the original data)."""
    if type(ident) is RecordId:  # the payload as it arrived, whatever a handler did since
        key, original = ident.arrived
    else:
        key = data_key(raw)
        original = raw.get(key, "")
    ident = str(ident)
    failed = _entry(ident, _FAILED, key, original)
    if status == "sunk" or (status == "succeeded" and result is DROPPED):
        # dropped by the handler, or taken by the failure sink (handled elsewhere):
        # Firehose delivers nothing for it and counts it as processed
        dropped = _entry(ident, _DROPPED, key, "")
        return dropped, dropped, failed
    if status != "succeeded":
        return failed, failed, failed
    keys = None
    if type(result) is FirehoseResult:
        result, keys = result.data, result.partition_keys
    try:
        data = failed[key] if result is None else encode_data(result)
    except (TypeError, ValueError) as exc:  # checked as it returned; kept as a net
        _logger().warning("asyncbatch Firehose record %s: %s; answered ProcessingFailed",
                          ident, exc)
        return failed, failed, failed
    return _entry(ident, _OK, key, data, keys), failed, failed


def build(report: BatchReport) -> dict[str, Any]:
    """The response to the invocation ``report`` ran: see the module docstring."""
    entries: list[dict[str, Any]] = []
    fallbacks: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    first: dict[Any, int] = {}  # recordId -> its entry's position
    for status, ident, raw, result in report.rows():
        wanted, fallback, failed = _answers(status, ident, raw, result)
        position = first.get(ident)
        if position is None:
            first[ident] = len(entries)
            entries.append(wanted)
            fallbacks.append(fallback)
            failures.append(failed)
        elif wanted is failed:  # a repeated recordId: answered once, failed if any failed
            entries[position] = fallbacks[position] = failures[position]
    return {"records": _fit(entries, fallbacks)}


def _fit(entries: list[dict[str, Any]], fallbacks: list[dict[str, Any]]
         ) -> list[dict[str, Any]]:
    """``entries``, each ``Ok`` that does not fit within ``LIMIT`` replaced by its
    fallback; ``ResponseTooLargeError`` when even the fallbacks do not fit."""
    count = len(entries)
    envelope = len(_dumps({"records": []})) + 2 * max(count - 1, 0)  # ", " between entries
    sizes = [len(_dumps(entry)) for entry in fallbacks]
    floor = envelope + sum(sizes)
    if floor > LIMIT:
        raise ResponseTooLargeError(
            f"a Firehose response holding the original data of the {count} records needs "
            f"{floor:,} bytes, more than Lambda's {LIMIT:,}: the invocation fails so that "
            "Firehose keeps every record (it retries, then writes them to processing-failed)",
            size=floor, limit=LIMIT)
    budget = LIMIT - floor
    extra: dict[int, int] = {}
    for index, entry in enumerate(entries):
        if entry is not fallbacks[index]:
            grows = len(_dumps(entry)) - sizes[index]
            if grows <= 0:
                budget -= grows  # smaller than its fallback: always taken, frees room
            else:
                extra[index] = grows
    out = entries
    cut: list[Any] = []
    for index, grows in extra.items():  # in event order
        if grows <= budget:
            budget -= grows
        else:
            out[index] = fallbacks[index]
            cut.append(entries[index]["recordId"])
    if cut:
        _logger().warning(
            "asyncbatch Firehose batch: %d transformed records did not fit Lambda's %d-byte "
            "response and are answered ProcessingFailed with their original data (first: "
            "%s)", len(cut), LIMIT, ", ".join(map(str, cut[:5])),
            extra={"asyncbatch": {"event_type": "Firehose", "oversize": len(cut)}})
    return out


def _logger() -> Any:
    import logging

    return logging.getLogger("asyncbatch")
