"""Concurrency sweeps: the engine behind ``asyncbatch bench`` (which only parses its
arguments) and the adaptive concurrency benchmark in ``benchmarks/adaptive.py``.

A sweep runs one event through ``AsyncBatchProcessor(timings=True)`` at several
concurrency levels (fixed numbers, ``auto`` or ``gradient``) and measures, per level,
throughput (succeeded records per second of makespan), record latency percentiles (from
the outcomes' durations: the handler calls' time, retry back-off waits excluded),
failures and retries. The handler is the user's, or a simulated dependency
(:class:`Dependency`) with a latency model and, optionally, a capacity above which it
slows down and throttles.

Never imported by ``import asyncbatch``; matplotlib only when a plot is drawn.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import anyio

from ._core.handlers import Handler
from ._core.hooks import Hooks
from ._core.limits import AIMDLimit, ConcurrencyLimit, GradientLimit
from ._core.retry import Retry, TransientError
from ._errors import exception_text, type_name

if TYPE_CHECKING:
    from ._sources import Record

__all__ = [
    "ADAPTIVE_LEVELS",
    "BenchError",
    "Dependency",
    "ERRORS_KEPT",
    "ERRORS_SHOWN",
    "Items",
    "KNEE_TOLERANCE",
    "Latency",
    "Level",
    "LevelResult",
    "Progress",
    "SOURCES",
    "Sweep",
    "count_records",
    "describe_failure",
    "describe_failures",
    "describe_knee",
    "find_knee",
    "format_table",
    "generate_event",
    "load_event",
    "make_concurrency",
    "parse_duration",
    "parse_latency",
    "parse_levels",
    "percentile",
    "plot_sweep",
    "run_level",
    "run_sweep",
]

SOURCES = ("sqs", "fifo", "kinesis", "dynamodb", "kafka", "stream")
ADAPTIVE_LEVELS = ("auto", "gradient")
KNEE_TOLERANCE = 0.05
ERRORS_KEPT = 5  # failed records kept per level, with their exception
ERRORS_SHOWN = 3  # of those, shown under the table

Level = Union[int, str]


class BenchError(ValueError):
    """A bad argument of the bench: the message says what to give instead."""


# -- latency models --------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*(us|µs|ms|s)\s*$")
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_duration(text: str) -> float:
    """``"10ms"``, ``"1.5s"``, ``"250us"`` to seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise BenchError(f"{text!r} is not a duration: give a number and a unit "
                         "(us, ms or s), e.g. 10ms or 0.5s")
    number, exponent, unit = match.groups()
    value = float(number) * (10.0 ** int(exponent) if exponent else 1.0)
    return value * _UNITS[unit]


@dataclass(frozen=True)
class Latency:
    """How long one call of the simulated dependency takes.

    ``fixed``: always ``a`` seconds. ``lognormal``: median ``a``, shape ``b`` (sigma of the
    log; 0.5 gives a p99 about 3.2 times the median). ``uniform``: between ``a`` and ``b``.
    ``exponential``: mean ``a``.
    """

    kind: str
    a: float
    b: float = 0.0

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        a, b = self.a, self.b
        if self.kind == "fixed":
            return lambda: a
        if self.kind == "lognormal":
            if a == 0.0:
                return lambda: 0.0
            mu = math.log(a)
            return lambda: rng.lognormvariate(mu, b)
        if self.kind == "uniform":
            return lambda: rng.uniform(a, b)
        if self.kind == "exponential":
            return lambda: rng.expovariate(1.0 / a) if a > 0 else 0.0
        raise AssertionError(self.kind)  # pragma: no cover - parse_latency checks

    @property
    def median(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "exponential":
            return self.a * math.log(2)
        return self.a

    def __str__(self) -> str:
        if self.kind == "fixed":
            return _ms(self.a)
        if self.kind == "lognormal":
            return f"lognormal(median {_ms(self.a)}, sigma {self.b:g})"
        if self.kind == "uniform":
            return f"uniform({_ms(self.a)}..{_ms(self.b)})"
        return f"exponential(mean {_ms(self.a)})"


_LATENCY_HELP = ("give 10ms, fixed:10ms, lognormal:MEDIAN:SIGMA (e.g. lognormal:10ms:0.5), "
                 "uniform:MIN:MAX (e.g. uniform:5ms:15ms) or exponential:MEAN")


def parse_latency(spec: str) -> Latency:
    """``10ms``, ``fixed:10ms``, ``lognormal:10ms:0.5``, ``uniform:5ms:15ms``,
    ``exponential:10ms``."""
    parts = [part.strip() for part in spec.split(":")]
    kind = parts[0].lower() if len(parts) > 1 else "fixed"
    args = parts[1:] if len(parts) > 1 else parts
    arity = {"fixed": 1, "lognormal": 2, "uniform": 2, "exponential": 1}
    if kind not in arity:
        raise BenchError(f"--latency {spec!r}: unknown distribution {parts[0]!r}; "
                         f"{_LATENCY_HELP}")
    if len(args) != arity[kind]:
        raise BenchError(f"--latency {spec!r}: {kind} takes {arity[kind]} value(s); "
                         f"{_LATENCY_HELP}")
    try:
        first = parse_duration(args[0])
        if kind == "lognormal":
            sigma = float(args[1])
            if not (math.isfinite(sigma) and sigma >= 0):
                raise BenchError(f"sigma {args[1]!r} must be a number >= 0")
            return Latency(kind, first, sigma)
        if kind == "uniform":
            second = parse_duration(args[1])
            if second < first:
                raise BenchError(f"the maximum {args[1]} is below the minimum {args[0]}")
            return Latency(kind, first, second)
    except ValueError as exc:  # BenchError included
        raise BenchError(f"--latency {spec!r}: {exc}") from None
    return Latency(kind, first)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


# -- the simulated dependency ----------------------------------------------------------


class Dependency:
    """A downstream service the simulated handler calls once per record.

    Up to ``capacity`` calls in flight it answers after a latency drawn from ``latency``.
    Above it (``n`` calls in flight, the new one included, ``overload = n / capacity - 1``)
    it slows down, latency times ``1 + slowdown * overload``, and throttles: with
    ``throttle_slope=None`` every call above the capacity, otherwise with probability
    ``min(1, throttle_slope * overload)``. A throttled call answers after
    ``throttle_latency`` seconds with ``TransientError``, which ``Retry`` retries.
    """

    def __init__(self, latency: Latency, capacity: Optional[int] = None, *,
                 slowdown: float = 0.0, throttle_slope: Optional[float] = None,
                 throttle_latency: float = 0.001, seed: int = 0) -> None:
        if capacity is not None and (isinstance(capacity, bool) or capacity < 1):
            raise BenchError(f"capacity={capacity!r}: give a whole number >= 1")
        self.latency = latency
        self.capacity = capacity
        self.slowdown = slowdown
        self.throttle_slope = throttle_slope
        self.throttle_latency = throttle_latency
        self._rng = random.Random(seed)
        self._sample = latency.sampler(self._rng)
        self.inflight = 0
        self.peak = 0
        self.calls = 0
        self.throttled = 0

    async def call(self) -> None:
        self.inflight += 1
        self.calls += 1
        n = self.inflight
        if n > self.peak:
            self.peak = n
        try:
            delay = self._sample()
            capacity = self.capacity
            if capacity is not None and n > capacity:
                overload = n / capacity - 1.0
                slope = self.throttle_slope
                if slope is None or self._rng.random() < slope * overload:
                    self.throttled += 1
                    await anyio.sleep(self.throttle_latency)
                    raise TransientError(
                        f"throttled: {n} calls in flight, capacity {capacity}")
                delay *= 1.0 + self.slowdown * overload
            await anyio.sleep(delay)
        finally:
            self.inflight -= 1

    async def __call__(self, record: Any) -> None:
        await self.call()

    def describe(self) -> str:
        text = f"simulated dependency, latency {self.latency}"
        if self.capacity is not None:
            text += f", capacity {self.capacity} calls in flight"
            if self.slowdown:
                text += f", slower above it: x(1 + {self.slowdown:g} * overload)"
            if self.throttle_slope is None:
                text += ", throttles every call above it"
            else:
                text += f", throttles with probability {self.throttle_slope:g} * overload"
        return text


# -- handlers and events ---------------------------------------------------------------


class Items:
    """A ``stream()`` workload: ``items`` (dicts ``{"n": i, "key": k}``) through
    ``processor.run()``, one at a time per ``"key"`` when ``keyed``."""

    __slots__ = ("items", "keyed")

    def __init__(self, items: list[dict[str, Any]], keyed: bool) -> None:
        self.items = items
        self.keyed = keyed


def generate_event(source: str, records: int, keys: int = 100,
                   keyed: bool = False) -> Any:
    """A Lambda-shaped event of ``records`` records with bodies ``{"n": i, "key": k}``,
    spread round-robin over ``keys`` ordering keys (FIFO message groups, partition keys,
    item keys, Kafka partitions; ignored for standard SQS), made by the
    ``asyncbatch.testing`` event factories (the source descriptors' own records); for
    ``"stream"``, an ``Items`` workload of the same bodies (``keyed``: in order per key)."""
    from .testing import dynamodb_event, kafka_event, kinesis_event, sqs_event

    if source not in SOURCES:
        raise BenchError(f"--source {source!r}: choose from {', '.join(SOURCES)}")
    if records < 1 or keys < 1:
        raise BenchError("--records and --keys must be >= 1")
    names = [f"key-{i % keys}" for i in range(records)]
    bodies = [{"n": i, "key": key} for i, key in enumerate(names)]
    if source == "stream":
        return Items(bodies, keyed)
    if source == "sqs":
        return sqs_event(*bodies)
    if source == "fifo":
        return sqs_event(*bodies, fifo_group=names)
    if source == "kinesis":
        return kinesis_event(*zip(names, bodies, strict=True))
    if source == "dynamodb":
        return dynamodb_event(*((key, {"n": i}) for i, key in enumerate(names)))
    return kafka_event(*((i % keys, key, body)
                         for i, (key, body) in enumerate(zip(names, bodies, strict=True))))


def count_records(event: Any) -> int:
    """How many records ``event`` holds (any source, Kafka's grouped records included; a
    stream workload's items)."""
    from ._sources import read_event

    if isinstance(event, Items):
        return len(event.items)
    return len(read_event(event, None)[1])


def load_event(path: str, records: Optional[int] = None) -> dict[str, Any]:
    """A sample Lambda event from a JSON file; with ``records``, its records repeated (or
    cut) to that many, every record given the identifier (and sequence number) of its
    position, as the source's descriptor numbers its sample records."""
    from ._errors import AsyncBatchError
    from ._sources import read_event

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"--event {path}: cannot read it ({exc})") from None
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise BenchError(f"--event {path}: not JSON ({exc})") from None
    try:
        source, sample, _ = read_event(event, None)
    except AsyncBatchError as exc:  # InvalidEventError, ConfigurationError
        raise BenchError(f"--event {path}: not a Lambda batch event: {exc}") from None
    if not sample:
        raise BenchError(f"--event {path}: its records are empty; nothing to measure")
    if records is None:
        return dict(event)
    if records < 1:
        raise BenchError("--records must be >= 1")
    copies = [_numbered(source, sample[i % len(sample)], i) for i in range(records)]
    rebuilt = source.sample_event(copies)
    name = "Records" if "Records" in rebuilt else "records"  # Kafka: grouped by partition
    return {**event, name: rebuilt[name]}


def _numbered(source: Any, raw: dict[str, Any], index: int) -> dict[str, Any]:
    """``raw`` with the identifier of the descriptor's sample record ``index`` (at the
    descriptor's ``identifier_path``): unique, increasing with ``index``."""
    sample = source.sample_record(index, key=source.ordering_key(raw))
    path = source.identifier_path.split(".")
    value: Any = sample
    for part in path:
        value = value[part]
    out = dict(raw)
    inner = out
    for part in path[:-1]:
        inner[part] = dict(inner[part])
        inner = inner[part]
    inner[path[-1]] = value
    return out


# -- concurrency levels ----------------------------------------------------------------


def parse_levels(text: str) -> list[Level]:
    """``"1,10,50,auto"`` to ``[1, 10, 50, "auto"]`` (``auto``: ``AIMDLimit()``, the
    processor's ``concurrency="auto"``; ``gradient``: ``GradientLimit()``)."""
    levels: list[Level] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in ADAPTIVE_LEVELS:
            level: Level = part
        else:
            try:
                level = int(part)
            except ValueError:
                raise BenchError(f"--concurrency {text!r}: {part!r} is not a whole number, "
                                 "'auto' or 'gradient'; e.g. 1,10,50,100,auto") from None
            if level < 1:
                raise BenchError(f"--concurrency {text!r}: levels must be >= 1")
        if level not in levels:
            levels.append(level)
    if not levels:
        raise BenchError(f"--concurrency {text!r}: give levels, e.g. 1,10,50,100,auto")
    return levels


def make_concurrency(level: Level) -> Union[int, ConcurrencyLimit]:
    """A fresh ``concurrency=`` argument for one run of ``level``."""
    if level == "auto":
        return AIMDLimit()
    if level == "gradient":
        return GradientLimit()
    assert isinstance(level, int)
    return level


# -- one level, one sweep --------------------------------------------------------------


@dataclass(frozen=True)
class LevelResult:
    """One run of the event at one concurrency level. Times in seconds."""

    level: str
    concurrency: Optional[int]  # the fixed bound; None for an adaptive level
    records: int
    succeeded: int
    failed: int
    skipped: int
    retries: int
    makespan: float
    throughput: float  # succeeded records per second of makespan
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]
    mean_inflight: float  # sum of handler-call time / makespan (Little's law)
    final_limit: Optional[int] = None  # where an adaptive limit ended
    rate: Optional[float] = None  # the rate limit (starts per second), if any
    throttled: Optional[int] = None  # calls the simulated dependency throttled
    peak_inflight: Optional[int] = None  # most calls the simulated dependency saw at once
    #: a few failed records, ``"identifier: ExceptionType: message"`` (at most ERRORS_KEPT)
    errors: tuple[str, ...] = ()

    @property
    def all_failed(self) -> bool:
        """No record succeeded, and some failed."""
        return self.succeeded == 0 and self.failed > 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Progress(Hooks):
    """Counts finished records (succeeded, failed or skipped) for the progress line."""

    def __init__(self) -> None:
        self.done = 0
        self.retries = 0

    def record_succeeded(self, record: Record, attempts: int, duration: float) -> None:
        self.done += 1

    def record_failed(self, record: Record, exception: BaseException, attempts: int) -> None:
        self.done += 1

    def record_skipped(self, record: Record, reason: str) -> None:
        self.done += 1

    def record_retried(self, record: Record, exception: BaseException, attempt: int,
                       delay: float) -> None:
        self.retries += 1


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The ``q``-th percentile (0..100) by linear interpolation; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


Progress = Callable[[int, int], None]


async def run_level(
    event: Any,
    handler: Handler,
    level: Level,
    *,
    rate: Optional[float] = None,
    retry: Optional[Retry] = None,
    record_timeout: Optional[float] = None,
    dependency: Optional[Dependency] = None,
    limit: Optional[Union[int, ConcurrencyLimit]] = None,
    progress: Optional[Progress] = None,
    interval: float = 0.2,
) -> LevelResult:
    """Process ``event`` once at ``level``; ``progress(done, total)`` every ``interval``
    seconds while it runs. ``limit`` overrides the limit ``level`` would make;
    ``record_timeout`` is the processor's per-record ``timeout``; ``rate`` a rate limit
    (handler calls started per second). ``event`` may be a stream workload (``Items``)."""
    from ._core.processor import AsyncBatchProcessor
    from ._core.rate import RateLimit

    concurrency = make_concurrency(level) if limit is None else limit
    hooks = _Progress()
    processor = AsyncBatchProcessor(
        concurrency=concurrency, retry=retry, timeout=record_timeout, timings=True, hooks=hooks,
        log_summary=False, raise_on_all_failed=False,
        rate_limit=None if rate is None else RateLimit(rate))
    total = count_records(event)

    async def tick() -> None:
        assert progress is not None
        while True:
            progress(hooks.done, total)
            await anyio.sleep(interval)

    async with anyio.create_task_group() as tg:
        if progress is not None:
            tg.start_soon(tick)
        started = time.perf_counter()
        if isinstance(event, Items):
            report = await processor.run(event.items, handler,
                                         key=_item_key if event.keyed else None)
        else:
            report = await processor.process(event, handler)
        makespan = time.perf_counter() - started
        tg.cancel_scope.cancel()
    if progress is not None:
        progress(hooks.done, total)
    durations = [o.duration for o in report.succeeded if o.duration is not None]
    counts = report.counts
    attempts = sum(o.attempts for o in report.succeeded) + sum(o.attempts for o in report.failed)
    busy = sum(durations) + sum(o.duration or 0.0 for o in report.failed)
    adaptive = processor.limit
    errors = tuple(describe_failure(o.identifier, o.exception)
                   for o in islice(report.failed, ERRORS_KEPT))
    return LevelResult(
        level=str(level) if rate is None else f"{level} @ {rate:g}/s",
        concurrency=concurrency if isinstance(concurrency, int) else None,
        records=total,
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        retries=max(0, attempts - counts["succeeded"] - counts["failed"]),
        makespan=makespan,
        throughput=counts["succeeded"] / makespan if makespan > 0 else 0.0,
        p50=percentile(durations, 50),
        p95=percentile(durations, 95),
        p99=percentile(durations, 99),
        mean_inflight=busy / makespan if makespan > 0 else 0.0,
        final_limit=adaptive.current if adaptive is not None else None,
        throttled=(dependency.throttled if dependency is not None
                   and dependency.capacity is not None else None),
        peak_inflight=dependency.peak if dependency is not None else None,
        errors=errors,
        rate=rate,
    )


def _item_key(item: dict[str, Any]) -> Any:
    return item["key"]


def describe_failure(identifier: Any, exception: Optional[BaseException]) -> str:
    """``"msg-1: ValueError: bad quantity"`` (the message cut at 200 characters)."""
    if exception is None:
        return f"{identifier}: failed"
    text = exception_text(exception).replace("\n", " ")
    if len(text) > 200:
        text = text[:197] + "..."
    name = type_name(exception)
    return f"{identifier}: {name}: {text}" if text else f"{identifier}: {name}"


@dataclass
class Sweep:
    """A sweep's settings and, once run, its results (the median run of each level)."""

    levels: list[Level]
    description: str
    records: int
    source: str
    repeat: int = 1
    backend: str = "asyncio"
    results: list[LevelResult] = field(default_factory=list)
    #: rate limits to sweep with every level (starts per second); ``[None]``: none
    rates: list[Optional[float]] = field(default_factory=lambda: [None])

    @property
    def runs(self) -> list[tuple[Level, Optional[float]]]:
        """Every (level, rate) the sweep runs, rates within levels."""
        return [(level, rate) for level in self.levels for rate in self.rates]

    @property
    def knee(self) -> Optional[LevelResult]:
        if len(self.rates) > 1:
            return None  # a knee is of one curve: concurrency at one rate
        return find_knee(self.results)

    def best(self) -> Optional[LevelResult]:
        fixed = [r for r in self.results if r.concurrency is not None]
        return max(fixed, key=lambda r: r.throughput) if fixed else None

    def as_dict(self) -> dict[str, Any]:
        knee = self.knee
        best = self.best()
        return {
            "workload": self.description,
            "records": self.records,
            "source": self.source,
            "repeat": self.repeat,
            "backend": self.backend,
            "levels": [str(level) for level in self.levels],
            "rates": self.rates,
            "results": [r.as_dict() for r in self.results],
            "best": None if best is None else {"concurrency": best.concurrency,
                                                "throughput": best.throughput},
            "knee": None if knee is None else {"concurrency": knee.concurrency,
                                                "throughput": knee.throughput,
                                                "tolerance": KNEE_TOLERANCE},
        }


def find_knee(results: Sequence[LevelResult],
              tolerance: float = KNEE_TOLERANCE) -> Optional[LevelResult]:
    """The smallest fixed concurrency whose throughput is within ``tolerance`` of the best
    fixed level's (adaptive levels are not points of the curve)."""
    fixed = [r for r in results if r.concurrency is not None]
    if not fixed:
        return None
    best = max(r.throughput for r in fixed)
    within = [r for r in fixed if r.throughput >= (1.0 - tolerance) * best]
    return min(within, key=lambda r: r.concurrency or 0)


def run_sweep(
    sweep: Sweep,
    event: dict[str, Any],
    make_handler: Callable[[], tuple[Handler, Optional[Dependency]]],
    *,
    retry: Optional[Retry] = None,
    timeout: Optional[float] = None,
    progress: Optional[Callable[[int, Level, int, int, Optional[LevelResult]], None]] = None,
    runner: Callable[..., Any] = anyio.run,
) -> Sweep:
    """Run every level ``sweep.repeat`` times, round-robin (repetition 1 of every level,
    then repetition 2, ...), so that a noisy neighbour spreads over all levels; keep each
    level's median-makespan run. ``make_handler`` gives a fresh handler (and its simulated
    dependency, if any) per run. ``progress(rep, level, done, total, result)``.
    ``runner(main, backend=...)`` runs the sweep's event loop (default ``anyio.run``; the
    command line passes one that turns Ctrl-C into ``KeyboardInterrupt`` on every
    Python)."""
    runs: dict[tuple[str, Optional[float]], list[LevelResult]] = {
        (str(level), rate): [] for level, rate in sweep.runs}

    async def main() -> None:
        for rep in range(sweep.repeat):
            for level, rate in sweep.runs:
                handler, dependency = make_handler()
                result = await run_level(event, handler, level, rate=rate, retry=retry,
                                         record_timeout=timeout,
                                         dependency=dependency,
                                         progress=_bind_progress(progress, rep, level))
                runs[(str(level), rate)].append(result)
                if progress is not None:
                    progress(rep, level, result.records, result.records, result)

    runner(main, backend=sweep.backend)
    sweep.results = [_median_run(runs[(str(level), rate)]) for level, rate in sweep.runs]
    return sweep


def _bind_progress(
    progress: Optional[Callable[[int, Level, int, int, Optional[LevelResult]], None]],
    rep: int, level: Level,
) -> Optional[Progress]:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(rep, level, done, total, None)

    return report


def _median_run(results: list[LevelResult]) -> LevelResult:
    ordered = sorted(results, key=lambda r: r.makespan)
    return ordered[(len(ordered) - 1) // 2]


# -- output ----------------------------------------------------------------------------


def _fmt_ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def format_table(sweep: Sweep) -> str:
    """The results as an aligned text table, then the knee."""
    show_throttled = any(r.throttled is not None for r in sweep.results)
    show_skipped = any(r.skipped for r in sweep.results)
    header = ["concurrency", "throughput", "p50", "p95", "p99", "makespan", "in flight",
              "failed", "retries"]
    if show_skipped:
        header.insert(8, "skipped")
    if show_throttled:
        header.append("throttled")
    rows = [header]
    for r in sweep.results:
        name = r.level if r.final_limit is None else f"{r.level} (->{r.final_limit})"
        row = [name, f"{r.throughput:,.0f} rec/s", _fmt_ms(r.p50), _fmt_ms(r.p95),
               _fmt_ms(r.p99), f"{r.makespan:.3f} s", f"{r.mean_inflight:.1f}",
               f"{r.failed:,}", f"{r.retries:,}"]
        if show_skipped:
            row.insert(8, f"{r.skipped:,}")
        if show_throttled:
            row.append("-" if r.throttled is None else f"{r.throttled:,}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(describe_knee(sweep))
    failures = describe_failures(sweep)
    if failures:
        lines.append("")
        lines.extend(failures)
    return "\n".join(lines)


def describe_failures(sweep: Sweep) -> list[str]:
    """Per level with failed records: how many, and a few of them with their error."""
    lines: list[str] = []
    for r in sweep.results:
        if not r.failed:
            continue
        if r.all_failed:
            head = f"concurrency {r.level}: every record failed ({r.failed:,} of {r.records:,})"
        else:
            head = f"concurrency {r.level}: {r.failed:,} of {r.records:,} records failed"
        if r.skipped:
            head += f", {r.skipped:,} skipped after them"
        lines.append(head + (", e.g.:" if r.errors else ""))
        lines.extend(f"  {error}" for error in r.errors[:ERRORS_SHOWN])
        if r.failed > min(len(r.errors), ERRORS_SHOWN):
            lines.append(f"  ... and {r.failed - min(len(r.errors), ERRORS_SHOWN):,} more")
    return lines


def describe_knee(sweep: Sweep) -> str:
    """The knee and the adaptive levels, in one vocabulary: the knee is a point of the
    fixed levels' curve (the smallest fixed level within ``KNEE_TOLERANCE`` of the fastest
    fixed level); an adaptive level is compared with the fastest fixed level, and said to
    beat every fixed level tried when it does (it is then better than the knee)."""
    knee = sweep.knee
    best = sweep.best()
    if len(sweep.rates) > 1 and best is not None:
        return (f"fastest fixed level: {best.level}, {best.throughput:,.0f} rec/s (a knee "
                "is of one rate: sweep --concurrency at one --rate to find it)")
    if knee is None or best is None:
        return "knee: none (no fixed concurrency level in the sweep)"
    if best.throughput <= 0:
        return "knee: none (no record succeeded at any fixed level: see the failures below)"
    text = f"knee: concurrency {knee.concurrency} ({knee.throughput:,.0f} rec/s), "
    if best is knee:
        text += (f"the fastest fixed level; no smaller fixed level comes within "
                 f"{KNEE_TOLERANCE:.0%} of it")
    else:
        text += (f"the smallest fixed level within {KNEE_TOLERANCE:.0%} of the fastest "
                 f"({best.throughput:,.0f} rec/s at {best.concurrency})")
    largest = max(r.concurrency or 0 for r in sweep.results)
    if knee.concurrency == largest and len([r for r in sweep.results if r.concurrency]) > 1:
        text += "; it is the largest level tried: throughput may grow further"
    for r in sweep.results:
        if r.concurrency is None and best.throughput > 0:
            ratio = r.throughput / best.throughput
            text += (f"\n{r.level} (adaptive): {r.throughput:,.0f} rec/s, {ratio:.0%} of the "
                     f"fastest fixed level, limit ended at {r.final_limit}")
            if ratio > 1.0 + KNEE_TOLERANCE:
                text += "; faster than every fixed level tried"
    return text


def plot_sweep(sweep: Sweep, path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Throughput (and p99 latency) against concurrency as a PNG; adaptive levels as
    horizontal lines, the knee marked. matplotlib is imported here (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    fixed = sorted((r for r in sweep.results if r.concurrency is not None),
                   key=lambda r: r.concurrency or 0)
    adaptive = [r for r in sweep.results if r.concurrency is None]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    try:
        handles: list[Any] = []
        if fixed:
            xs = [r.concurrency or 0 for r in fixed]
            handles += ax.plot(xs, [r.throughput for r in fixed], "o-", color="tab:blue",
                               label="throughput (fixed concurrency)")
            if max(xs) >= 20 * min(xs):
                ax.set_xscale("log")
            p99 = [(r.concurrency or 0, r.p99 * 1000) for r in fixed if r.p99 is not None]
            if p99:
                latency = ax.twinx()
                handles += latency.plot([x for x, _ in p99], [y for _, y in p99], "s--",
                                        color="tab:red", alpha=0.7,
                                        label="p99 record latency (right axis)")
                latency.set_ylabel("p99 record latency (ms)", color="tab:red")
                latency.set_ylim(bottom=0)
            knee = find_knee(fixed)
            if knee is not None and knee.concurrency is not None:
                ax.axvline(knee.concurrency, color="grey", linestyle=":")
                ax.annotate(f"knee: {knee.concurrency}", (knee.concurrency, knee.throughput),
                            textcoords="offset points", xytext=(6, -14))
        colors = ["tab:green", "tab:purple", "tab:orange"]
        for i, r in enumerate(adaptive):
            handles.append(ax.axhline(
                r.throughput, color=colors[i % len(colors)], linestyle="-.",
                label=f"{r.level}: {r.throughput:,.0f} rec/s, limit ended at {r.final_limit}"))
        ax.set_xlabel("concurrency")
        ax.set_ylabel("throughput (succeeded records/s)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, loc="lower right", fontsize="small")
        heading = title or (f"asyncbatch bench: {sweep.records:,} records ({sweep.source}), "
                            f"{sweep.description}")
        ax.set_title(textwrap.fill(heading, 90), fontsize="small")
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
