"""``asyncbatch bench``: sweep concurrency levels over a batch and find the knee.

    asyncbatch bench --latency 10ms --records 2000 --concurrency 1,10,50,100,auto
    asyncbatch bench --latency lognormal:10ms:0.5 --throttle-above 50 --plot bench.png
    asyncbatch bench --handler app:handle --event sample.json --records 5000 --json out.json
    asyncbatch bench --source stream --latency 10ms --concurrency 10,50,100 --rate 500,2000

Only argparse is imported when the CLI starts; anyio, the engine and matplotlib when the
command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .._core.handlers import Handler
    from ..bench import Dependency, Level, LevelResult

__all__ = ["add_parser"]

_DEFAULT_LEVELS = "1,10,50,100,auto"
_DEFAULT_RECORDS = 2000


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="sweep concurrency levels over a batch: throughput, latency, the knee",
        description=(
            "Process one batch at several concurrency levels with your handler (or a\n"
            "simulated dependency) and print, per level: throughput (succeeded records per\n"
            "second of makespan), record latency p50/p95/p99 (handler call time, retry\n"
            "waits excluded), makespan, mean calls in flight, failures and retries; then\n"
            "the knee: the smallest fixed level within 5% of the fastest fixed level's\n"
            "throughput ('auto' and 'gradient' are compared with that fastest level).\n"
            "Progress goes to stderr, the table (or --json) to stdout. Exit status 1 when\n"
            "every record failed at every level, 2 on a bad argument."),
        epilog=(
            "examples:\n"
            "  asyncbatch bench --latency 10ms --records 2000 --concurrency 1,10,50,100,auto\n"
            "  asyncbatch bench --latency lognormal:10ms:0.5 --throttle-above 50 "
            "--concurrency 10,25,50,100,auto --plot bench.png\n"
            "  asyncbatch bench --handler app:handle --event sample.json --records 5000 "
            "--json results.json"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    work = parser.add_argument_group("the work (one of)")
    which = work.add_mutually_exclusive_group()
    which.add_argument("--handler", metavar="MODULE:FUNCTION",
                       help="your record handler, e.g. app:handle or path/app.py:handle "
                            "(the current directory is importable): an async def, or a "
                            "plain def, run on worker threads as processors run it")
    which.add_argument("--latency", metavar="SPEC",
                       help="a simulated handler awaiting a dependency with this latency: "
                            "10ms, lognormal:MEDIAN:SIGMA (lognormal:10ms:0.5), "
                            "uniform:MIN:MAX, exponential:MEAN")
    work.add_argument("--throttle-above", type=int, metavar="N",
                      help="with --latency: the dependency's capacity; calls beyond N in "
                           "flight are throttled (TransientError, retried)")
    work.add_argument("--throttle-slope", type=float, metavar="S",
                      help="with --throttle-above: throttle a call with probability "
                           "min(1, S x overload), overload = in_flight / N - 1, instead of "
                           "every call beyond N")
    work.add_argument("--slowdown", type=float, default=0.0, metavar="F",
                      help="with --throttle-slope: calls above the capacity that are not "
                           "throttled take latency x (1 + F x overload) (default 0)")
    batch = parser.add_argument_group("the batch (one of)")
    source = batch.add_mutually_exclusive_group()
    source.add_argument("--event", metavar="FILE",
                        help="a sample Lambda event (JSON, any source); with --records "
                             "its records are repeated to that many, identifiers made unique")
    source.add_argument("--source", choices=("sqs", "fifo", "kinesis", "dynamodb", "kafka",
                                             "stream"),
                        help="generate an event of this source (default: sqs); 'stream': "
                             "items through processor.run(), not a Lambda event (with "
                             "--keys: one at a time per key)")
    batch.add_argument("--records", type=int, metavar="N",
                       help=f"records in the batch (default {_DEFAULT_RECORDS} generated; "
                            "the file's own for --event)")
    batch.add_argument("--keys", type=int, metavar="K",
                       help="ordering keys of a generated fifo/kinesis/dynamodb/kafka event: "
                            "FIFO groups, partition keys, item keys or Kafka partitions "
                            "(default 100)")
    sweep = parser.add_argument_group("the sweep")
    sweep.add_argument("--concurrency", default=_DEFAULT_LEVELS, metavar="LEVELS",
                       help="comma-separated levels: numbers, 'auto' (AIMDLimit, as "
                            "concurrency='auto'), 'gradient' (GradientLimit) "
                            f"(default {_DEFAULT_LEVELS})")
    sweep.add_argument("--rate", metavar="RATES",
                       help="comma-separated rate limits (handler calls started per second, "
                            "asyncbatch.RateLimit) swept with every concurrency level")
    sweep.add_argument("--repeat", type=int, default=1, metavar="N",
                       help="runs per level, round-robin; the median-makespan run is shown "
                            "(default 1)")
    sweep.add_argument("--attempts", type=int, default=3,
                       help="Retry(attempts=...) for transient errors; 1: no retry (default 3)")
    sweep.add_argument("--retry-base", default="50ms", metavar="DURATION",
                       help="Retry(base=...) (default 50ms)")
    sweep.add_argument("--retry-cap", default="2s", metavar="DURATION",
                       help="Retry(cap=...) (default 2s)")
    sweep.add_argument("--timeout", metavar="DURATION",
                       help="per-record handler timeout (default none)")
    sweep.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                       help="the event loop the sweep runs on (default asyncio)")
    sweep.add_argument("--seed", type=int, default=0,
                       help="seed of the simulated latencies and throttles (default 0)")
    out = parser.add_argument_group("output")
    out.add_argument("--plot", metavar="PATH",
                     help="save throughput and p99 latency against concurrency as a PNG")
    out.add_argument("--json", nargs="?", const="-", metavar="PATH",
                     help="the results as JSON: to stdout instead of the table, or to PATH")
    out.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                     help="when stderr is not a terminal, a progress line (records done, "
                          "rate) this often while a level runs (default 5); a terminal "
                          "gets a live line")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"asyncbatch bench: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchError

    try:
        return _run(args)
    except BenchError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("\nasyncbatch bench: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import importlib.util
    import json
    from pathlib import Path

    from .._core.retry import Retry
    from ..bench import (
        BenchError,
        Dependency,
        Sweep,
        count_records,
        format_table,
        generate_event,
        load_event,
        parse_latency,
        parse_levels,
        plot_sweep,
        run_sweep,
    )
    from ._interrupt import run_interruptible

    # -- check every argument before anything runs
    if args.handler is None and args.latency is None:
        raise BenchError("give the work: --handler MODULE:FUNCTION (your record handler) or "
                         "--latency SPEC (a simulated one, e.g. --latency 10ms)")
    if args.throttle_above is not None:
        if args.latency is None:
            raise BenchError("--throttle-above simulates a dependency: use it with --latency")
        if args.throttle_above < 1:
            raise BenchError("--throttle-above must be >= 1")
    if args.throttle_slope is not None:
        if args.throttle_above is None:
            raise BenchError("--throttle-slope applies above a capacity: give "
                             "--throttle-above N too")
        if not args.throttle_slope > 0:
            raise BenchError("--throttle-slope must be above 0")
    if args.slowdown:
        if args.throttle_slope is None:
            raise BenchError("--slowdown needs --throttle-slope: without it every call "
                             "above the capacity is throttled, so none runs slower")
        if args.slowdown < 0:
            raise BenchError("--slowdown must be >= 0")
    if args.event is not None and args.keys is not None:
        raise BenchError("--keys is for generated events (--source); a file's records "
                         "keep their own keys")
    if not args.progress_every > 0:
        raise BenchError("--progress-every must be above 0")
    if args.repeat < 1:
        raise BenchError("--repeat must be >= 1")
    if args.attempts < 1:
        raise BenchError("--attempts must be >= 1 (1: no retry)")
    levels = parse_levels(args.concurrency)
    rates = _rates(args.rate)
    retry = Retry(attempts=args.attempts, base=_duration("--retry-base", args.retry_base),
                  cap=_duration("--retry-cap", args.retry_cap))
    timeout = None if args.timeout is None else _duration("--timeout", args.timeout)
    if timeout is not None and timeout <= 0:
        raise BenchError("--timeout must be above 0")
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise BenchError("--plot needs matplotlib: pip install matplotlib (or "
                             "pip install -e '.[bench]' in a clone of asyncbatch)")
        parent = Path(args.plot).resolve().parent
        if not parent.is_dir():
            raise BenchError(f"--plot {args.plot}: no such directory {parent}")
    json_path = None if args.json in (None, "-") else Path(args.json)
    if json_path is not None and not json_path.resolve().parent.is_dir():
        raise BenchError(f"--json {args.json}: no such directory {json_path.resolve().parent}")

    if args.latency is not None:
        latency = parse_latency(args.latency)
        throttle, slowdown, seed = args.throttle_above, args.slowdown, args.seed
        slope = args.throttle_slope
        description = Dependency(latency, throttle, slowdown=slowdown,
                                 throttle_slope=slope).describe()
        runs = 0

        def make_handler() -> tuple[Handler, Optional[Dependency]]:
            nonlocal runs
            runs += 1
            dependency = Dependency(latency, throttle, slowdown=slowdown,
                                    throttle_slope=slope, seed=seed + runs)
            return dependency, dependency
    else:
        handler = load_handler(args.handler)
        description = f"handler {args.handler}"

        def make_handler() -> tuple[Handler, Optional[Dependency]]:
            return handler, None

    if args.event is not None:
        event = load_event(args.event, args.records)
        source_name = f"{args.event}"
    else:
        source_name = args.source or "sqs"
        event = generate_event(source_name,
                               _DEFAULT_RECORDS if args.records is None else args.records,
                               100 if args.keys is None else args.keys,
                               keyed=args.keys is not None)
    records = count_records(event)

    sweep = Sweep(levels=levels, description=description, records=records,
                  source=source_name, repeat=args.repeat, backend=args.backend, rates=rates)
    show = _Progress(sweep, sys.stderr, quiet=args.quiet, every=args.progress_every)
    show.start(estimate=_estimate(args, records, levels))
    run_sweep(sweep, event, make_handler, retry=retry, timeout=timeout, progress=show,
              runner=run_interruptible)

    data = sweep.as_dict()
    data["retry"] = {"attempts": retry.attempts, "base": retry.base, "cap": retry.cap}
    data["timeout"] = timeout
    if args.json == "-":
        print(json.dumps(data, indent=2), flush=True)
    else:
        print(format_table(sweep), flush=True)
        if json_path is not None:
            json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            print(f"results written to {json_path}", file=sys.stderr)
    if args.plot is not None:
        path = plot_sweep(sweep, args.plot)
        print(f"plot saved to {path}", file=sys.stderr)
    if sweep.results and all(r.all_failed for r in sweep.results):
        # the figures measure failing records, not the handler: not a successful benchmark
        errors = [error for r in sweep.results for error in r.errors]
        example = f", e.g. {errors[0]}" if errors else ""
        print(f"asyncbatch bench: every record failed at every level{example}",
              file=sys.stderr)
        return 1
    return 0


def _rates(text: Optional[str]) -> list[Optional[float]]:
    """``--rate 100,500`` as ``[100.0, 500.0]``; none given: ``[None]``."""
    import math

    from ..bench import BenchError

    if text is None:
        return [None]
    rates: list[Optional[float]] = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("/s")
        if not part:
            continue
        try:
            rate = float(part)
        except ValueError:
            raise BenchError(f"--rate {text!r}: {part!r} is not a number of calls per "
                             "second; e.g. --rate 100,500") from None
        if not (math.isfinite(rate) and rate > 0):
            raise BenchError(f"--rate {text!r}: rates must be above 0")
        if rate not in rates:
            rates.append(rate)
    if not rates:
        raise BenchError(f"--rate {text!r}: give rates, e.g. --rate 100,500")
    return rates


def _duration(option: str, text: str) -> float:
    from ..bench import BenchError, parse_duration

    try:
        return parse_duration(text)
    except BenchError as exc:
        raise BenchError(f"{option} {exc}") from None


def _estimate(args: argparse.Namespace, records: int, levels: list[Level]) -> Optional[float]:
    """Seconds the slowest fixed level should take with a simulated latency."""
    if args.latency is None:
        return None
    from ..bench import parse_latency

    fixed = [level for level in levels if isinstance(level, int)]
    if not fixed:
        return None
    return float(records * parse_latency(args.latency).median / min(fixed) * args.repeat)


class _Progress:
    """Progress on stderr. On a terminal: a live line per level (records done, share,
    rate). Elsewhere (a pipe, CI): a line every ``every`` seconds while a level runs, so
    that a long level is never silent, and one line per finished run."""

    def __init__(self, sweep: Any, stream: Any, *, quiet: bool, every: float = 5.0) -> None:
        self.sweep = sweep
        self.stream = stream
        self.quiet = quiet
        self.every = every
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.level_started: Optional[float] = None
        self.last_line = 0.0

    def start(self, estimate: Optional[float]) -> None:
        if self.quiet:
            return
        sweep = self.sweep
        levels = ",".join(str(level) for level in sweep.levels)
        text = (f"asyncbatch bench: {sweep.records:,} records ({sweep.source}), "
                f"{sweep.description}; concurrency {levels}")
        if sweep.repeat > 1:
            text += f", {sweep.repeat} runs each"
        if estimate is not None and estimate > 30:
            text += f" (the lowest level alone takes about {estimate:.0f} s)"
        print(text, file=self.stream, flush=True)

    def __call__(self, rep: int, level: Level, done: int, total: int,
                 result: Optional[LevelResult]) -> None:
        if self.quiet:
            return
        import time

        now = time.monotonic()
        run = f"[{rep + 1}/{self.sweep.repeat}] " if self.sweep.repeat > 1 else ""
        if result is None:
            if self.level_started is None:
                self.level_started = self.last_line = now
            elapsed = now - self.level_started
            rate = done / elapsed if elapsed > 0 else 0.0
            share = done / total if total else 1.0
            text = (f"  {run}concurrency {level}: {done:,}/{total:,} records ({share:.0%}), "
                    f"{rate:,.0f} rec/s, {elapsed:.0f} s")
            if self.live:
                print("\r" + text + "\x1b[K", end="", file=self.stream, flush=True)
            elif now - self.last_line >= self.every:
                self.last_line = now
                print(text, file=self.stream, flush=True)
            return
        self.level_started = None
        line = (f"  {run}concurrency {level}: {result.succeeded:,} ok, "
                f"{result.failed:,} failed")
        if result.skipped:
            line += f", {result.skipped:,} skipped"
        line += f" in {result.makespan:.2f} s ({result.throughput:,.0f} rec/s)"
        if result.final_limit is not None:
            line += f", limit ended at {result.final_limit}"
        if result.all_failed:
            line += "; every record failed"
            if result.errors:
                line += f", e.g. {result.errors[0]}"
        print(("\r" + line + "\x1b[K") if self.live else line, file=self.stream, flush=True)


def load_handler(spec: str) -> Handler:
    """``module:function`` or ``path/to/file.py:function`` to a record handler: what a
    processor accepts, an ``async def`` or a plain ``def`` (run on worker threads)."""
    from ..bench import BenchError
    from ._common import load_callable

    try:
        target = load_callable(spec)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return target  # type: ignore[no-any-return]
