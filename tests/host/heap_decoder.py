"""harness/oracle/heap.py pointed at the host-built library: the same decoder that reads guest
RAM, reading the host process's memory, with the layouts from the library's own DWARF.

Reads are confined to the arena buffer and the library's mappings, so a corrupted pointer
makes the decoder report a problem instead of crashing the test process.
"""

from __future__ import annotations

import ctypes
import functools

from hostlib import LIB_PATH, Arena, load

from harness.image.dwarf import Dwarf
from harness.oracle import heap as heap_oracle


@functools.cache
def layouts() -> heap_oracle.Layouts:
    load()  # built first
    return heap_oracle.Layouts.from_dwarf(Dwarf(LIB_PATH))


def symbols() -> heap_oracle.Symbols:
    lib = load()

    def address(name: str) -> int:
        return ctypes.addressof(ctypes.c_char.in_dll(lib, name))

    return heap_oracle.Symbols(address("pages_state"), address("heap_state"), address("object_registry"))


@functools.cache
def _library_ranges() -> list[tuple[int, int]]:
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith(LIB_PATH.name):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                ranges.append((start, end))
    return ranges


def reader(arena: Arena) -> heap_oracle.ReadMemory:
    lay, sym = layouts(), symbols()
    globals_ = [
        (sym.pages_state, sym.pages_state + lay.page_allocator.size),
        (sym.heap_state, sym.heap_state + lay.heap_state.size),
        (sym.object_registry, sym.object_registry + lay.object_registry.size),
    ]
    allowed = [(arena.base, arena.base + arena.size), *globals_, *_library_ranges()]

    def read(address: int, length: int) -> bytes:
        if not any(lo <= address and address + length <= hi for lo, hi in allowed):
            raise ValueError(f"[{address:#x}, +{length:#x}) is neither the arena nor the library")
        return ctypes.string_at(address, length)

    return read


def decode(arena: Arena) -> heap_oracle.Snapshot:
    return heap_oracle.decode(reader(arena), layouts(), symbols())
