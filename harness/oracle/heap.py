"""The allocators' state decoded from memory, independently of the guest's ``check``.

Pure functions over a ``read(address, length) -> bytes`` callback, the struct layouts and
enum values of the ELF's DWARF (:class:`Layouts`) and the addresses of three globals
(:class:`Symbols`): ``pages_state`` (``struct page_allocator``), ``heap_state``
(``struct heap_state``) and ``object_registry`` (``struct object_registry``). No allocator
code runs: the page bytes, free lists, chunk headers, block headers, large-block headers and
registry slots are read and judged here, with the rules of ``docs/allocators.md``
re-implemented (buddy invariants, TLSF size classes, boundary tags, header checksums).

The same functions read guest RAM (``Guest.heap_snapshot``) and the host-built library's
memory (``tests/host``), where the allocators run on a host buffer, so every rule here is
unit-tested against the real C code.

* :func:`decode` reads everything into a :class:`Snapshot` (it never raises on bad data:
  what cannot be followed becomes a problem in ``Snapshot.problems``).
* :func:`problems` lists every broken invariant; :func:`verify` raises
  :class:`~harness.errors.OracleMismatch` with them.
* :func:`accounting` splits the page range into metadata, free, used and padding bytes that
  sum to its size; :meth:`Snapshot.live_blocks` is what a model compares against.

The object registry's decoder and rules are in :mod:`harness.oracle.objects`, the page byte's
format in :mod:`harness.oracle.pages`, struct reading in :mod:`harness.oracle.reader`.

Constants that are C macros (not in DWARF) are stated here once, from ``heap.h``/``pages.h``;
everything with a DWARF existence (sizes, offsets, array lengths, enum values) comes from it.
"""

from __future__ import annotations

import itertools
import struct
import sys
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from harness.errors import OracleMismatch
from harness.image.dwarf import Dwarf, StructLayout
from harness.image.elf import Firmware
from harness.oracle.objects import ObjectsView, decode_objects, object_problems
from harness.oracle.pages import PAGES_NO_PAGE, page_order, page_state
from harness.oracle.reader import Reader, ReadMemory, read_uint

# heap.h macros (not in DWARF); the page byte's format is harness.oracle.pages'
HEAP_ALIGN = 16
HEAP_BLOCK_HEADER_SIZE = 16
HEAP_MIN_BLOCK = 32
HEAP_LARGE_MIN = 64 * 1024
HEAP_CHUNK_MAGIC = 0x4B4E5548434D4F49  # "IOMCHUNK"
HEAP_LARGE_MAGIC = 0x4752414C  # "LARG": IOMalloc's (the caller's)
HEAP_LARGE_MAGIC_OBJECT = 0x4A424F4C  # "LOBJ": an OSObject's
HEAP_LARGE_MAGIC_FIRMWARE = 0x4D57464C  # "LFWM": the firmware's own metadata
HEAP_SLAB_MAGIC = 0x42414C53  # "SLAB": the caller's slab descriptors
HEAP_SLAB_MAGIC_OBJECT = 0x4A424F53  # "SOBJ": objects'
HEAP_SLAB_MAGIC_FIRMWARE = 0x4D574653  # "SFWM": the firmware's own
HEAP_SLAB_SMALL_SPAN = 32768  # a small-class slab's block (HEAP_SLAB_SMALL_SHIFT 15)
HEAP_SLAB_BIG_SIZE = 65536  # a big-class slab's (HEAP_SLAB_BIG_SHIFT 16)
HEAP_SLAB_SLOT_FREE = 0xFFFF  # requested[] of a free slot
SLAB_META_ENTRY = 2  # bytes of a meta[] entry (struct heap_slab.meta is a uint16_t *)
HEAP_CHUNK_AT_NONE = 1  # a heap_state.chunk_at entry naming no chunk (no chunk address is odd)
HEAP_SLAB_MAX = 2048  # requests of 0..2048 bytes go to slabs
HEAP_SLAB_SMALL_MAX = 256  # classes 0..15: slots of (c + 1) * 16 bytes in HEAP_SLAB_SMALL_SPAN slabs
HEAP_SLAB_SMALL_CLASSES = HEAP_SLAB_SMALL_MAX // HEAP_ALIGN
HEAP_SLAB_BIG_STEP = 64  # classes 16..27: slots of 320..1024 bytes, 64 apart, in HEAP_SLAB_BIG_SIZE slabs
HEAP_SLAB_MID_MAX = 1024  # the last class of the big span
HEAP_SLAB_MID_CLASSES = HEAP_SLAB_SMALL_CLASSES + (HEAP_SLAB_MID_MAX - HEAP_SLAB_SMALL_MAX) // 64
HEAP_SLAB_TOP_STEP = 512  # classes 28, 29: slots of 1536 and 2048 bytes, in HEAP_SLAB_SMALL_SPAN slabs
# enum heap_owner names -> the owner words used here (the values come from DWARF)
OWNER_NAMES = {
    "HEAP_OWNER_CALLER": "caller",
    "HEAP_OWNER_OBJECT": "object",
    "HEAP_OWNER_FIRMWARE": "firmware",
}
# Who a used block belongs to (heap.h enum heap_owner): IOFree takes only "caller" blocks.
LARGE_MAGIC_OWNER = {
    HEAP_LARGE_MAGIC: "caller",
    HEAP_LARGE_MAGIC_OBJECT: "object",
    HEAP_LARGE_MAGIC_FIRMWARE: "firmware",
}
SLAB_MAGIC_OWNER = {
    HEAP_SLAB_MAGIC: "caller",
    HEAP_SLAB_MAGIC_OBJECT: "object",
    HEAP_SLAB_MAGIC_FIRMWARE: "firmware",
}
USED_STATE_OWNER = {
    "HEAP_BLOCK_USED": "caller",
    "HEAP_BLOCK_USED_OBJECT": "object",
    "HEAP_BLOCK_USED_FIRMWARE": "firmware",
}
# heap.c header checksum: the address, the first word and the second rotated by 32 folded,
# then one multiply by an odd constant.
CHECK_MUL_FINAL = 0xFF51AFD7ED558CCD
M64 = (1 << 64) - 1


def _check_fold(address: int, first: int, second: int) -> int:
    second &= M64
    rotated = ((second << 32) | (second >> 32)) & M64
    return ((address ^ first ^ rotated) * CHECK_MUL_FINAL) & M64


def block_check(address: int, size: int, prev_size: int, requested: int, state: int) -> int:
    """The 16-bit checksum a block header at ``address`` must carry."""
    return _check_fold(address, size | prev_size << 32, requested | state << 32) >> 48


def large_check(address: int, requested: int, magic: int) -> int:
    """The 32-bit checksum of a large block header at ``address``."""
    return _check_fold(address, requested, magic) >> 32


def slab_check(
    address: int, magic: int, size_class: int, owner: int, slot_size: int, slot_count: int, first: int
) -> int:
    """The 16-bit checksum of a slab header at ``address`` (its fields that never change)."""
    ids = (magic << 16) | (size_class << 8) | owner
    shape = (slot_size << 32) | (slot_count << 16) | first
    return _check_fold(address, ids, shape) >> 48


SLOT_RECIPROCAL_SHIFT = 27  # heap.c: slot index = (offset / 16 * reciprocal) >> 27


def slot_reciprocal(size_class: int) -> int:
    """SLOT_RECIPROCAL (heap.c): 2^27 divided by the slot size in granules, rounded up."""
    units = slab_slot_size(size_class) // HEAP_ALIGN
    return -(-(1 << SLOT_RECIPROCAL_SHIFT) // units)


def slab_class(requested: int) -> int:
    """The slab class of a request of 0..HEAP_SLAB_MAX bytes (its slots: slab_slot_size)."""
    if requested <= HEAP_SLAB_SMALL_MAX:
        return 0 if requested == 0 else (requested - 1) // HEAP_ALIGN
    if requested <= HEAP_SLAB_MID_MAX:
        return HEAP_SLAB_SMALL_CLASSES + (requested - HEAP_SLAB_SMALL_MAX - 1) // HEAP_SLAB_BIG_STEP
    return HEAP_SLAB_MID_CLASSES + (requested - HEAP_SLAB_MID_MAX - 1) // HEAP_SLAB_TOP_STEP


def slab_slot_size(size_class: int) -> int:
    """HEAP_SLAB_SLOT_SIZE: 16, 32, ..., 256 bytes, then 320, 384, ..., 1024, then 1536 and
    2048."""
    if size_class < HEAP_SLAB_SMALL_CLASSES:
        return (size_class + 1) * HEAP_ALIGN
    if size_class < HEAP_SLAB_MID_CLASSES:
        return HEAP_SLAB_SMALL_MAX + (size_class - HEAP_SLAB_SMALL_CLASSES + 1) * HEAP_SLAB_BIG_STEP
    return HEAP_SLAB_MID_MAX + (size_class - HEAP_SLAB_MID_CLASSES + 1) * HEAP_SLAB_TOP_STEP


def slab_span(size_class: int) -> int:
    """HEAP_SLAB_SPAN: the bytes of a slab of ``size_class`` (its block), and its alignment."""
    return HEAP_SLAB_BIG_SIZE if slab_span_index(size_class) else HEAP_SLAB_SMALL_SPAN


SLAB_SPANS = 2  # HEAP_SLAB_SPANS: heap_state.slab_spare's second index


def slab_span_index(size_class: int) -> int:
    """HEAP_SLAB_SPAN_INDEX: 0 for the small span (classes up to 256 bytes, and above
    HEAP_SLAB_MID_MAX), 1 for the big one."""
    return 0 if size_class < HEAP_SLAB_SMALL_CLASSES or size_class >= HEAP_SLAB_MID_CLASSES else 1


def slab_fall_up(size_class: int) -> int:
    """HEAP_SLAB_FALL_UP: the largest class a request of ``size_class`` may take a slot of,
    the largest whose slots are at most twice as big (stated here by that rule, not by
    heap.h's closed form)."""
    limit = 2 * slab_slot_size(size_class)
    return max(c for c in range(slab_class(HEAP_SLAB_MAX) + 1) if slab_slot_size(c) <= limit)


def small_block_size(requested: int) -> int:
    """The block a small request needs: header + request rounded to 16, at least 32 bytes."""
    return max(HEAP_MIN_BLOCK, (requested + HEAP_BLOCK_HEADER_SIZE + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1))


def large_pages(requested: int, page_size: int) -> int:
    """Pages of a large block: the 16-byte header plus the request, rounded up to pages."""
    return -(-(requested + HEAP_BLOCK_HEADER_SIZE) // page_size)


# ---------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layouts:
    """Everything the decoder takes from DWARF."""

    page_allocator: StructLayout
    heap_state: StructLayout
    heap_chunk: StructLayout
    heap_block: StructLayout
    heap_free_block: StructLayout
    heap_large_header: StructLayout
    heap_slab: StructLayout
    object_registry: StructLayout
    object_slot: StructLayout
    os_object: StructLayout
    os_metaclass: StructLayout
    page_state: dict[str, int]
    page_owner: dict[str, int]
    block_state: dict[str, int]
    slot_state: dict[str, int]
    owner: dict[str, int]

    @classmethod
    def from_dwarf(cls, dwarf: Dwarf) -> Layouts:
        return cls(
            page_allocator=dwarf.struct("page_allocator"),
            heap_state=dwarf.struct("heap_state"),
            heap_chunk=dwarf.struct("heap_chunk"),
            heap_block=dwarf.struct("heap_block"),
            heap_free_block=dwarf.struct("heap_free_block"),
            heap_large_header=dwarf.struct("heap_large_header"),
            heap_slab=dwarf.struct("heap_slab"),
            object_registry=dwarf.struct("object_registry"),
            object_slot=dwarf.struct("object_slot"),
            os_object=dwarf.struct("OSObject"),
            os_metaclass=dwarf.struct("OSMetaClass"),
            page_state=dwarf.enum("page_state"),
            page_owner=dwarf.enum("page_owner"),
            block_state=dwarf.enum("heap_block_state"),
            slot_state=dwarf.enum("object_slot_state"),
            owner=dwarf.enum("heap_owner"),
        )

    # Geometry that follows from the layouts.
    @cached_property
    def used_states(self) -> dict[int, str]:
        """The used block states (enum heap_block_state) and the owner each one means."""
        return {self.block_state[name]: owner for name, owner in USED_STATE_OWNER.items()}

    @cached_property
    def owner_names(self) -> dict[int, str]:
        """enum heap_owner values -> caller / object / firmware."""
        return {self.owner[name]: word for name, word in OWNER_NAMES.items()}

    def _slab_head(self, slots: int) -> int:
        """HEAP_SLAB_HEAD_BYTES: 2 x ``slots`` meta[] entries, aligned."""
        return (2 * slots * SLAB_META_ENTRY + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1)

    def slab_first(self, size_class: int) -> int:
        """HEAP_SLAB_FIRST: offset of slot 0 from a slab of ``size_class``."""
        return self._slab_head(self.slot_count(size_class))

    @property
    def slab_classes(self) -> int:
        return self.heap_state["slab_partial"].count // self.owner["HEAP_OWNER_COUNT"]

    def slot_count(self, size_class: int) -> int:
        """HEAP_SLAB_SLOT_COUNT: the slots that fit with their meta[] entries between the
        window's start and the next block's header."""
        end = slab_span(size_class) - HEAP_BLOCK_HEADER_SIZE
        size = slab_slot_size(size_class)
        guess = end // (size + 2 * SLAB_META_ENTRY)
        return guess - (self._slab_head(guess) + guess * size > end)

    @property
    def chunk_units(self) -> int:
        """HEAP_CHUNK_SLABS: the slab descriptors (one per unit) in a chunk's header."""
        return self.heap_chunk["slabs"].count

    @property
    def unit_size(self) -> int:
        """The bytes of a chunk each descriptor stands for (HEAP_SLAB_SMALL_SPAN)."""
        return self.chunk_size // self.chunk_units

    @property
    def chunk_size(self) -> int:
        """HEAP_CHUNK_SIZE: used_map has one bit per 16-byte granule of the chunk."""
        return self.heap_chunk["used_map"].count * 64 * HEAP_ALIGN

    @property
    def chunk_first(self) -> int:
        """HEAP_CHUNK_FIRST: the chunk header rounded up to the alignment."""
        return (self.heap_chunk.size + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1)

    @property
    def fl_count(self) -> int:
        return self.heap_state["sl_bitmap"].count

    @property
    def sl_count(self) -> int:
        return self.heap_state["free_lists"].count // self.fl_count

    @property
    def sl_shift(self) -> int:
        return self.sl_count.bit_length() - 1

    @property
    def orders(self) -> int:
        return self.page_allocator["free_head"].count

    def mapping_insert(self, size: int) -> tuple[int, int]:
        """The TLSF list (first level, second level) a free block of ``size`` belongs in."""
        fl_shift = self.sl_shift + 4  # HEAP_FL_SHIFT = HEAP_SL_SHIFT + HEAP_ALIGN_SHIFT
        if size < (1 << fl_shift):
            return 0, size >> 4
        top = size.bit_length() - 1
        return top - fl_shift + 1, (size >> (top - self.sl_shift)) ^ self.sl_count

    def list_floor(self, fl: int, sl: int) -> int:
        """The smallest block size that belongs in list (fl, sl): the largest block the good-fit
        search, which rounds a size up to the next list's start, is sure to place in it."""
        low, high = 0, 1 << 32
        while low < high:  # the first size whose list is (fl, sl) or above
            mid = (low + high) // 2
            if self.mapping_insert(mid) < (fl, sl):
                low = mid + 1
            else:
                high = mid
        return low


_LAYOUTS: dict[tuple[str, str], Layouts] = {}


def layouts_for(firmware: Firmware) -> Layouts:
    """The layouts of one ELF, parsed once per process (DWARF parsing takes ~0.3 s)."""
    key = (str(firmware.path.resolve()), firmware.build_id)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = Layouts.from_dwarf(firmware.dwarf)
    return _LAYOUTS[key]


@dataclass(frozen=True)
class Symbols:
    """Addresses of the allocators' globals (ELF symbols on the guest, ctypes on the host)."""

    pages_state: int
    heap_state: int
    object_registry: int


# ---------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class PageBlock:
    index: int  # first page, relative to the range
    pa: int
    order: int
    state: int  # enum page_state value, or PAGE_STATE_OWNED + owner

    @property
    def pages(self) -> int:
        return 1 << self.order


@dataclass(frozen=True)
class PagesView:
    base: int
    page_size: int
    page_shift: int
    page_count: int
    reserved_pages: int
    managed_pages: int
    free_pages: int  # the counter
    nonempty_orders: int
    initialized: int
    free_head: tuple[int, ...]
    free_blocks: tuple[int, ...]  # counters per order
    blocks: tuple[PageBlock, ...]  # every block, by address
    free_lists: tuple[tuple[int, ...], ...]  # page indices, in list order, per order
    free_prev: tuple[tuple[int, ...], ...]  # free_prev[] of each entry above (its back link)
    info: bytes

    @property
    def size(self) -> int:
        return self.page_count * self.page_size

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class Block:
    """A block header in a chunk."""

    address: int  # of the header
    size: int
    prev_size: int
    requested: int
    state: int
    check: int

    @property
    def payload(self) -> int:
        return self.address + HEAP_BLOCK_HEADER_SIZE


@dataclass(frozen=True)
class Slab:
    """A slab: its window (meta[], then the slots), which follows its block header, and its
    descriptor (struct heap_slab) in the chunk's header."""

    address: int  # the window: meta[] starts here; its block header is 16 bytes below
    descriptor: int  # its struct heap_slab: what the heap's lists and current pointers hold
    magic: int
    size_class: int
    owner: int
    check: int
    slot_size: int
    slot_count: int
    first: int
    reciprocal: int
    meta: int  # the descriptor's meta pointer: the window, when intact
    mirror: int  # 0 in a slab's own descriptor
    free_count: int  # the free slots, and the free stack's height
    current_of: int  # bit c: heap_state.slab_current[owner][c] is this slab (H9; history)
    next: int
    prev: int
    spare: int  # 1 while on heap_state.slab_spare (H7: every empty slab is; history otherwise)
    spare_next: int
    stack: tuple[int, ...]  # meta[0 .. slot_count): the free stack, meta[0 .. stack_height) in use
    requested: tuple[int, ...]  # meta[slot_count ..]: per slot, HEAP_SLAB_SLOT_FREE if free

    @property
    def stack_height(self) -> int:
        """The free stack's height: the free slots."""
        return self.free_count

    @cached_property
    def _used(self) -> tuple[int, ...]:
        """The live slots: those with a length in requested[] (computed once)."""
        touched = min(self.slot_count, len(self.requested))
        return tuple(i for i in range(touched) if self.requested[i] != HEAP_SLAB_SLOT_FREE)

    @cached_property
    def free_map(self) -> int:
        """Bit i set: slot i is free (requested[] says so)."""
        used = sum(1 << i for i in self._used)
        return ((1 << self.slot_count) - 1) & ~used

    def used_slots(self) -> list[int]:
        return list(self._used)

    def slot(self, index: int) -> int:
        """The caller's pointer of slot ``index``."""
        return self.address + self.first + index * self.slot_size

    @property
    def canonical(self) -> tuple[object, ...]:
        """Without the partial-list links, the stack's order, current_of (history) or stale
        requested sizes of free slots: which slots are free, not in what order they come back."""
        used = tuple((i, self.requested[i]) for i in self.used_slots())
        return (
            self.address,
            self.magic,
            self.size_class,
            self.owner,
            self.check,
            self.slot_size,
            self.slot_count,
            self.first,
            self.free_count,
            self.free_map,
            used,
        )


@dataclass(frozen=True)
class Chunk:
    address: int
    magic: int
    next: int
    prev: int
    blocks: tuple[Block, ...]
    sentinel: Block | None
    used_granules: frozenset[int]
    slabs: tuple[Slab, ...] = ()  # of the blocks of state HEAP_BLOCK_SLAB, by address
    descriptors: bytes = b""  # slabs[]: the descriptor (or mirror, or zeros) of every unit


@dataclass(frozen=True)
class LargeBlock:
    address: int  # the run's first byte (its header)
    requested: int
    magic: int
    check: int
    pages: int  # of the run (head block + continuations)

    @property
    def payload(self) -> int:
        return self.address + HEAP_BLOCK_HEADER_SIZE


@dataclass(frozen=True)
class HeapView:
    counters: dict[str, int]  # heap_state's integer fields
    fl_bitmap: int
    sl_bitmap: tuple[int, ...]
    free_lists: dict[tuple[int, int], tuple[tuple[int, int], ...]]  # (fl, sl) -> ((entry, prev_free), ...)
    chunk_list: tuple[int, ...]  # heap_state.chunks, in list order
    home_chunk: int
    chunks: tuple[Chunk, ...]
    large: tuple[LargeBlock, ...]
    slab_partial: dict[tuple[int, int], tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # (owner, class) -> ((slab, prev), ...) of heap_state.slab_partial, in list order
    slab_partial_map: tuple[int, ...] = ()  # per owner: bit c set <=> slab_partial[owner][c] is not empty
    chunk_at: tuple[int, ...] = ()  # [(address >> chunk shift) % len]: a chunk address or HEAP_CHUNK_AT_NONE
    slab_current: tuple[int, ...] = ()  # [owner * classes + class]: the slab IOMalloc takes from, or 0 (H9)
    slab_spare: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    # (owner, span index) -> slabs of heap_state.slab_spare, in list order (H7)

    @property
    def slabs(self) -> tuple[Slab, ...]:
        return tuple(slab for chunk in self.chunks for slab in chunk.slabs)


@dataclass(frozen=True)
class Snapshot:
    layouts: Layouts
    pages: PagesView
    heap: HeapView
    objects: ObjectsView
    problems: tuple[str, ...] = field(default=())  # found while decoding

    def live_blocks(self) -> dict[int, int]:
        """Every live block, small (a used block or a slab's used slot) and large: caller's
        pointer -> requested size."""
        out = {b.payload: b.requested for c in self.heap.chunks for b in c.blocks if self._used(b)}
        out.update({s.slot(i): s.requested[i] for s in self.heap.slabs for i in s.used_slots()})
        out.update({large.payload: large.requested for large in self.heap.large})
        return out

    def block_owners(self) -> dict[int, str]:
        """Every live block's owner (caller / object / firmware), by the caller's pointer."""
        states = self.layouts.used_states
        names = self.layouts.owner_names
        out = {b.payload: states[b.state] for c in self.heap.chunks for b in c.blocks if self._used(b)}
        out.update({s.slot(i): names.get(s.owner, "?") for s in self.heap.slabs for i in s.used_slots()})
        out.update({lg.payload: LARGE_MAGIC_OWNER.get(lg.magic, "?") for lg in self.heap.large})
        return out

    def free_blocks(self) -> dict[int, int]:
        """Every free block in a chunk: header address -> size (header included)."""
        return {b.address: b.size for c in self.heap.chunks for b in c.blocks if self._free(b)}

    def space(self, page_size: int) -> tuple[int, int, int]:
        """What the bench's probe (heap_space) reports, restated from the decoded state: held,
        free and largest bytes, of the heap as heap_settle() would leave it (H7: the heap
        settles before it takes a chunk or pages). Settling is simulated here on the block
        sequence: an empty slab becomes a free block, runs of free blocks merge, and a chunk
        other than the home chunk that is then one free block is given back. Held: the chunks
        and the large blocks' pages. Free: the free blocks (headers included) and the other
        slabs' free slots. Largest: the largest request served without taking memory the heap
        does not hold. Above HEAP_SLAB_MAX, the good-fit search places a request in the
        highest non-empty list only when its block is at most that list's floor (any request
        a chunk can hold, HEAP_LARGE_MIN and over included, may take it); at most
        HEAP_SLAB_MAX, a free slot of a caller's slab."""
        lay = self.layouts
        empty = {s.address - HEAP_BLOCK_HEADER_SIZE for s in self.heap.slabs if s.free_count == s.slot_count}
        sizes: list[int] = []
        chunks = 0
        for chunk in self.heap.chunks:
            runs: list[int] = []
            last_free = False
            for block in chunk.blocks:
                is_free = self._free(block) or block.address in empty
                if is_free and last_free:
                    runs[-1] += block.size
                elif is_free:
                    runs.append(block.size)
                last_free = is_free
            usable = lay.chunk_size - lay.chunk_first - HEAP_BLOCK_HEADER_SIZE
            if runs == [usable] and chunk.address != self.heap.home_chunk:
                continue  # chunk_release()
            chunks += 1
            sizes += runs
        held = chunks * lay.chunk_size + sum(b.pages for b in self.heap.large) * page_size
        free = sum(sizes)
        largest = 0
        if sizes:
            top = max(lay.mapping_insert(size) for size in sizes)
            request = lay.list_floor(*top) - HEAP_BLOCK_HEADER_SIZE
            largest = request if request > HEAP_SLAB_MAX else 0
        caller = lay.owner["HEAP_OWNER_CALLER"]
        for slab in self.heap.slabs:
            free_slots = bin(slab.free_map).count("1")
            if slab.address - HEAP_BLOCK_HEADER_SIZE in empty:
                continue
            free += free_slots * slab.slot_size
            if free_slots and slab.owner == caller:
                largest = max(largest, slab.slot_size)
        return held, free, largest

    @property
    def used_bytes(self) -> int:
        return sum(self.live_blocks().values())

    @property
    def free_bytes(self) -> int:
        return sum(self.free_blocks().values())

    def _used(self, block: Block) -> bool:
        return block.state in self.layouts.used_states

    def _free(self, block: Block) -> bool:
        return block.state == self.layouts.block_state["HEAP_BLOCK_FREE"]

    @cached_property
    def canonical(self) -> tuple[object, ...]:
        """The state with history removed (free-list order, call counters): two snapshots with
        the same live blocks compare equal here exactly when the allocators' memory is the same."""
        counters = {
            k: v for k, v in self.heap.counters.items() if k not in ("allocs", "frees", "alloc_failures")
        }
        free_lists = {
            key: tuple(sorted(e for e, _ in entries)) for key, entries in self.heap.free_lists.items()
        }
        return (
            self.pages.info,
            tuple(tuple(sorted(lst)) for lst in self.pages.free_lists),
            self.pages.free_blocks,
            self.pages.free_pages,
            self.pages.nonempty_orders,
            tuple(sorted(counters.items())),
            self.heap.fl_bitmap,
            self.heap.sl_bitmap,
            tuple(sorted(free_lists.items())),
            tuple(sorted(self.heap.chunk_list)),
            self.heap.home_chunk,
            tuple(sorted((c.address, c.blocks, c.sentinel, c.used_granules) for c in self.heap.chunks)),
            self.heap.large,
            tuple(sorted(slab.canonical for slab in self.heap.slabs)),
            tuple(
                sorted(
                    (key, tuple(sorted(e for e, _ in entries)))
                    for key, entries in self.heap.slab_partial.items()
                )
            ),
        )


# ---------------------------------------------------------------- decoding


def _u32s(blob: bytes) -> Sequence[int]:
    """Little-endian u32s read lazily: a page array has a million entries on 4.5 GiB of RAM,
    and unpacking them all into ints cost 0.1 s per snapshot (issue P1)."""
    if sys.byteorder == "little":
        return memoryview(blob).cast("I")
    return struct.unpack(f"<{len(blob) // 4}I", blob)


# Free-list links are read one entry at a time below this many listed blocks (the usual
# case: a handful per order), the whole arrays above it (8 bytes per page: 9.4 MB on 4.5 GiB
# of RAM, which copying for every snapshot cost more than the rest of the decode).
_LINKS_READ_BY_ENTRY = 4096


def _page_blocks(info: bytes, base: int, page_shift: int, problems: list[str]) -> tuple[PageBlock, ...]:
    """Every block of the page array ``info``, by address; what is not a block is a problem."""
    cached = _page_blocks_cache.get((base, page_shift))
    if cached is not None and cached[0] == info:  # a memcmp: the array rarely changes per step
        problems.extend(cached[2])
        return cached[1]
    found: list[str] = []
    page_count = len(info)
    base_pfn = base >> page_shift if page_shift else 0
    blocks: list[PageBlock] = []
    index = 0
    while index < page_count:
        byte = info[index]
        order = page_order(byte)
        span = 1 << order
        if (
            (base_pfn + index) % span
            or index + span > page_count
            or info[index : index + span] != bytes([byte]) * span
        ):
            found.append(
                f"pages: page {index} (pa {base + (index << page_shift):#x}) byte {byte:#x} does not start "
                f"an aligned block of order {order} whose pages all carry it"
            )
            index += 1
            continue
        blocks.append(PageBlock(index, base + (index << page_shift), order, page_state(byte)))
        index += span
    result = tuple(blocks)
    _page_blocks_cache.clear()  # one page array per process at a time (one guest per worker)
    _page_blocks_cache[(base, page_shift)] = (info, result, tuple(found))
    problems.extend(found)
    return result


_page_blocks_cache: dict[tuple[int, int], tuple[bytes, tuple[PageBlock, ...], tuple[str, ...]]] = {}


def _decode_pages(r: Reader, lay: Layouts, address: int) -> PagesView:
    s = lay.page_allocator
    blob = r.struct(s, address)

    def get(name: str) -> int:
        return s.read(blob, name)

    orders = lay.orders
    page_count = get("page_count")
    page_shift = get("page_shift")
    base = get("base")
    info = r.read(get("info"), page_count) if page_count else b""
    blocks = _page_blocks(info, base, page_shift, r.problems)
    counted = sum(s.read(blob, "free_blocks", i) for i in range(orders))
    next_at, prev_at = get("free_next"), get("free_prev")
    if counted > _LINKS_READ_BY_ENTRY and page_count:
        nexts, prevs = _u32s(r.read(next_at, 4 * page_count)), _u32s(r.read(prev_at, 4 * page_count))

        def next_of(index: int) -> int:
            return nexts[index]

        def prev_of(index: int) -> int:
            return prevs[index]

    else:

        def next_of(index: int) -> int:
            return int.from_bytes(r.read(next_at + 4 * index, 4), "little")

        def prev_of(index: int) -> int:
            return int.from_bytes(r.read(prev_at + 4 * index, 4), "little")

    free_head = tuple(s.read(blob, "free_head", i) for i in range(orders))
    free_lists: list[tuple[int, ...]] = []
    for order in range(orders):
        entries: list[int] = []
        listed: set[int] = set()
        cursor = free_head[order]
        while cursor != PAGES_NO_PAGE:
            if cursor >= page_count or cursor in listed:
                r.problems.append(f"pages: free list {order} runs off the range or loops at index {cursor}")
                break
            entries.append(cursor)
            listed.add(cursor)
            cursor = next_of(cursor)
        free_lists.append(tuple(entries))
    return PagesView(
        base=base,
        page_size=get("page_size"),
        page_shift=page_shift,
        page_count=page_count,
        reserved_pages=get("reserved_pages"),
        managed_pages=get("managed_pages"),
        free_pages=get("free_pages"),
        nonempty_orders=get("nonempty_orders"),
        initialized=get("initialized"),
        free_head=free_head,
        free_blocks=tuple(s.read(blob, "free_blocks", i) for i in range(orders)),
        blocks=tuple(blocks),
        free_lists=tuple(free_lists),
        free_prev=tuple(tuple(prev_of(i) for i in lst) for lst in free_lists),
        info=info,
    )


def _decode_block(lay: Layouts, blob: bytes, offset: int, address: int) -> Block:
    hb = lay.heap_block
    return Block(
        address=address,
        size=read_uint(blob, offset + hb["size"].offset, hb["size"].size),
        prev_size=read_uint(blob, offset + hb["prev_size"].offset, hb["prev_size"].size),
        requested=read_uint(blob, offset + hb["requested"].offset, hb["requested"].size),
        state=read_uint(blob, offset + hb["state"].offset, hb["state"].size),
        check=read_uint(blob, offset + hb["check"].offset, hb["check"].size),
    )


def _decode_slab(lay: Layouts, desc: bytes, descriptor: int, address: int, meta: bytes) -> Slab:
    """The slab whose window is at ``address``: its descriptor's bytes ``desc`` (at
    ``descriptor``) and ``meta``, the bytes of its meta[] (2 x slot_count entries, fewer when
    the slot count is damaged)."""
    hs = lay.heap_slab

    def get(name: str) -> int:
        return hs.read(desc, name)

    slot_count = get("slot_count")
    entries = struct.unpack_from(f"<{len(meta) // SLAB_META_ENTRY}H", meta)
    return Slab(
        address=address,
        descriptor=descriptor,
        magic=get("magic"),
        size_class=get("size_class"),
        owner=get("owner"),
        check=get("check"),
        slot_size=get("slot_size"),
        slot_count=slot_count,
        first=get("first"),
        reciprocal=get("reciprocal"),
        meta=get("meta"),
        mirror=get("mirror"),
        free_count=get("free_count"),
        current_of=get("current_of"),
        next=get("next"),
        prev=get("prev"),
        spare=get("spare"),
        spare_next=get("spare_next"),
        stack=entries[:slot_count],
        requested=entries[slot_count : 2 * slot_count],
    )


class _ChunkPieces:
    """A chunk's bytes read as the walk reaches them, a piece at a time: a chunk that is mostly
    one long free block costs its header and a few pieces, not its megabytes."""

    PIECE = 64 * 1024

    def __init__(self, r: Reader, address: int, size: int) -> None:
        self.r, self.address, self.size = r, address, size
        self.start, self.data = 0, b""

    def at(self, offset: int, length: int) -> tuple[bytes, int] | None:
        """The bytes holding [offset, offset + length) of the chunk and offset's place in them."""
        if not self.start <= offset <= offset + length <= self.start + len(self.data):
            count = min(max(self.PIECE, length), self.size - offset)
            data = self.r.maybe(self.address + offset, count, f"heap: chunk {self.address:#x}")
            if data is None or len(data) < length:
                return None
            self.start, self.data = offset, data
        return self.data, offset - self.start


def _slab_meta(pieces: _ChunkPieces, lay: Layouts, slot_count: int, at: int) -> bytes:
    """The meta[] bytes of the slab whose window is at chunk offset ``at``: 2 x ``slot_count``
    entries, the count capped at the most any class has and at the chunk's end (a damaged
    count reads what is there)."""
    slots = min(slot_count, lay.slot_count(0))
    entry = 2 * SLAB_META_ENTRY
    length = max(0, min(entry * slots, lay.chunk_size - HEAP_BLOCK_HEADER_SIZE - at)) // entry * entry
    piece = pieces.at(at, length)
    return b"" if piece is None else piece[0][piece[1] : piece[1] + length]


def _decode_chunk(r: Reader, lay: Layouts, address: int) -> Chunk | None:
    size = lay.chunk_size
    blob = r.maybe(address, lay.chunk_first, f"heap: chunk {address:#x}")
    if blob is None:
        return None
    pieces = _ChunkPieces(r, address, size)
    hc = lay.heap_chunk
    used_map = hc["used_map"]
    bits = int.from_bytes(blob[used_map.offset : used_map.offset + used_map.size], "little")
    set_bits: list[int] = []
    while bits:
        lowest = bits & -bits
        set_bits.append(lowest.bit_length() - 1)
        bits ^= lowest
    granules = frozenset(set_bits)
    table = hc["slabs"]
    descriptors = bytes(blob[table.offset : table.offset + table.size])
    desc_size = lay.heap_slab.size
    slab_state = lay.block_state["HEAP_BLOCK_SLAB"]
    slabs: list[Slab] = []
    end = size - HEAP_BLOCK_HEADER_SIZE
    blocks: list[Block] = []
    offset = lay.chunk_first
    sentinel: Block | None = None
    while True:
        if offset > end:
            r.problems.append(f"heap: chunk {address:#x}: blocks overrun the sentinel (offset {offset:#x})")
            break
        at = offset + HEAP_BLOCK_HEADER_SIZE
        piece = pieces.at(offset, HEAP_BLOCK_HEADER_SIZE)
        if piece is None:
            break
        data, rel = piece
        if offset == end:
            sentinel = _decode_block(lay, data, rel, address + offset)
            break
        block = _decode_block(lay, data, rel, address + offset)
        blocks.append(block)
        if block.state == slab_state:
            unit = at // lay.unit_size * desc_size
            desc = descriptors[unit : unit + desc_size]
            meta = _slab_meta(pieces, lay, lay.heap_slab.read(desc, "slot_count"), at)
            slabs.append(_decode_slab(lay, desc, address + table.offset + unit, address + at, meta))
        if block.size < HEAP_MIN_BLOCK or block.size % HEAP_ALIGN:
            r.problems.append(f"heap: block {block.address:#x} has size {block.size}: cannot walk on")
            break
        offset += block.size
    return Chunk(
        address=address,
        magic=hc.read(blob, "magic"),
        next=hc.read(blob, "next"),
        prev=hc.read(blob, "prev"),
        blocks=tuple(blocks),
        sentinel=sentinel,
        used_granules=granules,
        slabs=tuple(slabs),
        descriptors=descriptors,
    )


def _decode_heap(r: Reader, lay: Layouts, address: int, pages: PagesView) -> HeapView:
    s = lay.heap_state
    blob = r.struct(s, address)
    counters = {
        name: s.read(blob, name) for name, f in s.fields.items() if f.count == 1 and f.type_name != "pointer"
    }
    fl_count, sl_count = lay.fl_count, lay.sl_count
    free_lists: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
    fb = lay.heap_free_block
    limit = pages.size // HEAP_MIN_BLOCK + 1
    heads = s.read_array(blob, "free_lists")
    for fl in range(fl_count):
        for sl in range(sl_count):
            cursor = heads[fl * sl_count + sl]
            entries: list[tuple[int, int]] = []
            while cursor:
                if len(entries) > limit or not pages.base <= cursor < pages.end:
                    r.problems.append(f"heap: free list ({fl},{sl}) leaves the heap or loops at {cursor:#x}")
                    break
                raw = r.maybe(cursor, fb.size, f"heap: free list ({fl},{sl}) entry")
                if raw is None:
                    break
                entries.append((cursor, fb.read(raw, "prev_free")))
                cursor = fb.read(raw, "next_free")
            if entries:
                free_lists[(fl, sl)] = tuple(entries)

    slab_partial: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
    classes = lay.slab_classes
    hs = lay.heap_slab
    for index, cursor in enumerate(s.read_array(blob, "slab_partial")):
        slab_entries: list[tuple[int, int]] = []
        while cursor:
            if len(slab_entries) > pages.size // lay.unit_size or not pages.base <= cursor < pages.end:
                r.problems.append(
                    f"heap: partial list {divmod(index, classes)} leaves the heap or loops at {cursor:#x}"
                )
                break
            raw = r.maybe(cursor, hs.size, "heap: partial list entry")
            if raw is None:
                break
            slab_entries.append((cursor, hs.read(raw, "prev")))
            cursor = hs.read(raw, "next")
        if slab_entries:
            slab_partial[divmod(index, classes)] = tuple(slab_entries)

    slab_spare: dict[tuple[int, int], tuple[int, ...]] = {}
    for index, cursor in enumerate(s.read_array(blob, "slab_spare")):
        spare_entries: list[int] = []
        while cursor:
            if (
                len(spare_entries) > pages.size // lay.unit_size
                or not pages.base <= cursor < pages.end
            ):
                where = divmod(index, SLAB_SPANS)
                r.problems.append(f"heap: spare list {where} leaves the heap or loops at {cursor:#x}")
                break
            raw = r.maybe(cursor, hs.size, "heap: spare list entry")
            if raw is None:
                break
            spare_entries.append(cursor)
            cursor = hs.read(raw, "spare_next")
        if spare_entries:
            slab_spare[divmod(index, SLAB_SPANS)] = tuple(spare_entries)

    chunk_list: list[int] = []
    cursor = s.read(blob, "chunks")
    while cursor:
        if len(chunk_list) > pages.size // lay.chunk_size + 1 or not pages.base <= cursor < pages.end:
            r.problems.append(f"heap: chunk list leaves the heap or loops at {cursor:#x}")
            break
        chunk_list.append(cursor)
        raw = r.maybe(cursor, lay.heap_chunk.size, "heap: chunk list entry")
        if raw is None:
            break
        cursor = lay.heap_chunk.read(raw, "next")

    # Chunks and large blocks as the page allocator sees them (every heap-owned block).
    owned = lay.page_state["PAGE_STATE_OWNED"]
    chunk_state = owned + lay.page_owner["PAGE_OWNER_HEAP_CHUNK"]
    large_state = owned + lay.page_owner["PAGE_OWNER_HEAP_LARGE"]
    continuation = lay.page_state["PAGE_STATE_CONTINUATION"]
    chunk_addresses = sorted(set(chunk_list) | {b.pa for b in pages.blocks if b.state == chunk_state})
    chunks = tuple(c for c in (_decode_chunk(r, lay, a) for a in chunk_addresses) if c is not None)
    large: list[LargeBlock] = []
    lh = lay.heap_large_header
    for i, block in enumerate(pages.blocks):
        if block.state != large_state:
            continue
        run = block.pages
        for after in pages.blocks[i + 1 :]:
            if after.state != continuation or after.index != block.index + run:
                break
            run += after.pages
        raw = r.maybe(block.pa, lh.size, f"heap: large block {block.pa:#x}")
        if raw is None:
            continue
        large.append(
            LargeBlock(block.pa, lh.read(raw, "requested"), lh.read(raw, "magic"), lh.read(raw, "check"), run)
        )
    return HeapView(
        counters=counters,
        fl_bitmap=s.read(blob, "fl_bitmap"),
        sl_bitmap=s.read_array(blob, "sl_bitmap")[:fl_count],
        free_lists=free_lists,
        chunk_list=tuple(chunk_list),
        home_chunk=s.read(blob, "home_chunk"),
        chunks=chunks,
        large=tuple(large),
        slab_partial=slab_partial,
        slab_partial_map=s.read_array(blob, "slab_partial_map"),
        chunk_at=s.read_array(blob, "chunk_at"),
        slab_current=s.read_array(blob, "slab_current"),
        slab_spare=slab_spare,
    )


def decode(read: ReadMemory, layouts: Layouts, symbols: Symbols) -> Snapshot:
    """Read the page allocator, the heap and the object registry into one snapshot."""
    r = Reader(read)
    pages = _decode_pages(r, layouts, symbols.pages_state)
    heap = _decode_heap(r, layouts, symbols.heap_state, pages)
    objects = decode_objects(r, layouts, symbols.object_registry)
    return Snapshot(layouts, pages, heap, objects, tuple(r.problems))


# ---------------------------------------------------------------- judging


def _page_problems(snap: Snapshot) -> Iterable[str]:
    lay, p = snap.layouts, snap.pages
    reserved = lay.page_state["PAGE_STATE_RESERVED"]
    free = lay.page_state["PAGE_STATE_FREE"]
    continuation = lay.page_state["PAGE_STATE_CONTINUATION"]
    owned_max = lay.page_state["PAGE_STATE_OWNED"] + lay.page_owner["PAGE_OWNER_COUNT"]
    if not p.initialized:
        yield "pages: not initialized"
        return
    if p.page_size != 1 << p.page_shift or p.page_size not in (4096, 16384, 65536):
        yield f"pages: page size {p.page_size} / shift {p.page_shift}"
    if p.base % p.page_size:
        yield f"pages: base {p.base:#x} is not page aligned"
    if p.managed_pages != p.page_count - p.reserved_pages:
        yield "pages: managed_pages != page_count - reserved_pages"
    meta_bytes = p.page_count * 9  # info byte + next + prev link per page
    if p.reserved_pages != -(-meta_bytes // p.page_size):
        yield f"pages: {p.reserved_pages} reserved pages for {meta_bytes} bytes of metadata"
    base_pfn = p.base >> p.page_shift
    heads = {(b.index, b.order): b for b in p.blocks}
    free_by_order: dict[int, set[int]] = {}
    covered = 0
    previous: PageBlock | None = None
    for b in p.blocks:
        covered += b.pages
        if (b.index < p.reserved_pages) != (b.state == reserved):
            yield f"pages: block at page {b.index} state {b.state}: reserved must be exactly the metadata"
        if b.state == reserved and b.order:
            yield f"pages: reserved page {b.index} has order {b.order}"
        if b.state >= owned_max:
            yield f"pages: block at page {b.index} has unknown state {b.state}"
        if b.state == free:
            free_by_order.setdefault(b.order, set()).add(b.index)
            buddy = ((base_pfn + b.index) ^ b.pages) - base_pfn
            buddy_block = heads.get((buddy, b.order))
            if b.order < lay.orders - 1 and buddy_block is not None and buddy_block.state == free:
                yield f"pages: free buddies at pages {b.index} and {buddy} (order {b.order}) not coalesced"
        if b.state == continuation and (
            previous is None
            or previous.state < continuation
            or previous.state == free
            or previous.order <= b.order
            or previous.index + previous.pages != b.index
        ):
            yield f"pages: continuation block at page {b.index} does not follow a larger run block"
        previous = b
    if covered != p.page_count:
        yield f"pages: blocks cover {covered} of {p.page_count} pages"
    total_free = 0
    for order, entries in enumerate(p.free_lists):
        if len(set(entries)) != len(entries):
            yield f"pages: free list {order} holds a block twice"
        if set(entries) != free_by_order.get(order, set()):
            blocks = sorted(free_by_order.get(order, set()))
            yield f"pages: free list {order} {sorted(entries)[:8]} != free blocks {blocks[:8]}"
        if p.free_blocks[order] != len(entries):
            yield f"pages: free_blocks[{order}] = {p.free_blocks[order]}, list holds {len(entries)}"
        if bool(p.nonempty_orders >> order & 1) != bool(entries):
            yield f"pages: nonempty_orders bit {order} disagrees with its list"
        for position, prev in enumerate(p.free_prev[order]):
            want = entries[position - 1] if position else PAGES_NO_PAGE
            if prev != want:
                yield f"pages: list {order}: back link of page {entries[position]} is {prev}, want {want}"
        total_free += len(entries) << order
    if total_free != p.free_pages:
        yield f"pages: free_pages counter {p.free_pages}, lists hold {total_free}"


def _heap_problems(snap: Snapshot) -> Generator[str, None, None]:
    lay, h, p = snap.layouts, snap.heap, snap.pages
    used = lay.used_states
    free = lay.block_state["HEAP_BLOCK_FREE"]
    sentinel_state = lay.block_state["HEAP_BLOCK_SENTINEL"]
    slab_state = lay.block_state["HEAP_BLOCK_SLAB"]
    owned = lay.page_state["PAGE_STATE_OWNED"]
    chunk_state = owned + lay.page_owner["PAGE_OWNER_HEAP_CHUNK"]
    chunk_order = (lay.chunk_size // p.page_size).bit_length() - 1 if p.page_size else 0
    page_chunks = {b.pa: b for b in p.blocks if b.state == chunk_state}
    c = h.counters
    if not c.get("initialized"):
        yield "heap: not initialized"
        return

    # the chunk list and the page allocator agree
    if len(set(h.chunk_list)) != len(h.chunk_list):
        yield "heap: a chunk is on the list twice"
    if set(h.chunk_list) != set(page_chunks):
        listed_chunks, owned_chunks = sorted(map(hex, h.chunk_list)), sorted(map(hex, page_chunks))
        yield f"heap: chunk list {listed_chunks} != heap chunk blocks {owned_chunks}"
    if c["chunk_count"] != len(h.chunk_list) or not h.chunk_list:
        yield f"heap: chunk_count {c['chunk_count']}, list holds {len(h.chunk_list)}"
    yield from _chunk_at_problems(h, lay.chunk_size)
    if h.home_chunk not in h.chunk_list:
        yield f"heap: home chunk {h.home_chunk:#x} is not on the chunk list"
    chunk_by_address = {ch.address: ch for ch in h.chunks}
    for position, address in enumerate(h.chunk_list):
        chunk = chunk_by_address.get(address)
        want_prev = h.chunk_list[position - 1] if position else 0
        if chunk is not None and chunk.prev != want_prev:
            yield f"heap: chunk {address:#x} back link {chunk.prev:#x}, want {want_prev:#x}"
    for address, block in page_chunks.items():
        if block.order != chunk_order:
            yield f"heap: chunk {address:#x} is a page block of order {block.order}, want {chunk_order}"

    free_headers: dict[int, Block] = {}
    small_used = small_bytes = 0
    slab_classes = {slab.address: slab.size_class for slab in h.slabs}
    for chunk in h.chunks:
        where = f"heap: chunk {chunk.address:#x}"
        if chunk.magic != HEAP_CHUNK_MAGIC:
            yield f"{where}: magic {chunk.magic:#x}"
        prev_size, prev_free, used_here = 0, False, 0
        granules: set[int] = set()
        for b in chunk.blocks:
            at = f"heap: block {b.address:#x}"
            if b.check != block_check(b.address, b.size, b.prev_size, b.requested, b.state):
                yield f"{at}: header checksum {b.check:#06x} does not match its fields"
            if b.prev_size != prev_size:
                yield f"{at}: prev_size {b.prev_size}, the block below is {prev_size} bytes"
            if b.size < HEAP_MIN_BLOCK or b.size % HEAP_ALIGN:
                yield f"{at}: size {b.size}"
            if b.state in used:
                used_here += 1
                small_used += 1
                small_bytes += b.requested
                granules.add((b.address - chunk.address) // HEAP_ALIGN)
                need = small_block_size(b.requested)
                if not need <= b.size < need + HEAP_MIN_BLOCK:
                    yield f"{at}: {b.requested} bytes requested in a block of {b.size} (needs {need}, < +32)"
            elif b.state == slab_state:
                used_here += 1
                granules.add((b.address - chunk.address) // HEAP_ALIGN)
                # the span of the slab's class (a class out of range is _slab_problems')
                span = slab_span(slab_classes.get(b.payload, 0))
                if b.size != span or b.requested:
                    yield f"{at}: slab block of {b.size} bytes (its class: {span}), requested {b.requested}"
                if b.payload % span:
                    yield f"{at}: slab window {b.payload:#x} is not {span}-aligned"
            elif b.state == free:
                if prev_free:
                    yield f"{at}: two neighbouring free blocks (not coalesced)"
                if b.requested:
                    yield f"{at}: free block with requested {b.requested}"
                free_headers[b.address] = b
            else:
                yield f"{at}: unknown state {b.state:#x}"
            prev_free = b.state == free
            prev_size = b.size
        s = chunk.sentinel
        if s is None:
            yield f"{where}: no sentinel where the blocks end"
        elif (
            s.state != sentinel_state
            or s.size != HEAP_BLOCK_HEADER_SIZE
            or s.prev_size != prev_size
            or s.requested != 0
            or s.check != block_check(s.address, s.size, s.prev_size, s.requested, s.state)
        ):
            yield f"{where}: sentinel damaged ({s})"
        if granules != chunk.used_granules:
            extra = sorted(chunk.used_granules - granules)[:4]
            missing = sorted(granules - chunk.used_granules)[:4]
            yield f"{where}: used_map bits without a used block {extra}, used blocks without a bit {missing}"
        if used_here == 0 and chunk.address != h.home_chunk:
            yield f"{where}: empty chunk kept (only the home chunk may be empty)"
        yield from _descriptor_problems(lay, chunk, where)

    # TLSF lists: exactly the free blocks, each in its class, links and bitmaps right
    listed: dict[int, tuple[int, int]] = {}
    for fl in range(lay.fl_count):
        if bool(h.fl_bitmap >> fl & 1) != bool(h.sl_bitmap[fl]):
            yield f"heap: fl_bitmap bit {fl} disagrees with sl_bitmap[{fl}] = {h.sl_bitmap[fl]:#x}"
        for sl in range(lay.sl_count):
            entries = h.free_lists.get((fl, sl), ())
            if bool(h.sl_bitmap[fl] >> sl & 1) != bool(entries):
                yield f"heap: sl_bitmap[{fl}] bit {sl} disagrees with its list"
            previous = 0
            for entry, back_link in entries:
                if entry in listed:
                    yield f"heap: free block {entry:#x} is listed twice"
                listed[entry] = (fl, sl)
                listed_block = free_headers.get(entry)
                if listed_block is None:
                    yield f"heap: free list ({fl},{sl}) entry {entry:#x} is not a free block of any chunk"
                elif lay.mapping_insert(listed_block.size) != (fl, sl):
                    yield f"heap: free block {entry:#x} of {listed_block.size} bytes in list ({fl},{sl})"
                if back_link != previous:
                    yield f"heap: free block {entry:#x} back link {back_link:#x}, want {previous:#x}"
                previous = entry
    unlisted = sorted(set(free_headers) - set(listed))
    if unlisted:
        yield f"heap: free blocks missing from the lists: {[hex(a) for a in unlisted[:4]]}"

    # large blocks
    large_bytes = large_pages_total = 0
    for large in h.large:
        at = f"heap: large block {large.address:#x}"
        if large.magic not in LARGE_MAGIC_OWNER or large.check != large_check(
            large.address, large.requested, large.magic
        ):
            yield f"{at}: header damaged (magic {large.magic:#x}, check {large.check:#x})"
        if large.requested < HEAP_LARGE_MIN:
            yield f"{at}: {large.requested} bytes is below the large threshold"
        if large.pages != large_pages(large.requested, p.page_size):
            yield f"{at}: run of {large.pages} pages for {large.requested} bytes"
        large_bytes += large.requested
        large_pages_total += large.pages

    slots, slot_bytes = yield from _slab_problems(snap)

    # counters
    live, counted = small_used + slots + len(h.large), c.get("allocs", 0) - c.get("frees", 0)
    if counted != live:
        yield f"heap: counters allocs - frees = {counted}, the walk finds {live} live blocks"
    want = {
        "slabs": len(h.slabs),
        "used_bytes": small_bytes + slot_bytes + large_bytes,
        "free_blocks": len(free_headers),
        "free_bytes": sum(b.size for b in free_headers.values()),
        "large_blocks": len(h.large),
        "large_pages": large_pages_total,
    }
    for name, value in want.items():
        if c.get(name) != value:
            yield f"heap: counter {name} = {c.get(name)}, the walk says {value}"

    # every live block inside the range, none overlapping anything else
    spans = sorted(
        [(b.address, b.address + b.size) for ch in h.chunks for b in ch.blocks]
        + [(ch.address, ch.address + lay.chunk_first) for ch in h.chunks]
        + [(lg.address, lg.address + lg.pages * p.page_size) for lg in h.large]
    )
    for (a0, a1), (b0, _) in itertools.pairwise(spans):
        if b0 < a1:
            yield f"heap: blocks [{a0:#x}, {a1:#x}) and [{b0:#x}, ...) overlap"
    if spans and (spans[0][0] < p.base or spans[-1][1] > p.end):
        yield f"heap: blocks outside the page range [{p.base:#x}, {p.end:#x})"


def _slab_problems(snap: Snapshot) -> Generator[str, None, tuple[int, int]]:
    """Every slab's header, maps and slots, the partial lists (heap.c H7) and the current
    slabs (H9); returns the number of used slots and the sum of their requested sizes."""
    lay, h = snap.layouts, snap.heap
    slots = slot_bytes = 0
    partial: dict[int, tuple[int, int]] = {}
    for slab in h.slabs:
        at = f"heap: slab {slab.address:#x}"
        want_check = slab_check(
            slab.address, slab.magic, slab.size_class, slab.owner, slab.slot_size, slab.slot_count, slab.first
        )
        if SLAB_MAGIC_OWNER.get(slab.magic) != lay.owner_names.get(slab.owner) or slab.check != want_check:
            check = f"check {slab.check:#06x}/{want_check:#06x}"
            yield f"{at}: descriptor damaged (magic {slab.magic:#x}, {check})"
        if slab.meta != slab.address or slab.mirror != 0:
            mark = f"mirror mark {slab.mirror}"
            yield f"{at}: descriptor {slab.descriptor:#x} names window {slab.meta:#x} ({mark})"
        slot_size = slab_slot_size(slab.size_class)
        if (
            slab.size_class >= lay.slab_classes
            or slab.owner not in lay.owner_names
            or slab.slot_size != slot_size
            or slab.slot_count != lay.slot_count(slab.size_class)
            or slab.first != lay.slab_first(slab.size_class)
            or slab.reciprocal != slot_reciprocal(slab.size_class)
        ):
            shape = f"{slab.slot_count} x {slab.slot_size} from +{slab.first}"
            yield f"{at}: geometry (class {slab.size_class}, owner {slab.owner}, {shape})"
            continue
        if slab.free_count > slab.slot_count:
            yield f"{at}: free_count {slab.free_count} of {slab.slot_count} slots"
            continue
        stacked = slab.stack[: slab.stack_height]
        if len(set(stacked)) != len(stacked) or any(
            i >= slab.slot_count or slab.requested[i] != HEAP_SLAB_SLOT_FREE for i in stacked
        ):
            yield f"{at}: free stack {list(stacked)[:8]} is not distinct free slots"
        free_slots = bin(slab.free_map).count("1")
        if free_slots != slab.free_count:
            yield f"{at}: free_count {slab.free_count}, requested[] says {free_slots}"
        for index in slab.used_slots():
            requested = slab.requested[index]
            if requested > slot_size or slab.size_class > slab_fall_up(slab_class(requested)):
                yield f"{at}: slot {index} holds {requested} bytes in a {slot_size}-byte class"
            slots += 1
            slot_bytes += requested
        if free_slots:
            partial[slab.descriptor] = (slab.owner, slab.size_class)
    listed: set[int] = set()
    for (owner, size_class), entries in h.slab_partial.items():
        previous = 0
        for entry, back_link in entries:
            if entry in listed:
                yield f"heap: slab {entry:#x} is on the partial lists twice"
            listed.add(entry)
            if partial.get(entry) != (owner, size_class):
                where = f"heap: partial list ({owner},{size_class})"
                yield f"{where} entry {entry:#x}: no such slab with a free slot"
            if back_link != previous:
                yield f"heap: slab {entry:#x} back link {back_link:#x}, want {previous:#x}"
            previous = entry
    by_address = {slab.descriptor: slab for slab in h.slabs}  # the pointers name descriptors
    classes = lay.slab_classes
    for index, current in enumerate(h.slab_current):  # H9
        owner, size_class = divmod(index, classes)
        target, at = by_address.get(current), f"heap: slab_current[{owner}][{size_class}]"
        reach = range(size_class, min(slab_fall_up(size_class), classes - 1) + 1)
        if current and target is None:
            yield f"{at} {current:#x} is not a slab"
        elif target is not None and (target.owner != owner or target.size_class not in reach):
            yield f"{at} is a slab of owner {target.owner}, class {target.size_class}"
    owners = len(h.slab_current) // classes if classes else 0
    for slab in h.slabs:  # current_of names exactly the classes whose current slab it is
        row = h.slab_current[slab.owner * classes : (slab.owner + 1) * classes] if slab.owner < owners else ()
        have = sum(1 << c for c, current in enumerate(row) if current == slab.descriptor)
        if slab.current_of != have:
            yield f"heap: slab {slab.address:#x} current_of {slab.current_of:#x}, current for {have:#x}"
    yield from _spare_problems(h)
    missing = sorted(set(partial) - listed)
    if missing:
        yield f"heap: slabs with a free slot missing from the partial lists: {[hex(a) for a in missing[:4]]}"
    for owner, bits in enumerate(h.slab_partial_map):
        want = sum(1 << c for (o, c), entries in h.slab_partial.items() if o == owner and entries)
        if bits != want:
            yield f"heap: slab_partial_map[{owner}] {bits:#x}, the partial lists say {want:#x}"
    return slots, slot_bytes


# The fields a big slab's mirror copies from its descriptor (heap.h struct heap_slab).
MIRRORED_FIELDS = (
    "magic",
    "size_class",
    "owner",
    "slot_size",
    "slot_count",
    "first",
    "check",
    "reciprocal",
    "meta",
)


def _descriptor_problems(lay: Layouts, chunk: Chunk, where: str) -> Iterator[str]:
    """heap.h struct heap_slab: a slab's descriptor is its window's unit's (_slab_problems
    checks it); a big slab's second unit holds its mirror (the mirrored fields equal, mirror 1,
    every other field 0); every other unit's descriptor is all 0."""
    hs = lay.heap_slab
    size = hs.size
    own: dict[int, bytes] = {}  # unit -> the slab's descriptor bytes, for its mirror
    slab_units: set[int] = set()
    for slab in chunk.slabs:
        unit = (slab.address - chunk.address) // lay.unit_size
        slab_units.add(unit)
        if slab_span(slab.size_class) == HEAP_SLAB_BIG_SIZE and slab.size_class < lay.slab_classes:
            own[unit + 1] = chunk.descriptors[unit * size : (unit + 1) * size]
    for unit in range(len(chunk.descriptors) // size):
        if unit in slab_units:
            continue
        desc = chunk.descriptors[unit * size : (unit + 1) * size]
        source = own.get(unit)
        if source is None:
            want = {name: 0 for name in hs.fields}
        else:
            want = {name: hs.read(source, name) if name in MIRRORED_FIELDS else 0 for name in hs.fields}
            want["mirror"] = 1
        wrong = [name for name in hs.fields if hs.read(desc, name) != want[name]]
        if wrong:
            what = "mirror of the slab below" if source is not None else "descriptor of a unit no slab covers"
            yield f"{where}: unit {unit}: {what} wrong in {', '.join(wrong)}"


def _spare_problems(h: HeapView) -> Iterator[str]:
    """H7: every empty slab is marked spare; the spare lists hold exactly the marked slabs,
    each once, in the list of its owner and span."""
    by_address = {slab.descriptor: slab for slab in h.slabs}
    listed: set[int] = set()
    for (owner, span), entries in h.slab_spare.items():
        for entry in entries:
            slab = by_address.get(entry)
            if entry in listed:
                yield f"heap: slab {entry:#x} is on the spare lists twice"
            listed.add(entry)
            fits = slab is not None and slab.owner == owner and slab_span_index(slab.size_class) == span
            if not fits or slab is None or slab.spare != 1:
                yield f"heap: spare list ({owner},{span}) entry {entry:#x}: no such slab marked spare"
    for slab in h.slabs:
        if slab.spare not in (0, 1):
            yield f"heap: slab {slab.address:#x} spare mark {slab.spare}"
        elif slab.free_count == slab.slot_count and not slab.spare:
            yield f"heap: empty slab {slab.address:#x} not marked spare"
        elif slab.spare and slab.descriptor not in listed:
            yield f"heap: slab {slab.address:#x} marked spare is on no spare list"


def _chunk_at_problems(h: HeapView, chunk_size: int) -> Iterator[str]:
    """H8: each chunk_at entry is the lowest listed chunk with its index, else HEAP_CHUNK_AT_NONE."""
    want = [HEAP_CHUNK_AT_NONE] * len(h.chunk_at)
    for chunk in sorted(h.chunk_list, reverse=True):
        want[(chunk // chunk_size) % len(want)] = chunk
    wrong = [i for i, (have, should) in enumerate(zip(h.chunk_at, want, strict=True)) if have != should]
    if wrong:
        shown = ", ".join(f"{i}: {h.chunk_at[i]:#x} not {want[i]:#x}" for i in wrong[:4])
        yield f"heap: chunk_at entries wrong ({len(wrong)}): {shown}"


def problems(snap: Snapshot) -> list[str]:
    """Every broken invariant of the three allocators (empty when the state is consistent)."""
    return [
        *snap.problems,
        *_page_problems(snap),
        *_heap_problems(snap),
        *object_problems(snap.objects, snap.live_blocks()),
    ]


def unsettled(snap: Snapshot) -> list[str]:
    """Empty slabs, which a heap read between requests must not hold: the agent calls
    heap_settle() at the end of every request (heap.c H7)."""
    return [
        f"slab 0x{slab.address:x}: empty between requests (heap_settle not run)"
        for slab in snap.heap.slabs
        if slab.free_count == slab.slot_count
    ]


def verify(snap: Snapshot, *, command: str | None = None, between_requests: bool = False) -> Snapshot:
    """Raise :class:`OracleMismatch` if :func:`problems` finds anything (or, for a heap read
    between requests, :func:`unsettled`); returns the snapshot."""
    found = problems(snap) + (unsettled(snap) if between_requests else [])
    if found:
        raise OracleMismatch(
            "decoded allocator state", {"host decoder": found[:12], "problems": len(found)}, command=command
        )
    return snap


def accounting(snap: Snapshot) -> dict[str, int]:
    """Where every byte of the page range is, in bytes; the values sum to the range's size.

    ``used`` is the sum of requested sizes (stats ``heap_used``); ``free_in_chunks`` the free
    blocks (stats ``heap_free``); the rest is metadata (allocator arrays, chunk headers with
    their slab descriptors, block and large headers, slabs' meta[], sentinels), padding
    (rounding inside blocks and runs), free pages, and pages held by other owners (page
    tables, buffers).
    """
    lay, p, h = snap.layouts, snap.pages, snap.heap
    ps = p.page_size
    owned = lay.page_state["PAGE_STATE_OWNED"]
    chunk_state = owned + lay.page_owner["PAGE_OWNER_HEAP_CHUNK"]
    large_state = owned + lay.page_owner["PAGE_OWNER_HEAP_LARGE"]
    continuation = lay.page_state["PAGE_STATE_CONTINUATION"]
    free_state = lay.page_state["PAGE_STATE_FREE"]
    reserved = lay.page_state["PAGE_STATE_RESERVED"]
    out = dict.fromkeys(
        (
            "page_metadata",
            "free_pages",
            "chunk_headers",
            "block_headers",
            "used",
            "padding",
            "free_in_chunks",
            "sentinels",
            "large_headers",
            "large_padding",
            "other_pages",
            "slab_meta",
            "slab_free",
        ),
        0,
    )
    large_runs = {lg.address for lg in h.large}
    in_large_run = 0
    for b in p.blocks:
        size = b.pages * ps
        if b.state == reserved:
            out["page_metadata"] += size
        elif b.state == free_state:
            out["free_pages"] += size
        elif b.state == chunk_state:
            pass  # split below, from the chunk walk
        elif b.state == large_state and b.pa in large_runs:
            pass  # split below, from the large headers
        elif b.state == continuation:
            in_large_run += size  # counted with its large run (or left over if it is not one)
        else:
            out["other_pages"] += size
    used_states = lay.used_states
    for chunk in h.chunks:
        out["chunk_headers"] += lay.chunk_first
        out["sentinels"] += HEAP_BLOCK_HEADER_SIZE
        slabs = {slab.address: slab for slab in chunk.slabs}
        for blk in chunk.blocks:
            if blk.state in used_states:
                out["block_headers"] += HEAP_BLOCK_HEADER_SIZE
                out["used"] += blk.requested
                out["padding"] += blk.size - HEAP_BLOCK_HEADER_SIZE - blk.requested
            elif blk.payload in slabs:  # header, meta[] and the slots' tail; slots
                slab = slabs[blk.payload]
                used_slots = slab.used_slots()
                requested = sum(slab.requested[i] for i in used_slots)
                out["block_headers"] += HEAP_BLOCK_HEADER_SIZE
                out["slab_meta"] += blk.size - HEAP_BLOCK_HEADER_SIZE - slab.slot_count * slab.slot_size
                out["used"] += requested
                out["padding"] += len(used_slots) * slab.slot_size - requested
                out["slab_free"] += (slab.slot_count - len(used_slots)) * slab.slot_size
            else:
                out["free_in_chunks"] += blk.size
    for lg in h.large:
        run = lg.pages * ps
        head = next(b for b in p.blocks if b.pa == lg.address)
        in_large_run -= run - head.pages * ps
        out["large_headers"] += HEAP_BLOCK_HEADER_SIZE
        out["used"] += lg.requested
        out["large_padding"] += run - HEAP_BLOCK_HEADER_SIZE - lg.requested
    out["other_pages"] += in_large_run  # continuations of runs that are not large blocks (buffers)
    return out
