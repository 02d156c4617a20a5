"""A bounded slice of ``iomem fuzz`` on every profile: hostile lines and raw bytes leave the guest answering,
``check`` and ``:verify`` clean and the markers intact (harness/tools/fuzz.py)."""

from __future__ import annotations

from pathlib import Path

from harness.qemu.profile import Profile
from harness.tools import fuzz


def test_a_fuzz_slice_finds_nothing(profile: Profile, tmp_path: Path) -> None:
    report = fuzz.run(profile, tmp_path, lines=400, seed=7, batch=200)
    assert report.lines >= 400 and report.raw_lines > 0 and report.batches >= 3
    assert report.findings == []


def test_the_fuzzer_sees_a_broken_marker(profile: Profile, tmp_path: Path) -> None:
    """The per-batch proof can fail: a marker overwritten from the host is a finding."""
    from harness.guest import Guest

    with Guest(profile, tmp_path) as guest:
        fuzzer = fuzz.Fuzzer(guest, seed=3)
        fuzzer.plant()
        report = fuzz.Report()
        fuzzer.after_batch(report)
        assert report.findings == []
        marker = fuzzer.markers[0]
        guest.ram.write(marker.pa + 5, b"\x00")  # type: ignore[arg-type]
        fuzzer.after_batch(report)
        assert any(f.startswith(f"marker {marker.what}") for f in report.findings), report.findings
