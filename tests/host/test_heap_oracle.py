"""harness/oracle/heap.py against the real allocators (the host-built library).

The decoder that judges guest RAM must (a) find nothing wrong in every state the C code
produces, and (b) see every kind of damage, agreeing with the C integrity walks
(pages_check / heap_check / object_check) on what is broken. Damage is made by writing the
state behind the allocators' back and undone after.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Iterator

import heap_decoder
import pytest
from hostlib import (
    HEAP_CHUNK_SIZE,
    HEAP_FL_SHIFT,
    HEAP_LARGE_MIN,
    HEAP_SL_SHIFT,
    Arena,
    load,
    metaclass,
)

from harness.errors import OracleMismatch
from harness.oracle import heap as heap_oracle

MiB = 1 << 20


class ObjectCheckReport(ctypes.Structure):
    _fields_ = [("live", ctypes.c_uint64), ("error", ctypes.c_char_p), ("error_address", ctypes.c_uint64)]


def object_check() -> str | None:
    lib = load()
    lib.object_check.restype = ctypes.c_int32
    lib.object_check.argtypes = [ctypes.POINTER(ObjectCheckReport)]
    report = ObjectCheckReport()
    lib.object_check(ctypes.byref(report))
    return report.error.decode() if report.error else None


def c_problem(arena: Arena) -> str | None:
    """The first problem the C walks report, or None."""
    pages, heap = arena.pages_check(), arena.heap_check()
    return pages.error or heap.error or object_check()


def new_object() -> int:
    out = ctypes.c_void_p()
    assert load().OSObjectAllocate(metaclass("IOMemTestObjectMetaClass"), ctypes.byref(out)) == 0
    assert out.value is not None
    return out.value


@pytest.fixture
def busy() -> Iterator[tuple[Arena, dict[int, int]]]:
    """An arena with small, large and object blocks, some freed (holes in lists)."""
    arena = Arena(16 * MiB, 4096)
    rng = random.Random(11)
    live: dict[int, int] = {}
    for _ in range(200):
        size = rng.choice(
            [rng.randrange(0, 600), rng.randrange(0, 60000), rng.randrange(HEAP_LARGE_MIN, 200000)]
        )
        pointer = arena.malloc(size)
        if pointer:
            live[pointer] = size
        if live and rng.random() < 0.4:
            victim = rng.choice(sorted(live))
            assert arena.free(victim, live.pop(victim)) == 0
    for _ in range(3):
        live[new_object()] = 64
    yield arena, live


# ------------------------------------------------------------------ geometry from DWARF


def test_layout_geometry_matches_the_c_constants() -> None:
    lay = heap_decoder.layouts()
    assert lay.chunk_size == HEAP_CHUNK_SIZE
    assert lay.chunk_first == 41024  # sizeof(struct heap_chunk): used_map to a line, then slabs[]
    assert lay.chunk_units == 128 and lay.unit_size == 32768  # a slab descriptor per 32 KiB
    assert lay.sl_shift == HEAP_SL_SHIFT and lay.sl_shift + 4 == HEAP_FL_SHIFT
    assert lay.fl_count == 14 and lay.orders == 32
    assert lay.block_state == {
        "HEAP_BLOCK_FREE": 0xF4EE,
        "HEAP_BLOCK_USED": 0xA110,
        "HEAP_BLOCK_USED_OBJECT": 0xA0B1,
        "HEAP_BLOCK_USED_FIRMWARE": 0xA1F3,
        "HEAP_BLOCK_SENTINEL": 0x5E47,
        "HEAP_BLOCK_SLAB": 0x5AB0,
    }
    assert lay.used_states == {0xA110: "caller", 0xA0B1: "object", 0xA1F3: "firmware"}
    # slabs: 30 classes per owner, 16 of 16..256-byte slots in 32 KiB slabs, 12 of 320..1024
    # in 64 KiB slabs, 2 of 1536 and 2048 in 32 KiB slabs; slots after a 48-byte header and 4
    # bytes of meta[] per slot (its stack entry and requested length), rounded to 16 (the C
    # values: HEAP_SLAB_SLOT_COUNT/FIRST)
    assert lay.slab_classes == heap_oracle.slab_class(heap_oracle.HEAP_SLAB_MAX) + 1 == 30
    sizes = [heap_oracle.slab_slot_size(c) for c in range(lay.slab_classes)]
    assert sizes == [*range(16, 257, 16), *range(320, 1025, 64), 1536, 2048]
    spans = [heap_oracle.slab_span(c) for c in (0, 15, 16, 27, 28, 29)]
    assert spans == [32768, 32768, 65536, 65536, 32768, 32768]
    assert lay.heap_slab.size == 64  # HEAP_SLAB_DESC_SIZE: a descriptor is one cache line
    assert [lay.slot_count(c) for c in (0, 15, 16, 27, 28, 29)] == [1637, 125, 202, 63, 21, 15]
    assert [lay.slab_first(c) for c in (0, 15, 16, 27, 28, 29)] == [6560, 512, 816, 256, 96, 64]
    # fall-up: slots at most twice as big (heap.h HEAP_SLAB_FALL_UP's closed form)
    fall_up = [heap_oracle.slab_fall_up(c) for c in (0, 7, 8, 15, 16, 21, 23, 24, 27, 28, 29)]
    assert fall_up == [1, 15, 15, 19, 21, 27, 28, 28, 29, 29, 29]
    assert lay.owner_names == {0: "caller", 1: "object", 2: "firmware"}


def test_mapping_insert_classes() -> None:
    lay = heap_decoder.layouts()
    assert [lay.mapping_insert(s) for s in (32, 48, 496)] == [(0, 2), (0, 3), (0, 31)]
    assert (
        lay.mapping_insert(512) == (1, 0)
        and lay.mapping_insert(527) == (1, 0)
        and lay.mapping_insert(528) == (1, 1)
    )
    assert lay.mapping_insert(1023) == (1, 31) and lay.mapping_insert(1024) == (2, 0)
    assert lay.mapping_insert(HEAP_CHUNK_SIZE - 34816 - 16)[0] == lay.fl_count - 1


# ------------------------------------------------------------------ clean states


@pytest.mark.parametrize("page_size", [4096, 16384, 65536])
def test_a_fresh_arena_decodes_clean_and_adds_up(page_size: int) -> None:
    arena = Arena(8 * MiB, page_size)
    snap = heap_decoder.decode(arena)
    assert heap_oracle.problems(snap) == []
    assert snap.live_blocks() == {}
    parts = heap_oracle.accounting(snap)
    assert sum(parts.values()) == snap.pages.size == arena.pages_stats()["size"]
    assert parts["free_in_chunks"] == arena.heap_stats()["free_bytes"]
    assert parts["page_metadata"] == snap.pages.reserved_pages * page_size


def test_a_busy_arena_decodes_clean_and_matches(busy: tuple[Arena, dict[int, int]]) -> None:
    arena, live = busy
    snap = heap_decoder.decode(arena)
    assert heap_oracle.problems(snap) == []
    assert snap.live_blocks() == live
    parts = heap_oracle.accounting(snap)
    assert sum(parts.values()) == snap.pages.size
    assert parts["used"] == arena.heap_stats()["used_bytes"] == sum(live.values())
    assert [o.class_name for o in snap.objects.live] == ["IOMemTestObject"] * 3
    assert all(o.refcount == 1 for o in snap.objects.live)
    handles = {o.handle for o in snap.objects.live}
    assert handles == {load().object_handle(o.address) for o in snap.objects.live}


def test_freeing_everything_restores_the_canonical_state(busy: tuple[Arena, dict[int, int]]) -> None:
    arena, live = busy
    before = heap_decoder.decode(arena).canonical
    extra = [(arena.malloc(size), size) for size in (0, 100, 5000, 70000, 300000)]
    assert heap_decoder.decode(arena).canonical != before
    for pointer, size in reversed(extra):
        assert arena.free(pointer, size) == 0
    assert heap_decoder.decode(arena).canonical == before
    del live


# ------------------------------------------------------------------ damage: both walks see it


def _first(snap: heap_oracle.Snapshot, used: bool) -> heap_oracle.Block:
    state = snap.layouts.block_state["HEAP_BLOCK_USED" if used else "HEAP_BLOCK_FREE"]
    return next(b for c in snap.heap.chunks for b in c.blocks if b.state == state and b.size > 64)


def _u32(address: int) -> ctypes.c_uint32:
    return ctypes.c_uint32.from_address(address)


Damage = Callable[[Arena, heap_oracle.Snapshot], tuple[int, bytes]]


def _header_requested(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    block = _first(snap, used=True)
    return block.address + 8, (block.requested + 1).to_bytes(4, "little")


def _resealed_prev_size(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    """A wrong boundary tag with a valid checksum: only the tag rule can see it."""
    block = _first(snap, used=True)
    header = bytearray(arena.read(block.address, 16))
    prev = block.prev_size + 16
    check = heap_oracle.block_check(block.address, block.size, prev, block.requested, block.state)
    header[4:8] = prev.to_bytes(4, "little")
    header[14:16] = check.to_bytes(2, "little")
    return block.address, bytes(header)


def _resealed_prev_size_low(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    """The same, the tag too small (heap.mutant.13687, seed 8, tested the tag with `>`)."""
    block = next(b for c in snap.heap.chunks for b in c.blocks if b.prev_size >= 48 and b.state != 0xF4EE)
    header = bytearray(arena.read(block.address, 16))
    prev = block.prev_size - 16
    check = heap_oracle.block_check(block.address, block.size, prev, block.requested, block.state)
    header[4:8] = prev.to_bytes(4, "little")
    header[14:16] = check.to_bytes(2, "little")
    return block.address, bytes(header)


def _resealed_sentinel(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    """The home chunk's sentinel with a requested size and a valid checksum: only the rule
    that a sentinel requests nothing can see it."""
    (s,) = [c.sentinel for c in snap.heap.chunks if c.address == snap.heap.home_chunk]
    assert s is not None
    header = bytearray(arena.read(s.address, 16))
    check = heap_oracle.block_check(s.address, s.size, s.prev_size, 1, s.state)
    header[8:12] = (1).to_bytes(4, "little")
    header[14:16] = check.to_bytes(2, "little")
    return s.address, bytes(header)


def _used_map_bit(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    block = _first(snap, used=True)
    chunk = block.address & ~(HEAP_CHUNK_SIZE - 1)
    granule = (block.address - chunk) // 16
    used_map = chunk + snap.layouts.heap_chunk["used_map"].offset
    byte_address = used_map + granule // 8
    return byte_address, bytes([arena.read(byte_address, 1)[0] ^ (1 << granule % 8)])


def _free_back_link(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    block = _first(snap, used=False)
    return block.address + 16 + 8, (block.address + 4096).to_bytes(8, "little")


def _page_byte(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    state = Arena.state()
    free = snap.layouts.page_state["PAGE_STATE_FREE"]
    block = next(b for b in snap.pages.blocks if b.state == free and b.order >= 1)
    address = ctypes.cast(state.info, ctypes.c_void_p).value
    assert address is not None
    return address + block.index + 1, bytes([arena.read(address + block.index + 1, 1)[0] ^ 0x20])


def _page_next_link(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    state = Arena.state()
    order = next(o for o, lst in enumerate(snap.pages.free_lists) if lst)
    head = snap.pages.free_lists[order][0]
    address = ctypes.cast(state.free_prev, ctypes.c_void_p).value
    assert address is not None
    return address + 4 * head, (7).to_bytes(4, "little")


def _used_counter(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    field = snap.layouts.heap_state["used_bytes"]
    return heap_decoder.symbols().heap_state + field.offset, (snap.heap.counters["used_bytes"] + 1).to_bytes(
        8, "little"
    )


def _large_magic(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    return snap.heap.large[0].address + 8, b"LARH"


def _chunk_magic(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    return snap.heap.home_chunk, b"IOMCHUNX"


def _object_count(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    obj = snap.objects.live[0]
    return obj.address + snap.layouts.os_object["refcount"].offset, (0).to_bytes(4, "little")


def _sl_bitmap(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    fl = next(i for i, bits in enumerate(snap.heap.sl_bitmap) if bits)
    field = snap.layouts.heap_state["sl_bitmap"]
    return heap_decoder.symbols().heap_state + field.offset + 4 * fl, (0).to_bytes(4, "little")


def _busy_slab(snap: heap_oracle.Snapshot) -> heap_oracle.Slab:
    """A slab with a used slot and a free one (on a partial list, not alone on it or not)."""
    return next(s for s in snap.heap.slabs if s.used_slots() and s.free_count)


def _meta_address(snap: heap_oracle.Snapshot, slab: heap_oracle.Slab, index: int) -> int:
    """The address of entry ``index`` of the slab's meta[] (the stack, then requested[]), at
    its window's start."""
    return slab.address + heap_oracle.SLAB_META_ENTRY * index


def _slab_live_called_free(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)
    slot = slab.used_slots()[0]  # a live slot whose requested[] says free
    free = heap_oracle.HEAP_SLAB_SLOT_FREE.to_bytes(2, "little")
    return _meta_address(snap, slab, slab.slot_count + slot), free


def _slab_stack_entry(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = next(s for s in snap.heap.slabs if s.used_slots() and s.stack_height)
    slot = slab.used_slots()[0]  # the top of the free stack names a live slot
    return _meta_address(snap, slab, slab.stack_height - 1), slot.to_bytes(2, "little")


def _slab_requested(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)
    slot = slab.used_slots()[0]
    address = _meta_address(snap, slab, slab.slot_count + slot)
    return address, (slab.requested[slot] ^ 1).to_bytes(2, "little")


def _slab_mirror_owner(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    """A 64 KiB slab's mirror (its second unit's descriptor) naming another owner."""
    slab = next(
        s for s in snap.heap.slabs if heap_oracle.slab_span(s.size_class) == heap_oracle.HEAP_SLAB_BIG_SIZE
    )
    address = slab.descriptor + snap.layouts.heap_slab.size + snap.layouts.heap_slab["owner"].offset
    return address, bytes([arena.read(address, 1)[0] ^ 1])


def _stray_slab_descriptor(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    """A slab magic in the descriptor of the home chunk's unit 0 (its header: never a slab)."""
    chunk = snap.heap.home_chunk
    return chunk + snap.layouts.heap_chunk["slabs"].offset, heap_oracle.HEAP_SLAB_MAGIC.to_bytes(4, "little")


def _slab_partial_link(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)
    return slab.descriptor + snap.layouts.heap_slab["prev"].offset, (slab.descriptor + 16).to_bytes(
        8, "little"
    )


def _slab_partial_map(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)  # its class's bit cleared: the list is not empty
    field = snap.layouts.heap_state["slab_partial_map"]
    bits = snap.heap.slab_partial_map[slab.owner] & ~(1 << slab.size_class)
    return heap_decoder.symbols().heap_state + field.offset + 4 * slab.owner, bits.to_bytes(4, "little")


def _slab_slot_count(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)
    return slab.descriptor + snap.layouts.heap_slab["slot_count"].offset, (slab.slot_count - 1).to_bytes(
        2, "little"
    )


def _chunk_at_entry(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    home = snap.heap.home_chunk  # its chunk_at entry says "no chunk"
    field = snap.layouts.heap_state["chunk_at"]
    index = (home // snap.layouts.chunk_size) % field.count
    return (
        heap_decoder.symbols().heap_state + field.offset + 8 * index,
        heap_oracle.HEAP_CHUNK_AT_NONE.to_bytes(8, "little"),
    )


def _current_entry(snap: heap_oracle.Snapshot, owner: int, size_class: int) -> int:
    field = snap.layouts.heap_state["slab_current"]
    index = owner * snap.layouts.slab_classes + size_class
    return heap_decoder.symbols().heap_state + field.offset + 8 * index


def _current_out_of_reach(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = next(s for s in snap.heap.slabs if s.size_class > heap_oracle.slab_fall_up(0))
    return _current_entry(snap, slab.owner, 0), slab.descriptor.to_bytes(8, "little")  # class 0's: too big


def _current_not_a_slab(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)
    return _current_entry(snap, slab.owner, slab.size_class), (slab.descriptor + 16).to_bytes(8, "little")


def _current_of_extra_bit(arena: Arena, snap: heap_oracle.Snapshot) -> tuple[int, bytes]:
    slab = _busy_slab(snap)  # names a class it is not current for (class 27 is no class's but its own)
    field = snap.layouts.heap_slab["current_of"]
    stray = 1 << (snap.layouts.slab_classes - 1) if slab.size_class != snap.layouts.slab_classes - 1 else 1
    return slab.descriptor + field.offset, (slab.current_of | stray).to_bytes(field.size, "little")


DAMAGE: dict[str, tuple[Damage, str]] = {
    "current_of bit": (_current_of_extra_bit, "current_of"),
    "current slab out of reach": (_current_out_of_reach, "slab_current"),
    "current slab not a slab": (_current_not_a_slab, "is not a slab"),
    "chunk_at entry": (_chunk_at_entry, "chunk_at"),
    "slab live slot called free": (_slab_live_called_free, "free_count"),
    "slab free stack entry": (_slab_stack_entry, "free stack"),
    "slab requested": (_slab_requested, "used_bytes"),
    "slab mirror": (_slab_mirror_owner, "mirror of the slab below"),
    "stray slab descriptor": (_stray_slab_descriptor, "no slab covers"),
    "slab partial link": (_slab_partial_link, "back link"),
    "slab partial map": (_slab_partial_map, "slab_partial_map"),
    "slab descriptor": (_slab_slot_count, "descriptor damaged"),
    "header field": (_header_requested, "checksum"),
    "boundary tag": (_resealed_prev_size, "prev_size"),
    "boundary tag too small": (_resealed_prev_size_low, "prev_size"),
    "sentinel requested": (_resealed_sentinel, "sentinel"),
    "used_map bit": (_used_map_bit, "used_map"),
    "free list back link": (_free_back_link, "back link"),
    "page byte": (_page_byte, "pages"),
    "page free list link": (_page_next_link, "back link"),
    "heap counter": (_used_counter, "used_bytes"),
    "large header": (_large_magic, "large block"),
    "chunk magic": (_chunk_magic, "magic"),
    "object count": (_object_count, "count 0"),
    "TLSF bitmap": (_sl_bitmap, "sl_bitmap"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_seen_by_the_decoder_and_by_the_c_walks(
    busy: tuple[Arena, dict[int, int]], kind: str
) -> None:
    arena, _ = busy
    snap = heap_decoder.decode(arena)
    damage, words = DAMAGE[kind]
    address, data = damage(arena, snap)
    saved = arena.read(address, len(data))
    arena.write(address, data)
    try:
        found = heap_oracle.problems(heap_decoder.decode(arena))
        assert any(words in problem for problem in found), found
        assert c_problem(arena) is not None  # and the firmware's own walk agrees something is wrong
        with pytest.raises(OracleMismatch):
            heap_oracle.verify(heap_decoder.decode(arena))
    finally:
        arena.write(address, saved)
    assert heap_oracle.problems(heap_decoder.decode(arena)) == []
    assert c_problem(arena) is None


def test_a_wild_pointer_is_a_problem_not_a_crash(busy: tuple[Arena, dict[int, int]]) -> None:
    arena, _ = busy
    snap = heap_decoder.decode(arena)
    field = snap.layouts.heap_state["chunks"]
    address = heap_decoder.symbols().heap_state + field.offset
    saved = arena.read(address, 8)
    arena.write(address, (0xDEAD0000).to_bytes(8, "little"))
    try:
        found = heap_oracle.problems(heap_decoder.decode(arena))
        assert any("chunk list" in p for p in found), found
    finally:
        arena.write(address, saved)
    assert heap_oracle.problems(heap_decoder.decode(arena)) == []
