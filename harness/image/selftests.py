"""The in-guest C unit tests of a firmware image, read from its ELF.

Every ``IOMEM_TEST(name)`` (``firmware/lib/selftest.h``) is a ``struct iomem_test`` in the
linker section ``iomem_tests``: four 64-bit words, pointers to the name and file strings, the
line, the function. This module decodes that section (strings through the ELF's own sections),
so the harness knows the tests without asking a guest; ``tests/hw/test_selftest.py`` makes each
one a pytest item, run by the agent verb ``selftest run NAME``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness.errors import InvalidInput

SECTION = "iomem_tests"
ENTRY = struct.Struct("<QQQQ")


@dataclass(frozen=True)
class SelfTest:
    name: str
    file: str
    line: int
    function: int  # address of the test body


def _cstring(elf: ELFFile, address: int) -> str:
    for section in elf.iter_sections():
        start = section["sh_addr"]
        if start and start <= address < start + section["sh_size"] and section["sh_type"] != "SHT_NOBITS":
            data = section.data()[address - start :]
            return data.split(b"\0", 1)[0].decode()
    raise InvalidInput(f"no section holds address {address:#x}")


def selftests(elf_path: Path) -> list[SelfTest]:
    """The tests in ``elf_path``, in link order (empty if the image has none)."""
    with Path(elf_path).open("rb") as stream:
        elf = ELFFile(stream)
        section = elf.get_section_by_name(SECTION)
        if section is None:
            return []
        data = section.data()
        if len(data) % ENTRY.size:
            raise InvalidInput(f"{SECTION} is {len(data)} bytes, not a multiple of {ENTRY.size}")
        found = []
        for name, file, line, fn in ENTRY.iter_unpack(data):
            found.append(SelfTest(_cstring(elf, name), _cstring(elf, file), line, fn))
    return found
