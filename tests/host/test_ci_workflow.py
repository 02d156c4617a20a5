"""The GitHub Actions workflow is valid (check-jsonschema's vendored GitHub-workflow schema)
and runs the shards as a matrix; the shards' JUnit files merge into one report."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from harness.junit import merge

SCHEMA = ("--builtin-schema", "vendor.github-workflows")
WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "hw-tests.yml"


def test_workflow_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *SCHEMA, str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_the_shards_and_merges() -> None:
    text = WORKFLOW.read_text()
    assert "make test-hw SHARD=${{ matrix.shard }}/$SHARDS" in text
    assert "shard: [1, 2, 3, 4]" in text and "SHARDS: 4" in text
    assert "--junitxml=build/junit/shard-" in text
    assert "python -m harness.junit merge" in text
    assert "actions/upload-artifact" in text and "build/test-artifacts/" in text


def _junit(path: Path, *cases: tuple[str, bool]) -> Path:
    body = "".join(
        f'<testcase classname="tests.hw.t" name="{name}" time="1.0">'
        + ("<failure message='x'>x</failure>" if failed else "")
        + "</testcase>"
        for name, failed in cases
    )
    fails = sum(failed for _, failed in cases)
    path.write_text(
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{len(cases)}" '
        f'failures="{fails}" errors="0" skipped="0">{body}</testsuite></testsuites>'
    )
    return path


def test_merge_shards(tmp_path: Path) -> None:
    a = _junit(tmp_path / "a.xml", ("t1", False), ("t2", True))
    b = _junit(tmp_path / "b.xml", ("t3", False))
    out = tmp_path / "merged.xml"
    assert merge([a, b], out) == (3, 1)
    names = sorted(c.get("name") or "" for c in ET.parse(out).iter("testcase"))
    assert names == ["t1", "t2", "t3"]
    with pytest.raises(ValueError, match="two shards"):
        merge([a, a], tmp_path / "again.xml")
