"""Synthetic Lambda events and the schedules they ideally allow.

Records follow the shape of AWS's sample events and are parsed from JSON text, as the
Lambda runtime delivers an event: every value its own string object, equal keys shared,
so that the event's memory is what a real one of that size costs.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "kinesis_event",
    "list_schedule",
    "lognormal_latencies",
    "sqs_event",
    "uniform_keys",
    "zipf_keys",
]

_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
_STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
# A realistic Kinesis sequence number (56 decimal digits); record i gets _SEQ_BASE + i.
_SEQ_BASE = 49590338271490256608559692538361571095921575989136588898

_SQS_TEMPLATE = (
    '{"messageId": "%(id)s", '
    '"receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a%(n)010dXNKmKKZ1h5qtYk/6xHZwIWZ+'
    'rsxUoFMiYUqBtyIyV3Kps+IJ6J1+Jz0hoJh8L/IlH7Wmm4KOu8YgSVFt9bRfDuH8gUv7TqzzXqxqAGpoY'
    'ZzHLYH73PSN=", '
    '"body": "{\\"order_id\\": %(n)d, \\"sku\\": \\"SKU-%(sku)05d\\", \\"quantity\\": %(q)d, '
    '\\"amount\\": %(amount).2f}", '
    '"attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "%(ts)d", '
    '"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "%(ts)d"}, '
    '"messageAttributes": {}, '
    '"md5OfBody": "%(md5)s", '
    '"eventSource": "aws:sqs", '
    '"eventSourceARN": "' + _QUEUE_ARN + '", '
    '"awsRegion": "us-east-1"}'
)

_KINESIS_TEMPLATE = (
    '{"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "%(key)s", '
    '"sequenceNumber": "%(seq)d", "data": "%(data)s", '
    '"approximateArrivalTimestamp": %(ts).3f}, '
    '"eventSource": "aws:kinesis", "eventVersion": "1.0", '
    '"eventID": "shardId-000000000006:%(seq)d", "eventName": "aws:kinesis:record", '
    '"invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role", '
    '"awsRegion": "us-east-1", "eventSourceARN": "' + _STREAM_ARN + '"}'
)


_CHUNK = 1000


def _parse(texts: Iterable[str]) -> list[Any]:
    """Records from their JSON texts, parsed 1,000 at a time as one JSON array.

    One ``json.loads`` per chunk makes equal keys share one string object, as the
    Lambda runtime's single ``json.loads`` of the whole event does (a record parsed on
    its own would carry its own copy of every key, ~40% more memory); the chunk keeps
    the temporary text small, so that it does not raise the process's peak RSS."""
    records: list[Any] = []
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == _CHUNK:
            records += json.loads("[" + ",".join(chunk) + "]")
            chunk.clear()
    if chunk:
        records += json.loads("[" + ",".join(chunk) + "]")
    return records


def _message_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def sqs_event(n: int, *, seed: int = 0) -> dict[str, Any]:
    """An SQS standard-queue event of ``n`` records with small JSON bodies."""
    rng = random.Random(seed)
    texts = (
        _SQS_TEMPLATE % {
            "id": _message_id(rng), "n": i, "sku": rng.randrange(100_000),
            "q": rng.randrange(1, 10), "amount": rng.random() * 500,
            "ts": 1_700_000_000_000 + i, "md5": f"{rng.getrandbits(128):032x}",
        }
        for i in range(n)
    )
    return {"Records": _parse(texts)}


def kinesis_event(keys: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """A Kinesis event with one record per partition key in ``keys``, in sequence order."""
    rng = random.Random(seed)

    def texts() -> Iterator[str]:
        for i, key in enumerate(keys):
            payload = b'{"order_id": %d, "quantity": %d, "amount": %.2f}' % (
                i, rng.randrange(1, 10), rng.random() * 500)
            yield _KINESIS_TEMPLATE % {
                "key": key, "seq": _SEQ_BASE + i, "ts": 1_700_000_000 + i / 1000,
                "data": base64.b64encode(payload).decode("ascii"),
            }

    return {"Records": _parse(texts())}


def uniform_keys(n: int, distinct: int, *, seed: int = 0) -> list[str]:
    """``n`` partition keys drawn uniformly from ``distinct`` keys."""
    rng = random.Random(seed)
    return [f"customer-{rng.randrange(distinct):06d}" for _ in range(n)]


def zipf_keys(n: int, distinct: int, exponent: float, *, seed: int = 0) -> list[str]:
    """``n`` partition keys from a bounded Zipf law: key ``k`` (1-based) has weight
    ``1 / k**exponent`` among ``distinct`` keys. A few keys are hot."""
    rng = random.Random(seed)
    weights = [1.0 / (k ** exponent) for k in range(1, distinct + 1)]
    ranks = rng.choices(range(distinct), weights=weights, k=n)
    return [f"customer-{k:06d}" for k in ranks]


def lognormal_latencies(n: int, mean: float, sigma: float, *, seed: int = 0) -> list[float]:
    """``n`` latencies (seconds) from a lognormal law with the given mean and shape."""
    rng = random.Random(seed)
    mu = math.log(mean) - sigma * sigma / 2.0
    return [rng.lognormvariate(mu, sigma) for _ in range(n)]


def list_schedule(jobs: Iterable[float], workers: int) -> float:
    """Makespan of greedy list scheduling with no overhead: each job, in the given order,
    goes to the worker that frees up first. (With jobs sorted longest first: LPT.)"""
    free = [0.0] * workers
    for job in jobs:
        heapq.heapreplace(free, free[0] + job)
    return max(free)
