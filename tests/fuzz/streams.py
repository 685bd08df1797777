"""The fuzzer for ``processor.stream()``: any iterable, read lazily, under every option.

One scenario per seed (``generate_stream(seed)``, a pure function of it): the input (a
list, a generator or an async generator, maybe raising part-way), per-key order or none
(``resume_failed_keys`` or not), outcomes as they settle or in input order, retries,
timeouts, a rate limit, a Lambda deadline, and a consumer that takes everything, leaves
early, calls ``stop()`` or is cancelled; each item's handler calls planned (succeed,
fail, fail transiently, hang, raise an exception that cannot be printed). ``run_stream``
runs it in virtual time (trio's MockClock, or asyncio's ``VirtualLoop``) and records
what happened; ``check_stream`` says which rules of "Any iterable" in the contract
(docs/contract.md) were broken.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Optional

import anyio

import asyncbatch
from asyncbatch.testing import LambdaContext

from . import vtime

__all__ = ["StreamScenario", "StreamWorld", "check_stream", "generate_stream", "run_stream"]

KINDS = ("ok", "fail", "transient", "hang", "bad_str")
LATENCIES = (-1.0, 0.0, 0.001, 0.01, 0.2, 0.9)
HANG = 1e9
EPS = 1e-6


class Transient(asyncbatch.TransientError):
    pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class InputBroke(Exception):
    """The input's own error: it must come out of the iteration unchanged."""


@dataclass
class StreamScenario:
    seed: int
    backend: str
    items: list[tuple[Optional[str], list[tuple[str, float]]]]  # key, planned calls
    concurrency: int
    input: str  # list, generator, async
    raises_at: Optional[int]  # the input raises instead of giving this item
    keyed: bool
    resume: bool
    ordered: bool
    retry: Optional[tuple[int, float]]  # attempts, base delay
    timeout: Optional[float]
    rate: Optional[tuple[float, int]]  # per second, burst
    remaining: Optional[float]  # a Lambda context with this much time left
    consumer: str  # all, break, stop, cancel
    after: int  # break/stop after this many outcomes; cancel: at this virtual time
    pace: float  # the consumer's own time per outcome

    def summary(self) -> str:
        opts = {k: v for k, v in vars(self).items() if k != "items"}
        lines = [f"stream scenario {opts}"]
        lines += [f"  [{i}] key={key!r} calls={calls}" for i, (key, calls) in
                  enumerate(self.items)]
        return "\n".join(lines)


def generate_stream(seed: int) -> StreamScenario:
    rng = random.Random(seed)
    backend = rng.choice(vtime.BACKENDS)
    n = rng.choice((0, 1, 2, rng.randint(3, 12), rng.randint(13, 60)))
    keyed = rng.random() < 0.5
    alphabet = "abcde"[: rng.randint(1, 5)]
    timeout = rng.choice((None, None, 0.05, 0.5))
    remaining = rng.choice((None, None, None, 0.3, 1.5, 4.0))
    consumer = rng.choice(("all", "all", "all", "break", "stop", "cancel"))
    bounded = timeout is not None or remaining is not None or consumer == "cancel"
    items = []
    for _ in range(n):
        calls = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            kinds = {"ok": 60, "fail": 12, "transient": 14, "bad_str": 4,
                     "hang": 5 if bounded else 0}
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
            calls.append((kind, rng.choice(LATENCIES)))
        items.append((rng.choice(alphabet) if keyed else None, calls))
    return StreamScenario(
        seed=seed, backend=backend, items=items,
        concurrency=rng.choice((1, 2, 3, 5, 16, 200)),
        input=rng.choice(("list", "generator", "async")),
        raises_at=rng.randrange(n) if n and rng.random() < 0.1 else None,
        keyed=keyed, resume=keyed and rng.random() < 0.4,
        ordered=rng.random() < 0.3,
        retry=(rng.randint(2, 3), rng.choice((0.001, 0.05))) if rng.random() < 0.4 else None,
        timeout=timeout,
        rate=(rng.choice((5.0, 50.0, 1000.0)), rng.choice((1, 3))) if rng.random() < 0.2
        else None,
        remaining=remaining, consumer=consumer,
        after=rng.randint(0, max(0, n)) if consumer != "cancel" else 0,
        pace=rng.choice((0.0, 0.0, 0.01, 0.3)))


@dataclass
class Call:
    item: int
    number: int
    kind: str
    start: float
    end: Optional[float] = None
    returned: bool = False
    cancelled: bool = False


@dataclass
class StreamWorld:
    scenario: StreamScenario
    read: list[float] = field(default_factory=list)  # when item i was read
    calls: list[Call] = field(default_factory=list)
    outcomes: list[Any] = field(default_factory=list)
    taken_at: list[float] = field(default_factory=list)
    ahead: int = 0  # most items read and not handed back
    running: int = 0
    peak: int = 0
    running_after_exit: int = 0
    raised: Optional[BaseException] = None
    input_error: Optional[BaseException] = None
    stopped_at: Optional[float] = None
    read_after_stop: int = 0
    began: float = 0.0
    ended: float = 0.0
    deadline_soft: Optional[float] = None
    problems: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


def run_stream(scenario: StreamScenario) -> StreamWorld:
    world = StreamWorld(scenario)
    world.items = [{"i": i, "key": key} for i, (key, _) in enumerate(scenario.items)]
    try:
        vtime.run_on(scenario.backend, lambda: _main(world), seed=scenario.seed)
    except BaseException as exc:
        world.problems.append(f"the run raised {type(exc).__name__}: {exc!r:.200}")
    return world


def _items(world: StreamWorld) -> Any:
    scenario = world.scenario

    def note(i: int) -> None:
        if world.stopped_at is not None:
            world.read_after_stop += 1
        world.read.append(anyio.current_time())
        world.ahead = max(world.ahead, len(world.read) - len(world.outcomes))

    def gen() -> Iterator[dict[str, Any]]:
        for i, item in enumerate(world.items):
            if i == scenario.raises_at:
                world.input_error = InputBroke(f"the input broke at {i}")
                raise world.input_error
            note(i)
            yield item

    async def agen() -> AsyncIterator[dict[str, Any]]:
        for item in gen():
            await anyio.lowlevel.checkpoint()
            yield item

    if scenario.input == "async":
        return agen()
    if scenario.input == "generator" or scenario.raises_at is not None:
        return gen()

    class Listed(list):  # a plain list, its reads noted
        def __iter__(self) -> Iterator[dict[str, Any]]:
            return gen()

    return Listed(world.items)


async def _handle(world: StreamWorld, item: dict[str, Any]) -> Any:
    i = item["i"]
    planned = world.scenario.items[i][1]
    number = sum(1 for c in world.calls if c.item == i) + 1
    kind, latency = planned[min(number, len(planned)) - 1]
    call = Call(i, number, kind, anyio.current_time())
    world.calls.append(call)
    world.running += 1
    world.peak = max(world.peak, world.running)
    try:
        if kind == "hang":
            await anyio.sleep(HANG)
        elif latency >= 0:
            await anyio.sleep(latency)
        if kind == "fail":
            raise ValueError(f"item {i} fails")
        if kind == "transient":
            raise Transient(f"item {i} fails for now")
        if kind == "bad_str":
            raise Unprintable()
        call.returned = True
        return i
    except anyio.get_cancelled_exc_class():
        call.cancelled = True
        raise
    finally:
        world.running -= 1
        call.end = anyio.current_time()


async def _main(world: StreamWorld) -> None:
    scenario = world.scenario
    options: dict[str, Any] = {"concurrency": scenario.concurrency, "log_summary": False}
    if scenario.retry is not None:
        attempts, base = scenario.retry
        options["retry"] = asyncbatch.Retry(attempts, base=base, cap=0.5, seed=scenario.seed)
    if scenario.timeout is not None:
        options["timeout"] = scenario.timeout
    if scenario.rate is not None:
        per_second, burst = scenario.rate
        options["rate_limit"] = asyncbatch.RateLimit(per_second, burst=burst,
                                                     clock=anyio.current_time)
    context = None
    world.began = anyio.current_time()
    if scenario.remaining is not None:
        context = LambdaContext(remaining=scenario.remaining)
        soft = min(max(scenario.remaining * 0.10, 0.5), 30.0)
        world.deadline_soft = world.began + scenario.remaining - soft
    processor = asyncbatch.AsyncBatchProcessor(**options)

    async def handle(item: dict[str, Any]) -> Any:
        return await _handle(world, item)

    key = (lambda item: item["key"]) if scenario.keyed else None

    async def consume() -> None:
        flow = processor.stream(_items(world), handle, key, scenario.ordered, context=context,
                                resume_failed_keys=scenario.resume)
        try:
            async with flow as outcomes:
                async for outcome in outcomes:
                    world.outcomes.append(outcome)
                    world.taken_at.append(anyio.current_time())
                    if scenario.pace:
                        await anyio.sleep(scenario.pace)
                    if len(world.outcomes) >= scenario.after:
                        if scenario.consumer == "break":
                            break
                        if scenario.consumer == "stop" and world.stopped_at is None:
                            world.stopped_at = anyio.current_time()
                            outcomes.stop()
        finally:
            world.running_after_exit = world.running

    try:
        if scenario.consumer == "cancel":
            with anyio.move_on_after(scenario.pace * 3 + 0.02):
                await consume()
        else:
            await consume()
    except InputBroke as exc:
        world.raised = exc
    except Exception as exc:
        world.raised = exc
    world.ended = anyio.current_time()


# -- the rules ---------------------------------------------------------------------------------


def check_stream(world: StreamWorld) -> list[str]:
    return list(world.problems) + list(_check(world))


def _check(world: StreamWorld) -> Iterator[str]:
    s = world.scenario
    n_read = len(world.read)
    by_item: dict[int, list[Call]] = defaultdict(list)
    for call in world.calls:
        by_item[call.item].append(call)
    # the input's own error, unchanged; any other error is a bug
    if world.raised is not None and world.raised is not world.input_error:
        yield f"the stream raised {type(world.raised).__name__}: {world.raised!r:.200}"
    if world.input_error is not None and s.consumer == "all" and world.raised is None:
        yield "the input raised, but its error did not come out of the iteration"
    if world.running_after_exit != 0:
        yield f"{world.running_after_exit} handlers still ran when the block was left"
    if world.peak > s.concurrency:
        yield f"{world.peak} handlers ran at once, concurrency={s.concurrency}"
    if world.ahead > 2 * s.concurrency:
        yield f"{world.ahead} items read and not handed back, more than 2 x {s.concurrency}"
    # one outcome per item, each the item given, identified by its position
    seen = [o.index for o in world.outcomes]
    if len(seen) != len(set(seen)):
        yield f"an item came back twice: {sorted(seen)}"
    if any(not 0 <= i < n_read for i in seen):
        yield f"an outcome of an item never read: {sorted(seen)} of {n_read} read"
    complete = s.consumer in ("all", "stop") and world.raised is None
    if complete and sorted(seen) != list(range(n_read)):
        yield f"{n_read} items read, outcomes for {sorted(seen)}"
    for outcome in world.outcomes:
        i = outcome.index
        if 0 <= i < len(world.items) and outcome.record is not world.items[i]:
            yield f"item {i}: outcome.record is not the item given"
        yield from _outcome(world, outcome, by_item.get(i, []))
    if s.ordered and seen != sorted(seen):
        yield f"ordered=True, outcomes came as {seen}"
    if any(call.item >= n_read for call in world.calls):
        yield "a handler ran for an item not read"
    yield from _keys(world, by_item)
    yield from _starts(world)


def _outcome(world: StreamWorld, outcome: Any, calls: list[Call]) -> Iterator[str]:
    s = world.scenario
    i = outcome.index
    attempts = s.retry[0] if s.retry else 1
    if len(calls) > attempts:
        yield f"item {i}: {len(calls)} handler calls, {attempts} allowed"
    if outcome.attempts != len(calls):
        yield f"item {i}: Outcome.attempts {outcome.attempts}, handler called {len(calls)}"
    for before in calls[:-1]:
        if before.kind != "transient" and not (before.cancelled and s.timeout):
            yield f"item {i}: called again after a {before.kind} call"
    if outcome.status == "skipped":
        if calls:
            yield f"item {i}: skipped, but its handler was called"
        return
    if not calls:
        yield f"item {i}: {outcome.status} without a handler call"
        return
    last = calls[-1].kind
    if outcome.status == "succeeded" and last != "ok":
        yield f"item {i}: succeeded, but its last call was {last}"
    if outcome.status == "failed" and calls[-1].returned:
        yield f"item {i}: failed, but its last call returned"
    if outcome.status == "succeeded" and not calls[-1].returned:
        yield f"item {i}: succeeded, but its last call did not return"


def _keys(world: StreamWorld, by_item: dict[int, list[Call]]) -> Iterator[str]:
    s = world.scenario
    if not s.keyed:
        return
    status = {o.index: o.status for o in world.outcomes}
    lanes: dict[Any, list[Call]] = defaultdict(list)
    for call in world.calls:
        lanes[s.items[call.item][0]].append(call)
    for key, calls in lanes.items():
        spans = sorted((c.start, c.end if c.end is not None else math.inf) for c in calls)
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end - EPS:
                yield f"key {key!r}: two handler calls ran at once"
                break
        firsts = [c.item for c in sorted(calls, key=lambda c: c.start) if c.number == 1]
        if firsts != sorted(firsts):
            yield f"key {key!r}: items started out of input order: {firsts}"
        if s.resume:
            continue
        failed = [c.item for c in calls if status.get(c.item) == "failed"]
        if failed:
            later = [c.item for c in calls if c.item > min(failed) and c.number == 1]
            if later:
                yield (f"key {key!r}: items {later} ran after item {min(failed)} of their "
                       "key failed")


def _starts(world: StreamWorld) -> Iterator[str]:
    s = world.scenario
    starts = sorted(c.start for c in world.calls)
    if world.deadline_soft is not None and starts and starts[-1] > world.deadline_soft + EPS:
        yield (f"a handler started at {starts[-1] - world.began:.3f}, after the deadline's "
               f"stop margin at {world.deadline_soft - world.began:.3f}")
    if s.remaining is not None and not s.pace \
            and world.ended > world.began + s.remaining + EPS:
        yield f"the stream ran past Lambda's timeout ({world.ended - world.began:.3f}s)"
    if s.rate is not None:
        per_second, burst = s.rate
        for i in range(len(starts)):
            for j in range(i + burst, len(starts)):
                # j - i + 1 starts within [starts[i], starts[j]]: burst + rate x span at most
                if starts[j] - starts[i] < (j - i + 1 - burst) / per_second - EPS:
                    yield (f"{j - i + 1} starts within {starts[j] - starts[i]:.4f}s, "
                           f"RateLimit({per_second}, burst={burst})")
                    return
    if world.stopped_at is not None:
        late = [c for c in world.calls if c.number == 1 and c.start > world.stopped_at + EPS]
        if late:
            yield f"items {[c.item for c in late]} started after stop()"
        if world.read_after_stop:
            yield f"{world.read_after_stop} items read after stop()"
