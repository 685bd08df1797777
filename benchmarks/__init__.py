"""The asyncbatch benchmark suite: ``python -m benchmarks --help``.

Every contender runs in its own fresh interpreter (``python -m benchmarks._runner``,
JSON in, JSON out); the suite (``_suite``) repeats runs, takes medians, and writes
``results/RESULTS.md`` and PNG plots (``_report``). Events are built by ``_events``.
"""
