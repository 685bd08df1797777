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

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("## Machine", "## Targets", "### Current targets", "## Overhead per record",
            "## uvloop on and off", "## Peak memory", "## I/O-bound makespan", "## Stream skew",
            "## Cold start", "## Cold import")
PLOTS = ("overhead.png", "uvloop.png", "memory.png", "makespan.png", "skew.png", "coldstart.png",
         "import.png")


@pytest.fixture(scope="module")
def quick_proc(
        tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("RESULTS.md")
    return out, proc


@pytest.fixture(scope="module")
def quick_run(quick_proc: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return quick_proc[0]


def test_states_expected_time_and_prints_the_issue_14_table(
        quick_proc: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, proc = quick_proc
    assert "expected run time: about" in proc.stderr  # said even with --quiet
    assert "current targets:" in proc.stdout
    table = proc.stdout.split("current targets:", 1)[1]
    assert "| Cold start, import + first 200-record SQS batch" in table
    assert "Lambda-like context" in table


def test_results_json_parses_and_has_no_errors(quick_run: Path) -> None:
    data = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert data["machine"]["python"] == sys.version.split()[0]
    assert data["machine"]["versions"]["asyncbatch"]
    errors = [r for r in data["runs"] if "error" in r["result"]]
    assert errors == []
    tasks = {r["task"] for r in data["runs"]}
    assert tasks == {"overhead", "event_size", "makespan", "skew", "coldstart", "import"}


def test_cold_start_and_import_run_from_pyc(quick_run: Path) -> None:
    """The import is timed with .pyc written (a deployment package ships them), not the
    compiler; the cold start answers every record; asyncio's path imports no anyio."""
    data = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    cold = [r for r in data["runs"] if r["task"] == "coldstart"]
    assert {r["contender"] for r in cold} == {"floor", "asyncbatch", "powertools",
                                              "powertools_async"}
    for run in cold:
        result = run["result"]
        assert result["pyc"] is True, run
        assert result["dont_write_bytecode"] is False, run
        assert result["failures"] == 0 and result["records"] == 200, run
        assert result["wall"] >= result["first_wall"] > 0, run
    # (before 3.11 asyncio has no TaskGroup: asyncbatch runs on it through anyio)
    native = ("floor", "asyncbatch") if sys.version_info >= (3, 11) else ("floor",)
    assert not any(r["result"]["anyio_imported"] for r in cold if r["contender"] in native)
    imports = [r for r in data["runs"] if r["task"] == "import"]
    assert all(r["pyc"] is (r["target"] != "asyncbatch without .pyc") for r in imports)


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


def test_previous_results_are_compared(quick_run: Path, tmp_path: Path) -> None:
    """A run against itself as the previous results: every row compared, all noise."""
    from benchmarks._report import compare_previous, summarise, write_report

    data = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    data["previous"] = {"machine": data["machine"], "summary": summarise(data)}
    rows = compare_previous(data, summarise(data))
    assert len(rows) > 10
    assert {r["verdict"] for r in rows} == {"noise"}
    assert {round(r["change"], 9) for r in rows} == {1.0}
    write_report(data, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## Against the previous results" in text
    assert "Nothing else slower than the previous results" in text


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


def test_results_replace_the_previous_only_when_complete(tmp_path: Path) -> None:
    """The suite writes into a temporary directory and moves the files into place at the
    end: a run that fails leaves the previous results as they were."""
    from benchmarks._suite import QUICK, run_suite

    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text('{"runs": [], "note": "previous"}\n', encoding="utf-8")

    def broken(data: dict[str, object], where: Path) -> None:
        (where / "RESULTS.md").write_text("half written", encoding="utf-8")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        run_suite(QUICK, [], out, quick=True, quiet=True, report=broken)
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert "previous" in (out / "results.json").read_text(encoding="utf-8")

    def report(data: dict[str, object], where: Path) -> None:
        assert where != out
        (where / "RESULTS.md").write_text("complete", encoding="utf-8")

    data = run_suite(QUICK, [], out, quick=True, quiet=True, report=report)
    assert (out / "RESULTS.md").read_text(encoding="utf-8") == "complete"
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"] == []
    assert data["expected_s"] >= 0
