"""The docs and help text stay inside the repository: no reference to files a user's clone
does not have, the README links the tutorial, and the docs' relative links resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness import PROJECT_ROOT

OUTSIDE = re.compile(r"\.\./shared/|/work/shared|shared/spec/|shared/reference/|shared/design/")


def _texts() -> list[Path]:
    roots = [PROJECT_ROOT / name for name in ("docs", "harness", "firmware", "guest")]
    files = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "Makefile", PROJECT_ROOT / "pyproject.toml"]
    for root in roots:
        files += [p for p in root.rglob("*") if p.suffix in {".md", ".py", ".c", ".h", ".S", ".ld", ".toml"}]
    return files


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{n}: {line.strip()}"
        for path in _texts()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_help_points_nowhere_outside() -> None:
    for args in ([], ["exec"], ["attach"], ["reap"]):
        result = subprocess.run(
            [sys.executable, "-m", "harness", *args, "--help"], capture_output=True, text=True, check=True
        )
        assert not OUTSIDE.search(result.stdout), result.stdout


def test_readme_links_the_tutorial_and_the_oracles() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "(docs/tutorial.md)" in readme and "(docs/oracles.md)" in readme


def test_relative_links_resolve() -> None:
    for doc in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: link to {target} does not resolve"
