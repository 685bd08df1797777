"""MkDocs hook: publish ``benchmarks/results/`` (the plots and the result tables) in the site.

The benchmark results live beside the benchmarks that write them (``python -m benchmarks``
regenerates them); rather than copy them into ``docs/``, where they would go stale, the
build adds them to the site as ``benchmarks/results/<name>``: every plot, and the result
tables that ``mkdocs.yml``'s nav lists (a new table appears once it is added there; until
then it is left out rather than failing the strict build as a page outside the nav).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
PREFIX = "benchmarks/results/"


def _nav_paths(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)


def on_files(files: Files, config: Any) -> Files:
    in_nav = set(_nav_paths(config["nav"]))
    for path in sorted(RESULTS.iterdir()):
        uri = PREFIX + path.name
        if path.suffix == ".png" or (path.suffix == ".md" and uri in in_nav):
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
