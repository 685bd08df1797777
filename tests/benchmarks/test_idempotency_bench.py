"""The idempotency benchmark's report, from a results dict shaped as its run makes one
(the run itself needs a moto process and minutes: ``python -m benchmarks.idempotency``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.idempotency import Plan, event, summarise, write_report


def rounds(n: int, first_s: float, replay_s: float, requests: dict[str, int],
           replay_requests: dict[str, int]) -> list[dict[str, dict[str, Any]]]:
    return [{"first": {"seconds": first_s * k, "cpu_s": 0.5, "moto_cpu_s": 1.0, "ran": n,
                       "failures": 0, "requests": requests, "records": n},
             "replay": {"seconds": replay_s * k, "cpu_s": 0.1, "moto_cpu_s": 0.1, "ran": 0,
                        "failures": 0, "requests": replay_requests, "records": n}}
            for k in (1.0, 1.2, 0.9)]


def test_the_report_gives_ratios_per_round_and_requests_per_record(tmp_path: Path) -> None:
    base = rounds(200, 8.0, 5.0, {"PutItem": 200, "UpdateItem": 200}, {"PutItem": 200})
    ours = rounds(1000, 8.0, 1.0, {"BatchGetItem": 10, "PutItem": 1000, "BatchWriteItem": 40},
                  {"BatchGetItem": 10})
    rows = [summarise("powertools", 200, base, None, lambda *_: None),
            summarise("asyncbatch-c64", 1000, ours, base, lambda *_: None)]
    assert rows[1]["first"]["ratio"] == 5.0  # 125 records/s against 25, in every round
    assert rows[1]["replay"]["requests_per_record"] == 0.01
    plan = Plan(records=1000, powertools_records=200, concurrency=(64,), repeats=3,
                delay_ms=8.0)
    write_report({"plan": plan.__dict__, "rows": rows, "elapsed_s": 60.0,
                  "machine": {"cpus": 2, "python": "3.11", "load": 1.0}}, tmp_path)
    text = (tmp_path / "idempotency.md").read_text()
    assert "| asyncbatch c64 | first | 125 | 5.0x | 1.050 |" in text
    assert "| asyncbatch c64 | replay | 1,000 | 25.0x | 0.010 |" in text
    assert (tmp_path / "idempotency.png").stat().st_size > 10_000


def test_the_benchmark_batch_is_a_valid_sqs_event() -> None:
    import asyncbatch

    batch = event(3)
    views = [asyncbatch.SQSRecord(raw) for raw in batch["Records"]]
    assert len({v.identifier for v in views}) == 3
    assert views[2].json() == {"order_id": "o-2", "amount": 2}
