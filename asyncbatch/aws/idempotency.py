"""An idempotency store on DynamoDB, through aioboto3, in Powertools' table layout.

::

    from asyncbatch.aws.idempotency import DynamoDBIdempotencyStore

    store = DynamoDBIdempotencyStore("idempotency")
    processor = asyncbatch.AsyncBatchProcessor(idempotency=asyncbatch.Idempotency(store))

The table has the hash key ``id`` (string) and the TTL attribute ``expiration``; items
are those aws-lambda-powertools' ``DynamoDBPersistenceLayer`` writes (``status``,
``data``, ``validation``, ``in_progress_expiration``), so one table serves both.

Requests: ``get_many`` is BatchGetItem of at most 100 keys per request, up to
``max_in_flight`` requests at once, ``UnprocessedKeys`` asked again with backoff;
``claim`` a conditional PutItem (``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a
lost claim costs no extra read); ``complete`` writes the COMPLETED item, coalesced with
the completions of other records into BatchWriteItem requests of up to 25 items (at most
``max_writes_in_flight`` at once; while they are in flight, new completions gather into
the next one; ``UnprocessedItems`` written again), or with ``batch_writes=False`` one
UpdateItem each, as Powertools does; ``release`` a conditional DeleteItem (only the
claim it made). Errors are raised as botocore raises them: the
``Idempotency`` retries throttling and 5xx with its ``Retry`` policy, so the client made
here has botocore's own retries off.

Client: give ``client=`` (yours), or enter the store (``async with store:``) to own one
for the block, or let it open one on first use, kept for the event loop it was opened
on (``process_partial_response`` reuses one loop across warm invocations). The client
is made from ``session`` (default ``aioboto3.Session()``) with ``endpoint_url`` and
``region_name`` (default: the environment's, ``AWS_ENDPOINT_URL`` included).

aioboto3 runs on asyncio only; ``import asyncbatch`` never imports this module and this
module imports aioboto3 only when it opens a client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Callable, Optional

from .._core.retry import TransientError
from .._errors import ConfigurationError
from ..idempotency import IN_PROGRESS, IdempotencyItem
from ._client import error_code as _error_code
from ._client import open_client, require_asyncio

__all__ = ["BATCH_GET_MAX_KEYS", "BATCH_WRITE_MAX_ITEMS", "DynamoDBIdempotencyStore"]

#: Keys in one BatchGetItem request, at most (DynamoDB's limit).
BATCH_GET_MAX_KEYS = 100
#: Items in one BatchWriteItem request, at most (DynamoDB's limit).
BATCH_WRITE_MAX_ITEMS = 25
_UNPROCESSED_ROUNDS = 10


class DynamoDBIdempotencyStore:
    """An ``IdempotencyStore`` on the DynamoDB table ``table_name``.

    The attribute names default to Powertools' (``key_attr="id"``,
    ``expiry_attr="expiration"``, ``in_progress_expiry_attr="in_progress_expiration"``,
    ``status_attr="status"``, ``data_attr="data"``, ``validation_key_attr="validation"``);
    give the ones your Powertools table uses if you changed them. ``clock`` gives UNIX
    seconds (default ``time.time``). ``max_in_flight`` BatchGetItem requests at once;
    ``consistent_read`` for the lookups (default ``True``, as Powertools reads).
    ``batch_writes`` coalesce completions into BatchWriteItem (default ``True``), at most
    ``max_writes_in_flight`` requests at once.
    ``config`` an ``aiobotocore.config.AioConfig`` for the client it opens (default:
    ``max_pool_connections=64``, botocore retries off).
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        session: Any = None,
        endpoint_url: Optional[str] = None,
        region_name: Optional[str] = None,
        config: Any = None,
        key_attr: str = "id",
        expiry_attr: str = "expiration",
        in_progress_expiry_attr: str = "in_progress_expiration",
        status_attr: str = "status",
        data_attr: str = "data",
        validation_key_attr: str = "validation",
        clock: Callable[[], float] = time.time,
        max_in_flight: int = 16,
        consistent_read: bool = True,
        batch_writes: bool = True,
        max_writes_in_flight: int = 4,
    ) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise ConfigurationError(
                f"DynamoDBIdempotencyStore(table_name={table_name!r}): give the table's name")
        names = {"key_attr": key_attr, "expiry_attr": expiry_attr,
                 "in_progress_expiry_attr": in_progress_expiry_attr,
                 "status_attr": status_attr, "data_attr": data_attr,
                 "validation_key_attr": validation_key_attr}
        for option, value in names.items():
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"DynamoDBIdempotencyStore({option}={value!r}): give an attribute name")
        if len(set(names.values())) != len(names):
            raise ConfigurationError(
                f"DynamoDBIdempotencyStore: attribute names must differ, got {names}")
        for option, number in (("max_in_flight", max_in_flight),
                               ("max_writes_in_flight", max_writes_in_flight)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConfigurationError(
                    f"DynamoDBIdempotencyStore({option}={number!r}): give a whole number "
                    ">= 1")
        if not callable(clock):
            raise ConfigurationError(
                f"DynamoDBIdempotencyStore(clock={clock!r}): give a function returning UNIX "
                "seconds, such as time.time")
        self.table_name = table_name
        self.key_attr = key_attr
        self.expiry_attr = expiry_attr
        self.in_progress_expiry_attr = in_progress_expiry_attr
        self.status_attr = status_attr
        self.data_attr = data_attr
        self.validation_key_attr = validation_key_attr
        self.max_in_flight = max_in_flight
        self.consistent_read = consistent_read
        self.batch_writes = batch_writes
        self.max_writes_in_flight = max_writes_in_flight
        self._writes: Optional[_Writes] = None
        self._clock = clock
        self._given = client
        self._session = session
        self._options = {"endpoint_url": endpoint_url, "region_name": region_name,
                         "config": config}
        self._users = 0
        self._stack: Optional[AsyncExitStack] = None
        self._client: Any = None
        self._opening: Optional[asyncio.Future[None]] = None
        self._lazy: Optional[tuple[asyncio.AbstractEventLoop, AsyncExitStack, Any]] = None

    def __repr__(self) -> str:
        return f"DynamoDBIdempotencyStore({self.table_name!r})"

    def now(self) -> float:
        return float(self._clock())

    # -- the client ------------------------------------------------------------------------

    async def __aenter__(self) -> DynamoDBIdempotencyStore:
        if self._given is not None:
            return self
        _require_asyncio()
        self._users += 1
        try:
            if self._users == 1:
                self._stack, self._client = await self._open()
        except BaseException:
            self._users -= 1
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._given is not None:
            return
        self._users -= 1
        if self._users == 0 and self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def aclose(self) -> None:
        """Close the client opened on first use (if it belongs to this event loop)."""
        lazy, self._lazy = self._lazy, None
        if lazy is not None and lazy[0] is asyncio.get_running_loop():
            await lazy[1].aclose()

    async def _open(self) -> tuple[AsyncExitStack, Any]:
        options = dict(self._options)
        if options.get("config") is None:
            from aiobotocore.config import AioConfig

            options["config"] = AioConfig(max_pool_connections=64,
                                          retries={"total_max_attempts": 1})
        return await open_client(self._session, "dynamodb", options)

    async def _get_client(self) -> Any:
        if self._given is not None:
            return self._given
        if self._client is not None:
            return self._client
        _require_asyncio()
        loop = asyncio.get_running_loop()
        while True:
            lazy = self._lazy
            if lazy is not None and lazy[0] is loop:
                return lazy[2]
            opening = self._opening
            if opening is None or opening.get_loop() is not loop:
                break
            await asyncio.shield(opening)
        opening = self._opening = loop.create_future()
        try:
            stack, client = await self._open()
            self._lazy = (loop, stack, client)
            return client
        finally:
            self._opening = None
            opening.set_result(None)

    # -- items -----------------------------------------------------------------------------

    def _key(self, key: str) -> dict[str, Any]:
        return {self.key_attr: {"S": key}}

    def _item(self, raw: Mapping[str, Any]) -> IdempotencyItem:
        ipe = raw.get(self.in_progress_expiry_attr)
        data = raw.get(self.data_attr)
        validation = raw.get(self.validation_key_attr)
        return IdempotencyItem(
            key=raw[self.key_attr]["S"],
            status=raw[self.status_attr]["S"],
            expiration=int(raw[self.expiry_attr]["N"]),
            in_progress_expiration=int(ipe["N"]) if ipe and "N" in ipe else None,
            data=data["S"] if data and "S" in data else None,
            validation=validation["S"] if validation and "S" in validation else None,
        )

    # -- the store -------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, IdempotencyItem]:
        """BatchGetItem in chunks of 100, ``max_in_flight`` at once."""
        client = await self._get_client()
        found: dict[str, IdempotencyItem] = {}
        chunks = [keys[i:i + BATCH_GET_MAX_KEYS]
                  for i in range(0, len(keys), BATCH_GET_MAX_KEYS)]
        if not chunks:
            return found
        gate = asyncio.Semaphore(self.max_in_flight)

        async def fetch(chunk: Sequence[str]) -> None:
            async with gate:
                await self._fetch(client, chunk, found)

        tasks = [asyncio.ensure_future(fetch(chunk)) for chunk in chunks[1:]]
        try:
            await fetch(chunks[0])
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return found

    async def _fetch(self, client: Any, chunk: Sequence[str],
                     found: dict[str, IdempotencyItem]) -> None:
        request: dict[str, Any] = {"Keys": [self._key(key) for key in chunk],
                                   "ConsistentRead": self.consistent_read}
        for round_ in range(_UNPROCESSED_ROUNDS):
            response = await client.batch_get_item(RequestItems={self.table_name: request})
            for raw in response.get("Responses", {}).get(self.table_name, ()):
                item = self._item(raw)
                found[item.key] = item
            left = (response.get("UnprocessedKeys") or {}).get(self.table_name)
            if not left or not left.get("Keys"):
                return
            request = dict(left)
            await asyncio.sleep(min(1.0, 0.02 * 2 ** round_))
        raise _UnprocessedKeysError(
            f"BatchGetItem on {self.table_name} left {len(request['Keys'])} keys unprocessed "
            f"after {_UNPROCESSED_ROUNDS} rounds")

    async def claim(self, item: IdempotencyItem) -> Optional[IdempotencyItem]:
        """A conditional PutItem, on Powertools' condition: no record, an expired one,
        or an INPROGRESS one past its in-progress expiry."""
        client = await self._get_client()
        now = self.now()
        raw: dict[str, Any] = {
            **self._key(item.key),
            self.expiry_attr: {"N": str(item.expiration)},
            self.status_attr: {"S": item.status},
        }
        if item.in_progress_expiration is not None:
            raw[self.in_progress_expiry_attr] = {"N": str(item.in_progress_expiration)}
        if item.validation is not None:
            raw[self.validation_key_attr] = {"S": item.validation}
        try:
            await client.put_item(
                TableName=self.table_name, Item=raw,
                ConditionExpression=(
                    "attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress "
                    "AND attribute_exists(#in_progress_expiry) AND "
                    "#in_progress_expiry < :now_in_millis)"),
                ExpressionAttributeNames={
                    "#id": self.key_attr, "#expiry": self.expiry_attr,
                    "#in_progress_expiry": self.in_progress_expiry_attr,
                    "#status": self.status_attr},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":now_in_millis": {"N": str(int(now * 1000))},
                    ":inprogress": {"S": IN_PROGRESS}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            if old:
                return self._item(old)
            response = await client.get_item(TableName=self.table_name,
                                              Key=self._key(item.key), ConsistentRead=True)
            if "Item" in response:
                return self._item(response["Item"])
            # gone between the write and the read: report it as a claim in the way that
            # has already expired, and the caller claims again
            return IdempotencyItem(item.key, IN_PROGRESS, 0, 0)
        return None

    async def complete(self, item: IdempotencyItem) -> None:
        """Write the COMPLETED item: in a coalesced BatchWriteItem (``batch_writes``), or
        as one UpdateItem of ``status``, ``expiration``, ``data`` and ``validation``."""
        client = await self._get_client()
        if self.batch_writes:
            writes = self._writes
            if writes is None or writes.loop is not asyncio.get_running_loop():
                writes = self._writes = _Writes(self.max_writes_in_flight)
            await writes.put(self, client, item)
            return
        names = {"#status": self.status_attr, "#expiry": self.expiry_attr}
        values: dict[str, Any] = {":status": {"S": item.status},
                                  ":expiry": {"N": str(item.expiration)}}
        sets = ["#status = :status", "#expiry = :expiry"]
        if item.data is not None:
            names["#data"] = self.data_attr
            values[":data"] = {"S": item.data}
            sets.append("#data = :data")
        if item.validation is not None:
            names["#validation"] = self.validation_key_attr
            values[":validation"] = {"S": item.validation}
            sets.append("#validation = :validation")
        await client.update_item(
            TableName=self.table_name, Key=self._key(item.key),
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    async def release(self, claim: IdempotencyItem) -> None:
        """DeleteItem if the record is still this claim (same status and expiries)."""
        client = await self._get_client()
        names = {"#status": self.status_attr, "#expiry": self.expiry_attr,
                 "#in_progress_expiry": self.in_progress_expiry_attr}
        values: dict[str, Any] = {":inprogress": {"S": IN_PROGRESS},
                                  ":expiry": {"N": str(claim.expiration)}}
        condition = "#status = :inprogress AND #expiry = :expiry AND "
        if claim.in_progress_expiration is None:
            condition += "attribute_not_exists(#in_progress_expiry)"
        else:
            values[":ipe"] = {"N": str(claim.in_progress_expiration)}
            condition += "#in_progress_expiry = :ipe"
        try:
            await client.delete_item(
                TableName=self.table_name, Key=self._key(claim.key),
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues=values)
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise


    def _full_item(self, item: IdempotencyItem) -> dict[str, Any]:
        raw: dict[str, Any] = {
            **self._key(item.key),
            self.expiry_attr: {"N": str(item.expiration)},
            self.status_attr: {"S": item.status},
        }
        if item.in_progress_expiration is not None:
            raw[self.in_progress_expiry_attr] = {"N": str(item.in_progress_expiration)}
        if item.data is not None:
            raw[self.data_attr] = {"S": item.data}
        if item.validation is not None:
            raw[self.validation_key_attr] = {"S": item.validation}
        return raw


class _Batch:
    """Completions that go out in one BatchWriteItem; ``done`` once it is settled."""

    __slots__ = ("done", "errors", "items")

    def __init__(self) -> None:
        self.items: dict[str, IdempotencyItem] = {}
        self.errors: dict[str, BaseException] = {}
        self.done = asyncio.Event()


class _Writes:
    """Group commit of completions, in the callers' tasks (no task of its own).

    The first caller to find no open batch leads one: it waits for a free request slot
    (while every slot is busy, later callers join its batch, up to 25 items), closes the
    batch and writes it; the others wait for it and raise their own item's error."""

    __slots__ = ("loop", "open", "slots")

    def __init__(self, slots: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.open: Optional[_Batch] = None
        self.slots = asyncio.Semaphore(slots)

    async def put(self, store: DynamoDBIdempotencyStore, client: Any,
                  item: IdempotencyItem) -> None:
        batch = self.open
        leader = batch is None or item.key in batch.items
        if leader:
            batch = self.open = _Batch()
        assert batch is not None
        batch.items[item.key] = item
        if len(batch.items) >= BATCH_WRITE_MAX_ITEMS:
            self.open = None
        if leader:
            try:
                async with self.slots:
                    await asyncio.sleep(0)  # completions already on their way join
                    if self.open is batch:
                        self.open = None
                    await self._write(store, client, batch)
            except BaseException as exc:
                for key in batch.items:
                    batch.errors.setdefault(key, exc)
                raise
            finally:
                if self.open is batch:
                    self.open = None
                batch.done.set()
        else:
            await batch.done.wait()
        error = batch.errors.get(item.key)
        if error is not None:
            raise error

    async def _write(self, store: DynamoDBIdempotencyStore, client: Any,
                     batch: _Batch) -> None:
        requests = [{"PutRequest": {"Item": store._full_item(item)}}
                    for item in batch.items.values()]
        for round_ in range(_UNPROCESSED_ROUNDS):
            try:
                response = await client.batch_write_item(
                    RequestItems={store.table_name: requests})
            except Exception as exc:
                for item in batch.items.values():
                    batch.errors.setdefault(item.key, exc)
                return
            left = (response.get("UnprocessedItems") or {}).get(store.table_name)
            if not left:
                return
            requests = list(left)
            await asyncio.sleep(min(1.0, 0.02 * 2 ** round_))
        error = _UnprocessedKeysError(
            f"BatchWriteItem on {store.table_name} left {len(requests)} items unprocessed "
            f"after {_UNPROCESSED_ROUNDS} rounds")
        for request in requests:
            key = request["PutRequest"]["Item"][store.key_attr]["S"]
            batch.errors.setdefault(key, error)


class _UnprocessedKeysError(TransientError):
    """BatchGetItem kept leaving keys unprocessed (throttled): transient."""


def _require_asyncio() -> None:
    require_asyncio("DynamoDBIdempotencyStore", ConfigurationError,
                    "run process() on the asyncio backend, or use another IdempotencyStore")
