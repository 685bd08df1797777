"""The fuzzer's tests: the CI budget (or the long run, or one seed replayed), exact replay,
limits shared across threads, and ``KeyboardInterrupt``/``SystemExit``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import asyncbatch
from asyncbatch.testing import kafka_event, kinesis_event, sqs_event

from . import fatal
from .checks import check
from .harness import fingerprint, run
from .scenario import KNOWN_BREAKS, generate, known

#: the CI budget: at least this many process() calls (batches)
CI_BATCHES = 4_000
LONG_BATCHES = 50_000
#: failing seeds shown in full in a failure message
SHOWN = 5


def _plan() -> tuple[range, int, bool]:
    """The seeds to run, the batches to reach, and whether to print the scenario."""
    if os.environ.get("FUZZ_SEED"):
        seed = int(os.environ["FUZZ_SEED"])
        return range(seed, seed + 1), 0, True
    start = int(os.environ.get("FUZZ_START", "0"))
    batches = LONG_BATCHES if os.environ.get("ASYNCBATCH_FUZZ") == "long" else CI_BATCHES
    return range(start, start + 10 * batches), batches, False


def test_random_batches_keep_every_invariant() -> None:
    """Scenario after scenario until the budget of batches is reached (CI: 4,000; long:
    50,000; ``FUZZ_SEED``: that one); every invariant checked on every batch. A failure
    lists the failing seeds, the first violations and the scenarios."""
    seeds, budget, verbose = _plan()
    started = time.perf_counter()
    batches = 0
    failures: list[tuple[int, list[str]]] = []
    ran = 0
    for seed in seeds:
        if budget and batches >= budget:
            break
        scenario = generate(seed)
        world = run(scenario)
        batches += len(world.calls)
        ran += 1
        violations = check(world)
        if verbose:
            print(scenario.summary())
            print("\n".join(violations) or "no violation")
        if violations:
            failures.append((seed, violations))
    elapsed = time.perf_counter() - started
    print(f"fuzz: {ran} scenarios, {batches} batches in {elapsed:.1f}s")
    if failures:
        lines = [f"{len(failures)} of {ran} scenarios broke an invariant "
                 f"(seeds {[seed for seed, _ in failures][:50]}). Replay one with "
                 f"FUZZ_SEED=<seed> pytest tests/fuzz -k invariant -s"]
        for seed, violations in failures[:SHOWN]:
            lines.append(f"\n--- FUZZ_SEED={seed}")
            lines.extend(f"  {v[:500]}" for v in violations[:12])
            lines.append(generate(seed).summary()[:3000])
        pytest.fail("\n".join(lines), pytrace=False)
    assert batches >= budget


def _replayable() -> list[int]:
    """Seeds without sync handlers (whose threads race), three per backend."""
    found: dict[str, list[int]] = {"trio": [], "asyncio": [], "anyio": []}
    for seed in range(10_000):
        scenario = generate(seed)
        picked = found[scenario.backend]
        if not scenario.threads and len(picked) < 3 and sum(
                len(c.records) for c in scenario.calls) >= 10:
            picked.append(seed)
        if all(len(p) == 3 for p in found.values()):
            break
    return [seed for picked in found.values() for seed in picked]


@pytest.mark.parametrize("seed", _replayable())
def test_a_seed_replays_exactly(seed: int) -> None:
    """Without sync handlers, a seed's run is the same every time: what was observed
    (every attempt's plan, outcome and virtual times; every status; every sink and store
    call) and so what was checked."""
    assert fingerprint(run(generate(seed))) == fingerprint(run(generate(seed)))


# -- a limit shared by processors in several threads -------------------------------------------


class _Running:
    """Handlers running at once, across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def _thread_case(seed: int) -> tuple[Any, int, str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    top = rng.choice((1, 2, 3))
    kind = rng.choice(("aimd", "gradient", "windowed"))
    limit: Any = {"aimd": asyncbatch.AIMDLimit(top, max=top),
                  "gradient": asyncbatch.GradientLimit(top, max=top),
                  "windowed": asyncbatch.WindowedLimit(asyncbatch.AIMDLimit(top, max=top))}[kind]
    threads = rng.randint(2, 4)
    entry = rng.choice(("partial", "run"))
    events = []
    for number in range(threads):
        source = rng.choice(("sqs", "kinesis", "kafka"))
        n = rng.randint(top + 1, 3 * top + 2)
        start = number * 1000
        if source == "sqs":
            events.append(sqs_event(*({"n": i} for i in range(n)), start=start))
        elif source == "kinesis":
            events.append(kinesis_event(*((f"k{i}", {"n": i}) for i in range(n)),
                                        start=start))
        else:
            events.append(kafka_event(*((i % 3, None, {"n": i}) for i in range(n)),
                                      start=start))
    return limit, threads, entry, events


@pytest.mark.parametrize("seed", range(6))
def test_a_limit_shared_across_threads_holds_its_max(seed: int) -> None:
    """Processors in several threads (each with its own event loop, through
    ``process_partial_response`` or ``asyncio.run``) share one limit object; the handlers
    running at once, across the threads, never exceed its ``max``. Real time: a handler
    holds its slot a few milliseconds, so the threads' batches overlap."""
    limit, threads, entry, events = _thread_case(seed)
    running = _Running()
    errors: list[BaseException] = []

    async def handle(record: Any) -> None:
        running.enter()
        try:
            await asyncio.sleep(0.002)
        finally:
            running.leave()

    processor = asyncbatch.AsyncBatchProcessor(concurrency=limit, log_summary=False)
    barrier = threading.Barrier(threads)

    def work(event: dict[str, Any]) -> None:
        try:
            barrier.wait(10)
            if entry == "partial":
                asyncbatch.process_partial_response(event, handle, processor)
            else:
                asyncio.run(processor.process(event, handle))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(event,)) for event in events]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    bound = limit.max * (threads if known("shared-limit-across-threads") else 1)
    assert running.peak <= bound, (
        f"{running.peak} handlers ran at once across {threads} threads sharing "
        f"{limit!r} (max {limit.max})")


# -- KeyboardInterrupt and SystemExit ----------------------------------------------------------

FATAL_SEEDS = range(12)


@pytest.fixture(scope="module")
def fatal_in_a_child() -> dict[int, dict[str, Any]]:
    """The asyncio cases, run in one child process (see ``fatal.py``)."""
    seeds = [str(seed) for seed in FATAL_SEEDS if fatal.backend_of(seed) != "trio"]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.fatal", *seeds], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(seeds), done.stderr[-3000:]
    return {result["seed"]: result for result in results}


@pytest.mark.parametrize("seed", FATAL_SEEDS)
def test_keyboard_interrupt_and_system_exit_propagate_unwrapped(
        seed: int, request: pytest.FixtureRequest) -> None:
    """A handler raising ``KeyboardInterrupt`` or ``SystemExit`` stops the batch: that
    very exception propagates (never wrapped in a group), and when it reaches the caller
    no other handler is still running (no task left)."""
    if fatal.backend_of(seed) == "trio":
        result = fatal.case(seed)
    else:
        result = request.getfixturevalue("fatal_in_a_child")[seed]
    assert result["same"], f"{result['caught']} propagated instead of {result['fatal']}"
    assert result["running"] == 0


# -- the checks themselves -----------------------------------------------------------------------


def _sabotage(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Break the engine on purpose; return what the checks must then say."""
    import asyncbatch._core.report
    import asyncbatch._core.run

    if name == "the response drops a failure":
        real = asyncbatch._core.report.BatchReport.failure_identifiers
        monkeypatch.setattr(asyncbatch._core.report.BatchReport, "failure_identifiers",
                            lambda self: real(self)[:-1])
        return "batchItemFailures"
    if name == "twice the workers":
        real_run = asyncbatch._core.run.run_workers

        async def more(body: Any, limit: int, *args: Any, **kwargs: Any) -> None:
            await real_run(body, 2 * limit, *args, **kwargs)

        monkeypatch.setattr(asyncbatch._core.run, "run_workers", more)
        return "handlers ran at once"
    real_failed = asyncbatch._core.run.BatchRun._failed

    async def lane_goes_on(self: Any, *args: Any) -> bool:
        await real_failed(self, *args)
        return True

    monkeypatch.setattr(asyncbatch._core.run.BatchRun, "_failed", lane_goes_on)
    return "did not succeed"


@pytest.mark.parametrize("name", ["the response drops a failure", "twice the workers",
                                  "lanes go on after a failure"])
def test_the_checks_catch_a_broken_engine(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each check is only worth what it catches: with the engine broken on purpose, the
    first few hundred seeds show it."""
    marker = _sabotage(name, monkeypatch)
    for seed in range(400):
        if any(marker in violation for violation in check(run(generate(seed)))):
            return
    pytest.fail(f"no seed caught the sabotage {name!r}")


def test_every_known_break_is_pinned_by_a_strict_xfail_regression_test() -> None:
    """Each exclusion of the CI run names the regression test that shows its break, and
    that test is marked ``xfail(strict=True)``: a fix turns it red, and then the exclusion
    goes too."""
    from . import test_regressions

    for name, (_, test_name) in KNOWN_BREAKS.items():
        test = getattr(test_regressions, test_name, None)
        assert test is not None, f"{name}: no test {test_name} in test_regressions.py"
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "xfail"]
        assert marks and marks[0].kwargs.get("strict") is True, f"{test_name} is not strict"
