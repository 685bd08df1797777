"""The targets a run is held to, and the comparison with the previous run's figures."""

from __future__ import annotations

from typing import Any, Optional

from ._summary import CLOCKS, MB, SHORT, _net_import, _oh, _ratio


def _r(x: Optional[float], digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}x"


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
