"""The report's plots (matplotlib, written next to RESULTS.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from ._suite import (
    COLDSTART_CONTENDERS,
    IMPORT_TARGETS,
    KINESIS_CONTENDERS,
    SQS_CONTENDERS,
)
from ._summary import CLOCKS, COLORS, MB, SHORT, _oh
from ._targets import COLDSTART_TARGET_MS

# -- plots ---------------------------------------------------------------------------


def bar_chart(path: Path, names: Sequence[str], values: Sequence[float], labels: Sequence[str],
              *, xlabel: str, title: str, spread: Optional[Sequence[tuple[float, float]]] = None,
              marks: Optional[dict[str, float]] = None, log: bool = False) -> Optional[Path]:
    """One horizontal bar per name (the first at the top), labelled; ``spread``: each
    bar's (low, high) drawn as an error bar; ``marks``: a red tick at a name's value (a
    goal); a grey line at 1 unless ``log``. ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names, values, labels = list(names)[::-1], list(values)[::-1], list(labels)[::-1]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if spread is None:
        bars = ax.barh(names, values, color="#4c72b0")
    else:
        low, high = zip(*[(v - lo, hi - v) for v, (lo, hi) in zip(values, list(spread)[::-1])])
        bars = ax.barh(names, values, xerr=[low, high], color="#4c72b0", capsize=3)
    ax.bar_label(bars, labels=labels, padding=8 if spread is not None else 3)
    for i, name in enumerate(names):
        mark = (marks or {}).get(name)
        if mark is not None:
            ax.plot([mark, mark], [i - 0.4, i + 0.4], color="#c44e52", linewidth=2)
    if log:
        ax.set_xscale("log")
    else:
        ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
