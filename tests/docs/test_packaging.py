"""The distributions, as the Deploying page uses them: ``python -m build`` makes a wheel and
an sdist; the wheel holds the package with its ``py.typed`` and nothing else (no tests);
installed from it, not editable, into a directory of its own as a Lambda deployment
package is, asyncbatch answers a batch from any working directory; the metadata says the
Pythons the suite runs on."""

from __future__ import annotations

import email
import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("build")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    # The sdist, then the wheel built from it, each in an isolated environment.
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("asyncbatch-*-py3-none-any.whl")
    (sdist,) = out.glob("asyncbatch-*.tar.gz")
    return wheel, sdist


def test_wheel_holds_the_package_with_py_typed_and_no_tests(dists: tuple[Path, Path]) -> None:
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "asyncbatch/py.typed" in names
    assert "asyncbatch/__init__.py" in names
    assert "asyncbatch/aws/s3_import/_moves.py" in names
    outside = [n for n in names if not re.match(r"asyncbatch/|asyncbatch-[^/]+\.dist-info/", n)]
    assert outside == []
    assert not [n for n in names if re.search(r"(^|/)(tests?|conftest\.py)(/|$)", n)
                and not n.startswith("asyncbatch/testing/")]


def test_sdist_has_what_builds_the_wheel(dists: tuple[Path, Path]) -> None:
    # (``python -m build`` built the wheel from it)
    _, sdist = dists
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "asyncbatch/py.typed",
            "asyncbatch/__init__.py"} <= names


def test_metadata_says_the_pythons_the_suite_runs_on(dists: tuple[Path, Path]) -> None:
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    versions = [c.rsplit(" :: ", 1)[1] for c in metadata.get_all("Classifier") or []
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    # What scripts/pythons runs by default, the README's line and the floor must agree.
    script = (ROOT / "scripts" / "pythons").read_text(encoding="utf-8")
    default = re.search(r'PYTHONS=\$\{PYTHONS:-"([^"]+)"\}', script)
    assert default is not None
    assert versions == default.group(1).split()
    assert metadata["Requires-Python"] == f">={versions[0]}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {versions[0]} to {versions[-1]}" in readme


def test_installed_wheel_answers_a_batch_from_any_directory(
        dists: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = dists
    target = tmp_path / "package"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-compile", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The dependencies from this environment, after the package; no site (-S): neither the
    # editable install's path hook nor the checkout are seen, as on Lambda.
    deps = set()
    for name in ("anyio", "sniffio", "idna", "exceptiongroup", "typing_extensions"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            origin = Path(spec.origin)
            deps.add(str(origin.parent.parent if origin.name == "__init__.py" else origin.parent))
    code = f"""
import json, sys
sys.path[:0] = [{str(target)!r}]
sys.path += {sorted(deps)!r}
import asyncbatch
assert asyncbatch.__file__.startswith({str(target)!r}), asyncbatch.__file__

processor = asyncbatch.AsyncBatchProcessor(concurrency=4)

async def handle(record):
    if record.json()["qty"] <= 0:
        raise ValueError("quantity must be positive")

event = {{"Records": [
    {{"messageId": "m1", "body": '{{"qty": 1}}', "eventSource": "aws:sqs"}},
    {{"messageId": "m2", "body": '{{"qty": 0}}', "eventSource": "aws:sqs"}},
]}}
print(json.dumps(asyncbatch.process_partial_response(event, handle, processor, None)))
"""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert (target / "asyncbatch" / "py.typed").exists()
