"""``benchmarks/sources.py`` at a tiny size: every source's row against its floor, the
memory column, the cold-start pair and the plot. No timing is asserted: the machine is
shared."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import sources


def test_sources_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "sources.md"
    assert sources.main(["--quick", "--n", "200", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| ")]
    names = [row[1].strip() for row in rows if row[1].strip() in sources.GOALS]
    assert names == [case.name for case in sources.CASES]
    assert "over the floor** (paired)" in text
    data = json.loads(out.with_suffix(".json").read_text())
    for name, ratios in data["cost"]["ratios"].items():
        assert len(ratios) == data["cost"]["rounds"] == 2
        assert all(r > 0 for r in ratios), name
    assert set(data["memory"]) == {c.name for c in sources.CASES if not c.context}
    assert len(data["coldstart"]["extra_ms"]) == 1
    assert (tmp_path / "sources.png").exists()
