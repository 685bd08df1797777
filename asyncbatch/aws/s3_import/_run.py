"""One object's import, step by step: read, validate, write, then report, move, publish.

Nothing of a run lives on the importer: ``ObjectRun`` holds the state of one object and
hands each step to its module (``_csv``, ``_rows``, ``_write``, ``_report``, ``_moves``,
``_summary``)."""

from __future__ import annotations

import codecs
import csv
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import anyio

from ..._core.pool import StopFlag, pool
from ..._errors import bounded_text, exception_text
from .._client import error_code
from ._backoff import Backoff
from ._csv import CsvRecords
from ._errors import CsvDecodeError, CsvHeaderError, ImportDeadlineError, S3MoveError
from ._moves import Mover
from ._report import ErrorsReport
from ._results import ImportProgress, ObjectResult, RowError, describe
from ._rows import Chunk, Entry, Rows
from ._summary import publish
from ._write import Writer

if TYPE_CHECKING:
    from ..._core.deadline import Deadline
    from ._event import S3Object
    from ._importer import Clients, S3CsvImporter

__all__ = ["ObjectRun", "skipped"]

logger = logging.getLogger("asyncbatch.s3_import")


def skipped(obj: S3Object, reason: Optional[BaseException],
            unfinished: Optional[S3MoveError] = None) -> ObjectResult:
    return ObjectResult(
        bucket=obj.bucket, key=obj.key, status="skipped" if unfinished is None else "failed",
        rows_read=0, rows_written=0, rows_duplicate=0, rows_rejected=0, rows_unwritten=0,
        errors=(), exception=reason, destination_key=None, errors_key=None, duration=0.0,
        bytes_read=0, write_retries=0, message_id=None, unfinished=unfinished)


def _line_of(error: RowError) -> int:
    return error.line


class ObjectRun:
    """The state of importing one object."""

    def __init__(self, importer: S3CsvImporter[Any], obj: S3Object, clients: Clients,
                 key_attributes: tuple[str, ...], deadline: Optional[Deadline]) -> None:
        self.importer = importer
        self.obj = obj
        self.clients = clients
        self.deadline = deadline
        self.started = time.perf_counter()
        self.bytes_read = 0
        self.bytes_total: Optional[int] = obj.size
        self.rejected = 0
        self.errors: list[RowError] = []
        self.report = ErrorsReport()
        self.fatal: Optional[BaseException] = None
        self.scope: Optional[anyio.CancelScope] = None
        self.stop = StopFlag()
        self.next_progress = 0.0
        self.rows = Rows(importer, key_attributes, self.reject)
        soft = None if deadline is None else deadline.soft
        self.backoff = Backoff(importer.retry, deadline, soft)
        self.writer = Writer(clients, importer.table_name, key_attributes, self.backoff,
                             self.reject_entry, self.rows.inflight)

    # -- outcomes of rows and of the run ----------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """A fatal error: remember the first, stop reading and writing."""
        if self.fatal is None:
            self.fatal = exc
        self.stop.is_set = True
        if self.scope is not None:
            self.scope.cancel()

    def reject(self, line: int, fields: Sequence[str], columns: Sequence[str],
               message: str) -> None:
        message = bounded_text(message)  # a validator's message may be huge, or not UTF-8
        self.rejected += 1
        if len(self.errors) < self.importer.max_errors:
            self.errors.append(RowError(line, tuple(columns), message))
        self.report.add(line, message, fields, self.rows.header)

    def reject_entry(self, entry: Entry, message: str) -> None:
        self.reject(entry.line, entry.fields, [], message)

    def progress(self, force: bool = False) -> None:
        callback = self.importer.on_progress
        if callback is None:
            return
        now = time.perf_counter()
        if not force and now < self.next_progress:
            return
        self.next_progress = now + self.importer.progress_interval
        snapshot = ImportProgress(
            bucket=self.obj.bucket, key=self.obj.key, bytes_read=self.bytes_read,
            bytes_total=self.bytes_total, rows_read=self.rows.read,
            rows_written=self.writer.written, rows_rejected=self.rejected,
            elapsed=now - self.started, done=force)
        try:
            callback(snapshot)
        except Exception:
            logger.exception("s3 import: the progress callback failed")

    # -- reading and writing ------------------------------------------------------------

    async def import_rows(self, body: Any) -> None:
        """Stream the body through the reader into the writers, until the end, a fatal
        error or the deadline (stop reading and starting writes at the soft deadline,
        cancel writes in flight at the hard one)."""
        deadline = self.deadline
        hard = math.inf if deadline is None else deadline.hard
        importer = self.importer
        with anyio.CancelScope(deadline=hard) as scope:
            self.scope = scope
            send, receive = anyio.create_memory_object_stream[Chunk](importer.queue_size)
            async with receive, anyio.create_task_group() as tg:
                tg.start_soon(self.read, body, send)
                await pool(receive, self.write, importer.concurrency, stop=self.stop)
        if scope.cancelled_caught and self.fatal is None:
            self.fatal = ImportDeadlineError("the Lambda deadline came")
        if isinstance(self.fatal, ImportDeadlineError):
            self.fatal = ImportDeadlineError(
                f"the Lambda deadline came after {self.rows.read} rows ({self.bytes_read} of "
                f"{self.bytes_total} bytes); the rest was not imported: put the file again "
                f"to import it whole ({self.fatal})")

    async def read(self, body: Any, send: Any) -> None:
        soft = math.inf if self.deadline is None else self.deadline.soft
        async with send:
            with anyio.CancelScope(deadline=soft) as scope:
                try:
                    await self._read(body, send)
                except Exception as exc:
                    self.fail(exc)
            if scope.cancelled_caught:
                self.stop.is_set = True
                if self.fatal is None:
                    self.fatal = ImportDeadlineError("reading stopped")

    async def _read(self, body: Any, send: Any) -> None:
        """Decode UTF-8 incrementally (a BOM is dropped), cut records, queue chunks."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        records = CsvRecords(self.importer.max_row_size)
        rows = self.rows
        size = self.importer.read_size
        while True:
            data = await body.read(size)
            final = not data
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                offset = self.bytes_read + exc.start
                raise CsvDecodeError(
                    f"the object is not UTF-8 text: byte {offset} "
                    f"({data[exc.start:exc.start + 1]!r}) cannot be decoded; "
                    "save the file as UTF-8", offset=offset) from exc
            self.bytes_read += len(data)
            records.push(text, final)
            for line, row in records.rows():
                if isinstance(row, csv.Error):
                    if rows.header is None:
                        raise CsvHeaderError(
                            f"line {line}: the header is not valid CSV ({row})", line=line)
                    rows.unreadable(line, f"not valid CSV: {row}")
                    continue
                chunk = rows.row(line, row)
                if chunk is not None:
                    await send.send(chunk)
            self.progress()
            if final:
                break
        if rows.header is None:
            raise CsvHeaderError("the file is empty: it has no header line")
        chunk = rows.flush()
        if chunk is not None:
            await send.send(chunk)

    async def write(self, chunk: Chunk) -> None:
        deadline = self.deadline
        try:
            if self.stop.is_set or (deadline is not None and deadline.passed_soft()):
                # Its rows stay unwritten; writes in flight go on until the hard deadline.
                self.stop.is_set = True
                if self.fatal is None:
                    self.fatal = ImportDeadlineError("writes stopped")
                chunk.close(self.rows.inflight)
                return
            await self.writer.write(chunk)
        except Exception as exc:
            self.fail(exc)
        finally:
            self.progress()

    # -- after the rows -----------------------------------------------------------------

    async def finish(self, etag: Optional[str]) -> ObjectResult:
        """Write the errors report, copy the object, publish the summary, delete the
        source: in that order, so that the source stays until everything else is done
        and a retried event can finish the job."""
        obj = self.obj
        importer = self.importer
        status = "failed" if self.fatal is not None else \
            "rejected" if self.rejected else "archived"
        deadline = self.deadline
        # Retries of these steps may use half the time left after the hard deadline.
        limit = None if deadline is None else (deadline.hard + deadline.end) / 2
        mover = Mover(self.clients.s3, obj.bucket, Backoff(importer.retry, deadline, limit))
        destination: Optional[str] = None
        errors_key: Optional[str] = None
        unfinished: Optional[S3MoveError] = None
        step = "report"
        try:
            if status != "archived":
                if self.fatal is not None:
                    self.report.add(getattr(self.fatal, "line", None), describe(self.fatal),
                                    (), self.rows.header)
                body = self.report.body()
                if body is not None:
                    errors_key = await mover.put_new(
                        importer.report_key(obj.key), *body,
                        content_type="text/csv; charset=utf-8")
            step = "copy"
            prefix = importer.archive_prefix if status == "archived" else importer.error_prefix
            source = {"Bucket": obj.bucket, "Key": obj.key}
            if obj.version_id:
                source["VersionId"] = obj.version_id
            destination = await mover.copy_new(source, etag, self.bytes_total, prefix + obj.key)
        except Exception as exc:
            unfinished = self._unfinished(step, exc)
        finally:
            self.report.close()
        message_id: Optional[str] = None
        if importer.topic_arn is not None and self.clients.sns is not None:
            try:
                message_id = await publish(
                    self.clients.sns, importer.topic_arn,
                    self.result(status, destination, errors_key, None, unfinished),
                    importer.table_name, mover.backoff)
            except Exception as exc:
                unfinished = unfinished or self._unfinished("publish", exc)
        if unfinished is None:
            try:
                await mover.delete(obj.key)
            except Exception as exc:
                unfinished = self._unfinished("delete", exc)
        result = self.result(status, destination, errors_key, message_id, unfinished)
        self.progress(force=True)
        return result

    def _unfinished(self, step: str, exc: BaseException) -> S3MoveError:
        obj = self.obj
        done = {"report": "nothing was moved", "copy": "the object was not copied",
                "publish": "the object was copied but the summary not published",
                "delete": "the object was copied and the summary published"}[step]
        logger.error("s3 import: s3://%s/%s: %s; %s stopped it (%s): the source stays; a "
                     "retry of the event finishes the move", obj.bucket, obj.key, done, step,
                     describe(exc), exc_info=exc)
        error = S3MoveError(
            f"s3://{obj.bucket}/{obj.key}: {done}; the {step} step failed "
            f"({error_code(exc) or type(exc).__name__}: {exception_text(exc)}); the source "
            "is still in place and a retry of the event finishes the move", step=step)
        error.__cause__ = exc
        return error

    def result(self, status: str, destination: Optional[str], errors_key: Optional[str],
               message_id: Optional[str], unfinished: Optional[S3MoveError]) -> ObjectResult:
        rows = self.rows
        written = self.writer.written
        unwritten = rows.read - written - rows.duplicate - self.rejected
        exception = self.fatal
        if unfinished is not None:
            status = "failed"
            exception = exception or unfinished
        return ObjectResult(
            bucket=self.obj.bucket, key=self.obj.key, status=status,
            rows_read=rows.read, rows_written=written, rows_duplicate=rows.duplicate,
            rows_rejected=self.rejected, rows_unwritten=max(0, unwritten),
            errors=tuple(sorted(self.errors, key=_line_of)), exception=exception,
            destination_key=destination, errors_key=errors_key,
            duration=time.perf_counter() - self.started, bytes_read=self.bytes_read,
            write_retries=self.backoff.retries, message_id=message_id, unfinished=unfinished)
