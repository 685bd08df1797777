"""The reduction of a benchmark run: medians, spreads and ratios per source, size,
loop and contender (``summarise``), and the names and colours the report uses."""

from __future__ import annotations

from typing import Any, Optional

from ._suite import (
    COLDSTART_CONTENDERS,
    IMPORT_TARGETS,
    median,
    select,
)

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
    from ._targets import issue14_targets, targets

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


def _net_import(s: dict[str, Any], metric: str) -> Optional[float]:
    """powertools' batch import / asyncbatch's, each net of the bare interpreter."""
    imp = s["import"]
    if not {"python -c pass", "import asyncbatch", "powertools batch"} <= set(imp):
        return None
    base = imp["python -c pass"][metric]["median"]
    ab = imp["import asyncbatch"][metric]["median"] - base
    pt = imp["powertools batch"][metric]["median"] - base
    return pt / ab if ab > 0 else None
