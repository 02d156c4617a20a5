"""Machine profiles: the emulated machines as data (``guest/*.toml``).

A profile is loaded into a frozen, validated :class:`Profile`. Every problem is reported as
:class:`~harness.errors.ProfileError` naming the file, the field and the reason; unknown
fields are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import PROJECT_ROOT
from harness.errors import ProfileError

PROFILE_DIR = PROJECT_ROOT / "guest"
# Devices that would add a virtio console beside the harness's (the firmware takes the first).
CONSOLE_DEVICE_PREFIXES = ("virtio-serial", "virtconsole", "virtserialport")
DEFAULT_PROFILE = "virt-4k"

GRANULES = (4096, 16384, 65536)
IOMMUS = ("none", "smmuv3")
DEVICES = ("edu",)
MACHINES = ("virt",)
VIRT_RAM_BASE = 0x4000_0000
RAM_MIB_RANGE = (64, 8192)
EDU_DEFAULT_DMA_BITS = 28  # QEMU 7.2 edu's dma_mask default, 0x0FFF_FFFF (dma-facts §1.3)
EDU_SLOT = 1  # edu pinned at 00:01.0: StreamID 0x0008, INTA -> INTID 36 (dma-facts §0)
HARNESS_FW_CFG = ("opt/iomem/granule",)  # set by the harness from the profile itself
_FW_CFG_NAME = re.compile(r"^opt/[A-Za-z0-9._/-]{1,50}$")
_ICOUNT = re.compile(r"^[a-z0-9=,]{1,60}$")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_CPU = re.compile(r"^[a-z0-9][a-z0-9.-]{0,39}$")
_FIELDS = {
    "name": str,
    "description": str,
    "machine": str,
    "cpu": str,
    "granule": int,
    "ram_base": int,
    "ram_mib": int,
    "iommu": str,
    "devices": list,
    "qemu_args": list,
    "edu_dma_bits": int,
    "fw_cfg": dict,
    "icount": str,
}
_REQUIRED = ("name", "machine", "cpu", "granule", "ram_base", "ram_mib", "iommu", "devices")


@dataclass(frozen=True)
class Profile:
    """One emulated machine: CPU model, granule (= IOVMPageSize), RAM, IOMMU, devices."""

    name: str
    machine: str
    cpu: str
    granule: int
    ram_base: int
    ram_mib: int
    iommu: str
    devices: tuple[str, ...]
    qemu_args: tuple[str, ...] = ()
    description: str = ""
    path: str = "<built in>"
    edu_dma_bits: int = EDU_DEFAULT_DMA_BITS  # the edu's bus-address mask, as a bit count
    fw_cfg: tuple[tuple[str, str], ...] = ()  # extra fw_cfg files the firmware reads (name, string)
    icount: str = ""  # QEMU -icount options ("" = real-time virtual clock)

    @property
    def ram_size(self) -> int:
        return self.ram_mib << 20

    @property
    def ram_end(self) -> int:
        """First PA past guest RAM."""
        return self.ram_base + self.ram_size

    @property
    def smmu(self) -> bool:
        return self.iommu == "smmuv3"

    @property
    def edu_dma_mask(self) -> int:
        """edu's ``dma_mask`` property: QEMU ANDs every bus-side DMA address with it."""
        return (1 << self.edu_dma_bits) - 1

    @property
    def edu_stream_id(self) -> int:
        """PCI requester ID of the pinned edu (bus 0, slot EDU_SLOT, function 0) = SMMU StreamID."""
        return EDU_SLOT << 3

    def fw_cfg_value(self, name: str) -> str | None:
        return dict(self.fw_cfg).get(name)

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "cpu": self.cpu,
            "granule": self.granule,
            "ram": f"{self.ram_mib} MiB at {self.ram_base:#x}",
            "iommu": self.iommu,
            "devices": list(self.devices),
            "edu_dma_bits": self.edu_dma_bits,
            "fw_cfg": dict(self.fw_cfg),
            "icount": self.icount or "off",
            "description": self.description,
        }


EDU_WAIT_ICOUNT = "shift=0,sleep=off"
"""The ``-icount`` of guests that wait on many edu transfers (docs/dma-oracles.md, Speed): the
virtual clock counts instructions and jumps to the edu's 100 ms timer while the CPU idles."""


def with_icount(profile: Profile, icount: str = EDU_WAIT_ICOUNT) -> Profile:
    """The same machine on an instruction-counted virtual clock (a profile that sets its own
    ``icount`` keeps it). For tests whose time goes to edu transfers; every other request is
    slower under -icount (each MMIO access retranslates its block), so profiles leave it off."""
    return profile if profile.icount else dataclasses.replace(profile, icount=icount)


def validate(data: dict[str, Any], path: str, expected_name: str | None = None) -> Profile:
    """Check a profile's fields and build it; raise :class:`ProfileError` on the first problem."""

    def fail(field: str, reason: str) -> ProfileError:
        return ProfileError(path, field, reason)

    for key in data:
        if key not in _FIELDS:
            raise fail(key, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for key in _REQUIRED:
        if key not in data:
            raise fail(key, "missing")
    for key, kind in _FIELDS.items():
        if key in data:
            value = data[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise fail(key, f"must be {kind.__name__}, not {type(value).__name__} {value!r}")

    name = data["name"]
    if not _NAME.match(name):
        raise fail("name", f"{name!r} is not a profile name (lower case letters, digits, '-')")
    if expected_name is not None and name != expected_name:
        raise fail("name", f"{name!r} does not match the file name {expected_name!r}")
    if data["machine"] not in MACHINES:
        raise fail("machine", f"{data['machine']!r} is not supported (supported: {', '.join(MACHINES)})")
    if not _CPU.match(data["cpu"]):
        raise fail("cpu", f"{data['cpu']!r} is not a QEMU CPU model name")
    if data["granule"] not in GRANULES:
        raise fail("granule", f"{data['granule']} is not an AArch64 granule (4096, 16384 or 65536)")
    if data["ram_base"] != VIRT_RAM_BASE:
        raise fail("ram_base", f"{data['ram_base']:#x}: QEMU virt RAM starts at {VIRT_RAM_BASE:#x}")
    low, high = RAM_MIB_RANGE
    if not low <= data["ram_mib"] <= high:
        raise fail("ram_mib", f"{data['ram_mib']} is outside {low}..{high}")
    if data["iommu"] not in IOMMUS:
        raise fail("iommu", f"{data['iommu']!r} is not one of {', '.join(IOMMUS)}")
    devices = data["devices"]
    for device in devices:
        if device not in DEVICES:
            raise fail("devices", f"{device!r} is not a known device (known: {', '.join(DEVICES)})")
    if "edu" not in devices:
        raise fail("devices", "at least one 'edu' device is required")
    # Default: QEMU's own 28-bit mask behind an IOMMU, all 64 bits without one (so RAM is reachable).
    dma_bits = data.get("edu_dma_bits", EDU_DEFAULT_DMA_BITS if data["iommu"] != "none" else 64)
    if not 1 <= dma_bits <= 64:
        raise fail("edu_dma_bits", f"{dma_bits} is not a bit count in 1..64")
    if data["iommu"] == "none" and dma_bits < 64 and (1 << dma_bits) <= data["ram_base"]:
        raise fail(
            "edu_dma_bits",
            f"{dma_bits} bits reach no RAM without an IOMMU (RAM starts at {data['ram_base']:#x}): "
            "QEMU would clamp every DMA to a device address",
        )
    fw_cfg = data.get("fw_cfg", {})
    for key, value in fw_cfg.items():
        if not _FW_CFG_NAME.match(key):
            raise fail("fw_cfg", f"{key!r} is not an fw_cfg file name (opt/...)")
        if key in HARNESS_FW_CFG:
            raise fail("fw_cfg", f"{key} is set by the harness and cannot be overridden")
        if not isinstance(value, str) or "," in value or not value.isprintable():
            raise fail("fw_cfg", f"{key}: value {value!r} must be a printable string without commas")
    icount = data.get("icount", "")
    if icount and not _ICOUNT.match(icount):
        raise fail("icount", f"{icount!r} is not a QEMU -icount option string")
    qemu_args = data.get("qemu_args", [])
    for arg in qemu_args:
        if not isinstance(arg, str):
            raise fail("qemu_args", f"{arg!r} is not a string")
        if arg in (
            "-S",
            "-kernel",
            "-serial",
            "-chardev",
            "-qmp",
            "-mon",
            "-gdb",
            "-nic",
            "-machine",
            "-M",
            "-icount",
            "-trace",
            "-fw_cfg",
            "-global",
        ):
            raise fail("qemu_args", f"{arg} is set by the harness and cannot be overridden")
        if arg.startswith(CONSOLE_DEVICE_PREFIXES):
            raise fail(
                "qemu_args",
                f"{arg}: the harness's requests go to its own virtio console (harness/qemu/serial.py); "
                "a second one could take them",
            )
    return Profile(
        name=name,
        machine=data["machine"],
        cpu=data["cpu"],
        granule=data["granule"],
        ram_base=data["ram_base"],
        ram_mib=data["ram_mib"],
        iommu=data["iommu"],
        devices=tuple(devices),
        qemu_args=tuple(qemu_args),
        description=data.get("description", ""),
        path=path,
        edu_dma_bits=dma_bits,
        fw_cfg=tuple(sorted(fw_cfg.items())),
        icount=icount,
    )


def load_file(path: Path) -> Profile:
    """Load and validate one profile file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(str(path), "-", f"cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), "-", f"not valid TOML: {exc}") from exc
    return validate(data, str(path), expected_name=path.stem)


def all_profiles(directory: Path = PROFILE_DIR) -> list[Profile]:
    """Every profile in ``directory``, sorted by name; a malformed one raises."""
    return [load_file(p) for p in sorted(directory.glob("*.toml"))]


def profile_names(directory: Path = PROFILE_DIR) -> list[str]:
    return [p.stem for p in sorted(directory.glob("*.toml"))]


def load(name: str, directory: Path = PROFILE_DIR) -> Profile:
    """The profile called ``name``; an unknown name lists the known ones."""
    path = directory / f"{name}.toml"
    if not _NAME.match(name) or not path.is_file():
        known = ", ".join(profile_names(directory)) or "none"
        raise ProfileError(str(path), "name", f"no profile called {name!r} (known: {known})")
    return load_file(path)
