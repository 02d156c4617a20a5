"""Descriptor maps and VA reservations decoded from guest RAM (DWARF layouts, ELF symbols),
for ``:verify``'s ``maps`` oracle and for ``iomem inject``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.addresses import PhysAddr
from harness.errors import IomemError

if TYPE_CHECKING:
    from harness.guest import Guest

VASPACE_BASE = 0x10_0000_0000  # firmware/mm/vaspace.h
MAX_DEPTH = 16


@dataclass(frozen=True)
class LiveMap:
    handle: int
    object: int  # address of the IOMemoryMap
    memory: int  # its descriptor
    address: int
    offset: int
    length: int
    map_start: int
    map_size: int
    guard: int
    fixed: bool
    source_pa: Callable[[int], int | None] | None  # map offset (from map_start) -> PA


def _u(blob: bytes, offset: int, size: int = 8) -> int:
    return int.from_bytes(blob[offset : offset + size], "little")


class _Decoder:
    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.dwarf = guest.elf.dwarf
        self.ram = guest.ram
        self.page = guest.profile.granule
        snap = guest.heap_snapshot()
        self.classes = {obj.address: obj.class_name for obj in snap.objects.live}
        self.live = snap.objects.live

    def read(self, address: int, length: int) -> bytes:
        return self.ram.read(PhysAddr(address), length)

    def field(self, struct: str, blob: bytes, name: str, index: int = 0) -> int:
        return self.dwarf.struct(struct).read(blob, name, index)

    def md_pa(self, md: int, offset: int, depth: int = 0) -> int | None:
        """The PA of byte ``offset`` of descriptor ``md`` as the descriptor's own fields say."""
        if depth > MAX_DEPTH:
            raise IomemError(f"descriptor {md:#x}: nesting deeper than {MAX_DEPTH}")
        cls = self.classes.get(md)
        if cls == "IOBufferMemoryDescriptor":
            lay = self.dwarf.struct("IOBufferMemoryDescriptor")
            blob = self.read(md, lay.size)
            page_index, within = divmod(offset, self.page)
            if page_index >= lay.read(blob, "page_count"):
                raise IomemError(f"buffer {md:#x}: offset {offset:#x} beyond its pages")
            pages = lay.read(blob, "pages")
            base = (
                lay.read(blob, "contiguous") + page_index * self.page
                if pages == 0
                else _u(self.read(pages + 8 * page_index, 8), 0)
            )
            return base + within
        if cls == "IOSubMemoryDescriptor":
            lay = self.dwarf.struct("IOSubMemoryDescriptor")
            blob = self.read(md, lay.size)
            return self.md_pa(lay.read(blob, "parent"), lay.read(blob, "offset") + offset, depth + 1)
        if cls == "IOMultiMemoryDescriptor":
            lay = self.dwarf.struct("IOMultiMemoryDescriptor")
            blob = self.read(md, lay.size)
            for i in range(min(lay.read(blob, "count"), lay["parts"].count)):
                length = lay.read(blob, "lengths", i)
                if offset < length:
                    return self.md_pa(lay.read(blob, "parts", i), offset, depth + 1)
                offset -= length
            raise IomemError(f"multi {md:#x}: offset beyond its parts")
        return None  # not a descriptor the host can follow

    def maps(self) -> list[LiveMap]:
        lay = self.dwarf.struct("IOMemoryMap")
        out: list[LiveMap] = []
        for obj in self.live:
            if obj.class_name != "IOMemoryMap":
                continue
            blob = self.read(obj.address, lay.size)
            memory, offset = lay.read(blob, "memory"), lay.read(blob, "offset")
            map_start = lay.read(blob, "map_start")
            first = offset - (lay.read(blob, "address") - map_start)  # descriptor offset at map_start

            def source(at: int, memory: int = memory, first: int = first) -> int | None:
                return self.md_pa(memory, first + at)

            out.append(
                LiveMap(
                    handle=obj.handle,
                    object=obj.address,
                    memory=memory,
                    address=lay.read(blob, "address"),
                    offset=offset,
                    length=lay.read(blob, "length"),
                    map_start=map_start,
                    map_size=lay.read(blob, "map_size"),
                    guard=lay.read(blob, "guard"),
                    fixed=bool(lay.read(blob, "fixed")),
                    source_pa=source,
                )
            )
        return out


def decoder(guest: Guest) -> _Decoder:
    """One decoder (one heap snapshot) for many questions about the same state."""
    return _Decoder(guest)


def live_maps(guest: Guest) -> list[LiveMap]:
    return _Decoder(guest).maps()


def md_pa(guest: Guest, md: int, offset: int) -> int | None:
    return _Decoder(guest).md_pa(md, offset)


def reservations(guest: Guest) -> list[tuple[int, int, int]]:
    """vaspace.c's table: (start, size, guard) of each reservation, in table order."""
    symbol = guest.elf.symbol("vas")
    blob = guest.ram.read(PhysAddr(symbol.address), symbol.size)
    lay = guest.elf.dwarf.struct("vaspace_range")
    capacity = (symbol.size - 16) // lay.size  # ranges[VASPACE_MAX_RANGES], then count and bytes
    count = _u(blob, capacity * lay.size)
    out = []
    for i in range(min(count, capacity)):
        base = i * lay.size
        out.append((_u(blob, base), _u(blob, base + 8), _u(blob, base + 16)))
    return out
