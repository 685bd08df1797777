"""The SQS side of the worker's held messages (``_consumer.py`` decides what becomes of
each): the deletes and visibility changes that settle them, coalesced into batch calls
and retried, and the heartbeat that renews their visibility while they are held.

A message's heartbeat and its settling call never go out together (at SQS the later
could land first): the settler leaves a message whose heartbeat is on its way for later,
the heartbeat skips one whose settling call is on its way.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable, Optional

import anyio

from .._core.retry import THROTTLING_CODES, Retry
from .._errors import describe
from .._sources.sqs import SQSRecord

__all__ = ["RUNNING", "SETTLING", "WAITING", "Counts", "Held", "Settler", "Warnings"]

logger = logging.getLogger("asyncbatch.consume")

BATCH = 10  # entries of one SQS batch call, and messages of one ReceiveMessage, at most
SETTLE_CALLS = 4  # delete / visibility calls in flight at once
HEARTBEAT_CALLS = 4
# Entry codes of a batch call that no retry can mend: the receipt handle is no longer
# valid (its visibility ran out, the message was received again or deleted).
_RECEIPT_GONE = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight",
                           "InvalidParameterValue"})

# what becomes of a held message
WAITING = 0  # received, not yet handed to the stream
RUNNING = 1  # handed to the stream
SETTLING = 2  # a delete or a visibility change is on its way


class Held:
    """One received message until it is deleted, released or left to SQS."""

    __slots__ = ("action", "attempts", "extend", "extending", "group", "message_id", "receipt",
                 "record", "sending", "state", "visible_until")

    def __init__(self, record: SQSRecord, message_id: str, receipt: str,
                 visible_until: float) -> None:
        self.record = record
        self.message_id = message_id
        self.receipt = receipt  # as received: a handler may edit its record
        self.visible_until = visible_until
        self.state = WAITING
        self.action: Optional[int] = None  # settling: None = delete, else the visibility
        self.attempts = 0  # settling calls made for it
        self.extend = True  # false once SQS refused to extend it
        self.extending = False  # a heartbeat call for it is on its way
        self.sending = False  # its settling call is on its way
        self.group: Any = None  # FIFO: its message group, as received


class Counts:
    """What the worker did so far (``ConsumeSummary``'s fields but the time)."""

    __slots__ = ("deleted", "expired", "failed", "received", "released", "succeeded",
                 "sunk", "undeleted")

    def __init__(self) -> None:
        self.received = self.succeeded = self.failed = self.sunk = self.released = 0
        self.deleted = self.undeleted = self.expired = 0


class Warnings:
    """At most ``per_window`` warnings per ``window`` seconds per kind; the rest counted and
    said with the next one that is let through."""

    __slots__ = ("_left", "_resets", "_skipped", "per_window", "window")

    def __init__(self, per_window: int = 10, window: float = 10.0) -> None:
        self.per_window = per_window
        self.window = window
        self._left: dict[str, int] = {}
        self._resets: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: Any) -> None:
        now = anyio.current_time()
        if now >= self._resets.get(kind, -math.inf):
            self._resets[kind] = now + self.window
            self._left[kind] = self.per_window
        if self._left[kind] <= 0:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._left[kind] -= 1
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            message += f" ({skipped} more like it not logged)"
        logger.warning(message, *args)


def transient(retry: Retry, exc: BaseException) -> bool:
    """Whether ``retry`` takes ``exc`` for transient (throttling, 5xx, a connection)."""
    return retry.should_retry(exc, 0)


class Settler:
    """Sends the deletes and visibility changes of held messages (``held`` maps each
    record to its ``Held``; a message settled is taken out of it) and renews the
    visibility of the others. ``fail`` is told of an error no retry mends."""

    def __init__(self, client: Any, queue_url: str, retry: Retry, held: dict[Any, Held],
                 counts: Counts, warnings: Warnings,
                 fail: Callable[[BaseException, str], None]) -> None:
        self.client = client
        self.queue_url = queue_url
        self.retry = retry
        self.held = held
        self.counts = counts
        self.warnings = warnings
        self.fail = fail
        self.deletes: deque[Held] = deque()
        self.changes: deque[Held] = deque()
        self.unsettled = 0  # queued or on their way
        self._wake: Optional[anyio.Event] = None
        self._all_done: Optional[anyio.Event] = None

    def send(self, held: Held, visibility: Optional[int]) -> None:
        """Delete ``held`` (``visibility`` None), or set its visibility timeout."""
        held.state = SETTLING
        held.action = visibility
        (self.deletes if visibility is None else self.changes).append(held)
        self.unsettled += 1
        self.wake()

    def wake(self) -> None:
        event, self._wake = self._wake, None
        if event is not None:
            event.set()

    def _done(self, held: Held) -> None:
        """``held``'s delete or visibility change is over (sent, or given up)."""
        self.held.pop(held.record, None)
        self.unsettled -= 1
        if self.unsettled == 0 and self._all_done is not None:
            self._all_done.set()

    async def settled(self) -> None:
        """Return once nothing is queued or on its way."""
        while self.unsettled:
            event = self._all_done = anyio.Event()
            await event.wait()

    # -- the calls ---------------------------------------------------------------------

    async def run(self) -> None:
        """Up to 10 entries a call, a few calls in flight; a failed entry back in line
        after a backoff."""
        limiter = anyio.Semaphore(SETTLE_CALLS)
        async with anyio.create_task_group() as calls:
            while True:
                batch, kind = self._next_batch()
                if not batch:
                    event = self._wake = anyio.Event()
                    await event.wait()
                    continue
                await limiter.acquire()
                calls.start_soon(self._call, batch, kind, limiter)

    def _next_batch(self) -> tuple[list[Held], str]:
        for kind, pending in (("delete", self.deletes), ("change", self.changes)):
            batch: list[Held] = []
            waiting: list[Held] = []
            while pending and len(batch) < BATCH:
                held = pending.popleft()
                (waiting if held.extending else batch).append(held)
            pending.extendleft(reversed(waiting))
            if batch:
                for held in batch:
                    held.sending = True
                return batch, kind
        return [], ""

    async def _call(self, batch: list[Held], kind: str, limiter: anyio.Semaphore) -> None:
        try:
            again = await self._send(batch, kind)
        finally:
            limiter.release()
        if again:
            await self._requeue(again, kind)

    async def _requeue(self, again: list[Held], kind: str) -> None:
        """Throttled or failing: back in line after a backoff."""
        await anyio.sleep(self.retry.delay(max(held.attempts for held in again)))
        (self.deletes if kind == "delete" else self.changes).extend(again)
        self.wake()

    async def _send(self, batch: list[Held], kind: str) -> list[Held]:
        """One batch call; each entry is done, or given up, or returned to be sent again
        (a transient error, while the retry policy allows)."""
        delete = kind == "delete"
        entries: list[dict[str, Any]] = [
            {"Id": str(i), "ReceiptHandle": held.receipt} for i, held in enumerate(batch)]
        if not delete:
            for entry, held in zip(entries, batch):
                entry["VisibilityTimeout"] = held.action
        for held in batch:
            held.attempts += 1
        try:
            if delete:
                response = await self.client.delete_message_batch(
                    QueueUrl=self.queue_url, Entries=entries)
            else:
                response = await self.client.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries)
        except Exception as exc:
            if not transient(self.retry, exc):
                self.fail(exc, "DeleteMessageBatch" if delete
                          else "ChangeMessageVisibilityBatch")
            return self._again(batch, delete, describe(exc), exc)
        finally:
            for held in batch:
                held.sending = False
        failed = {str(item.get("Id")): item for item in response.get("Failed") or ()}
        retry: list[Held] = []
        for i, held in enumerate(batch):
            item = failed.get(str(i))
            if item is None:
                if delete:
                    self.counts.deleted += 1
                self._done(held)
            elif item.get("Code") in _RECEIPT_GONE or (
                    item.get("SenderFault") and not _entry_transient(item)):
                self._gave_up(held, delete, f"{item.get('Code')}: {item.get('Message')}")
            else:
                retry.extend(self._again([held], delete, str(item.get("Code")), None))
        return retry

    def _again(self, batch: list[Held], delete: bool, why: str,
               exc: Optional[BaseException]) -> list[Held]:
        """Those of ``batch`` the retry policy sends again; the others are given up."""
        again = []
        for held in batch:
            if exc is None:
                retried = held.attempts < self.retry.attempts
            else:
                retried = self.retry.should_retry(exc, held.attempts)
            if retried:
                again.append(held)
            else:
                self._gave_up(held, delete, why)
        return again

    def _gave_up(self, held: Held, delete: bool, why: str) -> None:
        if delete:
            self.counts.undeleted += 1
            self.warnings.warn("delete", "message %s was handled but could not be deleted "
                               "(%s): SQS delivers it again", held.message_id, why)
        else:
            self.warnings.warn("change", "the visibility of message %s could not be changed "
                               "to %s s (%s): it comes back when its visibility runs out",
                               held.message_id, held.action, why)
        self._done(held)

    async def flush(self) -> None:
        """When the settler's task is gone (cancelled): what is queued or was on its way,
        sent one call at a time from this task."""
        settling = [held for held in self.held.values() if held.state == SETTLING]
        self.deletes = deque(held for held in settling if held.action is None)
        self.changes = deque(held for held in settling if held.action is not None)
        while True:
            batch, kind = self._next_batch()
            if not batch:
                return
            again = await self._send(batch, kind)
            if again:
                await self._requeue(again, kind)

    def unsent(self) -> tuple[int, int]:
        """Deletes and visibility changes still queued or on their way."""
        left = [held for held in self.held.values() if held.state == SETTLING]
        deletes = sum(1 for held in left if held.action is None)
        return deletes, len(left) - deletes

    # -- the heartbeat -------------------------------------------------------------------

    async def heartbeat(self, visibility: int) -> None:
        """Every held message waiting, running or being deleted has its visibility renewed
        once two thirds of the timeout are left, from a tick every sixth of it (at most
        5 s): half the timeout of slack for the call to land. (A message being released
        or given a failure visibility is not renewed.)"""
        period = max(0.05, min(visibility / 6, 5.0))
        lead = visibility * 2 / 3
        limiter = anyio.Semaphore(HEARTBEAT_CALLS)
        while True:
            await anyio.sleep(period)
            now = anyio.current_time()
            due = [held for held in self.held.values()
                   if held.visible_until - now <= lead and held.extend and not held.extending
                   and not held.sending and (held.state != SETTLING or held.action is None)]
            if not due:
                continue
            async with anyio.create_task_group() as calls:
                for start in range(0, len(due), BATCH):
                    batch = due[start:start + BATCH]
                    for held in batch:
                        held.extending = True
                    await limiter.acquire()
                    calls.start_soon(self._extend, batch, visibility, limiter)

    async def _extend(self, batch: list[Held], visibility: int,
                      limiter: anyio.Semaphore) -> None:
        whole = batch
        try:
            for attempt in range(1, 6):  # then the next tick tries again
                sent = anyio.current_time()
                entries = [{"Id": str(i), "ReceiptHandle": held.receipt,
                            "VisibilityTimeout": visibility} for i, held in enumerate(batch)]
                try:
                    response = await self.client.change_message_visibility_batch(
                        QueueUrl=self.queue_url, Entries=entries)
                except Exception as exc:
                    if not transient(self.retry, exc):
                        self.fail(exc, "ChangeMessageVisibilityBatch")
                        return
                    self.warnings.warn("heartbeat", "extending the visibility of %d "
                                       "message(s) failed (%s); retrying", len(batch),
                                       describe(exc))
                    await anyio.sleep(min(self.retry.delay(attempt), visibility / 12))
                    continue
                failed = {str(item.get("Id")): item for item in response.get("Failed") or ()}
                again: list[Held] = []
                for i, held in enumerate(batch):
                    item = failed.get(str(i))
                    if item is None:
                        held.visible_until = sent + visibility
                    elif item.get("Code") in _RECEIPT_GONE:
                        held.extend = False
                        self.counts.expired += 1
                        self.warnings.warn(
                            "expired", "message %s: SQS no longer extends its visibility "
                            "(%s): it may be delivered again while held", held.message_id,
                            item.get("Code"))
                    else:
                        again.append(held)
                if not again:
                    return
                batch = again
        finally:
            for held in whole:
                held.extending = False
            limiter.release()
            self.wake()


def _entry_transient(item: Mapping[str, Any]) -> bool:
    return item.get("Code") in THROTTLING_CODES
