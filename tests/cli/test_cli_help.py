"""What a newcomer sees first: ``--help`` in plain text, and a command missing its
arguments answered with its usage and one line of error, not a page of options."""

from __future__ import annotations

import re

import pytest

from asyncbatch.cli import main

COMMANDS = ["demo", "run", "consume", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_rest_markup(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out, out
    assert not re.search(r":(mod|class|func|meth|attr):`", out), out


@pytest.mark.parametrize(("command", "missing"), [
    ("run", "--handler"),
    ("consume", "--queue-url"),
])
def test_missing_arguments_give_a_usage_line_and_one_error_line(
        command: str, missing: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2, captured.err
    assert lines[0].startswith(f"usage: asyncbatch {command} ") and "[options]" in lines[0]
    assert lines[1].startswith(f"asyncbatch {command}: error: ") and missing in lines[1]
