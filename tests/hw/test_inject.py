"""``iomem inject``: every kind of injected corruption is detected by the guest's ``check``
or a host oracle (harness/tools/inject.py); the oracles see nothing before the injection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from harness.qemu.profile import Profile
from harness.tools import inject

HEAP_KINDS = [k for k in inject.KINDS if k.startswith(("heap-", "page-", "object-"))]


@pytest.mark.profiles("virt-4k", "virt-64k")
@pytest.mark.parametrize("kind", list(inject.KINDS))
def test_injected_corruption_is_detected(profile: Profile, kind: str, tmp_path: Path) -> None:
    outcome = inject.run_kind(profile, kind, tmp_path)
    assert outcome.detected, f"{kind} ({outcome.target}) went unnoticed"
    if kind in HEAP_KINDS:  # the allocators are checked twice: by the guest and by the host
        assert outcome.guest is not None and "heap" in outcome.oracles, outcome


@pytest.mark.profiles("virt-4k")
def test_inject_command_prints_the_table(profile: Profile, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "inject",
            "--kind",
            "pte-xn",
            "--kind",
            "map-reservation",
            "--log-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pte-xn" in result.stdout and "2/2 kinds detected" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "harness", "inject", "--kind", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert bad.returncode == 2


@pytest.mark.profiles("virt-4k-smmu")
@pytest.mark.parametrize("kind", list(inject.SMMU_KINDS))
def test_smmu_corruption_is_detected(profile: Profile, kind: str, tmp_path: Path) -> None:
    """STE, CD, the IO page table and the IOVA allocator (M1's DMA layer): the guest's `check`."""
    outcome = inject.run_kind(profile, kind, tmp_path)
    assert outcome.guest is not None, outcome
