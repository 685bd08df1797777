"""MkDocs hook: publish ``benchmarks/results/`` (the plots and the result tables) in the site.

The benchmark results live beside the benchmarks that write them (``python -m benchmarks``
regenerates them); rather than copy them into ``docs/``, where they would go stale, the
build adds them to the site as ``benchmarks/results/<name>``, so that a page links to
``benchmarks/results/overhead.png`` and the result tables render as pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
PUBLISHED = (".png", ".md")


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(RESULTS.iterdir()):
        if path.suffix in PUBLISHED:
            files.append(File.generated(config, f"benchmarks/results/{path.name}",
                                        abs_src_path=str(path)))
    return files
