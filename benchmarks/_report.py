"""From ``results.json`` to ``RESULTS.md`` and PNG plots (matplotlib, Agg backend).

``summarise`` reduces the raw runs to medians and ratios; ``write_report`` renders them.
Every ratio divides two medians of the same suite run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._plots import plot_all
from ._summary import summarise
from ._tables import render, targets_table
from ._targets import compare_previous

__all__ = ["compare_previous", "main", "summarise", "targets_table", "write_report"]


def write_report(data: dict[str, Any], out: Path) -> None:
    s = summarise(data)
    plots = plot_all(data, s, out)
    (out / "summary.json").write_text(json.dumps(s, indent=1) + "\n", encoding="utf-8")
    (out / "RESULTS.md").write_text(render(data, s, plots), encoding="utf-8")


def main(path: str) -> None:
    """Re-render the report from an existing ``results.json``."""
    source = Path(path)
    data = json.loads(source.read_text(encoding="utf-8"))
    write_report(data, source.parent)
