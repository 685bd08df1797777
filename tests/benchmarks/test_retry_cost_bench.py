"""The retry-cost benchmark runs (no timing assertion: only its shape and its 0 failures)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import retry_cost


def test_retry_cost_quick(tmp_path: Path) -> None:
    out = tmp_path / "retry_cost.md"
    assert retry_cost.main(["--quick", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 10%")]
    assert len(rows) == 2
    with_retry = rows[0].split("|")
    assert with_retry[-2].strip() == "0"  # retries absorb every throttle
