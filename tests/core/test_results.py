"""What handlers return: ``Outcome.result`` and ``report.results()``."""

from __future__ import annotations

from typing import Any

import pytest

import asyncbatch
from asyncbatch.testing import kinesis_event, sqs_event

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("concurrency", [1, 7])
async def test_results_come_back_in_event_order(concurrency: int) -> None:
    event = sqs_event(*({"n": i} for i in range(20)))

    async def handle(record: asyncbatch.SQSRecord) -> Any:
        n = record.json()["n"]
        if n % 5 == 4:
            raise ValueError("no result")
        return None if n % 5 == 3 else {"doubled": 2 * n}

    report = await asyncbatch.AsyncBatchProcessor(concurrency=concurrency).process(event, handle)
    expected = [None if n % 5 in (3, 4) else {"doubled": 2 * n} for n in range(20)]
    assert report.results() == expected
    assert [o.result for o in report] == expected
    assert all(o.result is None for o in report.failed)


async def test_results_on_the_full_path_and_for_streams() -> None:
    event = kinesis_event(*((f"k{i % 3}", {"n": i}) for i in range(9)))

    async def handle(record: asyncbatch.KinesisRecord) -> int:
        return int(record.json()["n"]) ** 2

    processor = asyncbatch.AsyncBatchProcessor(retry=asyncbatch.Retry(attempts=2), timeout=5)
    report = await processor.process(event, handle)
    assert report.results() == [n * n for n in range(9)]
    assert [o.replayed for o in report] == [False] * 9


def test_a_sync_handlers_result_is_kept() -> None:
    def handle(record: asyncbatch.SQSRecord) -> str:
        return record.body.upper()

    processor = asyncbatch.AsyncBatchProcessor(concurrency=3)
    import anyio

    report = anyio.run(processor.process, sqs_event("a", "b", "c"), handle)
    assert report.results() == ["A", "B", "C"]
