"""A bounded slice of ``iomem fuzz``: hostile lines and raw bytes leave the guest answering,
``check`` and ``:verify`` clean and the markers intact (harness/tools/fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.qemu.profile import Profile
from harness.tools import fuzz


@pytest.mark.profiles("virt-4k")
def test_a_fuzz_slice_finds_nothing(profile: Profile, tmp_path: Path) -> None:
    report = fuzz.run(profile, tmp_path, lines=400, seed=7, batch=200)
    assert report.lines >= 400 and report.raw_lines > 0 and report.batches >= 3
    assert report.findings == []
