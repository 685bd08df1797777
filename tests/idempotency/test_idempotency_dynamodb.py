"""The DynamoDB idempotency store on a real moto server: Powertools' table layout (both
ways: records Powertools wrote replay here and ours replay there), the request counts
of the batch lookup, UnprocessedKeys, and failures that must not fail a record.

Requests are counted with botocore's own event hooks on the real client; nothing of
AWS is faked.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

import asyncbatch
from asyncbatch import Idempotency, SQSRecord
from asyncbatch.aws.idempotency import DynamoDBIdempotencyStore
from tests._support.events import sqs_record
from tests.idempotency.test_idempotency import TABLE, create_table, run_once, views

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """aioboto3 runs on asyncio only."""
    return "asyncio"


@pytest.fixture
def table(aws: str) -> str:
    create_table()
    return TABLE


def count_calls(store: DynamoDBIdempotencyStore) -> dict[str, int]:
    """Count the store's DynamoDB API calls by operation name (botocore event hooks)."""
    counts: dict[str, int] = {}

    def hook(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    store._client.meta.events.register("before-call.dynamodb", hook)
    return counts


def raw_item(key: str) -> dict[str, Any]:
    import boto3

    item: dict[str, Any] = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"id": {"S": key}}, ConsistentRead=True)["Item"]
    return item


@pytest.mark.parametrize("batch_writes", [True, False])
async def test_items_have_powertools_layout(table: str, batch_writes: bool) -> None:
    async with DynamoDBIdempotencyStore(table, batch_writes=batch_writes) as store:
        idem = Idempotency(store, key_prefix="orders", expires_after=600)
        records = views(1)
        key = idem.key_of(records[0])
        deadline = time.time() + 30
        batch = await idem.prepare(records, deadline)
        before = int(time.time())
        assert await batch.begin(0, records[0]) is None
        claimed = raw_item(key)
        assert claimed["status"] == {"S": "INPROGRESS"}
        assert claimed["in_progress_expiration"] == {"N": str(int(deadline * 1000))}
        assert before + 600 <= int(claimed["expiration"]["N"]) <= int(time.time()) + 600
        assert set(claimed) == {"id", "status", "expiration", "in_progress_expiration"}
        await batch.complete(0, records[0], {"charged": 12.5, "items": [1, 2]})
        done = raw_item(key)
        assert done["status"] == {"S": "COMPLETED"}
        assert json.loads(done["data"]["S"]) == {"charged": 12.5, "items": [1, 2]}
        assert set(done) == {"id", "status", "expiration", "in_progress_expiration", "data"}


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time")
async def test_records_are_shared_with_powertools_both_ways(table: str) -> None:
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    layer = DynamoDBPersistenceLayer(table_name=table)
    config = IdempotencyConfig(event_key_jmespath="messageId")
    calls: list[str] = []

    @idempotent_function(data_keyword_argument="record", persistence_store=layer,
                         config=config, key_prefix="orders")
    def charge(record: dict[str, Any]) -> dict[str, Any]:
        calls.append(record["messageId"])
        return {"charged": record["messageId"]}

    records = views(2)
    assert charge(record=records[0].raw) == {"charged": records[0].identifier}  # Powertools
    async with DynamoDBIdempotencyStore(table) as store:
        idem = Idempotency(store, key_prefix="orders")
        batch = await idem.prepare(records, time.time() + 30)
        assert await batch.begin(0, records[0]) == asyncbatch.Replay(
            {"charged": records[0].identifier})  # ... replayed here
        assert await batch.begin(1, records[1]) is None
        await batch.complete(1, records[1], {"charged": "by asyncbatch"})
    assert charge(record=records[1].raw) == {"charged": "by asyncbatch"}  # ... and there
    assert calls == [records[0].identifier]


async def test_a_replayed_batch_costs_one_request_per_hundred_records(table: str) -> None:
    records = views(250)
    async with DynamoDBIdempotencyStore(table) as store:
        counts = count_calls(store)
        first = Idempotency(store, key_prefix="fn")
        ran, _ = await run_once(first, records, time.time() + 60)
        assert len(ran) == 250
        # one record at a time here: every completion is a request of its own
        assert counts == {"BatchGetItem": 3, "PutItem": 250, "BatchWriteItem": 250}
        counts.clear()
        ran, replayed = await run_once(Idempotency(store, key_prefix="fn"), records)
        assert ran == [] and len(replayed) == 250
        assert counts == {"BatchGetItem": 3}
        counts.clear()
        ran, replayed = await run_once(first, records)  # this container completed them
        assert ran == [] and len(replayed) == 250
        assert counts == {}


async def test_concurrent_completions_share_batch_writes(table: str) -> None:
    import anyio

    records = views(60)
    async with DynamoDBIdempotencyStore(table) as store:
        idem = Idempotency(store, key_prefix="fn")
        batch = await idem.prepare(records, time.time() + 60)
        for i, view in enumerate(records):
            assert await batch.begin(i, view) is None
        counts = count_calls(store)
        async with anyio.create_task_group() as tg:
            for i, view in enumerate(records):
                tg.start_soon(batch.complete, i, view, {"n": i})
        assert 3 <= counts["BatchWriteItem"] <= 5  # 25 items a request at most
        fresh = Idempotency(store, key_prefix="fn")
        ran, replayed = await run_once(fresh, records)
        assert ran == [] and replayed == {i: {"n": i} for i in range(60)}


async def test_unprocessed_keys_are_asked_again(table: str) -> None:
    """moto, like DynamoDB, answers at most 16 MB per BatchGetItem and returns the
    rest as UnprocessedKeys: 60 results of 300 kB need at least two requests."""
    import boto3

    idem_view = views(60)
    async with DynamoDBIdempotencyStore(table) as store:
        idem = Idempotency(store, key_prefix="fn")
        big = "x" * 300_000
        client = boto3.client("dynamodb")
        expiration = str(int(time.time()) + 3600)
        for view in idem_view:
            client.put_item(TableName=table, Item={
                "id": {"S": idem.key_of(view)}, "status": {"S": "COMPLETED"},
                "expiration": {"N": expiration}, "data": {"S": json.dumps(big)}})
        counts = count_calls(store)
        found = await store.get_many([idem.key_of(view) for view in idem_view])
        assert len(found) == 60
        assert counts["BatchGetItem"] >= 2
        assert all(json.loads(item.data or "") == big for item in found.values())


async def test_a_failed_completion_keeps_the_record_succeeded(
        table: str, caplog: pytest.LogCaptureFixture) -> None:
    import boto3

    async with DynamoDBIdempotencyStore(table) as store:
        idem = Idempotency(store, key_prefix="fn", retry=asyncbatch.Retry(attempts=1))
        records = views(1)
        batch = await idem.prepare(records, time.time() + 30)
        assert await batch.begin(0, records[0]) is None
        boto3.client("dynamodb").delete_table(TableName=table)
        with caplog.at_level(logging.WARNING, logger="asyncbatch"):
            await batch.complete(0, records[0], "done")  # does not raise
            await batch.release(0, records[0], ValueError())  # nothing left to release
        assert "marking its key" in caplog.text and "COMPLETED failed" in caplog.text
        assert "ResourceNotFoundException" in caplog.text


async def test_a_failed_lookup_leaves_it_to_the_claims(
        table: str, caplog: pytest.LogCaptureFixture) -> None:
    async with DynamoDBIdempotencyStore("no-such-table") as store:
        idem = Idempotency(store, key_prefix="fn", retry=asyncbatch.Retry(attempts=1))
        records = views(1)
        with caplog.at_level(logging.WARNING, logger="asyncbatch"):
            batch = await idem.prepare(records, None)
        assert "looking up 1 keys failed" in caplog.text
        with pytest.raises(asyncbatch.IdempotencyStoreError) as caught:
            await batch.begin(0, records[0])
        assert "ResourceNotFoundException" in str(caught.value)


async def test_the_client_opens_on_first_use_and_closes(table: str) -> None:
    store = DynamoDBIdempotencyStore(table)
    idem = Idempotency(store, key_prefix="fn")
    ran, _ = await run_once(idem, views(3))
    assert ran == [0, 1, 2]
    assert store._lazy is not None
    await store.aclose()
    assert store._lazy is None


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_store_says_it_needs_asyncio(table: str) -> None:
    store = DynamoDBIdempotencyStore(table)
    with pytest.raises(asyncbatch.ConfigurationError, match="asyncio"):
        await store.get_many(["k"])


def test_bad_options_say_how_to_fix_them() -> None:
    for kwargs, words in (({"table_name": ""}, "table's name"),
                          ({"table_name": "t", "key_attr": ""}, "attribute name"),
                          ({"table_name": "t", "data_attr": "id"}, "must differ"),
                          ({"table_name": "t", "max_in_flight": 0}, ">= 1")):
        with pytest.raises(asyncbatch.ConfigurationError, match=words):
            DynamoDBIdempotencyStore(**kwargs)


def test_a_sqs_view_of_the_same_message_has_the_same_key() -> None:
    """The default key is the identifier: a redelivery (new receipt handle, higher
    receive count) keeps its key."""
    idem = Idempotency(asyncbatch.InMemoryIdempotencyStore(), key_prefix="fn")
    first = sqs_record(7)
    again = dict(first, receiptHandle="other",
                 attributes={**first["attributes"], "ApproximateReceiveCount": "2"})
    assert idem.key_of(SQSRecord(first)) == idem.key_of(SQSRecord(again))


def test_the_readme_sam_snippet_passes_cfn_lint(tmp_path: Any) -> None:
    import re
    from pathlib import Path

    api = pytest.importorskip("cfnlint.api")
    readme = (Path(__file__).resolve().parents[2] / "docs" / "idempotency.md").read_text()
    (template,) = [block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                   if "IdempotencyTable" in block]
    path = tmp_path / "template.yaml"
    path.write_text(template)
    assert [str(m) for m in api.lint_file(path)] == []


async def test_throttling_and_5xx_go_through_the_retry_policy(table: str, aws: str) -> None:
    """DynamoDB throttles or fails some calls (a fault-injecting proxy in front of moto):
    the retry policy absorbs them, every record runs once, and a replay finds them all."""
    from tests._support.faultproxy import Fault, FaultProxy

    with FaultProxy(aws, seed=3) as proxy:
        proxy.add(Fault("BatchGetItem", "5xx", times=1))
        proxy.add(Fault("PutItem", "throttle", times=3))
        proxy.add(Fault("BatchWriteItem", "throttle", times=2))
        async with DynamoDBIdempotencyStore(table, endpoint_url=proxy.url) as store:
            retry = asyncbatch.Retry(attempts=5, base=0.0)
            idem = Idempotency(store, key_prefix="fn", retry=retry)
            ran, replayed = await run_once(idem, views(8), time.time() + 60)
            assert ran == list(range(8)) and replayed == {}
            again = Idempotency(store, key_prefix="fn", retry=retry)
            ran, replayed = await run_once(again, views(8))
            assert ran == [] and len(replayed) == 8
        assert proxy.injected == {"BatchGetItem": 1, "PutItem": 3, "BatchWriteItem": 2}


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_every_record_fails_with_the_reason(table: str) -> None:
    processor = asyncbatch.AsyncBatchProcessor(
        idempotency=Idempotency(DynamoDBIdempotencyStore(table), key_prefix="fn"))
    ran: list[str] = []

    async def handle(record: Any) -> None:
        ran.append(record.identifier)

    report = await processor.process({"Records": [v.raw for v in views(3)]}, handle)
    assert ran == [] and len(report.failed) == 3
    assert all("needs asyncio" in str(o.exception) for o in report.failed)
