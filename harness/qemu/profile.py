"""Machine profiles: the emulated machines as data (``guest/*.toml``).

A profile is loaded into a frozen, validated :class:`Profile`. Every problem is reported as
:class:`~harness.errors.ProfileError` naming the file, the field and the reason; unknown
fields are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import PROJECT_ROOT
from harness.errors import ProfileError

PROFILE_DIR = PROJECT_ROOT / "guest"
DEFAULT_PROFILE = "virt-4k"

GRANULES = (4096, 16384, 65536)
IOMMUS = ("none", "smmuv3")
DEVICES = ("edu",)
MACHINES = ("virt",)
VIRT_RAM_BASE = 0x4000_0000
RAM_MIB_RANGE = (64, 8192)

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

    @property
    def ram_size(self) -> int:
        return self.ram_mib << 20

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "cpu": self.cpu,
            "granule": self.granule,
            "ram": f"{self.ram_mib} MiB at {self.ram_base:#x}",
            "iommu": self.iommu,
            "devices": list(self.devices),
            "description": self.description,
        }


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
    qemu_args = data.get("qemu_args", [])
    for arg in qemu_args:
        if not isinstance(arg, str):
            raise fail("qemu_args", f"{arg!r} is not a string")
        if arg in ("-S", "-kernel", "-serial", "-chardev", "-qmp", "-mon", "-gdb", "-nic", "-machine", "-M"):
            raise fail("qemu_args", f"{arg} is set by the harness and cannot be overridden")
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
