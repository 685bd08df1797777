"""Writing: chunks of 25 rows to DynamoDB with ``BatchWriteItem``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import anyio

from ..._errors import exception_text
from .._client import error_code
from ._backoff import Backoff
from ._rows import Chunk, Entry, item_key

__all__ = ["Writer"]


class Writer:
    """Writes chunks; ``UnprocessedItems`` and throttling are retried (``backoff``).

    A chunk waits for the chunks in flight that share one of its keys, so that the later
    row always wins. An item DynamoDB refuses (``ValidationException``: too large, a bad
    number...) is found by writing the chunk one item at a time, and only its row is
    rejected. Rows still unprocessed when the retry budget is spent are rejected; any
    other error is raised (fatal for the object)."""

    def __init__(self, clients: Any, table: str, key_attributes: tuple[str, ...],
                 backoff: Backoff, reject: Callable[[Entry, str], None],
                 inflight: dict[Any, Chunk]) -> None:
        self.dynamodb = clients.dynamodb
        self.table = table
        self.key_attributes = key_attributes
        self.backoff = backoff
        self.reject = reject
        self.inflight = inflight
        self.written = 0

    async def write(self, chunk: Chunk) -> None:
        try:
            for earlier in chunk.waits:
                await earlier.wait()
            chunk.waits = []
            await self._write(chunk)
        finally:
            chunk.close(self.inflight)

    async def _write(self, chunk: Chunk) -> None:
        table = self.table
        pending = chunk.entries
        attempt = 0
        while pending:
            requests = [{"PutRequest": {"Item": entry.item}} for entry in pending.values()]
            try:
                response = await self.dynamodb.batch_write_item(
                    RequestItems={table: requests})
            except Exception as exc:
                if error_code(exc) == "ValidationException":
                    # One of the items is refused: find which, one by one.
                    await self._write_one_by_one(pending)
                    return
                attempt += 1
                await self.backoff.sleep(attempt, exc)
                continue
            unprocessed = (response.get("UnprocessedItems") or {}).get(table) or []
            self.written += len(pending) - len(unprocessed)
            if not unprocessed:
                return
            remaining: dict[Any, Entry] = {}
            for request in unprocessed:
                key = item_key(request["PutRequest"]["Item"], self.key_attributes)
                remaining[key] = pending[key]
            pending = remaining
            attempt += 1
            delay = self.backoff.wait(attempt)
            if delay is None:
                for entry in pending.values():
                    self.reject(entry, f"not written: DynamoDB left it unprocessed "
                                       f"(throttled) after {attempt} attempts")
                return
            self.backoff.retries += 1
            await anyio.sleep(delay)

    async def _write_one_by_one(self, entries: Mapping[Any, Entry]) -> None:
        for entry in entries.values():
            attempt = 0
            while True:
                try:
                    await self.dynamodb.put_item(TableName=self.table, Item=entry.item)
                except Exception as exc:
                    if error_code(exc) == "ValidationException":
                        message = getattr(exc, "response", {}).get("Error", {}).get(
                            "Message", None) or exception_text(exc)
                        self.reject(entry, f"refused by DynamoDB: {message}")
                        break
                    attempt += 1
                    await self.backoff.sleep(attempt, exc)
                    continue
                self.written += 1
                break
