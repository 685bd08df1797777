"""Where a stream consumer keeps its place: the sequence number of the last record of each
shard that needs no redelivery (everything at or before it was acknowledged)."""

from __future__ import annotations

import datetime as _dt
import logging
from contextlib import AsyncExitStack, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

import anyio

if TYPE_CHECKING:
    import aioboto3

__all__ = ["CheckpointStore", "DynamoDBCheckpointStore", "MemoryCheckpointStore"]

logger = logging.getLogger("asyncbatch.runner")


@runtime_checkable
class CheckpointStore(Protocol):
    """Keeps one checkpoint per (stream, shard). The runner calls ``save`` with ever
    higher sequence numbers of one shard, from one task at a time, and resumes the shard
    *after* what ``load`` returns (``None``: from the source's starting position).

    If the store is also an async context manager, the runner enters it while it runs."""

    async def load(self, stream_arn: str, shard_id: str) -> Optional[str]: ...

    async def save(self, stream_arn: str, shard_id: str, sequence_number: str) -> None: ...


class MemoryCheckpointStore:
    """Checkpoints in a dict: they survive a runner's restart inside one process."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], str] = {}

    async def load(self, stream_arn: str, shard_id: str) -> Optional[str]:
        return self._data.get((stream_arn, shard_id))

    async def save(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._data[(stream_arn, shard_id)] = sequence_number

    def get(self, stream_arn: str, shard_id: str) -> Optional[str]:
        """The checkpoint, read without awaiting."""
        return self._data.get((stream_arn, shard_id))

    def snapshot(self) -> dict[tuple[str, str], str]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"MemoryCheckpointStore({len(self._data)} shards)"


def _position(sequence_number: str) -> str:
    """A string that sorts as the sequence number does (they are decimal integers of
    varying length): its length, zero-padded, then the digits."""
    return f"{len(sequence_number):04d}{sequence_number}"


class DynamoDBCheckpointStore:
    """Checkpoints in a DynamoDB table, for a consumer that restarts.

    One item per shard: ``key`` (the partition key, a string ``consumer#stream#shard``),
    ``sequenceNumber``, ``position`` (a sortable form of it) and ``updatedAt``. A save
    is conditional on moving forward, so a stale consumer cannot move a shard back.
    ``create_table()`` makes the table (on-demand billing) if it does not exist.

    ``session``, ``endpoint_url`` and ``region_name`` configure its aioboto3 client
    (``None``: the usual AWS configuration, including ``AWS_ENDPOINT_URL``). The client
    opens on first use and closes with ``aclose()`` (or ``async with store``)."""

    def __init__(
        self,
        table_name: str,
        *,
        consumer: str = "asyncbatch",
        session: Optional[aioboto3.Session] = None,
        endpoint_url: Optional[str] = None,
        region_name: Optional[str] = None,
    ) -> None:
        self.table_name = table_name
        self.consumer = consumer
        self.session = session
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._stack: Optional[AsyncExitStack] = None
        self._client: Any = None
        self._lock: Optional[anyio.Lock] = None

    def __repr__(self) -> str:
        return f"DynamoDBCheckpointStore({self.table_name!r}, consumer={self.consumer!r})"

    async def _ddb(self) -> Any:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._client is None:
                session = self.session
                if session is None:
                    import aioboto3

                    session = aioboto3.Session()
                stack = AsyncExitStack()
                self._client = await stack.enter_async_context(session.client(
                    "dynamodb", endpoint_url=self.endpoint_url, region_name=self.region_name))
                self._stack = stack
        return self._client

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> DynamoDBCheckpointStore:
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()

    def _key(self, stream_arn: str, shard_id: str) -> dict[str, Any]:
        return {"key": {"S": f"{self.consumer}#{stream_arn}#{shard_id}"}}

    async def create_table(self) -> None:
        """Create the table (``key`` string partition key, on-demand) unless it exists,
        and wait until it is active."""
        ddb = await self._ddb()
        with suppress(ddb.exceptions.ResourceInUseException):
            await ddb.create_table(
                TableName=self.table_name,
                AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        waiter = ddb.get_waiter("table_exists")
        await waiter.wait(TableName=self.table_name,
                          WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    async def load(self, stream_arn: str, shard_id: str) -> Optional[str]:
        ddb = await self._ddb()
        found = await ddb.get_item(TableName=self.table_name,
                                   Key=self._key(stream_arn, shard_id), ConsistentRead=True)
        item = found.get("Item")
        if not item:
            return None
        return str(item["sequenceNumber"]["S"])

    async def save(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        ddb = await self._ddb()
        now = _dt.datetime.now(_dt.timezone.utc).isoformat()
        try:
            await ddb.put_item(
                TableName=self.table_name,
                Item={**self._key(stream_arn, shard_id),
                      "sequenceNumber": {"S": sequence_number},
                      "position": {"S": _position(sequence_number)},
                      "updatedAt": {"S": now}},
                ConditionExpression="attribute_not_exists(#k) OR #p < :p",
                ExpressionAttributeNames={"#k": "key", "#p": "position"},
                ExpressionAttributeValues={":p": {"S": _position(sequence_number)}},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            logger.debug("checkpoint %s/%s not moved back to %s", stream_arn, shard_id,
                         sequence_number)
