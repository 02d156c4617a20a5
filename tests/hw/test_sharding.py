"""CI shards (``make test-hw SHARD=i/N``, pytest-split by ``.test_durations``): the N shards
together collect exactly the full hardware suite, no test twice, and the split is the same
every time (deterministic). Collection only: nothing boots."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import PROJECT_ROOT

DURATIONS = PROJECT_ROOT / ".test_durations"


def _collect(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/hw", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("shards", [3])
def test_shards_are_complete_and_disjoint(shards: int) -> None:
    assert DURATIONS.is_file(), "the durations file is part of the repository (make test-durations)"
    split = ["--splits", str(shards), "--splitting-algorithm", "least_duration"]
    split += ["--durations-path", str(DURATIONS)]
    runs = [[], *[[*split, "--group", str(i)] for i in range(1, shards + 1)], [*split, "--group", "2"]]
    with ThreadPoolExecutor(len(runs)) as pool:  # independent collections: at once, not in turn
        full, *parts, again = pool.map(lambda args: _collect(*args), runs)
    assert len(full) == len(set(full)) > 100
    seen = [test for part in parts for test in part]
    assert len(seen) == len(set(seen)), "a test is in two shards"
    assert sorted(seen) == sorted(full), "the shards do not add up to the suite"
    assert all(parts), "an empty shard"
    assert again == parts[1], "the split is not deterministic"


def test_make_passes_shard_to_pytest_split() -> None:
    result = subprocess.run(
        ["make", "-n", "test-hw", "SHARD=2/5"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    line = next(x for x in result.stdout.splitlines() if "pytest tests/hw" in x)
    assert "--splits 5 --group 2" in line and "--durations-path .test_durations" in line
