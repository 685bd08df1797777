"""``asyncbatch run`` on a broken setup: one line naming the problem and the fix, exit code
2, no traceback; flags (not the runner's keywords) in its messages; what ``--until-empty``
waits for; the failed records of each batch. Every test runs the real command, in a
subprocess when it needs its own environment, against the moto server otherwise."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncbatch.cli import main

pytest.importorskip("aioboto3")

APP = '''
import asyncbatch

processor = asyncbatch.AsyncBatchProcessor(concurrency=4)  # logs each failed record
seen = set()


async def record_handler(record):
    if record.body.startswith("bad") and record.identifier not in seen:
        seen.add(record.identifier)
        raise ValueError(f"cannot take {record.body}")


def handler(event, context):
    return asyncbatch.process_partial_response(event, record_handler, processor, context)
'''


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"run_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return f"{name}:handler"


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any AWS configuration (nor a way to find one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(tmp_path), **extra)
    return env


def run_cli(tmp_path: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "run_app.py").write_text(APP)
    return subprocess.run([sys.executable, "-m", "asyncbatch", "run", *argv],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("asyncbatch run: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_missing_region(tmp_path: Path, moto_server: str) -> None:
    done = run_cli(tmp_path, _clean_env(tmp_path, AWS_ACCESS_KEY_ID="testing",
                                        AWS_SECRET_ACCESS_KEY="testing"),
                   "--sqs", f"{moto_server}/123456789012/q", "--handler", "run_app:handler",
                   "--endpoint-url", moto_server)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "no AWS region", "--region", "AWS_DEFAULT_REGION")


def test_missing_credentials(tmp_path: Path, moto_server: str) -> None:
    done = run_cli(tmp_path, _clean_env(tmp_path, AWS_DEFAULT_REGION="us-east-1"),
                   "--sqs", f"{moto_server}/123456789012/q", "--handler", "run_app:handler",
                   "--endpoint-url", moto_server, "-q")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "no AWS credentials", "AWS_ACCESS_KEY_ID")
    assert done.stdout == ""


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused (and no other
    process can take it while the test runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_unreachable_endpoint(tmp_path: Path, refusing_port: int) -> None:
    endpoint = f"http://127.0.0.1:{refusing_port}"
    done = run_cli(tmp_path, _clean_env(tmp_path, AWS_DEFAULT_REGION="us-east-1",
                                        AWS_ACCESS_KEY_ID="testing",
                                        AWS_SECRET_ACCESS_KEY="testing"),
                   "--sqs", f"{endpoint}/123456789012/q", "--handler", "run_app:handler",
                   "--endpoint-url", endpoint, "-q")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, f"cannot connect to {endpoint}", "--endpoint-url")


def _create_queue(name: str, **attributes: str) -> str:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    url: str = boto3.client("sqs").create_queue(QueueName=name,
                                                Attributes=attributes)["QueueUrl"]
    return url


def test_queue_that_does_not_exist(aws: str, app: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{aws}/123456789012/no-such-queue"
    code = main(["run", "--sqs", url, "--handler", app, "--endpoint-url", aws, "-q"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert_one_line_error(err, f"queue {url} does not exist at {aws}", "--sqs")


@pytest.mark.parametrize("flag", ["--kinesis", "--dynamodb-stream"])
def test_stream_that_does_not_exist(aws: str, app: str, flag: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", flag, "no-such-stream", "--handler", app, "--endpoint-url", aws, "-q"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert_one_line_error(err, f"{flag} no-such-stream: not found at {aws}")


def test_configuration_error_inside_the_run_names_flags(
        aws: str, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The queue's visibility timeout is checked once the run has started (in its task group).
    url = _create_queue("cli-short-visibility", VisibilityTimeout="10")
    code = main(["run", "--sqs", url, "--handler", app, "--endpoint-url", aws])
    out, err = capsys.readouterr()
    assert code == 2
    assert_one_line_error(err, "visibility timeout (10 s) is less than the function timeout",
                          "pass --visibility-timeout, or lower --function-timeout")
    assert "visibility_timeout=" not in err and "function_timeout" not in err
    assert "stopped:" not in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-size", "20"], "--batch-size 20: SQS batches hold at most 10 records without "
                             "a batching window"),
    (["--batch-size", "20"], "pass --batching-window 1.0 (seconds)"),
    (["--max-receive-count", "3"], "--max-receive-count 3 needs a dead-letter queue: pass "
                                   "--dlq or give the queue a RedrivePolicy"),
    (["--wait-time", "30"], "--wait-time 30: SQS long polls 0..20 s"),
    (["--concurrency", "0"], "--concurrency 0: give a whole number >= 1"),
    (["--poll-interval", "1"], "--poll-interval: for Kinesis and DynamoDB streams only"),
    (["--max-batches", "0"], "--max-batches must be >= 1 (leave it out to run until stopped)"),
    (["--function-timeout", "0"], "--function-timeout 0.0: give seconds > 0"),
])
def test_bad_options_are_named_by_their_flags(
        aws: str, app: str, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    url = _create_queue("cli-options", VisibilityTimeout="60")
    code = main(["run", "--sqs", url, "--handler", app, "--endpoint-url", aws, "-q", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert_one_line_error(err, message)
    assert not re.search(r"\b[a-z]+_[a-z_]+=", err), err  # no Python keyword left


def test_concurrency_is_named_as_its_flag_for_streams(
        aws: str, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--kinesis", "s", "--handler", app, "--concurrency", "2"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "--concurrency: for SQS only")


def test_failed_records_are_listed_per_batch_and_until_empty_says_what_it_waits_for(
        aws: str, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    # Failed messages stay in flight for the queue's visibility timeout (3 s): the run
    # says that is what it waits for before it can stop.
    url = _create_queue("cli-until-empty", VisibilityTimeout="3")
    sqs: Any = boto3.client("sqs")
    for body in ["ok-1", "bad-2", "ok-3", "bad-4"]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    code = main(["run", "--sqs", url, "--handler", app, "--endpoint-url", aws,
                 "--function-timeout", "2", "--wait-time", "1", "--interval", "0.1",
                 "--until-empty"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("--until-empty: stops once no message is visible, in flight "
                               "or delayed, checked after an empty long poll of up to 1 s")
    failed = [re.fullmatch(r"  failed: ([0-9a-f-]{36}): ValueError: cannot take (bad-\d)",
                           line) for line in lines if line.startswith("  failed: ")]
    # the two bad messages, by their message ids, with the exception the engine logged
    assert all(failed) and sorted(m.group(2) for m in failed if m) == ["bad-2", "bad-4"], out
    assert "record" not in err  # not printed twice (the engine's WARNING lines)
    assert any(line.startswith("waiting: 2 message(s) in flight: a failed message comes "
                               "back after its visibility timeout (3 s on this queue")
               for line in lines), out
    assert re.match(r"stopped: batches=\d+ records=6 succeeded=4 failed=2 redelivered=2 ",
                    lines[-1]), lines[-1]


ASYNC_APP = '''
import asyncbatch

processor = asyncbatch.AsyncBatchProcessor()
seen = []


async def record_handler(record):
    seen.append(record.body)


async def handler(event, context):  # what Lambda's Python runtime never awaits
    return await asyncbatch.async_process_partial_response(event, record_handler, processor,
                                                           context)
'''


def test_an_async_lambda_handler_is_run_with_a_warning_saying_how_to_fix_it(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    (tmp_path / "async_app.py").write_text(ASYNC_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = _create_queue("cli-async-handler", VisibilityTimeout="30")
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody="one")
    code = main(["run", "--sqs", url, "--handler", "async_app:handler", "--endpoint-url",
                 aws, "--function-timeout", "2", "--wait-time", "0", "--until-empty", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith("asyncbatch run: warning: async_app:handler is an async "
                              "function (async def)")
    assert "Lambda's Python runtime does not" in warning
    assert "'def handler(event, context): return asyncbatch.process_partial_response(" \
        in warning
    import async_app  # type: ignore[import-not-found]

    assert async_app.seen == ["one"]  # it still ran here
    assert re.match(r"stopped: batches=1 records=1 succeeded=1 ", out.splitlines()[-1])


def test_a_plain_lambda_handler_gets_no_warning(
        aws: str, app: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = _create_queue("cli-plain-handler", VisibilityTimeout="30")
    code = main(["run", "--sqs", url, "--handler", app, "--endpoint-url", aws,
                 "--function-timeout", "2", "--wait-time", "0", "--until-empty", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning" not in err


def test_negative_failures_shown_is_refused_before_any_aws_call(tmp_path: Path) -> None:
    done = run_cli(tmp_path, _clean_env(tmp_path), "--sqs", "u", "--handler",
                   "run_app:handler", "--failures-shown", "-1")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "--failures-shown must be >= 0")


@pytest.mark.parametrize("command", ["run", "bench", "demo"])
def test_every_flag_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from asyncbatch.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    subcommands = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subcommands.choices[command]  # type: ignore[index]
    for action in parser._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
        for option in action.option_strings:
            assert option in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncbatch

    done = subprocess.run([sys.executable, "-m", "asyncbatch", "--version"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith(f"asyncbatch {asyncbatch.__version__} (Python ")


def test_no_command_prints_help_and_exits_2() -> None:
    done = subprocess.run([sys.executable, "-m", "asyncbatch"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2
    assert "demo" in done.stderr and "bench" in done.stderr and done.stdout == ""
