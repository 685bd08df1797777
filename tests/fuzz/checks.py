"""The invariants, checked on what a run observed. Each returns violations as text.

Per ``process()`` call: exactly one status per record; the response follows the rule of
its source; the bound holds; no lane (ordering key) runs twice at once and its records
start in order; nothing starts above a checkpoint or after a FIFO stop once the failure
is decided; every status and error is explained by the record's own plan (a record never
pays for another's fault); attempts are counted; the deadline is kept; claims are not left
behind. Per scenario: no task left, no loop error, no unraisable exception or
never-awaited coroutine, every log record formattable, a shared limit's bound across its
processors, no idempotency key run twice at once, an idempotent effect at most once per key.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections import defaultdict
from typing import Any, Hashable, Iterable, Optional

import asyncbatch

from .faults import origins
from .harness import Attempt, CallRun, World
from .scenario import known

__all__ = ["check"]

TRANSIENT_KINDS = ("transient", "bad_transient")
LOG_FORMAT = "a log record of asyncbatch could not be formatted"
CREW_GROWTH = ("asyncio loop error: 'Exception in callback",
               "warning: RuntimeWarning: coroutine")
EPS = 1e-6  # virtual times are sums of floats: ties go to the engine
#: sources whose records are independent (no lanes, no checkpoint)
INDEPENDENT = ("sqs", "firehose")


def check(world: World) -> list[str]:
    """Every violation the run shows (empty: all invariants hold)."""
    cancelled = any(call.cancel for call in world.scenario.calls)
    out = [p for p in world.problems if not (
        (known("log-lines-format-exceptions-lazily") and p.startswith(LOG_FORMAT))
        or (known("caller-cancel-during-crew-growth") and cancelled
            and p.startswith(CREW_GROWTH)))]
    if world.capped:
        out.append("stuck: the run had not ended at the virtual time cap")
    if world.leftover_tasks:
        out.append(f"tasks left after process(): {world.leftover_tasks[:3]}")
    for call in world.calls:
        prefix = f"call {call.id} ({call.spec.source}, spec {call.number})"
        out.extend(f"{prefix}: {text}" for text in _check_call(world, call))
    out.extend(_shared_bound(world))
    if world.simulation is not None:
        out.extend(_simulation(world))
    if world.scenario.idempotency is not None:
        out.extend(_idempotency(world))
    return out


# -- one call ----------------------------------------------------------------------------------


def _check_call(world: World, call: CallRun) -> Iterable[str]:
    n = len(call.infos)
    atts: dict[int, list[Attempt]] = defaultdict(list)
    for attempt in call.attempts:
        atts[attempt.pos].append(attempt)
    for attempt in call.attempts:
        if attempt.end is None or (call.end is not None and attempt.end > call.end):
            yield f"record {attempt.pos}: its handler call outlived process()"
        if attempt.outcome and attempt.outcome.startswith("unexpected"):
            yield f"record {attempt.pos}: handler ended with {attempt.outcome}"
        if attempt.outcome == "cancelled" and not _cancel_explained(call, attempt):
            yield (f"record {attempt.pos} attempt {attempt.number}: its handler was "
                   f"cancelled at t={attempt.end_t} by nobody (no timeout, deadline or "
                   "caller cancellation due)")
    yield from _bound(world, call)
    yield from _lanes(call)
    yield from _deadline(world, call)
    if call.error is not None:
        return  # process() raised: already a violation; what follows would be noise
    if call.cancelled:
        yield from _claims_left(world, call)
        return
    report = call.report
    if report is None:
        yield "process() returned no report"
        return
    outcomes = {o.index: o for o in report}
    buckets = sorted(o.index for b in (report.succeeded, report.failed, report.skipped)
                     for o in b)
    if buckets != list(range(n)) or sorted(outcomes) != list(range(n)):
        yield f"records are not each in exactly one status: {buckets}"
        return
    status = {i: o.status for i, o in outcomes.items()}
    errors = {i: o.exception for i, o in outcomes.items()}
    yield from _response(call, report, status)
    for pos in range(n):
        yield from _record(world, call, outcomes[pos], atts.get(pos, []))
    yield from _source_rule(world, call, status, errors, atts)
    yield from _window(call, report, status)
    yield from _logs(world, call, report)
    yield from _claims_left(world, call)
    if world.scenario.idempotency is None and world.scenario.mode == "concurrent" \
            and len(world.scenario.calls) == 1:
        yield from _reach(call)
    yield from _one_at_a_time(world, call)


def _cancel_explained(call: CallRun, attempt: Attempt) -> bool:
    if call.cancelled or call.error is not None:
        return True
    assert attempt.end_t is not None
    timeout = call.spec.timeout
    if timeout is not None and attempt.end_t - attempt.start_t >= timeout - EPS:
        return True
    return call.hard is not None and attempt.end_t >= call.hard - EPS


def _bound(world: World, call: CallRun) -> Iterable[str]:
    spec = call.spec
    bound = spec.concurrency
    if spec.limit is not None:
        bound = spec.limit.max
    if world.scenario.shared_limit is not None:
        bound = world.scenario.shared_limit.max
    peak = _peak((a.start, a.end if a.end is not None else math.inf) for a in call.attempts)
    if peak > bound:
        yield f"{peak} handlers ran at once, above the bound {bound}"


def _peak(intervals: Iterable[tuple[float, float]]) -> int:
    points = []
    for start, end in intervals:
        points.append((start, 1))
        points.append((end, -1))
    points.sort(key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    return peak


def _lanes(call: CallRun) -> Iterable[str]:
    """Records of one lane run one at a time (threads abandoned by a timeout included),
    first attempts in lane order."""
    if call.spec.source in INDEPENDENT:
        return
    lanes: dict[Hashable, list[Attempt]] = defaultdict(list)
    for attempt in call.attempts:
        lanes[call.infos[attempt.pos].lane].append(attempt)
    abandoned = known("abandoned-thread-overlaps-its-key")
    for lane, attempts in lanes.items():
        if _peak(_ran(a, abandoned) for a in attempts if a.ran is not None) > 1:
            busy = sorted((a for a in attempts if a.ran), key=lambda a: a.ran)  # type: ignore
            yield (f"lane {lane!r}: two handler calls ran at once "
                   f"({[(a.pos, a.number, a.ran) for a in busy][:6]})")
        firsts = [a for a in sorted(attempts, key=lambda a: a.start) if a.number == 1]
        order = [call.infos[a.pos].seq for a in firsts]
        if order != sorted(order):
            yield f"lane {lane!r}: records started out of order: {order}"


def _ran(attempt: Attempt, cut_abandoned: bool) -> tuple[float, float]:
    """When the handler ran; with ``cut_abandoned``, a thread the loop gave up on counts
    only until the loop gave up (a known break waives what it does after)."""
    ran = attempt.ran
    assert ran is not None
    if cut_abandoned and attempt.sync and attempt.outcome == "cancelled" \
            and attempt.end is not None:
        return (ran[0], min(ran[1], attempt.end))
    return ran


def _deadline(world: World, call: CallRun) -> Iterable[str]:
    if call.soft is None:
        return
    assert call.hard is not None and call.end_deadline is not None
    claim_wait = known("claim-wait-starts-after-deadline-stop") \
        and world.scenario.idempotency is not None
    for attempt in call.attempts:
        if attempt.start_t > call.soft + EPS and not claim_wait:
            yield (f"record {attempt.pos} attempt {attempt.number} started at "
                   f"t={attempt.start_t}, at or after the stop time {call.soft}")
        if attempt.end_t is not None and attempt.end_t > call.hard + EPS:
            yield (f"record {attempt.pos} attempt {attempt.number} still ran at "
                   f"t={attempt.end_t}, after the cancel time {call.hard}")
    slow_lookup = any(op.call_id == call.id and op.method == "get_many" and op.fault == "slow"
                      for op in world.store_ops)
    if slow_lookup and known("slow-idempotency-lookup-outlives-deadline"):
        return
    if call.end_t is not None and call.remaining and call.end_t >= call.end_deadline - EPS:
        yield (f"process() returned at t={call.end_t}, not before Lambda's timeout "
               f"at {call.end_deadline}")


def _firehose_answer(call: CallRun, outcome: Any) -> dict[str, Any]:
    """A Firehose record's entry: ``Ok`` with what its handler returned (JSON, base64),
    ``Dropped`` when the sink took its failure, else ``ProcessingFailed`` with its data
    as it arrived (the payload's field: ``kafkaRecordValue`` for an MSK source)."""
    info = call.infos[outcome.index]
    raw = call.original_raws[outcome.index]
    field = "kafkaRecordValue" if "kafkaRecordValue" in raw else "data"
    entry: dict[str, Any] = {"recordId": info.ident}
    if outcome.status == "succeeded" and getattr(outcome, "sunk", False):
        entry.update(result="Dropped", **{field: ""})
    elif outcome.status == "succeeded":
        data = json.dumps(outcome.result, separators=(",", ":")).encode()
        entry.update(result="Ok", **{field: base64.b64encode(data).decode("ascii")})
    else:
        entry.update(result="ProcessingFailed", **{field: raw[field]})
    return entry


def _response(call: CallRun, report: asyncbatch.BatchReport,
              status: dict[int, str]) -> Iterable[str]:
    if call.spec.source == "firehose":
        want_records = [_firehose_answer(call, outcome)
                        for outcome in sorted(report, key=lambda o: o.index)]
        got = report.response()
        if got != {"records": want_records}:
            yield f"Firehose's response {got} != the records' answers {want_records}"
        yield from _partial_entry(call, report, status, got)
        return
    want = [{"itemIdentifier": info.ident} for info in call.infos
            if status[info.position] != "succeeded"]
    response = report.response()
    if response.get("batchItemFailures") != want:
        yield (f"batchItemFailures {response.get('batchItemFailures')} != failed and "
               f"skipped records in event order {want}")
    if ("state" in response) != ("window" in call.event):
        yield "the response's 'state' is there iff the event has a window: it is not so"
    yield from _partial_entry(call, report, status, response)


def _partial_entry(call: CallRun, report: asyncbatch.BatchReport, status: dict[int, str],
                   response: dict[str, Any]) -> Iterable[str]:
    all_failed = bool(status) and "succeeded" not in status.values()
    if call.spec.entry == "partial":
        if all_failed and call.batch_failed is None:
            yield "every record failed but async_process_partial_response did not raise"
        if call.batch_failed is not None and not all_failed:
            yield "async_process_partial_response raised BatchFailedError, not all failed"
        if call.response is not None and call.response != response:
            yield f"the partial response {call.response} != report.response() {response}"
    retries = sum(max(0, o.attempts - 1) for o in report)
    if report.retries != retries:
        yield f"report.retries is {report.retries}, the outcomes' attempts say {retries}"


def _record(world: World, call: CallRun, outcome: Any,
            attempts: list[Attempt]) -> Iterable[str]:
    pos = outcome.index
    spec = call.spec
    rec = spec.records[call.infos[pos].spec]
    last = attempts[-1] if attempts else None
    exc = outcome.exception
    deadline_cut = isinstance(exc, asyncbatch.DeadlineExceededError)
    # a sync call cancelled before a thread took it never ran its handler: not counted
    ran = [a for a in attempts if not a.sync or a.thread_start is not None]
    if outcome.attempts != len(ran) and not (
            deadline_cut and known("attempts-miss-deadline-cancel")):
        yield (f"record {pos}: Outcome.attempts is {outcome.attempts}, its handler was "
               f"called {len(ran)} times")
    limit = spec.retry[0] if spec.retry else 1
    if len(attempts) > limit:
        yield f"record {pos}: {len(attempts)} handler calls, more than the {limit} allowed"
    for before, after in itertools.pairwise(attempts):
        if not _retryable(call, before):
            yield (f"record {pos}: attempt {after.number} followed a failure that is not "
                   f"transient ({before.kind}, {before.outcome})")
    if outcome.status == "skipped":
        if attempts:
            yield f"record {pos}: skipped, but its handler ran {len(attempts)} times"
        return
    sunk = [s for s in world.sink_calls if s.call is call and s.pos == pos]
    if outcome.status == "succeeded":
        if outcome.replayed:
            if attempts:
                yield f"record {pos}: replayed, but its handler ran"
        elif outcome.sunk:
            if not any(s.outcome == "accepted" for s in sunk):
                yield f"record {pos}: counted as sunk, but no sink call accepted it"
        elif last is None or last.outcome != "ok":
            yield (f"record {pos}: succeeded, but its last handler call "
                   f"{'never happened' if last is None else 'ended ' + str(last.outcome)}")
        elif outcome.result != rec_result(call, pos):
            yield f"record {pos}: result {outcome.result!r} is not what its handler returned"
        return
    # failed
    if last is not None and last.outcome == "ok" and not _is_reducer_failure(call, pos, exc):
        yield (f"record {pos}: failed with {_name(exc)} although its last handler call "
               "returned (a result lost)")
    why = _explain_failure(world, call, pos, exc, attempts, sunk)
    if why is not None:
        yield f"record {pos}: failed with {_name(exc)}, which {why} (plan {rec.attempts})"


def rec_result(call: CallRun, pos: int) -> Any:
    return call.infos[pos].spec


def _retryable(call: CallRun, attempt: Attempt) -> bool:
    if attempt.outcome == "raised" and attempt.kind in TRANSIENT_KINDS:
        return True
    return attempt.outcome == "cancelled" and call.spec.timeout is not None


def _is_reducer_failure(call: CallRun, pos: int, exc: Any) -> bool:
    return exc is not None and any(t[0] == "reducer" and t[1] == call.id and t[2] == pos
                                   for t in origins(exc))


def _name(exc: Any) -> str:
    return type(exc).__name__ if exc is not None else "None"


def _explain_failure(world: World, call: CallRun, pos: int, exc: Any,
                     attempts: list[Attempt], sunk: list[Any]) -> Optional[str]:
    """Why the record failed, if its own plan says so; else what is wrong."""
    if exc is None:
        return "is no exception at all"
    mine = [t for t in origins(exc) if t[1] == call.id and t[2] == pos]
    others = [t for t in origins(exc) if t[1] is not None and t not in mine]
    if others:
        return f"came from other records' code {others[:3]}"
    if isinstance(exc, asyncbatch.SinkError):
        if not any(s.outcome in ("raised", "cancelled") for s in sunk):
            return "says the sink refused it, but no sink call for it raised"
        return None
    if isinstance(exc, asyncbatch.CallbackError):
        return None if mine else "names no callback of its own that raised"
    if isinstance(exc, asyncbatch.DeadlineExceededError):
        return None if call.hard is not None else "is a deadline error without a deadline"
    if isinstance(exc, asyncbatch.RecordTimeoutError):
        ok = call.spec.timeout is not None and attempts and attempts[-1].outcome == "cancelled"
        return None if ok else "is a timeout, but its last call was not timed out"
    if isinstance(exc, asyncbatch.HandlerCancelledError):
        own = attempts and attempts[-1].kind in ("raise_cancel", "cancel_self") \
            and attempts[-1].outcome == "raised"
        return None if own else "says its handler cancelled itself, which its plan did not"
    if world.scenario.idempotency is not None and isinstance(exc, asyncbatch.IdempotencyError):
        if isinstance(exc, asyncbatch.IdempotencyKeyError):
            keyed = any(t[0] == "key_fn" for t in origins(exc))
            return None if keyed else "is a key error, but the key function did not raise"
        if isinstance(exc, asyncbatch.IdempotencyStoreError):
            faulted = any(op.method == "claim" and op.fault != "ok"
                          and op.call_id == call.id for op in world.store_ops)
            return None if faulted else "is a store error, but no claim of the call faulted"
        return None  # in progress elsewhere: a claim of another invocation, or seeded
    if mine and attempts and attempts[-1].outcome == "raised":
        return None
    if mine:
        return None
    return "no fault of its own explains"


def _source_rule(world: World, call: CallRun, status: dict[int, str], errors: dict[int, Any],
                 atts: dict[int, list[Attempt]]) -> Iterable[str]:
    source = call.spec.source
    infos = call.infos
    deadline_reached = call.soft is not None and call.end_t is not None \
        and call.end_t >= call.soft - EPS
    failed = [i.position for i in infos if status[i.position] == "failed"]
    decided = {pos: _decided(call, pos, errors[pos], atts) for pos in failed}
    firsts = {pos: a[0].start for pos, a in atts.items() if a}
    if source in INDEPENDENT:
        skipped = [p for p, s in status.items() if s == "skipped"]
        if skipped and not deadline_reached:
            yield f"{source} reported skipped records {skipped} (only failures are)"
        return
    # lanes: once a record is not succeeded, the rest of its lane is skipped
    lanes: dict[Hashable, list[Any]] = defaultdict(list)
    for info in sorted(infos, key=lambda i: (i.seq, i.position)):
        lanes[info.lane].append(info)
    for lane, members in lanes.items():
        stopped = None
        for info in members:
            pos = info.position
            if _is_reducer_failure(call, pos, errors[pos]):
                continue  # failed by the window fold, after the run
            if stopped is not None and status[pos] != "skipped":
                yield (f"lane {lane!r}: record {pos} is {status[pos]} "
                       f"after record {stopped} of its lane did not succeed")
            if stopped is None and status[pos] != "succeeded":
                stopped = pos
    if source == "fifo" and call.spec.fifo_stop:
        known_decisions = [d for d in decided.values() if d is not None]
        if known_decisions and not _waived_stop(world, call):
            first = min(known_decisions)
            late = [p for p, s in firsts.items() if s > first]
            if late:
                yield (f"FIFO stop: records {late} started after the first failure was "
                       f"decided (seq {first})")
        if not failed and not deadline_reached:
            skipped = [p for p, s in status.items() if s == "skipped"]
            if skipped:
                yield f"FIFO stop: records {skipped} skipped, though nothing failed"
        return
    if source == "fifo":
        for info in infos:
            if status[info.position] == "skipped" and not deadline_reached and not any(
                    infos[f].lane == info.lane and infos[f].seq < info.seq for f in failed):
                yield f"FIFO: record {info.position} skipped, no earlier failure in its group"
        return
    # streams and Kafka: the checkpoint rule, per checkpoint group
    groups: dict[Hashable, list[Any]] = defaultdict(list)
    for info in infos:
        groups[info.group].append(info)
    for group, members in groups.items():
        reported = [i.seq for i in members if status[i.position] != "succeeded"]
        if not reported:
            continue
        lowest = min(reported)
        below = [i.position for i in members if i.seq < lowest
                 and status[i.position] != "succeeded"]
        if below:
            yield f"group {group!r}: records {below} below the checkpoint did not succeed"
        for info in members:
            pos = info.position
            if status[pos] == "skipped" and not deadline_reached and not any(
                    infos[f].group == group and infos[f].seq < info.seq for f in failed):
                yield f"group {group!r}: record {pos} skipped, no lower failure in its group"
        if _waived_stop(world, call):
            continue
        for fail in failed:
            if infos[fail].group != group or decided.get(fail) is None:
                continue
            late = [i.position for i in members if i.seq > infos[fail].seq
                    and firsts.get(i.position, -1) > decided[fail]]  # type: ignore[operator]
            if late:
                yield (f"group {group!r}: records {late} above failed record {fail} "
                       f"started after its failure was decided")


def _waived_stop(world: World, call: CallRun) -> bool:
    """Known break: the stop rules do not hold through the engine's own awaits."""
    spec = call.spec
    return known("stop-rules-through-awaits") and (
        spec.limit is not None or world.scenario.shared_limit is not None or spec.sink
        or world.scenario.idempotency is not None)


def _decided(call: CallRun, pos: int, exc: Any,
             atts: dict[int, list[Attempt]]) -> Optional[int]:
    """When the record's failure was decided: its last handler call's end (a failure
    sink may still take it; if the sink refuses, the failure stands from there)."""
    attempts = atts.get(pos)
    if not attempts:
        return None
    if isinstance(exc, asyncbatch.DeadlineExceededError) or _is_reducer_failure(call, pos, exc):
        return None
    retry = call.spec.retry
    if retry is not None and len(attempts) < retry[0] and _retryable(call, attempts[-1]):
        # A retry was due: the record waited out its backoff, then a stop or the deadline
        # kept the next call from being made. Its failure was decided then (not seen here).
        return None
    return attempts[-1].end


def _window(call: CallRun, report: asyncbatch.BatchReport,
            status: dict[int, str]) -> Iterable[str]:
    if "window" not in call.event:
        return
    reported = [i.seq for i in call.infos if status[i.position] != "succeeded"]
    lowest = min(reported) if reported else math.inf
    want = sorted(i.seq for i in call.infos if i.seq < lowest)
    state = report.state
    if state != {"n": len(want), "seqs": want}:
        yield f"window state {state} != the fold of the records below the checkpoint {want}"


def _logs(world: World, call: CallRun, report: asyncbatch.BatchReport) -> Iterable[str]:
    spec = call.spec
    if not spec.log_summary or not spec.log_failures:
        return
    logged = [extra.get("identifier") for _, _, extra in world.logs if extra]
    for outcome in report.failed[: spec.log_failures]:
        if outcome.identifier not in logged:
            yield f"failed record {outcome.index} ({outcome.identifier}) was not logged"


def _claims_left(world: World, call: CallRun) -> Iterable[str]:
    """A claim this call made is completed or released when it ends; one left IN
    PROGRESS must be excused by a store fault, or (a record cut by the deadline, or a
    cancelled caller) expire with the invocation, never be left for ``expires_after``."""
    if world.scenario.idempotency is None:
        return
    faulted = {key for op in world.store_ops if op.call_id == call.id and op.fault != "ok"
               and op.fault != "slow" for key in op.keys}
    # a claim is kept while the thread of a sync call abandoned at its timeout (or the
    # deadline) runs on: no other call for its key may start meanwhile
    running = {world.idem_key(call, a.pos) for a in call.attempts
               if a.sync and a.thread_start is not None and call.end is not None
               and (a.thread_end is None or a.thread_end > call.end)}
    for op in world.store_ops:
        if op.call_id != call.id or op.method != "claim" or not op.written:
            continue
        left = call.store_after.get(op.item.key)
        if left is not op.item or op.item.key in faulted:
            continue  # completed, released, replaced, or excused by a store fault
        if world.store_key_names.get(op.item.key) in running:
            continue  # kept for a thread still running
        cut = call.cancelled or (call.hard is not None and call.end_t is not None
                                 and call.end_t >= call.hard - EPS)
        expires = left.in_progress_expiration is not None
        if (cut and expires) or (call.cancelled and known("cancelled-caller-leaves-claims")):
            continue
        yield (f"the claim on {op.item.key} was left IN PROGRESS"
               f"{' (caller cancelled)' if call.cancelled else ''}, expiring "
               f"{'with the invocation' if expires else 'only after expires_after'}")


def _reach(call: CallRun) -> Iterable[str]:
    """At start, the bound is reached when that many independent records are ready
    (when nothing can end at once, so that the count is exact)."""
    spec = call.spec
    world_ok = (spec.limit is None and not spec.sync and spec.remaining is None
                and spec.cancel is None and not spec.hooks and call.attempts)
    firsts = [call.spec.records[i.spec].attempts[0] for i in call.infos]
    # a record whose first call ends at once (no latency, or a cancel left on the worker,
    # which returns at once) frees its place before the count is taken
    if not world_ok or any(latency <= 0 or kind == "leak_cancel" for kind, latency in firsts):
        return
    ready = len(call.infos) if spec.source in INDEPENDENT \
        else len({i.lane for i in call.infos})
    at_start = len({a.pos for a in call.attempts if a.start_t <= call.start_t + EPS})
    want = min(spec.concurrency, ready)
    if at_start != want:
        yield f"{at_start} records started at once at the start, not min(bound, ready)={want}"


def _one_at_a_time(world: World, call: CallRun) -> Iterable[str]:
    """At ``concurrency=1`` processing is exactly event order (sequence order for
    Kinesis and DynamoDB): records start in increasing rank."""
    spec = call.spec
    if spec.concurrency != 1 or spec.limit is not None or world.scenario.shared_limit:
        return
    by_seq = spec.source in ("kinesis", "dynamodb")
    ranks = [call.infos[a.pos].seq if by_seq else a.pos
             for a in sorted(call.attempts, key=lambda a: a.start) if a.number == 1]
    if ranks != sorted(ranks):
        yield f"at concurrency 1, records started out of order: {ranks}"


# -- across calls ----------------------------------------------------------------------------


def _shared_bound(world: World) -> Iterable[str]:
    spec = world.scenario.shared_limit
    if spec is None:
        return
    peak = _peak((a.start, a.end if a.end is not None else math.inf) for a in world.attempts)
    if peak > spec.max:
        yield f"{peak} handlers ran at once across processors sharing a limit of max {spec.max}"


def _simulation(world: World) -> Iterable[str]:
    """Under redelivery every record ends acknowledged or dead-lettered, not both."""
    sim = world.simulation
    done = set(sim.acknowledged)
    dead = set(sim.dead_lettered)
    everyone = set(sim.deliveries)
    if done & dead:
        yield f"simulate: records both acknowledged and dead-lettered: {sorted(done & dead)[:5]}"
    if done | dead != everyone:
        yield f"simulate: records neither acknowledged nor dead-lettered: " \
              f"{sorted(everyone - done - dead, key=repr)[:5]}"


def _idempotency(world: World) -> Iterable[str]:
    by_key: dict[Hashable, list[Attempt]] = defaultdict(list)
    for attempt in world.attempts:
        by_key[world.idem_key(attempt.call, attempt.pos)].append(attempt)
    abandoned = known("sync-timeout-releases-claim")
    for key, attempts in by_key.items():
        if _peak(_ran(a, abandoned) for a in attempts if a.ran is not None) > 1:
            runs = sorted(((a.call.id, a.pos, a.ran) for a in attempts if a.ran),
                          key=lambda r: r[2])
            yield f"idempotency key {key}: two handler calls ran at once {runs[:6]}"
    effects: dict[Hashable, int] = defaultdict(int)
    for call in world.calls:
        report = call.report
        if report is None or call.cancelled:
            continue
        for outcome in report.succeeded:
            if outcome.replayed or outcome.sunk:
                continue
            effects[world.idem_key(call, outcome.index)] += 1
    names = world.store_key_names
    excused = {names.get(key) for op in world.store_ops if op.method in ("complete", "claim")
               and op.fault in ("raise_before", "raise_after") for key in op.keys}
    seeded = {names.get(key) for key, kind in world.preseeded.items() if kind == "completed"}
    for key, count in effects.items():
        if key in excused:
            continue
        if count + (key in seeded) > 1:
            yield (f"idempotency key {key}: its effect happened {count} times"
                   f"{' though it was seeded as completed' if key in seeded else ''}")
