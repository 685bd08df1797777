"""``asyncbatch demo``: the library at work on built-in samples and a local AWS.

1. SQS standard, SQS FIFO, Kinesis and Kafka batches with failing records: the outcome
   of every record and the partial response Lambda would get.
2. The S3 CSV import (``asyncbatch.aws``) on a moto server started here, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

import asyncbatch
from asyncbatch._errors import describe

Out = Callable[[str], None]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the built-in samples and the S3 CSV import on a local moto server",
        description=_plain(__doc__ or ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=_rows, default=20_000, metavar="N",
                        help="rows of the generated CSV for the S3 import, 1 to 2,000,000 "
                             "(default 20000)")
    parser.add_argument("--no-s3", action="store_true",
                        help="skip the S3 import (no moto server is started)")
    parser.set_defaults(func=run)


def _plain(text: str) -> str:
    """A docstring as --help shows it: without reST's double backticks."""
    return text.replace("``", "")


_MAX_ROWS = 2_000_000  # asyncbatch.cli.demo_s3.MAX_ROWS (not imported: it needs pydantic)


def _rows(text: str) -> int:
    """``--rows``: checked before anything runs (argparse prints the error, exit 2)."""
    try:
        rows = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= rows <= _MAX_ROWS:
        raise argparse.ArgumentTypeError(
            f"{text}: give 1 to {_MAX_ROWS:,} rows (the generated student ids, A10001 to "
            "Z99999, cover that many)")
    return rows


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nasyncbatch demo: interrupted", file=sys.stderr, flush=True)
        return 130


def _run(args: argparse.Namespace) -> int:
    from ._interrupt import run_interruptible

    out: Out = _print
    run_interruptible(event_samples, out)
    if args.no_s3:
        return 0
    try:
        from ..aws.local import local_aws
        from .demo_s3 import run_s3_demo
    except ImportError as exc:  # pragma: no cover - depends on the install
        out(f"\nS3 import skipped: {exc}. Install the demo extra (asyncbatch is not on "
            "PyPI): pip install -e '.[demo]' in a clone of asyncbatch")
        return 0
    out("\n== S3 CSV import: S3 -> validate -> DynamoDB -> SNS, on a local moto server ==")
    with local_aws() as endpoint:
        out(f"moto server at {endpoint}")
        run_interruptible(_s3, run_s3_demo, args.rows, out)
    return 0


def _print(text: str) -> None:
    print(text, flush=True)


async def _s3(run_s3_demo: Any, rows: int, out: Out) -> None:
    await run_s3_demo(rows, out=out, progress=True)


# -- the built-in samples (events from asyncbatch.testing: shaped as Lambda sends them) ---


def _short(identifier: Any) -> str:
    """An identifier for the table: Kafka's as topic-partition@offset, long ones cut."""
    if isinstance(identifier, dict):
        return f"{identifier.get('partition')}@{identifier.get('offset')}"
    text = str(identifier)
    return text if len(text) <= 28 else "..." + text[-25:]


def _table(report: asyncbatch.BatchReport, out: Out, key: Callable[[Any], str]) -> None:
    out(f"  {'record':<28} {'key':<8} {'outcome':<10} {'tries':>5}  error")
    for o in report:
        error = "" if o.exception is None else describe(o.exception)
        out(f"  {_short(o.identifier):<28} {key(o.record):<8} {o.status:<10} "
            f"{o.attempts:>5}  {error[:70]}")
    out(f"  partial response: {json.dumps(report.response())}")


async def event_samples(out: Out) -> None:
    import anyio

    from ..testing import kafka_event, kinesis_event, sqs_event

    # SQS standard: orders, two of which are bad; a flaky dependency retried in-process.
    event = sqs_event(*({"id": 100 + i, "qty": 0 if i in (2, 6) else 1} for i in range(8)))
    flaky = {event["Records"][3]["messageId"]: 2}

    async def place_order(record: asyncbatch.SQSRecord) -> None:
        order = record.json()
        await anyio.sleep(0.01)  # an I/O call
        if flaky.get(record.message_id, 0):
            flaky[record.message_id] -= 1
            raise asyncbatch.TransientError("payment service throttled")
        if order["qty"] <= 0:
            raise ValueError(f"order {order['id']}: quantity must be positive")

    processor = asyncbatch.AsyncBatchProcessor(
        concurrency=4, retry=asyncbatch.Retry(attempts=3, base=0.01), log_summary=False)
    out("== SQS standard: 8 orders, 2 invalid, 1 throttled twice (retried) ==")
    _table(await processor.process(event, place_order), out, lambda r: "-")

    # SQS FIFO: per-customer groups; a failure skips the rest of its group only.
    async def apply(record: asyncbatch.SQSRecord) -> None:
        await anyio.sleep(0.01)
        if record.json()["op"] == "bad":
            raise ValueError("cannot apply operation 'bad'")

    ops = [("alice", "open"), ("bob", "open"), ("alice", "bad"), ("bob", "deposit"),
           ("alice", "deposit"), ("carol", "open"), ("bob", "close")]
    fifo = sqs_event(*({"op": op} for _, op in ops), fifo_group=[g for g, _ in ops])
    out("\n== SQS FIFO: groups alice / bob / carol; alice's 2nd message fails ==")
    report = await asyncbatch.AsyncBatchProcessor(concurrency=3, log_summary=False).process(
        fifo, apply)
    _table(report, out, lambda r: r.message_group_id or "")

    # Kinesis: per-partition-key order, checkpoint semantics on failure.
    order: dict[str, list[int]] = {}

    async def click(record: asyncbatch.KinesisRecord) -> None:
        body = record.json()
        order.setdefault(record.partition_key, []).append(body["n"])
        await anyio.sleep(0.005 * (1 + body["n"] % 3))
        if body["n"] == 9:
            raise RuntimeError("downstream rejected click 9")

    users = ["u1", "u2", "u3", "u1", "u2", "u1", "u3", "u1", "u2", "u3", "u1", "u2"]
    stream = kinesis_event(*((u, {"n": i}) for i, u in enumerate(users)))
    out("\n== Kinesis: 12 clicks of 3 users, per-user order; click 9 fails ==")
    report = await asyncbatch.AsyncBatchProcessor(concurrency=3, log_summary=False).process(
        stream, click)
    _table(report, out, lambda r: r.partition_key)
    out("  per-user order of handling: " + ", ".join(
        f"{user}: {ns}" for user, ns in sorted(order.items())))
    out("  (Lambda resumes at the lowest reported sequence number; records above it that")
    out("   were not started are skipped, not wasted)")

    # Kafka (Amazon MSK): records of a partition in offset order, partitions in parallel.
    shipped: dict[int, list[int]] = {}

    async def ship(record: asyncbatch.KafkaRecord) -> None:
        shipped.setdefault(record.partition, []).append(record.offset)
        await anyio.sleep(0.005)
        if record.json()["sku"] == "discontinued":
            raise LookupError(f"sku {record.json()['sku']!r} is no longer sold")

    skus = ["pen", "ink", "pad", "discontinued", "pen", "pad", "ink", "pen", "pad"]
    kafka = kafka_event(*((i % 3, f"order-{i}", {"order": i, "sku": sku})
                          for i, sku in enumerate(skus)), topic="shipments")
    out("\n== Kafka (MSK): 9 shipments on 3 partitions, offset order per partition; "
        "partition 0's 2nd record fails ==")
    report = await asyncbatch.AsyncBatchProcessor(concurrency=3, log_summary=False).process(
        kafka, ship)
    _table(report, out, lambda r: f"p{r.partition}")
    out("  per-partition order of handling (offsets): " + ", ".join(
        f"p{partition}: {offsets}" for partition, offsets in sorted(shipped.items())))
