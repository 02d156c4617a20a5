"""A tiny host-side AArch64 stage-1 table *builder* for testing the walker.

Written from the Arm ARM tables (level shifts listed per granule, not computed), and kept free
of any import from ``harness.oracle.pagewalk``: a test that builds with this and walks with
that checks two independent readings of the architecture against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# VA bit where each level's index field starts, straight from the Arm ARM granule tables.
LEVEL_SHIFT = {
    4096: {0: 39, 1: 30, 2: 21, 3: 12},
    16384: {0: 47, 1: 36, 2: 25, 3: 14},
    65536: {1: 42, 2: 29, 3: 16},
}
# Levels where a block descriptor is architecturally allowed (48-bit OA, no LPA2).
BLOCK_LEVELS = {4096: (1, 2), 16384: (2,), 65536: (2,)}
TG0 = {4096: 0b00, 65536: 0b01, 16384: 0b10}
TG1 = {16384: 0b01, 4096: 0b10, 65536: 0b11}
IPS_48 = 0b101
CLASSIC_MAIR = 0x0C0804FF00BB44FF   # Attr0=FF 1=44 2=BB 3=00 4=FF 5=04 6=08 7=0C


def leaf_attrs(*, attr_index: int = 0, ap: int = 0, sh: int = 0b11, af: bool = True, ng: bool = False,
               contiguous: bool = False, pxn: bool = False, uxn: bool = False) -> int:
    """The attribute bits of a block/page descriptor (no address, no type bits)."""
    return ((attr_index << 2) | (ap << 6) | (sh << 8) | (int(af) << 10) | (int(ng) << 11)
            | (int(contiguous) << 52) | (int(pxn) << 53) | (int(uxn) << 54))


def tcr(*, t0: tuple[int, int] | None = None, t1: tuple[int, int] | None = None, ips: int = IPS_48,
        extra: int = 0) -> int:
    """TCR_EL1 for (granule, va_bits) per half; a missing half gets EPDn=1."""
    value = (ips << 32) | extra
    if t0 is None:
        value |= 1 << 7
    else:
        value |= (64 - t0[1]) | (TG0[t0[0]] << 14)
    if t1 is None:
        value |= (1 << 23) | (TG1[4096] << 30) | (25 << 16)
    else:
        value |= ((64 - t1[1]) << 16) | (TG1[t1[0]] << 30)
    return value


class Ram:
    """Guest RAM from ``base``, growing as tables are allocated; reads outside it raise."""

    def __init__(self, base: int = 0x4000_0000, big_endian: bool = False) -> None:
        self.base = base
        self.mem = bytearray()
        self.order: Literal["little", "big"] = "big" if big_endian else "little"
        self.reads = 0

    def alloc(self, size: int, align: int) -> int:
        start = -(-len(self.mem) // align) * align
        self.mem.extend(bytes(start + size - len(self.mem)))
        return self.base + start

    def read(self, pa: int, size: int) -> bytes:
        off = pa - self.base
        if off < 0 or off + size > len(self.mem):
            raise IndexError(f"read [{pa:#x}, +{size:#x}) outside test RAM")
        self.reads += 1
        return bytes(self.mem[off:off + size])

    def write64(self, pa: int, value: int) -> None:
        off = pa - self.base
        self.mem[off:off + 8] = value.to_bytes(8, self.order)

    def read64(self, pa: int) -> int:
        off = pa - self.base
        return int.from_bytes(self.mem[off:off + 8], self.order)


@dataclass
class Leaf:
    va: int          # full 64-bit VA of the leaf start
    pa: int
    level: int
    size: int
    attrs: int
    descriptor_pa: int


@dataclass
class Half:
    """The tables of one half (TTBR0 or TTBR1), built top-down on demand."""

    ram: Ram
    granule: int
    va_bits: int
    select: int = 0
    root: int = 0
    start_level: int = 0
    leaves: list[Leaf] = field(default_factory=list)
    _tables: dict[int, int] = field(default_factory=dict)   # descriptor PA -> next table PA

    def __post_init__(self) -> None:
        shifts = LEVEL_SHIFT[self.granule]
        self.start_level = min(lvl for lvl, s in shifts.items() if self.va_bits > s)
        root_entries = 1 << (self.va_bits - shifts[self.start_level])
        self.root = self.ram.alloc(root_entries * 8, max(64, root_entries * 8))

    @property
    def window(self) -> int:
        """The lowest VA of this half."""
        return 0 if self.select == 0 else (1 << 64) - (1 << self.va_bits)

    def _slot(self, table: int, level: int, va_off: int) -> int:
        shifts = LEVEL_SHIFT[self.granule]
        bits = (self.va_bits if level == self.start_level else shifts[level - 1]) - shifts[level]
        index = (va_off >> shifts[level]) & ((1 << bits) - 1)
        return table + 8 * index

    def map(self, va_off: int, pa: int, level: int, attrs: int) -> Leaf | None:
        """Map the leaf at offset ``va_off`` inside the half; None if it would overlap."""
        shifts = LEVEL_SHIFT[self.granule]
        size = 1 << shifts[level]
        assert va_off % size == 0 and pa % size == 0 and va_off < (1 << self.va_bits)
        table = self.root
        for lvl in range(self.start_level, level):
            slot = self._slot(table, lvl, va_off)
            desc = self.ram.read64(slot)
            if desc & 0b11 == 0b11:
                table = desc & ((1 << 48) - self.granule)
                continue
            if desc & 1:
                return None        # an existing block covers this VA
            table_pa = self.ram.alloc(self.granule, self.granule)
            self.ram.write64(slot, table_pa | 0b11)
            table = table_pa
        slot = self._slot(table, level, va_off)
        if self.ram.read64(slot) & 1:
            return None
        self.ram.write64(slot, pa | attrs | (0b11 if level == 3 else 0b01))
        leaf = Leaf(self.window + va_off, pa, level, size, attrs, slot)
        self.leaves.append(leaf)
        return leaf
