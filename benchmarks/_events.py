"""Synthetic Lambda events and the schedules they ideally allow.

Records are the source descriptors' own sample records (``asyncbatch._sources``: one
definition of each source's shape), parsed from JSON text as the Lambda runtime delivers
an event: every value its own string object, equal keys shared, so that the event's
memory is what a real one of that size costs.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from asyncbatch._sources import SOURCES, EventType

__all__ = [
    "kafka_event",
    "kinesis_event",
    "list_schedule",
    "lognormal_latencies",
    "sqs_event",
    "uniform_keys",
    "zipf_keys",
]

_CHUNK = 1000


def _parse(records: Iterable[dict[str, Any]]) -> list[Any]:
    """The records as the Lambda runtime hands them over: written as JSON and parsed
    back, 1,000 at a time as one JSON array.

    One ``json.loads`` per chunk makes equal keys share one string object, as the
    Lambda runtime's single ``json.loads`` of the whole event does (a record parsed on
    its own would carry its own copy of every key, ~40% more memory); the chunk keeps
    the temporary text small, so that it does not raise the process's peak RSS."""
    out: list[Any] = []
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == _CHUNK:
            out += json.loads(json.dumps(chunk))
            chunk.clear()
    if chunk:
        out += json.loads(json.dumps(chunk))
    return out


def _message_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _order(i: int, rng: random.Random) -> dict[str, Any]:
    return {"order_id": i, "sku": f"SKU-{rng.randrange(100_000):05d}",
            "quantity": rng.randrange(1, 10), "amount": round(rng.random() * 500, 2)}


def sqs_event(n: int, *, seed: int = 0) -> dict[str, Any]:
    """An SQS standard-queue event of ``n`` records with small JSON bodies."""
    rng = random.Random(seed)
    source = SOURCES[EventType.SQS]
    records = (source.sample_record(i, _order(i, rng), message_id=_message_id(rng))
               for i in range(n))
    return source.sample_event(_parse(records))


def kinesis_event(keys: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """A Kinesis event with one record per partition key in ``keys``, in sequence order."""
    rng = random.Random(seed)
    source = SOURCES[EventType.KINESIS]
    records = (source.sample_record(i, _order(i, rng), key=key) for i, key in enumerate(keys))
    return source.sample_event(_parse(records))


def kafka_event(keys: Sequence[Optional[str]], *, partitions: int = 1,
                seed: int = 0) -> dict[str, Any]:
    """An MSK event with one record per key in ``keys`` (``None``: no key), spread over
    ``partitions`` partitions of one topic round-robin, offsets increasing per partition."""
    rng = random.Random(seed)
    source = SOURCES[EventType.KAFKA]
    records = (source.sample_record(i, _order(i, rng), key=key, partition=i % partitions,
                                    offset=1_000_000 + i // partitions)
               for i, key in enumerate(keys))
    return source.sample_event(_parse(records))


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
