"""Shared pieces of the DMA hardware tests (not a test module): buffers with host-written
canaries, and the host's own eyes on a DMA (guest RAM, the CPU page walker, the SMMU walker
over registers read through QEMU's monitor, QEMU's SMMU trace, the SMMU event queue)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import LEAK_KEYS, Descriptors
from harness.guest.dma import DIRECTION_IN, DIRECTION_OUT, Dma, DmaSegment, Prepared
from harness.models.descriptors import Segment, merge_runs
from harness.models.dma_model import Memory
from harness.oracle import qemu_trace
from harness.oracle.descriptors import walk_runs
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import PageWalker
from harness.oracle.smmu import (
    SMMU_BASE,
    EventType,
    SmmuEvent,
    SmmuFault,
    SmmuRegisters,
    SmmuRun,
    SmmuWalker,
    parse_xp,
    read_events,
    read_registers,
)
from harness.qemu.profile import Profile

SMMU_PROFILES = ("virt-4k-smmu", "virt-64k-smmu")
NO_IOMMU_PROFILES = ("virt-4k",)
BOUNCE_PROFILES = ("virt-4k-dma32",)
DMA_PROFILES = SMMU_PROFILES + NO_IOMMU_PROFILES + BOUNCE_PROFILES
EDU_BITS_SMMU = 28
CANARY = 0xC5
DMA_LEAK_KEYS = (
    *LEAK_KEYS,
    "dma_live",
    "dma_prepared",
    "iova_ranges",
    "iova_bytes",
    "bounce_pages",
    "iopt_pages",
)
ORACLE_COUNTS: Counter[tuple[str, str]] = Counter()
"""(profile, what) -> how many times an oracle agreed this session (printed by conftest.py)."""
DIRS = {"in": DIRECTION_IN, "out": DIRECTION_OUT, "inout": DIRECTION_IN | DIRECTION_OUT}
# The edu's registers (QEMU docs/specs/edu.txt), read by the host through QEMU's monitor
EDU_REG_ID = 0x00
EDU_REG_IRQ_STATUS = 0x24
EDU_REG_DMA_SRC = 0x80
EDU_REG_DMA_DST = 0x88
EDU_REG_DMA_COUNT = 0x90
EDU_REG_DMA_CMD = 0x98
EDU_CMD_RUN = 0x1
EDU_CMD_TO_PCI = 0x2  # direction: the edu's buffer -> the bus address
EDU_BUFFER_ADDR = 0x40000  # the edu's own buffer, as its DMA engine addresses it
EDU_IRQ_DMA_DONE = 0x100  # edu.txt: "raise interrupt 0x100" when a DMA finishes


def command_bits(profile: Profile) -> int:
    """maxAddressBits to give a command so the edu can reach every address it is handed."""
    return profile.edu_dma_bits if profile.edu_dma_bits < 64 else 0


@dataclass
class Buffer:
    """A buffer descriptor whose DMA window is ``[offset, offset + length)``; every other byte
    of its pages is a canary the host wrote and that must never change."""

    md: int
    va: VirtAddr
    capacity: int
    offset: int
    length: int
    direction: str
    runs: list[Segment]  # physical runs of the whole buffer pages (host page walker)
    page: int
    content: bytearray = field(default_factory=bytearray)  # expected bytes of the window

    @property
    def span(self) -> int:
        """Bytes of whole pages behind the buffer."""
        return -(-self.capacity // self.page) * self.page

    @property
    def memory(self) -> Memory:
        """The buffer as the DMA model sees it (its physical runs; no bytes)."""
        runs = [(int(seg.pa), seg.length) for seg in self.runs]
        return Memory(self.md, self.span, DIRS[self.direction], runs, bytearray())

    def pa(self, offset: int) -> PhysAddr:
        return PhysAddr(self.memory.pa_at(offset))

    def phys_runs(self, offset: int, length: int) -> list[tuple[int, int]]:
        """Physical runs behind ``[offset, offset + length)``, adjacent runs merged (the model's)."""
        return self.memory.phys_runs(offset, length)


class DmaBench:
    """One guest's DMA verbs plus every host-side check the DMA tests share."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.profile = guest.profile
        self.dma = Dma(guest)
        self.mds = Descriptors(guest)
        self.page = guest.profile.granule
        self.trace = qemu_trace.TraceLog(guest.machine.trace_path)
        self.agreement = qemu_trace.Agreement()
        self.edu_bar = 0  # the edu's BAR0, once a test has read it from config space

    # ------------------------------------------------------------ buffers
    def buffer(self, length: int, direction: str = "inout", *, offset: int = 0, tail: int = 0) -> Buffer:
        """A buffer of ``offset + length + tail`` bytes; the host fills the window with random
        bytes and every other byte of its pages with the canary."""
        capacity = offset + length + tail
        made = self.mds.create(capacity, dir=direction)
        span = -(-capacity // self.page) * self.page
        runs = walk_runs(self.guest.walker(), made.va, span)
        buf = Buffer(made.md, made.va, capacity, offset, length, direction, runs, self.page)
        content = bytearray(os.urandom(length))
        self.host_write(buf, 0, bytes([CANARY]) * span)
        self.host_write(buf, offset, bytes(content))
        buf.content = content
        return buf

    def host_write(self, buf: Buffer, offset: int, data: bytes) -> None:
        at = 0
        for pa, n in buf.phys_runs(offset, len(data)):
            self.guest.ram.write(PhysAddr(pa), data[at : at + n])
            at += n

    def host_read(self, buf: Buffer, offset: int, length: int) -> bytes:
        return b"".join(self.guest.ram.read(PhysAddr(pa), n) for pa, n in buf.phys_runs(offset, length))

    def check_bytes(self, buf: Buffer) -> None:
        """The window holds what the test expects and every canary byte is intact (host RAM)."""
        got = self.host_read(buf, buf.offset, buf.length)
        if got != bytes(buf.content):
            first = next(i for i, (a, b) in enumerate(zip(got, buf.content, strict=True)) if a != b)
            raise AssertionError(
                f"buffer {buf.md:#x}: window byte {first} is {got[first]:#04x}, "
                f"expected {buf.content[first]:#04x}"
            )
        before = self.host_read(buf, 0, buf.offset)
        after = self.host_read(buf, buf.offset + buf.length, buf.span - buf.offset - buf.length)
        for where, blob in (("before", before), ("after", after)):
            bad = [i for i, b in enumerate(blob) if b != CANARY]
            assert not bad, (
                f"buffer {buf.md:#x}: {len(bad)} canary bytes {where} the window changed (first {bad[0]})"
            )

    # ------------------------------------------------------------ preparations
    def prepare(self, command: int, buf: Buffer, *, max: int | None = None) -> Prepared:
        return self.dma.prepare(command, buf.md, offset=buf.offset, length=buf.length, max=max)

    def device_address(self, prep: Prepared, offset: int) -> int:
        """The device address of byte ``offset`` of a preparation (from its segments)."""
        at = offset
        for seg in prep.segments:
            if at < seg.length:
                return seg.address + at
            at -= seg.length
        raise ValueError(f"offset {offset} beyond the segments")

    # ------------------------------------------------------------ SMMU eyes
    def smmu_registers(self) -> SmmuRegisters:
        assert self.guest.machine.qmp is not None
        return read_registers(self.guest.machine.qmp.hmp)

    def smmu_walker(self) -> SmmuWalker:
        ram = self.guest.ram
        return SmmuWalker(lambda pa, n: ram.read(PhysAddr(pa), n), self.smmu_registers())

    def eventq_prod(self) -> int:
        assert self.guest.machine.qmp is not None
        address = SMMU_BASE + 0xA8
        return parse_xp(self.guest.machine.qmp.hmp(f"xp /1wx {address:#x}"), address)

    def events_since(self, prod: int) -> list[SmmuEvent]:
        regs = self.smmu_registers()
        ram = self.guest.ram
        return read_events(lambda pa, n: ram.read(PhysAddr(pa), n), regs, prod, regs.eventq_prod)

    def check_segments_translate(self, buf: Buffer, prep: Prepared, sid: int | None = None) -> list[SmmuRun]:
        """Every IOVA segment translates (host SMMU walker) to the PAs the CPU page walker gives
        for the same bytes of the buffer, with the permission the direction asks for."""
        sid = self.profile.edu_stream_id if sid is None else sid
        walker = self.smmu_walker()
        runs: list[SmmuRun] = []
        for seg in prep.segments:
            got = walker.runs(sid, seg.address, seg.length)
            assert not isinstance(got, SmmuFault), f"segment {seg}: {got}"
            runs += got
        device = [(r.pa, r.length) for r in runs]
        expected = buf.phys_runs(buf.offset, prep.length)
        assert _merge(device) == _merge(expected), f"SMMU walk {device} != CPU walk {expected}"
        writable = {r.writable for r in runs}
        assert writable == {bool(DIRS[buf.direction] & DIRECTION_IN)}, (
            f"{buf.direction} buffer mapped with device write={writable}"
        )
        for key in ("count", "seg<N>", "length"):  # every segment walked, together the buffer's bytes
            ledger.checked("dma prepare", key, "smmu")
        ORACLE_COUNTS[(self.profile.name, "IOVA pages: SMMU walker == CPU walker")] += sum(
            -(-r.length // self.page) for r in runs
        )
        return runs

    def xp(self, address: int, width: int = 4) -> int:
        """One physical read by QEMU's monitor (``xp``: a real MMIO access for device registers)."""
        assert self.guest.machine.qmp is not None
        return xp(self.guest.machine.qmp.hmp, address, width)

    def smmu_footprint(self) -> SmmuFootprint:
        return smmu_footprint(self.smmu_walker(), self.profile.edu_stream_id)

    def trace_agrees(self) -> qemu_trace.Agreement:
        """QEMU's translate_success lines since the last call agree with the host walker."""
        records = self.trace.new()
        agreement = qemu_trace.match_walker(records, self.smmu_walker(), sid=self.profile.edu_stream_id)
        self.agreement.merge(agreement)
        assert agreement.ok, "\n".join(agreement.mismatches)
        ORACLE_COUNTS[(self.profile.name, "QEMU trace lines == SMMU walker")] += agreement.checked
        return agreement

    def trace_events(self) -> list[qemu_trace.TraceEvent]:
        return qemu_trace.events(self.trace.new(), self.profile.edu_stream_id)


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(seg.pa, seg.length) for seg in merge_runs(runs)]


def xp(hmp: Callable[[str], str], address: int, width: int = 4) -> int:
    """A ``width``-byte physical read through the monitor's ``xp`` (4 or 8 bytes)."""
    return parse_xp(hmp(f"xp /1{'g' if width == 8 else 'w'}x {address:#x}"), address)


@dataclass(frozen=True)
class SmmuFootprint:
    """What a stream's stage-1 tables hold, counted by the host walking them: table pages
    (the root included), leaf pages of the granule, and the bytes they map."""

    tables: int
    pages: int
    bytes: int


def smmu_footprint(walker: SmmuWalker, sid: int) -> SmmuFootprint:
    """Walk every table of ``sid``'s stage 1 from the CD's TTB0 (nothing when it does not
    translate: no SMMU, bypass, abort)."""
    cd = walker.context(sid)
    if cd is None:
        return SmmuFootprint(0, 0, 0)
    pages = PageWalker(walker.read_phys, cd.regime())
    tables: set[int] = set()
    read_table = pages._table

    def counting(pa: int, count: int) -> tuple[int, ...]:
        tables.add(pa)
        return read_table(pa, count)

    pages._table = counting  # type: ignore[method-assign]
    leaves = list(pages.iter_mappings(0, 1 << cd.input_bits))
    tables.add(cd.ttb0 & TTB_ADDRESS)  # the root, read even when nothing is mapped
    return SmmuFootprint(
        len(tables), sum(leaf.size // cd.granule for leaf in leaves), sum(leaf.size for leaf in leaves)
    )


TTB_ADDRESS = 0x000F_FFFF_FFFF_FFF0  # CD.TTB0[51:4]


def device_segments(prep: Prepared) -> list[tuple[int, int]]:
    return [(int(s.address), s.length) for s in prep.segments]


def segment(address: int, length: int) -> DmaSegment:
    return DmaSegment(PhysAddr(address), length)


@dataclass(frozen=True)
class DmaBaseline:
    """Allocator, descriptor and DMA (IOVA, bounce, IOMMU page-table) counters to come back to,
    plus the page allocator's free count read from guest RAM."""

    stats: Mapping[str, int]
    ram_free_pages: int

    @classmethod
    def take(cls, guest: Guest) -> DmaBaseline:
        stats = Descriptors(guest).stats()
        return cls(
            MappingProxyType({k: stats[k] for k in DMA_LEAK_KEYS if k in stats}),
            PageBytes(guest).free_pages(),
        )

    def check(self, guest: Guest) -> None:
        walk = guest.request("check")
        assert walk.ok, f"the guest's integrity check failed: {walk.line}"
        now = DmaBaseline.take(guest)
        moved = {k: (v, now.stats.get(k)) for k, v in self.stats.items() if now.stats.get(k) != v}
        if now.ram_free_pages != self.ram_free_pages:
            moved["pages_state.free_pages (RAM)"] = (self.ram_free_pages, now.ram_free_pages)
        assert not moved, "not back to the baseline: " + ", ".join(
            f"{k} {a} -> {b}" for k, (a, b) in moved.items()
        )


FAULT_EVENTS = (EventType.F_TRANSLATION, EventType.F_PERMISSION)
