"""File moves: the errors report and the object's copy never replace an object.

A destination that exists already (an earlier file of the same name, or another
object's report) is kept: the new object goes to a key with a unique suffix before its
extension (``name.<time>-<random>.csv``). The report is written with a conditional put
(``If-None-Match: *``): S3 refuses it atomically if the key exists. The copy checks the
destination first (HeadObject) and sends ``If-None-Match: *`` too, for the stores that
honour it on CopyObject. A destination holding the very same bytes (same ETag) is the
work of an earlier, interrupted run of this object: it is taken as done, so a retried
event finishes the move instead of making a second copy."""

from __future__ import annotations

import datetime
import io
import posixpath
import uuid
from typing import IO, TYPE_CHECKING, Any, Optional

from .._client import error_code
from ._backoff import Backoff

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["Mover", "unique_key"]

# Files larger than this cannot be copied with one CopyObject request.
COPY_LIMIT = 5 * 1024**3
# How many keys are tried before giving up on a destination.
_TRIES = 5
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_MISSING = ("NoSuchKey", "404", "NotFound")


def unique_key(key: str) -> str:
    """``key`` with a time and a random suffix before its extension."""
    head, tail = posixpath.split(key)
    stem, ext = posixpath.splitext(tail)
    if not stem:  # ".csv" or no name: keep it whole
        stem, ext = tail, ""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return posixpath.join(head, f"{stem}.{stamp}-{uuid.uuid4().hex[:8]}{ext}")


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


class _Upload(io.RawIOBase):
    """A body to upload, as an ``io.IOBase``: aiobotocore streams only those (anything
    else goes to aiohttp's form encoder, which refuses it), and the errors report's
    ``tempfile.SpooledTemporaryFile`` is one only from Python 3.11. Reads, seeks and
    tells go to ``body``, which stays open (its owner closes it). No ``fileno()``: aiohttp
    would ask for one to size the body, and a spool asked for one rolls over to disk;
    botocore's ``Content-Length`` sizes it."""

    def __init__(self, body: IO[bytes]) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._body.read(-1 if size is None else size)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._body.seek(offset, whence)

    def tell(self) -> int:
        return self._body.tell()


class Mover:
    """S3 writes of one object's run, retried on transient errors (``backoff``)."""

    def __init__(self, s3: Any, bucket: str, backoff: Backoff) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.backoff = backoff

    async def _existing_etag(self, key: str) -> Optional[str]:
        try:
            head = await self.backoff.call(self.s3.head_object, Bucket=self.bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in _MISSING:
                return None
            raise
        return _etag(head.get("ETag"))

    async def put_new(self, key: str, body: IO[bytes], md5: str, content_type: str) -> str:
        """Write ``body`` at ``key``, or at a unique key next to it if ``key`` holds other
        bytes; return the key written."""
        target = key

        async def put() -> Any:
            body.seek(0)  # every attempt sends the whole body
            return await self.s3.put_object(Bucket=self.bucket, Key=target, Body=_Upload(body),
                                            ContentType=content_type, IfNoneMatch="*")

        for _ in range(_TRIES):
            try:
                await self.backoff.call(put)
                return target
            except Exception as exc:
                if error_code(exc) not in _EXISTS:
                    raise
            if await self._existing_etag(target) == md5:
                return target  # an earlier run of this object wrote the same report
            target = unique_key(key)
        raise FileExistsError(f"s3://{self.bucket}/{key}: no free key after {_TRIES} tries")

    async def copy_new(self, source: dict[str, str], etag: Optional[str], size: Optional[int],
                       key: str) -> str:
        """Copy ``source`` (only while its ETag is ``etag``) to ``key``, or to a unique
        key next to it if ``key`` holds another object; return the key written."""
        target = key
        for _ in range(_TRIES):
            existing = await self._existing_etag(target)
            if existing is not None:
                if etag is not None and existing == _etag(etag):
                    return target  # copied by an earlier run of this object
                target = unique_key(key)
                continue
            if size is not None and size > COPY_LIMIT:
                await self.backoff.call(self.s3.copy, CopySource=source, Bucket=self.bucket,
                                        Key=target)
                return target
            extra: dict[str, str] = {"IfNoneMatch": "*"}
            if etag:
                # If the object was replaced while it was imported, the copy fails and
                # the new object stays where it is, for its own event.
                extra["CopySourceIfMatch"] = etag
            try:
                await self.backoff.call(self.s3.copy_object, CopySource=source,
                                        Bucket=self.bucket, Key=target, **extra)
                return target
            except Exception as exc:
                if error_code(exc) not in _EXISTS or await self._existing_etag(target) is None:
                    raise
            target = unique_key(key)
        raise FileExistsError(f"s3://{self.bucket}/{key}: no free key after {_TRIES} tries")

    async def delete(self, key: str) -> None:
        """Remove the source (on a versioned bucket: a delete marker; versions stay)."""
        await self.backoff.call(self.s3.delete_object, Bucket=self.bucket, Key=key)
