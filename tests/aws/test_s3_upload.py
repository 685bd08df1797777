"""The errors report's upload against a moto server: whatever file object holds the
report (a spool in memory, a spool rolled over to disk, or a file object that is not an
``io.IOBase``, as ``tempfile.SpooledTemporaryFile`` is before Python 3.11), S3 gets its
bytes, on every attempt."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

import pytest

pytest.importorskip("aioboto3")

import aioboto3

from asyncbatch import Retry
from asyncbatch.aws.s3_import._backoff import Backoff
from asyncbatch.aws.s3_import._moves import Mover
from asyncbatch.aws.s3_import._report import ErrorsReport

pytestmark = pytest.mark.anyio

BUCKET = "reports"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def s3(aws: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("s3") as client:
        await client.create_bucket(Bucket=BUCKET)
        yield client


class NotIOBase:
    """A binary file object that is not an ``io.IOBase``: what aiobotocore used to hand
    aiohttp's form encoder, as it did with the spool on Python 3.10."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()


def spool(data: bytes, max_size: int) -> IO[bytes]:
    file = tempfile.SpooledTemporaryFile(max_size=max_size)  # noqa: SIM115
    file.write(data)
    return file  # type: ignore[return-value]


async def get(s3: Any, key: str) -> bytes:
    response = await s3.get_object(Bucket=BUCKET, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


@pytest.mark.parametrize("kind", ["in-memory spool", "spool on disk", "not an io.IOBase"])
async def test_put_new_uploads_any_binary_file_object(s3: Any, kind: str) -> None:
    data = b"line,error\n" + b"".join(b"%d,bad row\n" % i for i in range(50_000))
    spooled = spool(data, max_size=len(data) + 1 if kind == "in-memory spool" else 1024)
    body: Any = NotIOBase(spooled) if kind == "not an io.IOBase" else spooled
    body.seek(len(data) // 2)  # put_new rewinds: every attempt sends the whole body
    mover = Mover(s3, BUCKET, Backoff(Retry(attempts=1), None, None))
    key = await mover.put_new("r.csv", body, "", "text/csv")
    assert key == "r.csv"
    assert await get(s3, key) == data
    assert not spooled.closed  # its owner closes it


async def test_a_report_past_its_memory_bound_uploads_whole(s3: Any) -> None:
    report = ErrorsReport()
    for line in range(40_000):  # about 2 MiB: past the 1 MiB kept in memory
        report.add(line, "bad row", [f"A{line:05d}", "x" * 30], ["student_id", "note"])
    body = report.body()
    assert body is not None
    try:
        key = await Mover(s3, BUCKET, Backoff(Retry(attempts=1), None, None)).put_new(
            "big.csv", *body, content_type="text/csv")
        data = await get(s3, key)
    finally:
        report.close()
    lines = data.decode().splitlines()
    assert lines[0] == "line,error,student_id,note"
    assert len(lines) == 40_001
    assert lines[-1] == "39999,bad row,A39999," + "x" * 30
