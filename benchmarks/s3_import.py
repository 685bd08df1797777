"""S3 CSV import throughput and memory: ``python -m benchmarks.s3_import``.

Writes ``benchmarks/results/s3_import.md`` and ``benchmarks/results/s3_import.png``.

Against a moto server in its own process (``moto_server -H 127.0.0.1 -p PORT``, started
and stopped here), every contender imports the same generated CSV of students (S3
GetObject, pydantic validation of every row, DynamoDB writes) in a fresh interpreter:

- ``put_item``: the seed's approach: read the whole object, ``csv.DictReader``, one
  ``PutItem`` per row, sequentially (boto3);
- ``batch_writer``: the same read, then boto3's ``Table.batch_writer()`` (synchronous
  ``BatchWriteItem`` of 25, one request at a time);
- ``asyncbatch cN``: ``S3CsvImporter`` streaming the object, N ``BatchWriteItem``
  requests in flight (it also moves the object to ``archive/`` at the end).

Two network conditions: ``direct`` (loopback to moto) and ``+8 ms`` (a loopback TCP
proxy, started here in its own process, that holds every byte sent to moto for 8 ms
before passing it on: each request arrives 8 ms late, about what a DynamoDB request
costs from Lambda). moto spends a few milliseconds of CPU on every request and serves
them one at a time, so it caps every contender at its own request rate; the figures are
about the client side, not about DynamoDB.

Memory: the growth of the contender's peak RSS (``ru_maxrss`` after the import minus
before it, in its own process) for files of growing size, streaming (asyncbatch) against
reading the whole object (the seed's way, with ``batch_writer``).

    python -m benchmarks.s3_import            # the full run (about 5-7 minutes)
    python -m benchmarks.s3_import --quick    # a smoke run (under a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

RESULTS = Path(__file__).resolve().parent / "results"
BUCKET = "bench-inbound"
TABLE = "bench-students"
KEY = "incoming/students.csv"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Plan:
    rows: int  # rows of the throughput file (batch contenders)
    put_item_rows: int  # rows for the sequential put_item loop
    concurrency: tuple[int, ...]
    repeats: int
    memory_rows: tuple[int, ...]
    delay_ms: float


FULL = Plan(rows=5000, put_item_rows=500, concurrency=(1, 4, 16, 64), repeats=3,
            memory_rows=(5000, 20000, 100000), delay_ms=8.0)
QUICK = Plan(rows=500, put_item_rows=200, concurrency=(1, 16), repeats=1,
             memory_rows=(500, 2000), delay_ms=8.0)


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


@contextlib.contextmanager
def process(args: Sequence[str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(ready_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def moto_command(port: int) -> list[str]:
    return [sys.executable, "-c", "from moto.server import main; main()",
            "-H", "127.0.0.1", "-p", str(port)]


# -- the latency proxy (its own process) -----------------------------------------------


async def _delayed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   delay: float) -> None:
    """Forward reader to writer, each piece ``delay`` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def release() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(pump(), release())


async def _plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            if writer.can_write_eof():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def serve_proxy(listen: int, target: int, delay: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_delayed(client_r, server_w, delay), _plain(server_r, client_w))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=512)
    async with server:
        await server.serve_forever()


# -- setup (in this process, with boto3, straight to moto) ------------------------------


def reset(moto: str) -> None:
    request = urllib.request.Request(f"{moto}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def prepare(moto: str, data: bytes) -> None:
    import boto3

    from asyncbatch.cli.demo_s3 import STUDENT_TABLE

    reset(moto)
    s3 = boto3.client("s3", endpoint_url=moto)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto)
    s3.create_bucket(Bucket=BUCKET)
    dynamodb.create_table(
        TableName=TABLE, **STUDENT_TABLE)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)


def item_count(moto: str) -> int:
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=moto)
    return int(dynamodb.describe_table(TableName=TABLE)["Table"]["ItemCount"])


# -- contenders (each in a fresh interpreter) -----------------------------------------


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read_rows_whole(s3: Any) -> list[dict[str, str]]:
    """The seed's read: the whole object, then every row."""
    import csv
    import io

    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


def run_put_item() -> dict[str, Any]:
    import boto3
    from pydantic import ValidationError

    from asyncbatch.cli.demo_s3 import DemoStudent

    s3 = boto3.client("s3")
    dynamodb = boto3.client("dynamodb")
    dynamodb.describe_table(TableName=TABLE)  # warm the client
    before = _maxrss_mb()
    started = time.perf_counter()
    written = 0
    for row in _read_rows_whole(s3):
        if None in row:  # more values than columns: rejected, as asyncbatch does
            continue
        try:
            student = DemoStudent.model_validate(
                {k: v.strip() for k, v in row.items() if k and v and v.strip()})
        except ValidationError:
            continue
        dynamodb.put_item(TableName=TABLE,
                          Item={k: {"S": v} for k, v in student.model_dump().items()})
        written += 1
    elapsed = time.perf_counter() - started
    return {"written": written, "seconds": elapsed, "rss_mb": _maxrss_mb() - before}


def run_batch_writer() -> dict[str, Any]:
    import boto3
    from pydantic import ValidationError

    from asyncbatch.cli.demo_s3 import DemoStudent

    s3 = boto3.client("s3")
    table = boto3.resource("dynamodb").Table(TABLE)
    table.load()  # warm the client
    before = _maxrss_mb()
    started = time.perf_counter()
    written = 0
    with table.batch_writer(overwrite_by_pkeys=["student_id", "course"]) as batch:
        for row in _read_rows_whole(s3):
            if None in row:
                continue
            try:
                student = DemoStudent.model_validate(
                    {k: v.strip() for k, v in row.items() if k and v and v.strip()})
            except ValidationError:
                continue
            batch.put_item(Item=student.model_dump())
            written += 1
    elapsed = time.perf_counter() - started
    return {"written": written, "seconds": elapsed, "rss_mb": _maxrss_mb() - before}


def run_asyncbatch(concurrency: int) -> dict[str, Any]:
    from asyncbatch.aws.s3_import import S3CsvImporter
    from asyncbatch.cli.demo_s3 import DemoStudent

    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKET}, "object": {"key": KEY}}}]}

    async def main() -> dict[str, Any]:
        importer = S3CsvImporter(DemoStudent, TABLE, concurrency=concurrency,
                                 key_attributes=("student_id", "course"))
        async with importer.open_clients() as clients:
            await clients.dynamodb.describe_table(TableName=TABLE)  # warm the client
            before = _maxrss_mb()
            started = time.perf_counter()
            result = await importer.run(event, clients=clients)
            elapsed = time.perf_counter() - started
        (obj,) = result.objects
        return {"written": obj.rows_written, "seconds": elapsed,
                "rss_mb": _maxrss_mb() - before, "status": obj.status}

    return asyncio.run(main())


def contender_main(name: str) -> None:
    if name == "put_item":
        out = run_put_item()
    elif name == "batch_writer":
        out = run_batch_writer()
    elif name.startswith("asyncbatch-c"):
        out = run_asyncbatch(int(name.removeprefix("asyncbatch-c")))
    else:
        raise SystemExit(f"unknown contender {name!r}")
    print(json.dumps(out))


def run_contender(name: str, endpoint: str) -> dict[str, Any]:
    env = {**os.environ, **ENV, "AWS_ENDPOINT_URL": endpoint}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.s3_import", "--contender", name],
        env=env, capture_output=True, text=True, timeout=600,
        cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the suite -------------------------------------------------------------------------


def csv_bytes(rows: int) -> tuple[bytes, int]:
    """The file and how many of its rows are valid."""
    from asyncbatch.cli.demo_s3 import make_csv

    data, bad, _ = make_csv(rows)
    return data, rows - len(bad)


def measure(name: str, endpoint: str, moto: str, data: bytes, valid: int,
            repeats: int, log: Any) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        prepare(moto, data)
        out = run_contender(name, endpoint)
        count = item_count(moto)
        if out["written"] != valid or count != valid:
            raise RuntimeError(f"{name}: wrote {out['written']}, table has {count}, "
                               f"expected {valid}")
        runs.append(out)
    seconds = statistics.median(r["seconds"] for r in runs)
    row = {"name": name, "rows": valid, "seconds": seconds, "rows_per_s": valid / seconds,
           "runs": [round(r["seconds"], 3) for r in runs],
           "rss_mb": statistics.median(r["rss_mb"] for r in runs)}
    log(f"  {name:<16} {row['rows_per_s']:>8,.0f} rows/s  (median of "
        f"{', '.join(f'{s:.2f}' for s in row['runs'])} s for {valid:,} rows)")
    return row


def run_suite(plan: Plan, log: Any = print) -> dict[str, Any]:
    moto_port, proxy_port = free_port(), free_port()
    moto = f"http://127.0.0.1:{moto_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    os.environ.update(ENV)
    results: dict[str, Any] = {"plan": plan.__dict__, "throughput": {}, "memory": []}
    big, big_valid = csv_bytes(plan.rows)
    small, small_valid = csv_bytes(plan.put_item_rows)
    started = time.monotonic()
    with process(moto_command(moto_port), f"{moto}/moto-api/"), \
            process([sys.executable, "-m", "benchmarks.s3_import", "--proxy",
                     str(proxy_port), str(moto_port), str(plan.delay_ms)],
                    f"{proxy}/moto-api/"):
        for label, endpoint in (("direct", moto), (f"+{plan.delay_ms:g} ms", proxy)):
            log(f"{label}: {plan.rows:,}-row file ({len(big) / 1e6:.2f} MB)")
            rows = [measure("put_item", endpoint, moto, small, small_valid, plan.repeats, log),
                    measure("batch_writer", endpoint, moto, big, big_valid, plan.repeats, log)]
            rows += [measure(f"asyncbatch-c{c}", endpoint, moto, big, big_valid,
                             plan.repeats, log) for c in plan.concurrency]
            results["throughput"][label] = rows
        log("memory (direct):")
        for n in plan.memory_rows:
            data, valid = csv_bytes(n)
            for name in ("batch_writer", "asyncbatch-c16"):
                row = measure(name, moto, moto, data, valid, 1, log)
                results["memory"].append({"name": name, "rows": n, "file_mb": len(data) / 1e6,
                                          "rss_mb": row["rss_mb"],
                                          "rows_per_s": row["rows_per_s"]})
                log(f"    {n:,} rows ({len(data) / 1e6:.1f} MB): peak RSS +{row['rss_mb']:.1f} MB")
    results["elapsed_s"] = time.monotonic() - started
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return results


# -- the report ------------------------------------------------------------------------


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = results["plan"]
    lines = [
        "# S3 CSV import: throughput and memory",
        "",
        "`python -m benchmarks.s3_import` (this file is written by it). moto in its own "
        "process (`moto_server -H 127.0.0.1 -p PORT`); each contender in a fresh "
        f"interpreter; medians of {plan['repeats']} runs. Machine: "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}; "
        f"the whole run took {results['elapsed_s'] / 60:.1f} min.",
        "",
        "Every contender reads the same generated student CSV from S3, validates each row "
        "with the same pydantic model and writes the valid rows to DynamoDB; the table's "
        "item count is checked after every run. `put_item` is the seed's approach (whole "
        "object read, one PutItem per row, sequential; timed on a "
        f"{plan['put_item_rows']:,}-row file because it is slow); `batch_writer` is boto3's "
        "synchronous `Table.batch_writer()`; `asyncbatch cN` is `S3CsvImporter` (streaming "
        "read, N BatchWriteItem requests in flight; it also moves the object to "
        "`archive/`).",
        "",
        f"`+{plan['delay_ms']:g} ms`: a loopback TCP proxy in its own process holds every "
        f"byte sent to moto for {plan['delay_ms']:g} ms (each request arrives "
        f"{plan['delay_ms']:g} ms late, about a DynamoDB request from Lambda). moto serves "
        "requests with a few milliseconds of CPU each and is the ceiling of every "
        "contender here: with real DynamoDB, which scales out, the in-flight requests of "
        "asyncbatch keep paying off past that ceiling. On this 2-core machine, once moto "
        "is saturated more requests in flight only add contention (a thread and a new "
        "connection per request in moto's server, more traffic through the proxy), which "
        "is why the largest concurrency can come out below the middle ones.",
        "",
        "## Throughput (rows per second; ratio to `batch_writer` in the same condition)",
        "",
    ]
    conditions = list(results["throughput"])
    lines.append("| contender | " + " | ".join(conditions) + " |")
    lines.append("|---|" + "---|" * len(conditions))
    names = [r["name"] for r in results["throughput"][conditions[0]]]
    for name in names:
        cells = []
        for cond in conditions:
            rows = {r["name"]: r for r in results["throughput"][cond]}
            base = rows["batch_writer"]["rows_per_s"]
            value = rows[name]["rows_per_s"]
            cells.append(f"{value:,.0f} ({value / base:.2f}x)")
        lines.append(f"| {name.replace('-c', ' c')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Memory (growth of peak RSS during the import, direct)",
        "",
        "| file | batch_writer (whole object read) | asyncbatch c16 (streamed) |",
        "|---|---|---|",
    ]
    by_rows: dict[int, dict[str, Any]] = {}
    for row in results["memory"]:
        by_rows.setdefault(row["rows"], {})[row["name"]] = row
    for n, pair in sorted(by_rows.items()):
        file_mb = next(iter(pair.values()))["file_mb"]
        lines.append(f"| {n:,} rows, {file_mb:.1f} MB | +{pair['batch_writer']['rss_mb']:.1f} MB "
                     f"| +{pair['asyncbatch-c16']['rss_mb']:.1f} MB |")
    lines += [
        "",
        "The streamed import's growth is a fixed few MB (aiohttp's connection pool and "
        "socket buffers, the bounded queue of 25-row chunks, the requests in flight); "
        "reading the whole object grows with the file (the bytes, the decoded text and "
        "one dict per row). `ru_maxrss` is a high-water mark: memory the interpreter "
        "already held before the import is reused without raising it, so the streamed "
        "figures move by a few MB from run to run.",
        "",
        "![throughput and memory](s3_import.png)",
        "",
    ]
    (out_dir / "s3_import.md").write_text("\n".join(lines))
    plot(results, out_dir / "s3_import.png")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = ["tab:blue", "tab:orange"]
    for colour, (cond, rows) in zip(colours, results["throughput"].items()):
        byname = {r["name"]: r for r in rows}
        conc = [int(n.removeprefix("asyncbatch-c")) for n in byname if n.startswith("asyncbatch")]
        left.plot(conc, [byname[f"asyncbatch-c{c}"]["rows_per_s"] for c in conc], "o-",
                  color=colour, label=f"asyncbatch, {cond}")
        left.axhline(byname["batch_writer"]["rows_per_s"], color=colour, ls="--", lw=1,
                     label=f"boto3 batch_writer, {cond}")
        left.axhline(byname["put_item"]["rows_per_s"], color=colour, ls=":", lw=1,
                     label=f"put_item loop (seed), {cond}")
    left.set_xscale("log", base=2)
    left.set_xlabel("BatchWriteItem requests in flight (concurrency)")
    left.set_ylabel("rows per second")
    left.set_ylim(bottom=0)
    left.set_title("Import throughput against moto (its CPU is the ceiling)")
    left.legend(fontsize=7)
    for name, style, label in (("batch_writer", "s--", "whole object read (batch_writer)"),
                               ("asyncbatch-c16", "o-", "streamed (asyncbatch c16)")):
        rows = [r for r in results["memory"] if r["name"] == name]
        right.plot([r["file_mb"] for r in rows], [r["rss_mb"] for r in rows], style,
                   label=label)
    right.set_xlabel("CSV file size (MB)")
    right.set_ylabel("peak RSS growth during the import (MB)")
    right.set_title("Memory against file size")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3_import",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=3, help=argparse.SUPPRESS,
                        metavar=("LISTEN", "TARGET", "DELAY_MS"))
    args = parser.parse_args(argv)
    if args.contender:
        contender_main(args.contender)
        return 0
    if args.proxy:
        listen, target, delay = args.proxy
        asyncio.run(serve_proxy(int(listen), int(target), float(delay) / 1000.0))
        return 0
    results = run_suite(QUICK if args.quick else FULL)
    write_report(results, args.out)
    print(f"wrote {args.out / 's3_import.md'} and {args.out / 's3_import.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
