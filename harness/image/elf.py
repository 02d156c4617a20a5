"""The firmware ELF as an independent source: GNU build-id, sections, symbols (pyelftools).

Every guest (and every Hypothesis example builds one) opens the same ELF, so what is parsed
from it (symbols, sections, :class:`~harness.image.dwarf.Dwarf`) is cached once per process,
keyed by the resolved path and the build-id: a rebuilt ELF at the same path is parsed again.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection, SymbolTableSection

from harness.errors import IomemError, NotFound
from harness.image.dwarf import Dwarf

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4


@dataclass(frozen=True)
class Section:
    name: str
    address: int
    size: int
    flags: int

    @property
    def writable(self) -> bool:
        return bool(self.flags & SHF_WRITE)

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    size: int
    kind: str


class Firmware:
    """Read-only view of one firmware ELF file; everything is read once and cached."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise IomemError(f"firmware ELF not found: {self.path}")

    @cached_property
    def build_id(self) -> str:
        """The GNU build-id as lower-case hex; raises if the ELF has none."""
        with self.path.open("rb") as handle:
            elf = ELFFile(handle)
            for section in elf.iter_sections():
                if not isinstance(section, NoteSection):
                    continue
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"]).lower()
        raise IomemError(f"{self.path} has no GNU build-id note")

    @cached_property
    def entry(self) -> int:
        with self.path.open("rb") as handle:
            return int(ELFFile(handle).header["e_entry"])

    @cached_property
    def key(self) -> tuple[Path, str]:
        """What the process-wide caches are keyed by: resolved path and build-id."""
        return self.path.resolve(), self.build_id

    @property
    def sections(self) -> tuple[Section, ...]:
        """Allocated sections (those loaded into guest memory), by address."""
        return _sections(*self.key)

    def section(self, name: str) -> Section:
        for section in self.sections:
            if section.name == name:
                return section
        raise NotFound(f"{self.path.name} has no allocated section {name!r}")

    @property
    def dwarf(self) -> Dwarf:
        """Struct layouts, enums and variable types (parsed once per process per ELF)."""
        return _dwarf(*self.key)

    @property
    def symbols(self) -> dict[str, Symbol]:
        """Function and object symbols by name (shared by every Firmware of this ELF: read only)."""
        return _symbols(*self.key)

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise NotFound(f"{self.path.name} has no symbol {name!r}") from None

    def symbolize(self, address: int) -> str:
        """``function+0xoff`` for an address inside a function, else the bare hex address."""
        starts, funcs = _functions(*self.key)
        index = bisect.bisect_right(starts, address) - 1
        if index >= 0:
            func = funcs[index]
            if address < func.address + max(func.size, 1):
                return f"{func.name}+{address - func.address:#x}"
        return f"{address:#x}"


# ---------------------------------------------------------------- process-wide caches
# Keyed by (resolved path, build-id); the build-id is part of the key only so that a rebuilt
# ELF is parsed again.


@functools.cache
def _sections(path: Path, build_id: str) -> tuple[Section, ...]:
    del build_id
    out: list[Section] = []
    with path.open("rb") as handle:
        for section in ELFFile(handle).iter_sections():
            flags = int(section["sh_flags"])
            if flags & SHF_ALLOC and section["sh_size"]:
                out.append(Section(section.name, int(section["sh_addr"]), int(section["sh_size"]), flags))
    return tuple(sorted(out, key=lambda s: s.address))


@functools.cache
def _symbols(path: Path, build_id: str) -> dict[str, Symbol]:
    del build_id
    out: dict[str, Symbol] = {}
    with path.open("rb") as handle:
        for section in ELFFile(handle).iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for sym in section.iter_symbols():
                kind = sym["st_info"]["type"]
                if sym.name and kind in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE"):
                    out[sym.name] = Symbol(sym.name, int(sym["st_value"]), int(sym["st_size"]), kind)
    return out


@functools.cache
def _functions(path: Path, build_id: str) -> tuple[list[int], list[Symbol]]:
    funcs = sorted(
        (s for s in _symbols(path, build_id).values() if s.kind == "STT_FUNC"), key=lambda s: s.address
    )
    return [f.address for f in funcs], funcs


@functools.cache
def _dwarf(path: Path, build_id: str) -> Dwarf:
    del build_id
    return Dwarf(path)
