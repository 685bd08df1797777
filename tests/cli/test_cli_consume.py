"""``asyncbatch consume``: the real command, in a subprocess, against the moto server.
SIGTERM stops it gracefully (exit 0, the summary), a second signal aborts it (exit 130,
the running messages visible again at once); a broken setup is one line and exit 2."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncbatch.aws.sqs import ConsumeSummary
from asyncbatch.cli import main
from asyncbatch.cli.consume import Progress

pytest.importorskip("aioboto3")

APP = '''
import asyncio
import os

import asyncbatch

processor = asyncbatch.AsyncBatchProcessor(concurrency=3)


async def handle(record):
    if os.environ.get("STUCK"):
        print("started", record.json()["n"], flush=True)
        await asyncio.sleep(3600)
    with open(os.environ["SEEN"], "a") as seen:
        seen.write(record.body + "\\n")
'''


@pytest.fixture
def queue(moto_server: str) -> Iterator[tuple[Any, str]]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName=f"cli-{time.time_ns()}",
                           Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for start in range(0, 20, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(10)])
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


def _start(tmp_path: Path, moto_server: str, url: str, *argv: str,
           **env: str) -> subprocess.Popen[str]:
    (tmp_path / "consume_app.py").write_text(APP)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                       AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=moto_server,
                       SEEN=str(tmp_path / "seen.txt"), PYTHONPATH=str(tmp_path), **env)
    return subprocess.Popen(
        [sys.executable, "-m", "asyncbatch", "consume", "consume_app:handle", "--queue-url",
         url, "--wait-time", "1", "--interval", "0.2", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
        cwd=tmp_path)


def _wait(condition: Any, seconds: float = 60.0) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.05)


def _visible(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


def test_sigterm_stops_it_gracefully_with_a_summary(tmp_path: Path, moto_server: str,
                                                     queue: tuple[Any, str]) -> None:
    sqs, url = queue
    # concurrency 3 + prefetch 5 = 8 places: one receiver (moto's SQS is not thread-safe:
    # concurrent receives could hand out a message twice)
    worker = _start(tmp_path, moto_server, url, "--processor", "consume_app:processor",
                    "--prefetch", "5")
    seen = tmp_path / "seen.txt"
    assert worker.stdout is not None
    try:
        first = worker.stdout.readline()  # a progress line (not a terminal: one per change)
        assert "msg/s" in first and "in flight" in first, first
        _wait(lambda: seen.exists() and len(seen.read_text().splitlines()) == 20)
        _wait(lambda: _visible(sqs, url) == (0, 0))  # every message deleted
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "SIGTERM: stopping" in err and "Traceback" not in err
    assert out.splitlines()[-1].startswith(
        "stopped: 20 received: 20 succeeded, 0 failed, 0 sunk, 0 released; 20 deleted")
    assert sorted(json.loads(line)["n"] for line in seen.read_text().splitlines()) == \
        list(range(20))


def test_a_second_signal_aborts_and_hands_the_messages_back(
        tmp_path: Path, moto_server: str, queue: tuple[Any, str]) -> None:
    sqs, url = queue
    worker = _start(tmp_path, moto_server, url, "--concurrency", "3", "--prefetch", "2",
                    "--grace", "600", STUCK="1")
    assert worker.stdout is not None
    try:
        started = 0
        while started < 3:  # three handlers run (and never end)
            line = worker.stdout.readline()
            assert line, "the worker ended early"
            started += line.startswith("started")
        worker.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 130, err
    assert "aborting" in err and "Traceback" not in err
    assert "aborted: the running handlers were cancelled" in out
    assert _visible(sqs, url) == (20, 0)  # nothing waits for its 60 s visibility timeout


def test_a_missing_queue_is_one_line_and_exit_2(aws: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "consume_app.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["consume", "consume_app:handle", "--queue-url",
                 f"{aws}/123456789012/nowhere", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("asyncbatch consume: error: the queue") and "does not exist" in err


@pytest.mark.parametrize(("argv", "fragment"), [
    (["nowhere_module:handle"], "no module named 'nowhere_module'"),
    (["consume_app:handle", "--processor", "consume_app:handle"],
     "not an asyncbatch.AsyncBatchProcessor"),
    (["consume_app:handle", "--processor", "consume_app:processor", "--concurrency", "4"],
     "--concurrency with --processor"),
    (["consume_app:handle", "--interval", "0"], "--interval must be above 0"),
    (["consume_app:handle", "--wait-time", "30"], "--wait-time 30: give a whole number"),
])
def test_a_misuse_is_one_line_and_exit_2(argv: list[str], fragment: str, aws: str,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "consume_app.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    url = f"{aws}/123456789012/q"
    assert main(["consume", *argv, "--queue-url", url, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err


def test_the_progress_line_is_rewritten_on_a_terminal_and_printed_on_change_otherwise() -> None:
    def at(elapsed: float, received: int, succeeded: int) -> ConsumeSummary:
        return ConsumeSummary(received=received, succeeded=succeeded, elapsed=elapsed)

    terminal = io.StringIO()
    live = Progress(terminal, tty=True)
    for summary in (at(1.0, 10, 5), at(2.0, 20, 15), at(3.0, 20, 15)):
        live(summary)
    live.end()
    assert terminal.getvalue().count("\r") == 3 and terminal.getvalue().endswith("\n")
    assert "10.0 msg/s  5 in flight, 15 ok" in terminal.getvalue()

    log = io.StringIO()
    lines = Progress(log, tty=False)
    for summary in (at(1.0, 10, 5), at(2.0, 20, 15), at(3.0, 20, 15)):
        lines(summary)
    assert len(log.getvalue().splitlines()) == 2  # the third changed nothing
