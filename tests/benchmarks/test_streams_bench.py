"""``benchmarks/streams.py`` at a tiny size: the table's shape, the memory and rate lines.
No timing is asserted: the machine is shared."""

from __future__ import annotations

from pathlib import Path

from benchmarks import streams


def test_streams_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "streams.md"
    assert streams.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")
            and not line.startswith("| contender")]
    assert [row.split("|")[1].strip() for row in rows] == streams.available()
    assert rows[0].split("|")[3].strip() == "1.00x"  # the floor against itself
    assert "peak traced memory" in text and "starts/s" in text
    assert (tmp_path / "streams.png").exists()
