"""One scenario per seed: what runs (sources, records, options, faults), nothing of how.

``generate(seed)`` is a pure function of ``seed`` (a ``random.Random(seed)`` drawn in a
fixed order), so ``FUZZ_SEED=<seed>`` rebuilds exactly the scenario that failed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["KNOWN_BREAKS", "CallSpec", "LimitSpec", "RecordSpec", "Scenario", "StoreSpec",
           "generate", "known"]

# -- breaks of today's engine the CI run steps around ----------------------------------------
#
# Each entry: what breaks and how the fuzzer steps around it (the generator does not produce
# what triggers it, or the check it breaks is waived), and the test in test_regressions.py
# that pins it (xfail, strict). When the engine is fixed, delete the entry and the test's
# xfail mark: the fuzzer then covers that ground again.
KNOWN_BREAKS: dict[str, tuple[str, str]] = {}


def known(name: str) -> bool:
    """Whether the break ``name`` is still stepped around (see ``KNOWN_BREAKS``)."""
    return name in KNOWN_BREAKS


SOURCES = ("sqs", "fifo", "kinesis", "dynamodb", "kafka", "firehose")
#: Firehose's transformation: where its records come from (the payload's field differs)
FIREHOSE_ORIGINS = ("direct_put", "kinesis", "msk")
#: the sources an EventBridge pipe can hand a Lambda target (``CallSpec.pipes``)
PIPE_SOURCES = ("sqs", "fifo", "kinesis", "dynamodb")

#: handler latencies (seconds, virtual): -1 returns without awaiting, 0 only yields
LATENCIES = (-1.0, 0.0, 0.001, 0.01, 0.04, 0.2, 0.9, 2.0)
#: per-record timeouts, none equal to a latency (a tie would test the clock, not us)
TIMEOUTS = (0.03, 0.15, 0.5, 2.5)
#: "hangs": far past any timeout or deadline, and past the run's virtual cap
HANG = 1e9
#: a run that has not ended by this virtual time is stuck
VIRTUAL_CAP = 1e6

#: what one handler attempt does
FAULTS = ("ok", "fail", "transient", "raise_cancel", "cancel_self", "leak_cancel", "hang",
          "bad_str", "bad_repr", "bad_both", "bad_transient")
RECORD_HOOKS = ("record_started", "record_succeeded", "record_failed", "record_retried")
BATCH_HOOKS = ("batch_started", "batch_finished", "record_skipped")


@dataclass
class RecordSpec:
    """One record: its keys and what its code does. ``attempts[k]`` is what the handler's
    (k+1)-th call does (the last one repeats), counted across redeliveries."""

    key: Optional[str]  # FIFO group, partition key, item key, Kafka key (None: no key)
    partition: int = 0  # Kafka
    attempts: list[tuple[str, float]] = field(default_factory=list)
    hooks: tuple[str, ...] = ()  # per-record hooks that raise for it
    bad_callbacks: bool = False  # the hook/sink/predicate exceptions' __repr__ raise
    sink: str = "accept"  # accept, raise, stall_accept, stall_raise, bad_raise, hang
    sink_latency: float = 0.0
    sink_when_raises: bool = False
    retry_on_raises: bool = False
    reducer_raises: bool = False
    key_fn_raises: bool = False
    idem_key: Optional[str] = None  # shared idempotency key (None: the identifier)


@dataclass
class LimitSpec:
    kind: str  # aimd, gradient, windowed
    initial: int
    max: int
    backoff: float = 0.9
    min_samples: int = 3


@dataclass
class StoreSpec:
    fault_rate: float  # each store call faults with this probability
    get_many_faults: tuple[str, ...]  # which faults get_many may show
    completed: tuple[int, ...]  # record indices (of call 0) whose key completed before
    in_progress: tuple[int, ...]  # ... whose key another invocation holds (live claim)
    expired: tuple[int, ...]  # ... whose key has a claim that expired
    local_cache: int = 1024
    retry_attempts: int = 2
    share_object: bool = True  # one Idempotency object for every call


@dataclass
class CallSpec:
    source: str
    records: list[RecordSpec]
    concurrency: int = 8
    limit: Optional[LimitSpec] = None  # an adaptive limit of this call's own
    fifo_stop: bool = False
    ordering: Optional[str] = None
    shuffle: bool = False  # streams: event order is not sequence order
    small_sequences: bool = False  # streams: sequence numbers of mixed lengths
    kafka_topics: int = 1
    retry: Optional[tuple[int, float, float]] = None  # attempts, base, cap
    retry_predicate: bool = False
    timeout: Optional[float] = None
    sink: bool = False
    sink_when: str = "default"  # default, all, raising
    hooks: bool = False
    batch_hooks_raise: tuple[str, ...] = ()
    window: bool = False
    remaining: Optional[float] = None  # a Lambda context with this much time left
    margins: Any = "auto"  # "auto" or (deadline_margin, cancel_margin)
    cancel: Optional[tuple[str, float]] = None  # ("turns", k) or ("time", t)
    entry: str = "process"  # process, partial (async_process_partial_response)
    sync: bool = False
    timings: bool = False
    log_summary: bool = True
    log_failures: int = 10
    duplicate_of: Optional[int] = None  # the same event as that call (a duplicate delivery)
    mutate: bool = False  # handlers edit their record's identifier (and payload)
    fair: bool = False  # SQS standard: messages carry a MessageGroupId (a fair queue)
    pipes: bool = False  # the records as EventBridge Pipes hands them: a top-level list
    origin: str = "direct_put"  # Firehose: where the delivery stream's records come from


@dataclass
class Scenario:
    seed: int
    backend: str
    calls: list[CallSpec]
    mode: str = "concurrent"  # concurrent, simulate
    shared_limit: Optional[LimitSpec] = None
    idempotency: Optional[StoreSpec] = None
    max_attempts: int = 3  # simulate: deliveries before a record is dead-lettered
    debug_log: bool = False
    theme: str = "plain"

    @property
    def threads(self) -> bool:
        return any(call.sync for call in self.calls)

    def summary(self) -> str:
        """The scenario in a few lines (the record plans only where they are not trivial)."""
        lines = [f"seed={self.seed} backend={self.backend} mode={self.mode} theme={self.theme}"
                 f" shared_limit={self.shared_limit} debug_log={self.debug_log}"]
        if self.idempotency is not None:
            lines.append(f"idempotency={self.idempotency}")
        if self.mode == "simulate":
            lines.append(f"max_attempts={self.max_attempts}")
        for number, call in enumerate(self.calls):
            opts = {k: v for k, v in vars(call).items() if k != "records"}
            lines.append(f"call {number}: {len(call.records)} records {opts}")
            for index, rec in enumerate(call.records):
                extra = {k: v for k, v in vars(rec).items()
                         if v and k not in ("key", "partition", "attempts")
                         and not (k == "sink" and v == "accept")}
                lines.append(f"  [{index}] key={rec.key!r} p={rec.partition} "
                             f"attempts={rec.attempts} {extra if extra else ''}")
        return "\n".join(lines)


# -- the generator -----------------------------------------------------------------------------

#: how often each feature is on (a theme raises some, to reach rare combinations)
ODDS: dict[str, float] = {
    "limit": 0.2, "retry": 0.4, "timeout": 0.3, "sink": 0.3, "hooks": 0.3,
    "deadline": 0.25, "cancel": 0.08, "sync": 0.12, "idempotency": 0.25,
    "simulate": 0.08, "shared_keys": 0.4, "hang": 4, "fifo_stop": 0.5, "gate_of_one": 0.3,
    "stall": 15, "store_faults": 0.6,
}
#: a fifth of the seeds lean on one area
THEMES: dict[str, dict[str, float]] = {
    "plain": {},
    "threads": {"sync": 1.0, "idempotency": 0.7, "timeout": 0.9, "hang": 30,
                "shared_keys": 0.7, "simulate": 0.3, "retry": 0.5},
    "stops": {"limit": 0.6, "gate_of_one": 0.8, "sink": 0.6, "stall": 40, "fifo_stop": 0.7,
              "idempotency": 0.5, "retry": 0.3},
    "cancel": {"cancel": 0.9, "idempotency": 0.7, "deadline": 0.1},
    "deadline": {"deadline": 0.9, "retry": 0.7, "hang": 15, "idempotency": 0.4,
                 "store_faults": 0.9},
}


def _weighted(rng: random.Random, table: dict[Any, float]) -> Any:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _concurrency(rng: random.Random) -> int:
    band = _weighted(rng, {"one": 20, "few": 30, "some": 25, "many": 10, "huge": 15})
    if band == "one":
        return 1
    if band == "few":
        return rng.randint(2, 4)
    if band == "some":
        return rng.randint(5, 16)
    if band == "many":
        return rng.randint(17, 100)
    return int(10 ** rng.uniform(2, 4))  # 100 .. 10,000


def _limit(rng: random.Random, odds: dict[str, float]) -> LimitSpec:
    kind = rng.choice(("aimd", "gradient", "windowed"))
    top = rng.choice((1, 2, 3, 4, 8, 16))
    initial = 1 if rng.random() < odds["gate_of_one"] else rng.randint(1, min(top, 4))
    return LimitSpec(kind, initial, top, rng.choice((0.5, 0.9)), rng.randint(1, 6))


def _fault(rng: random.Random, backend: str, sync: bool, may_hang: bool,
           avoid: set[str], odds: dict[str, float]) -> tuple[str, float]:
    table = {"ok": 55, "fail": 12, "transient": 12, "raise_cancel": 3, "cancel_self": 3,
             "leak_cancel": 3, "hang": odds["hang"], "bad_str": 2, "bad_repr": 2,
             "bad_both": 2, "bad_transient": 2}
    if sync:  # a thread: no latency, no task to cancel
        for kind in ("cancel_self", "leak_cancel"):
            table.pop(kind)
        if backend == "trio":
            table.pop("raise_cancel")
    if backend == "trio":
        table.pop("leak_cancel", None)  # trio has no task.cancel()
    if not may_hang:
        table.pop("hang")
    for kind in avoid:
        table.pop(kind, None)
    kind = _weighted(rng, table)
    latency = -1.0 if sync else rng.choice(LATENCIES)
    return kind, latency


def _records(rng: random.Random, call: CallSpec, backend: str, n: int, may_hang: bool,
             idem: bool, avoid: set[str], odds: dict[str, float]) -> list[RecordSpec]:
    # a timeout bounds a hanging handler, not a hanging sink
    sink_may_hang = call.remaining is not None or call.cancel is not None
    avoid = set(avoid)
    if known("failure-log-str-raises") and call.log_summary and call.log_failures:
        avoid |= {"bad_str", "bad_both", "bad_transient"}
    if known("callback-error-repr-raises"):
        avoid.add("bad_callbacks")
    if known("leaked-cancel-costs-other-records"):
        avoid.add("leak_cancel")
    alphabet = "abcdefgh"[: rng.choice((1, 2, 3, 5, 8))]
    partitions = rng.randint(1, 3)
    shared_keys = idem and rng.random() < odds["shared_keys"]
    out = []
    for _ in range(n):
        key: Optional[str] = rng.choice(alphabet)
        if call.source == "kafka" and rng.random() < 0.2:
            key = None
        rec = RecordSpec(key=key, partition=rng.randrange(partitions))
        tries = rng.choice((1, 1, 2, 3))
        rec.attempts = [_fault(rng, backend, call.sync, may_hang, avoid, odds)
                        for _ in range(tries)]
        if call.hooks and rng.random() < 0.3:
            rec.hooks = tuple(h for h in RECORD_HOOKS if rng.random() < 0.35)
        rec.bad_callbacks = "bad_callbacks" not in avoid and rng.random() < 0.15
        if call.sink:
            rec.sink = _weighted(rng, {"accept": 40, "raise": 25, "stall_accept": odds["stall"],
                                       "stall_raise": odds["stall"],
                                       "bad_raise": 0 if "bad_callbacks" in avoid else 5,
                                       "hang": 5 if sink_may_hang else 0})
            rec.sink_latency = rng.choice(LATENCIES[1:])
        rec.sink_when_raises = call.sink_when == "raising" and rng.random() < 0.3
        rec.retry_on_raises = call.retry_predicate and rng.random() < 0.2
        rec.reducer_raises = call.window and rng.random() < 0.1
        if idem:
            rec.key_fn_raises = rng.random() < 0.05
            if shared_keys:
                rec.idem_key = f"k{rng.randrange(max(1, n // 3))}"
        out.append(rec)
    return out


def _call(rng: random.Random, backend: str, sync: bool, idem: bool, big: bool,
          avoid: set[str], odds: dict[str, float], sources: tuple[str, ...]) -> CallSpec:
    source = rng.choice(sources)
    call = CallSpec(source=source, records=[], sync=sync)
    call.concurrency = _concurrency(rng)
    if rng.random() < odds["limit"]:
        call.limit = _limit(rng, odds)
    if source == "fifo":
        call.fifo_stop = rng.random() < odds["fifo_stop"]
    if source in ("kinesis", "dynamodb"):
        call.ordering = rng.choice((None, None, "key", "partition"))
        call.shuffle = rng.random() < 0.2
        call.small_sequences = rng.random() < 0.2
        call.window = rng.random() < 0.3
    if source == "kafka":
        call.ordering = rng.choice((None, None, "partition", "key"))
        call.kafka_topics = rng.choice((1, 1, 2))
    if rng.random() < odds["retry"]:
        call.retry = (rng.randint(2, 4), rng.choice((0.001, 0.01, 0.1)), 0.5)
        call.retry_predicate = rng.random() < 0.3
    if rng.random() < odds["timeout"]:
        call.timeout = rng.choice(TIMEOUTS)
    if rng.random() < odds["sink"]:
        call.sink = True
        call.sink_when = _weighted(rng, {"default": 50, "all": 30, "raising": 20})
    if rng.random() < odds["hooks"]:
        call.hooks = True
        call.batch_hooks_raise = tuple(h for h in BATCH_HOOKS if rng.random() < 0.2)
    if rng.random() < odds["deadline"]:
        call.remaining = rng.choice((0.0, 0.05, 0.3, 0.7, 1.3, 2.9, 6.0))
        if rng.random() < 0.5:
            soft = rng.choice((0.06, 0.1, 0.4))
            call.margins = (soft, rng.choice((0.05, soft)))
    if rng.random() < odds["cancel"]:
        call.cancel = (("turns", float(rng.randint(0, 6))) if rng.random() < 0.5
                       else ("time", rng.choice((0.005, 0.03, 0.2, 1.1))))
    call.entry = "partial" if rng.random() < 0.2 else "process"
    call.timings = rng.random() < 0.2
    call.mutate = rng.random() < 0.1
    call.fair = source == "sqs" and rng.random() < 0.3
    if source == "firehose":
        call.origin = rng.choice(FIREHOSE_ORIGINS)
    call.log_summary = rng.random() < 0.8
    call.log_failures = rng.choice((0, 1, 3, 10))
    bounded = call.timeout is not None or (call.remaining is not None) \
        or (call.cancel is not None)
    if big:
        n = rng.randint(200, 3000)
        call.concurrency = rng.randint(100, 10_000)
    else:
        n = _weighted(rng, {0: 3, 1: 12, 2: 23, 3: 40, 4: 22})
        n = {0: 0, 1: 1, 2: rng.randint(2, 8), 3: rng.randint(9, 30),
             4: rng.randint(31, 60)}[n]
    call.records = _records(rng, call, backend, n, bounded, idem, avoid, odds)
    # a pipe hands SQS, Kinesis and DynamoDB records on as a list (no tumbling window)
    call.pipes = source in PIPE_SOURCES and not call.window and rng.random() < 0.15
    if not n and known("empty-batch-with-ordering"):
        call.ordering = None
    return call


def generate(seed: int) -> Scenario:
    """The scenario of ``seed``."""
    rng = random.Random(seed)
    backend = _weighted(rng, {"trio": 50, "asyncio": 25, "anyio": 25})
    theme = _weighted(rng, {"plain": 80, "threads": 5, "stops": 5, "cancel": 5,
                            "deadline": 5})
    odds = {**ODDS, **THEMES[theme]}
    sources = SOURCES if theme != "stops" else ("fifo", "kinesis", "dynamodb", "kafka")
    avoid: set[str] = set()
    big = theme == "plain" and rng.random() < 0.015
    sync = not big and rng.random() < odds["sync"]
    idem = rng.random() < odds["idempotency"]
    mode = "simulate" if rng.random() < odds["simulate"] else "concurrent"
    if idem or mode == "simulate":
        # idempotency is refused for Firehose (a transformation's output is its result,
        # not a side effect to skip); Firehose retries whole invocations, not records
        sources = tuple(source for source in sources if source != "firehose")
    ncalls = 1 if mode == "simulate" or big else _weighted(rng, {1: 88, 2: 8, 3: 4})
    scenario = Scenario(seed=seed, backend=backend, calls=[], mode=mode, theme=theme)
    scenario.debug_log = rng.random() < 0.2
    for number in range(ncalls):
        call = _call(rng, backend, sync, idem, big, avoid, odds, sources)
        if mode == "simulate":
            call.cancel = None  # simulate redelivers; the caller is simulate itself
            call.entry = "process"
            call.pipes = False  # simulate plays Lambda's event source mappings
        if number and rng.random() < 0.3:
            call = _duplicate(rng, scenario.calls[0], backend, sync, idem, avoid, odds,
                              sources)
            call.duplicate_of = 0
        scenario.calls.append(call)
    if ncalls > 1 and rng.random() < 0.6:
        scenario.shared_limit = _limit(rng, odds)
    if idem:
        scenario.idempotency = _store(rng, len(scenario.calls[0].records), odds)
    scenario.max_attempts = rng.randint(1, 4)
    return scenario


def _duplicate(rng: random.Random, first: CallSpec, backend: str, sync: bool, idem: bool,
               avoid: set[str], odds: dict[str, float], sources: tuple[str, ...]) -> CallSpec:
    """Another invocation with the same event (Lambda may deliver a batch twice); its own
    options, the same record plans."""
    call = _call(rng, backend, sync, idem, False, avoid, odds, sources)
    for name in ("source", "records", "fifo_stop", "ordering", "shuffle", "small_sequences",
                 "kafka_topics", "window", "log_summary", "log_failures", "fair", "pipes", "origin",
                 # what bounds a hang: the same plans need the same bounds
                 "timeout", "remaining", "margins", "cancel"):
        setattr(call, name, getattr(first, name))
    return call


def _store(rng: random.Random, n: int, odds: dict[str, float]) -> StoreSpec:
    rate = rng.choice((0.05, 0.2, 0.5)) if rng.random() < odds["store_faults"] else 0.0
    faults = ["raise", "slow", "partial"]
    if not known("get-many-garbage-fails-batch"):
        faults += ["none", "string"]
    picks = list(range(n))
    rng.shuffle(picks)
    cut = [rng.randint(0, n // 4) if n else 0 for _ in range(3)]
    completed = tuple(sorted(picks[: cut[0]]))
    in_progress = tuple(sorted(picks[cut[0]: cut[0] + cut[1]]))
    expired = tuple(sorted(picks[cut[0] + cut[1]: cut[0] + cut[1] + cut[2]]))
    return StoreSpec(fault_rate=rate, get_many_faults=tuple(faults), completed=completed,
                     in_progress=in_progress, expired=expired,
                     local_cache=rng.choice((0, 1024)), retry_attempts=rng.randint(1, 3),
                     share_object=rng.random() < 0.5)
