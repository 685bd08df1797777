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


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
def test_example_runs(code: str, request: pytest.FixtureRequest) -> None:
    # One parametrization over every example: an example marked "# runs against AWS" gets
    # the moto server (the ``aws`` fixture) when it runs. (Two parametrizations, one of
    # them empty while the README has no AWS example, made every run show "SKIPPED ...
    # got empty parameter set".)
    if code.startswith(AWS_MARK):
        request.getfixturevalue("aws")
    exec(compile(code, str(README), "exec", dont_inherit=True), {"__name__": "__readme__"})


def test_the_readme_says_what_the_demo_shows() -> None:
    """Every batch ``asyncbatch demo`` shows (its "== ... ==" headers) is named where the
    README and the docs' home page describe the demo, and so is the S3 import's size."""
    import anyio

    from asyncbatch.cli import build_parser
    from asyncbatch.cli.demo import event_samples

    printed: list[str] = []
    anyio.run(event_samples, printed.append)
    lines = "\n".join(printed).splitlines()
    shown = [line[3:].split(":")[0] for line in lines if line.startswith("== ")]
    assert shown == ["SQS standard", "SQS FIFO", "Kinesis", "Kafka (MSK)"]
    rows = build_parser().parse_args(["demo"]).rows
    for page in (README, README.parent / "docs" / "index.md"):
        text = " ".join(page.read_text(encoding="utf-8").split())
        (paragraph,) = re.findall(r"The first runs the demo: (.*?)\. The second", text)
        for name in shown:
            assert name in paragraph, (page.name, name)
        assert f"{rows:,}-row CSV import" in paragraph
