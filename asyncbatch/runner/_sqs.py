"""SQS as Lambda's event source mapping reads it: long polling, batch size and batching
window, delete what succeeded, change the visibility of what failed, dead-letter after the
maximum receive count; standard and FIFO queues."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from .._errors import ConfigurationError
from ._core import BatchResult, Env, Poller, check_positive, shielded
from ._events import arn_account, arn_region, sqs_record

__all__ = ["SQSPoller"]

logger = logging.getLogger("asyncbatch.runner")

_AWS_ERRORS = (ClientError, BotoCoreError)
_MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit


def _chunks(items: Sequence[Any], size: int = 10) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class _Queue:
    url: str
    arn: str
    region: str
    fifo: bool
    visibility_timeout: int
    redrive_max: Optional[int]
    dead_letter_url: Optional[str]


@dataclass(frozen=True)
class SQSPoller(Poller):
    """An SQS queue (standard or FIFO), read as Lambda's event source mapping reads it.

    - ``batch_size`` (1..10, or up to 10,000 with a ``batching_window``): records per
      invocation. ``batching_window``: seconds to keep gathering after the first message
      (Lambda's ``MaximumBatchingWindowInSeconds``); ``0`` invokes with what one receive
      returns.
    - ``max_concurrency``: batches in flight at once (Lambda's concurrent invocations).
      FIFO message groups stay in order: SQS delivers no message of a group while another
      of it is in flight.
    - ``wait_time``: long-poll seconds per ``ReceiveMessage`` (0..20).
    - ``visibility_timeout``: passed to ``ReceiveMessage`` (``None``: the queue's). As in
      AWS, it must be at least the runner's ``function_timeout``.
    - ``failure_visibility_timeout``: after a failure, the failed messages are made
      visible again after this many seconds (``ChangeMessageVisibilityBatch``; ``0``:
      redeliver at once). ``None`` leaves them invisible until their visibility timeout
      runs out, exactly as Lambda does.
    - Dead-lettering: by default the queue's own ``RedrivePolicy`` does it, as in AWS: SQS
      moves a message whose receive count reached ``maxReceiveCount`` at its next receive
      (the runner counts it as dead-lettered when it hands it back). With
      ``max_receive_count``, the runner moves a message itself once it fails at that
      receive count: ``SendMessage`` to ``dead_letter_queue_url`` (default: the redrive
      policy's target) with the same body, attributes and (FIFO) group, then
      ``DeleteMessage``. When both apply, the lower count wins.
    """

    queue_url: str
    batch_size: int = 10
    batching_window: float = 0.0
    max_concurrency: int = 1
    wait_time: int = 20
    visibility_timeout: Optional[int] = None
    failure_visibility_timeout: Optional[int] = None
    max_receive_count: Optional[int] = None
    dead_letter_queue_url: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.queue_url, str) or not self.queue_url:
            raise ConfigurationError(f"queue_url={self.queue_url!r}: give the queue's URL")
        check_positive("batch_size", self.batch_size, minimum=1, integer=True, example="10")
        check_positive("batching_window", self.batching_window, example="1.0")
        if self.batch_size > 10_000 or (self.batch_size > 10 and self.batching_window <= 0):
            raise ConfigurationError(
                f"batch_size={self.batch_size}: SQS batches hold at most 10 records without "
                "a batching window, and at most 10,000 with one; pass batching_window=1.0 "
                "(seconds) for larger batches")
        if self.batching_window > 300:
            raise ConfigurationError(
                f"batching_window={self.batching_window}: at most 300 seconds")
        check_positive("max_concurrency", self.max_concurrency, minimum=1, integer=True,
                       example="2")
        check_positive("wait_time", self.wait_time, integer=True, example="20")
        if self.wait_time > 20:
            raise ConfigurationError(f"wait_time={self.wait_time}: SQS long polls 0..20 s")
        for name in ("visibility_timeout", "failure_visibility_timeout"):
            value = getattr(self, name)
            if value is not None:
                check_positive(name, value, integer=True, example="0")
                if value > 43_200:
                    raise ConfigurationError(f"{name}={value}: at most 43200 seconds")
        if self.max_receive_count is not None:
            check_positive("max_receive_count", self.max_receive_count, minimum=1,
                           integer=True, example="3")

    @property
    def describe(self) -> str:
        return f"SQS {self.queue_url} (batch size {self.batch_size})"

    # -- setup -----------------------------------------------------------------------------

    async def _queue(self, env: Env, sqs: Any) -> _Queue:
        found = await sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])
        attributes = found.get("Attributes", {})
        arn = attributes["QueueArn"]
        region = arn_region(arn)
        visibility = int(attributes.get("VisibilityTimeout", 30))
        effective = self.visibility_timeout if self.visibility_timeout is not None \
            else visibility
        if effective < env.invoke.timeout:
            raise ConfigurationError(
                f"the queue's visibility timeout ({effective} s) is less than the function "
                f"timeout ({env.invoke.timeout:g} s): messages would be redelivered while "
                "being handled. AWS refuses this mapping too; raise the queue's "
                "VisibilityTimeout, pass visibility_timeout=, or lower function_timeout")
        redrive_max: Optional[int] = None
        dead_letter_url = self.dead_letter_queue_url
        policy = attributes.get("RedrivePolicy")
        if policy:
            parsed = json.loads(policy)
            redrive_max = int(parsed["maxReceiveCount"])
            target = parsed.get("deadLetterTargetArn")
            if dead_letter_url is None and target and self.max_receive_count is not None:
                name = target.rsplit(":", 1)[-1]
                got = await sqs.get_queue_url(QueueName=name,
                                              QueueOwnerAWSAccountId=arn_account(target))
                dead_letter_url = got["QueueUrl"]
        if self.max_receive_count is not None and dead_letter_url is None:
            raise ConfigurationError(
                f"max_receive_count={self.max_receive_count} needs a dead-letter queue: pass "
                "dead_letter_queue_url= or give the queue a RedrivePolicy")
        return _Queue(url=self.queue_url, arn=arn, region=region,
                      fifo=attributes.get("FifoQueue") == "true",
                      visibility_timeout=visibility, redrive_max=redrive_max,
                      dead_letter_url=dead_letter_url)

    async def _run(self, env: Env) -> None:
        async with env.client("sqs", pool=2 * self.max_concurrency + 2) as sqs:
            queue = await self._queue(env, sqs)
            # One ReceiveMessage at a time, batches handled concurrently. SQS needs no
            # such lock, but moto's receive is not atomic: two concurrent receives can
            # share a FIFO message group or a message. The cost is nil: receives are
            # short next to the invocations they feed.
            receiving = anyio.Lock()
            async with anyio.create_task_group() as tg:
                for _ in range(self.max_concurrency):
                    tg.start_soon(self._poll, env, sqs, queue, receiving)

    # -- polling ---------------------------------------------------------------------------

    async def _poll(self, env: Env, sqs: Any, queue: _Queue, receiving: anyio.Lock) -> None:
        while True:
            if not env.take_batch():
                return
            with env.interruptible() as scope:
                await receiving.acquire()
            if scope.cancelled_caught:
                env.give_back_batch()
                return
            try:
                messages = await self._collect(env, sqs, queue)
            finally:
                receiving.release()
            if not messages:
                env.give_back_batch()
                if env.stopping.is_set():
                    return
                if env.until_empty and await self._is_empty(sqs, queue):
                    logger.info("queue %s is empty: stopping", queue.url)
                    env.request_stop()
                    return
                continue
            if env.stopping.is_set():
                # Gathered inside a batching window, never invoked: hand them back.
                env.give_back_batch()
                async with shielded(30):
                    await self._change_visibility(sqs, queue, messages, 0)
                return
            await self._handle(env, sqs, queue, messages)

    async def _receive(self, env: Env, sqs: Any, queue: _Queue, count: int,
                       wait: int) -> Optional[list[dict[str, Any]]]:
        """One ``ReceiveMessage``; ``None`` when interrupted by a stop (messages it may
        have taken come back after their visibility timeout)."""
        params: dict[str, Any] = {
            "QueueUrl": queue.url, "MaxNumberOfMessages": count, "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            params["VisibilityTimeout"] = self.visibility_timeout
        with env.interruptible() as scope:
            try:
                response = await sqs.receive_message(**params)
            except _AWS_ERRORS as exc:
                logger.warning("ReceiveMessage on %s failed: %r; retrying", queue.url, exc)
                await anyio.sleep(1.0)
                return []
        if scope.cancelled_caught:
            return None
        return list(response.get("Messages") or [])

    async def _collect(self, env: Env, sqs: Any, queue: _Queue) -> list[dict[str, Any]]:
        """One batch: what one receive returns, or (with a batching window) what arrives
        until the batch is full, the window has passed, or the payload reaches 6 MB."""
        first = await self._receive(env, sqs, queue, min(10, self.batch_size), self.wait_time)
        if not first:
            return []
        messages = first
        if self.batching_window <= 0:
            return messages
        deadline = time.monotonic() + self.batching_window
        size = sum(len(m.get("Body") or "") for m in messages)
        while len(messages) < self.batch_size and size < _MAX_PAYLOAD:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(self.wait_time, int(remaining))
            more = await self._receive(env, sqs, queue,
                                       min(10, self.batch_size - len(messages)), wait)
            if more is None:
                break
            if not more and wait == 0:
                await env.sleep(min(remaining, 0.05))
            messages.extend(more)
            size += sum(len(m.get("Body") or "") for m in more)
        return messages

    async def _is_empty(self, sqs: Any, queue: _Queue) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        try:
            found = await sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=names)
        except _AWS_ERRORS:
            return False
        attributes = found.get("Attributes", {})
        return all(int(attributes.get(name, 0)) == 0 for name in names)

    # -- one batch -------------------------------------------------------------------------

    async def _handle(self, env: Env, sqs: Any, queue: _Queue,
                      messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(m, queue.arn, queue.region) for m in messages]
        ids = [r["messageId"] for r in records]
        redelivered = sum(1 for m in messages if _receive_count(m) > 1)
        tally = env.tally
        tally.batches += 1
        tally.records += len(records)
        tally.redelivered += redelivered
        try:
            invocation = await env.invoke({"Records": records}, ids, queue.arn)
        except BaseException:
            # Aborted: hand the batch back for immediate redelivery.
            async with shielded(30):
                await self._change_visibility(sqs, queue, messages, 0)
            raise
        failed = set(ids) if invocation.error is not None else set(invocation.reported)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        retry: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        by_redrive: list[dict[str, Any]] = []
        for message in messages:
            if message["MessageId"] not in failed:
                continue
            count = _receive_count(message)
            if self.max_receive_count is not None and count >= self.max_receive_count:
                moved.append(message)
            elif queue.redrive_max is not None and count >= queue.redrive_max:
                by_redrive.append(message)
            else:
                retry.append(message)
        async with shielded(60):
            deleted = await self._delete(sqs, queue, succeeded)
            dead = await self._dead_letter(sqs, queue, moved)
            if by_redrive:
                # SQS moves these at their next receive; make that happen now.
                await self._change_visibility(sqs, queue, by_redrive, 0)
                dead.extend(m["MessageId"] for m in by_redrive)
            if retry and self.failure_visibility_timeout is not None:
                await self._change_visibility(sqs, queue, retry,
                                              self.failure_visibility_timeout)
        tally.succeeded += deleted
        tally.failed += len(failed)
        tally.dead_lettered += len(dead)
        if invocation.error is not None:
            tally.errors += 1
        env.report(BatchResult(
            source_arn=queue.arn, shard_id=None, identifiers=tuple(ids),
            failed=tuple(i for i in ids if i in failed), dead_lettered=tuple(dead),
            redelivered=redelivered, error=invocation.error, duration=invocation.duration,
            response=invocation.response))

    async def _delete(self, sqs: Any, queue: _Queue, messages: Sequence[dict[str, Any]]) -> int:
        deleted = 0
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(chunk)]
            try:
                response = await sqs.delete_message_batch(QueueUrl=queue.url, Entries=entries)
            except _AWS_ERRORS as exc:
                logger.warning("DeleteMessageBatch on %s failed: %r; those messages will be "
                               "redelivered", queue.url, exc)
                continue
            for failure in response.get("Failed") or []:
                logger.warning("could not delete message %s: %s", chunk[int(failure["Id"])]
                               ["MessageId"], failure.get("Message", failure.get("Code")))
            deleted += len(response.get("Successful") or [])
        return deleted

    async def _change_visibility(self, sqs: Any, queue: _Queue,
                                 messages: Sequence[dict[str, Any]], seconds: int) -> None:
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": seconds} for i, m in enumerate(chunk)]
            try:
                response = await sqs.change_message_visibility_batch(
                    QueueUrl=queue.url, Entries=entries)
            except _AWS_ERRORS as exc:
                logger.warning("ChangeMessageVisibilityBatch on %s failed: %r", queue.url, exc)
                continue
            for failure in response.get("Failed") or []:
                logger.warning("could not change the visibility of message %s: %s",
                               chunk[int(failure["Id"])]["MessageId"],
                               failure.get("Message", failure.get("Code")))

    async def _dead_letter(self, sqs: Any, queue: _Queue,
                           moved: Sequence[dict[str, Any]]) -> list[str]:
        """Move messages to the dead-letter queue: send a copy, then delete the original
        (a crash in between leaves a duplicate in the DLQ, never a loss)."""
        done: list[str] = []
        target = queue.dead_letter_url
        if not moved or target is None:
            return done
        for message in moved:
            params: dict[str, Any] = {"QueueUrl": target, "MessageBody": message.get("Body", "")}
            attributes = {
                name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue")
                       if key in value}
                for name, value in (message.get("MessageAttributes") or {}).items()}
            if attributes:
                params["MessageAttributes"] = attributes
            if target.endswith(".fifo"):
                group = (message.get("Attributes") or {}).get("MessageGroupId", "default")
                params["MessageGroupId"] = group
                params["MessageDeduplicationId"] = message["MessageId"]
            try:
                await sqs.send_message(**params)
                await sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
            except _AWS_ERRORS as exc:
                logger.warning("could not move message %s to %s: %r; it will be redelivered",
                               message["MessageId"], target, exc)
                continue
            logger.info("message %s dead-lettered to %s after %d receives",
                        message["MessageId"], target, _receive_count(message))
            done.append(message["MessageId"])
        return done
