"""``S3CsvImporter``: configuration, clients, and the objects of an event one by one."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, Union

from ..._core.deadline import AUTO, Deadline, check_margins, deadlines
from ..._core.retry import Retry
from ..._errors import ConfigurationError
from .._client import error_code
from ._backoff import Backoff
from ._errors import ImportDeadlineError, ImportIncompleteError, S3MoveError
from ._event import object_event, s3_objects
from ._results import ImportProgress, ImportResult, ObjectResult
from ._run import ObjectRun, skipped

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._event import S3Object

__all__ = ["Clients", "S3CsvImporter", "import_csv_objects"]

logger = logging.getLogger("asyncbatch.s3_import")

M = TypeVar("M", bound="BaseModel")

#: The suffix of an errors report's key.
REPORT_SUFFIX = ".errors.csv"


class Clients:
    """The aioboto3 clients an import uses (``S3CsvImporter.open_clients()``)."""

    __slots__ = ("dynamodb", "s3", "sns")

    def __init__(self, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns


def _dump(model: BaseModel) -> Mapping[str, Any]:
    return model.model_dump(exclude_none=True)


def _check_prefixes(prefixes: Mapping[str, str]) -> None:
    for name, prefix in prefixes.items():
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"{name}={prefix!r}: give a non-empty key prefix")
    for name, prefix in prefixes.items():
        for other, value in prefixes.items():
            if name != other and value.startswith(prefix):
                raise ConfigurationError(
                    f"{name}={prefix!r} and {other}={value!r}: the archive, error and "
                    "report prefixes must not contain one another, or a moved object "
                    "could take a report's key")


class S3CsvImporter(Generic[M]):
    """Imports CSV objects named by S3 events into a DynamoDB table.

    ``model`` is a pydantic model; its required fields (by alias when one is set) are
    the required columns. Options:

    - ``topic_arn``: SNS topic that receives one summary per object (``None``: none).
    - ``concurrency``: ``BatchWriteItem`` requests in flight at once (the bound of the
      worker pool; the DynamoDB connection pool is sized to it).
    - ``key_attributes``: the table's key attribute names; ``None`` reads them with
      ``DescribeTable`` once per run.
    - ``item``: turns a validated model into the item's attributes (default:
      ``model.model_dump(exclude_none=True)``).
    - ``empty_values``: cell texts that mean "no value" (default ``("",)``; e.g. add
      ``"NULL"``); ``strip``: strip blanks around cells (default ``True``).
    - ``archive_prefix`` / ``error_prefix`` / ``report_prefix``: where objects go
      (``"archive/"``, ``"error/"``) and where the errors report of ``<key>`` goes
      (``"reports/<key>.errors.csv"``), in the same bucket. Objects under them are never
      imported, so a trigger on the whole bucket cannot loop; no write replaces an
      existing object (a unique suffix is added instead).
    - ``retry``: an ``asyncbatch.Retry`` for unprocessed items, throttling and 5xx errors
      of every AWS call (default: 20 attempts, full jitter from 50 ms, at most 5 s per
      wait); a wait that would pass the deadline is not made.
    - ``deadline_margin`` / ``cancel_margin``: with a Lambda context, stop reading and
      starting writes ``deadline_margin`` seconds before the timeout, cancel writes in
      flight ``cancel_margin`` seconds before it; the rest of the time moves the object
      and publishes. ``"auto"``: as ``AsyncBatchProcessor`` (10% of the remaining time,
      0.5 to 30 s; 5%, 0.2 to 10 s).
    - ``queue_size``: chunks of 25 rows buffered between the reader and the writers
      (default: ``concurrency``); memory is bounded by it, not by the file.
    - ``read_size``: bytes per S3 read (64 KiB).
    - ``max_row_size``: the longest row kept, in characters (default 1 MiB); a longer
      one is skipped and rejected, the rows after it are imported. (A single cell over
      ``csv``'s field limit, 128 KiB, is rejected the same way.)
    - ``max_errors``: row errors kept on the result (all go to the errors CSV).
    - ``on_progress`` / ``progress_interval``: a callback receiving ``ImportProgress``
      at most every ``progress_interval`` seconds, and once at the end of each object.
    - ``session``: the ``aioboto3.Session`` to make clients with (default: one made on
      first use and kept, so that warm invocations do not load the service models again).

    The importer holds configuration (and its aioboto3 session) only; one instance may
    serve concurrent runs. Keep one per Lambda container, at module level.
    """

    def __init__(
        self,
        model: type[M],
        table_name: str,
        *,
        topic_arn: Optional[str] = None,
        concurrency: int = 16,
        key_attributes: Optional[Sequence[str]] = None,
        item: Optional[Callable[[M], Mapping[str, Any]]] = None,
        empty_values: Sequence[str] = ("",),
        strip: bool = True,
        archive_prefix: str = "archive/",
        error_prefix: str = "error/",
        report_prefix: str = "reports/",
        retry: Optional[Retry] = None,
        deadline_margin: Union[float, str] = AUTO,
        cancel_margin: Union[float, str] = AUTO,
        queue_size: Optional[int] = None,
        read_size: int = 64 * 1024,
        max_row_size: int = 1 << 20,
        max_errors: int = 100,
        on_progress: Optional[Callable[[ImportProgress], None]] = None,
        progress_interval: float = 0.5,
        session: Any = None,
    ) -> None:
        if not (hasattr(model, "model_validate") and hasattr(model, "model_fields")):
            raise ConfigurationError(f"model={model!r}: give a pydantic v2 model class")
        if not isinstance(table_name, str) or not table_name:
            raise ConfigurationError("table_name: give the DynamoDB table's name")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) \
                or concurrency < 1:
            raise ConfigurationError(
                f"concurrency={concurrency!r}: give a whole number >= 1 (BatchWriteItem "
                "requests in flight), e.g. concurrency=16")
        if queue_size is not None and (not isinstance(queue_size, int) or queue_size < 1):
            raise ConfigurationError(f"queue_size={queue_size!r}: give a number >= 1 or None")
        if retry is None:
            retry = Retry(attempts=20, base=0.05, cap=5.0)
        elif not isinstance(retry, Retry):
            raise ConfigurationError(f"retry={retry!r}: give asyncbatch.Retry(...) or None")
        check_margins(deadline_margin, cancel_margin)
        _check_prefixes({"archive_prefix": archive_prefix, "error_prefix": error_prefix,
                         "report_prefix": report_prefix})
        if read_size < 1024:
            raise ConfigurationError("read_size: give at least 1024 bytes")
        if isinstance(max_row_size, bool) or not isinstance(max_row_size, int) \
                or max_row_size < 1024:
            raise ConfigurationError(
                f"max_row_size={max_row_size!r}: give a number of characters >= 1024")
        self.model = model
        self.table_name = table_name
        self.topic_arn = topic_arn
        self.concurrency = concurrency
        self.key_attributes = tuple(key_attributes) if key_attributes is not None else None
        self.item: Callable[[M], Mapping[str, Any]] = item or _dump
        self.empty_values = frozenset(empty_values) | {""}
        self.strip = strip
        self.archive_prefix = archive_prefix
        self.error_prefix = error_prefix
        self.report_prefix = report_prefix
        self.retry = retry
        self.deadline_margin = deadline_margin
        self.cancel_margin = cancel_margin
        self.queue_size = queue_size if queue_size is not None else concurrency
        self.read_size = read_size
        self.max_row_size = max_row_size
        self.max_errors = max_errors
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.session = session
        self.required_columns = tuple(
            (field.alias or name) for name, field in model.model_fields.items()
            if field.is_required())

    def __repr__(self) -> str:
        return (f"S3CsvImporter({self.model.__name__}, table_name={self.table_name!r}, "
                f"concurrency={self.concurrency})")

    def report_key(self, key: str) -> str:
        """Where the errors report of the object ``key`` goes (unique per key)."""
        return f"{self.report_prefix}{key}{REPORT_SUFFIX}"

    # -- clients ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_clients(self) -> AsyncIterator[Clients]:
        """aioboto3 clients for S3, DynamoDB and SNS, their connection pools sized to
        ``concurrency`` (aiobotocore's default of 10 would silently cap it), botocore's
        own retries off: ``retry`` retries every call, within the deadline.
        ``AWS_ENDPOINT_URL`` is honoured (botocore reads it)."""
        import aioboto3
        from aiobotocore.config import AioConfig

        session = self.session
        if session is None:
            # Made once and kept: a session caches the service models, which take
            # ~0.2 s to load; clients are made per run, in the running event loop.
            session = self.session = aioboto3.Session()
        once = {"mode": "standard", "total_max_attempts": 1}
        pool_size = max(10, self.concurrency + 2)
        async with contextlib.AsyncExitStack() as stack:
            s3 = await stack.enter_async_context(session.client(
                "s3", config=AioConfig(max_pool_connections=10, retries=once)))
            # The items are built here, well-formed: botocore's client-side validation
            # of every nested attribute (~7 ms per 25-item request) is skipped.
            dynamodb = await stack.enter_async_context(session.client(
                "dynamodb", config=AioConfig(max_pool_connections=pool_size, retries=once,
                                             parameter_validation=False)))
            sns = None
            if self.topic_arn is not None:
                sns = await stack.enter_async_context(session.client(
                    "sns", config=AioConfig(retries=once)))
            yield Clients(s3, dynamodb, sns)

    # -- running ----------------------------------------------------------------------

    async def run(self, event: Any, context: Any = None, *,
                  clients: Optional[Clients] = None) -> ImportResult:
        """Import every object of an S3 event, one after another. Never raises for a
        bad file: each object's fate is on the result. Raises ``InvalidEventError`` for
        an event that is not an S3 notification, ``ConfigurationError`` for a context
        with a broken clock, before anything is read."""
        objects = s3_objects(event)
        deadline = deadlines(context, self.deadline_margin, self.cancel_margin)
        started = time.perf_counter()
        if not objects:
            return ImportResult((), 0.0)
        if clients is None:
            async with self.open_clients() as opened:
                results = await self._run_all(objects, deadline, opened)
        else:
            results = await self._run_all(objects, deadline, clients)
        return ImportResult(tuple(results), time.perf_counter() - started)

    async def _run_all(self, objects: Sequence[S3Object], deadline: Optional[Deadline],
                       clients: Clients) -> list[ObjectResult]:
        keys = self.key_attributes
        if keys is None:
            keys = await self._describe_keys(clients, deadline)
        return [await self._run_one(obj, clients, keys, deadline) for obj in objects]

    async def import_object(self, bucket: str, key: str, context: Any = None, *,
                            clients: Optional[Clients] = None) -> ObjectResult:
        """Import one object (its key as stored, not URL-encoded)."""
        result = await self.run(object_event(bucket, key), context, clients=clients)
        return result.objects[0]

    def lambda_handler(self, event: Any, context: Any = None) -> dict[str, Any]:
        """A synchronous Lambda handler: imports the event's objects on the event loop
        asyncbatch keeps per thread (as ``process_partial_response``); returns
        ``ImportResult.to_dict()``. Raises ``ImportIncompleteError`` when an object
        could not be moved or its summary not published, so that S3 invokes the function
        again and the retry finishes the job."""
        from ..._core.loop import run_blocking

        result = run_blocking(lambda: self.run(event, context), "lambda_handler",
                              "use 'await importer.run(event, context)' there")
        unfinished = result.unfinished
        if unfinished:
            steps = "; ".join(f"s3://{o.bucket}/{o.key}: {o.unfinished.step} step"
                              for o in unfinished if o.unfinished is not None)
            raise ImportIncompleteError(
                f"{len(unfinished)} of {len(result.objects)} objects not finished ({steps}); "
                "failing the invocation so that S3 retries it", result)
        return result.to_dict()

    async def _describe_keys(self, clients: Clients,
                             deadline: Optional[Deadline]) -> tuple[str, ...]:
        backoff = Backoff(self.retry, deadline, None if deadline is None else deadline.soft)
        response = await backoff.call(clients.dynamodb.describe_table,
                                      TableName=self.table_name)
        schema = response["Table"]["KeySchema"]
        ordered = sorted(schema, key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
        return tuple(str(k["AttributeName"]) for k in ordered)

    async def _run_one(self, obj: S3Object, clients: Clients, key_attributes: tuple[str, ...],
                       deadline: Optional[Deadline]) -> ObjectResult:
        if not obj.event_name.startswith("ObjectCreated"):
            return skipped(obj, None)
        if obj.key.startswith((self.archive_prefix, self.error_prefix, self.report_prefix)):
            logger.info("s3 import: s3://%s/%s is under the archive, error or report prefix; "
                        "skipped", obj.bucket, obj.key)
            return skipped(obj, None)
        if deadline is not None and deadline.passed_soft():
            reason = ImportDeadlineError("not started: the Lambda deadline was near")
            return skipped(obj, reason, S3MoveError(
                f"s3://{obj.bucket}/{obj.key} was not imported: the Lambda deadline was "
                "near; a retry of the event imports it", step="start"))
        run = ObjectRun(self, obj, clients, key_attributes, deadline)
        request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            request["VersionId"] = obj.version_id
        try:
            response = await run.backoff.call(clients.s3.get_object, **request)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NoSuchVersion"):
                # S3 delivers events at least once: a repeated event finds the object
                # already moved.
                logger.info("s3 import: s3://%s/%s is gone (already imported?); skipped",
                            obj.bucket, obj.key)
                return skipped(obj, exc)
            run.fatal = exc
            return await run.finish(None)
        body = response["Body"]
        length = response.get("ContentLength")
        if isinstance(length, int):
            run.bytes_total = length
        try:
            await run.import_rows(body)
        finally:
            body.close()
        return await run.finish(response.get("ETag"))


async def import_csv_objects(
    event: Any,
    model: type[M],
    table_name: str,
    *,
    context: Any = None,
    topic_arn: Optional[str] = None,
    **options: Any,
) -> ImportResult:
    """Import the CSV objects of an S3 event; a one-call form of
    ``S3CsvImporter(model, table_name, topic_arn=..., **options).run(event, context)``."""
    importer = S3CsvImporter(model, table_name, topic_arn=topic_arn, **options)
    return await importer.run(event, context)
