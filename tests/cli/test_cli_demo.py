"""``asyncbatch demo``: the samples, the S3 import on its own moto server with progress at
any size, ``--rows`` checked up front, ids valid at any row count, Ctrl-C. Each test runs
the real command (in a subprocess where stderr must not be a terminal or a signal is
sent)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys

import pytest

from asyncbatch.cli import main


def demo(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asyncbatch", "demo", *argv],
                          capture_output=True, text=True, timeout=timeout)


def test_samples_show_every_record_and_the_partial_responses(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--no-s3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    sections = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split(":")[0] for s in sections] == ["== SQS standard", "== SQS FIFO",
                                                   "== Kinesis", "== Kafka (MSK)"]
    responses = [json.loads(line.split("partial response: ", 1)[1])["batchItemFailures"]
                 for line in out.splitlines() if "partial response: " in line]
    # 2 invalid orders; alice's failure and her later message; the failed shipment of
    # partition 0 and the one after it (in its partition: never started)
    assert [len(responses[i]) for i in (0, 1, 3)] == [2, 2, 2]
    # Kinesis resumes at click 9 (clicks 10 and 11 are reported too unless they had
    # started before it failed: timing)
    from asyncbatch.testing import kinesis_event

    click_9 = kinesis_event(*(("u", {}) for _ in range(12)))["Records"][9]
    assert min(int(r["itemIdentifier"]) for r in responses[2]) == int(
        click_9["kinesis"]["sequenceNumber"])
    assert responses[3] == [{"itemIdentifier": {"partition": "shipments-0", "offset": 1}},
                            {"itemIdentifier": {"partition": "shipments-0", "offset": 2}}]
    assert "  shipments-0@1                p0       failed         1  LookupError: sku " \
           "'discontinued' is no longer sold" in out
    assert "per-partition order of handling (offsets): p0: [0, 1], p1: [0, 1, 2], " \
           "p2: [0, 1, 2]" in out
    assert "S3" not in out


@pytest.mark.parametrize("rows", ["0", "-5", "lots", "2000001"])
def test_rows_are_checked_before_anything_runs(rows: str) -> None:
    done = demo("--rows", rows, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""  # no sample ran, no server started
    assert "asyncbatch demo: error: argument --rows" in done.stderr
    assert "Traceback" not in done.stderr


def test_s3_import_with_progress_when_stderr_is_not_a_terminal() -> None:
    pytest.importorskip("moto")
    done = demo("--rows", "400")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "rows read 400, written 397, duplicate 0, rejected 3, unwritten 0" in out
    assert "student_id=A10001" in out
    # progress on stderr even for a small file: at least the final line
    final = [line for line in done.stderr.splitlines()
             if "read     400 of 400 rows (100%)" in line and "rows/s" in line]
    assert final, done.stderr


def test_s3_progress_shares_are_of_rows_not_bytes() -> None:
    # The download runs ahead of the parsing: every byte fetched, 352 rows read. The
    # share shown is of the rows; a byte share is named as such.
    pytest.importorskip("pydantic")
    from asyncbatch.aws.s3_import import ImportProgress
    from asyncbatch.cli.demo_s3 import _Progress

    snapshot = ImportProgress(bucket="b", key="k", bytes_read=1000, bytes_total=1000,
                              rows_read=352, rows_written=300, rows_rejected=1, elapsed=1.0,
                              done=False)
    line = _Progress(rows=20_000).line(snapshot)
    assert "read     352 of 20,000 rows (  2%)" in line and "100%" not in line
    line = _Progress().line(snapshot)
    assert "read     352 rows (100% of the file downloaded)" in line


def test_generated_ids_stay_valid_at_any_row_count() -> None:
    pytest.importorskip("pydantic")
    from pydantic import ValidationError

    from asyncbatch.cli.demo_s3 import MAX_ROWS, DemoStudent, make_csv, student_id

    assert [student_id(n) for n in (1, 89_999, 90_000, 2_339_999)] == [
        "A10001", "A99999", "B10000", "Z99999"]
    data, bad, students = make_csv(200_000)  # ids above 99,999 students (six digits before)
    assert students > 90_000
    rows = csv.reader(io.StringIO(data.decode()))
    header = next(rows)
    rejected: dict[int, str] = {}
    for line, row in enumerate(rows, start=2):
        try:
            if len(row) != len(header):
                raise ValueError("extra column")
            DemoStudent(**{k: v.strip() for k, v in zip(header, row, strict=True)})  # as the import
        except (ValidationError, ValueError) as exc:
            rejected[line] = str(exc)
    assert set(rejected) == set(bad)  # only the rows made invalid on purpose
    with pytest.raises(ValueError, match="give a whole number from 1 to 2,000,000"):
        make_csv(MAX_ROWS + 1)


def test_ctrl_c_during_the_demo_prints_interrupted_and_exits_130() -> None:
    pytest.importorskip("moto")
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncbatch", "demo", "--rows", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stderr is not None
        seen = []
        while True:  # the import is under way once its first progress line is out
            line = process.stderr.readline()
            assert line, f"the demo ended before its import started: {seen}"
            seen.append(line)
            if "rows/s" in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert err.rstrip().endswith("asyncbatch demo: interrupted")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "rows read" not in out  # it stopped during the import
