"""How fast the runner feeds a handler from moto, at a few concurrency levels.

    python examples/redelivery/throughput.py [--records 1000] [--latency 0.02]

moto runs in its own process (``moto_server``), so that it does not share the GIL with
the runner (``--in-process`` to use ``local_aws()`` instead). The handler is an asyncbatch
processor (concurrency 32) whose record handler awaits ``--latency`` seconds, a model of
the I/O a real one does; ``--latency 0`` measures the runner and moto alone.

A figure is records acknowledged per second, from the start of ``run()`` until the last
acknowledgement, and the CPU time of this process per record (runner, aiobotocore,
handler; moto's CPU is its own process's). SQS: by batches in flight
(``max_concurrency``), fed by a producer that keeps ``--depth`` messages queued, because
moto's ReceiveMessage slows down in proportion to the queue's depth. Kinesis (one shard,
records put up front): by ``parallelization_factor``. moto's CPU per request is the
ceiling here, not AWS's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable
from typing import Any, Callable, Optional

import anyio

import asyncbatch
from asyncbatch.aws.local import local_aws, local_aws_process
from asyncbatch.runner import BatchResult, KinesisPoller, Runner, Source, SQSPoller


def make_handler(latency: float) -> Any:
    processor = asyncbatch.AsyncBatchProcessor(concurrency=32, log_summary=False)

    async def record_handler(record: Any) -> None:
        if latency:
            await anyio.sleep(latency)

    async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return await asyncbatch.async_process_partial_response(event, record_handler,
                                                               processor, context)
    return handler


Producer = Callable[[Runner], Awaitable[None]]


async def measure(session: Any, source: Source, records: int, latency: float,
                  producer: Optional[Producer] = None) -> tuple[float, float]:
    done = anyio.Event()
    acknowledged = Wakeup()
    runner: Runner

    def on_batch(result: BatchResult) -> None:
        acknowledged.notify()
        if runner.counters.succeeded >= records:
            done.set()

    runner = Runner(source, make_handler(latency), session=session, on_batch=on_batch)
    runner.acknowledged = acknowledged  # type: ignore[attr-defined]
    started = time.monotonic()
    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: runner.run())
        if producer is not None:
            tg.start_soon(producer, runner)
        with anyio.fail_after(600):
            await done.wait()
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu
        runner.stop()
    assert runner.counters.succeeded == records, runner.counters
    return records / elapsed, cpu / records * 1e6


class Wakeup:
    def __init__(self) -> None:
        self.event = anyio.Event()

    def notify(self) -> None:
        self.event.set()
        self.event = anyio.Event()


async def sqs_level(session: Any, name: str, records: int, latency: float,
                    concurrency: int, depth: int) -> tuple[float, float]:
    """moto's ReceiveMessage costs time in proportion to the queue's depth (~2 ms per
    queued message here), so a producer keeps about ``depth`` messages queued, as a
    steady stream would, instead of queueing every record up front."""
    async with session.client("sqs") as sqs:
        url = (await sqs.create_queue(QueueName=name))["QueueUrl"]

    async def produce(runner: Runner) -> None:
        sent = 0
        async with session.client("sqs") as sqs:
            while sent < records:
                while sent < records and sent - runner.counters.succeeded < depth:
                    await sqs.send_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "MessageBody": json.dumps({"n": i})}
                        for i in range(sent, min(sent + 10, records))])
                    sent = min(sent + 10, records)
                await runner.acknowledged.event.wait()  # type: ignore[attr-defined]

    source = SQSPoller(url, batch_size=10, max_concurrency=concurrency, wait_time=1)
    return await measure(session, source, records, latency, produce)


async def kinesis_level(session: Any, name: str, records: int, latency: float,
                        factor: int) -> tuple[float, float]:
    async with session.client("kinesis") as kinesis:
        await kinesis.create_stream(StreamName=name, ShardCount=1)
        for start in range(0, records, 500):
            await kinesis.put_records(StreamName=name, Records=[
                {"PartitionKey": f"k{i % 64}", "Data": json.dumps({"n": i}).encode()}
                for i in range(start, min(start + 500, records))])
    source = KinesisPoller(name, batch_size=100, parallelization_factor=factor,
                           poll_interval=0.05)
    return await measure(session, source, records, latency)


def _figures(runs: list[tuple[float, float]]) -> str:
    rate = statistics.median(r for r, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    return f"{rate:7.0f} records/s, runner-side CPU {cpu:6.0f} us/record"


async def main(args: argparse.Namespace) -> None:
    import aioboto3

    session = aioboto3.Session()
    print(f"{args.records} records per run, handler latency {args.latency * 1000:g} ms per "
          f"record, median of {args.repeat} runs")
    for concurrency in (1, 2, 4, 8):
        rates = [await sqs_level(session, f"q{concurrency}-{r}", args.records, args.latency,
                                 concurrency, args.depth) for r in range(args.repeat)]
        print(f"SQS standard, batch 10, {concurrency} batch(es) in flight: "
              f"{_figures(rates)}", flush=True)
    for factor in (1, 2, 4):
        rates = [await kinesis_level(session, f"s{factor}-{r}", args.records, args.latency,
                                     factor) for r in range(args.repeat)]
        print(f"Kinesis 1 shard, batch 100, parallelization {factor}:    "
              f"{_figures(rates)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--depth", type=int, default=20,
                        help="SQS messages kept queued by the producer (default 20)")
    parser.add_argument("--in-process", action="store_true")
    arguments = parser.parse_args()
    with (local_aws() if arguments.in_process else local_aws_process()):
        anyio.run(main, arguments)
    sys.exit(0)
