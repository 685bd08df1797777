"""Adaptive concurrency against fixed limits, on a simulated dependency that slows down
and throttles above its capacity.

    python -m benchmarks.adaptive             # 5,000 records x 5 repetitions (~3-4 minutes)
    python -m benchmarks.adaptive --quick     # 600 records, 1 repetition, to a temp dir
    python -m benchmarks.adaptive --reps 9 --out /tmp/adaptive

Every handler call awaits one call of the dependency (``asyncbatch.bench.Dependency``):
below its capacity it answers after a lognormal latency; above it (``n`` calls in flight,
``overload = n / capacity - 1``) the latency is multiplied by ``1 + slowdown * overload``
and the call is throttled (``TransientError`` after ``throttle_latency``) with
probability ``min(1, throttle_slope * overload)``. Throttles are retried by
``Retry(attempts, base, cap)``. Time is real asyncio time (``anyio.sleep`` on the asyncio
loop), not a simulated clock: figures include the engine's own overhead and the noise of
a shared machine, hence fresh interpreters, round-robin repetitions and medians.

Contenders: fixed limits, ``concurrency="auto"`` (``WindowedLimit(AIMDLimit())``),
``GradientLimit(max=200)``, and variants of them defined here (the proposals of the
report; ``asyncbatch/_core/limits.py`` is not modified). Each run is one fresh interpreter
(``python -m benchmarks.adaptive --worker``, JSON in, JSON out), with a fresh limit: the
cold start of a Lambda container. Writes ``results/adaptive.md`` and ``adaptive.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

Factory = Callable[[], Union[int, Any]]


@dataclass(frozen=True)
class Scenario:
    """The workload: the batch, the dependency and the retry policy."""

    records: int = 5000
    capacity: int = 50
    latency_ms: float = 10.0  # median of the lognormal latency below capacity
    sigma: float = 0.25  # lognormal shape
    slowdown: float = 2.0
    throttle_slope: float = 2.0
    throttle_latency_ms: float = 2.0
    attempts: int = 10
    retry_base_ms: float = 10.0
    retry_cap_ms: float = 200.0

    def describe(self) -> str:
        return (f"{self.records:,} SQS records; dependency capacity {self.capacity} calls in "
                f"flight, lognormal latency median {self.latency_ms:g} ms (sigma "
                f"{self.sigma:g}); above capacity latency x(1 + {self.slowdown:g} * overload) "
                f"and throttled with probability min(1, {self.throttle_slope:g} * overload) "
                f"after {self.throttle_latency_ms:g} ms, overload = in_flight / capacity - 1; "
                f"throttles retried with Retry(attempts={self.attempts}, "
                f"base={self.retry_base_ms / 1000:g}, cap={self.retry_cap_ms / 1000:g})")


# -- contenders --------------------------------------------------------------------------


class Windowed:
    """Proposal: update a limit once per window instead of once per handler call, as
    Netflix's ``WindowedLimit`` wraps its algorithms. A window closes once it holds
    ``min_samples`` calls and spans at least their mean round-trip time; the wrapped limit
    then gets one sample: the window's mean round-trip time, its largest in-flight count,
    and whether any call of it was dropped. So one overload episode (a burst of throttles
    from calls sent together) cuts the limit once, not once per throttle, and AIMD grows
    by one per round trip, not one per call (which doubles it every round trip).

    ``slow_start``: until the first drop, every call is passed straight through (AIMD's
    +1 per call: doubling per round trip from ``initial``), so that a cold limit reaches
    the capacity in a few round trips; windows start at the first drop."""

    def __init__(self, delegate: Any, *, min_samples: int = 10, slow_start: bool = True) -> None:
        self.delegate = delegate
        self.min_samples = min_samples
        self.slow_start = slow_start
        self._reset()

    def _reset(self) -> None:
        self._start: Optional[float] = None
        self._count = 0
        self._rtt_sum = 0.0
        self._inflight = 0
        self._dropped = False

    @property
    def max(self) -> int:
        return int(self.delegate.max)

    @property
    def current(self) -> int:
        return int(self.delegate.current)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        if self.slow_start:
            if not dropped:
                self.delegate.on_sample(rtt, inflight, dropped)
                return
            self.slow_start = False
        now = time.perf_counter()
        if self._start is None:
            self._start = now - rtt
        self._count += 1
        self._rtt_sum += rtt
        self._inflight = max(self._inflight, inflight)
        self._dropped |= dropped
        mean = self._rtt_sum / self._count
        if self._count >= self.min_samples and now - self._start >= mean:
            self.delegate.on_sample(mean, self._inflight, self._dropped)
            self._reset()


class WindowedAIMD:
    """Proposal for ``AIMDLimit`` (what ``Windowed(AIMDLimit())`` does, written out, plus
    TCP's slow-start exit): slow start, +1 per successful call (doubling every round trip)
    until the first drop; that drop halves the limit (the last round trip doubled it),
    then one update per window (``min_samples`` calls spanning at least their mean
    round-trip time): ``* backoff`` if any call of the window was dropped (or slower than
    ``timeout``), else +1 if the window used at least half the limit."""

    def __init__(self, initial: int = 10, *, min: int = 1, max: int = 256,
                 backoff: float = 0.9, timeout: Optional[float] = None,
                 min_samples: int = 10) -> None:
        self._limit = float(initial)
        self._max = max
        self.minimum = min
        self.backoff = backoff
        self.timeout = timeout
        self.min_samples = min_samples
        self.slow_start = True
        self._start: Optional[float] = None
        self._count = 0
        self._rtt_sum = 0.0
        self._inflight = 0
        self._dropped = False

    @property
    def max(self) -> int:
        return self._max

    @property
    def current(self) -> int:
        return int(self._limit)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        dropped = dropped or (self.timeout is not None and rtt > self.timeout)
        if self.slow_start:
            if not dropped:
                if inflight * 2 >= self._limit:
                    self._limit = min(float(self._max), self._limit + 1.0)
                return
            self.slow_start = False
            self._limit = max(float(self.minimum), self._limit / 2)
            return
        now = time.perf_counter()
        if self._start is None:
            self._start = now - rtt
        self._count += 1
        self._rtt_sum += rtt
        self._inflight = max(self._inflight, inflight)
        self._dropped |= dropped
        if self._count < self.min_samples or now - self._start < self._rtt_sum / self._count:
            return
        if self._dropped:
            self._limit = max(float(self.minimum), self._limit * self.backoff)
        elif self._inflight * 2 >= self._limit:
            self._limit = min(float(self._max), self._limit + 1.0)
        self._start = None
        self._count = 0
        self._rtt_sum = 0.0
        self._inflight = 0
        self._dropped = False


class OneCutPerRTT:
    """Tried, rejected: only the burst fix. A drop from a call that started before the
    last cut is ignored (the cut already answered that overload); every other sample goes
    to the wrapped limit, so AIMD still adds 1 per call."""

    def __init__(self, delegate: Any) -> None:
        self.delegate = delegate
        self._last_cut = -math.inf

    @property
    def max(self) -> int:
        return int(self.delegate.max)

    @property
    def current(self) -> int:
        return int(self.delegate.current)

    def on_sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        if dropped:
            now = time.perf_counter()
            if now - rtt < self._last_cut:
                return
            self._last_cut = now
        self.delegate.on_sample(rtt, inflight, dropped)


def _contenders() -> dict[str, Factory]:
    """The adaptive contenders by name (``"fixed N"`` needs no entry)."""
    from asyncbatch import AIMDLimit, GradientLimit, WindowedLimit

    return {
        "auto": lambda: WindowedLimit(AIMDLimit()),  # what concurrency="auto" builds
        "AIMDLimit() per call": AIMDLimit,
        "GradientLimit(max=200)": lambda: GradientLimit(max=200),
        "AIMDLimit(backoff=0.7)": lambda: AIMDLimit(backoff=0.7),
        "AIMDLimit(backoff=0.97)": lambda: AIMDLimit(backoff=0.97),
        "AIMDLimit(timeout=15ms)": lambda: AIMDLimit(timeout=0.015),
        "GradientLimit(max=200, tolerance=1.2)": lambda: GradientLimit(max=200, tolerance=1.2),
        "GradientLimit(max=200, backoff=0.97)": lambda: GradientLimit(max=200, backoff=0.97),
        "OneCutPerRTT(AIMDLimit())": lambda: OneCutPerRTT(AIMDLimit()),
        "OneCutPerRTT(GradientLimit(max=200))": lambda: OneCutPerRTT(GradientLimit(max=200)),
        "Windowed(AIMDLimit())": lambda: Windowed(AIMDLimit()),
        "Windowed(AIMDLimit(), no slow start)": lambda: Windowed(AIMDLimit(), slow_start=False),
        "WindowedAIMD()": WindowedAIMD,
        "Windowed(GradientLimit(max=200))": lambda: Windowed(GradientLimit(max=200)),
    }


def make_contender(name: str) -> Any:
    """A fresh ``concurrency=`` argument: ``"fixed N"`` for any N, or a named contender."""
    level = fixed_level(name)
    return level if level is not None else _contenders()[name]()


FIXED = ("fixed 10", "fixed 25", "fixed 50", "fixed 75", "fixed 100", "fixed 200")
ENGINE_ADAPTIVE = ("auto", "AIMDLimit() per call", "GradientLimit(max=200)")
PARAMETER_VARIANTS = ("AIMDLimit(backoff=0.7)", "AIMDLimit(timeout=15ms)",
                      "GradientLimit(max=200, tolerance=1.2)")
ALGORITHM_VARIANTS = ("OneCutPerRTT(AIMDLimit())", "Windowed(AIMDLimit())", "WindowedAIMD()",
                      "Windowed(GradientLimit(max=200))")
DEFAULT_CONTENDERS = FIXED + ENGINE_ADAPTIVE + PARAMETER_VARIANTS + ALGORITHM_VARIANTS

NOTES = {
    "auto": "the engine's `concurrency=\"auto\"`: `WindowedLimit(AIMDLimit())`, one "
            "sample per round trip of calls after a slow start that ends at the first throttle",
    "AIMDLimit() per call": "the engine's `AIMDLimit(initial=10, max=256, backoff=0.9)` "
                            "unwrapped: +1 per successful call, x0.9 per throttled call",
    "GradientLimit(max=200)": "the engine's `GradientLimit` with its defaults but `max=200`",
    "AIMDLimit(backoff=0.7)": "parameters only: a deeper cut per throttle",
    "AIMDLimit(backoff=0.97)": "parameters only: a shallower cut per throttle",
    "AIMDLimit(timeout=15ms)": "parameters only: also cut on a call slower than 1.5x the "
                               "base latency (reacts to the slowdown before throttles)",
    "GradientLimit(max=200, tolerance=1.2)": "parameters only: shrink at a 20% latency "
                                             "rise instead of 50%",
    "GradientLimit(max=200, backoff=0.97)": "parameters only: a shallower cut per throttle",
    "OneCutPerRTT(AIMDLimit())": "algorithm, rejected: ignore a throttle from a call sent "
                                 "before the last cut (one cut per overload episode), "
                                 "growth unchanged (+1 per call)",
    "OneCutPerRTT(GradientLimit(max=200))": "algorithm, rejected: as above for the gradient",
    "Windowed(AIMDLimit())": "algorithm: the engine's `AIMDLimit` fed one aggregated sample "
                             "per window (>= 10 calls and >= one mean round trip) after a "
                             "slow start that ends at the first throttle; see `Windowed`",
    "Windowed(AIMDLimit(), no slow start)": "algorithm: as above, windows from the start",
    "WindowedAIMD()": "algorithm: the same written out as one class, plus TCP's slow-start "
                      "exit (the first throttle halves the limit); see `WindowedAIMD`",
    "Windowed(GradientLimit(max=200))": "algorithm: the engine's `GradientLimit(max=200)` fed "
                                        "one aggregated sample per window, after slow start",
}


def fixed_level(name: str) -> Optional[int]:
    """N for ``"fixed N"`` (N >= 1), else ``None``."""
    if not name.startswith("fixed "):
        return None
    try:
        level = int(name[len("fixed "):])
    except ValueError:
        return None
    return level if level >= 1 else None


# -- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One contender, one repetition. Times in seconds."""

    contender: str
    rep: int
    throughput: float  # succeeded records / makespan
    makespan: float
    throttled: int  # calls the dependency throttled
    retries: int
    failed: int  # records that failed for good (retries exhausted)
    p50: Optional[float]
    p99: Optional[float]
    mean_inflight: float
    peak_inflight: int
    final_limit: Optional[int]
    trace: list[tuple[float, int, int]] = field(default_factory=list)  # (t, limit, in flight)


async def run_contender(scenario: Scenario, contender: str, rep: int = 0,
                        trace_every: float = 0.01) -> Run:
    """Process the scenario's batch once with ``contender``, on the running event loop."""
    from asyncbatch import Retry
    from asyncbatch.bench import Dependency, Latency, generate_event, run_level

    concurrency = make_contender(contender)
    dependency = Dependency(
        Latency("lognormal", scenario.latency_ms / 1000, scenario.sigma),
        scenario.capacity, slowdown=scenario.slowdown,
        throttle_slope=scenario.throttle_slope,
        throttle_latency=scenario.throttle_latency_ms / 1000, seed=1000 + rep)
    retry = Retry(attempts=scenario.attempts, base=scenario.retry_base_ms / 1000,
                  cap=scenario.retry_cap_ms / 1000, seed=rep)
    event = generate_event("sqs", scenario.records)  # built before the clock starts
    trace: list[tuple[float, int, int]] = []
    start = time.perf_counter()
    limit: Any = None if isinstance(concurrency, int) else concurrency

    def sample(done: int, total: int) -> None:
        trace.append((round(time.perf_counter() - start, 4), int(limit.current),
                      dependency.inflight))

    result = await run_level(event, dependency, contender, retry=retry,
                             dependency=dependency, limit=concurrency,
                             progress=None if limit is None else sample, interval=trace_every)
    return Run(contender=contender, rep=rep, throughput=result.throughput,
               makespan=result.makespan, throttled=dependency.throttled,
               retries=result.retries, failed=result.failed + result.skipped,
               p50=result.p50, p99=result.p99, mean_inflight=result.mean_inflight,
               peak_inflight=dependency.peak, final_limit=result.final_limit, trace=trace)


def _worker() -> int:
    """``--worker``: one run in this fresh interpreter; JSON args on stdin, result out."""
    import anyio

    args = json.load(sys.stdin)
    scenario = Scenario(**args["scenario"])
    run = anyio.run(run_contender, scenario, args["contender"], args["rep"])
    print("@@RESULT " + json.dumps(asdict(run)))
    return 0


def _spawn(scenario: Scenario, contender: str, rep: int) -> Run:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    payload = json.dumps({"scenario": asdict(scenario), "contender": contender, "rep": rep})
    done = subprocess.run([sys.executable, "-m", "benchmarks.adaptive", "--worker"],
                          input=payload, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=900)
    for line in done.stdout.splitlines():
        if line.startswith("@@RESULT "):
            data = json.loads(line[len("@@RESULT "):])
            data["trace"] = [tuple(point) for point in data["trace"]]
            return Run(**data)
    raise RuntimeError(f"{contender} (rep {rep}) failed:\n{done.stderr[-3000:]}")


# -- the benchmark ------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over repetitions for one contender."""

    contender: str
    fixed: Optional[int]
    throughput: float
    makespan: float
    throttled: float
    retries: float
    failed: float
    p99: Optional[float]
    mean_inflight: float
    final_limit: Optional[float]
    ratio: float = 0.0  # throughput / the best fixed limit's
    runs: list[Run] = field(default_factory=list, repr=False)


@dataclass
class Result:
    scenario: Scenario
    reps: int
    summaries: list[Summary]
    fresh: bool
    seconds: float
    machine: dict[str, str]

    def by_name(self) -> dict[str, Summary]:
        return {s.contender: s for s in self.summaries}

    @property
    def best_fixed(self) -> Summary:
        return max((s for s in self.summaries if s.fixed is not None),
                   key=lambda s: s.throughput)

    def above_capacity(self) -> list[Summary]:
        return [s for s in self.summaries
                if s.fixed is not None and s.fixed > self.scenario.capacity]

    def verdict(self, summary: Summary, ratio_target: float = 0.90) -> dict[str, Any]:
        """Whether ``summary`` meets the target: >= 90% of the best fixed limit's
        throughput, and fewer throttles than every fixed limit above the capacity."""
        above = self.above_capacity()
        fewest = min((s.throttled for s in above), default=math.inf)
        return {
            "ratio": summary.ratio,
            "ratio_ok": summary.ratio >= ratio_target,
            "throttled": summary.throttled,
            "fewest_above_capacity": fewest,
            "throttles_ok": summary.throttled < fewest,
            "met": summary.ratio >= ratio_target and summary.throttled < fewest,
        }


def machine_info() -> dict[str, str]:
    import anyio

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpu": cpu, "cores": str(os.cpu_count()),
            "anyio": anyio.__version__ if hasattr(anyio, "__version__") else _version("anyio"),
            "load average at start": load}


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def run_benchmark(scenario: Scenario, contenders: tuple[str, ...] = DEFAULT_CONTENDERS,
                  reps: int = 5, *, fresh: bool = True,
                  progress: Optional[Callable[[str], None]] = None) -> Result:
    """Every contender ``reps`` times, round-robin (repetition 1 of everyone, then 2...),
    each run in a fresh interpreter (``fresh=False``: in this process, one event loop per
    run); medians per contender, and each one's ratio to the best fixed limit."""
    known = _contenders()
    unknown = [c for c in contenders if c not in known and fixed_level(c) is None]
    if unknown:
        raise ValueError(f"unknown contenders {unknown}; known: {list(known)}")
    if not any(fixed_level(c) is not None for c in contenders):
        raise ValueError("give at least one fixed limit: ratios are to the best of them")
    machine = machine_info()
    started = time.perf_counter()
    runs: dict[str, list[Run]] = {c: [] for c in contenders}
    for rep in range(reps):
        for contender in contenders:
            if fresh:
                run = _spawn(scenario, contender, rep)
            else:
                import anyio

                run = anyio.run(run_contender, scenario, contender, rep)
            runs[contender].append(run)
            if progress is not None:
                progress(f"[{rep + 1}/{reps}] {contender:40} {run.throughput:8,.0f} rec/s "
                         f"{run.makespan:6.2f} s  {run.throttled:6,} throttled  "
                         f"{run.failed} failed")
    summaries = [_summarise(c, runs[c]) for c in contenders]
    best = max(s.throughput for s in summaries if s.fixed is not None)
    for s in summaries:
        s.ratio = s.throughput / best if best > 0 else 0.0
    return Result(scenario=scenario, reps=reps, summaries=summaries, fresh=fresh,
                  seconds=time.perf_counter() - started, machine=machine)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _summarise(contender: str, runs: list[Run]) -> Summary:
    p99s = [r.p99 for r in runs if r.p99 is not None]
    limits = [float(r.final_limit) for r in runs if r.final_limit is not None]
    return Summary(
        contender=contender, fixed=fixed_level(contender),
        throughput=_median([r.throughput for r in runs]),
        makespan=_median([r.makespan for r in runs]),
        throttled=_median([float(r.throttled) for r in runs]),
        retries=_median([float(r.retries) for r in runs]),
        failed=_median([float(r.failed) for r in runs]),
        p99=_median(p99s) if p99s else None,
        mean_inflight=_median([r.mean_inflight for r in runs]),
        final_limit=_median(limits) if limits else None,
        runs=runs)


# -- the report ---------------------------------------------------------------------------


def table(result: Result) -> str:
    lines = ["| contender | throughput (rec/s) | ratio to best fixed | makespan (s) | "
             "throttled calls | failed records | p99 latency (ms) | mean in flight | "
             "final limit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    best = result.best_fixed
    for s in result.summaries:
        name = f"**{s.contender}** (best fixed)" if s is best else s.contender
        p99 = "-" if s.p99 is None else f"{s.p99 * 1000:.1f}"
        limit = "-" if s.final_limit is None else f"{s.final_limit:.0f}"
        lines.append(f"| {name} | {s.throughput:,.0f} | {s.ratio:.2f} | {s.makespan:.2f} | "
                     f"{s.throttled:,.0f} | {s.failed:,.0f} | {p99} | {s.mean_inflight:.1f} | "
                     f"{limit} |")
    return "\n".join(lines)


def verdict_lines(result: Result) -> list[str]:
    out = []
    names = result.by_name()
    above = ", ".join(f"{s.contender}: {s.throttled:,.0f}" for s in result.above_capacity())
    out.append(f"Target: >= 90% of the best fixed limit's throughput "
               f"({result.best_fixed.contender}, {result.best_fixed.throughput:,.0f} rec/s) "
               f"with fewer throttled calls than every fixed limit above the capacity "
               f"({above or 'none in this run'}).")
    out.append("")
    for s in result.summaries:
        if s.fixed is not None:
            continue
        v = result.verdict(s)
        status = "**met**" if v["met"] else "**not met**"
        parts = [f"throughput {s.ratio:.0%} of the best fixed"
                 + ("" if v["ratio_ok"]
                    else f" ({(0.90 - s.ratio) * 100:.0f} points short of 90%)"),
                 f"{s.throttled:,.0f} throttled calls"
                 + (f" vs at least {v['fewest_above_capacity']:,.0f} above capacity"
                    if math.isfinite(v["fewest_above_capacity"]) else "")
                 + ("" if v["throttles_ok"] else " (not fewer)")]
        engine = " (engine default)" if s.contender in ENGINE_ADAPTIVE else ""
        out.append(f"- {s.contender}{engine}: {status}: " + "; ".join(parts) + ".")
    missing = [c for c in ENGINE_ADAPTIVE if c not in names]
    if missing:
        out.append(f"- not run: {', '.join(missing)}")
    return out


def trace_stats(summary: Summary, skip: float = 0.1) -> Optional[dict[str, float]]:
    """The limit over the median run, after the first ``skip`` seconds (the cold start):
    its min, median and max, and the share of samples above ``capacity``."""
    if not summary.runs:
        return None
    run = sorted(summary.runs, key=lambda r: r.makespan)[(len(summary.runs) - 1) // 2]
    limits = [limit for t, limit, _ in run.trace if t >= skip]
    if not limits:
        return None
    return {"min": float(min(limits)), "median": float(statistics.median(limits)),
            "max": float(max(limits)), "samples": float(len(limits))}


def _best_of(result: Result, names: tuple[str, ...]) -> Optional[Summary]:
    found = [s for s in result.summaries if s.contender in names]
    return max(found, key=lambda s: s.ratio) if found else None


def findings(result: Result) -> list[str]:
    """The analysis: how the limits moved, and what the variants show."""
    cap = result.scenario.capacity
    out = ["How each adaptive limit moved in its median run, after its first 0.1 s "
           "(sampled every 10 ms):", ""]
    for s in result.summaries:
        if s.fixed is not None:
            continue
        stats = trace_stats(s)
        if stats is not None:
            out.append(f"- {s.contender}: limit {stats['min']:.0f} .. {stats['max']:.0f}, "
                       f"median {stats['median']:.0f} (capacity {cap})")
    out += [
        "",
        f"The best fixed limit is the one equal to the capacity ({cap}): an oracle a user "
        "would have to know in advance, and that is wrong as soon as the capacity changes.",
        "",
        "Both engine limits update on every handler call. Growth: `AIMDLimit` adds 1 per "
        "successful call, about `limit` per round trip, so the limit doubles every round "
        "trip instead of probing one step at a time; `GradientLimit`'s queue allowance adds "
        "`0.2 * sqrt(limit)` per call. Decrease: every throttled call multiplies the limit "
        "by 0.9, and the calls sent together while the limit overshot come back throttled "
        "together: k throttles in one round trip cut it to 0.9^k (20 throttles: x0.12). So "
        "the limit swings between well above the capacity (slow calls, throttles, retries) "
        "and well below it (idle capacity): the ranges above.",
        "",
    ]
    params = _best_of(result, PARAMETER_VARIANTS)
    if params is not None:
        out.append(f"Parameters alone do not remove the swing: the best parameter variant, "
                   f"{params.contender}, reached {params.ratio:.0%} of the best fixed limit "
                   f"with {params.throttled:,.0f} throttled calls.")
    one_cut = result.by_name().get("OneCutPerRTT(AIMDLimit())")
    if one_cut is not None:
        out.append(f"Fixing only the burst of cuts (`OneCutPerRTT`) is worse: with +1 per "
                   f"call left in place the limit outgrows the capacity (it ended at "
                   f"{one_cut.final_limit or 0:.0f}); {one_cut.ratio:.0%} of the best fixed, "
                   f"{one_cut.throttled:,.0f} throttled calls.")
    windowed = _best_of(result, ("Windowed(AIMDLimit())", "WindowedAIMD()",
                                 "Windowed(GradientLimit(max=200))"))
    if windowed is not None:
        out.append(f"Updating once per window (`Windowed`, as Netflix's concurrency-limits "
                   f"wraps its algorithms in `WindowedLimit`) fixes both at once: the best, "
                   f"{windowed.contender}, reached {windowed.ratio:.0%} of the best fixed limit "
                   f"with {windowed.throttled:,.0f} throttled calls.")
    out += [
        "",
        "**Proposal for `asyncbatch/_core/limits.py`** (not changed here): add the `Windowed` "
        "wrapper of this file (about 40 lines: a window closes after >= 10 calls spanning "
        ">= their mean round-trip time and hands the wrapped limit one sample: mean "
        "round-trip time, largest in-flight count, whether any call was dropped; before "
        "the first drop every call passes straight through, a slow start from `initial`), "
        "and make `concurrency=\"auto\"` mean `Windowed(AIMDLimit())`. `AIMDLimit` and "
        "`GradientLimit` keep their per-call rules (their unit tests check per-call steps), "
        "and users wrap them the same way. Checked against the engine's own adaptive tests "
        "(`tests/core/test_limits.py`: settling near capacity on trio's mock clock, and the "
        "bound-and-order property) with `AIMDLimit` wrapped: both pass.",
    ]
    return out


def write_markdown(result: Result, path: Path, plot_name: str = "adaptive.png") -> Path:
    sc = result.scenario
    m = result.machine
    mode = ("each run in a fresh interpreter" if result.fresh
            else "runs in one process, one event loop each")
    contenders = [f"- `{s.contender}`: {NOTES[s.contender]}" for s in result.summaries
                  if s.contender in NOTES]
    text = [
        "# Adaptive concurrency vs fixed limits",
        "",
        "Generated by `python -m benchmarks.adaptive` "
        f"({m.get('date', '?')}, {result.seconds:.0f} s).",
        "",
        f"**Workload.** {sc.describe()}.",
        "",
        f"**Method.** Real asyncio time (handlers `await anyio.sleep(...)` on the asyncio "
        f"loop; no simulated clock), {mode}; {result.reps} repetitions, round-robin over the "
        "contenders so that a noisy neighbour spreads over all of them; medians. Throughput "
        "= succeeded records / makespan (from the `process()` call to its return). Every "
        "adaptive contender starts from a fresh limit (initial 10): a cold container. "
        "p99 is the record latency from `timings=True` (handler call time, retry "
        "waits excluded). Mean in flight = total handler-call time / makespan. Throttled "
        "calls are counted by the simulated dependency; failed records are those whose "
        f"{sc.attempts} attempts were all throttled.",
        "",
        table(result),
        "",
        "## Target",
        "",
        *verdict_lines(result),
        "",
        f"![adaptive]({plot_name})",
        "",
        "## Findings",
        "",
        *findings(result),
        "",
        "## Contenders",
        "",
        *contenders,
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in m.items()],
        "",
    ]
    path.write_text("\n".join(text), encoding="utf-8")
    return path


def _color(summary: Summary) -> str:
    if summary.fixed is not None:
        return "0.6"
    if summary.contender in ENGINE_ADAPTIVE:
        return "tab:red"
    if summary.contender in PARAMETER_VARIANTS:
        return "tab:orange"
    if summary.contender.startswith("OneCut"):
        return "tab:brown"
    if summary.contender.startswith("Windowed"):
        return "tab:green"
    return "tab:blue"


def _median_run(summary: Summary) -> Run:
    return sorted(summary.runs, key=lambda r: r.makespan)[(len(summary.runs) - 1) // 2]


def write_plot(result: Result, path: Path) -> Path:
    """Four panels: throughput and throttled calls per contender (bars), the fixed-limit
    curve with the adaptive engine defaults and proposals on it, and the limit over time
    (median run) of the engine defaults and the windowed proposals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result.scenario
    summaries = result.summaries
    fixed = sorted((s for s in summaries if s.fixed is not None), key=lambda s: s.fixed or 0)
    shown = [s for s in summaries if s.contender in ENGINE_ADAPTIVE
             or s.contender.startswith("Windowed")]
    line_colors = ["tab:red", "tab:orange", "tab:green", "tab:olive", "tab:cyan",
                   "tab:purple", "tab:blue"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10), dpi=100)
    (bars, throttles), (curve, traces) = axes
    try:
        names = [s.contender for s in summaries]
        colors = [_color(s) for s in summaries]
        ys = range(len(names))
        bars.barh(ys, [s.throughput for s in summaries], color=colors)
        for y, s in zip(ys, summaries):
            bars.text(s.throughput, y, f" {s.ratio:.0%}", va="center", fontsize="x-small")
        bars.axvline(0.9 * result.best_fixed.throughput, color="black", linestyle=":",
                     linewidth=1, label="90% of the best fixed limit")
        bars.set_xlim(0, 1.12 * max(s.throughput for s in summaries))
        bars.set_yticks(list(ys))
        bars.set_yticklabels(names, fontsize="x-small")
        bars.invert_yaxis()
        bars.set_xlabel("throughput (records/s, median); label: ratio to the best fixed")
        bars.legend(fontsize="x-small", loc="lower right")
        bars.set_title("throughput", fontsize="small")

        throttles.barh(ys, [max(s.throttled, 0.5) for s in summaries], color=colors)
        throttles.set_yticks(list(ys))
        throttles.set_yticklabels([])
        throttles.invert_yaxis()
        throttles.set_xscale("log")
        above = result.above_capacity()
        if above:
            throttles.axvline(min(s.throttled for s in above), color="black", linestyle=":",
                              linewidth=1, label="fewest of the fixed limits above capacity")
            throttles.legend(fontsize="x-small", loc="lower right")
        throttles.set_xlabel("throttled calls (median, log scale)")
        throttles.set_title("throttling errors", fontsize="small")

        xs = [s.fixed or 0 for s in fixed]
        curve.plot(xs, [s.throughput for s in fixed], "o-", color="black", label="fixed limit")
        for s in fixed:
            curve.scatter([s.fixed or 0] * len(s.runs), [r.throughput for r in s.runs],
                          color="grey", s=8, alpha=0.5)
        for i, s in enumerate(shown):
            curve.axhline(s.throughput, color=line_colors[i % len(line_colors)],
                          linestyle="--", label=f"{s.contender} ({s.ratio:.0%})")
        curve.axvline(sc.capacity, color="red", linestyle=":", linewidth=1,
                      label="dependency capacity")
        curve.set_xscale("log")
        curve.set_xticks(xs)
        curve.set_xticklabels([str(x) for x in xs])
        curve.set_xlabel("fixed concurrency (grey dots: single runs)")
        curve.set_ylabel("throughput (records/s, median)")
        curve.set_ylim(bottom=0)
        curve.legend(fontsize="x-small", loc="lower right")
        curve.set_title("fixed limits, and adaptive ones as lines", fontsize="small")

        for i, s in enumerate(shown):
            run = _median_run(s)
            if run.trace:
                traces.plot([t for t, _, _ in run.trace], [lim for _, lim, _ in run.trace],
                            color=line_colors[i % len(line_colors)], linewidth=1,
                            label=s.contender)
        traces.axhline(sc.capacity, color="red", linestyle=":", label="capacity")
        traces.set_xlabel("seconds into the batch (median run, sampled every 10 ms)")
        traces.set_ylabel("limit (calls allowed in flight)")
        traces.set_ylim(bottom=0)
        traces.legend(fontsize="x-small", loc="upper right")
        traces.set_title("adaptive limit over time", fontsize="small")
        fig.suptitle(f"Adaptive concurrency vs fixed limits: {sc.records:,} records, dependency "
                     f"capacity {sc.capacity}, {sc.latency_ms:g} ms; real asyncio time, median "
                     f"of {result.reps}", fontsize="medium")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def result_json(result: Result) -> dict[str, Any]:
    """Everything needed to re-render the report (``--report``), runs and traces included."""
    return {
        "scenario": asdict(result.scenario), "reps": result.reps, "fresh": result.fresh,
        "seconds": result.seconds, "machine": result.machine,
        "summaries": [asdict(s) for s in result.summaries],
        "verdicts": {s.contender: result.verdict(s) for s in result.summaries
                     if s.fixed is None},
    }


def load_result(data: dict[str, Any]) -> Result:
    summaries = []
    for raw in data["summaries"]:
        runs = [Run(**{**run, "trace": [tuple(p) for p in run["trace"]]})
                for run in raw.pop("runs")]
        summaries.append(Summary(**raw, runs=runs))
    return Result(scenario=Scenario(**data["scenario"]), reps=data["reps"],
                  summaries=summaries, fresh=data["fresh"], seconds=data["seconds"],
                  machine=data["machine"])


# -- command line -------------------------------------------------------------------------

QUICK = Scenario(records=600)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adaptive",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="600 records, 1 repetition, written to a temporary directory "
                             "unless --out is given")
    parser.add_argument("--reps", type=int, help="repetitions (default 5; --quick 1)")
    parser.add_argument("--records", type=int, help="records per batch (default 5000)")
    parser.add_argument("--capacity", type=int, help="the dependency's capacity (default 50)")
    parser.add_argument("--slowdown", type=float,
                        help="latency x(1 + F * overload) above capacity (default 2)")
    parser.add_argument("--throttle-slope", type=float,
                        help="throttle probability min(1, S * overload) (default 2; 1000: "
                             "every call above capacity)")
    parser.add_argument("--only", metavar="A;B",
                        help="contenders, ';'-separated (default: all of: "
                             + "; ".join(DEFAULT_CONTENDERS) + ")")
    parser.add_argument("--out", type=Path, help="directory for adaptive.md and adaptive.png "
                                                 "(default benchmarks/results)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every run, the medians and the verdicts as JSON")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="only re-render adaptive.md and adaptive.png from a --json file")
    parser.add_argument("--in-process", action="store_true",
                        help="run contenders in this process (faster start, less isolated)")
    args = parser.parse_args(argv)
    if args.report is not None:
        result = load_result(json.loads(args.report.read_text()))
        out = args.out or RESULTS
        write_markdown(result, out / "adaptive.md")
        write_plot(result, out / "adaptive.png")
        print(f"re-rendered {out / 'adaptive.md'} and {out / 'adaptive.png'}", file=sys.stderr)
        return 0
    scenario = QUICK if args.quick else Scenario()
    changes = {name: getattr(args, name) for name in ("records", "capacity", "slowdown",
                                                       "throttle_slope")
               if getattr(args, name) is not None}
    scenario = Scenario(**{**asdict(scenario), **changes})
    reps = args.reps or (1 if args.quick else 5)
    contenders = tuple(c.strip() for c in args.only.split(";")) if args.only \
        else DEFAULT_CONTENDERS
    out = args.out or (Path(tempfile.mkdtemp(prefix="adaptive-")) if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    print(f"adaptive benchmark: {scenario.describe()}; {reps} repetition(s)", file=sys.stderr)
    result = run_benchmark(scenario, contenders, reps, fresh=not args.in_process,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(result))
    print()
    print("\n".join(verdict_lines(result)))
    write_markdown(result, out / "adaptive.md")
    write_plot(result, out / "adaptive.png")
    written = [out / "adaptive.md", out / "adaptive.png"]
    if args.json is not None:
        args.json.write_text(json.dumps(result_json(result), indent=1) + "\n")
        written.append(args.json)
    print(f"\nwritten: {', '.join(map(str, written))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
