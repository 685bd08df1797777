"""The SQS worker's benchmark runs (no timing assertion: only its shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import consume

pytest.importorskip("aioboto3")


def test_consume_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "consume.md"
    assert consume.main(["--quick", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")
            and not line.startswith("| contender")]
    assert [row.split("|")[1].strip() for row in rows] == list(consume.CONTENDERS)
    assert all(row.split("|")[4].strip().endswith("x") for row in rows)
    assert all(row.split("|")[6].strip() == "0" for row in rows)  # no message twice
    assert out.with_suffix(".png").exists()
