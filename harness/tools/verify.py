"""``:verify``: every host oracle over the guest's current state, in one call.

* ``heap``: the page allocator, heap and object registry decoded from RAM by the ELF's DWARF
  (:mod:`harness.oracle.heap`), every invariant;
* ``pagewalk``: the host walker over every mapping of both halves (a corrupt descriptor is a
  finding), and the layout the firmware must have: the image's text/rodata/data at rx/ro/rw,
  the stack guard unmapped, RAM identity mapped (VA == PA), Normal write-back, never W+X,
  devices Device-nGnRnE and never executable, run-time mappings only inside the map window
  and onto RAM;
* ``maps``: every live descriptor map's VA range is mapped, page by page, to the physical
  pages the host walker finds behind the descriptor's own range.

Nothing is asked of the guest: only RAM, the registers (gdbstub) and the ELF are read. Call
it between requests, when the agent is idle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.addresses import PhysAddr
from harness.errors import IomemError
from harness.oracle import heap as heap_oracle
from harness.oracle.pagewalk import Fault, PageWalker, Translation
from harness.oracle.translation import perm_of

if TYPE_CHECKING:
    from harness.guest import Guest

# firmware/mm/vm.h VM_MAP_WINDOW_BASE/END; the base moves up past RAM that reaches beyond 4 GiB
# (struct vm_state.window_base, read from guest RAM by map_window).
MAP_WINDOW = (0x1_0000_0000, 0x40_0000_0000)
DEVICE_PAS = ((0x0800_0000, 0x0A00_0000), (0x1000_0000, 0x4000_0000), (0x40_0000_0000, 0x1_0000_0000_0000))
NORMAL_WB = 0xFF
DEVICE_NGNRNE = 0x00


@dataclass(frozen=True)
class Finding:
    oracle: str
    problem: str

    def __str__(self) -> str:
        return f"{self.oracle}: {self.problem}"


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def oracles(self) -> list[str]:
        """The oracles that found something, in order, once each."""
        return list(dict.fromkeys(f.oracle for f in self.findings))


def map_window(guest: Guest) -> tuple[int, int]:
    """The firmware's run-time mapping window [base, end): its base as ``vm.window_base`` holds
    it in guest RAM (0 until RAM above 4 GiB moves it), found through the ELF and DWARF."""
    layout = guest.elf.dwarf.struct("vm_state")
    blob = guest.ram.read(PhysAddr(guest.elf.symbol("vm").address), layout.size)
    base = layout.read(blob, "window_base")
    return (base or MAP_WINDOW[0], MAP_WINDOW[1])


def _run(verdict: Verdict, oracle: str, check: Callable[[], Iterable[str]]) -> None:
    try:
        for problem in check():
            verdict.findings.append(Finding(oracle, problem))
    except IomemError as exc:  # the oracle could not even read the state: that is a finding too
        verdict.findings.append(Finding(oracle, exc.message if hasattr(exc, "message") else str(exc)))
    except (ValueError, KeyError, IndexError, OverflowError) as exc:
        verdict.findings.append(Finding(oracle, f"{type(exc).__name__}: {exc}"))


def heap_problems(guest: Guest, counts: dict[str, int]) -> Iterator[str]:
    snap = guest.heap_snapshot()
    counts["heap_blocks"] = len(snap.live_blocks())
    counts["objects"] = len(snap.objects.live)
    yield from heap_oracle.problems(snap)


def layout_problems(guest: Guest, walker: PageWalker, counts: dict[str, int]) -> Iterator[str]:
    elf, banner = guest.elf, guest.banner
    if banner is None:
        raise IomemError("the guest has not booted")
    ram = (banner.ram_base, banner.ram_base + banner.ram_size)
    window = map_window(guest)
    sym = {
        n: elf.symbol(n).address
        for n in (
            "__text_start",
            "__text_end",
            "__rodata_start",
            "__rodata_end",
            "__data_start",
            "__data_end",
            "__stack_guard_start",
            "__stack_guard_end",
            "__exception_stack_guard_start",
            "__exception_stack_guard_end",
            "__exception_stack_top",
        )
    }
    want_perm = (
        (sym["__text_start"], sym["__text_end"], "rx"),
        (sym["__rodata_start"], sym["__rodata_end"], "ro"),
    )
    guard = (sym["__stack_guard_start"], sym["__stack_guard_end"])
    xguard = (sym["__exception_stack_guard_start"], sym["__exception_stack_guard_end"])
    # Unmapped on purpose: both guards, and the padding between the exception stack and the
    # stack's guard (iomem.ld aligns the guard to the largest granule).
    may_be_unmapped = (xguard, (sym["__exception_stack_top"], guard[1]))
    leaves = list(walker.iter_mappings())
    counts["mappings"] = len(leaves)
    covered: list[tuple[int, int]] = []
    for leaf in leaves:
        va, end = leaf.va, leaf.va + leaf.size
        at = f"leaf {va:#x}+{leaf.size:#x} (descriptor {leaf.descriptor:#x} at {leaf.descriptor_pa:#x})"
        if leaf.el1 == "rw" and not leaf.pxn:
            yield f"{at}: writable and executable at EL1"
        if not leaf.uxn:
            yield f"{at}: executable at EL0"
        if not leaf.af:
            yield f"{at}: access flag clear"
        if leaf.el0 != "none":
            yield f"{at}: accessible from EL0 ({leaf.el0})"
        if window[0] <= va < window[1]:
            if end > window[1]:
                yield f"{at}: runs past the map window"
            in_ram = ram[0] <= leaf.pa and leaf.pa + leaf.size <= ram[1]
            if not in_ram and not any(lo <= leaf.pa < hi for lo, hi in DEVICE_PAS):
                yield f"{at}: output address {leaf.pa:#x} is neither RAM nor a device"
            if not leaf.pxn:
                yield f"{at}: a run-time mapping is executable"
            continue
        if leaf.pa != va:
            yield f"{at}: output address {leaf.pa:#x}, the firmware maps VA == PA outside the map window"
            continue
        if ram[0] <= va < ram[1]:
            covered.append((va, end))
            for lo, hi in (guard, xguard):
                if lo < end and va < hi:
                    yield f"{at}: maps a stack guard [{lo:#x}, {hi:#x})"
            if leaf.mair_byte != NORMAL_WB or (leaf.sh != "outer" and leaf.sh != "inner"):
                yield f"{at}: RAM mapped as {leaf.memtype} (MAIR byte {leaf.mair_byte:#x}, SH {leaf.sh})"
            want = "rw"
            for lo, hi, perm in want_perm:
                if lo < end and va < hi:
                    want = perm
            if perm_of(leaf) != want:
                yield f"{at}: permissions {perm_of(leaf)}, the layout says {want}"
        elif any(lo <= va < hi for lo, hi in DEVICE_PAS) or va < ram[0]:
            if leaf.mair_byte != DEVICE_NGNRNE:
                yield f"{at}: device mapped as {leaf.memtype} (MAIR byte {leaf.mair_byte:#x})"
            if not leaf.pxn:
                yield f"{at}: device memory executable"
        else:
            yield f"{at}: identity mapping of {va:#x}, neither RAM nor a device"
    # RAM is mapped whole, except the stack guard.
    holes: list[tuple[int, int]] = []
    cursor = ram[0]
    for lo, hi in sorted(covered):
        if lo > cursor:
            holes.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < ram[1]:
        holes.append((cursor, ram[1]))
    for lo, hi in holes:
        if not any(a <= lo and hi <= b for a, b in may_be_unmapped):
            yield f"RAM [{lo:#x}, {hi:#x}) is not mapped"
    for va in (guard[0], guard[1] - 8, xguard[0], xguard[1] - 8):
        if not isinstance(walker.walk(va), Fault):
            yield f"stack guard {va:#x} is mapped"


def map_problems(guest: Guest, walker: PageWalker, counts: dict[str, int]) -> Iterator[str]:
    """Each live map (object registry) against the walker: its pages are mapped and onto
    the pages behind its descriptor's own range."""
    from harness.tools.structs import VASPACE_BASE, live_maps, reservations

    page = guest.profile.granule
    booked = reservations(guest)
    counts["reservations"] = len(booked)
    end_before = VASPACE_BASE
    for start, size, guard in booked:
        at = f"reservation [{start:#x}+{size:#x}] guard {guard:#x}"
        if start < end_before:
            yield f"{at}: overlaps or is out of order with the one before"
        if start % page or size % page or guard % page or size <= 2 * guard or start + size > MAP_WINDOW[1]:
            yield f"{at}: not a page-aligned range inside the area with a usable part"
        end_before = max(end_before, start + size)
    maps = live_maps(guest)
    counts["maps"] = len(maps)
    for m in maps:
        at = f"map {m.handle:#x} [{m.address:#x}+{m.length:#x}]"
        if m.map_size == 0:
            continue
        if not (MAP_WINDOW[0] <= m.map_start and m.map_start + m.map_size <= MAP_WINDOW[1]):
            yield f"{at}: pages [{m.map_start:#x}+{m.map_size:#x}] outside the map window"
            continue
        if not m.map_start <= m.address < m.map_start + m.map_size:
            yield f"{at}: address outside its pages [{m.map_start:#x}+{m.map_size:#x}]"
        if m.map_start >= VASPACE_BASE:
            want = (m.map_start - m.guard, m.map_size + 2 * m.guard, m.guard)
            if want not in booked:
                yield f"{at}: no reservation [{want[0]:#x}+{want[1]:#x}] guard {want[2]:#x} in the VA table"
        for offset in range(0, m.map_size, page):
            result = walker.walk(m.map_start + offset)
            if not isinstance(result, Translation):
                yield f"{at}: page at +{offset:#x} is not mapped ({result})"
                break
            if m.source_pa is not None:
                expect = m.source_pa(offset)
                if expect is not None and result.pa != expect:
                    yield f"{at}: page +{offset:#x} maps PA {result.pa:#x}, the descriptor says {expect:#x}"
                    break
        for va in (m.map_start - page, m.map_start + m.map_size):
            if m.guard and isinstance(walker.walk(va), Translation):
                yield f"{at}: guard page {va:#x} is mapped"


def descriptor_problems(guest: Guest, walker: PageWalker, counts: dict[str, int]) -> Iterator[str]:
    """Each live buffer descriptor: its length within its capacity, its page count, every
    backing page owned by the buffer code in the page allocator's bytes, and its kernel VA
    mapped onto exactly those pages; each sub-descriptor inside its parent."""
    from harness.oracle.pages import PageBytes, page_state
    from harness.tools.structs import decoder

    snap = guest.heap_snapshot()
    dwarf, page = guest.elf.dwarf, guest.profile.granule
    owner = snap.layouts.page_state["PAGE_STATE_OWNED"] + snap.layouts.page_owner["PAGE_OWNER_BUFFER"]
    page_bytes = PageBytes(guest)
    dec = decoder(guest)
    continuation = snap.layouts.page_state["PAGE_STATE_CONTINUATION"]
    lengths: dict[int, int] = {}
    buffers = [o for o in snap.objects.live if o.class_name == "IOBufferMemoryDescriptor"]
    counts["buffers"] = len(buffers)
    lay = dwarf.struct("IOBufferMemoryDescriptor")
    md_lay = dwarf.struct("IOMemoryDescriptor")
    for obj in snap.objects.live:
        if obj.class_name.endswith("MemoryDescriptor"):
            lengths[obj.address] = md_lay.read(guest.ram.read(PhysAddr(obj.address), md_lay.size), "length")
    extents: dict[int, int] = {}
    for obj in buffers:
        blob = guest.ram.read(PhysAddr(obj.address), lay.size)
        extents[obj.address] = lay.read(blob, "capacity")
        at = f"buffer {obj.handle:#x} at {obj.address:#x}"
        capacity, count = lay.read(blob, "capacity"), lay.read(blob, "page_count")
        length = lengths[obj.address]
        if length > capacity:
            yield f"{at}: length {length:#x} beyond its capacity {capacity:#x}"
        if count != max(1, -(-capacity // page)) and count != -(-capacity // page):
            yield f"{at}: {count} pages for a capacity of {capacity:#x}"
        address = lay.read(blob, "address")
        for index in range(min(count, 4096)):
            pa = dec.md_pa(obj.address, index * page)
            if pa is None:
                break
            state = page_state(page_bytes.byte(pa))
            if state != owner and not (index and state == continuation):
                yield f"{at}: page {index} at PA {pa:#x} is {page_bytes.owner(pa)}, not a buffer page"
                break
            if address:
                leaf = walker.walk(address + index * page)
                if not isinstance(leaf, Translation) or leaf.pa != pa:
                    got = f"{leaf.pa:#x}" if isinstance(leaf, Translation) else "unmapped"
                    yield f"{at}: its VA {address + index * page:#x} maps {got}, its page is {pa:#x}"
                    break
    sub = dwarf.struct("IOSubMemoryDescriptor")
    for obj in snap.objects.live:
        if obj.class_name != "IOSubMemoryDescriptor":
            continue
        blob = guest.ram.read(PhysAddr(obj.address), sub.size)
        parent, offset = sub.read(blob, "parent"), sub.read(blob, "offset")
        if parent not in lengths:
            yield f"sub {obj.handle:#x}: parent {parent:#x} is not a live descriptor"
        elif offset + lengths[obj.address] > extents.get(parent, lengths[parent]):
            # Layout is fixed at creation (docs/descriptors.md): a buffer parent may be shorter
            # now after a SetLength, but the sub stays inside its capacity.
            yield f"sub {obj.handle:#x}: [{offset:#x}+{lengths[obj.address]:#x}] outside its parent"


def smmu_problems(guest: Guest, counts: dict[str, int]) -> Iterator[str]:
    """The edu device's SMMU domain through M1's SMMU walker (registers by QEMU's monitor,
    tables from RAM): its STE and CD resolve, the IO pages mapped are the count the domain
    keeps, and every booked IOVA range is mapped page by page."""
    from harness.oracle.smmu import SmmuTranslation, SmmuWalker
    from harness.oracle.smmu import read_registers as smmu_registers

    qmp = guest.machine.qmp
    if qmp is None:
        raise IomemError("no QMP connection to read the SMMU's registers")
    dwarf = guest.elf.dwarf
    dom, pt, space, rng = (dwarf.struct(n) for n in ("dma_domain", "iopt", "iova_space", "iova_range"))
    base = guest.elf.symbol("edu_domain").address
    blob = guest.ram.read(PhysAddr(base), dom.size)
    if not dom.read(blob, "ready"):
        return
    sid = dom.read(blob, "sid")
    pages = int.from_bytes(blob[dom["pt"].offset + pt["pages"].offset :][:8], "little")
    iova_at = dom["iova"].offset
    count = int.from_bytes(blob[iova_at + space["count"].offset :][:4], "little")
    ranges = [
        (
            int.from_bytes(blob[iova_at + space["ranges"].offset + i * rng.size :][:8], "little"),
            int.from_bytes(blob[iova_at + space["ranges"].offset + i * rng.size + 8 :][:8], "little"),
        )
        for i in range(min(count, space["ranges"].count))
    ]
    walker = SmmuWalker(read_phys(guest), smmu_registers(qmp.hmp))
    leaves = list(walker.iter_mappings(sid))
    page = guest.profile.granule
    mapped = sum(leaf.size for leaf in leaves) // page
    counts["smmu_pages"] = mapped
    if mapped != pages:
        yield f"StreamID {sid:#x}: {mapped} IO pages mapped, the domain counts {pages}"
    for start, size in ranges:
        for offset in range(0, size, page):
            if not isinstance(walker.lookup(sid, start + offset), SmmuTranslation):
                yield f"StreamID {sid:#x}: booked IOVA {start + offset:#x} is not mapped"
                break


def verify(guest: Guest) -> Verdict:
    verdict = Verdict()
    _run(verdict, "heap", lambda: heap_problems(guest, verdict.counts))
    walker: PageWalker | None = None
    try:
        walker = guest.walker()
    except IomemError as exc:
        verdict.findings.append(Finding("pagewalk", f"no regime: {exc.message}"))
    if walker is not None:
        w = walker
        _run(verdict, "pagewalk", lambda: layout_problems(guest, w, verdict.counts))
        w.clear_cache()
        _run(verdict, "maps", lambda: map_problems(guest, w, verdict.counts))
        _run(verdict, "descriptors", lambda: descriptor_problems(guest, w, verdict.counts))
    if guest.profile.iommu != "none":
        _run(verdict, "smmu", lambda: smmu_problems(guest, verdict.counts))
    return verdict


def read_phys(guest: Guest) -> Callable[[int, int], bytes]:
    ram = guest.ram
    return lambda pa, n: ram.read(PhysAddr(pa), n)
