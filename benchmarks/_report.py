"""From ``results.json`` to ``RESULTS.md`` and PNG plots (matplotlib, Agg backend).

``summarise`` reduces the raw runs to medians and ratios; ``write_report`` renders them.
Every ratio divides two medians of the same suite run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ._suite import (
    COLDSTART_CONTENDERS,
    IMPORT_TARGETS,
    KAFKA_CONTENDERS,
    KINESIS_CONTENDERS,
    NO_PYC,
    SQS_CONTENDERS,
    median,
    select,
)

__all__ = ["main", "summarise", "write_report"]

NAMES = {
    "asyncbatch": "asyncbatch",
    "asyncbatch_ctx": "asyncbatch with a Lambda-like context",
    "powertools_async": "powertools AsyncBatchProcessor",
    "powertools_sync": "powertools BatchProcessor (sync)",
    "floor": "bare asyncio pool (floor)",
    "floor_keyed": "bare pool over key lanes",
    "aiometer": "aiometer.run_on_each",
}
SHORT = {
    "asyncbatch": "asyncbatch",
    "asyncbatch_ctx": "asyncbatch + context",
    "powertools": "powertools BatchProcessor",
    "asyncbatch_key": "asyncbatch ordering=key",
    "floor_partition": "bare partition pool",
    "powertools_async": "powertools async",
    "powertools_sync": "powertools sync",
    "floor": "bare pool",
    "floor_keyed": "bare keyed pool",
    "aiometer": "aiometer",
}
COLORS = {
    "asyncbatch": "#1f77b4", "asyncbatch_ctx": "#17becf",
    "powertools": "#ff9896", "powertools_async": "#d62728", "powertools_sync": "#ff9896",
    "floor": "#2ca02c", "floor_keyed": "#98df8a", "aiometer": "#9467bd",
    "asyncbatch_key": "#aec7e8", "floor_partition": "#bcbd22",
}
MB = 1024.0 * 1024.0
# The two clocks of the makespan benchmarks, the first the one a target is judged on.
CLOCKS = {"cpu-clock": "dedicated-core clock", "asyncio": "wall clock"}


# -- reduction -----------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def _ratio(a: Optional[dict[str, float]], b: Optional[dict[str, float]]) -> Optional[float]:
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {"overhead": {}, "memory": {}, "makespan": {}, "skew": {},
                         "import": {}, "coldstart": {}}

    # Overhead: µs per record, the median of each interpreter's (median) run.
    keys = {(r["source"], r["n"], r["loop"], r["contender"])
            for r in select(data, task="overhead") if not r.get("tracemalloc")}
    for source, n, loop, contender in sorted(keys):
        runs = [r for r in select(data, task="overhead", source=source, n=n, loop=loop,
                                  contender=contender) if not r.get("tracemalloc")]
        s["overhead"][f"{source}|{n}|{loop}|{contender}"] = {
            "cpu": _spread([median(r["result"]["cpu_times"]) / n * 1e6 for r in runs]),
            "wall": _spread([median(r["result"]["times"]) / n * 1e6 for r in runs]),
            "processing_rss_kb": _spread([r["result"]["processing_rss_kb"] for r in runs]),
            "event_rss_kb": _spread([r["result"]["event_rss_kb"] for r in runs]),
            "failures": sum(r["result"]["failures"] for r in runs),
            "first_call_ms": _spread([r["result"]["warmup_times"][0] * 1e3 for r in runs]),
            "second_call_ms": _spread([r["result"]["warmup_times"][1] * 1e3 for r in runs]),
        }

    # Memory: the event's own size, and each contender's processing memory.
    sizes = select(data, task="event_size")
    if sizes:
        res = sizes[0]["result"]
        s["memory"]["event"] = {"n": sizes[0]["n"], "traced_bytes": res["traced_bytes"],
                                "json_bytes": res["json_bytes"]}
        for r in select(data, task="overhead", tracemalloc=True):
            name = r["contender"] if r["n"] == sizes[0]["n"] else f"{r['contender']}@{r['n']}"
            s["memory"][name] = {
                "traced_peak_bytes": r["result"]["traced_peak_bytes"],
                "traced_retained_bytes": r["result"]["traced_retained_bytes"],
            }

    # Makespan: per latency law, concurrency and contender.
    # s["makespan"][loop]["kind|concurrency|contender"], loop "cpu-clock" or "asyncio".
    for r in select(data, task="makespan"):
        key = f"{r['latency']['kind']}|{r['concurrency']}|{r['contender']}"
        s["makespan"].setdefault(r["loop"], {}).setdefault(key, []).append(r["result"])
    for by_loop in s["makespan"].values():
        for key, results in list(by_loop.items()):
            by_loop[key] = _makespan_entry(results)

    # Skew: s["skew"][loop]["scenario|contender"].
    for r in select(data, task="skew"):
        s["skew"].setdefault(r["loop"], {}).setdefault(
            f"{r['scenario']}|{r['contender']}", []).append(r)
    for by_loop in s["skew"].values():
        for key, runs in list(by_loop.items()):
            by_loop[key] = _skew_entry(runs)

    # Import: wall time of ``python -c`` and -X importtime's cumulative time.
    for label in IMPORT_TARGETS:
        runs = select(data, task="import", target=label)
        if runs:
            s["import"][label] = {
                "wall_s": _spread([r["result"]["wall_s"] for r in runs]),
                "cpu_s": _spread([r["result"]["cpu_s"] for r in runs]),
                "importtime_us": _spread([r["result"]["importtime_us"] for r in runs]),
            }
    # Cold start: per contender, ms (import, first call, both) on each clock.
    for contender in COLDSTART_CONTENDERS:
        runs = select(data, task="coldstart", contender=contender)
        if runs:
            entry: dict[str, Any] = {
                f"{part}_{clock}_ms": _spread([r["result"][f"{part}_{clock}"] * 1e3
                                               for r in runs])
                for part in ("import", "first", "total") for clock in ("cpu", "wall")
                if part != "total"}
            for clock in ("cpu", "wall"):
                entry[f"total_{clock}_ms"] = _spread([r["result"][clock] * 1e3 for r in runs])
            entry["failures"] = sum(r["result"]["failures"] for r in runs)
            entry["pyc"] = all(r["result"]["pyc"] for r in runs)
            entry["anyio_imported"] = any(r["result"]["anyio_imported"] for r in runs)
            entry["modules_loaded"] = median(r["result"]["modules_loaded"] for r in runs)
            entry["records"] = runs[0]["result"]["records"]
            floors = {r["rep"]: r["result"]["cpu"] for r in select(data, task="coldstart",
                                                                   contender="floor")}
            paired = [(r["result"]["cpu"] - floors[r["rep"]]) * 1e3 for r in runs
                      if r["rep"] in floors]
            if paired:  # each repetition against the floor measured next to it
                entry["paired_above_floor_cpu_ms"] = _spread(paired)
            s["coldstart"][contender] = entry
    s["errors"] = [
        {k: v for k, v in r.items() if k not in ("result",)} | {"error": r["result"]["error"]}
        for r in data["runs"] if "error" in r["result"]
    ]
    s["targets"] = targets(data, s)
    s["issue14"] = issue14_targets(data, s)
    return s


def _makespan_entry(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "makespan": _spread([x["makespan"] for x in results]),
        "cpu": _spread([x["cpu"] for x in results]),
        "ideal": results[0]["ideal"],
        "greedy_no_overhead": results[0]["greedy_no_overhead"],
        "peak_in_flight": max(x["peak_in_flight"] for x in results),
        "failures": sum(x["failures"] for x in results),
    }


def _skew_entry(runs: list[dict[str, Any]]) -> dict[str, Any]:
    first = runs[0]
    res = first["result"]
    return {
        "n": first["n"], "distinct_keys": first["distinct_keys"],
        "exponent": first["exponent"], "latency": first["latency"],
        "concurrency": first["concurrency"],
        "makespan": _spread([r["result"]["makespan"] for r in runs]),
        "cpu": _spread([r["result"]["cpu"] for r in runs]),
        "ideal": res["ideal"], "chain": res["chain"], "lanes": res["lanes"],
        "work_bound": res["work_bound"], "lpt_no_overhead": res["lpt_no_overhead"],
        "arrival_order_no_overhead": res["arrival_order_no_overhead"],
        "peak_in_flight": max(r["result"]["peak_in_flight"] for r in runs),
        "order_violations": sum(r["result"]["order_violations"] for r in runs),
        "failures": sum(r["result"]["failures"] for r in runs),
    }


def _oh(s: dict[str, Any], source: str, n: int, loop: str, contender: str,
        metric: str = "cpu") -> Optional[dict[str, float]]:
    """µs per record (``metric`` "cpu" or "wall") of one overhead configuration."""
    entry = s["overhead"].get(f"{source}|{n}|{loop}|{contender}")
    return entry[metric] if entry else None


def targets(data: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure measured and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: Optional[str], ok: Optional[bool]) -> None:
        rows.append({"target": target, "measured": measured or "n/a", "met": ok})

    sizes = data["settings"]["sizes"]
    n = max(sizes) if sizes else 0
    for source in ("sqs", "kinesis"):
        ab = _oh(s, source, n, "asyncio", "asyncbatch")
        if ab is None:
            continue
        wall = _oh(s, source, n, "asyncio", "asyncbatch", "wall")
        assert wall is not None
        name = "SQS" if source == "sqs" else "Kinesis"
        add(f"{name} {n:,} records: asyncbatch overhead <= 2 µs/record",
            f"{ab['median']:.2f} µs CPU (wall {wall['median']:.2f})", ab["median"] <= 2.0)
        for label, num, den, goal in (
                (">= 10x below powertools AsyncBatchProcessor", "powertools_async",
                 "asyncbatch", lambda r: r >= 10),
                ("within 3x of the bare asyncio pool", "asyncbatch", "floor",
                 lambda r: r <= 3)):
            r = _ratio(_oh(s, source, n, "asyncio", num), _oh(s, source, n, "asyncio", den))
            rw = _ratio(_oh(s, source, n, "asyncio", num, "wall"),
                        _oh(s, source, n, "asyncio", den, "wall"))
            add(f"{name} {n:,}: {label}",
                None if r is None else f"{num} / {den} = {r:.2f}x CPU ({_r(rw)} wall)",
                None if r is None else bool(goal(r)))

    event = s["memory"].get("event")
    run = s["overhead"].get(f"sqs|{n}|asyncio|asyncbatch")
    if run is not None and run["event_rss_kb"]["median"]:
        ev_kb = run["event_rss_kb"]["median"]
        total = (ev_kb + run["processing_rss_kb"]["median"]) / ev_kb
        add(f"SQS {n:,}: peak memory (event + processing) <= 1.3x the event's own, RSS",
            f"{total:.3f}x", total <= 1.3)
    if event is not None and "asyncbatch" in s["memory"]:
        traced = 1 + s["memory"]["asyncbatch"]["traced_peak_bytes"] / event["traced_bytes"]
        add(f"SQS {n:,}: same, by tracemalloc", f"{traced:.3f}x", traced <= 1.3)

    def clocked(table: dict[str, Any], key: str, floor_key: str) -> Optional[tuple[str, bool]]:
        """'x ideal' on each clock (the dedicated-core clock decides), with the floor's."""
        parts, verdict = [], None
        for loop in CLOCKS:
            m = table.get(loop, {}).get(key)
            if m is None:
                continue
            r = m["makespan"]["median"] / m["ideal"]
            floor = table[loop].get(floor_key)
            vs = f", floor {floor['makespan']['median'] / m['ideal']:.3f}x" if floor else ""
            parts.append(f"{CLOCKS[loop]}: {r:.3f}x ideal{vs}")
            if verdict is None:
                verdict = r <= 1.05
        return None if verdict is None else ("; ".join(parts), verdict)

    for c in (100, 500):
        found = clocked(s["makespan"], f"fixed|{c}|asyncbatch", f"fixed|{c}|floor")
        if found is not None:
            add(f"I/O-bound (fixed L), concurrency {c}: makespan within 5% of N*L/C", *found)
    for scenario in [sc["name"] for sc in data["settings"]["skew"]]:
        found = clocked(s["skew"], f"{scenario}|asyncbatch", f"{scenario}|floor_keyed")
        if found is not None:
            add(f"Stream skew '{scenario}': makespan within 5% of ideal", *found)

    imp = s["import"]
    for label, ab, pt in (("-X importtime", "import asyncbatch", "powertools batch"),
                          ("-X importtime, asyncio already imported",
                           "asyncbatch after asyncio", "powertools after asyncio")):
        if ab in imp and pt in imp:
            r = imp[pt]["importtime_us"]["median"] / imp[ab]["importtime_us"]["median"]
            add(f"import asyncbatch >= 3x faster than powertools' batch import ({label})",
                f"{r:.2f}x", r >= 3)
    net = _net_import(s, "cpu_s")
    if net is not None:
        add("same, CPU time of a fresh `python -c`, net of a bare interpreter",
            f"{net:.2f}x", net >= 3)
    return rows


COLDSTART_TARGET_MS = 8.0
NOISE = 1.15  # a ratio up to 15% above the previous run's counts as noise here


def issue14_targets(data: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 14's targets: each with the figure measured (same-run ratios and medians)
    and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: Optional[str], ok: Optional[bool]) -> None:
        rows.append({"target": target, "measured": measured or "n/a", "met": ok})

    cold = s.get("coldstart", {})
    if "floor" in cold and "asyncbatch" in cold:
        floor = cold["floor"]
        cold_parts = []
        for contender in ("asyncbatch", "powertools", "powertools_async"):
            if contender not in cold:
                continue
            e = cold[contender]
            cpu = e["total_cpu_ms"]["median"] - floor["total_cpu_ms"]["median"]
            wall = e["total_wall_ms"]["median"] - floor["total_wall_ms"]["median"]
            cold_parts.append(f"{SHORT[contender]} {cpu:+.1f} ms CPU ({wall:+.1f} wall)")
        above = cold["asyncbatch"]["total_cpu_ms"]["median"] - floor["total_cpu_ms"]["median"]
        pyc = "" if cold["asyncbatch"]["pyc"] else " (WARNING: ran without .pyc)"
        add(f"Cold start, import + first {cold['asyncbatch']['records']}-record SQS batch "
            f"(`process_partial_response`, Lambda-like context, .pyc present): "
            f"<= {COLDSTART_TARGET_MS:g} ms above a bare `asyncio.run` (floor "
            f"{floor['total_cpu_ms']['median']:.1f} ms CPU)",
            "; ".join(cold_parts) + pyc, above <= COLDSTART_TARGET_MS)

    sizes = [n for n in data["settings"]["sizes"] if n >= 10_000] or data["settings"]["sizes"]
    for source, base, goal in (("sqs", "floor", 3.0), ("kinesis", "floor_keyed", 2.0)):
        name = "SQS" if source == "sqs" else "Kinesis"
        floor_name = "bare asyncio pool" if source == "sqs" else "keyed bare pool"
        for n in sizes:
            for contender, how in (("asyncbatch", "no context"),
                                   ("asyncbatch_ctx", "Lambda-like context, deadline far "
                                                      "away (a clock read per record)")):
                r = _ratio(_oh(s, source, n, "asyncio", contender),
                           _oh(s, source, n, "asyncio", base))
                if r is None:
                    continue
                rw = _ratio(_oh(s, source, n, "asyncio", contender, "wall"),
                            _oh(s, source, n, "asyncio", base, "wall"))
                us = _oh(s, source, n, "asyncio", contender)
                assert us is not None
                add(f"{name} {n:,} records, no-op handler, {how}: <= {goal:g}x the "
                    f"{floor_name}",
                    f"{r:.2f}x CPU ({_r(rw)} wall); {us['median']:.2f} µs/record", r <= goal)

    n = max(data["settings"]["sizes"]) if data["settings"]["sizes"] else 0
    mem = s["memory"]
    event = mem.get("event")
    big, small = mem.get("asyncbatch"), mem.get(f"asyncbatch@{n // 10}")
    run = s["overhead"].get(f"sqs|{n}|asyncio|asyncbatch")
    if big is not None and event is not None:
        peak = big["traced_peak_bytes"]
        text = (f"tracemalloc peak {peak / MB:.2f} MB at {n:,} records "
                f"({peak / n:.0f} B/record; {peak / event['traced_bytes']:.1%} of the event)")
        if small is not None:
            text += f", {small['traced_peak_bytes'] / MB:.2f} MB at {n // 10:,}"
        if run is not None:
            text += f"; RSS growth {run['processing_rss_kb']['median'] / 1024:.1f} MB"
        prev = _previous_memory(data)
        ok: Optional[bool] = None
        if prev is not None:
            text += f"; previous run {prev / MB:.2f} MB ({prev / n:.0f} B/record)"
            ok = peak <= NOISE * prev + 0.1 * MB
        add(f"Memory unchanged: SQS {n:,} processing peak (tracemalloc) within noise of the "
            f"previous run's (<= {NOISE:.2f}x + 0.1 MB)", text, ok)

    parts: list[str] = []
    verdict: Optional[tuple[str, bool]] = None
    for loop in CLOCKS:  # the dedicated-core clock first: it decides
        m = s["makespan"].get(loop, {}).get("fixed|500|asyncbatch")
        if m is None:
            continue
        ratio = m["makespan"]["median"] / m["ideal"]
        floor = s["makespan"][loop].get("fixed|500|floor")
        parts.append(f"{CLOCKS[loop]}: {ratio:.3f}x ideal" + (
            f" (bare pool {floor['makespan']['median'] / floor['ideal']:.3f}x)" if floor else ""))
        if verdict is None:
            verdict = (CLOCKS[loop], ratio <= 1.04)
    if verdict is not None:
        add(f"Makespan, C=500, fixed 10 ms handlers, {verdict[0]}: <= 1.04x ideal",
            "; ".join(parts), verdict[1])

    comparison = compare_previous(data, s)
    if comparison:
        slower = [c for c in comparison if c["verdict"] == "slower"]
        add(f"Nothing else slower than the previous results (ratios to each run's own "
            f"baseline; noise: up to {NOISE:.2f}x)",
            f"{len(comparison) - len(slower)} of {len(comparison)} rows within noise or "
            f"better" + (": slower " + ", ".join(c["row"] for c in slower) if slower else ""),
            not slower)
    return rows


def _previous_memory(data: dict[str, Any]) -> Optional[float]:
    prev = (data.get("previous") or {}).get("summary", {}).get("memory", {})
    entry = prev.get("asyncbatch")
    return None if entry is None else float(entry["traced_peak_bytes"])


def compare_previous(data: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """Every asyncbatch row measured both now and in the previous results, as a ratio to
    a baseline of its own run (contender / bare pool, makespan / ideal, import / bare interpreter),
    so that two runs on a machine loaded differently compare."""
    prev = (data.get("previous") or {}).get("summary")
    if not prev:
        return []
    rows: list[dict[str, Any]] = []

    def add(row: str, old: Optional[float], new: Optional[float],
            absolute: Optional[tuple[float, float]] = None) -> None:
        if old is None or new is None or old <= 0:
            return
        change = new / old
        verdict = "better" if change < 1 / NOISE else "slower" if change > NOISE else "noise"
        rows.append({"row": row, "previous": old, "now": new, "change": change,
                     "verdict": verdict, "absolute": absolute})

    def oh_ratio(summary: dict[str, Any], key: str, base: str) -> Optional[float]:
        source, n, loop, _ = key.split("|")
        a = summary["overhead"].get(key)
        b = summary["overhead"].get(f"{source}|{n}|{loop}|{base}")
        return None if not a or not b else a["cpu"]["median"] / b["cpu"]["median"]

    for key in sorted(s["overhead"]):
        source, n, loop, contender = key.split("|")
        if not contender.startswith("asyncbatch"):
            continue
        base = "floor_keyed" if source == "kinesis" and contender.startswith("asyncbatch") \
            else "floor_partition" if source == "kafka" and contender == "asyncbatch" \
            else "floor_keyed" if source == "kafka" else "floor"
        old_us, new_us = prev["overhead"].get(key), s["overhead"][key]
        add(f"overhead {source} {int(n):,} {loop} {SHORT.get(contender, contender)} "
            f"/ {SHORT[base]}", oh_ratio(prev, key, base), oh_ratio(s, key, base),
            None if old_us is None else (old_us["cpu"]["median"], new_us["cpu"]["median"]))
    for loop, table in s["makespan"].items():
        for key, e in table.items():
            old = prev.get("makespan", {}).get(loop, {}).get(key)
            kind, c, contender = key.split("|")
            if contender != "asyncbatch":
                continue
            add(f"makespan {CLOCKS[loop]} {kind} C={c} {SHORT.get(contender, contender)} "
                "/ ideal", old and old["makespan"]["median"] / old["ideal"],
                e["makespan"]["median"] / e["ideal"])
    for loop, table in s["skew"].items():
        for key, e in table.items():
            old = prev.get("skew", {}).get(loop, {}).get(key)
            scenario, contender = key.split("|")
            if contender != "asyncbatch":
                continue
            add(f"skew {CLOCKS[loop]} '{scenario}' {SHORT.get(contender, contender)} / ideal",
                old and old["makespan"]["median"] / old["ideal"],
                e["makespan"]["median"] / e["ideal"])
    for contender in ("asyncbatch",):
        new_mem, old_mem = s["memory"].get(contender), prev.get("memory", {}).get(contender)
        if new_mem and old_mem and s["memory"].get("event") and prev["memory"].get("event"):
            add(f"memory {SHORT[contender]} (event + traced peak) / event",
                1 + old_mem["traced_peak_bytes"] / prev["memory"]["event"]["traced_bytes"],
                1 + new_mem["traced_peak_bytes"] / s["memory"]["event"]["traced_bytes"])
    for label in ("import asyncbatch",):
        new_imp, old_imp = s["import"].get(label), prev.get("import", {}).get(label)
        new_base = s["import"].get("python -c pass")
        old_base = prev.get("import", {}).get("python -c pass")
        if new_imp and old_imp and new_base and old_base:
            add(f"`{label}` CPU / bare interpreter",
                old_imp["cpu_s"]["median"] / old_base["cpu_s"]["median"],
                new_imp["cpu_s"]["median"] / new_base["cpu_s"]["median"])
    return rows


def _net_import(s: dict[str, Any], metric: str) -> Optional[float]:
    """powertools' batch import / asyncbatch's, each net of the bare interpreter."""
    imp = s["import"]
    if not {"python -c pass", "import asyncbatch", "powertools batch"} <= set(imp):
        return None
    base = imp["python -c pass"][metric]["median"]
    ab = imp["import asyncbatch"][metric]["median"] - base
    pt = imp["powertools batch"][metric]["median"] - base
    return pt / ab if ab > 0 else None


# -- markdown ------------------------------------------------------------------------


def _cell(x: Optional[dict[str, float]], digits: int = 2, unit: str = "") -> str:
    if not x:
        return "-"
    m, lo, hi = x["median"], x["min"], x["max"]
    if x.get("n", 1) > 1:
        return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"
    return f"{m:.{digits}f}{unit}"


def _r(x: Optional[float], digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}x"


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


# -- plots ---------------------------------------------------------------------------


def plot_all(data: dict[str, Any], s: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    sizes = data["settings"]["sizes"]
    if any(k.split("|")[2] == "asyncio" for k in s["overhead"]):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        for ax, (source, contenders) in zip(axes, (("sqs", SQS_CONTENDERS),
                                                   ("kinesis", KINESIS_CONTENDERS))):
            width = 0.8 / len(contenders)
            for i, c in enumerate(contenders):
                xs, ys, lo, hi = [], [], [], []
                for j, n in enumerate(sizes):
                    v = _oh(s, source, n, "asyncio", c)
                    if v:
                        xs.append(j + (i - (len(contenders) - 1) / 2) * width)
                        ys.append(v["median"])
                        lo.append(v["median"] - v["min"])
                        hi.append(v["max"] - v["median"])
                if xs:
                    ax.bar(xs, ys, width, yerr=[lo, hi], label=SHORT[c], color=COLORS[c],
                           capsize=2)
            ax.set_yscale("log")
            ax.set_xticks(range(len(sizes)), [f"{n:,}" for n in sizes])
            ax.set_xlabel("records")
            ax.set_ylabel("CPU µs per record (log)")
            ax.set_title(f"{'SQS' if source == 'sqs' else 'Kinesis'}: overhead, no-op handler")
            ax.axhline(2.0, color="grey", ls="--", lw=0.8)
            ax.grid(axis="y", which="both", alpha=0.3)
            ax.legend(fontsize=8)
        save(fig, "overhead.png")

    uv_sizes = data["settings"]["uvloop_sizes"]
    if any(k.split("|")[2] == "uvloop" for k in s["overhead"]):
        n = max(uv_sizes)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, (source, contenders) in zip(axes, (("sqs", SQS_CONTENDERS),
                                                   ("kinesis", KINESIS_CONTENDERS))):
            names = [c for c in contenders if _oh(s, source, n, "uvloop", c)]
            for k, (loop, shade) in enumerate((("asyncio", 1.0), ("uvloop", 0.55))):
                ys = [(_oh(s, source, n, loop, c) or {"median": 0.0})["median"] for c in names]
                ax.bar([i + (k - 0.5) * 0.4 for i in range(len(names))], ys, 0.4, label=loop,
                       alpha=shade, color=[COLORS[c] for c in names], edgecolor="black")
            ax.set_yscale("log")
            ax.set_xticks(range(len(names)), [SHORT[c] for c in names], rotation=20)
            ax.set_ylabel("CPU µs per record (log)")
            ax.set_title(f"{'SQS' if source == 'sqs' else 'Kinesis'} {n:,}: asyncio (solid) "
                         "vs uvloop (light)")
            ax.grid(axis="y", which="both", alpha=0.3)
        save(fig, "uvloop.png")

    event = s["memory"].get("event")
    n = max(sizes)
    mem = [(c, s["overhead"].get(f"sqs|{n}|asyncio|{c}"), s["memory"].get(c))
           for c in SQS_CONTENDERS]
    mem = [m for m in mem if m[1] or m[2]]
    if mem and "memory" in data["selected"]:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        labels = [SHORT[c] for c, _, _ in mem]
        rss = [r["processing_rss_kb"]["median"] / 1024 if r else 0.0 for _, r, _ in mem]
        traced = [t["traced_peak_bytes"] / MB if t else 0.0 for _, _, t in mem]
        ax.barh([i + 0.2 for i in range(len(mem))], rss, 0.4, label="RSS growth (ru_maxrss)",
                color=[COLORS[c] for c, _, _ in mem])
        ax.barh([i - 0.2 for i in range(len(mem))], traced, 0.4, label="tracemalloc peak",
                color=[COLORS[c] for c, _, _ in mem], alpha=0.5, hatch="//")
        if event is not None:
            ev = event["traced_bytes"] / MB
            ax.axvline(ev, color="black", lw=1, label=f"event's own size ({ev:.0f} MB)")
            ax.axvline(0.3 * ev, color="grey", ls="--", lw=1, label="0.3 x event (target)")
        ax.set_yticks(range(len(mem)), labels)
        ax.set_xlabel("MB of memory for processing, beyond the event")
        ax.set_title(f"Memory processing {n:,} SQS records")
        ax.legend(fontsize=8)
        save(fig, "memory.png")

    if s["makespan"]:
        st = data["settings"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
        for ax, kind in zip(axes, ("fixed", "lognormal")):
            cs = st["makespan_concurrencies"]
            for loop, style, mark in (("cpu-clock", "-", "o"), ("asyncio", "--", "s")):
                table = s["makespan"].get(loop, {})
                for c in [*st["makespan_contenders"], *st.get("makespan_reference", ())]:
                    points = [(conc, table[f"{kind}|{conc}|{c}"]) for conc in cs
                              if f"{kind}|{conc}|{c}" in table]
                    if points:
                        ax.plot([p for p, _ in points],
                                [e["makespan"]["median"] / e["ideal"] for _, e in points],
                                marker=mark, ls=style, color=COLORS[c],
                                label=f"{SHORT[c]} ({CLOCKS[loop]})")
            greedy = [(conc, e) for conc in cs for tbl in s["makespan"].values()
                      for k, e in tbl.items() if k.startswith(f"{kind}|{conc}|")]
            seen: dict[int, float] = {}
            for conc, e in greedy:
                seen.setdefault(conc, e["greedy_no_overhead"] / e["ideal"])
            if seen:
                ax.plot(list(seen), list(seen.values()), ls=":", color="black", marker=".",
                        label="greedy, no overhead")
            ax.axhline(1.05, color="grey", ls="--", lw=0.8, label="ideal + 5%")
            ax.set_xscale("log")
            ax.set_xticks(cs, [str(c) for c in cs])
            ax.set_xlabel("concurrency")
            ax.set_ylabel("makespan / ideal")
            ax.set_title(f"{kind} latency, {st['makespan_n']:,} records")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        save(fig, "makespan.png")

    if s["skew"]:
        names = [sc["name"] for sc in data["settings"]["skew"]
                 if any(f"{sc['name']}|asyncbatch" in t for t in s["skew"].values())]
        series = [(loop, c) for loop in CLOCKS for c in ("asyncbatch", "floor_keyed")] + [
            ("sim", "lpt")]
        fig, ax = plt.subplots(figsize=(10, 4.8))
        width = 0.8 / len(series)
        for i, (loop, key) in enumerate(series):
            ys = []
            for name in names:
                if loop == "sim":
                    e = next(t[f"{name}|asyncbatch"] for t in s["skew"].values()
                             if f"{name}|asyncbatch" in t)
                    ys.append(e["lpt_no_overhead"] / e["ideal"])
                else:
                    v = s["skew"].get(loop, {}).get(f"{name}|{key}")
                    ys.append(v["makespan"]["median"] / v["ideal"] if v else 0.0)
            label = "LPT, no overhead" if loop == "sim" else f"{SHORT[key]} ({CLOCKS[loop]})"
            ax.bar([j + (i - (len(series) - 1) / 2) * width for j in range(len(names))], ys,
                   width, label=label, color=COLORS.get(key, "grey"),
                   alpha=1.0 if loop != "asyncio" else 0.5,
                   hatch="//" if loop == "asyncio" else None)
        ax.axhline(1.05, color="grey", ls="--", lw=0.8, label="ideal + 5%")
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("makespan / ideal")
        ax.set_ylim(0.9, None)
        ax.set_title("Kinesis with Zipf partition keys")
        ax.legend(fontsize=7)
        save(fig, "skew.png")

    cold = s.get("coldstart") or {}
    if cold:
        names = [c for c in COLDSTART_CONTENDERS if c in cold]
        labels = {"floor": "bare asyncio.run (floor)", "asyncbatch": "asyncbatch",
                  "powertools": "powertools BatchProcessor",
                  "powertools_async": "powertools AsyncBatchProcessor"}
        fig, ax = plt.subplots(figsize=(9, 3.8))
        imports = [cold[c]["import_cpu_ms"]["median"] for c in names]
        firsts = [cold[c]["first_cpu_ms"]["median"] for c in names]
        ys = range(len(names))
        ax.barh(ys, imports, 0.6, label="import", color=[COLORS.get(c, "grey") for c in names])
        ax.barh(ys, firsts, 0.6, left=imports, label="first batch", color="#cccccc",
                hatch="//", edgecolor="grey")
        if "floor" in cold:
            floor = cold["floor"]["total_cpu_ms"]["median"]
            ax.axvline(floor, color="black", lw=1, label=f"floor ({floor:.0f} ms)")
            ax.axvline(floor + COLDSTART_TARGET_MS, color="grey", ls="--", lw=1,
                       label=f"floor + {COLDSTART_TARGET_MS:g} ms (target)")
        ax.set_yticks(list(ys), [labels[c] for c in names])
        ax.set_xlabel("CPU ms (medians of fresh interpreters, .pyc present)")
        ax.set_title(f"Cold start: import + first {cold[names[0]]['records']}-record SQS batch")
        ax.legend(fontsize=8)
        save(fig, "coldstart.png")

    if s["import"]:
        imp = s["import"]
        labels = [lb for lb in IMPORT_TARGETS if lb in imp and IMPORT_TARGETS[lb][2]]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        vals = [imp[lb]["importtime_us"]["median"] / 1000 for lb in labels]
        cpu = [(imp[lb]["cpu_s"]["median"]
                - imp.get(IMPORT_TARGETS[lb][2], imp[lb])["cpu_s"]["median"]) * 1000
               for lb in labels]
        ax.barh([i + 0.2 for i in range(len(labels))], cpu, 0.4,
                label="net CPU of python -c (minus its baseline)")
        ax.barh([i - 0.2 for i in range(len(labels))], vals, 0.4, label="-X importtime")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("ms (median)")
        ax.set_title("Cold import, fresh interpreters")
        ax.legend(fontsize=8)
        save(fig, "import.png")
    return made


def write_report(data: dict[str, Any], out: Path) -> None:
    s = summarise(data)
    plots = plot_all(data, s, out)
    (out / "summary.json").write_text(json.dumps(s, indent=1) + "\n", encoding="utf-8")
    (out / "RESULTS.md").write_text(render(data, s, plots), encoding="utf-8")


def main(path: str) -> None:
    """Re-render the report from an existing ``results.json``."""
    source = Path(path)
    data = json.loads(source.read_text(encoding="utf-8"))
    write_report(data, source.parent)
