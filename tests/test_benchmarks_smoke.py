"""The benchmark suite runs end to end at tiny sizes and writes what it promises.

No timing is asserted: the machine is shared and noisy. The suite's own correctness
checks are asserted instead (no failed records, the concurrency bound reached and kept,
per-key order kept under skew).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## Machine", "## Targets", "## Overhead per record", "## uvloop on and off",
            "## Peak memory", "## I/O-bound makespan", "## Stream skew", "## Cold import")
PLOTS = ("overhead.png", "uvloop.png", "memory.png", "makespan.png", "skew.png", "import.png")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("RESULTS.md")
    return out


def test_results_json_parses_and_has_no_errors(quick_run: Path) -> None:
    data = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert data["machine"]["python"] == sys.version.split()[0]
    assert data["machine"]["versions"]["asyncbatch"]
    errors = [r for r in data["runs"] if "error" in r["result"]]
    assert errors == []
    tasks = {r["task"] for r in data["runs"]}
    assert tasks == {"overhead", "event_size", "makespan", "skew", "import"}


def test_every_contender_processed_every_record(quick_run: Path) -> None:
    data = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    for run in data["runs"]:
        if run["task"] in ("overhead", "makespan", "skew"):
            assert run["result"]["failures"] == 0, run
    for run in data["runs"]:
        if run["task"] in ("makespan", "skew"):
            assert run["result"]["peak_in_flight"] == run["concurrency"], run
        if run["task"] == "skew":
            assert run["result"]["order_violations"] == 0, run


def test_summary_has_ratios_and_targets(quick_run: Path) -> None:
    summary = json.loads((quick_run / "summary.json").read_text(encoding="utf-8"))
    keys = set(summary["overhead"])
    assert "sqs|300|asyncio|asyncbatch" in keys
    assert "kinesis|300|uvloop|floor_keyed" in keys
    assert summary["memory"]["event"]["traced_bytes"] > 0
    assert {t["target"].split(":")[0] for t in summary["targets"]}
    assert summary["errors"] == []


def test_markdown_has_every_section_and_table(quick_run: Path) -> None:
    text = (quick_run / "RESULTS.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text, section
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) > 30
    for line in rows:  # every table row is well formed
        assert line.endswith("|"), line
    for plot in PLOTS:
        assert f"]({plot})" in text


@pytest.mark.parametrize("plot", PLOTS)
def test_plots_are_pngs(quick_run: Path, plot: str) -> None:
    path = quick_run / plot
    assert path.read_bytes()[:8] == PNG
    assert path.stat().st_size > 5_000


def test_report_rerenders_from_results_json(quick_run: Path) -> None:
    (quick_run / "RESULTS.md").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--report", str(quick_run / "results.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Targets" in (quick_run / "RESULTS.md").read_text(encoding="utf-8")


def test_unknown_benchmark_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nonsense"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr
