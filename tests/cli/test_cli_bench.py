"""``asyncbatch bench``, run in-process on tiny sweeps: the table, the knee, the JSON, the
plot, and clear errors (exit code 2, no traceback) for bad arguments. No timing is
asserted: the machine is shared."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asyncbatch import bench as _bench
from asyncbatch.cli import main

TINY = ["--records", "200", "--concurrency", "1,4", "-q"]


def bench(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["bench", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (the concurrency level)."""
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["concurrency", "throughput"]
    assert set(lines[1]) <= {"-", " "}
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0].split(" (")[0]] = cells
    return rows


def test_synthetic_sweep_prints_the_table_and_the_knee(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "sweep.png"
    code, out, err = bench(capsys, "--latency", "1ms", *TINY, "--plot", str(plot))
    assert code == 0, err
    rows = table_rows(out)
    assert list(rows) == ["1", "4"]
    for cells in rows.values():
        assert cells[1].endswith("rec/s") and float(cells[1].split()[0].replace(",", "")) > 0
        assert all(cell.endswith(" ms") for cell in cells[2:5])  # p50, p95, p99
        assert cells[7] == "0"  # nothing failed
    knee = re.search(r"^knee: concurrency (\d+) \(", out, re.MULTILINE)
    assert knee is not None and knee.group(1) in rows
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot saved to {plot}" in err


def test_json_to_stdout_has_every_level_and_the_knee(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--latency", "lognormal:1ms:0.3", "--records", "200",
                           "--concurrency", "1,4,auto", "--json")
    assert code == 0, err
    data = json.loads(out)  # stdout is pure JSON: progress went to stderr
    assert [r["level"] for r in data["results"]] == ["1", "4", "auto"]
    for result in data["results"]:
        assert result["succeeded"] == result["records"] == 200
        assert result["failed"] == result["skipped"] == 0
        assert result["p50"] <= result["p95"] <= result["p99"]
        assert result["throughput"] > 0 and result["makespan"] > 0
    auto = data["results"][2]
    assert auto["concurrency"] is None and 1 <= auto["final_limit"] <= 256
    assert data["knee"]["concurrency"] in (1, 4)
    assert data["knee"]["throughput"] >= 0.95 * data["best"]["throughput"]
    assert "concurrency 4: 200 ok, 0 failed" in err


def test_json_to_a_file_keeps_the_table(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    code, out, _ = bench(capsys, "--latency", "1ms", *TINY, "--json", str(target))
    assert code == 0
    assert "knee: concurrency" in out
    assert [r["concurrency"] for r in json.loads(target.read_text())["results"]] == [1, 4]


def test_probabilistic_throttling_with_slowdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--latency", "1ms", "--throttle-above", "2",
                           "--throttle-slope", "0.5", "--slowdown", "1", "--records", "60",
                           "--concurrency", "6", "--attempts", "50", "--retry-base", "1ms",
                           "--json")
    assert code == 0, err
    data = json.loads(out)
    (result,) = data["results"]
    assert result["succeeded"] == 60 and result["peak_inflight"] > 2
    assert "throttles with probability 0.5 * overload" in data["workload"]


def test_throttling_dependency_counts_throttles_and_retries(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--latency", "1ms", "--throttle-above", "2", "--records",
                           "100", "--concurrency", "1,8", "--attempts", "50",
                           "--retry-base", "1ms", "--retry-cap", "5ms", "--json")
    assert code == 0, err
    one, eight = json.loads(out)["results"]
    assert one["throttled"] == one["retries"] == 0 and one["peak_inflight"] == 1
    # Every call beyond 2 in flight is throttled: a record can lose the race 50 times in a
    # row (seen about once in 30 runs) and fail; its last throttle is not retried.
    assert eight["throttled"] > 0
    assert eight["succeeded"] + eight["failed"] == 100 and eight["skipped"] == 0
    assert eight["retries"] == eight["throttled"] - eight["failed"]
    assert all("TransientError: throttled" in error for error in eight["errors"])


@pytest.mark.parametrize("source", ["fifo", "kinesis", "dynamodb"])
def test_generated_ordered_sources_run(capsys: pytest.CaptureFixture[str], source: str) -> None:
    code, out, err = bench(capsys, "--latency", "1ms", "--source", source, "--records", "60",
                           "--keys", "3", "--concurrency", "2,16", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert all(r["succeeded"] == 60 for r in results)
    # three keys: never more than three handlers at once, whatever the bound
    assert all(r["mean_inflight"] <= 3.0 + 1e-9 for r in results)


HANDLER_MODULE = '''
import anyio

seen = []


async def handle(record):
    seen.append(record.identifier)
    await anyio.sleep(0.001)
    if record.identifier.endswith("7"):
        raise ValueError("bad record")


def not_async(record):
    return None
'''


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"bench_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_user_handler_on_a_sample_event_repeated(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, handler_module: str) -> None:
    sample = tmp_path / "event.json"
    sample.write_text(json.dumps(_bench.generate_event("sqs", 3)))
    code, out, err = bench(capsys, "--handler", f"{handler_module}:handle", "--event",
                           str(sample), "--records", "30", "--concurrency", "1,4",
                           "--attempts", "1", "--json")
    assert code == 0, err
    import importlib

    seen = importlib.import_module(handler_module).seen
    assert len(seen) == 60 and len(set(seen)) == 30  # 30 distinct records, at two levels
    results = json.loads(out)["results"]
    # the 30 records take the identifiers of positions 0..29: 3 of them end in 7
    assert [r["failed"] for r in results] == [3, 3]
    assert [r["succeeded"] for r in results] == [27, 27]


def test_handler_given_as_a_file_path(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = tmp_path / "bench_file_app.py"
    app.write_text("async def handle(record):\n    return None\n")
    code, out, err = bench(capsys, "--handler", f"{app}:handle", "--records", "50",
                           "--concurrency", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["results"][0]["succeeded"] == 50
    assert data["results"][0]["throttled"] is None  # no simulated dependency
    code, _, err = bench(capsys, "--handler", f"{tmp_path / 'missing.py'}:handle", "-q")
    assert code == 2 and "no such file" in err


def test_sample_stream_event_is_renumbered_in_order(tmp_path: Path) -> None:
    sample = tmp_path / "kinesis.json"
    sample.write_text(json.dumps(_bench.generate_event("kinesis", 4, keys=2)))
    records = _bench.load_event(str(sample), 10)["Records"]
    seqs = [int(r["kinesis"]["sequenceNumber"]) for r in records]
    assert len(records) == 10 and seqs == sorted(seqs) and len(set(seqs)) == 10
    assert [r["kinesis"]["partitionKey"] for r in records] == ["key-0", "key-1"] * 5


@pytest.mark.parametrize("source", ["sqs", "fifo", "kinesis", "dynamodb", "kafka"])
def test_a_sample_event_of_every_source_is_repeated_to_records(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str) -> None:
    sample = tmp_path / f"{source}.json"
    sample.write_text(json.dumps(_bench.generate_event(source, 3, keys=3)))
    code, out, err = bench(capsys, "--latency", "1ms", "--event", str(sample), "--records",
                           "40", "--concurrency", "8", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    assert result["records"] == result["succeeded"] == 40
    assert result["mean_inflight"] <= (8 if source == "sqs" else 3) + 1e-9


def test_kafka_is_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--latency", "1ms", "--source", "kafka", "--keys", "4",
                           "--records", "80", "--concurrency", "2,16", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == "kafka"
    results = data["results"]
    assert [r["succeeded"] for r in results] == [80, 80]
    assert results[1]["mean_inflight"] <= 4.0 + 1e-9  # one record per partition at a time


def test_output_to_a_closed_pipe_is_not_a_traceback() -> None:
    import subprocess
    import sys

    bench_cmd = subprocess.Popen(
        [sys.executable, "-m", "asyncbatch", "bench", "--latency", "0ms", "--records", "20",
         "--concurrency", ",".join(str(n) for n in range(1, 200)), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert bench_cmd.stdout is not None and bench_cmd.stderr is not None
    bench_cmd.stdout.close()  # the reader is gone before the table is written
    err = bench_cmd.stderr.read().decode()
    assert bench_cmd.wait(timeout=120) == 141, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--handler", "no_such_module_xyz:handle"], "no module named 'no_such_module_xyz'"),
    (["--handler", "json:__name__"], "__name__ is not callable"),
    (["--handler", "json:no_such_function"], "json has no 'no_such_function'"),
    (["--handler", "json"], "give MODULE:FUNCTION"),
    (["--latency", "10"], "'10' is not a duration"),
    (["--latency", "lognormal:10ms"], "lognormal takes 2 value(s)"),
    (["--latency", "gamma:10ms"], "unknown distribution 'gamma'"),
    (["--latency", "lognormal:10ms:-1"], "sigma '-1' must be a number >= 0"),
    (["--latency", "1ms", "--concurrency", "1,lots"], "'lots' is not a whole number"),
    (["--latency", "1ms", "--concurrency", "0"], "levels must be >= 1"),
    (["--latency", "1ms", "--event", "/no/such/event.json"], "cannot read it"),
    (["--handler", "json:dumps", "--throttle-above", "5"], "use it with --latency"),
    (["--latency", "1ms", "--timeout", "soon"], "--timeout 'soon' is not a duration"),
    (["--latency", "1ms", "--throttle-above", "5", "--slowdown", "1"],
     "--slowdown needs --throttle-slope"),
    (["--latency", "1ms", "--throttle-slope", "2"], "give --throttle-above N too"),
    (["--latency", "1ms", "--event", "e.json", "--keys", "3"], "--keys is for generated"),
    (["--latency", "1ms", "--records", "0"], "--records and --keys must be >= 1"),
    ([], "give the work: --handler"),
])
def test_bad_arguments_exit_2_with_a_message(
        capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = bench(capsys, *argv, "-q")
    assert code == 2
    assert out == ""
    assert err.startswith("asyncbatch bench: error: ") and message in err
    assert "Traceback" not in err


def test_user_handler_module_errors(
        capsys: pytest.CaptureFixture[str], handler_module: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = bench(capsys, "--handler", f"{handler_module}:nowhere", "-q")
    assert code == 2 and "has no 'nowhere'" in err
    (tmp_path / "broken_bench_app.py").write_text("raise RuntimeError('boom at import')\n")
    code, _, err = bench(capsys, "--handler", "broken_bench_app:handle", "-q")
    assert code == 2 and "RuntimeError: boom at import" in err


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not JSON"),
    ('{"Records": 3}', "not a Lambda batch event"),
    ('{"Records": []}', "empty"),
    ('[1, 2]', "not a Lambda batch event"),
])
def test_unusable_event_files_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    code, _, err = bench(capsys, "--latency", "1ms", "--event", str(path), "-q")
    assert code == 2 and message in err


def test_mutually_exclusive_work_is_an_argparse_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--handler", "json:dumps", "--latency", "1ms"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_modules_import_nothing_heavy() -> None:
    import subprocess
    import sys

    code = ("import sys; import asyncbatch.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'asyncbatch.bench') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("spec", "expected"), [
    ("10ms", _bench.Latency("fixed", 0.010)),
    ("fixed:250us", _bench.Latency("fixed", 0.00025)),
    ("lognormal:10ms:0.5", _bench.Latency("lognormal", 0.010, 0.5)),
    ("uniform:5ms:15ms", _bench.Latency("uniform", 0.005, 0.015)),
    ("exponential:1s", _bench.Latency("exponential", 1.0)),
])
def test_latency_specs(spec: str, expected: _bench.Latency) -> None:
    got = _bench.parse_latency(spec)
    assert got.kind == expected.kind
    assert (got.a, got.b) == pytest.approx((expected.a, expected.b))


def test_knee_is_the_smallest_level_within_five_percent() -> None:
    def result(level: int | str, throughput: float) -> _bench.LevelResult:
        return _bench.LevelResult(
            level=str(level), concurrency=level if isinstance(level, int) else None,
            records=1, succeeded=1, failed=0, skipped=0, retries=0, makespan=1.0,
            throughput=throughput, p50=None, p95=None, p99=None, mean_inflight=1.0)

    results = [result(1, 100), result(10, 960), result(50, 1000), result(100, 990),
               result("auto", 5000)]
    knee = _bench.find_knee(results)
    assert knee is not None and knee.concurrency == 10  # 960 >= 0.95 * 1000; auto is no point
    assert _bench.find_knee([result("auto", 1.0)]) is None


def sqs_id(i: int) -> str:
    """The messageId of record ``i`` of a generated SQS event."""
    return str(_bench.generate_event("sqs", i + 1)["Records"][i]["messageId"])


def fifo_id(i: int) -> str:
    return str(_bench.generate_event("fifo", i + 1)["Records"][i]["messageId"])


FAILING_MODULE = '''
async def every_record_fails(record):
    raise ValueError(f"no stock for {record.identifier}")


async def third_fails(record):
    if record.json()["n"] % 10 == 3:
        raise KeyError("qty")
'''


@pytest.fixture
def failing_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"bench_failing_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(FAILING_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_failed_column_does_not_count_skipped_records(
        capsys: pytest.CaptureFixture[str], failing_module: str) -> None:
    # FIFO, 5 groups: record 3 fails, and the 19 records after it in its group are skipped.
    code, out, err = bench(capsys, "--handler", f"{failing_module}:third_fails", "--source",
                           "fifo", "--keys", "5", "--records", "100", "--concurrency", "4",
                           "--attempts", "1")
    assert code == 0, err
    header = re.split(r"\s{2,}", out.splitlines()[0].strip())
    cells = table_rows(out)["4"]
    assert cells[header.index("failed")] == "1"
    assert cells[header.index("skipped")] == "19"
    assert "concurrency 4: 1 of 100 records failed, 19 skipped after them, e.g.:" in out
    assert f"  {fifo_id(3)}: KeyError: 'qty'" in out
    assert "concurrency 4: 80 ok, 1 failed, 19 skipped in " in err


def test_no_skipped_column_when_nothing_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--latency", "1ms", *TINY)
    assert code == 0, err
    assert "skipped" not in out.splitlines()[0]


def test_a_level_where_every_record_failed_says_so_with_a_sample_error(
        capsys: pytest.CaptureFixture[str], failing_module: str) -> None:
    code, out, err = bench(capsys, "--handler", f"{failing_module}:every_record_fails",
                           "--records", "20", "--concurrency", "1,4", "--attempts", "1")
    assert code == 1, err  # nothing was measured but failing: not a successful benchmark
    assert err.splitlines()[-1] == (
        f"asyncbatch bench: every record failed at every level, e.g. {sqs_id(0)}: "
        f"ValueError: no stock for {sqs_id(0)}")
    assert "knee: none (no record succeeded at any fixed level" in out
    for level in ("1", "4"):
        assert f"concurrency {level}: every record failed (20 of 20), e.g.:" in out
        assert (f"  concurrency {level}: 0 ok, 20 failed in " in err
                and f"every record failed, e.g. {sqs_id(0)}: ValueError: no stock for "
                    f"{sqs_id(0)}" in err)
    assert f"  {sqs_id(2)}: ValueError: no stock for {sqs_id(2)}\n  ... and 17 more" in out
    code, out, err = bench(capsys, "--handler", f"{failing_module}:every_record_fails",
                           "--records", "20", "--concurrency", "2", "--attempts", "1",
                           "--json")
    assert code == 1, err
    (result,) = json.loads(out)["results"]
    assert result["failed"] == 20 and result["skipped"] == 0
    assert result["errors"][0] == f"{sqs_id(0)}: ValueError: no stock for {sqs_id(0)}"
    assert len(result["errors"]) == 5  # bounded


def test_some_records_succeeding_somewhere_exits_0(
        capsys: pytest.CaptureFixture[str], failing_module: str) -> None:
    code, out, err = bench(capsys, "--handler", f"{failing_module}:third_fails",
                           "--records", "20", "--concurrency", "2", "--attempts", "1", "-q")
    assert code == 0, err
    assert "every record failed" not in out + err


SYNC_MODULE = '''
import time

threads = set()


def handle(record):
    import threading

    threads.add(threading.get_ident())
    time.sleep(0.001)  # a blocking call, as a boto3 handler makes
    return record.identifier
'''


def test_a_plain_def_handler_is_benched_on_threads(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import threading

    name = f"bench_sync_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(SYNC_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = bench(capsys, "--handler", f"{name}:handle", "--records", "40",
                           "--concurrency", "1,4", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert [r["succeeded"] for r in results] == [40, 40]
    threads = importlib.import_module(name).threads
    assert threads and threading.get_ident() not in threads  # run on worker threads


def _level(level: int | str, throughput: float) -> _bench.LevelResult:
    return _bench.LevelResult(
        level=str(level), concurrency=level if isinstance(level, int) else None,
        records=1, succeeded=1, failed=0, skipped=0, retries=0, makespan=1.0,
        throughput=throughput, p50=None, p95=None, p99=None, mean_inflight=1.0,
        final_limit=None if isinstance(level, int) else 34)


def test_the_knee_and_auto_are_described_in_one_vocabulary() -> None:
    # The knee is the fastest fixed level here, and 'auto' beats it by 60%: the knee is
    # not called "the best" above a line that shows something better.
    sweep = _bench.Sweep(levels=[1, 10, "auto"], description="d", records=1, source="sqs")
    sweep.results = [_level(1, 100), _level(10, 1000), _level("auto", 1600)]
    text = _bench.describe_knee(sweep)
    assert "best" not in text
    knee, auto = text.splitlines()
    assert knee.startswith("knee: concurrency 10 (1,000 rec/s), the fastest fixed level;")
    assert auto == ("auto (adaptive): 1,600 rec/s, 160% of the fastest fixed level, limit "
                    "ended at 34; faster than every fixed level tried")
    sweep.results = [_level(1, 100), _level(10, 960), _level(50, 1000), _level("auto", 900)]
    knee, auto = _bench.describe_knee(sweep).splitlines()
    assert knee == ("knee: concurrency 10 (960 rec/s), the smallest fixed level within 5% "
                    "of the fastest (1,000 rec/s at 50)")
    assert auto.startswith("auto (adaptive): 900 rec/s, 90% of the fastest fixed level,")
    assert "faster than" not in auto


def test_progress_within_a_level_when_stderr_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    # 200 sequential calls of at least 1 ms: the level lasts >= 0.2 s, longer than
    # --progress-every, so a line with the records done and the rate comes before the end.
    code, out, err = bench(capsys, "--latency", "1ms", "--records", "200", "--concurrency",
                           "1", "--progress-every", "0.1")
    assert code == 0, err
    assert "knee: concurrency 1" in out  # the table still goes to stdout, progress to stderr
    lines = err.splitlines()
    within = [line for line in lines if re.match(
        r"  concurrency 1: [\d,]+/200 records \(\d+%\), [\d,]+ rec/s, \d+ s$", line)]
    assert within, err
    assert lines.index(within[0]) < next(
        i for i, line in enumerate(lines) if line.startswith("  concurrency 1: 200 ok"))


def test_interrupted_bench_exits_130(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    app = tmp_path / "slow_bench_app.py"
    started = tmp_path / "started"
    app.write_text(
        "import anyio, pathlib\n"
        f"STARTED = pathlib.Path({str(started)!r})\n"
        "async def handle(record):\n"
        "    STARTED.touch()\n"
        "    await anyio.sleep(3600)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncbatch", "bench", "--handler", f"{app}:handle",
         "--records", "10", "--concurrency", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        while not started.exists():  # the handler has started: the sweep is running
            assert process.poll() is None, process.communicate()
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert err.rstrip().endswith("asyncbatch bench: interrupted")
    assert "Traceback" not in err and out == ""


def test_a_stream_workload_sweeps_concurrency_and_rate(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--source", "stream", "--latency", "1ms", "--records",
                           "60", "--concurrency", "2,8", "--rate", "200,1000/s", "-q")
    assert code == 0, err
    rows = table_rows(out)
    assert list(rows) == ["2 @ 200/s", "2 @ 1000/s", "8 @ 200/s", "8 @ 1000/s"]
    assert "a knee is of one rate" in out
    # 60 starts at 200/s take at least 59 intervals: the limit held (a loaded machine only
    # adds time, so only the lower bound is asserted)
    assert float(rows["8 @ 200/s"][5].split()[0]) >= 59 / 200 - 0.01


def test_a_keyed_stream_workload_runs_one_item_per_key_at_a_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--source", "stream", "--keys", "3", "--latency", "1ms",
                           "--records", "60", "--concurrency", "8", "--json", "-q")
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    assert result["succeeded"] == 60
    assert result["peak_inflight"] <= 3  # three keys: never more than three at once


@pytest.mark.parametrize("rate", ["0", "-5", "fast", ","])
def test_a_rate_that_cannot_be_is_refused(capsys: pytest.CaptureFixture[str],
                                          rate: str) -> None:
    code, _out, err = bench(capsys, "--latency", "1ms", "--rate", rate, *TINY)
    assert code == 2 and "--rate" in err and "Traceback" not in err
