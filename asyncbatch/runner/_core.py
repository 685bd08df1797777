"""The runner's engine: invoking a Lambda-style handler, reading its response as the
event source mapping does, counting, and stopping. The sources (``_sqs``, ``_streams``)
poll AWS and apply the responses; they run on what is here."""

from __future__ import annotations

import abc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import anyio
import anyio.to_thread

from .._core.handlers import is_async_callable
from .._errors import AsyncBatchError, ConfigurationError, describe
from .._lambda.invoke import call_function
from .._lambda.response import InvalidResponseError as _ResponseError
from .._lambda.response import reported_identifiers
from ..testing import LambdaContext  # the one context object, asyncbatch.testing's

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - exercised on 3.9 and 3.10
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    import aioboto3

__all__ = [
    "BatchResult",
    "Counters",
    "FunctionTimeoutError",
    "LambdaHandler",
    "InvalidResponseError",
    "LambdaContext",
    "Runner",
    "RunnerError",
    "Poller",
]

logger = logging.getLogger("asyncbatch.runner")

#: A whole Lambda function, as the runner invokes it: ``handler(event, context)``, sync or
#: async, returning the partial batch response (``{"batchItemFailures": [...]}``) or
#: ``None`` (``asyncbatch.Handler`` is the record handler).
LambdaHandler = Callable[[dict[str, Any], Any], Any]


# -- errors -----------------------------------------------------------------------------


class RunnerError(AsyncBatchError):
    """Why the runner counted a whole batch as failed without the handler raising."""


class InvalidResponseError(RunnerError, _ResponseError):
    """The handler's response is not a valid partial batch response; like Lambda, the
    runner then counts the whole batch as failed."""


class FunctionTimeoutError(RunnerError, TimeoutError):
    """The handler ran past the function timeout; the whole batch failed."""


# -- counters and results -----------------------------------------------------------------


@dataclass(frozen=True)
class Counters:
    """A snapshot of what a runner has done.

    - ``batches``: handler invocations; ``records``: records delivered to it (a record
      delivered twice counts twice).
    - ``succeeded``: records acknowledged (SQS: deleted; streams: checkpointed past).
    - ``failed``: deliveries that were not acknowledged (reported in
      ``batchItemFailures``, after the lowest reported sequence number of a stream batch,
      or in a batch that failed whole).
    - ``redelivered``: deliveries of a record that had been delivered before.
    - ``dead_lettered``: records given up on (SQS: moved to the dead-letter queue, by the
      runner or by the queue's redrive policy; streams: discarded after the retry
      attempts, their batch metadata sent to the on-failure destination).
    - ``errors``: invocations that failed whole (exception, timeout, invalid response).
    """

    __slots__ = ("batches", "dead_lettered", "errors", "failed", "records", "redelivered",
                 "succeeded")

    batches: int
    records: int
    succeeded: int
    failed: int
    redelivered: int
    dead_lettered: int
    errors: int

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:
        return " ".join(f"{name.replace('_', '-')}={value}"
                        for name, value in self.as_dict().items())


class _Tally:
    """The live counters, updated on the event loop only."""

    __slots__ = ("batches", "dead_lettered", "errors", "failed", "records", "redelivered",
                 "succeeded")

    def __init__(self) -> None:
        self.batches = self.records = self.succeeded = self.failed = 0
        self.redelivered = self.dead_lettered = self.errors = 0

    def snapshot(self) -> Counters:
        return Counters(self.batches, self.records, self.succeeded, self.failed,
                        self.redelivered, self.dead_lettered, self.errors)


@dataclass(frozen=True)
class BatchResult:
    """One handler invocation and what the runner did with its response.

    ``identifiers`` are the batch's ``itemIdentifier`` values in event order; ``failed``
    those not acknowledged (to be redelivered, or dead-lettered); ``dead_lettered`` those
    given up on after this invocation; ``error`` why the batch failed whole (``None``
    when the handler returned a valid response); ``shard_id`` is ``None`` for SQS."""

    source_arn: str
    shard_id: Optional[str]
    identifiers: tuple[str, ...]
    failed: tuple[str, ...]
    dead_lettered: tuple[str, ...]
    redelivered: int
    error: Optional[BaseException]
    duration: float
    response: Any = None

    @property
    def succeeded(self) -> tuple[str, ...]:
        failed = set(self.failed)
        return tuple(i for i in self.identifiers if i not in failed)


# -- the Lambda side: context, invocation, response ---------------------------------------


def parse_response(response: Any, identifiers: Sequence[str]) -> list[str]:
    """The identifiers a partial batch response reports, as the event source mapping
    reads it: ``None``, ``{}`` or an empty/null ``batchItemFailures`` is a complete
    success; anything malformed (an empty, null or unknown ``itemIdentifier``, a
    non-mapping response, a response that is not JSON) raises ``InvalidResponseError``."""
    reported = reported_identifiers(response, set(identifiers), error=InvalidResponseError)
    return [str(ident) for ident in reported]


@dataclass(frozen=True)
class Answer:
    """The handler's answer to one batch: the reported identifiers, or ``error`` when the
    batch failed whole."""

    reported: tuple[str, ...]
    error: Optional[BaseException]
    response: Any
    duration: float


class _Invoker:
    __slots__ = ("function_name", "handler", "is_async", "timeout")

    def __init__(self, handler: LambdaHandler, timeout: float, function_name: str) -> None:
        self.handler = handler
        self.timeout = timeout
        self.function_name = function_name
        self.is_async = is_async_callable(handler)

    async def __call__(self, event: dict[str, Any], identifiers: Sequence[str],
                       source_arn: str) -> Answer:
        from ._events import arn_account, arn_region

        context = LambdaContext(self.timeout, function_name=self.function_name,
                                region=arn_region(source_arn) or "us-east-1",
                                account=arn_account(source_arn) or "123456789012")
        started = time.monotonic()
        response: Any = None
        try:
            if self.is_async:
                with anyio.move_on_after(self.timeout) as scope:
                    response = await call_function(self.handler, event, context,
                                                   is_async=True)
                if scope.cancelled_caught:
                    raise FunctionTimeoutError(
                        f"the handler ran past the {self.timeout:g}s function timeout "
                        "and was cancelled")
            else:
                response = await call_function(self.handler, event, context,
                                               is_async=False)
                elapsed = time.monotonic() - started
                if elapsed > self.timeout:
                    raise FunctionTimeoutError(
                        f"the handler ran {elapsed:.2f}s, past the {self.timeout:g}s "
                        "function timeout; its response was discarded")
            reported = parse_response(response, identifiers)
        except Exception as exc:
            duration = time.monotonic() - started
            # asyncbatch's own errors (BatchFailedError, ...) explain themselves; a
            # handler's unexpected exception gets its traceback.
            logger.warning("batch of %d from %s failed whole: %s", len(identifiers),
                           source_arn, describe(exc),
                           exc_info=not isinstance(exc, AsyncBatchError))
            return Answer((), exc, response, duration)
        return Answer(tuple(reported), None, response, time.monotonic() - started)


# -- what a source runs with --------------------------------------------------------------


class Env:
    """Everything a running source shares with the runner."""

    def __init__(self, *, session: Any, endpoint_url: Optional[str],
                 region_name: Optional[str], invoker: _Invoker, tally: _Tally,
                 max_batches: Optional[int], until_empty: bool,
                 on_batch: Optional[Callable[[BatchResult], None]]) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.invoke = invoker
        self.tally = tally
        self.max_batches = max_batches
        self.until_empty = until_empty
        self.on_batch = on_batch
        self.started = 0
        self.stopping = anyio.Event()
        self._interruptible: dict[anyio.CancelScope, bool] = {}

    # stopping

    def request_stop(self) -> None:
        """Stop taking new batches; waits for new data are interrupted."""
        if not self.stopping.is_set():
            self.stopping.set()
        for scope in list(self._interruptible):
            scope.cancel()

    @contextmanager
    def interruptible(self, *, on_budget: bool = False) -> Iterator[anyio.CancelScope]:
        """A scope cancelled by ``request_stop`` (and, with ``on_budget``, when
        ``max_batches`` is spent): wrap waits for new data in it, never a handler call or
        the acknowledgement of a batch."""
        scope = anyio.CancelScope()
        if self.stopping.is_set() or (on_budget and self.budget_spent):
            scope.cancel()
        self._interruptible[scope] = on_budget
        try:
            with scope:
                yield scope
        finally:
            del self._interruptible[scope]

    async def sleep(self, seconds: float, *, on_budget: bool = False) -> None:
        """Sleep, or return early when a stop is requested (or the budget is spent)."""
        with self.interruptible(on_budget=on_budget):
            await anyio.sleep(seconds)

    # the max_batches budget

    def take_batch(self) -> bool:
        """Reserve one invocation; ``False`` when stopping or ``max_batches`` is spent."""
        if self.stopping.is_set():
            return False
        if self.max_batches is not None and self.started >= self.max_batches:
            return False
        self.started += 1
        if self.budget_spent:
            for scope, on_budget in list(self._interruptible.items()):
                if on_budget:
                    scope.cancel()
        return True

    def give_back_batch(self) -> None:
        self.started -= 1

    @property
    def budget_spent(self) -> bool:
        return self.max_batches is not None and self.started >= self.max_batches

    # clients and reporting

    def client(self, service: str, *, pool: int = 10) -> AbstractAsyncContextManager[Any]:
        from aiobotocore.config import AioConfig

        config = AioConfig(max_pool_connections=max(10, pool))
        return self.session.client(  # type: ignore[no-any-return]
            service, endpoint_url=self.endpoint_url, region_name=self.region_name,
            config=config)

    def report(self, result: BatchResult) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(result)
        except Exception:
            logger.exception("the on_batch callback raised; ignored")


class Poller(abc.ABC):
    """Where batches come from: ``SQSPoller``, ``KinesisPoller``, ``DynamoDBStreamPoller``."""

    @abc.abstractmethod
    async def _run(self, env: Env) -> None:
        """Poll, invoke, acknowledge until ``env.stopping`` (or the budget, or empty)."""

    @property
    @abc.abstractmethod
    def describe(self) -> str:
        """A short description for logs and the CLI."""


# -- the runner -----------------------------------------------------------------------------


class Runner:
    """Plays Lambda's event source mapping locally: polls ``source`` and invokes
    ``handler(event, context)`` with batches shaped as Lambda shapes them, applying each
    response as the mapping would (delete / change visibility / dead-letter for SQS,
    checkpoint / retry / bisect / discard for streams).

    ``handler`` may be async (awaited on the runner's loop, cancelled at
    ``function_timeout``) or sync (run in a worker thread, so it may itself call
    ``asyncbatch.process_partial_response``; its response is discarded if it returns
    after ``function_timeout``). ``session`` is an ``aioboto3.Session`` (default: a new
    one); ``endpoint_url`` and ``region_name`` go to every client (``None``: the usual
    AWS configuration, including ``AWS_ENDPOINT_URL``). ``on_batch`` is called (on the
    event loop) with a ``BatchResult`` after each invocation's response was applied.
    """

    def __init__(
        self,
        source: Poller,
        handler: LambdaHandler,
        *,
        function_timeout: float = 30.0,
        function_name: str = "asyncbatch-local",
        session: Optional[aioboto3.Session] = None,
        endpoint_url: Optional[str] = None,
        region_name: Optional[str] = None,
        on_batch: Optional[Callable[[BatchResult], None]] = None,
    ) -> None:
        if not isinstance(source, Poller):
            raise ConfigurationError(
                f"source={source!r}: give SQSPoller(...), KinesisPoller(...) or "
                "DynamoDBStreamPoller(...)")
        if not callable(handler):
            raise ConfigurationError(
                f"handler={handler!r} is not callable; give a Lambda handler "
                "'def handler(event, context)' (or 'async def')")
        if isinstance(function_timeout, bool) or not isinstance(function_timeout, (int, float)) \
                or not function_timeout > 0:
            raise ConfigurationError(
                f"function_timeout={function_timeout!r}: give seconds > 0, e.g. 30")
        self.source = source
        self.handler = handler
        self.function_timeout = float(function_timeout)
        self.function_name = function_name
        self.session = session
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.on_batch = on_batch
        self._tally = _Tally()
        self._env: Optional[Env] = None
        self._stop_requested = False
        self._hard: Optional[anyio.CancelScope] = None

    def __repr__(self) -> str:
        return f"Runner({self.source.describe}, counters=<{self.counters}>)"

    @property
    def counters(self) -> Counters:
        """The live counters (a consistent snapshot; cumulative over ``run`` calls)."""
        return self._tally.snapshot()

    @property
    def running(self) -> bool:
        return self._env is not None

    def stop(self) -> None:
        """Stop gracefully: take no new batch, let the in-flight ones finish and be
        acknowledged, hand back what was received but not yet invoked. Call it on the
        runner's event loop (from another thread: ``anyio.from_thread.run_sync``)."""
        self._stop_requested = True
        if self._env is not None:
            self._env.request_stop()

    def abort(self) -> None:
        """Stop now: cancel the in-flight invocations; SQS messages are handed back
        (visibility 0), stream records stay after the checkpoint. Nothing is lost."""
        self.stop()
        if self._hard is not None:
            self._hard.cancel()

    async def run(
        self,
        *,
        stop: Optional[anyio.Event] = None,
        max_batches: Optional[int] = None,
        until_empty: bool = False,
        handle_signals: bool = False,
    ) -> Counters:
        """Run until stopped; return the counters.

        Stops gracefully when ``stop`` is set, when ``stop()`` is called, after
        ``max_batches`` invocations, or with ``until_empty`` once the source has nothing
        left (SQS: no message visible, in flight or delayed; streams: every shard read to
        its end with nothing pending or being retried). With ``handle_signals`` (main
        thread only), SIGINT/SIGTERM stop gracefully and a second one aborts."""
        if self._env is not None:
            raise RuntimeError("this runner is already running; make a second Runner")
        if max_batches is not None and (isinstance(max_batches, bool)
                                        or not isinstance(max_batches, int) or max_batches < 1):
            raise ConfigurationError(f"max_batches={max_batches!r}: give an int >= 1 or None")
        session = self.session
        if session is None:
            import aioboto3

            session = aioboto3.Session()
        env = Env(session=session, endpoint_url=self.endpoint_url,
                  region_name=self.region_name,
                  invoker=_Invoker(self.handler, self.function_timeout, self.function_name),
                  tally=self._tally, max_batches=max_batches, until_empty=until_empty,
                  on_batch=self.on_batch)
        self._env = env
        if self._stop_requested:
            env.request_stop()
        logger.info("runner started: %s", self.source.describe)
        try:
            async with anyio.create_task_group() as watchers:
                if stop is not None:
                    watchers.start_soon(self._watch, stop, env)
                if handle_signals:
                    watchers.start_soon(self._signals)
                with anyio.CancelScope() as hard:
                    self._hard = hard
                    await self.source._run(env)
                watchers.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # One error (a ConfigurationError, an AWS error at start) is raised as itself.
            leaves = _leaves(group)
            if len(leaves) == 1 and isinstance(leaves[0], Exception):
                raise leaves[0] from None
            raise
        finally:
            self._env = None
            self._hard = None
            self._stop_requested = False
        counters = self.counters
        logger.info("runner stopped: %s", counters)
        return counters

    async def _watch(self, stop: anyio.Event, env: Env) -> None:
        await stop.wait()
        env.request_stop()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            count = 0
            async for signum in signals:
                count += 1
                if count == 1:
                    logger.warning("signal %d: finishing in-flight batches (again to abort)",
                                   signum)
                    self.stop()
                else:
                    logger.warning("signal %d: aborting in-flight batches", signum)
                    self.abort()


# -- small helpers shared by the sources ------------------------------------------------------


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


class Wakeup:
    """A reusable notification: ``wait()`` returns after the next ``notify()``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@asynccontextmanager
async def shielded(seconds: float) -> AsyncIterator[None]:
    """Run cleanup that must happen even when the runner is being cancelled."""
    with anyio.move_on_after(seconds, shield=True):
        yield


def check_positive(name: str, value: Union[int, float], *, minimum: float = 0,
                   integer: bool = False, example: str = "") -> None:
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float)) \
        and value >= minimum
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(
            f"{name}={value!r}: give {kind} >= {minimum:g}{', e.g. ' + example if example else ''}")
