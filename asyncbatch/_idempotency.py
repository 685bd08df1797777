"""Idempotent record handlers: a record whose key completed before succeeds without
running again.

::

    store = InMemoryIdempotencyStore()            # or aws.idempotency.DynamoDBIdempotencyStore
    processor = AsyncBatchProcessor(idempotency=Idempotency(store))

Per record, before its handler's first attempt (``BatchIdempotency.begin``):

- its key COMPLETED and has not expired: the record succeeds without running and its
  stored result is replayed;
- its key is claimed (IN PROGRESS) by an invocation still within its deadline: the
  record fails with ``IdempotencyInProgressError`` (transient: Lambda redelivers it);
- otherwise the key is claimed with a conditional write whose in-progress expiry is the
  Lambda deadline, the handler runs, and the key is marked COMPLETED with the result
  (``complete``) or the claim is deleted so a retry can run (``release``).

Cost: ``Idempotency.prepare`` looks every key of the batch up at once (the store's
``get_many``: BatchGetItem of 100 keys on DynamoDB) before anything runs, and keeps a
small LRU of keys completed in this process, so a redelivered batch of finished records
costs about one request per hundred records, or none.

The records stored are those of aws-lambda-powertools' idempotency utility (attributes
``id``, ``expiration`` (UNIX seconds), ``status`` (``INPROGRESS`` / ``COMPLETED``),
``data`` (the result as JSON text), ``validation`` (MD5 of the validated payload part),
``in_progress_expiration`` (UNIX milliseconds)); an ``id`` is
``"<key_prefix>#<md5 of the key as sorted JSON>"``, as Powertools builds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

from ._errors import ConfigurationError, RecordError, describe, exception_text, safe_repr
from ._frozen import Frozen
from ._retry import Retry, TransientError

if TYPE_CHECKING:
    import anyio

    from ._handlers import ThreadCall
    from ._records import Record

__all__ = [
    "BatchIdempotency",
    "Idempotency",
    "IdempotencyError",
    "IdempotencyInProgressError",
    "IdempotencyItem",
    "IdempotencyKeyError",
    "IdempotencyStore",
    "IdempotencyStoreError",
    "IdempotencyValidationError",
    "InMemoryIdempotencyStore",
    "Replay",
]

logger = logging.getLogger("asyncbatch")

#: The ``status`` values, spelled as Powertools spells them.
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"


# -- errors ------------------------------------------------------------------------------


class IdempotencyError(RecordError):
    """Why idempotency kept one record from succeeding. ``key`` is its idempotency id
    (``None`` when it could not be computed)."""

    def __init__(self, message: str, *, identifier: Optional[str] = None,
                 key: Optional[str] = None) -> None:
        super().__init__(message, identifier=identifier)
        self.key = key


class IdempotencyInProgressError(IdempotencyError, TransientError):
    """Another invocation holds a live claim on the record's key; the record is
    reported failed so that Lambda redelivers it later (transient)."""


class IdempotencyValidationError(IdempotencyError, ValueError):
    """The record's key was seen before with a different payload (the hash of the
    ``validate`` part differs from the stored one). Not retried."""


class IdempotencyKeyError(IdempotencyError, ValueError):
    """The record's idempotency key (or validated part) could not be computed: the
    ``key`` / ``validate`` function raised, returned ``None`` or a value JSON cannot
    hold. ``__cause__`` is the original error, when there is one."""


class IdempotencyStoreError(IdempotencyError):
    """The store failed to claim the record's key (after the retry policy's attempts);
    the handler did not run. ``__cause__`` is the store's error."""


# -- the store -----------------------------------------------------------------------------


class IdempotencyItem(Frozen):
    """One stored record, attribute for attribute as Powertools stores it.

    ``key`` the ``id``; ``status`` ``"INPROGRESS"`` or ``"COMPLETED"``; ``expiration``
    UNIX seconds after which the record no longer counts; ``in_progress_expiration``
    UNIX milliseconds after which an INPROGRESS claim no longer counts (``None``: until
    ``expiration``); ``data`` the handler's result as JSON text (``None``: not stored);
    ``validation`` the MD5 hex of the validated payload part (``None``: none)."""

    __slots__ = ("data", "expiration", "in_progress_expiration", "key", "status", "validation")

    key: str
    status: str
    expiration: int
    in_progress_expiration: Optional[int]
    data: Optional[str]
    validation: Optional[str]

    def __init__(self, key: str, status: str, expiration: int,
                 in_progress_expiration: Optional[int] = None, data: Optional[str] = None,
                 validation: Optional[str] = None) -> None:
        set_ = object.__setattr__  # Frozen's _set, spelled out: one per record and step
        set_(self, "key", key)
        set_(self, "status", status)
        set_(self, "expiration", expiration)
        set_(self, "in_progress_expiration", in_progress_expiration)
        set_(self, "data", data)
        set_(self, "validation", validation)

    def claimable(self, now: float) -> bool:
        """Whether a claim may replace this record at UNIX time ``now``: it expired, or it
        is an INPROGRESS claim past its in-progress expiry (Powertools' put condition)."""
        if self.expiration < int(now):
            return True
        return (self.status == IN_PROGRESS and self.in_progress_expiration is not None
                and self.in_progress_expiration < int(now * 1000))


class IdempotencyStore(Protocol):
    """Where idempotency records live. Every method may raise; the ``Idempotency``
    retries what its retry policy calls transient."""

    def now(self) -> float:
        """The current UNIX time in seconds: the clock expiries are judged by."""
        ...

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, IdempotencyItem]:
        """The stored records of ``keys`` (distinct); absent keys are left out."""
        ...

    async def claim(self, item: IdempotencyItem) -> Optional[IdempotencyItem]:
        """Write ``item`` (INPROGRESS) if its key has no record, or the record is
        ``claimable(now())``; return ``None`` then. Otherwise write nothing and return
        the record in the way."""
        ...

    async def complete(self, item: IdempotencyItem) -> None:
        """Mark the claimed key COMPLETED: set ``status``, ``expiration``, ``data``
        (when not ``None``) and ``validation``."""
        ...

    async def release(self, claim: IdempotencyItem) -> None:
        """Delete the record of ``claim.key`` if it is still exactly this claim
        (INPROGRESS with the same expiries); otherwise leave it."""
        ...


class InMemoryIdempotencyStore:
    """An ``IdempotencyStore`` in a dict: for tests and local runs (one process only).

    ``clock`` gives the UNIX time in seconds (default ``time.time``): inject one to
    make expiry testable. ``items`` is the dict, readable in tests; ``calls`` counts the
    calls per method."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        if not callable(clock):
            raise ConfigurationError(
                f"InMemoryIdempotencyStore(clock={clock!r}): give a function returning "
                "UNIX seconds, such as time.time")
        self._clock = clock
        self.items: dict[str, IdempotencyItem] = {}
        self.calls: dict[str, int] = {"get_many": 0, "claim": 0, "complete": 0, "release": 0}

    def now(self) -> float:
        return float(self._clock())

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, IdempotencyItem]:
        self.calls["get_many"] += 1
        items = self.items
        return {key: items[key] for key in keys if key in items}

    async def claim(self, item: IdempotencyItem) -> Optional[IdempotencyItem]:
        self.calls["claim"] += 1
        current = self.items.get(item.key)
        if current is not None and not current.claimable(self.now()):
            return current
        self.items[item.key] = item
        return None

    async def complete(self, item: IdempotencyItem) -> None:
        self.calls["complete"] += 1
        self.items[item.key] = item  # the claim's in-progress expiry and validation included

    async def release(self, claim: IdempotencyItem) -> None:
        self.calls["release"] += 1
        current = self.items.get(claim.key)
        if current is not None and _same_claim(current, claim):
            del self.items[claim.key]

    def __repr__(self) -> str:
        return f"InMemoryIdempotencyStore({len(self.items)} items)"


def _same_claim(current: IdempotencyItem, claim: IdempotencyItem) -> bool:
    return (current.status == IN_PROGRESS and current.expiration == claim.expiration
            and current.in_progress_expiration == claim.in_progress_expiration)


# -- hashing, as Powertools hashes ----------------------------------------------------------


def _encode(value: Any) -> Any:
    """JSON for what ``json`` does not know: Decimal as text (as Powertools' encoder),
    bytes as base64, sets sorted, pydantic models and dataclasses as dicts."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda v: json.dumps(v, default=_encode, sort_keys=True))
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    fields = getattr(value, "__dataclass_fields__", None)
    if isinstance(fields, dict) and not isinstance(value, type):
        return {name: getattr(value, name) for name in fields}
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: ``json.dumps(value, default=_encode, sort_keys=True)``, without a new encoder per call.
_dumps = json.JSONEncoder(default=_encode, sort_keys=True).encode


def _hash(value: Any) -> str:
    """MD5 hex of ``value`` as sorted JSON: Powertools' ``_generate_hash``."""
    text = _dumps(value)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _dump_result(result: Any) -> Optional[str]:
    if result is None:
        return "null"
    try:
        return _dumps(result)
    except (TypeError, ValueError):
        return None


def _part(spec: Union[str, Callable[[Any], Any]], what: str) -> Callable[[Any], Any]:
    """A function of the record view: ``spec`` itself, or for a dotted name
    (``"order.id"``) that path into the record's JSON payload (``view.json()``)."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec and all(spec.split(".")):
        path = spec.split(".")

        from ._sources._base import Record as View

        def lookup(view: Any) -> Any:
            # a record view's JSON payload; an item of stream()/run() as it is
            value = view.json() if isinstance(view, View) else view  # type: ignore[attr-defined]
            for name in path:
                if not isinstance(value, Mapping) or name not in value:
                    return None
                value = value[name]
            return value

        return lookup
    raise ConfigurationError(
        f"Idempotency({what}={spec!r}): give a function of the record view (for example "
        "'lambda record: record.json()[\"order_id\"]') or a dotted name into its JSON "
        "payload (for example 'order.id')")


# -- the public pieces -------------------------------------------------------------------


class Replay(Frozen):
    """The record's key completed before: ``result`` is what its handler returned then
    (``None`` when the result was not JSON and so not stored)."""

    __slots__ = ("result",)

    result: Any

    def __init__(self, result: Any) -> None:
        self._set(result=result)


_NO_KEY = object()
_ORPHANS_LOCK = threading.Lock()
# keys whose claim an abandoned thread holds in this process, to the thread
_RUNNING: dict[str, ThreadCall] = {}


class Idempotency:
    """Make a processor's handler idempotent per record (``AsyncBatchProcessor(idempotency=)``).

    ``store`` an ``IdempotencyStore``. ``key`` a function of the record view giving its
    idempotency key (any JSON value; default: the record's identifier, which survives
    redelivery), or a dotted name into its JSON payload. ``expires_after`` seconds a
    COMPLETED key stays completed. ``validate`` (function or dotted name, optional) the
    payload part whose hash must match on a replay: a mismatch fails the record with
    ``IdempotencyValidationError``. ``key_prefix`` the part of the stored ``id`` before
    ``#`` (default ``"<AWS_LAMBDA_FUNCTION_NAME>.asyncbatch"``; give Powertools' prefix
    to share its records). ``local_cache`` how many recently completed keys this
    process remembers (0: none). ``retry`` the policy for the store's transient errors
    (default ``Retry(attempts=4)``; never past the Lambda deadline).
    """

    __slots__ = ("_cache", "_key", "_local_cache", "_orphans", "_validate", "expires_after",
                 "key_prefix", "retry", "store")

    def __init__(
        self,
        store: IdempotencyStore,
        key: Union[str, Callable[[Any], Any], None] = None,
        expires_after: float = 3600,
        validate: Union[str, Callable[[Any], Any], None] = None,
        *,
        key_prefix: Optional[str] = None,
        local_cache: int = 1024,
        retry: Optional[Retry] = None,
    ) -> None:
        missing = [name for name in ("get_many", "claim", "complete", "release", "now")
                   if not callable(getattr(store, name, None))]
        if missing:
            raise ConfigurationError(
                f"Idempotency(store={store!r}): the store lacks {', '.join(missing)}; give "
                "an InMemoryIdempotencyStore, an aws.idempotency.DynamoDBIdempotencyStore "
                "or an object with the IdempotencyStore methods")
        if (isinstance(expires_after, bool) or not isinstance(expires_after, (int, float))
                or not expires_after > 0):
            raise ConfigurationError(
                f"Idempotency(expires_after={expires_after!r}): give seconds > 0 (how long "
                "a completed key is remembered; 3600 is an hour)")
        if isinstance(local_cache, bool) or not isinstance(local_cache, int) or local_cache < 0:
            raise ConfigurationError(
                f"Idempotency(local_cache={local_cache!r}): give a whole number >= 0")
        if key_prefix is None:
            function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local"
            key_prefix = f"{function}.asyncbatch"
        elif not isinstance(key_prefix, str) or not key_prefix:
            raise ConfigurationError(
                f"Idempotency(key_prefix={key_prefix!r}): give a non-empty string")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError(
                f"Idempotency(retry={retry!r}): give an asyncbatch.Retry or None")
        self.store = store
        self._key = None if key is None else _part(key, "key")
        self._validate = None if validate is None else _part(validate, "validate")
        self.expires_after = expires_after
        self.key_prefix = key_prefix
        self._local_cache = local_cache
        self.retry = retry if retry is not None else Retry(attempts=4, base=0.05, cap=1.0)
        self._cache: OrderedDict[str, IdempotencyItem] = OrderedDict()
        # claims of abandoned threads that outlived their batch: (claim, thread, record)
        self._orphans: list[tuple[IdempotencyItem, ThreadCall, Optional[str]]] = []

    def __repr__(self) -> str:
        return (f"Idempotency(store={self.store!r}, expires_after={self.expires_after!r}, "
                f"key_prefix={self.key_prefix!r})")

    # -- keys ------------------------------------------------------------------------------

    def key_of(self, view: Record) -> str:
        """The stored ``id`` of ``view``'s key; ``IdempotencyKeyError`` if there is none."""
        key_fn = self._key
        try:
            value = view.identifier if key_fn is None else key_fn(view)
        except Exception as exc:
            raise IdempotencyKeyError(
                f"record {_identifier(view)}: the idempotency key function raised "
                f"{describe(exc)}", identifier=_identifier(view)) from exc
        if value is None or (isinstance(value, (str, list, tuple, dict)) and not value):
            raise IdempotencyKeyError(
                f"record {_identifier(view)}: its idempotency key is empty "
                f"({safe_repr(value)}); "
                "every record needs one", identifier=_identifier(view))
        try:
            digest = _hash(value)
        except Exception as exc:  # a model's model_dump is user code too
            raise IdempotencyKeyError(
                f"record {_identifier(view)}: its idempotency key is not JSON "
                f"({exception_text(exc)})",
                identifier=_identifier(view)) from exc
        return f"{self.key_prefix}#{digest}"

    def _validation_of(self, view: Record, key: str) -> Optional[str]:
        validate = self._validate
        if validate is None:
            return None
        try:
            return _hash(validate(view))
        except Exception as exc:
            raise IdempotencyKeyError(
                f"record {_identifier(view)}: its validated payload part could not be "
                f"computed ({describe(exc)})", identifier=_identifier(view),
                key=key) from exc

    # -- the local cache of completed keys --------------------------------------------------

    def _cached(self, key: str, now: float) -> Optional[IdempotencyItem]:
        cache = self._cache
        item = cache.get(key)
        if item is None:
            return None
        if item.claimable(now):
            del cache[key]
            return None
        cache.move_to_end(key)
        return item

    async def _complete(self, claim: IdempotencyItem, result: Any, deadline: Optional[float],
                        label: Optional[str]) -> None:
        """Mark ``claim``'s key COMPLETED with ``result``. Never raises: a failed write
        is logged and the claim expires."""
        try:
            store = self.store
            item = IdempotencyItem(
                claim.key, COMPLETED, int(store.now() + self.expires_after),
                claim.in_progress_expiration, _dump_result(result), claim.validation)
            await _call(self.retry, deadline, store, store.complete, item)
            self._remember(item)
        except Exception as exc:
            logger.warning(
                "idempotency: record %s succeeded but marking its key %s COMPLETED failed "
                "(%s); its claim expires with the deadline", label, claim.key, describe(exc))

    async def _release(self, claim: IdempotencyItem, deadline: Optional[float],
                       label: Optional[str]) -> None:
        """Delete ``claim`` so that a redelivery can run its record. Never raises: a
        failed delete is logged and the claim expires."""
        try:
            await _call(self.retry, deadline, self.store, self.store.release, claim)
        except Exception as exc:
            logger.warning(
                "idempotency: releasing the claim of record %s on key %s failed (%s); "
                "it expires with the deadline", label, claim.key, describe(exc))

    def _orphan(self, claim: IdempotencyItem, thread: ThreadCall, label: Optional[str]) -> None:
        """A batch ended while a sync handler's abandoned thread still ran: its claim is
        kept, and settled by the first batch that starts after the thread ended; meanwhile
        its key is in progress for every batch of this process (``_running_orphan``)."""
        with _ORPHANS_LOCK:
            self._orphans.append((claim, thread, label))
            _RUNNING[claim.key] = thread

    @staticmethod
    def _running_orphan(key: str) -> bool:
        """Whether an earlier batch's abandoned thread on ``key`` still runs in this
        process, whichever ``Idempotency`` made it (its claim may have expired in the
        store, at the end of its invocation: the thread has not)."""
        with _ORPHANS_LOCK:
            thread = _RUNNING.get(key)
            if thread is not None and thread.done:
                del _RUNNING[key]
                return False
            return thread is not None

    async def _settle_orphans(self, deadline: Optional[float]) -> None:
        """Complete (the thread returned: its effects happened) or release (it raised)
        the claims of earlier batches' abandoned threads that have ended since."""
        with _ORPHANS_LOCK:
            ended = [entry for entry in self._orphans if entry[1].done]
            if not ended:
                return
            self._orphans = [entry for entry in self._orphans if not entry[1].done]
        for claim, thread, label in ended:
            if thread.ok:
                await self._complete(claim, thread.result, deadline, label)
            else:
                await self._release(claim, deadline, label)

    def _remember(self, item: IdempotencyItem) -> None:
        if self._local_cache and item.status == COMPLETED:
            cache = self._cache
            cache[item.key] = item
            cache.move_to_end(item.key)
            while len(cache) > self._local_cache:
                cache.popitem(last=False)

    # -- the batch -------------------------------------------------------------------------

    def check_stream(self) -> None:
        """``ConfigurationError`` unless this can serve ``stream()``/``run()``: their
        items need a key function (an item's position is no identity across runs)."""
        if self._key is None:
            raise ConfigurationError(
                "Idempotency(store) without key= over stream()/run(): an item's position "
                "is not its identity (a rerun numbers items from 0 again); give "
                "Idempotency(store, key=lambda item: item['id']) or a dotted name into the "
                "item, such as key='order.id'")

    async def prepare_stream(self, deadline: Optional[float]) -> BatchIdempotency:
        """The idempotency of a ``stream()``/``run()``: keys computed as items start (no
        look-up of the whole input ahead), each item's conditional claim deciding.
        ``ConfigurationError`` when the key is the default (see ``check_stream``)."""
        self.check_stream()
        if self._orphans:
            await self._settle_orphans(deadline)
        return BatchIdempotency(self, None, {}, deadline)

    async def prepare(self, views: Sequence[Record], deadline: Optional[float], *,
                      within: Optional[float] = None) -> BatchIdempotency:
        """Compute every record's key and look up, in one go, those this process has not
        seen completed. ``deadline`` is the Lambda deadline (UNIX seconds; ``None``: no
        context): the in-progress expiry of this batch's claims. A failed lookup is
        logged and left to the claims (which are conditional) to decide; a
        ``ConfigurationError`` from the store (it cannot work here) is raised.
        ``within``: seconds the store may take (the time left before records must stop
        starting); a lookup that takes longer is given up, and the claims decide."""
        import anyio

        with anyio.move_on_after(math.inf if within is None else max(0.0, within)):
            return await self._prepare(views, deadline)
        logger.warning("idempotency: looking the batch's keys up took longer than the %.3fs "
                       "left before the deadline's stop margin; every record will claim its "
                       "key instead", within)
        return BatchIdempotency(self, [self._key_or_error(view) for view in views], {},
                                deadline)

    def _key_or_error(self, view: Record) -> Union[str, IdempotencyKeyError]:
        try:
            return self.key_of(view)
        except IdempotencyKeyError as exc:
            return exc

    async def _prepare(self, views: Sequence[Record], deadline: Optional[float]
                       ) -> BatchIdempotency:
        if self._orphans:
            await self._settle_orphans(deadline)
        keys: list[Union[str, IdempotencyKeyError]] = []
        wanted: dict[str, None] = {}
        known: dict[str, IdempotencyItem] = {}  # completed in this process: no lookup
        now = self.store.now()
        for view in views:
            try:
                key = self.key_of(view)
            except IdempotencyKeyError as exc:
                keys.append(exc)
                continue
            keys.append(key)
            if key in wanted or key in known:
                continue
            cached = self._cached(key, now)
            if cached is None:
                wanted[key] = None
            else:
                known[key] = cached
        if wanted:
            try:
                found = await _call(self.retry, deadline, self.store,
                                    self.store.get_many, list(wanted))
            except ConfigurationError:
                raise  # a misuse (say, an asyncio-only store on trio): no claim can work
            except Exception as exc:
                logger.warning("idempotency: looking up %d keys failed (%s); every "
                               "record will claim its key instead", len(wanted),
                               describe(exc))
            else:
                known.update(_valid_items(found, wanted))
        return BatchIdempotency(self, keys, known, deadline)


class BatchIdempotency:
    """One ``process()`` call's idempotency: the keys, what the lookup found, the claims
    this batch holds. Made by ``Idempotency.prepare``."""

    __slots__ = ("_claims", "_deadline", "_found", "_inflight", "_keys", "_owner", "_results",
                 "_threads", "_views")

    def __init__(self, owner: Idempotency,
                 keys: Optional[list[Union[str, IdempotencyKeyError]]],
                 found: dict[str, IdempotencyItem], deadline: Optional[float]) -> None:
        self._owner = owner
        self._keys = keys
        self._found = found
        self._deadline = deadline
        self._claims: dict[int, IdempotencyItem] = {}
        self._views: dict[int, Record] = {}
        # results of records whose claim is being completed (for give_back, if cut short)
        self._results: dict[int, Any] = {}
        self._inflight: dict[str, _Hold] = {}
        # claims kept for calls abandoned while their sync handler's thread still runs
        self._threads: dict[int, ThreadCall] = {}

    def key(self, index: int) -> Optional[str]:
        """The stored ``id`` of record ``index`` (``None`` if it has none, or the keys are
        computed as records start: a stream)."""
        if self._keys is None:
            return None
        key = self._keys[index]
        return key if isinstance(key, str) else None

    async def begin(self, index: int, view: Record) -> Optional[Replay]:
        """Before record ``index``'s handler runs: ``Replay`` if its key completed (do not
        run it), ``None`` once its key is claimed (run it). Raises
        ``IdempotencyInProgressError``, ``IdempotencyValidationError``,
        ``IdempotencyKeyError`` or ``IdempotencyStoreError``: the record fails."""
        if self._keys is None:  # a stream: the key is computed as the record starts
            key: Union[str, IdempotencyKeyError] = self._owner.key_of(view)
        else:
            key = self._keys[index]
        if not isinstance(key, str):
            raise key
        owner = self._owner
        store = owner.store
        if _RUNNING and owner._running_orphan(key):
            raise IdempotencyInProgressError(
                f"record {_identifier(view)}: its idempotency key {key} is held by a handler "
                "call of an earlier batch still running on a thread that outlived its "
                "timeout; it will be redelivered", identifier=_identifier(view), key=key)
        for _ in range(4):
            hold = self._inflight.get(key)
            while hold is not None:  # a key-mate of this batch holds the claim: wait
                thread = hold.thread
                if thread is not None:  # ... unless its call's thread outlived the call
                    if not thread.done:
                        raise IdempotencyInProgressError(
                            f"record {_identifier(view)}: its idempotency key {key} is held "
                            "by a handler call still running on a thread that outlived its "
                            "timeout; it will be redelivered", identifier=_identifier(view),
                            key=key)
                    await self._settle_thread(hold.index)
                else:
                    if hold.event is None:
                        hold.event = _event()
                    await hold.event.wait()
                hold = self._inflight.get(key)
            now = store.now()
            cached = owner._cached(key, now)
            seen = cached if cached is not None else self._found.pop(key, None)
            if seen is not None and not seen.claimable(now):
                return self._judge(seen, view, key, seen is cached)
            validation = owner._validation_of(view, key)
            claim = IdempotencyItem(
                key, IN_PROGRESS, int(now + owner.expires_after),
                None if self._deadline is None else int(self._deadline * 1000),
                None, validation)
            hold = self._inflight[key] = _Hold()
            # held from before the write: a cancellation that lands while the store writes
            # leaves it to give_back (whose release deletes it only if it was written)
            self._claims[index] = claim
            self._views[index] = view
            try:
                other = await _call(owner.retry, self._deadline, store, store.claim, claim)
            except Exception as exc:
                self._claims.pop(index, None)
                self._views.pop(index, None)
                self._done(key, hold)
                raise IdempotencyStoreError(
                    f"record {_identifier(view)}: claiming its idempotency key {key} failed "
                    f"({describe(exc)}); the handler did not run",
                    identifier=_identifier(view), key=key) from exc
            except BaseException:
                self._done(key, hold)
                raise
            if other is None:
                hold.index = index
                return None
            self._claims.pop(index, None)
            self._views.pop(index, None)
            self._done(key, hold)
            if not isinstance(other, IdempotencyItem):
                raise IdempotencyStoreError(
                    f"record {_identifier(view)}: claiming its idempotency key {key} gave "
                    f"{type(other).__name__}, not None or an IdempotencyItem; the handler did "
                    "not run", identifier=_identifier(view), key=key)
            if not other.claimable(store.now()):
                return self._judge(other, view, key, False)
            # the record in the way expired between the write and now: claim again
        raise IdempotencyInProgressError(
            f"record {_identifier(view)}: its idempotency key {key} keeps changing hands; "
            "it will be redelivered", identifier=_identifier(view), key=key)

    def _judge(self, item: IdempotencyItem, view: Record, key: str,
               cached: bool) -> Replay:
        owner = self._owner
        if owner._validate is not None:
            mine = owner._validation_of(view, key)
            if item.validation != mine:
                raise IdempotencyValidationError(
                    f"record {_identifier(view)}: its idempotency key {key} was seen before "
                    "with a different payload (validation hash mismatch); not run",
                    identifier=_identifier(view), key=key)
        if item.status == COMPLETED:
            if not cached:
                owner._remember(item)
            data = item.data
            return Replay(None if data is None or data == "null" else json.loads(data))
        until = item.in_progress_expiration
        raise IdempotencyInProgressError(
            f"record {_identifier(view)}: its idempotency key {key} is being processed by "
            "another invocation"
            + (f" (its claim expires at {until / 1000:.3f})" if until is not None else "")
            + "; it will be redelivered", identifier=_identifier(view), key=key)

    async def complete(self, index: int, view: Record, result: Any) -> None:
        """After record ``index``'s handler succeeded: mark its key COMPLETED with
        ``result`` (stored when JSON can hold it). Never raises: a failed write is
        logged and the claim expires with its deadline. Cancelled meanwhile, the claim
        stays for ``give_back``, which completes it (the handler's effects happened)."""
        claim = self._claims.get(index)
        if claim is None:
            return
        self._results[index] = result
        await self._owner._complete(claim, result, self._deadline, _identifier(view))
        self._forget(index, claim)

    async def release(self, index: int, view: Record, error: BaseException) -> None:
        """After record ``index`` finally failed (or was cancelled): delete its claim so
        that a redelivery can run it. Never raises (a failed delete is logged; the claim
        then expires with the deadline). Cancelled meanwhile, the claim stays for
        ``give_back``."""
        claim = self._claims.get(index)
        if claim is None:
            return
        await self._owner._release(claim, self._deadline, _identifier(view))
        self._forget(index, claim)

    def _forget(self, index: int, claim: IdempotencyItem) -> None:
        """Record ``index``'s claim is settled: none of it stays in the batch."""
        self._claims.pop(index, None)
        self._views.pop(index, None)
        self._results.pop(index, None)
        self._done(claim.key, self._inflight.get(claim.key))

    def keep(self, index: int, view: Record, thread: ThreadCall) -> None:
        """Record ``index``'s call was abandoned (timeout, deadline) while its sync
        handler's thread runs on: keep its claim, so that no other call for its key starts
        while the thread can still have effects. Key-mates waiting for it fail
        transiently; ``give_back`` completes or releases the claim once the thread ended."""
        claim = self._claims.get(index)
        if claim is None:
            return
        self._threads[index] = thread
        hold = self._inflight.get(claim.key)
        if hold is not None:
            hold.thread = thread
            event, hold.event = hold.event, None
            if event is not None:
                event.set()  # the waiters look again, and see the thread

    async def _settle_thread(self, index: int) -> None:
        """An abandoned thread ended: its key is COMPLETED with what it returned (its
        effects happened: a redelivery replays them), or released if it raised."""
        thread = self._threads.pop(index)
        view = self._views.get(index)
        if thread.ok:
            await self.complete(index, view, thread.result)  # type: ignore[arg-type]
        else:
            await self.release(index, view, thread.error)  # type: ignore[arg-type]

    async def _give_back_one(self, index: int) -> None:
        view = self._views.get(index)
        if index in self._results:  # its handler succeeded; completing was cut short
            await self.complete(index, view, self._results[index])  # type: ignore[arg-type]
        else:
            await self.release(index, view, None)  # type: ignore[arg-type]

    async def give_back(self, threads: Optional[Mapping[int, ThreadCall]] = None,
                        spawn: Optional[Callable[[], AbstractAsyncContextManager[Any]]] = None
                        ) -> None:
        """After the run: settle the claims of abandoned threads that have ended, and
        release the claims of records that never finished (cancelled at the deadline or
        with the caller). Claims of threads still running (``threads``: the run's calls
        abandoned by a cancellation, beside those ``keep`` was told of) are kept: the
        ``Idempotency`` settles them in a later batch once their thread ended (or they
        expire). ``spawn`` (the backend's task group): the claims are given back
        concurrently (they are at most the records that ran at once), not one by one."""
        for index, thread in (threads or {}).items():
            if index in self._claims and index not in self._threads:
                self.keep(index, self._views.get(index), thread)  # type: ignore[arg-type]
        for index in [i for i, thread in self._threads.items() if thread.done]:
            await self._settle_thread(index)
        left = [i for i in self._claims if i not in self._threads]
        if spawn is None or len(left) < 2:
            for index in left:
                await self._give_back_one(index)
        else:  # all at once: as many store calls as records ran at once, no more
            async with spawn() as group:
                for index in left:
                    group.start_soon(self._give_back_one, index)
        for index, thread in list(self._threads.items()):
            claim = self._claims.pop(index)
            self._owner._orphan(claim, thread, _identifier(self._views.pop(index, None)))
            del self._threads[index]

    def _done(self, key: str, hold: Optional[_Hold]) -> None:
        if hold is not None:
            if self._inflight.get(key) is hold:
                del self._inflight[key]
            if hold.event is not None:
                hold.event.set()


class _Hold:
    """A claim this batch is making or holds (by record ``index``, once claimed);
    ``event`` is made when a key-mate waits; ``thread`` is set when the call was
    abandoned while its thread runs on (``keep``)."""

    __slots__ = ("event", "index", "thread")

    def __init__(self) -> None:
        self.event: Optional[anyio.Event] = None
        self.index = -1
        self.thread: Optional[ThreadCall] = None


def _event() -> anyio.Event:
    import anyio

    return anyio.Event()


def _valid_items(found: Any, wanted: Mapping[str, None]) -> dict[str, IdempotencyItem]:
    """What ``get_many`` answered, kept where it is an ``IdempotencyItem`` of a key asked
    for: a store answering something else (``None``, a string, foreign values) is treated
    like one that failed (logged; the conditional claims decide), never fails a record."""
    if not isinstance(found, Mapping):
        logger.warning("idempotency: the store's get_many returned %s, not a mapping of keys "
                       "to IdempotencyItem; every record will claim its key instead",
                       type(found).__name__)
        return {}
    try:
        items = {key: item for key, item in found.items()
                 if key in wanted and isinstance(item, IdempotencyItem) and item.key == key}
        if len(items) != len(found):
            logger.warning("idempotency: the store's get_many returned %d entries that are "
                           "not IdempotencyItem of the keys asked for; they are ignored",
                           len(found) - len(items))
    except Exception as exc:  # a mapping of the user's whose iteration raises
        logger.warning("idempotency: reading the store's get_many answer failed (%s); every "
                       "record will claim its key instead", describe(exc))
        return {}
    return items


def _identifier(view: Any) -> Optional[str]:
    try:
        identifier = view.identifier
    except Exception:
        return None
    return identifier if isinstance(identifier, str) else str(identifier)


async def _call(retry: Retry, deadline: Optional[float], store: IdempotencyStore,
                method: Callable[..., Any], *args: Any) -> Any:
    """``await method(*args)``, retried as ``retry`` says, never past ``deadline``."""
    attempt = 1
    while True:
        try:
            return await method(*args)
        except Exception as exc:
            if not retry.should_retry(exc, attempt):
                raise
            delay = retry.delay(attempt)
            if deadline is not None and store.now() + delay >= deadline:
                raise
        import anyio

        await anyio.sleep(delay)
        attempt += 1
