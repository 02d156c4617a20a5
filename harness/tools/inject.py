"""``iomem inject``: corrupt guest RAM from the host, one kind at a time on a fresh guest,
and see who notices: the guest's own ``check`` or a host oracle (``:verify``).

Each kind boots a guest, builds the same small workload (small and large heap blocks, a free
block, an object, a buffer descriptor, a sub-descriptor and a map), finds its target through
the host's decoders (never the guest's word), writes the corruption with the vCPU stopped,
then runs ``check`` and :func:`harness.tools.verify.verify`. A kind nobody detects is a bug
in ``check`` or an oracle.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from harness.addresses import PhysAddr
from harness.errors import GuestCrashed, GuestError, GuestHung, IomemError, StateError
from harness.guest import Guest
from harness.link.protocol import Banner
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import PageWalker, Translation
from harness.qemu.profile import Profile, with_icount
from harness.tools.commands import Commands
from harness.tools.structs import live_maps, reservations
from harness.tools.verify import verify

if TYPE_CHECKING:
    from harness.oracle.heap import Slab

ATTR_DEVICE = 3  # MAIR_EL1 byte 3 is 0x00, Device-nGnRnE (docs/pagewalk.md)
PTE_PXN = 1 << 53
PTE_AP_RO = 1 << 7
PTE_AF = 1 << 10


@dataclass
class Workload:
    small: int
    freed: int
    large: int
    obj_handle: int
    md: int
    sub: int
    map_handle: int
    map_va: int
    dma: int | None = None  # a prepared IODMACommand, on profiles with the SMMU
    slot: int = 0  # a slab's slot (a request of at most HEAP_SLAB_MAX bytes)


@dataclass
class Target:
    pa: int
    data: bytes
    note: str = ""


@dataclass
class Outcome:
    kind: str
    target: str
    guest: str | None = None  # what `check` said, if it objected
    oracles: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def detected(self) -> bool:
        return self.guest is not None or bool(self.oracles)

    @property
    def detected_by(self) -> str:
        who = ([f"guest check ({self.guest})"] if self.guest else []) + [f"oracle {o}" for o in self.oracles]
        return ", ".join(who) or "NOBODY"


def workload(guest: Guest) -> Workload:
    page = guest.profile.granule
    small = guest.alloc(0x940)  # past the slabs (HEAP_SLAB_MAX): a block with a header
    freed = guest.alloc(0x980)
    guest.alloc(0x920)  # keeps `freed` from merging into the chunk's tail
    guest.free(freed, 0x980)
    slot = guest.alloc(0x40)
    large = guest.alloc(0x40000)
    handle = guest.obj_new("IOMemTestObject").number("obj")
    md = guest.ok(f"bmd create {3 * page:#x}").number("md")
    sub = guest.ok(f"md sub {md:#x} {page:#x} {page:#x}").number("md")
    mapped = guest.ok(f"md map {md:#x}")
    w = Workload(small, freed, large, handle, md, sub, mapped.number("map"), mapped.number("va"), slot=slot)
    if guest.profile.iommu != "none":
        w.dma = guest.ok("dma create bits=32").number("dma")
        guest.ok(f"dma prepare {w.dma:#x} {md:#x}")
    return w


# ------------------------------------------------------------ finding targets
def _u64(guest: Guest, pa: int) -> int:
    return guest.ram.read_u64(PhysAddr(pa))


def _u(guest: Guest, pa: int, size: int) -> int:
    return int.from_bytes(guest.ram.read(PhysAddr(pa), size), "little")


def _le(value: int, size: int = 8) -> bytes:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _leaf(guest: Guest, va: int) -> Translation:
    result = guest.walker().walk(va)
    if not isinstance(result, Translation):
        raise IomemError(f"inject: {va:#x} is not mapped ({result})")
    return result


def _banner(guest: Guest) -> Banner:
    if guest.banner is None:
        raise StateError("the guest is not booted")
    return guest.banner


def _top_leaf(guest: Guest) -> Translation:
    banner = _banner(guest)
    return _leaf(guest, banner.ram_base + banner.ram_size - guest.profile.granule)


def _pte(guest: Guest, leaf: Translation, set_bits: int = 0, clear_bits: int = 0, flip: int = 0) -> Target:
    value = ((leaf.descriptor & ~clear_bits) | set_bits) ^ flip
    return Target(leaf.descriptor_pa, _le(value), f"PTE of {leaf.va:#x}")


def _table_pointer(guest: Guest, w: Workload) -> Target:
    """The table descriptor whose next-level table holds the map's leaf: found by searching
    the tables for the value (next table | table | valid)."""
    leaf = _leaf(guest, w.map_va)
    table = leaf.descriptor_pa & ~(guest.profile.granule - 1)
    banner = _banner(guest)
    ram = guest.ram.read(PhysAddr(banner.ram_base), banner.ram_size)
    needle = struct.pack("<Q", table | 3)
    start = guest.elf.symbol("__page_tables_start").address
    end = guest.elf.symbol("__page_tables_end").address
    owners = PageBytes(guest)

    def is_table(pa: int) -> bool:
        if start <= pa < end:
            return True
        try:
            return owners.owner(pa) == "page_table"
        except (ValueError, KeyError):
            return False

    at = ram.find(needle)
    while at >= 0 and (at % 8 or not is_table(banner.ram_base + at)):
        at = ram.find(needle, at + 1)
    if at < 0:
        raise IomemError("inject: no table descriptor points at the map's last-level table")
    pa = banner.ram_base + at
    # Point it at a page of zeros-or-data that is not that table: the next granule.
    return Target(pa, _le(table + guest.profile.granule | 3), f"table descriptor at {pa:#x}")


def _block(guest: Guest, payload: int) -> int:
    return payload - 16  # the header precedes the payload (HEAP_BLOCK_HEADER_SIZE)


def _field_pa(guest: Guest, struct_name: str, base: int, name: str, index: int = 0) -> tuple[int, int]:
    lay = guest.elf.dwarf.struct(struct_name)
    f = lay[name]
    return base + f.offset + index * (f.size // max(f.count, 1)), f.size // max(f.count, 1)


def _bump(guest: Guest, struct_name: str, base: int, name: str, delta: int, index: int = 0) -> Target:
    pa, size = _field_pa(guest, struct_name, base, name, index)
    return Target(pa, _le(_u(guest, pa, size) + delta, size), f"{struct_name}.{name} at {pa:#x}")


def _set(guest: Guest, struct_name: str, base: int, name: str, value: int, index: int = 0) -> Target:
    pa, size = _field_pa(guest, struct_name, base, name, index)
    return Target(pa, _le(value, size), f"{struct_name}.{name} at {pa:#x}")


def _pages_state(guest: Guest) -> int:
    return guest.elf.symbol("pages_state").address


def _heap_state(guest: Guest) -> int:
    return guest.elf.symbol("heap_state").address


def _object(guest: Guest, handle: int) -> int:
    snap = guest.heap_snapshot()
    return next(o.address for o in snap.objects.live if o.handle == handle)


def _slot(guest: Guest, handle: int) -> int:
    lay = guest.heap_layouts
    registry = guest.elf.symbol("object_registry").address
    slot = (handle & 0xFFFF_FFFF) - 1
    return registry + lay.object_registry["slots"].offset + slot * lay.object_slot.size


def _slab_of(guest: Guest, payload: int) -> tuple[Slab, int]:
    """The slab holding the live slot ``payload`` (decoded by the host) and the slot's index."""
    for slab in guest.heap_snapshot().heap.slabs:
        for index in slab.used_slots():
            if slab.slot(index) == payload:
                return slab, index
    raise IomemError(f"inject: no slab holds a live slot at {payload:#x}")


def _descriptor_of(guest: Guest, payload: int) -> int:
    """The address of the descriptor (struct heap_slab, in its chunk's header) of ``payload``'s slab."""
    return _slab_of(guest, payload)[0].descriptor


def _slab_requested_entry(guest: Guest, payload: int) -> tuple[int, int]:
    """The address and size of ``payload``'s requested length in its slab's meta[] (at the
    window's start): past the slab's slot_count stack entries, the count as the guest has it."""
    from harness.oracle.heap import SLAB_META_ENTRY

    slab, index = _slab_of(guest, payload)
    slot_count, _ = _field_pa(guest, "heap_slab", slab.descriptor, "slot_count")
    return slab.address + SLAB_META_ENTRY * (_u(guest, slot_count, 2) + index), SLAB_META_ENTRY


def _slab_free_mark(guest: Guest, payload: int) -> Target:
    """Writes the free mark into ``payload``'s requested[] entry: a live slot called free."""
    from harness.oracle.heap import HEAP_SLAB_SLOT_FREE

    pa, size = _slab_requested_entry(guest, payload)
    return Target(pa, _le(HEAP_SLAB_SLOT_FREE, size), f"heap_slab requested[] entry at {pa:#x} called free")


def _slab_requested_bumped(guest: Guest, payload: int) -> Target:
    """Adds 1 to ``payload``'s requested[] entry: a live slot with the wrong length."""
    pa, size = _slab_requested_entry(guest, payload)
    return Target(pa, _le(_u(guest, pa, size) + 1, size), f"heap_slab requested[] entry at {pa:#x}")


def _stray_slab_descriptor(guest: Guest) -> Target:
    """Writes a slab magic into the descriptor of the home chunk's unit 0 (its header: never
    a slab): a descriptor where no slab is, as a slab given back and not cleared would leave."""
    from harness.oracle.heap import HEAP_SLAB_MAGIC

    state = _heap_state(guest)
    home = _u64(guest, _field_pa(guest, "heap_state", state, "home_chunk")[0])
    pa, _ = _field_pa(guest, "heap_chunk", home, "slabs")
    return Target(pa, _le(HEAP_SLAB_MAGIC, 4), f"heap_chunk.slabs[0].magic at {pa:#x}")


def _chunk_at_cleared(guest: Guest) -> Target:
    """Says "no chunk" in the home chunk's heap_state.chunk_at entry: the table IOFree's fast
    path finds a chunk by (heap.c H8)."""
    from harness.oracle.heap import HEAP_CHUNK_AT_NONE

    state = _heap_state(guest)
    home = _u64(guest, _field_pa(guest, "heap_state", state, "home_chunk")[0])
    index = (home // guest.heap_layouts.chunk_size) % guest.heap_layouts.heap_state["chunk_at"].count
    return _set(guest, "heap_state", state, "chunk_at", HEAP_CHUNK_AT_NONE, index)


def _free_entry(guest: Guest) -> int:
    snap = guest.heap_snapshot()
    for entries in snap.heap.free_lists.values():
        if entries:
            return entries[0][0]
    raise IomemError("inject: the heap has no free block")


def _empty_fl_bit(guest: Guest) -> int:
    fl = guest.heap_snapshot().heap.fl_bitmap
    return next(bit for bit in range(32) if not fl >> bit & 1)


def _page_info(guest: Guest, pa: int) -> int:
    blob = guest.ram.read(PhysAddr(_pages_state(guest)), guest.heap_layouts.page_allocator.size)
    lay = guest.heap_layouts.page_allocator
    return lay.read(blob, "info") + (pa - lay.read(blob, "base")) // lay.read(blob, "page_size")


def _free_next_of_head(guest: Guest) -> Target:
    snap = guest.heap_snapshot()
    lay = snap.layouts.page_allocator
    blob = guest.ram.read(PhysAddr(_pages_state(guest)), lay.size)
    order = next(k for k, lst in enumerate(snap.pages.free_lists) if len(lst) >= 1)
    head = snap.pages.free_lists[order][0]
    pa = lay.read(blob, "free_next") + 4 * head
    value = _u(guest, pa, 4)
    return Target(pa, _le(value ^ 0x5, 4), f"free_next[{head}] (order {order})")


def _buffer_pa_field(guest: Guest, w: Workload) -> Target:
    address = _object(guest, w.md)
    lay = guest.elf.dwarf.struct("IOBufferMemoryDescriptor")
    blob = guest.ram.read(PhysAddr(address), lay.size)
    if lay.read(blob, "pages") == 0:
        return _bump(guest, "IOBufferMemoryDescriptor", address, "contiguous", guest.profile.granule)
    pages = lay.read(blob, "pages")
    return Target(pages, _le(_u64(guest, pages) + guest.profile.granule), f"pages[0] at {pages:#x}")


def _reservation(guest: Guest, w: Workload) -> Target:
    booked = reservations(guest)
    m = next(m for m in live_maps(guest) if m.handle == w.map_handle)
    index = next(i for i, r in enumerate(booked) if r[0] == m.map_start - m.guard)
    symbol = guest.elf.symbol("vas").address
    pa = symbol + 24 * index
    return Target(pa, _le(booked[index][0] + guest.profile.granule), f"vas.ranges[{index}].start")


KINDS: dict[str, Callable[[Guest, Workload], Target]] = {
    "pte-valid": lambda g, w: _pte(g, _top_leaf(g), clear_bits=1),
    "pte-ap": lambda g, w: _pte(g, _top_leaf(g), set_bits=PTE_AP_RO),
    "pte-xn": lambda g, w: _pte(g, _top_leaf(g), clear_bits=PTE_PXN),
    "pte-attrindx": lambda g, w: _pte(g, _top_leaf(g), set_bits=ATTR_DEVICE << 2, clear_bits=7 << 2),
    "pte-output-address": lambda g, w: _pte(g, _top_leaf(g), flip=_top_leaf(g).size),
    "pte-af": lambda g, w: _pte(g, _top_leaf(g), clear_bits=PTE_AF),
    "table-next-level": _table_pointer,
    "heap-block-size": lambda g, w: _bump(g, "heap_block", _block(g, w.small), "size", 16),
    "heap-block-checksum": lambda g, w: _bump(g, "heap_block", _block(g, w.small), "check", 1),
    "heap-sentinel-forged": lambda g, w: _forged_header(g, "sentinel", 16),
    "heap-block-size-forged": lambda g, w: _forged_header(g, "size", 16),
    "heap-chunk-list-emptied": lambda g, w: _chunk_list_emptied(g),
    "heap-chunk-at": lambda g, w: _chunk_at_cleared(g),
    "heap-block-state": lambda g, w: _bump(g, "heap_block", _block(g, w.small), "state", 1),
    "heap-free-list-link": lambda g, w: _set(g, "heap_free_block", _free_entry(g), "next_free", w.small),
    "heap-fl-bitmap": lambda g, w: _bump(g, "heap_state", _heap_state(g), "fl_bitmap", 1 << _empty_fl_bit(g)),
    "heap-sl-bitmap": lambda g, w: _bump(g, "heap_state", _heap_state(g), "sl_bitmap", 1, _empty_fl_bit(g)),
    "heap-large-header": lambda g, w: _bump(g, "heap_large_header", _block(g, w.large), "requested", 8),
    "heap-used-counter": lambda g, w: _bump(g, "heap_state", _heap_state(g), "used_bytes", 8),
    "heap-slab-free-mark": lambda g, w: _slab_free_mark(g, w.slot),
    "heap-slab-stray-descriptor": lambda g, w: _stray_slab_descriptor(g),
    "heap-slab-requested": lambda g, w: _slab_requested_bumped(g, w.slot),
    "heap-slab-descriptor": lambda g, w: _bump(g, "heap_slab", _descriptor_of(g, w.slot), "slot_count", 1),
    "heap-slab-partial-link": lambda g, w: _set(g, "heap_slab", _descriptor_of(g, w.slot), "prev", w.small),
    "heap-slab-spare-mark": lambda g, w: _set(g, "heap_slab", _descriptor_of(g, w.slot), "spare", 1),
    "page-order": lambda g, w: Target(
        _page_info(g, _block(g, w.large)),
        _le(_u(g, _page_info(g, _block(g, w.large)), 1) ^ 1, 1),
        "page byte of the large block",
    ),
    "page-free-list": lambda g, w: _free_next_of_head(g),
    "page-free-counter": lambda g, w: _bump(g, "page_allocator", _pages_state(g), "free_pages", 1),
    "object-refcount": lambda g, w: _set(g, "OSObject", _object(g, w.obj_handle), "refcount", 0),
    "object-class": lambda g, w: _bump(g, "OSObject", _object(g, w.obj_handle), "meta", 8),
    "object-registry-handle": lambda g, w: _bump(g, "object_slot", _slot(g, w.obj_handle), "object", 16),
    "object-registry-generation": lambda g, w: _set(
        g, "object_slot", _slot(g, w.obj_handle), "generation", 0
    ),
    "descriptor-length": lambda g, w: _bump(g, "IOMemoryDescriptor", _object(g, w.md), "length", 0x10000),
    "descriptor-physical-range": _buffer_pa_field,
    "sub-descriptor-range": lambda g, w: _bump(
        g, "IOSubMemoryDescriptor", _object(g, w.sub), "offset", 3 * g.profile.granule
    ),
    "map-va": lambda g, w: _bump(g, "IOMemoryMap", _object(g, w.map_handle), "map_start", g.profile.granule),
    "map-reservation": _reservation,
    "map-pte-output-address": lambda g, w: _pte(g, _leaf(g, w.map_va), flip=g.profile.granule),
}


# ------------------------------------------------------------ SMMU (M1's DMA layer)
def _domain(guest: Guest) -> tuple[int, int, int]:
    """(address of edu_domain, its iopt root PA, address of its iova_space)."""
    dwarf = guest.elf.dwarf
    base = guest.elf.symbol("edu_domain").address
    dom, pt = dwarf.struct("dma_domain"), dwarf.struct("iopt")
    root = _u64(guest, base + dom["pt"].offset + pt["root"].offset)
    return base, root, base + dom["iova"].offset


def _ram_words(guest: Guest) -> npt.NDArray[np.uint64]:
    """Guest RAM as little-endian u64s (one copy; the SMMU searches share it)."""
    banner = _banner(guest)
    return np.frombuffer(guest.ram.read(PhysAddr(banner.ram_base), banner.ram_size), dtype="<u8")


def _find_u64(
    guest: Guest, mask: int, value: int, step: int = 8, words: npt.NDArray[np.uint64] | None = None
) -> list[int]:
    """Every PA, a multiple of ``step``, of a little-endian u64 ``v`` in RAM with
    ``v & mask == value``: a vector compare over RAM (32 M words in ~0.1 s; a u64 at a time
    in Python took 4 s, ``bytes.find`` of the masked bytes ~1 s)."""
    if step % 8:
        raise IomemError(f"inject: step {step} is not a multiple of 8")
    ram = _ram_words(guest) if words is None else words
    lanes = ram[:: step // 8]
    hits = np.flatnonzero((lanes & np.uint64(mask)) == np.uint64(value))
    base = _banner(guest).ram_base
    return [base + int(i) * step for i in hits]


def _smmu_cd_and_ste(guest: Guest) -> tuple[int, int]:
    """The live context descriptor (the one a stream table entry points at) and that STE. RAM
    may hold other 64-byte-aligned words equal to a CD's TTB0 (a stale copy in a freed page):
    a candidate counts only with an STE that points at it."""
    _, root, _ = _domain(guest)
    words = _ram_words(guest)
    # CD words 2-3 (bytes 8-15) hold TTB0[51:4] (smmuv3.c)
    hits = _find_u64(guest, 0x7_FFFF_FFFF_FFF0, root, step=8, words=words)
    candidates = [h - 8 for h in hits if (h - 8) % 64 == 0]
    if not candidates:
        raise IomemError("inject: no context descriptor holds the domain's root")
    for cd in candidates:
        stes = _find_u64(guest, 0xFFFF_FFFF_FFC0 | 0xF, cd | 0xB, 64, words=words)
        if stes:
            return cd, stes[0]
    raise IomemError("inject: no stream table entry points at a context descriptor of the domain's root")


def _smmu_ste_config(guest: Guest) -> Target:
    """The STE's Config field (bits 3:1): S1 translate becomes something else."""
    ste = _smmu_cd_and_ste(guest)[1]
    return Target(ste, _le(_u64(guest, ste) ^ 0x6), "STE config")


def _smmu_cd_ttb0(guest: Guest) -> Target:
    """The CD's TTB0 (its second word) moved one granule off the domain's root."""
    ttb0 = _smmu_cd_and_ste(guest)[0] + 8
    return Target(ttb0, _le(_u64(guest, ttb0) + guest.profile.granule), "CD TTB0")


def _smmu_leaf(guest: Guest, w: Workload) -> Target:
    """The IO page-table leaf of the buffer's last page (the one `check` translates)."""
    from harness.tools.structs import md_pa

    pa = md_pa(guest, _object(guest, w.md), 2 * guest.profile.granule)
    if pa is None:
        raise IomemError("inject: the buffer has no third page")
    cpu = {_leaf(guest, w.map_va + 2 * guest.profile.granule).descriptor_pa}
    buffer_va = guest.ok(f"md info {w.md:#x}")  # the buffer's own kernel mapping
    if "va" in buffer_va:
        cpu.add(_leaf(guest, buffer_va.number("va") + 2 * guest.profile.granule).descriptor_pa)
    hits = [h for h in _find_u64(guest, 0xFFFF_FFFF_F003, pa | 3) if h not in cpu]
    if not hits:
        raise IomemError("inject: no IO page-table leaf maps the buffer's last page")
    return Target(hits[0], _le(_u64(guest, hits[0]) & ~1), f"IO leaf at {hits[0]:#x}")


def _forged_header(guest: Guest, which: str, delta: int) -> Target:
    """A block header whose field is wrong but whose checksum is recomputed to match: only a
    structural check (sizes chain, sentinel) can see it, not the checksum."""
    from harness.oracle.heap import block_check

    snap = guest.heap_snapshot()
    chunk = snap.heap.chunks[0]
    block = chunk.sentinel if which == "sentinel" else chunk.blocks[0]
    if block is None:
        raise IomemError("inject: the home chunk has no sentinel")
    prev = block.prev_size + (delta if which == "sentinel" else 0)
    size = block.size + (delta if which == "size" else 0)
    check = block_check(block.address, size, prev, block.requested, block.state)
    data = struct.pack("<IIIHH", size, prev, block.requested, block.state, check)
    return Target(block.address, data, f"forged {which} of the header at {block.address:#x}")


def _chunk_list_emptied(guest: Guest) -> Target:
    """heap_state.chunks = NULL and chunk_count = 0 together (consistent with each other): the
    heap then claims to hold no chunk at all, although its home chunk is never given back."""
    lay = guest.elf.dwarf.struct("heap_state")
    base = _heap_state(guest)
    first, count = lay["chunks"].offset, lay["chunk_count"].offset
    blob = bytearray(guest.ram.read(PhysAddr(base + first), count + 8 - first))
    blob[0:8] = bytes(8)
    blob[count - first : count - first + 8] = bytes(8)
    return Target(base + first, bytes(blob), "heap_state.chunks and chunk_count")


SMMU_KINDS: dict[str, Callable[[Guest, Workload], Target]] = {
    "smmu-ste": lambda g, w: _smmu_ste_config(g),
    "smmu-cd": lambda g, w: _smmu_cd_ttb0(g),
    "smmu-stage1-entry": _smmu_leaf,
    "iova-allocator-bytes": lambda g, w: _bump(g, "iova_space", _domain(g)[2], "bytes", g.profile.granule),
    "iova-allocator-range": lambda g, w: _bump(
        g,
        "iova_range",
        _domain(g)[2] + g.elf.dwarf.struct("iova_space")["ranges"].offset,
        "size",
        g.profile.granule,
    ),
}


def kinds_for(profile: Profile) -> dict[str, Callable[[Guest, Workload], Target]]:
    return {**KINDS, **SMMU_KINDS} if profile.iommu != "none" else dict(KINDS)


def _guest_check(guest: Guest) -> str | None:
    try:
        guest.ok("check")
    except GuestError as exc:
        return exc.message.replace("guest answered ", "")[:80]
    except (GuestCrashed, GuestHung) as exc:
        return f"crash: {exc.message[:60]}"
    return None


def run_kind(profile: Profile, kind: str, artifacts: Path) -> Outcome:
    with Guest(with_icount(profile), artifacts / kind) as guest:  # the workload waits on the edu
        w = workload(guest)
        before = verify(guest)
        if not before.ok or _guest_check(guest) is not None:
            raise IomemError(
                f"inject {kind}: the workload is not clean before injecting: {before.findings[:3]}"
            )
        target = kinds_for(profile)[kind](guest, w)
        Commands(guest).poke_ram(target.pa, target.data)
        guest_said = _guest_check(guest)
        verdict = verify(guest) if guest.machine.alive() else None
        oracles = verdict.oracles() if verdict else []
        detail = "; ".join(str(f) for f in verdict.findings[:2]) if verdict else ""
        return Outcome(kind, target.note, guest_said, oracles, detail)


def run(profile: Profile, artifacts: Path, kinds: list[str] | None = None) -> list[Outcome]:
    return [run_kind(profile, k, artifacts) for k in (kinds or list(kinds_for(profile)))]


def table(outcomes: list[Outcome]) -> str:
    width = max(len(o.kind) for o in outcomes)
    lines = [f"{'kind':<{width}}  detected by", f"{'-' * width}  {'-' * 40}"]
    lines += [f"{o.kind:<{width}}  {o.detected_by}" for o in outcomes]
    found = sum(o.detected for o in outcomes)
    lines.append(f"{found}/{len(outcomes)} kinds detected")
    return "\n".join(lines)


__all__ = ["KINDS", "Outcome", "PageWalker", "run", "run_kind", "table"]
