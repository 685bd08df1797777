"""The suite: which runs to make, making them in fresh interpreters, and their medians.

Runs are interleaved (repetition by repetition, the contender order rotating), so that
slow drifts of a noisy machine touch every contender alike; every ratio is of two medians
measured in the same suite run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["BENCHMARKS", "FULL", "KAFKA_CONTENDERS", "QUICK", "Settings", "run_suite"]

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("overhead", "uvloop", "memory", "makespan", "skew", "coldstart", "import",
              "streams", "sources")

# asyncbatch_ctx: asyncbatch given a Lambda-like context whose deadline is far away (it
# then reads the clock before each record).
SQS_CONTENDERS = ("asyncbatch", "asyncbatch_ctx", "powertools_async", "powertools_sync",
                  "floor", "aiometer")
KINESIS_CONTENDERS = ("asyncbatch", "asyncbatch_ctx", "powertools_async", "powertools_sync",
                      "floor", "floor_keyed")
# The cold start: import + first batch in a fresh interpreter (benchmarks/_coldstart.py).
COLDSTART_CONTENDERS = ("floor", "asyncbatch", "powertools", "powertools_async")
# Kafka (8 partitions): per-partition order (the default) and per-key order, against
# powertools' Kafka processor and the bare pools grouping by partition and by key.
KAFKA_CONTENDERS = ("asyncbatch", "asyncbatch_key", "powertools_async", "floor_partition",
                    "floor_keyed")
SYNC_ONLY = ("powertools_sync",)

_POWERTOOLS_BATCH = "from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor"
NO_PYC = "asyncbatch without .pyc"
# label: (statement run first, before the marker; the statement measured; its baseline)
IMPORT_TARGETS = {
    "python -c pass": ("", "pass", None),
    "import asyncio": ("", "import asyncio", "python -c pass"),
    "import asyncbatch": ("", "import asyncbatch", "python -c pass"),
    "powertools batch": ("", _POWERTOOLS_BATCH, "python -c pass"),
    "asyncbatch after asyncio": ("import asyncio", "import asyncbatch", "import asyncio"),
    "powertools after asyncio": ("import asyncio", _POWERTOOLS_BATCH, "import asyncio"),
    # What the suite used to time: no .pyc and PYTHONDONTWRITEBYTECODE=1, so that every
    # interpreter compiles the package: what a deployment package without .pyc pays.
    NO_PYC: ("", "import asyncbatch", "python -c pass"),
}


@dataclass(frozen=True)
class SkewScenario:
    name: str
    n: int
    distinct_keys: int
    exponent: float


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions. ``reps`` maps an overhead size to its repetitions (fresh
    interpreters); ``inner`` to runs inside each interpreter (their median is taken)."""

    sizes: tuple[int, ...]
    reps: dict[int, int]
    inner: dict[int, int]
    uvloop_sizes: tuple[int, ...]
    uvloop_contenders: Optional[tuple[str, ...]]  # None: every async contender
    concurrency: int
    distinct_keys: int
    makespan_n: int
    makespan_latency: float
    makespan_concurrencies: tuple[int, ...]
    makespan_wall_concurrencies: tuple[int, ...]  # the slow wall-clock runs: fewer
    makespan_contenders: tuple[str, ...]
    makespan_reference: tuple[str, ...]  # run only at concurrency >= makespan_reference_from
    makespan_reference_from: int
    makespan_reps: dict[str, int]  # per loop: "cpu-clock" (a core of its own), "asyncio"
    lognormal_sigma: float
    skew: tuple[SkewScenario, ...]
    skew_latency: float
    skew_concurrency: int
    skew_reps: dict[str, int]
    import_reps: int
    coldstart_n: int = 200
    coldstart_reps: int = 15
    traced_contenders: tuple[str, ...] = field(default=("asyncbatch", "powertools_async",
                                                        "powertools_sync", "floor", "aiometer"))


FULL = Settings(
    sizes=(1_000, 10_000, 100_000),
    reps={1_000: 5, 10_000: 5, 100_000: 3},
    inner={1_000: 20, 10_000: 5, 100_000: 3},
    uvloop_sizes=(10_000, 100_000),
    uvloop_contenders=("asyncbatch", "powertools_async", "floor", "floor_keyed"),
    concurrency=100,
    distinct_keys=1_000,
    makespan_n=10_000,
    makespan_latency=0.010,
    makespan_concurrencies=(10, 50, 100, 500),
    makespan_wall_concurrencies=(50, 100, 500),
    makespan_contenders=("asyncbatch", "floor"),
    makespan_reference=("aiometer",),
    makespan_reference_from=100,
    makespan_reps={"cpu-clock": 5, "asyncio": 3},
    lognormal_sigma=1.0,
    skew=(
        SkewScenario("balanced (chain ~ N/C)", 10_000, 10_000, 0.6),
        SkewScenario("hot keys (chain ~ 4 N/C)", 10_000, 5_000, 0.8),
    ),
    skew_latency=0.010,
    skew_concurrency=100,
    skew_reps={"cpu-clock": 5, "asyncio": 3},
    import_reps=10,
    coldstart_n=200,
    coldstart_reps=30,
)

QUICK = Settings(
    sizes=(300,),
    reps={300: 1},
    inner={300: 2},
    uvloop_sizes=(300,),
    uvloop_contenders=("asyncbatch", "floor", "floor_keyed"),
    concurrency=100,
    distinct_keys=50,
    makespan_n=200,
    makespan_latency=0.002,
    makespan_concurrencies=(20,),
    makespan_wall_concurrencies=(20,),
    makespan_contenders=("asyncbatch", "floor"),
    makespan_reference=(),
    makespan_reference_from=0,
    makespan_reps={"cpu-clock": 1, "asyncio": 1},
    lognormal_sigma=1.0,
    skew=(SkewScenario("quick", 400, 200, 0.8),),
    skew_latency=0.002,
    skew_concurrency=20,
    skew_reps={"cpu-clock": 1, "asyncio": 1},
    import_reps=1,
    coldstart_n=200,
    coldstart_reps=1,
    traced_contenders=("asyncbatch", "powertools_async"),
)


# -- running one measurement ---------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """Where the children run: a snapshot of ``asyncbatch/`` and ``benchmarks/`` taken when
    the suite starts, so that a long run measures one version of the library even while
    the working tree changes under it."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = "0"
        env.pop("LAMBDA_TASK_ROOT", None)
        # Children may write .pyc files (into the snapshot, and the venv if one is
        # missing): a deployed package has them, so import timings must not include the
        # compiler. The warm-up runs write them.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.root) + (os.pathsep + path if path else "")
        return env


@contextmanager
def snapshot() -> Iterator[Tree]:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results", "*.png")
    with tempfile.TemporaryDirectory(prefix="asyncbatch-bench-tree-") as tmp:
        root = Path(tmp)
        for package in ("asyncbatch", "benchmarks"):
            shutil.copytree(ROOT / package, root / package, ignore=ignore)
        yield Tree(root)


def run_child(tree: Tree, args: dict[str, Any], timeout: float = 900.0) -> dict[str, Any]:
    """Run ``benchmarks._runner`` with ``args`` in a fresh interpreter; its result, or
    ``{"error": ...}`` when it failed."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._runner", json.dumps(args)],
            cwd=tree.root, env=tree.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT "):
            result: dict[str, Any] = json.loads(line[len("@@RESULT "):])
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


class Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, message: str, *, always: bool = False) -> None:
        if always or not self.quiet:
            elapsed = time.perf_counter() - self.started
            sys.stderr.write(f"[{elapsed:7.1f}s] {message}\n")
            sys.stderr.flush()


def _rotate(items: Sequence[str], by: int) -> list[str]:
    if not items:
        return []
    k = by % len(items)
    return list(items[k:]) + list(items[:k])


# -- the benchmarks ------------------------------------------------------------------


def overhead_runs(settings: Settings, selected: set[str]) -> list[dict[str, Any]]:
    """The overhead (and uvloop) run specs, in the order they are made."""
    configs: list[tuple[str, int, str]] = []
    if "overhead" in selected:
        configs += [(source, n, "asyncio") for n in settings.sizes
                    for source in ("sqs", "kinesis", "kafka")]
    elif "memory" in selected:  # memory needs only the largest SQS runs
        configs.append(("sqs", max(settings.sizes), "asyncio"))
    if "uvloop" in selected:
        configs += [(source, n, "uvloop") for n in settings.uvloop_sizes
                    for source in ("sqs", "kinesis")]
    specs = []
    for rep in range(max(settings.reps.values())):
        for source, n, loop in configs:
            if rep >= settings.reps[n]:
                continue
            contenders = {"sqs": SQS_CONTENDERS, "kinesis": KINESIS_CONTENDERS,
                          "kafka": KAFKA_CONTENDERS}[source]
            if loop == "uvloop":
                contenders = tuple(c for c in contenders if c not in SYNC_ONLY and (
                    settings.uvloop_contenders is None or c in settings.uvloop_contenders))
            for contender in _rotate(contenders, rep):
                specs.append({
                    "task": "overhead", "contender": contender, "source": source, "n": n,
                    "concurrency": settings.concurrency, "loop": loop,
                    "inner": settings.inner[n], "distinct_keys": settings.distinct_keys,
                    "rep": rep,
                })
    return specs


def memory_runs(settings: Settings) -> list[dict[str, Any]]:
    n = max(settings.sizes)
    specs: list[dict[str, Any]] = [
        {"task": "event_size", "source": "sqs", "n": n, "rep": 0},
    ]
    if n > 10_000:  # asyncbatch's peak at 10x fewer records: O(concurrency) if alike
        specs.append({"task": "overhead", "contender": "asyncbatch", "source": "sqs",
                      "n": n // 10, "tracemalloc": True, "concurrency": settings.concurrency,
                      "loop": "asyncio", "rep": 0})
    specs += [
        {"task": "overhead", "contender": c, "source": "sqs", "n": n, "tracemalloc": True,
         "concurrency": settings.concurrency, "loop": "asyncio", "rep": 0}
        for c in settings.traced_contenders
    ]
    return specs


def makespan_runs(settings: Settings) -> list[dict[str, Any]]:
    latencies = [
        {"kind": "fixed", "seconds": settings.makespan_latency},
        {"kind": "lognormal", "mean": settings.makespan_latency,
         "sigma": settings.lognormal_sigma, "seed": 1},
    ]
    specs = []
    for loop, reps in settings.makespan_reps.items():
        for rep in range(reps):
            for latency in latencies:
                for concurrency in (settings.makespan_wall_concurrencies if loop == "asyncio"
                                    else settings.makespan_concurrencies):
                    contenders = settings.makespan_contenders
                    if concurrency >= settings.makespan_reference_from:
                        contenders += settings.makespan_reference
                    for contender in _rotate(contenders, rep):
                        specs.append({
                            "task": "makespan", "contender": contender, "loop": loop,
                            "n": settings.makespan_n, "concurrency": concurrency,
                            "latency": latency, "rep": rep,
                        })
    return specs


def skew_runs(settings: Settings) -> list[dict[str, Any]]:
    specs = []
    for loop, reps in settings.skew_reps.items():
        for rep in range(reps):
            for scenario in settings.skew:
                for contender in _rotate(("asyncbatch", "floor_keyed"), rep):
                    specs.append({
                        "task": "skew", "contender": contender, "loop": loop,
                        "scenario": scenario.name, "n": scenario.n,
                        "distinct_keys": scenario.distinct_keys, "exponent": scenario.exponent,
                        "latency": settings.skew_latency,
                        "concurrency": settings.skew_concurrency, "seed": 0, "rep": rep,
                    })
    return specs


def _importtime_us(stderr: str) -> int:
    """Cumulative microseconds of the top-level imports after the marker line."""
    total = 0
    after = False
    for line in stderr.splitlines():
        if line.strip() == "@@MARK":
            after = True
            continue
        if not after or not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2]
        if name.startswith(" ") and not name.startswith("  "):  # level 0: one space
            total += int(fields[1])
    return total


def _result_of(stdout: str) -> Optional[dict[str, Any]]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("@@RESULT "):
            result: dict[str, Any] = json.loads(line[len("@@RESULT "):])
            return result
    return None


def coldstart_runs(tree: Tree, settings: Settings, log: Log) -> list[dict[str, Any]]:
    """Lambda's cold start, each in a fresh interpreter (``benchmarks/_coldstart.py``):
    the library's import plus its first ``coldstart_n``-record SQS batch, against a bare
    ``asyncio.run`` over the same records. ``.pyc`` files are written by one warm-up run
    per contender first, as a deployment package ships them."""
    event = tree.root / "coldstart_event.json"
    made = run_child(tree, {"task": "write_event", "source": "sqs",
                            "n": settings.coldstart_n, "seed": 7, "path": str(event)})
    if "error" in made:
        return [{"task": "coldstart", "contender": c, "rep": 0, "result": made}
                for c in COLDSTART_CONTENDERS]
    env = tree.env
    env["LAMBDA_TASK_ROOT"] = "/var/task"  # as in Lambda (powertools then keeps its loop)
    script = str(tree.root / "benchmarks" / "_coldstart.py")
    rows: list[dict[str, Any]] = []

    def once(contender: str) -> dict[str, Any]:
        args = {"contender": contender, "event": str(event), "concurrency": settings.concurrency}
        try:
            proc = subprocess.run([sys.executable, script, json.dumps(args)], cwd=tree.root,
                                  env=env, capture_output=True, text=True, timeout=120,
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"error": "timed out after 120s"}
        result = _result_of(proc.stdout)
        if result is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        return result

    for contender in COLDSTART_CONTENDERS:  # warm-up: writes the .pyc files
        once(contender)
    for rep in range(settings.coldstart_reps):
        for contender in _rotate(COLDSTART_CONTENDERS, rep):
            rows.append({"task": "coldstart", "contender": contender, "rep": rep,
                         "n": settings.coldstart_n, "result": once(contender)})
    log(f"coldstart: {len(rows)} measurements")
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_runs(tree: Tree, settings: Settings, log: Log) -> list[dict[str, Any]]:
    """Cold ``import`` cost, each in a fresh interpreter: the wall and CPU time of
    ``python -c``, and ``-X importtime``'s cumulative time of the measured statement's
    top-level imports (after the optional first statement, e.g. ``import asyncio``)."""
    env = tree.env
    cwd = tree.root
    # A copy of the package that never gets .pyc files (the NO_PYC row).
    bare = tree.root / "no-pyc"
    shutil.copytree(tree.root / "asyncbatch", bare / "asyncbatch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    bare_env = dict(env, PYTHONPATH=str(bare), PYTHONDONTWRITEBYTECODE="1")
    rows: list[dict[str, Any]] = []

    def once(label: str, rep: int) -> None:
        pre, statement, _ = IMPORT_TARGETS[label]
        env, cwd = (bare_env, bare) if label == NO_PYC else (tree.env, tree.root)
        code = f"{pre}; {statement}" if pre else statement
        cpu = _children_cpu()
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                              capture_output=True, check=False)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu
        marked = "; ".join(filter(None, [pre, "import sys", "sys.stderr.write('@@MARK\\n')",
                                         statement]))
        timed = subprocess.run([sys.executable, "-X", "importtime", "-c", marked], cwd=cwd,
                               env=env, capture_output=True, text=True, check=False)
        ok = proc.returncode == 0 and timed.returncode == 0
        result = {"wall_s": wall, "cpu_s": cpu, "importtime_us": _importtime_us(timed.stderr)} \
            if ok else {"error": " | ".join(timed.stderr.strip().splitlines()[-3:])}
        rows.append({"task": "import", "target": label, "statement": code, "rep": rep,
                     "result": result})

    for pre, statement, _ in IMPORT_TARGETS.values():  # warm the file cache and .pyc files
        subprocess.run([sys.executable, "-c", f"{pre}; {statement}" if pre else statement],
                       cwd=cwd, env=env,
                       capture_output=True, check=False)
    for rep in range(settings.import_reps):
        for label in _rotate(list(IMPORT_TARGETS), rep):
            once(label, rep)
    pyc = any((cwd / "asyncbatch" / "__pycache__").glob("__init__.*.pyc"))
    compiled = (bare / "asyncbatch" / "__pycache__").exists()
    for row in rows:  # asyncbatch's .pyc written by the warm-up: no compiler timed
        row["pyc"] = compiled if row["target"] == NO_PYC else pyc
    log(f"import: {len(rows)} measurements (asyncbatch .pyc present: {pyc})")
    return rows


# -- machine -------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("asyncbatch", "aws-lambda-powertools", "aiometer", "anyio", "uvloop",
                 "pydantic", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dirty = _git("status", "--porcelain", "--", "asyncbatch")
    if dirty:
        diff = _git("diff", "HEAD", "--", "asyncbatch") + "\n" + "\n".join(
            sorted(line for line in dirty.splitlines() if line.startswith("??")))
        dirty = hashlib.sha1(diff.encode()).hexdigest()[:10]
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "asyncbatch_commit": _git("rev-parse", "--short", "HEAD")
        + (f" + uncommitted changes in asyncbatch/ (diff sha1 {dirty})" if dirty else ""),
        "versions": _versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- the whole suite -----------------------------------------------------------------


def run_specs(tree: Tree, specs: list[dict[str, Any]], log: Log,
              label: str) -> list[dict[str, Any]]:
    rows = []
    for i, spec in enumerate(specs, 1):
        args = {k: v for k, v in spec.items() if k not in ("rep", "scenario")}
        started = time.perf_counter()
        result = run_child(tree, args)
        wall = time.perf_counter() - started
        rows.append({**spec, "result": result, "wall_s": wall})
        what = " ".join(f"{k}={spec[k]}" for k in ("contender", "source", "n", "loop",
                                                   "concurrency", "scenario", "rep")
                        if k in spec)
        status = "ERROR " + result["error"] if "error" in result else f"{wall:.1f}s"
        log(f"{label} [{i}/{len(specs)}] {what}: {status}")
    return rows


def _spec_key(spec: dict[str, Any]) -> str:
    latency = spec.get("latency")
    kind = latency.get("kind") if isinstance(latency, dict) else latency
    return "|".join(str(spec.get(k)) for k in ("task", "contender", "source", "n", "loop",
                                                "concurrency", "scenario", "tracemalloc")) \
        + f"|{kind}"


def _guess_s(spec: dict[str, Any]) -> float:
    """A rough wall time of one child run when no earlier run says better."""
    task = spec["task"]
    n = int(spec.get("n", 0))
    if task == "overhead":
        per_record = {"powertools_async": 20e-6, "powertools_sync": 3e-6,
                      "aiometer": 55e-6}.get(spec.get("contender", ""), 2e-6)
        return 1.5 + n * 15e-6 + n * per_record * (1 + int(spec.get("inner", 1)))
    if task == "event_size":
        return 1.5 + n * 15e-6
    if task in ("makespan", "skew"):
        if spec.get("loop") == "cpu-clock":
            return 1.5 + n * 30e-6
        latency: Any = spec["latency"]
        raw: Any = latency.get("seconds", latency.get("mean", 0.01)) \
            if isinstance(latency, dict) else latency
        seconds = float(raw)
        return 1.5 + n * seconds / int(spec["concurrency"]) * 1.3
    return 1.0


def estimate_s(specs: list[dict[str, Any]], settings: Settings, chosen: set[str],
               previous: Optional[dict[str, Any]]) -> tuple[float, str]:
    """The expected run time: each child run's wall time in the previous run when it had
    the same run, else a rough guess; plus the cold-start and import interpreters."""
    earlier: dict[str, list[float]] = {}
    for row in (previous or {}).get("runs", []):
        if "wall_s" in row and "error" not in row.get("result", {}):
            earlier.setdefault(_spec_key(row), []).append(row["wall_s"])
    total = 0.0
    known = 0
    for spec in specs:
        walls = earlier.get(_spec_key(spec))
        if walls:
            total += statistics.median(walls)
            known += 1
        else:
            total += _guess_s(spec)
    if "coldstart" in chosen:
        total += 2.0 + 0.4 * len(COLDSTART_CONTENDERS) * (settings.coldstart_reps + 1)
    if "import" in chosen:
        total += 0.3 * len(IMPORT_TARGETS) * (2 * settings.import_reps + 1)
    basis = (f"{known} of {len(specs)} runs timed as in the previous results.json, the rest "
             "guessed" if previous else "guessed: no previous results.json")
    return total, basis


def _load_previous(out: Path) -> Optional[dict[str, Any]]:
    path = out / "results.json"
    try:
        previous: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) and "runs" in previous else None


def run_suite(settings: Settings, selected: Iterable[str], out: Path, *, quick: bool,
              quiet: bool = False,
              report: Optional[Callable[[dict[str, Any], Path], None]] = None,
              summarise: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None,
              ) -> dict[str, Any]:
    """Make every selected benchmark's runs; write ``results.json`` (and the report).

    Everything is written into a temporary directory and moved into ``out`` only when
    the suite completed: an interrupted run leaves the previous results as they were.
    The previous ``results.json`` in ``out`` (if any) is summarised into the new one
    (``previous``), for the report's comparison."""
    chosen = set(selected)
    unknown = chosen - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    log = Log(quiet)
    previous = _load_previous(out)
    data: dict[str, Any] = {
        "quick": quick, "selected": [b for b in BENCHMARKS if b in chosen],
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
        "machine": machine_info(), "runs": [],
    }
    if previous is not None and summarise is not None:
        try:
            data["previous"] = {"machine": previous.get("machine", {}),
                                "quick": previous.get("quick"),
                                "summary": summarise(previous)}
        except (KeyError, TypeError, ValueError) as exc:  # an older format: no comparison
            log(f"previous results.json not comparable ({exc!r})")
    plans: list[tuple[str, list[dict[str, Any]]]] = []
    if chosen & {"overhead", "uvloop", "memory"}:
        plans.append(("overhead", overhead_runs(settings, chosen)))
    if "memory" in chosen:
        plans.append(("memory", memory_runs(settings)))
    if "makespan" in chosen:
        plans.append(("makespan", makespan_runs(settings)))
    if "skew" in chosen:
        plans.append(("skew", skew_runs(settings)))
    expected, basis = estimate_s([spec for _, specs in plans for spec in specs], settings,
                                 chosen, previous)
    data["expected_s"] = expected
    log(f"expected run time: about {expected / 60:.1f} min ({basis}); results are written "
        f"to a temporary directory and moved to {out} when the suite completes", always=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asyncbatch-bench-out-") as tmp:
        work = Path(tmp)
        with snapshot() as tree:
            log(f"measuring a snapshot of asyncbatch/ in {tree.root}")
            for label, specs in plans:
                data["runs"] += run_specs(tree, specs, log, label)
            if "coldstart" in chosen:
                data["runs"] += coldstart_runs(tree, settings, log)
            if "import" in chosen:
                data["runs"] += import_runs(tree, settings, log)
        if "streams" in chosen:  # in this interpreter: its contenders are paired in one
            from . import streams

            log("streams: stream() against a bare pool, aiometer and aiostream")
            streams.main((["--quick"] if quick else []) + ["--out", str(work / "streams.md")])
        if "sources" in chosen:  # in this interpreter too: asyncbatch and its floor paired
            from . import sources

            log("sources: every event source against the bare pool of its shape")
            sources.main((["--quick"] if quick else []) + ["--out", str(work / "sources.md")])
        data["duration_s"] = time.perf_counter() - started
        data["machine"]["loadavg_end"] = list(os.getloadavg()) \
            if hasattr(os, "getloadavg") else None
        (work / "results.json").write_text(json.dumps(data, indent=1) + "\n",
                                           encoding="utf-8")
        if report is not None:
            report(data, work)
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(work.iterdir()):
            shutil.move(str(path), str(out / path.name))
    log(f"done in {data['duration_s']:.0f}s (expected {expected:.0f}s); results in {out}")
    return data


# -- medians -------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def select(data: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    """The successful runs whose fields equal ``match``."""
    return [r for r in data["runs"]
            if "error" not in r["result"] and all(r.get(k) == v for k, v in match.items())]
