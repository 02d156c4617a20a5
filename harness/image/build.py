"""Finding the firmware ELF and building it when it is missing or stale (``make`` decides)."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from harness import PROJECT_ROOT
from harness.errors import BuildError

if TYPE_CHECKING:
    from harness.qemu.profile import Profile

FIRMWARE_ELF = PROJECT_ROOT / "build" / "firmware" / "iomem.elf"
LOCK_PATH = PROJECT_ROOT / "build" / ".make.lock"


def firmware_path(profile: Profile | None = None) -> Path:
    """The ELF a profile boots. One ELF serves every profile: the granule reaches it by fw_cfg."""
    del profile
    return FIRMWARE_ELF


def run_make(target: str) -> None:
    """``make TARGET`` in the project (make decides what is stale); BuildError if it fails.

    Serialized across processes by a lock file: pytest-xdist workers all ask for the
    firmware at start-up, and two makes writing the same objects would corrupt them."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-s", "--no-print-directory", target],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise BuildError(
            f"make {target} failed:\n" + (result.stdout + result.stderr).strip(), command=f"make {target}"
        )


def ensure_firmware(profile: Profile | None = None, *, build: bool = True) -> Path:
    """Build the firmware if it is missing or stale, then return its path."""
    path = firmware_path(profile)
    if build and os.environ.get("IOMEM_NO_BUILD") != "1":
        run_make("firmware")
    if not path.is_file():
        raise BuildError(f"firmware ELF not found at {path}", command="make firmware")
    return path
