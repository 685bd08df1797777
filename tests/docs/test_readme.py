"""Every Python example in the README runs, and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
AWS_MARK = "# runs against AWS"


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 1  # the rest of the examples are in docs/ (tests/docs/test_docs.py)


LOCAL = [b for b in BLOCKS if not b.startswith(AWS_MARK)]
ON_AWS = [b for b in BLOCKS if b.startswith(AWS_MARK)]


@pytest.mark.parametrize("code", LOCAL, ids=[f"example-{i}" for i in range(len(LOCAL))])
def test_example_runs(code: str) -> None:
    exec(compile(code, str(README), "exec", dont_inherit=True), {"__name__": "__readme__"})


@pytest.mark.parametrize("code", ON_AWS, ids=[f"aws-example-{i}" for i in range(len(ON_AWS))])
def test_aws_example_runs_on_moto(code: str, aws: str) -> None:
    exec(compile(code, str(README), "exec", dont_inherit=True), {"__name__": "__readme__"})
