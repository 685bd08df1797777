"""Every Python snippet of every page of the documentation site runs, and its assertions hold.

The pages are ``docs/**/*.md`` (the site ``mkdocs.yml`` builds). Every fenced block that
opens with ```` ```python ```` at the start of a line is a snippet; its first line says how
it runs (the same marks as the README's, which tests/docs/test_readme.py runs):

- no mark: executed as a script, in a fresh namespace;
- ``# runs against AWS ...``: executed with the moto server fixture (``aws``) providing the
  endpoint, credentials and a clean slate;
- ``# test_<name>.py``: a test module: written to a temporary directory and run by pytest
  in a fresh interpreter, which must pass every test it collects (at least one);
- ``# not run: <why>``: only compiled (kept for the rare snippet that cannot run here, such
  as a Lambda handler module that reads its deployment's environment; say why).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
AWS_MARK = "# runs against AWS"
TEST_MARK = re.compile(r"# (test_\w+\.py)\n")
NOT_RUN_MARK = "# not run:"


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix()
        for i, code in enumerate(FENCE.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{name}:{i}", code))
    return found


SNIPPETS = _snippets()
LOCAL = [(n, c) for n, c in SNIPPETS if not (
    c.startswith((AWS_MARK, NOT_RUN_MARK)) or TEST_MARK.match(c))]
ON_AWS = [(n, c) for n, c in SNIPPETS if c.startswith(AWS_MARK)]
TEST_MODULES = [(n, c) for n, c in SNIPPETS if TEST_MARK.match(c)]
NOT_RUN = [(n, c) for n, c in SNIPPETS if c.startswith(NOT_RUN_MARK)]


def _run(name: str, code: str) -> None:
    compiled = compile(code, f"docs/{name}", "exec", dont_inherit=True)
    exec(compiled, {"__name__": "__docs__"})


def test_every_page_has_its_snippets_found() -> None:
    # A python fence the pattern misses (indented in a list or an admonition, or spelled
    # "py") would silently go untested: there must be none.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        hidden = re.findall(r"^[ \t]+```\s*py(?:thon)?\b|^```\s*py\b|^```\s+python\b", text,
                            re.M)
        assert not hidden, f"{page}: a python snippet test_docs.py would not run: {hidden}"
    assert len(SNIPPETS) >= 25
    assert ON_AWS and TEST_MODULES


CODE_WIDTH = 80  # the site's content area shows about 80 columns of code, and no more


def test_every_code_block_fits_in_80_columns() -> None:
    # A wider line is cut at the content area's edge (a scroll bar, the end out of sight).
    # Every fenced block of every page (python, sh, yaml, output), and the README's.
    too_wide = []
    for page in [*PAGES, ROOT / "README.md"]:
        fence = None
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            opening = re.match(r"\s*(```+|~~~+)", line)
            if opening and (fence is None or line.strip() == fence):
                fence = opening.group(1) if fence is None else None
            elif fence is not None and len(line) > CODE_WIDTH:
                too_wide.append(f"{page.relative_to(ROOT)}:{number}: {len(line)} columns")
    assert not too_wide, "\n".join(too_wide)


RESULTS = ROOT / "benchmarks" / "results"


def test_no_page_speaks_of_the_project_s_internal_issues() -> None:
    # "issue 14's targets" means nothing to a reader: the tracker is not theirs.
    for page in [*PAGES, ROOT / "README.md", *sorted(RESULTS.glob("*.md"))]:
        found = re.findall(r"\bissues? (?:#\s*)?\d+", page.read_text(encoding="utf-8"), re.I)
        assert not found, f"{page.relative_to(ROOT)}: {found}"


def _table_cell(text: str, row_start: str, column: str) -> str:
    """The cell under ``column`` of the first table row starting with ``row_start``,
    in the table whose header comes last before that row."""
    header: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and column in cells:
            header = cells
        elif header and line.startswith(row_start):
            return cells[header.index(column)]
    raise AssertionError(f"no row {row_start!r} under a column {column!r}")


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_the_benchmark_headline_shows_both_powertools_processors(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    results = (RESULTS / "RESULTS.md").read_text(encoding="utf-8")
    sync = "powertools `BatchProcessor` (sync: one record at a time)"
    assert "| powertools `AsyncBatchProcessor` |" in text
    for row, section in (("| SQS overhead per record |", "### SQS standard"),
                         ("| Kinesis overhead per record", "### Kinesis")):
        measured = _table_cell(results[results.index(section):], "| 100,000 |",
                               "powertools sync µs/rec").split()[0]
        assert _table_cell(text, row, sync).startswith(f"{measured} µs"), (page, row)


def test_few_snippets_are_not_run() -> None:
    assert len(NOT_RUN) <= 3, [n for n, _ in NOT_RUN]
    for name, code in NOT_RUN:
        reason = code.splitlines()[0][len(NOT_RUN_MARK):].strip()
        assert reason, f"{name}: say why the snippet is not run"
        compile(code, f"docs/{name}", "exec", dont_inherit=True)


def test_every_readme_snippet_is_also_in_the_docs() -> None:
    # The README keeps a few examples for the first five minutes; the docs hold them all.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    in_docs = {code for _, code in SNIPPETS}
    for code in re.findall(r"```python\n(.*?)```", readme, re.S):
        assert code in in_docs, f"a README example missing from docs/:\n{code[:300]}"


@pytest.mark.parametrize(("name", "code"), LOCAL, ids=[n for n, _ in LOCAL])
def test_snippet_runs(name: str, code: str) -> None:
    _run(name, code)


@pytest.mark.parametrize(("name", "code"), ON_AWS, ids=[n for n, _ in ON_AWS])
def test_aws_snippet_runs_on_moto(name: str, code: str, aws: str) -> None:
    _run(name, code)


(PYTEST_CONFIG,) = re.findall(r"^```toml\n(.*?)^```",
                              (DOCS / "testing.md").read_text(encoding="utf-8"), re.S | re.M)


def test_the_testing_page_names_the_fixture_loop_scope_setting() -> None:
    assert 'asyncio_default_fixture_loop_scope = "function"' in PYTEST_CONFIG


def test_the_testing_page_lists_every_fixture_of_the_plugin() -> None:
    import asyncbatch.testing.pytest_plugin as plugin

    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    fixtures = [name for name in plugin.__all__ if name != "pytest_configure"]
    assert len(fixtures) >= 10
    for name in fixtures:
        assert f"| `{name}` |" in text, name
    for term in ("context=", ".redelivered", ".deliveries", ".dead_letters"):
        assert term in text, term


@pytest.mark.parametrize(("name", "code"), TEST_MODULES, ids=[n for n, _ in TEST_MODULES])
def test_test_module_passes(name: str, code: str, tmp_path: Path) -> None:
    match = TEST_MARK.match(code)
    assert match is not None
    (tmp_path / match.group(1)).write_text(code, encoding="utf-8")
    # The project's configuration is the one the Testing page gives: with it, pytest-asyncio
    # does not warn that asyncio_default_fixture_loop_scope is unset (a
    # PytestDeprecationWarning, an error here).
    (tmp_path / "pyproject.toml").write_text(PYTEST_CONFIG, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
         "error::pytest.PytestUnraisableExceptionWarning",
         "-W", "error::pytest.PytestDeprecationWarning", match.group(1)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed\b", result.stdout), result.stdout
    assert not re.search(r"\b(failed|skipped|error)", result.stdout.splitlines()[-1])


TEMPLATES = [(f"{page.relative_to(DOCS).as_posix()}:{i}", block) for page in PAGES
             for i, block in enumerate(re.findall(r"^```yaml\n(.*?)^```",
                                                  page.read_text(encoding="utf-8"), re.S | re.M))
             if "AWSTemplateFormatVersion" in block]


def test_the_docs_have_their_sam_templates() -> None:
    assert any("IdempotencyTable" in block for _, block in TEMPLATES)


def test_deploying_template_reports_partial_failures() -> None:
    """cfn-lint checks a SAM function's properties, not those of its events or the
    resources they name: the Deploying page's SQS function is checked here."""
    decode = pytest.importorskip("cfnlint.decode")
    (template,) = [block for name, block in TEMPLATES if name.startswith("deploying.md:")]
    parsed, problems = decode.decode_str(template)
    assert problems == []
    resources = parsed["Resources"]
    (function,) = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    (event,) = function["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources[event["Properties"]["Queue"]["Fn::GetAtt"][0]]
    assert queue["Type"] == "AWS::SQS::Queue"
    dead_letters = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert resources[dead_letters]["Type"] == "AWS::SQS::Queue"
    # six times the function's timeout (AWS's advice for an SQS event source)
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"]
    for ref in function["Properties"]["Layers"]:
        layer = resources[ref["Ref"]]
        assert layer["Type"] == "AWS::Serverless::LayerVersion"
        assert function["Properties"]["Runtime"] in layer["Properties"]["CompatibleRuntimes"]
        assert set(function["Properties"]["Architectures"]) <= \
            set(layer["Properties"]["CompatibleArchitectures"])


@pytest.mark.parametrize(("name", "template"), TEMPLATES, ids=[n for n, _ in TEMPLATES])
def test_sam_template_passes_cfn_lint(name: str, template: str, tmp_path: Path) -> None:
    api = pytest.importorskip("cfnlint.api")
    path = tmp_path / "template.yaml"
    path.write_text(template, encoding="utf-8")
    assert [str(m) for m in api.lint_file(path)] == []


def test_the_api_reference_has_no_low_information_entries() -> None:
    """The reference (mkdocstrings, with docs/griffe_rst.py's extensions) shows no entry
    that only repeats its assignment (``backoff = backoff``) and gives the type aliases
    and constants their ``#:`` comment as a docstring (``Handler = Callable[..., Any]``
    says what a handler is)."""
    griffe = pytest.importorskip("griffe")
    extensions = griffe.load_extensions(f"{DOCS / 'griffe_rst.py'}:ReSTLiteralBlocks",
                                        f"{DOCS / 'griffe_rst.py'}:QuietAttributes")
    bare = []
    for name in ("asyncbatch", "asyncbatch.aws", "asyncbatch.runner", "asyncbatch.testing",
                 "asyncbatch.powertools", "asyncbatch.telemetry"):
        package = griffe.load(name, extensions=extensions, search_paths=[str(ROOT)],
                              allow_inspection=False)
        stack = [package]
        while stack:
            obj = stack.pop()
            for member in obj.members.values():
                if member.is_alias:
                    continue
                if member.is_module or member.is_class:
                    stack.append(member)
                elif member.is_attribute and member.docstring is None \
                        and member.value is not None and (
                            "instance-attribute" in member.labels or obj.is_module):
                    bare.append(member.path)
        if name == "asyncbatch":
            for documented in ("Handler", "DROPPED"):
                docstring = package[documented].docstring
                assert docstring is not None and len(docstring.value) > 40, documented
    assert not bare, bare
