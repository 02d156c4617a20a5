"""Reading (and, for fault injection, writing) guest RAM from the host.

Two independent eyes on guest memory, neither of which the guest controls:

* :class:`SharedRam`: guest RAM is a ``memory-backend-file`` (``share=on``) on a file the
  harness created and unlinked; the harness maps the same file, so a read is a memory copy.
* :class:`PmemsaveRam`: QMP ``pmemsave`` into a temporary file, then a file read. Portable,
  slower; kept as the fallback and as a cross-check of the first.

``make bench`` measures both; SharedRam is the default (see README).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from pathlib import Path
from typing import Protocol

from harness.addresses import PhysAddr
from harness.errors import IomemError
from harness.qemu.qmp import QmpSession


class RamOutOfRange(IomemError):
    """A host-side memory access outside guest RAM."""


class GuestMemory(Protocol):
    base: int
    size: int

    def read(self, pa: PhysAddr, length: int) -> bytes: ...


def _check(base: int, size: int, pa: int, length: int) -> int:
    if length < 0 or pa < base or pa + length > base + size:
        raise RamOutOfRange(f"[{pa:#x}, +{length:#x}) is outside guest RAM [{base:#x}, +{size:#x})")
    return pa - base


def shm_dir() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class RamFile:
    """An anonymous (already unlinked) file that backs guest RAM: nothing to clean up on a crash."""

    def __init__(self, size: int) -> None:
        fd, path = tempfile.mkstemp(prefix="iomem-ram-", dir=shm_dir())
        os.unlink(path)
        try:
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        self.size = size

    @property
    def qemu_path(self) -> str:
        """The path under which QEMU (which inherits the fd) opens the same file."""
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SharedRam:
    """Guest RAM mapped into the harness."""

    def __init__(self, ram_file: RamFile, base: int) -> None:
        self.base = base
        self.size = ram_file.size
        self._map = mmap.mmap(ram_file.fd, ram_file.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def read(self, pa: PhysAddr, length: int) -> bytes:
        offset = _check(self.base, self.size, pa, length)
        return self._map[offset : offset + length]

    def read_u64(self, pa: PhysAddr) -> int:
        return int.from_bytes(self.read(pa, 8), "little")

    def write(self, pa: PhysAddr, data: bytes) -> None:
        """Write guest RAM behind the guest's back (fault injection); pause the guest first."""
        offset = _check(self.base, self.size, pa, len(data))
        self._map[offset : offset + len(data)] = data

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view still exported: the map goes with it
            self._map.close()


class PmemsaveRam:
    """Guest physical memory through QMP ``pmemsave``."""

    def __init__(self, qmp: QmpSession, base: int, size: int, scratch_dir: Path) -> None:
        self.base = base
        self.size = size
        self._qmp = qmp
        self._file = Path(tempfile.mkstemp(prefix="iomem-pmem-", dir=shm_dir())[1])
        del scratch_dir  # the dump lives in shared memory, not in the artifacts

    def read(self, pa: PhysAddr, length: int) -> bytes:
        _check(self.base, self.size, pa, length)
        if length == 0:
            return b""
        self._qmp.execute("pmemsave", {"val": pa, "size": length, "filename": str(self._file)})
        data = self._file.read_bytes()
        if len(data) != length:
            raise IomemError(f"pmemsave returned {len(data)} bytes, asked for {length}")
        return data

    def close(self) -> None:
        self._file.unlink(missing_ok=True)
