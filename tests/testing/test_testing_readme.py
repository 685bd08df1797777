"""The README's "Testing your handler" example is a pytest file: run it with pytest (the
README test only executes its definitions) and check that its tests pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "docs" / "testing.md"  # moved from README.md


def readme_testing_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("# Testing your handler\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return str(code)


def test_the_readme_testing_example_passes_under_pytest_asyncio(
    pytester: pytest.Pytester,
) -> None:
    code = readme_testing_example()
    assert code.startswith("# test_orders.py\n")
    pytester.makepyfile(test_orders=code)
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers",
                                "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=2)
