"""The summary: one SNS message per object, always within SNS's size limit."""

from __future__ import annotations

import json
from typing import Any, Optional

from ._backoff import Backoff
from ._results import ObjectResult

__all__ = ["MESSAGE_LIMIT", "message", "publish", "subject"]

#: The most bytes a summary message takes (SNS refuses messages over 256 KiB, message
#: attributes and subject included).
MESSAGE_LIMIT = 200 * 1024


def subject(result: ObjectResult) -> str:
    """An SNS subject: ASCII, one line, under 100 characters."""
    name = result.key.rsplit("/", 1)[-1]
    text = f"CSV import {result.status}: {name} ({result.rows_written}/{result.rows_read} rows)"
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:99]


def _encode(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)


def message(result: ObjectResult, table: str, limit: int = MESSAGE_LIMIT) -> str:
    """The JSON summary of ``result``, at most ``limit`` bytes of UTF-8: row errors are
    dropped, then long texts cut, until it fits (``"truncated": true`` says so)."""
    body = {"source": "asyncbatch.s3_import", "table": table, **result.to_dict()}
    text = _encode(body)
    if len(text.encode()) <= limit:
        return text
    body["truncated"] = True
    errors = body["first_errors"]
    while errors and len(text.encode()) > limit:
        errors.pop()
        text = _encode(body)
    share = limit // 8
    for field in ("error", "key", "destination_key", "errors_key", "unfinished"):
        if len(text.encode()) <= limit:
            break
        value = body.get(field)
        if isinstance(value, str) and len(value.encode()) > share:
            body[field] = value.encode()[:share].decode(errors="ignore") + "..."
        elif isinstance(value, dict):
            body[field] = {"step": value.get("step"), "error": None}
        text = _encode(body)
    if len(text.encode()) > limit:  # pragma: no cover - every field was cut above
        text = _encode({"source": "asyncbatch.s3_import", "table": table[:200],
                        "status": result.status, "truncated": True})
    return text


async def publish(sns: Any, topic_arn: str, result: ObjectResult, table: str,
                  backoff: Backoff) -> Optional[str]:
    """Publish the summary (retried on transient errors); return its message id."""
    response = await backoff.call(
        sns.publish, TopicArn=topic_arn, Subject=subject(result),
        Message=message(result, table),
        MessageAttributes={"status": {"DataType": "String", "StringValue": result.status}})
    message_id = response.get("MessageId")
    return str(message_id) if message_id is not None else None
