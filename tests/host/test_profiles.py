"""Machine profiles: the shipped ones load, malformed ones are rejected with file/field/reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ProfileError
from harness.qemu import profile as profiles

GOOD = """
name = "{name}"
machine = "virt"
cpu = "cortex-a57"
granule = 4096
ram_base = 0x40000000
ram_mib = 256
iommu = "none"
devices = ["edu"]
"""


def test_shipped_profiles_match_the_cli_spec() -> None:
    found = {p.name: p for p in profiles.all_profiles()}
    assert {"virt-4k", "virt-16k", "virt-64k", "virt-4k-smmu"} <= set(found)
    assert found["virt-4k"].granule == 4096
    assert found["virt-16k"].granule == 16384 and found["virt-16k"].cpu == "max"
    assert found["virt-64k"].granule == 65536
    assert found["virt-4k-smmu"].iommu == "smmuv3" and found["virt-4k-smmu"].granule == 4096
    assert all("edu" in p.devices for p in found.values())
    assert profiles.DEFAULT_PROFILE == "virt-4k"
    # DMA (M1): edu behind the SMMU keeps QEMU's 28-bit mask; without one it must reach RAM.
    assert found["virt-4k-smmu"].edu_dma_bits == 28 and found["virt-64k-smmu"].edu_dma_bits == 28
    assert found["virt-64k-smmu"].smmu and found["virt-64k-smmu"].granule == 65536
    dma32 = found["virt-4k-dma32"]
    assert (dma32.iommu, dma32.ram_mib, dma32.edu_dma_bits) == ("none", 4608, 32)
    assert dma32.ram_end > 1 << 32 and dma32.fw_cfg_value("opt/iomem/dma-high") == "1"
    for p in found.values():
        assert p.smmu or p.ram_base + (1 << 30) <= p.edu_dma_mask + 1, p.name
        assert p.edu_stream_id == 0x8


def _write(tmp_path: Path, text: str, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_good_profile_loads(tmp_path: Path) -> None:
    profile = profiles.load_file(_write(tmp_path, GOOD.format(name="mine"), "mine"))
    assert profile.ram_size == 256 << 20


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (lambda t: t.replace("granule = 4096", "granule = 8192"), "granule", "not an AArch64 granule"),
        (lambda t: t.replace("granule = 4096", 'granule = "4096"'), "granule", "must be int"),
        (lambda t: t.replace('iommu = "none"', 'iommu = "vtd"'), "iommu", "not one of"),
        (lambda t: t.replace('devices = ["edu"]', "devices = []"), "devices", "edu"),
        (lambda t: t.replace('devices = ["edu"]', 'devices = ["edu", "nvme"]'), "devices", "not a known"),
        (lambda t: t.replace("ram_mib = 256", "ram_mib = 1"), "ram_mib", "outside"),
        (lambda t: t.replace("ram_base = 0x40000000", "ram_base = 0"), "ram_base", "virt RAM starts"),
        (lambda t: t.replace('machine = "virt"', 'machine = "sbsa-ref"'), "machine", "not supported"),
        (lambda t: t.replace('cpu = "cortex-a57"', 'cpu = "a57; rm -rf"'), "cpu", "not a QEMU CPU"),
        (lambda t: t + "colour = 3\n", "colour", "unknown field"),
        (lambda t: t.replace('iommu = "none"\n', ""), "iommu", "missing"),
        (lambda t: t.replace('name = "bad"', 'name = "other"'), "name", "does not match"),
        (lambda t: t + 'qemu_args = ["-S"]\n', "qemu_args", "set by the harness"),
        (lambda t: t + "[[", "-", "not valid TOML"),
        (lambda t: t + "edu_dma_bits = 65\n", "edu_dma_bits", "1..64"),
        (lambda t: t + "edu_dma_bits = 28\n", "edu_dma_bits", "reach no RAM"),
        (lambda t: t + 'icount = "x; y"\n', "icount", "not a QEMU -icount"),
        (lambda t: t + 'qemu_args = ["-icount", "1"]\n', "qemu_args", "set by the harness"),
        (lambda t: t + 'qemu_args = ["-global", "x.y=1"]\n', "qemu_args", "set by the harness"),
        (lambda t: t + 'qemu_args = ["-device", "virtconsole"]\n', "qemu_args", "its own virtio console"),
        (lambda t: t + '[fw_cfg]\n"etc/x" = "1"\n', "fw_cfg", "not an fw_cfg file name"),
        (lambda t: t + '[fw_cfg]\n"opt/iomem/granule" = "1"\n', "fw_cfg", "set by the harness"),
        (lambda t: t + '[fw_cfg]\n"opt/x" = "a,b"\n', "fw_cfg", "without commas"),
    ],
)
def test_malformed_profile_names_file_field_reason(tmp_path: Path, edit, field: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, edit(GOOD.format(name="bad")))
    with pytest.raises(ProfileError) as caught:
        profiles.load_file(path)
    assert caught.value.path == str(path)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(path) in str(caught.value) and field in str(caught.value)


def test_unknown_profile_lists_known() -> None:
    with pytest.raises(ProfileError, match="virt-4k"):
        profiles.load("no-such-machine")
    with pytest.raises(ProfileError):
        profiles.load("../etc/passwd")
