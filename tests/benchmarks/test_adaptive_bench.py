"""``benchmarks/adaptive.py`` at a tiny size: the result's structure, the report files, and
the proposed windowed limit's rules. No timing is asserted: the machine is shared."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from asyncbatch import AIMDLimit, GradientLimit
from benchmarks import adaptive

TINY = adaptive.Scenario(records=120, capacity=4, latency_ms=1.0, attempts=20,
                         retry_base_ms=1.0, retry_cap_ms=5.0)
# any "fixed N" is a contender: here around the tiny capacity (4)
CONTENDERS = ("fixed 2", "fixed 8", "AIMDLimit() per call", "Windowed(AIMDLimit())")


def test_tiny_benchmark_result_structure(tmp_path: Path) -> None:
    lines: list[str] = []
    result = adaptive.run_benchmark(TINY, CONTENDERS, reps=2, fresh=False,
                                    progress=lines.append)
    assert len(lines) == 2 * len(CONTENDERS)
    assert [s.contender for s in result.summaries] == list(CONTENDERS)
    by_name = result.by_name()
    for summary in result.summaries:
        assert len(summary.runs) == 2
        assert [run.rep for run in summary.runs] == [0, 1]
        assert summary.throughput > 0 and summary.makespan > 0
        assert 0 < summary.ratio <= 1.0 or summary.fixed is None
        for run in summary.runs:
            if summary.fixed is not None and summary.fixed <= TINY.capacity:
                assert run.failed == 0 and run.throttled == 0  # never above the capacity
            # above it, retries (20 attempts) get almost every record through; how many
            # do depends on the machine's timing (no virtual clock here), so only the
            # count is checked: no record is lost or counted twice
            assert 0 <= run.failed <= TINY.records
            assert run.peak_inflight <= (summary.fixed or 256)
    assert by_name["fixed 2"].throttled == 0 and by_name["fixed 2"].fixed == 2
    assert by_name["fixed 8"].runs[0].throttled > 0  # 8 calls against a capacity of 4
    assert result.best_fixed.contender in ("fixed 2", "fixed 8")
    assert result.best_fixed.ratio == 1.0
    for name in ("AIMDLimit() per call", "Windowed(AIMDLimit())"):
        summary = by_name[name]
        assert summary.fixed is None and summary.final_limit is not None
        trace = summary.runs[0].trace
        assert trace and all(t >= 0 and limit >= 1 for t, limit, _ in trace)
        verdict = result.verdict(summary)
        assert set(verdict) == {"ratio", "ratio_ok", "throttled", "fewest_above_capacity",
                                "throttles_ok", "met"}
        assert verdict["fewest_above_capacity"] == by_name["fixed 8"].throttled
        assert verdict["met"] == (verdict["ratio_ok"] and verdict["throttles_ok"])

    md = adaptive.write_markdown(result, tmp_path / "adaptive.md").read_text()
    assert "| **fixed" in md and "(best fixed)" in md
    assert "## Target" in md and "## Machine" in md and "python:" in md
    assert all(name in md for name in CONTENDERS)
    png = adaptive.write_plot(result, tmp_path / "adaptive.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    data = adaptive.result_json(result)
    assert set(data["verdicts"]) == {"AIMDLimit() per call", "Windowed(AIMDLimit())"}


def test_each_run_can_take_a_fresh_interpreter() -> None:
    result = adaptive.run_benchmark(
        adaptive.Scenario(records=40, capacity=4, latency_ms=1.0),
        ("fixed 2", "AIMDLimit() per call"), reps=1, fresh=True)
    assert result.fresh
    auto = result.by_name()["AIMDLimit() per call"]
    assert auto.runs[0].final_limit is not None and auto.runs[0].trace


def test_unknown_contenders_and_no_fixed_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown contenders"):
        adaptive.run_benchmark(TINY, ("fixed 2", "fastest"), reps=1, fresh=False)
    with pytest.raises(ValueError, match="unknown contenders"):
        adaptive.run_benchmark(TINY, ("fixed 0", "fixed 2"), reps=1, fresh=False)
    with pytest.raises(ValueError, match="at least one fixed limit"):
        adaptive.run_benchmark(TINY, ("AIMDLimit() per call",), reps=1, fresh=False)


def test_windowed_cuts_once_per_window_where_aimd_cuts_per_throttle() -> None:
    engine = AIMDLimit(initial=50, max=100)
    windowed = adaptive.Windowed(AIMDLimit(initial=50, max=100), slow_start=False)
    for _ in range(20):  # a burst of throttles, all within one round trip (rtt 0)
        engine.on_sample(0.0, 50, True)
        windowed.on_sample(0.0, 50, True)
    assert engine.current == math.floor(50 * 0.9**20)  # 6
    assert windowed.current == math.floor(50 * 0.9**2)  # two windows of 10 calls: 40
    for _ in range(20):  # good calls: +1 per window, not +1 per call
        windowed.on_sample(0.0, 50, False)
    assert windowed.current == math.floor(50 * 0.9**2) + 2


def test_windowed_slow_start_passes_calls_through_until_the_first_drop() -> None:
    windowed = adaptive.Windowed(AIMDLimit(initial=10, max=100))
    for _ in range(15):
        windowed.on_sample(0.0, windowed.current, False)
    assert windowed.current == 25 and windowed.slow_start  # +1 per call, as AIMDLimit
    windowed.on_sample(0.0, 25, True)
    assert not windowed.slow_start and windowed.current == 25  # the window just opened
    proposed = adaptive.WindowedAIMD(initial=10, max=100)
    for _ in range(15):
        proposed.on_sample(0.0, proposed.current, False)
    proposed.on_sample(0.0, 25, True)
    assert proposed.current == 12  # slow start ends halving the limit


def test_windowed_gradient_and_wrappers_keep_the_protocol() -> None:
    import asyncbatch

    for limit in (adaptive.Windowed(GradientLimit(max=200)), adaptive.WindowedAIMD(),
                  adaptive.OneCutPerRTT(AIMDLimit())):
        assert isinstance(limit, asyncbatch.ConcurrencyLimit)
        processor = asyncbatch.AsyncBatchProcessor(concurrency=limit)
        assert processor.concurrency == limit.max
