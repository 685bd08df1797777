"""The sync-handler benchmark runs (no timing assertion: only its shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import sync_handlers

pytest.importorskip("aws_lambda_powertools")


def test_sync_handlers_quick(tmp_path: Path) -> None:
    out = tmp_path / "sync_handlers.md"
    assert sync_handlers.main(["--quick", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")
            and not line.startswith("| contender")]
    assert [row.split("|")[1].strip() for row in rows] == sync_handlers.CONTENDERS * 2
    assert all(row.rstrip(" |").endswith("x") for row in rows)
