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
    (code,) = re.findall(r"```python\n(# test_orders\.py\n.*?)```", text, re.S)
    return str(code)


def page_configuration() -> str:
    """The pytest configuration the page tells a project to set (pyproject.toml)."""
    (config,) = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return str(config)


def test_the_readme_testing_example_passes_under_pytest_asyncio(
    pytester: pytest.Pytester,
) -> None:
    code = readme_testing_example()
    assert code.startswith("# test_orders.py\n")
    pytester.makepyfile(test_orders=code)
    pytester.makefile(".toml", pyproject=page_configuration())
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers",
                                "-W", "error::pytest.PytestDeprecationWarning")
    result.assert_outcomes(passed=2)
