"""The stream fuzzer's run: seeded scenarios of ``processor.stream()`` (see ``streams.py``)
in virtual time; ``FUZZ_SEED=<seed>`` replays one, ``ASYNCBATCH_FUZZ=long`` runs ten
times as many."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .streams import check_stream, generate_stream, run_stream

#: scenarios per run: CI and long
CI_STREAMS = 1_500
LONG_STREAMS = 15_000
SHOWN = 3


def test_random_streams_keep_every_rule() -> None:
    if os.environ.get("FUZZ_SEED"):
        seed = int(os.environ["FUZZ_SEED"])
        seeds = range(seed, seed + 1)
    else:
        count = LONG_STREAMS if os.environ.get("ASYNCBATCH_FUZZ") == "long" else CI_STREAMS
        seeds = range(count)
    failures = []
    for seed in seeds:
        scenario = generate_stream(seed)
        violations = check_stream(run_stream(scenario))
        if violations:
            failures.append((scenario, violations))
    if failures:
        lines = [f"{len(failures)} of {len(seeds)} stream scenarios broke a rule (seeds "
                 f"{[f[0].seed for f in failures][:20]}); replay with FUZZ_SEED=<seed>"]
        for scenario, violations in failures[:SHOWN]:
            lines += [f"\n--- FUZZ_SEED={scenario.seed}", scenario.summary(), *violations[:8]]
        raise AssertionError("\n".join(lines))


def test_the_stream_checks_catch_a_broken_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules are only worth what they catch: a processor that runs twice the
    concurrency it was given is caught within the first few hundred seeds."""
    import asyncbatch

    real = asyncbatch.AsyncBatchProcessor.__init__

    def doubled(self: Any, *args: Any, concurrency: Any = 10, **kwargs: Any) -> None:
        real(self, *args, concurrency=2 * concurrency, **kwargs)

    monkeypatch.setattr(asyncbatch.AsyncBatchProcessor, "__init__", doubled)
    for seed in range(300):
        if any("ran at once" in v for v in check_stream(run_stream(generate_stream(seed)))):
            return
    pytest.fail("no seed caught a processor running twice its concurrency")
