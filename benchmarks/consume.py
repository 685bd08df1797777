"""The SQS worker (``asyncbatch.aws.sqs.consume``) against the straightforward aioboto3
loop, messages per second through one moto server.

    python -m benchmarks.consume [--quick] [--out FILE]

A moto server runs in a process of its own (``python -m moto.server``: it does not share
this interpreter's GIL), behind the tests' fault proxy with ``serialize_sqs`` (no fault
injected) in a third process: moto's SQS is not thread-safe (concurrent receives hand
out a message twice, a send racing a delete can vanish), so one SQS request reaches it
at a time, long polls played as short polls. Each run gets a fresh queue and handles
``N`` messages; a producer in this process keeps at most ``DEPTH`` messages sent and not
yet handled (moto scans the whole queue on every call: a deep queue would measure
moto), and the clock runs from the first receive until the ``N``-th distinct message
has been handled. The handler's latency model is ``await asyncio.sleep(L)``: ``L`` =
50 ms for 90% of the messages and 250 ms for 10% (seeded), a remote call with a tail.

Contenders, interleaved in rounds (the order rotates), all in this interpreter:

- ``loop x1``: the straightforward loop: ``ReceiveMessage`` (10, long poll) ->
  ``asyncio.gather`` of the handlers -> ``DeleteMessageBatch`` of those that succeeded,
  again (at most 10 handlers at once);
- ``loop x2``: two such loops side by side (at most 20 handlers at once, as below);
- ``consume c=20``: ``consume(url, handle, AsyncBatchProcessor(concurrency=20))``
  (prefetch 10, the default); ``prefetch=20``: 20 messages received ahead of the
  handlers instead of 10.

A message handled twice is counted (``dup``) and does not count towards ``N``. The table
gives the median messages/s over the rounds, its range, and the median of the per-round
ratios to ``loop x1``. Writes ``benchmarks/results/consume.md`` and ``consume.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "loop x1"
CONCURRENCY = 20
CONTENDERS = (BASELINE, f"loop x{CONCURRENCY // 10}", f"consume c={CONCURRENCY}",
              f"consume c={CONCURRENCY} prefetch=20")
DEPTH = 60  # messages sent and not yet handled, at most (moto scans them all per call)
FAST, SLOW, SLOW_SHARE = 0.05, 0.25, 0.10


# -- moto in a process of its own, serialised ------------------------------------------


_SERIALISER = """
import sys, time
from tests._support.faultproxy import FaultProxy
proxy = FaultProxy(sys.argv[1], serialize_sqs=True).__enter__()
print(proxy.url, flush=True)
time.sleep(1e9)
"""


@contextmanager
def serialised_moto() -> Iterator[str]:
    """A moto server in a process of its own and the serialising proxy in front of it in
    another; yields the proxy's URL (the environment set for moto meanwhile)."""
    from asyncbatch.aws.local import local_aws_process

    with local_aws_process() as moto:
        root = str(Path(__file__).resolve().parent.parent)
        proxy = subprocess.Popen([sys.executable, "-c", _SERIALISER, moto],
                                 stdout=subprocess.PIPE, text=True, cwd=root,
                                 env={**os.environ, "PYTHONPATH": root})
        try:
            assert proxy.stdout is not None
            url = proxy.stdout.readline().strip()
            if not url:
                raise RuntimeError("the serialising proxy did not start")
            yield url
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)


# -- one run ---------------------------------------------------------------------------


class Tally:
    """What the handler saw; ``done`` once ``n`` distinct messages were handled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: set[str] = set()
        self.duplicates = 0
        self.done = asyncio.Event()

    def handled(self, message_id: str) -> None:
        if message_id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(message_id)
        if len(self.seen) == self.n:
            self.done.set()


def _latency(body: str) -> float:
    return SLOW if random.Random(body).random() < SLOW_SHARE else FAST


async def _produce(client: Any, url: str, n: int, tally: Tally, first: int) -> None:
    """Send messages 10 at a time while fewer than DEPTH are sent and not handled."""
    sent = first
    while sent < n:
        if sent - len(tally.seen) >= DEPTH:
            await asyncio.sleep(0.002)
            continue
        count = min(10, n - sent)
        await client.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{sent + i}"} for i in range(count)])
        sent += count


async def _loop(client: Any, url: str, tally: Tally) -> None:
    """The straightforward loop: receive 10, gather the handlers, delete what succeeded."""
    async def handle(message: dict[str, Any]) -> None:
        await asyncio.sleep(_latency(message["Body"]))
        tally.handled(message["MessageId"])

    while not tally.done.is_set():
        response = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1)
        messages = response.get("Messages") or []
        if not messages:
            continue
        results = await asyncio.gather(*(handle(m) for m in messages), return_exceptions=True)
        done = [m for m, r in zip(messages, results) if not isinstance(r, BaseException)]
        if done:
            await client.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])


def _contender(name: str) -> Callable[[Any, str, Tally, str], Awaitable[None]]:
    async def loops(client: Any, url: str, tally: Tally, endpoint: str) -> None:
        count = 1 if name == BASELINE else CONCURRENCY // 10
        await asyncio.gather(*(_loop(client, url, tally) for _ in range(count)))

    async def consume(client: Any, url: str, tally: Tally, endpoint: str) -> None:
        import asyncbatch
        from asyncbatch.aws.sqs import consume as worker

        async def handle(record: asyncbatch.SQSRecord) -> None:
            await asyncio.sleep(_latency(record.body))
            tally.handled(record.message_id)

        processor = asyncbatch.AsyncBatchProcessor(concurrency=CONCURRENCY,
                                                   log_summary=False)
        prefetch = int(name.split("prefetch=")[1]) if "prefetch=" in name else 10
        await worker(url, handle, processor, stop=tally.done, endpoint_url=endpoint,
                     wait_time=1, prefetch=prefetch)

    return consume if name.startswith("consume") else loops


async def run_once(name: str, endpoint: str, n: int) -> dict[str, float]:
    """Messages/s of one contender over ``n`` messages of a fresh queue."""
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session()
    config = Config(max_pool_connections=CONCURRENCY)
    async with session.client("sqs", endpoint_url=endpoint, config=config) as client:
        url = (await client.create_queue(QueueName=f"bench-{time.time_ns()}",
                                         Attributes={"VisibilityTimeout": "60"}))["QueueUrl"]
        tally = Tally(n)
        first = min(n, DEPTH)
        for start in range(0, first, 10):
            await client.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": f"m{start + i}"}
                for i in range(min(10, first - start))])
        started = time.perf_counter()
        producer = asyncio.ensure_future(_produce(client, url, n, tally, first))
        worker = asyncio.ensure_future(_contender(name)(client, url, tally, endpoint))
        while not tally.done.is_set():  # a run that stalls says so instead of hanging
            handled = len(tally.seen)
            try:
                await asyncio.wait_for(tally.done.wait(), timeout=60)
            except asyncio.TimeoutError:
                if len(tally.seen) == handled:
                    raise RuntimeError(f"{name}: no message handled for 60 s "
                                       f"({handled} of {n})") from None
        elapsed = time.perf_counter() - started
        await producer
        await asyncio.wait_for(worker, timeout=60)
        await client.delete_queue(QueueUrl=url)
    return {"rate": n / elapsed, "seconds": elapsed, "duplicates": tally.duplicates}


def measure(n: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    with serialised_moto() as endpoint:
        for name in CONTENDERS:  # warm-up: imports, connections, moto's first queue
            asyncio.run(run_once(name, endpoint, min(n, 50)))
        for round_ in range(rounds):
            order = CONTENDERS[round_ % len(CONTENDERS):] + CONTENDERS[:round_ % len(CONTENDERS)]
            for name in order:
                result = asyncio.run(run_once(name, endpoint, n))
                runs[name].append(result)
                print(f"round {round_ + 1}/{rounds} {name}: {result['rate']:.1f} msg/s",
                      file=sys.stderr, flush=True)
    return {"n": n, "rounds": rounds, "runs": runs}


# -- the report ---------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    runs = result["runs"]
    base = [r["rate"] for r in runs[BASELINE]]
    mean = (1 - SLOW_SHARE) * FAST + SLOW_SHARE * SLOW
    loops = CONTENDERS[1]
    gain = statistics.median(r["rate"] for r in runs[CONTENDERS[3]]) \
        / statistics.median(r["rate"] for r in runs[CONTENDERS[2]]) - 1
    lines = [
        "# The SQS worker against the aioboto3 loop",
        "",
        f"{result['n']:,} messages per run through one moto server in a process of its own "
        "(`python -m moto.server`), behind the tests' fault proxy in a third process with "
        "`serialize_sqs` (one SQS request at a time reaches moto, which is not "
        f"thread-safe; no fault injected); at most {DEPTH} messages sent and not yet "
        f"handled (moto scans the whole queue on every call). Handler latency "
        f"`await asyncio.sleep(L)`: L = {FAST * 1000:.0f} ms for "
        f"{100 - SLOW_SHARE * 100:.0f}% of the messages, {SLOW * 1000:.0f} ms for "
        f"{SLOW_SHARE * 100:.0f}% (seeded). {result['rounds']} round"
        f"{'s' if result['rounds'] > 1 else ''}, contenders "
        "interleaved (order rotated) in one interpreter; the clock runs from the first "
        f"receive to the {result['n']:,}th distinct message handled. Ratio: to "
        f"`{BASELINE}` of the same round, median and range. Python "
        f"{platform.python_version()}. Made by `python -m benchmarks.consume`.",
        "",
        f"| contender | messages/s (median) | range | x {BASELINE} (median) | ratio range "
        "| dup |",
        "|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        rates = [r["rate"] for r in runs[name]]
        ratios = [rate / b for rate, b in zip(rates, base)]
        dups = sum(int(r["duplicates"]) for r in runs[name])
        lines.append(
            f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f} - "
            f"{max(rates):.1f} | {statistics.median(ratios):.2f}x | {min(ratios):.2f}x - "
            f"{max(ratios):.2f}x | {dups} |")
    lines += [
        "",
        f"- `{BASELINE}`: `ReceiveMessage` (10, long poll) -> `asyncio.gather` -> "
        "`DeleteMessageBatch`, again: at most 10 handlers at once, and each batch waits for "
        "its slowest message (the barrier: with a 10% tail, 65% of the batches hold one).",
        f"- `{loops}`: {CONCURRENCY // 10} such loops side by side: at most {CONCURRENCY} "
        "handlers at once, as the worker, each batch still waiting for its slowest.",
        f"- `consume c={CONCURRENCY}`: `asyncbatch.aws.sqs.consume` with "
        f"`AsyncBatchProcessor(concurrency={CONCURRENCY})`: a handler starts as soon as a "
        "slot frees, deletes are batched apart from the receives, at most "
        f"{CONCURRENCY} + prefetch messages held (prefetch 10, the default; 20 in the last "
        "row).",
        "- `dup`: messages handled twice, all rounds (0 expected: nothing fails, nothing "
        "waits for its visibility timeout).",
        "",
        f"The worker's own bound is {CONCURRENCY} slots / {mean * 1000:.0f} ms mean latency "
        f"= {CONCURRENCY / mean:.0f} msg/s. Below it, what is left is the round trip of a "
        "receive through moto against the prefetched messages: 10 messages last "
        f"{10 / (CONCURRENCY / mean) * 1000:.0f} ms at that rate, so a slower receive "
        "leaves slots idle; a larger `prefetch` covers more of it (the last row: "
        f"{gain:+.0%} here).",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = result["runs"]
    medians = [statistics.median(r["rate"] for r in runs[name]) for name in CONTENDERS]
    lows = [m - min(r["rate"] for r in runs[name]) for m, name in zip(medians, CONTENDERS)]
    highs = [max(r["rate"] for r in runs[name]) - m for m, name in zip(medians, CONTENDERS)]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bars = ax.barh(CONTENDERS[::-1], medians[::-1], xerr=[lows[::-1], highs[::-1]],
                   color="#4c72b0", capsize=4)
    ax.bar_label(bars, labels=[f"{m:.0f}" for m in medians[::-1]], padding=28)
    ax.set_xlim(0, max(medians) * 1.3)
    ax.set_xlabel("messages/s, median over rounds (range)")
    ax.set_title(f"SQS via moto: {result['n']:,} messages, handler 50 ms (10%: 250 ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consume",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "consume.md",
                        help="the markdown file to write (the plot goes beside it)")
    args = parser.parse_args(argv)
    n, rounds = (60, 1) if args.quick else (1_000, 3)
    result = measure(n, rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result), encoding="utf-8")
    plot(result, args.out.with_suffix(".png"))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
