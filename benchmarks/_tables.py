"""The report in markdown: one section per measurement, its tables and notes."""

from __future__ import annotations

import json
from typing import Any, Optional

from ._suite import (
    COLDSTART_CONTENDERS,
    IMPORT_TARGETS,
    KAFKA_CONTENDERS,
    KINESIS_CONTENDERS,
    NO_PYC,
    SQS_CONTENDERS,
    median,
)
from ._summary import CLOCKS, MB, NAMES, SHORT, _net_import, _oh, _ratio
from ._targets import NOISE, _r, compare_previous

# -- markdown ------------------------------------------------------------------------


def _cell(x: Optional[dict[str, float]], digits: int = 2, unit: str = "") -> str:
    if not x:
        return "-"
    m, lo, hi = x["median"], x["min"], x["max"]
    if x.get("n", 1) > 1:
        return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"
    return f"{m:.{digits}f}{unit}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _overhead_table(s: dict[str, Any], source: str, sizes: list[int],
                    contenders: tuple[str, ...], metric: str) -> list[str]:
    unit = "CPU" if metric == "cpu" else "wall"
    if source == "kafka":
        header = [f"records ({unit})"] + [f"{SHORT[c]} µs/rec" for c in contenders] + [
            "asyncbatch / bare partition pool", "ordering=key / bare keyed pool",
            "powertools async / asyncbatch"]
        rows = []
        for n in sizes:
            def k(c: str, n: int = n) -> Optional[dict[str, float]]:
                return _oh(s, source, n, "asyncio", c, metric)
            rows.append([f"{n:,}"] + [_cell(k(c)) for c in contenders] + [
                _r(_ratio(k("asyncbatch"), k("floor_partition"))),
                _r(_ratio(k("asyncbatch_key"), k("floor_keyed"))),
                _r(_ratio(k("powertools_async"), k("asyncbatch")), 1)])
        return _table(header, rows)
    header = ["records"] + [f"{SHORT[c]} µs/rec" for c in contenders] + [
        "asyncbatch / bare pool", "powertools async / asyncbatch",
        "powertools sync / asyncbatch",
        "aiometer / asyncbatch" if source == "sqs" else "asyncbatch / bare keyed pool",
        "asyncbatch + context / bare pool" if source == "sqs"
        else "asyncbatch + context / bare keyed pool"]
    header[0] = f"records ({unit})"
    rows = []
    for n in sizes:
        def v(c: str, n: int = n) -> Optional[dict[str, float]]:
            return _oh(s, source, n, "asyncio", c, metric)
        ab = v("asyncbatch")
        row = [f"{n:,}"] + [_cell(v(c)) for c in contenders]
        row += [_r(_ratio(ab, v("floor"))), _r(_ratio(v("powertools_async"), ab), 1),
                _r(_ratio(v("powertools_sync"), ab), 1)]
        row.append(_r(_ratio(v("aiometer"), ab), 1) if source == "sqs"
                   else _r(_ratio(ab, v("floor_keyed"))))
        row.append(_r(_ratio(v("asyncbatch_ctx"), v("floor" if source == "sqs"
                                                       else "floor_keyed"))))
        rows.append(row)
    return _table(header, rows)


def _md_overhead(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    lines = ["## Overhead per record", "",
             f"No-op handler (`async def handle(record): pass`; `def` for powertools' sync "
             f"`BatchProcessor`), concurrency {data['settings']['concurrency']}, asyncio "
             "event loop. Timed: the whole call that turns the event into the partial "
             "response - asyncbatch `await processor.process(event, handle)` plus "
             "`report.response()`; powertools `async_process_partial_response` / "
             "`process_partial_response` (with `LAMBDA_TASK_ROOT` set, as in Lambda, so that "
             "it reuses the thread's loop instead of `asyncio.run`); the bare pool is 100 "
             "asyncio tasks pulling raw record dicts from one iterator and awaiting the "
             "handler, nothing else. Each interpreter warms its contender up on a 200-record "
             "event first.", "",
             "Two clocks: **CPU** (`time.process_time()` of the contender's process: what "
             "the work costs, little disturbed by neighbours taking the CPU away) and "
             "**wall** (`time.perf_counter()`: what Lambda bills, but it also counts time "
             "the process sat descheduled on this shared machine). The work is pure CPU, "
             "so on a dedicated core the two agree. µs per record: the median over fresh "
             "interpreters (each the median of its runs), with (min-max); the ratios "
             "divide medians.", ""]
    sizes = data["settings"]["sizes"]
    for source, contenders in (("sqs", SQS_CONTENDERS), ("kinesis", KINESIS_CONTENDERS),
                               ("kafka", KAFKA_CONTENDERS)):
        if not any(_oh(s, source, n, "asyncio", c) for n in sizes for c in contenders):
            continue
        keys = data["settings"]["distinct_keys"]
        name = {"sqs": "SQS standard",
                "kinesis": f"Kinesis ({keys:,} partition keys, uniform)",
                "kafka": f"Kafka (8 partitions, {keys:,} record keys, uniform)"}[source]
        lines += [f"### {name}", ""]
        lines += [*_overhead_table(s, source, sizes, contenders, "cpu"), ""]
        lines += [*_overhead_table(s, source, sizes, contenders, "wall"), ""]
    lines += ["*asyncbatch + context*: the same processor given a Lambda-like context "
              "(`get_remaining_time_in_millis()` from an epoch deadline, as `awslambdaric`'s) "
              "whose deadline is 900 s away, so no record is stopped: what it adds is the "
              "deadline machinery, a clock read before each record included.", "",
              "The bare pool ignores ordering; for Kinesis the *bare keyed pool* also groups "
              "the records by partition key (inside the clock) and runs each key's records "
              "in order, the least an ordered processor must do. aiometer has no per-key "
              "ordering, so it is measured on SQS only. For Kafka, asyncbatch runs each "
              "partition in offset order (default) or each key of a partition "
              "(`ordering=\"key\"`); the bare partition pool and bare keyed pool are their "
              "floors.", ""]
    first_rows = []
    for source, contenders in (("sqs", SQS_CONTENDERS), ("kinesis", KINESIS_CONTENDERS),
                               ("kafka", KAFKA_CONTENDERS)):
        for c in contenders:
            runs = [v for k, v in s["overhead"].items()
                    if k.startswith(f"{source}|") and k.endswith(f"|asyncio|{c}")]
            if runs:
                first = median(v["first_call_ms"]["median"] for v in runs)
                second = median(v["second_call_ms"]["median"] for v in runs)
                first_rows.append([{"sqs": "SQS", "kinesis": "Kinesis"}.get(source, "Kafka"),
                                   SHORT[c],
                                   f"{first:.1f}", f"{second:.1f}"])
    if first_rows:
        lines += ["### First call in a fresh interpreter", "",
                  "The warm-up: a 200-record event processed twice, right after the imports "
                  "(wall ms, medians over every asyncio overhead interpreter). The first call "
                  "pays lazy imports and first-use costs once per Lambda cold start; it is "
                  "kept out of the figures above.", ""]
        lines += [*_table(["source", "contender", "first call ms", "second call ms"],
                          first_rows), ""]
    return lines


def _md_uvloop(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    sizes = data["settings"]["uvloop_sizes"]
    rows = []
    for source, contenders in (("sqs", SQS_CONTENDERS), ("kinesis", KINESIS_CONTENDERS)):
        for n in sizes:
            ab_uv = _oh(s, source, n, "uvloop", "asyncbatch")
            for c in contenders:
                uv = _oh(s, source, n, "uvloop", c)
                if uv is None:
                    continue
                base = _oh(s, source, n, "asyncio", c)
                rows.append([
                    "SQS" if source == "sqs" else "Kinesis", f"{n:,}", SHORT[c],
                    _cell(base), _cell(uv), _r(_ratio(uv, base)),
                    _r(_ratio(_oh(s, source, n, "uvloop", c, "wall"),
                              _oh(s, source, n, "asyncio", c, "wall"))),
                    _r(_ratio(uv, ab_uv)) if c != "asyncbatch" else "1.00x"])
    if not rows:
        return []
    return ["## uvloop on and off", "",
            "The overhead benchmark again with the loop made by `uvloop.new_event_loop()` "
            "(also the loop powertools picks up), CPU µs per record; the asyncio column is "
            "from the same suite run.", "",
            *_table(["source", "records", "contender", "asyncio CPU µs/rec",
                     "uvloop CPU µs/rec", "uvloop / asyncio (CPU)",
                     "uvloop / asyncio (wall)", "contender / asyncbatch (uvloop, CPU)"], rows),
            ""]


def _md_memory(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    n = max(data["settings"]["sizes"])
    event = s["memory"].get("event")
    rows = []
    for c in SQS_CONTENDERS:
        run = s["overhead"].get(f"sqs|{n}|asyncio|{c}")
        traced = s["memory"].get(c)
        if run is None and traced is None:
            continue
        cells = [NAMES[c]]
        if run is not None:
            ev = run["event_rss_kb"]["median"]
            extra = run["processing_rss_kb"]
            cells += [_cell({k: v / 1024 if k != "n" else v for k, v in extra.items()}, 1),
                      f"{ev / 1024:.1f}",
                      f"{(ev + extra['median']) / ev:.3f}x" if ev else "-"]
        else:
            cells += ["-", "-", "-"]
        if traced is not None and event is not None:
            cells += [f"{traced['traced_peak_bytes'] / MB:.1f}",
                      f"{1 + traced['traced_peak_bytes'] / event['traced_bytes']:.3f}x",
                      f"{traced['traced_retained_bytes'] / MB:.2f}"]
        else:
            cells += ["-", "-", "-"]
        rows.append(cells)
    if not rows:
        return []
    lines = ["## Peak memory", "",
             f"SQS standard, {n:,} records, no-op handler, concurrency "
             f"{data['settings']['concurrency']}. In each contender's own interpreter, after "
             "its warm-up: the growth of `ru_maxrss` while building the event (the event's "
             "own size, RSS), then while processing it (the first run). Then one more run "
             "per contender under `tracemalloc` started after the event was built: the peak "
             "of Python allocations during processing, and what stays allocated after it.",
             ""]
    if event is not None:
        lines += [f"The event's own size: **{event['traced_bytes'] / MB:.1f} MB** of Python "
                  f"objects (tracemalloc while building it), from "
                  f"{event['json_bytes'] / MB:.1f} MB of JSON.", ""]
    lines += _table(["contender", "processing RSS growth MB", "event RSS growth MB",
                     "peak (event + processing) / event, RSS",
                     "tracemalloc peak of processing MB",
                     "(event + that peak) / event, traced", "retained after MB"], rows)
    return [*lines, ""]


def _md_makespan(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    st = data["settings"]
    conts = [*st["makespan_contenders"], *st.get("makespan_reference", ())]
    out = ["## I/O-bound makespan", "",
           f"{st['makespan_n']:,} SQS records; each handler sleeps its latency. Two clocks, "
           "each run in fresh interpreters:", "",
           "- **dedicated-core clock**: an asyncio loop (`CPUClockLoop` in `_runner.py`) "
           "whose clock is the process's CPU time plus the idle waits it skips instead of "
           "sleeping. Timers fire in order at their virtual time and every handler runs; "
           "the loop's own work (the library's included) costs what it costs, but time the "
           "process sits descheduled by a neighbour does not count. This is the makespan on "
           "a core of its own, and the one the targets are judged on. Its clock reads "
           "(`process_time()`, ~1 µs, one or two per record) are counted too, for every "
           "contender alike.",
           "- **wall clock**: a normal asyncio loop and `asyncio.sleep`. On this shared "
           "2-core machine the process is often descheduled while its timers are due, so "
           "every contender, the bare pool included, lands well above ideal.", "",
           "Figures: seconds, median of fresh interpreters (ratio to ideal). *CPU s*: the "
           "process's CPU time during the run; when it nears the ideal makespan, the loop "
           "itself is the bottleneck.", ""]
    laws = [("fixed", f"every handler `await asyncio.sleep({st['makespan_latency']})`; "
                      "ideal = N·L/C"),
            ("lognormal", f"latencies lognormal, mean {st['makespan_latency'] * 1000:g} ms, "
                          f"sigma = {st['lognormal_sigma']} (seeded; the same draws for "
                          "every contender); ideal = max(ΣL/C, max L). *greedy, no "
                          "overhead*: each record, in event order, to the first free worker "
                          "at zero cost, what any bounded FIFO pool can reach")]
    any_rows = False
    for loop, clock in CLOCKS.items():
        table = s["makespan"].get(loop)
        if not table:
            continue
        for kind, text in laws:
            rows = []
            for c in st["makespan_concurrencies"]:
                entries = {k: table.get(f"{kind}|{c}|{k}") for k in conts}
                first = next((e for e in entries.values() if e), None)
                if first is None:
                    continue
                ideal = first["ideal"]
                row = [str(c), f"{ideal:.3f}"]
                for k in conts:
                    e = entries[k]
                    if e is None:
                        row.append("-")
                    else:
                        span = e["makespan"]["median"]
                        row.append(f"{span:.3f} ({span / ideal:.3f}x)")
                ab, fl = entries.get("asyncbatch"), entries.get("floor")
                row += [_r(_ratio(ab["makespan"], fl["makespan"]), 3) if ab and fl else "-",
                        f"{first['greedy_no_overhead'] / ideal:.3f}x",
                        f"{ab['cpu']['median']:.3f} / {fl['cpu']['median']:.3f}" if ab and fl
                        else "-",
                        str(ab["peak_in_flight"]) if ab else "-"]
                rows.append(row)
            if rows:
                any_rows = True
                out += [f"### {clock.capitalize()}, {kind} latency", "",
                        f"{text[0].upper()}{text[1:]}.", ""]
                out += _table(["concurrency", "ideal s"] + [SHORT[k] + " s" for k in conts]
                              + ["asyncbatch / bare pool", "greedy, no overhead / ideal",
                                 "CPU s asyncbatch / bare pool", "asyncbatch peak in flight"],
                              rows)
                out.append("")
    return out if any_rows else []


def _md_skew(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    names = [sc["name"] for sc in data["settings"]["skew"]]
    rows = []
    first: Optional[dict[str, Any]] = None
    for name in names:
        found = {(loop, c): s["skew"].get(loop, {}).get(f"{name}|{c}")
                 for loop in CLOCKS for c in ("asyncbatch", "floor_keyed")}
        e = next((v for v in found.values() if v), None)
        if e is None:
            continue
        first = first or e
        ideal = e["ideal"]
        row = [name, f"{e['n']:,}", f"{e['lanes']:,} (Zipf s={e['exponent']})",
               f"{e['chain']:,}", f"{e['work_bound']:.2f}", f"{ideal:.2f}",
               f"{e['lpt_no_overhead'] / ideal:.3f}x",
               f"{e['arrival_order_no_overhead'] / ideal:.3f}x"]
        for loop in CLOCKS:
            ab, fl = found[(loop, "asyncbatch")], found[(loop, "floor_keyed")]
            row.append("-" if ab is None else f"{ab['makespan']['median']:.3f} "
                                              f"({ab['makespan']['median'] / ideal:.3f}x)")
            row.append("-" if fl is None else f"{fl['makespan']['median'] / ideal:.3f}x")
        abs_ = [v for (loop, c), v in found.items() if c == "asyncbatch" and v]
        row.append(str(max(v["peak_in_flight"] for v in abs_)) if abs_ else "-")
        row.append(str(sum(v["order_violations"] for v in abs_)) if abs_ else "-")
        rows.append(row)
    if not rows or first is None:
        return []
    return ["## Stream skew", "",
            f"Kinesis events whose partition keys follow a bounded Zipf law (seeded), every "
            f"handler `await asyncio.sleep({first['latency']})`, concurrency "
            f"{first['concurrency']}. Ideal = max(N·L/C, longest key chain · L). *LPT* and "
            "*arrival order* are zero-overhead greedy schedules of whole key lanes, longest "
            "first or in order of first appearance. The bare keyed pool groups by key and "
            "runs the lanes longest first on a bare asyncio pool. Both clocks as in the "
            "makespan benchmark. The handler also checks that no two records of one key "
            "overlap and that each key's sequence numbers rise (order violations, summed "
            "over every asyncbatch run).", "",
            *_table(["scenario", "records", "keys", "longest chain", "N·L/C s", "ideal s",
                     "LPT / ideal", "arrival order / ideal",
                     "asyncbatch s, dedicated core", "bare keyed pool / ideal, dedicated core",
                     "asyncbatch s, wall", "bare keyed pool / ideal, wall",
                     "peak in flight", "order violations"], rows),
            ""]


def _md_import(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    imp = s["import"]
    if not imp:
        return []
    rows = []
    for label, (pre, statement, base_label) in IMPORT_TARGETS.items():
        if label not in imp:
            continue
        e = imp[label]
        base = imp.get(base_label) if base_label else None

        def net(metric: str, e: dict[str, Any] = e, base: Any = base) -> str:
            if base is None:
                return "-"
            return f"{(e[metric]['median'] - base[metric]['median']) * 1000:.1f}"

        rows.append([f"`{statement}`" + (f" after `{pre}`" if pre else "")
                     + (" **without `.pyc`** (compiled at every start)" if label == NO_PYC
                        else ""),
                     _cell({k: v * 1000 if k != "n" else v for k, v in e["wall_s"].items()}, 1),
                     net("wall_s"),
                     _cell({k: v * 1000 if k != "n" else v for k, v in e["cpu_s"].items()}, 1),
                     net("cpu_s"),
                     _cell({k: v / 1000 if k != "n" else v
                            for k, v in e["importtime_us"].items()}, 1)])
    lines = ["## Cold import", "",
             f"Each statement in a fresh interpreter, {data['settings']['import_reps']} times, "
             "interleaved, after one warm-up run (`.pyc` files written, with "
             "`PYTHONDONTWRITEBYTECODE` unset; files cached)" + _pyc_note(data) + ". Wall "
             "and CPU (user + system of the child): `python -c STATEMENT` end to end; net: "
             "minus the median of its baseline (the bare interpreter, or `import asyncio` "
             "alone for the rows measured after it). importtime: `python -X importtime`, the "
             "cumulative time of the statement's own top-level imports.", ""]
    lines += _table(["statement", "wall ms", "net wall ms", "CPU ms", "net CPU ms",
                     "-X importtime ms"], rows)
    ratios = []
    for what, ab, pt in (("alone", "import asyncbatch", "powertools batch"),
                         ("after `import asyncio`", "asyncbatch after asyncio",
                          "powertools after asyncio")):
        if ab in imp and pt in imp:
            r = imp[pt]["importtime_us"]["median"] / imp[ab]["importtime_us"]["median"]
            ratios.append(f"{what}: **{r:.2f}x** (-X importtime)")
    if ratios:
        lines += ["", "powertools' batch import / `import asyncbatch`, " + "; ".join(ratios)
                  + f"; net CPU of a fresh interpreter: **{_r(_net_import(s, 'cpu_s'))}**."]
    if s.get("coldstart"):
        lines += ["", "An import that defers work moves it to the first call: see *Cold "
                      "start* for the import and the first batch together."]
    return [*lines, ""]


def _pyc_note(data: dict[str, Any]) -> str:
    flags = {r.get("pyc") for r in data["runs"]
             if r["task"] == "import" and r["target"] != NO_PYC}
    if flags == {True}:
        return "; asyncbatch's `.pyc` checked present"
    if False in flags:
        return "; WARNING: asyncbatch's `.pyc` was missing, these rows include compiling it"
    return ""


def render(data: dict[str, Any], s: dict[str, Any], plots: list[str]) -> str:
    m = data["machine"]
    lines = ["# asyncbatch benchmarks", "",
             "Generated by `python -m benchmarks`" + (" --quick" if data["quick"] else "")
             + f" in {data['duration_s'] / 60:.1f} min. Every contender runs in its own "
             "fresh interpreter; figures are medians over those interpreters, and every "
             "ratio divides two medians measured in this same run. The machine is shared "
             "and noisy: compare ratios, not absolute times.", "",
             "## Machine", ""]
    lines += _table(["", ""], [
        ["Python", f"{m['implementation']} {m['python']}"],
        ["platform", m["platform"]],
        ["CPU", f"{m['cpu']} ({m['cpus']} logical CPUs)"],
        ["load average (start → end)",
         f"{_load(m.get('loadavg_start'))} → {_load(m.get('loadavg_end'))}"],
        ["asyncbatch commit", m["asyncbatch_commit"] or "?"],
        ["packages", ", ".join(f"{k} {v}" for k, v in m["versions"].items())],
        ["date", m["date"]],
    ])
    lines.append("")
    if s["targets"] or s.get("issue14"):
        lines += ["## Targets", ""]
    if s.get("issue14"):
        lines += ["### Current targets", "",
                  "Same-run ratios and medians of fresh interpreters; CPU time decides (wall "
                  "shown: on this shared machine it also counts time spent descheduled), the "
                  "makespan on the dedicated-core clock.", ""]
        lines += targets_table(s["issue14"])
        lines.append("")
    if s["targets"]:
        lines += ["### Earlier targets", ""]
        lines += targets_table(s["targets"])
        lines.append("")
    if s["errors"]:
        lines += ["## Errors", ""] + [f"- `{json.dumps(e)[:400]}`" for e in s["errors"]] + [""]
    lines += _md_overhead(data, s) if any(k.split("|")[2] == "asyncio"
                                          for k in s["overhead"]) else []
    lines += _md_uvloop(data, s)
    lines += _md_memory(data, s) if "memory" in data["selected"] else []
    lines += _md_makespan(data, s)
    lines += _md_skew(data, s)
    lines += _md_coldstart(data, s)
    lines += _md_import(data, s)
    lines += _md_previous(data, s)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    st = data["settings"]
    lines += ["## How this was run", "",
              "```",
              "python -m benchmarks" + (" --quick" if data["quick"] else ""),
              "```", "",
              f"Repetitions (fresh interpreters) per size: {st['reps']}; runs inside each: "
              f"{st['inner']}; makespan: {st['makespan_reps']}; skew: {st['skew_reps']}; "
              f"import: {st['import_reps']}. Raw figures: `results.json`.", ""]
    return "\n".join(lines)


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    return _table(["target", "measured", "met"], [
        [t["target"], t["measured"],
         "-" if t["met"] is None else ("**yes**" if t["met"] else "**NO**")] for t in rows])


def _md_coldstart(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    cold = s.get("coldstart") or {}
    if not cold:
        return []
    floor = cold.get("floor")
    rows = []
    for contender in COLDSTART_CONTENDERS:
        e = cold.get(contender)
        if e is None:
            continue

        def above(clock: str, e: dict[str, Any] = e) -> str:
            if floor is None:
                return "-"
            key = f"total_{clock}_ms"
            return f"{e[key]['median'] - floor[key]['median']:+.1f}"

        rows.append([
            {"floor": "bare `asyncio.run` (floor)", "asyncbatch": "asyncbatch",
             "powertools": "powertools `BatchProcessor` (sync)",
             "powertools_async": "powertools `AsyncBatchProcessor`"}[contender],
            _cell(e["import_cpu_ms"], 1), _cell(e["first_cpu_ms"], 1),
            _cell(e["total_cpu_ms"], 1), f"**{above('cpu')}**",
            _cell(e.get("paired_above_floor_cpu_ms"), 1) if contender != "floor" else "-",
            _cell(e["total_wall_ms"], 1),
            above("wall"), "yes" if e["pyc"] else "NO", f"{e['modules_loaded']:.0f}",
            "yes" if e["anyio_imported"] else "no"])
    n = next(iter(cold.values()))["records"]
    reps = data["settings"].get("coldstart_reps", "?")
    return ["## Cold start", "",
            f"What Lambda bills on a cold start once the Python runtime is up: importing the "
            f"handler's library, then answering the first batch ({n} SQS records, no-op "
            f"handler, concurrency {data['settings']['concurrency']}, a Lambda-like context "
            "with 900 s left). Each contender in a fresh interpreter "
            f"(`benchmarks/_coldstart.py`), {reps} times, interleaved, after one warm-up run "
            "that writes the `.pyc` files (`PYTHONDONTWRITEBYTECODE` unset), as a deployment "
            "package should ship them. The clock starts after the runtime's own imports "
            "(`json`, `os`, `sys`, `time`) and the event's `json.load`; the floor is "
            "`import asyncio` plus `asyncio.run` of a bare pool over the raw records. "
            "asyncbatch: `import asyncbatch` then `asyncbatch.process_partial_response`; "
            "powertools: its batch module, then `process_partial_response` (sync) or "
            "`async_process_partial_response`. ms, median (min-max); *above floor*: "
            "difference of the medians (the target's figure); *paired*: the median of each "
            "repetition's difference to the floor run next to it. asyncbatch's first call "
            "includes importing asyncio, which `import asyncbatch` defers.", "",
            *_table(["contender", "import CPU ms", "first call CPU ms", "total CPU ms",
                     "above floor, CPU ms", "paired: each run minus its floor, CPU ms",
                     "total wall ms", "above floor, wall ms",
                     "ran from .pyc", "modules loaded", "anyio imported"], rows), ""]


def _md_previous(data: dict[str, Any], s: dict[str, Any]) -> list[str]:
    rows = compare_previous(data, s)
    if not rows:
        return []
    prev = data["previous"]["machine"]
    return ["## Against the previous results", "",
            f"The previous `results.json` (asyncbatch {prev.get('asyncbatch_commit', '?')}, "
            f"{prev.get('date', '?')}) against this run. Absolute times of two runs on a "
            "shared machine do not compare, so each row is a ratio to a baseline of its own "
            "run: a contender's CPU µs/record over its bare pool's, a makespan over its "
            f"ideal, an import's CPU over the bare interpreter's. *noise*: within "
            f"{NOISE:.2f}x either way. The last column gives asyncbatch's own CPU time for "
            "the overhead rows, for what it is worth across runs (since the previous run the "
            "events are parsed from JSON as Lambda delivers them, which changed the "
            "floors). Before this run, the cold import was timed with "
            "`PYTHONDONTWRITEBYTECODE=1` on a fresh copy (the compiler's time, not the "
            "import's): its import rows are not like for like.", "",
            *_table(["row", "previous", "now", "now / previous", "verdict",
                     "asyncbatch CPU µs/record, previous → now"],
                    [[r["row"], f"{r['previous']:.3f}", f"{r['now']:.3f}",
                      f"{r['change']:.2f}x", r["verdict"],
                      "-" if not r.get("absolute") else
                      f"{r['absolute'][0]:.2f} → {r['absolute'][1]:.2f}"] for r in rows]), ""]


def _load(values: Optional[list[float]]) -> str:
    return "?" if not values else " / ".join(f"{v:.2f}" for v in values)
