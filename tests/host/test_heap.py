"""IOMalloc / IOMallocZero / IOFree and the IONew family (driverkit-memory.md §1-§5) on the host.

The heap (firmware/mm/heap.c) runs on a host buffer through ctypes; every C-level
observable of the spec's checks is tested here, and a Hypothesis state machine drives
random alloc/zalloc/free/bad-free sequences against a Python model of the live blocks.
"""

from __future__ import annotations

import ctypes
import itertools
import random
from collections.abc import Iterator

import heap_decoder
import pytest
from hostlib import (
    HEAP_ALIGN,
    HEAP_BLOCK_HEADER_SIZE,
    HEAP_CHUNK_SIZE,
    HEAP_FL_SHIFT,
    HEAP_LARGE_MIN,
    HEAP_MIN_BLOCK,
    HEAP_SL_SHIFT,
    LIB_PATH,
    PAGE_STATE_CONTINUATION,
    Arena,
    HeapBlock,
    PageAllocator,
    compile_shim,
    kIOReturnBadArgument,
    kIOReturnSuccess,
    load,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from harness.oracle import heap as heap_oracle
from harness.oracle.pages import page_byte, page_order, page_state

MiB = 1024 * 1024
# HEAP_CHUNK_FIRST: sizeof(struct heap_chunk): links and used_map to a line (32,832), then slabs[128] of 64
CHUNK_USABLE_OFFSET = 41024
HEAP_SLAB_MAX = heap_oracle.HEAP_SLAB_MAX  # requests up to this size take a slab's slot


def block_size(requested: int) -> int:
    """The block a small request takes: header + request, 16-aligned, at least the minimum."""
    return max(HEAP_MIN_BLOCK, (requested + HEAP_BLOCK_HEADER_SIZE + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1))


def class_starts() -> list[int]:
    """The lower bound of every TLSF size class up to the large threshold."""
    starts = list(range(0, 1 << HEAP_FL_SHIFT, HEAP_ALIGN))
    for top in range(HEAP_FL_SHIFT, 17):
        step = 1 << (top - HEAP_SL_SHIFT)
        starts += [(1 << top) + i * step for i in range(1 << HEAP_SL_SHIFT)]
    return starts


@pytest.fixture
def arena() -> Arena:
    return Arena(16 * MiB, 4096)


def counters(arena: Arena) -> tuple[int, int]:
    stats = arena.heap_stats()
    return stats["allocs"], stats["frees"]


# ------------------------------------------------------------------ init


def test_init_needs_the_page_allocator() -> None:
    lib = load()
    state = PageAllocator.in_dll(lib, "pages_state")
    saved = state.initialized
    state.initialized = 0
    try:
        assert lib.heap_init() != kIOReturnSuccess
    finally:
        state.initialized = saved


@pytest.mark.parametrize("page_size", [4096, 16384, 65536])
def test_fresh_heap_is_one_free_chunk(page_size: int) -> None:
    arena = Arena(16 * MiB, page_size)
    stats = arena.heap_stats()
    assert stats["chunks"] == 1
    assert stats["free_blocks"] == 1
    assert stats["free_bytes"] == HEAP_CHUNK_SIZE - CHUNK_USABLE_OFFSET - HEAP_BLOCK_HEADER_SIZE
    assert stats["used_bytes"] == stats["used_blocks"] == stats["allocs"] == stats["frees"] == 0
    arena.check_all()
    chunk = arena.malloc(HEAP_LARGE_MIN)  # a big request: the chunk's free block holds it
    # 16 bytes more than the free tail's payload: a page run of its own, pointer 16 bytes in
    over = arena.heap_stats()["free_bytes"]
    pointer = arena.malloc(over)
    assert arena.heap_stats()["large_blocks"] == 1 and arena.heap_stats()["chunks"] == 1
    assert pointer % page_size == HEAP_BLOCK_HEADER_SIZE
    assert chunk & ~(HEAP_CHUNK_SIZE - 1) != pointer & ~(HEAP_CHUNK_SIZE - 1)
    assert arena.free(pointer, over) == kIOReturnSuccess
    assert arena.free(chunk, HEAP_LARGE_MIN) == kIOReturnSuccess


# ------------------------------------------------------------------ §1 IOMalloc / IOMallocZero


def test_pointers_are_16_aligned_writable_and_disjoint(arena: Arena) -> None:
    sizes = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4095, 4096, 65535, 65536, 100000, 300000]
    blocks = []
    for index, size in enumerate(sizes):
        pointer = arena.malloc(size)
        assert pointer != 0 and pointer % 16 == 0
        arena.fill(pointer, index + 1, size)
        blocks.append((pointer, size, index + 1))
    spans = sorted((p, p + max(s, 1)) for p, s, _ in blocks)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    for pointer, size, byte in blocks:
        assert arena.read(pointer, size) == bytes([byte]) * size
        assert arena.lookup(pointer) == size
    arena.check_all()


@pytest.mark.parametrize("size", [8, 200, 5000, 65535, 65536, 200000])
def test_zalloc_is_zero_after_dirty_reuse(arena: Arena, size: int) -> None:
    pointer = arena.malloc(size)
    arena.fill(pointer, 0xAA, size)
    assert arena.free(pointer, size) == kIOReturnSuccess
    again = arena.zalloc(size)
    assert again == pointer  # the same memory came back, so the zeroing is what is tested
    assert arena.read(again, size) == bytes(size)
    arena.check_all()


def test_malloc_zero_gives_unique_minimum_blocks(arena: Arena) -> None:
    first, second = arena.malloc(0), arena.malloc(0)
    assert first and second and first != second
    assert first % 16 == 0 and second % 16 == 0
    assert abs(first - second) >= HEAP_ALIGN  # 16-byte slots of one slab, no header between
    assert arena.lookup(first) == 0
    assert arena.free(second, 1) == kIOReturnBadArgument
    assert arena.free(first, 0) == kIOReturnSuccess
    assert arena.free(second, 0) == kIOReturnSuccess
    arena.check_all()


@pytest.mark.parametrize(
    "size",
    [2**64 - 1, 2**64 - 16, 2**64 - 17, 2**64 - 4096, 2**64 - 4113, 2**63, 2**40, 64 * MiB],
)
def test_huge_sizes_return_null_and_change_nothing(arena: Arena, size: int) -> None:
    before = arena.heap_stats()
    assert arena.malloc(size) == 0
    assert arena.zalloc(size) == 0
    # Both calls entered the allocator and failed: counted as failures, nothing else moved.
    assert arena.heap_stats() == before | {"alloc_failures": before["alloc_failures"] + 2}
    arena.check_all()


def test_small_block_sizes_at_every_class_boundary(arena: Arena) -> None:
    requests = {0, HEAP_LARGE_MIN - 1}
    for start in class_starts():
        for delta in (-17, -16, -15, -1, 0, 1, 15, 16, 17):
            request = start - HEAP_BLOCK_HEADER_SIZE + delta
            if 0 <= request < HEAP_LARGE_MIN:
                requests.add(request)
    baseline = arena.snapshot()
    for request in sorted(requests):
        free_before = arena.heap_stats()["free_bytes"]
        pointer = arena.malloc(request)
        assert pointer % 16 == 0
        # a slab request on an empty heap makes its slab: one block of its class's span (32 KiB
        # up to 256 bytes, 64 KiB above), whatever the size
        slab_span = heap_oracle.slab_span(heap_oracle.slab_class(request))
        taken = slab_span if request <= HEAP_SLAB_MAX else block_size(request)
        assert arena.heap_stats()["free_bytes"] == free_before - taken, request
        assert arena.lookup(pointer) == request
        arena.fill(pointer, 0x5A, request)
        assert arena.free(pointer, request) == kIOReturnSuccess
        assert arena.snapshot() == baseline, request
    arena.check_all()


def test_large_threshold(arena: Arena) -> None:
    """Below HEAP_LARGE_MIN a request takes a chunk's block, adding a chunk when none fits; at
    HEAP_LARGE_MIN and above it takes a block of a chunk the heap already holds when one fits,
    else a page run of its own: a big request never adds a chunk."""
    small = arena.malloc(HEAP_LARGE_MIN - 1)
    stats = arena.heap_stats()
    assert stats["large_blocks"] == 0 and stats["used_blocks"] == 1
    big = arena.malloc(HEAP_LARGE_MIN)
    stats = arena.heap_stats()
    assert stats["large_blocks"] == 0 and stats["used_blocks"] == 2 and stats["chunks"] == 1
    assert arena.lookup(big) == HEAP_LARGE_MIN
    # the most of the chunk's free tail that the good-fit search is sure to find
    lay = heap_decoder.layouts()
    rest = lay.list_floor(*lay.mapping_insert(stats["free_bytes"])) - HEAP_BLOCK_HEADER_SIZE
    assert rest >= HEAP_LARGE_MIN
    tail = arena.malloc(rest)
    stats = arena.heap_stats()
    assert stats["free_bytes"] < HEAP_LARGE_MIN and stats["large_blocks"] == 0 and stats["chunks"] == 1
    large = arena.malloc(HEAP_LARGE_MIN)  # no held block fits: pages, not a chunk
    stats = arena.heap_stats()
    assert stats["large_blocks"] == 1 and stats["chunks"] == 1
    assert stats["large_pages"] == (HEAP_LARGE_MIN + HEAP_BLOCK_HEADER_SIZE + 4095) // 4096
    other = arena.malloc(HEAP_LARGE_MIN - 1)  # no held block fits: a second chunk
    assert arena.heap_stats()["chunks"] == 2
    arena.check_all()
    for pointer, size in ((small, HEAP_LARGE_MIN - 1), (big, HEAP_LARGE_MIN), (tail, rest)):
        assert arena.free(pointer, size + 1) == kIOReturnBadArgument  # a big block's size is checked too
        assert arena.free(pointer, size) == kIOReturnSuccess
    assert arena.free(large, HEAP_LARGE_MIN) == kIOReturnSuccess
    assert arena.free(other, HEAP_LARGE_MIN - 1) == kIOReturnSuccess
    assert arena.heap_stats()["chunks"] == 1
    arena.check_all()


@pytest.mark.parametrize("request_size", list(range(0, 512, 16)))
def test_a_freed_small_block_is_reused_for_the_same_size(arena: Arena, request_size: int) -> None:
    # Below 512 bytes every class is exact, so the good-fit search finds the block just freed;
    # up to 256 bytes the slab hands out its lowest free slot, the one just freed.
    first = arena.malloc(request_size)
    guard = arena.malloc(request_size)  # keeps the freed block from merging with the free tail,
    assert arena.free(first, request_size) == kIOReturnSuccess  # and its slab from emptying
    assert arena.malloc(request_size) == first
    assert arena.free(guard, request_size) == kIOReturnSuccess


# ------------------------------------------------------------------ §2 IOFree


def test_free_restores_usage_and_counts(arena: Arena) -> None:
    baseline = arena.snapshot()
    allocs, frees = counters(arena)
    pointer = arena.malloc(100)
    assert arena.heap_stats()["used_bytes"] == 100
    assert arena.free(pointer, 100) == kIOReturnSuccess
    assert arena.snapshot() == baseline
    assert counters(arena) == (allocs + 1, frees + 1)


@pytest.mark.parametrize("size", [0, 24, 100, 4000, 65535, 65536, 200000])
def test_wrong_size_and_double_free_are_rejected_and_change_nothing(arena: Arena, size: int) -> None:
    pointer = arena.malloc(size)
    arena.fill(pointer, 0x11, size)
    before = arena.heap_stats()
    for wrong in {size + 1, size - 1, size + 16, 0, 2**64 - 1} - {size}:
        if wrong >= 0:
            assert arena.free(pointer, wrong) == kIOReturnBadArgument
    assert arena.heap_stats() == before
    assert arena.read(pointer, size) == b"\x11" * size
    arena.check_all()
    assert arena.free(pointer, size) == kIOReturnSuccess
    after = arena.heap_stats()
    assert arena.free(pointer, size) == kIOReturnBadArgument
    assert arena.heap_stats() == after
    arena.check_all()


HEAP_OWNER_OBJECT, HEAP_OWNER_FIRMWARE = 1, 2  # heap.h enum heap_owner


@pytest.mark.parametrize("size", [64, 24, 65536, 200000, HEAP_CHUNK_SIZE])
@pytest.mark.parametrize("owner", [HEAP_OWNER_OBJECT, HEAP_OWNER_FIRMWARE])
def test_iofree_refuses_another_owners_block(arena: Arena, size: int, owner: int) -> None:
    """C1 item 1: IOFree takes only what IOMalloc handed out. A block of the object allocator
    or of the firmware's own tables, freed with its exact pointer and size, is refused and
    nothing changes; its owner frees it. The decoder reports the owner (small: the block
    state; in a chunk block or a page run (HEAP_CHUNK_SIZE: more than a chunk holds): the
    magic; heap.mutant.583, seed 4, left the firmware's page-run magic out unnoticed)."""
    lib = load()
    pointer = int(lib.heap_alloc(size, owner, True) or 0)
    assert pointer
    want = {HEAP_OWNER_OBJECT: "object", HEAP_OWNER_FIRMWARE: "firmware"}[owner]
    assert heap_decoder.decode(arena).block_owners() == {pointer: want}
    before = arena.heap_stats()
    assert arena.free(pointer, size) == kIOReturnBadArgument
    assert lib.heap_free(pointer, size, 0) == kIOReturnBadArgument  # HEAP_OWNER_CALLER
    other = HEAP_OWNER_FIRMWARE if owner == HEAP_OWNER_OBJECT else HEAP_OWNER_OBJECT
    assert lib.heap_free(pointer, size, other) == kIOReturnBadArgument
    assert arena.heap_stats() == before
    arena.check_all()
    assert lib.heap_free(pointer, size, owner) == kIOReturnSuccess
    arena.check_all()


def test_free_null_is_a_no_op(arena: Arena) -> None:
    before = arena.heap_stats()
    for size in (0, 16, 2**64 - 1):
        assert arena.free(0, size) == kIOReturnSuccess
    assert arena.heap_stats() == before


def test_pointers_into_a_small_block_are_rejected(arena: Arena) -> None:
    pointer = arena.malloc(300)  # past the slabs: a block with a header
    neighbour = arena.malloc(300)
    before = arena.heap_stats()
    for offset in (1, 8, 16, 32, 128, 240, 256):
        for size in (300, 300 - offset, 0):
            assert arena.free(pointer + offset, size) == kIOReturnBadArgument
    assert arena.free(pointer - 16, 300) == kIOReturnBadArgument  # the header itself
    # A perfect copy of a live header planted inside the block does not make a block start.
    header = arena.read(pointer - HEAP_BLOCK_HEADER_SIZE, HEAP_BLOCK_HEADER_SIZE)
    arena.write(pointer + 48, header)
    assert arena.free(pointer + 64, 300) == kIOReturnBadArgument
    assert arena.heap_stats() == before
    arena.check_all()
    assert arena.free(neighbour, 300) == kIOReturnSuccess
    assert arena.free(pointer, 300) == kIOReturnSuccess


@pytest.mark.parametrize("size", [0, 16, 100, 256])
def test_pointers_into_a_slab_are_rejected(arena: Arena, size: int) -> None:
    """A slab has no header per slot: the slot's start is all that frees, and only while the
    slab's requested[] says live; inside a slot, the slab header, the tail past the last slot and
    a free slot are refused, whatever size is named."""
    pointer, neighbour = arena.malloc(size), arena.malloc(size)
    slab = heap_decoder.decode(arena).heap.slabs[0]
    assert slab.slot(0) == pointer and slab.slot(1) == neighbour
    free_slot = slab.slot(2)
    before = arena.heap_stats()
    for address in (
        *(pointer + offset for offset in range(16, slab.slot_size, 16)),  # inside the slot
        slab.address,  # the window's start: meta[]
        slab.address + slab.first - 16,
        slab.slot(slab.slot_count),  # past the last slot: the next block's header
        free_slot,  # never handed out
    ):
        for wrong in (size, 0, 16):
            assert arena.free(address, wrong) == kIOReturnBadArgument, hex(address - slab.address)
        assert arena.lookup(address) is None
    assert arena.free(pointer, size + 1) == kIOReturnBadArgument  # wrong size
    assert arena.heap_stats() == before
    arena.check_all()
    assert arena.free(pointer, size) == kIOReturnSuccess
    assert arena.free(pointer, size) == kIOReturnBadArgument  # double free: the bit is set
    assert arena.free(neighbour, size) == kIOReturnSuccess  # the slab empties: current, it stays
    assert arena.free(neighbour, size) == kIOReturnBadArgument  # double free into the empty slab
    arena.check_all()
    arena.settle()  # the request's end: the empty slab goes
    assert arena.free(neighbour, size) == kIOReturnBadArgument  # a pointer into freed memory
    assert heap_decoder.decode(arena).heap.slabs == ()
    arena.check_all()


def test_a_slab_made_again_of_an_empty_one_keeps_no_stale_length(arena: Arena) -> None:
    """A slab is written whole when it is made (slot 0 taken, every other slot on the stack,
    slot 1 on top, every other requested[] entry free), also when it is made of an empty slab
    of another class: the old class's lengths are gone, so a pointer that was a slot of the old
    class and is one of the new is refused with its old length (a double free), and taken
    with the new one only once handed out."""
    pointers = [arena.malloc(100) for _ in range(5)]  # a 112-byte class: slots 0..4
    for pointer in pointers:
        assert arena.free(pointer, 100) == kIOReturnSuccess  # empty: kept (H7)
    (old,) = heap_decoder.decode(arena).heap.slabs
    first = arena.malloc(16)  # class 0 cannot fall up to 112 bytes: the empty slab made again
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert slab.address == old.address and slab.size_class == 0 and first == slab.slot(0)
    assert slab.free_count == slab.slot_count - 1
    assert list(slab.stack[: slab.free_count]) == list(range(slab.slot_count - 1, 0, -1))
    assert slab.used_slots() == [0]
    assert all(length == heap_oracle.HEAP_SLAB_SLOT_FREE for length in slab.requested[1:])
    checked_by_both(arena)
    # pointers[1] (old slot 1, 112 bytes in) is new slot 7: free, whatever the old class said
    stale = pointers[1]
    assert (stale - slab.slot(0)) % 16 == 0
    before = arena.heap_stats()
    assert arena.free(stale, 100) == kIOReturnBadArgument
    assert arena.free(stale, 16) == kIOReturnBadArgument
    assert arena.heap_stats() == before
    assert arena.malloc(16) == slab.slot(1)  # the stack's top: slot 1, then 2, ...
    assert arena.free(slab.slot(1), 16) == kIOReturnSuccess
    assert arena.free(first, 16) == kIOReturnSuccess
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    checked_by_both(arena)


def test_pointers_into_a_large_block_are_rejected(arena: Arena) -> None:
    size = 49 * 4096  # a run of 32 + 16 + 2 pages once the header is counted
    pointer = arena.malloc(size)
    run = pointer - HEAP_BLOCK_HEADER_SIZE
    header = arena.read(run, HEAP_BLOCK_HEADER_SIZE)
    before = arena.heap_stats()
    for page in (1, 31, 32, 40, 48, 49):
        plant = run + page * 4096
        arena.write(plant, header)
        assert arena.free(plant + HEAP_BLOCK_HEADER_SIZE, size) == kIOReturnBadArgument
    assert arena.free(pointer + 16, size) == kIOReturnBadArgument
    assert arena.heap_stats() == before
    arena.check_all()
    assert arena.free(pointer, size) == kIOReturnSuccess
    arena.check_all()


def test_pointers_outside_any_block_are_rejected(arena: Arena) -> None:
    outside = ctypes.create_string_buffer(64)
    state = Arena.state()
    chunk = arena.malloc(16) & ~(HEAP_CHUNK_SIZE - 1)
    before = arena.heap_stats()
    for address in (
        (ctypes.addressof(outside) + 15) & ~15,  # not in the page range at all
        16,
        state.base + 16,  # the page allocator's metadata
        chunk + 16,  # the chunk header
        chunk + HEAP_CHUNK_SIZE - 16 + 16,  # past the sentinel
        chunk + CHUNK_USABLE_OFFSET + 16 + 4096,  # inside the free tail block
    ):
        assert arena.free(address, 16) == kIOReturnBadArgument
        assert arena.lookup(address) is None
    assert arena.heap_stats() == before
    arena.check_all()


@pytest.mark.parametrize("size_class", range(heap_oracle.slab_class(HEAP_SLAB_MAX) + 1))
def test_every_slot_of_a_full_slab_is_found_and_freed(arena: Arena, size_class: int) -> None:
    """IOFree finds the slot index without a division (heap.c SLOT_RECIPROCAL, in slab_rows): every slot of
    a full slab of each class (32 KiB and 64 KiB slabs) is looked up and freed, and every other
    16-byte offset inside it is refused, so the multiply-shift is exact over the whole window."""
    size = heap_oracle.slab_slot_size(size_class)
    count = heap_decoder.layouts().slot_count(size_class)
    pointers = [arena.malloc(size) for _ in range(count - 1)]
    arena.check_all()  # one slot left: still on its partial list (heap.mutant.7153, seed 5)
    pointers.append(arena.malloc(size))
    slab = heap_decoder.decode(arena).heap.slabs[0]
    assert pointers == [slab.slot(i) for i in range(count)] and slab.free_count == 0
    for pointer in pointers:
        assert arena.lookup(pointer) == size
        for inside in range(pointer + HEAP_ALIGN, pointer + size, HEAP_ALIGN):
            assert arena.lookup(inside) is None
    for pointer in reversed(pointers):
        assert arena.free(pointer, size) == kIOReturnSuccess
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    arena.check_all()


SLAB_CLASSES = heap_oracle.slab_class(HEAP_SLAB_MAX) + 1


def _slab_class_of(arena: Arena, pointer: int) -> int:
    """The class of the slab whose slot ``pointer`` is (decoded from the arena)."""
    return next(
        s.size_class
        for s in heap_decoder.decode(arena).heap.slabs
        if any(s.slot(i) == pointer for i in range(s.slot_count))
    )


def _fill_home_chunk(arena: Arena) -> list[tuple[int, int]]:
    """Blocks that leave the home chunk no free block of 4 KiB or more (halving requests that
    still fit it, down to the smallest above the slabs; one that would take pages or another
    chunk is freed again)."""
    home = heap_decoder.decode(arena).heap.home_chunk
    held: list[tuple[int, int]] = []
    size = HEAP_CHUNK_SIZE // 2
    while size > HEAP_SLAB_MAX:
        pointer = arena.malloc(size)
        assert pointer
        if home <= pointer < home + HEAP_CHUNK_SIZE:
            held.append((pointer, size))
        else:
            assert arena.free(pointer, size) == kIOReturnSuccess
            size //= 2
    assert arena.heap_stats()["chunks"] == 1
    return held


def test_an_emptied_slab_stays_until_the_heap_settles(arena: Arena) -> None:
    """H7: the free that empties a slab keeps it, current for its class or not (no slab made
    again when the class comes back), both walks accept it, and heap_settle() (the agent's,
    at each request's end) gives back the empty ones and no other."""
    pointer = arena.malloc(100)
    assert arena.free(pointer, 100) == kIOReturnSuccess
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert slab.free_count == slab.slot_count and slab.current_of
    checked_by_both(arena)
    assert arena.malloc(100) == pointer  # the same slab, its slot back on top of the stack
    assert arena.free(pointer, 100) == kIOReturnSuccess
    space = arena.space()
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    assert arena.space() == space  # heap_space counts the settled heap already
    checked_by_both(arena)
    # a slab that is no class's current slab any more, emptied: kept as well
    first = arena.malloc(100)
    (slab,) = heap_decoder.decode(arena).heap.slabs
    pointers = [first] + [arena.malloc(100) for _ in range(slab.slot_count)]  # the last: a second slab
    slabs = heap_decoder.decode(arena).heap.slabs
    assert len(slabs) == 2
    older = next(s for s in slabs if s.address == slab.address)
    assert not older.current_of
    for pointer in pointers[:-1]:
        assert arena.free(pointer, 100) == kIOReturnSuccess
    kept = {s.address: s.free_count == s.slot_count for s in heap_decoder.decode(arena).heap.slabs}
    assert kept == {slab.address: True, next(s.address for s in slabs if s.address != slab.address): False}
    checked_by_both(arena)
    arena.settle()
    (newer,) = heap_decoder.decode(arena).heap.slabs
    assert newer.address != slab.address and newer.free_count == newer.slot_count - 1
    checked_by_both(arena)
    assert arena.free(pointers[-1], 100) == kIOReturnSuccess
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    checked_by_both(arena)


def _spare_heads(arena: Arena) -> list[tuple[int, int]]:
    """(address, value) of every heap_state.slab_spare head."""
    snap = heap_decoder.decode(arena)
    field = snap.layouts.heap_state["slab_spare"]
    base = heap_decoder.symbols().heap_state + field.offset
    return [(base + 8 * i, int.from_bytes(arena.read(base + 8 * i, 8), "little")) for i in range(field.count)]


def test_a_big_slab_beside_a_free_block_goes_at_once_and_one_between_used_blocks_stays(
    arena: Arena,
) -> None:
    """H7 for the 64 KiB span: the free that empties a slab beside a free block gives it back
    (it merges: no hole), one between used blocks stays, on its spare list, until the heap
    settles."""
    pointer = arena.malloc(1000)
    assert arena.free(pointer, 1000) == kIOReturnSuccess  # the pile's free edge: gone at once
    assert heap_decoder.decode(arena).heap.slabs == ()
    checked_by_both(arena)
    low = arena.malloc(1000)  # 64 KiB slabs of two classes, piled against the chunk's end
    high = arena.malloc(320)  # falls up to 640-byte slots at most: a slab of its own
    assert {s.size_class for s in heap_decoder.decode(arena).heap.slabs} == {
        heap_oracle.slab_class(1000),
        heap_oracle.slab_class(320),
    }
    slabs = {s.size_class: s.address for s in heap_decoder.decode(arena).heap.slabs}
    upper = max(slabs.values())
    pointer = high if slabs[heap_oracle.slab_class(320)] == upper else low
    length = 320 if pointer == high else 1000
    assert arena.free(pointer, length) == kIOReturnSuccess  # the upper one: the sentinel above, a slab below
    (kept,) = [s for s in heap_decoder.decode(arena).heap.slabs if s.address == upper]
    assert kept.free_count == kept.slot_count and kept.spare == 1
    assert heap_decoder.decode(arena).heap.slab_spare == {(0, 1): (kept.descriptor,)}
    checked_by_both(arena)
    other, other_length = (low, 1000) if pointer == high else (high, 320)
    assert arena.free(other, other_length) == kIOReturnSuccess  # beside the free tail: gone at once
    assert [s.address for s in heap_decoder.decode(arena).heap.slabs] == [upper]
    checked_by_both(arena)
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    assert all(value == 0 for _, value in _spare_heads(arena))
    checked_by_both(arena)


def test_a_new_slab_reuses_an_empty_one_of_its_span(arena: Arena) -> None:
    """A class with no partial slab in its reach takes an empty slab of its span, header
    written again for its class, before it carves one; a listed slab that was taken from since
    (not empty) stays listed until it is reused or the heap settles, and is not given back."""
    pointer = arena.malloc(100)
    assert arena.free(pointer, 100) == kIOReturnSuccess
    (empty,) = heap_decoder.decode(arena).heap.slabs
    assert arena.malloc(100) == pointer  # taken from again: still listed, no longer empty
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert slab.spare == 1 and slab.free_count == slab.slot_count - 1
    checked_by_both(arena)
    arena.settle()  # a listed slab that is not empty leaves the list and stays
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert slab.address == empty.address and slab.spare == 0
    checked_by_both(arena)
    assert arena.free(pointer, 100) == kIOReturnSuccess
    blocks_before = heap_decoder.decode(arena).heap.chunks[0].blocks
    far = arena.malloc(16)  # class 0 falls up to class 1 at most: not to 100 bytes' class
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert slab.address == empty.address and slab.size_class == 0 and slab.spare == 0
    assert far == slab.slot(0)
    assert len(heap_decoder.decode(arena).heap.chunks[0].blocks) == len(blocks_before)  # nothing carved
    checked_by_both(arena)
    assert arena.free(far, 16) == kIOReturnSuccess
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    checked_by_both(arena)


def test_a_damaged_spare_list_is_found_by_both_walks(arena: Arena) -> None:
    """An empty slab with no spare mark, and a marked slab missing from its list: heap_check
    and the decoder report both (heap_settle() would miss such a slab)."""
    pointer = arena.malloc(100)
    assert arena.free(pointer, 100) == kIOReturnSuccess
    (slab,) = heap_decoder.decode(arena).heap.slabs
    layouts = heap_decoder.decode(arena).layouts
    mark = slab.descriptor + layouts.heap_slab["spare"].offset
    (head,) = [address for address, value in _spare_heads(arena) if value == slab.descriptor]
    try:
        arena.write(mark, bytes(1))
        assert "spare" in (arena.heap_check().error or "")
        assert any("not marked spare" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    finally:
        arena.write(mark, bytes([1]))
    try:
        arena.write(head, bytes(8))
        assert arena.heap_check().error == "slab marked spare missing from the spare lists"
        assert any("on no spare list" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    finally:
        arena.write(head, slab.descriptor.to_bytes(8, "little"))
    checked_by_both(arena)


def test_the_heap_settles_before_it_takes_a_chunk(arena: Arena) -> None:
    """An empty current slab is free memory for any request, not only its class's: a block
    that finds no room takes the slab's instead of a new chunk. And a chunk that holds only an
    empty slab counts as given back in heap_space (held, free, largest) before the request's
    end gives it back."""
    pointer = arena.malloc(16)  # a slab at the top of the home chunk
    blocks = _fill_home_chunk(arena)
    assert arena.free(pointer, 16) == kIOReturnSuccess  # kept: the class's current slab
    block = arena.malloc(16384)
    assert arena.heap_stats()["chunks"] == 1, "took a chunk while an empty slab was kept"
    assert block & ~(32 * 1024 - 1) <= pointer < block + 16384
    checked_by_both(arena)
    assert arena.free(block, 16384) == kIOReturnSuccess
    pointer = arena.malloc(16)  # no room in the home chunk: a slab in a second chunk
    assert arena.heap_stats()["chunks"] == 2
    assert arena.free(pointer, 16) == kIOReturnSuccess
    assert arena.heap_stats()["chunks"] == 2  # kept, with its chunk, until the request ends
    space = arena.space()
    assert space == heap_decoder.decode(arena).space(4096)
    assert space[0] == HEAP_CHUNK_SIZE  # the second chunk counts as given back
    arena.settle()
    assert arena.heap_stats()["chunks"] == 1
    assert arena.space() == space
    for pointer, size in blocks:
        assert arena.free(pointer, size) == kIOReturnSuccess
    checked_by_both(arena)


def test_heap_space_counts_every_owners_free_slots_and_the_callers_largest(arena: Arena) -> None:
    """The benchmark's probe (heap_space, what the fragmentation figures come from), against
    the decoder: free bytes are the free blocks and the free slots of every owner's slabs;
    the largest request is the largest free block's payload or the slot of a caller's partial
    slab; held is the chunks and large pages (heap.mutant.8511 counted the caller's slabs only)."""
    lib = load()
    lib.heap_space.argtypes = [ctypes.POINTER(ctypes.c_uint64)] * 3
    caller = [arena.malloc(64) for _ in range(3)]
    owned = [
        (int(lib.heap_alloc(size, owner, False) or 0), size, owner)
        for size, owner in ((1024, HEAP_OWNER_OBJECT), (1024, HEAP_OWNER_OBJECT), (500, HEAP_OWNER_FIRMWARE))
    ]
    big = arena.malloc(HEAP_CHUNK_SIZE)  # a large block: its pages count as held
    held, free, largest = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
    lib.heap_space(ctypes.byref(held), ctypes.byref(free), ctypes.byref(largest))
    snap = heap_decoder.decode(arena)
    lay = snap.layouts
    free_state = lay.block_state["HEAP_BLOCK_FREE"]
    free_blocks = [b.size for c in snap.heap.chunks for b in c.blocks if b.state == free_state]
    slots = sum(s.free_count * s.slot_size for s in snap.heap.slabs)
    assert {s.owner for s in snap.heap.slabs if s.free_count} == set(lay.owner_names)  # all three
    assert free.value == sum(free_blocks) + slots
    # the chunk's free tail: a request of its whole payload is not sure to be found (the
    # good-fit search rounds it up past the tail's list); one of the list's floor is
    tail = max(free_blocks)
    floor = lay.list_floor(*lay.mapping_insert(tail))
    assert floor < tail and largest.value == floor - HEAP_BLOCK_HEADER_SIZE
    assert (held.value, free.value, largest.value) == snap.space(4096)
    large_pages = sum(-(-(b.requested + HEAP_BLOCK_HEADER_SIZE) // 4096) for b in snap.heap.large)
    assert large_pages and held.value == len(snap.heap.chunks) * HEAP_CHUNK_SIZE + large_pages * 4096
    for pointer in caller:
        assert arena.free(pointer, 64) == kIOReturnSuccess
    for pointer, size, owner in owned:
        assert lib.heap_free(pointer, size, owner) == kIOReturnSuccess
    assert arena.free(big, HEAP_CHUNK_SIZE) == kIOReturnSuccess
    arena.check_all()


@pytest.mark.parametrize("size_class", range(SLAB_CLASSES))
def test_a_request_falls_up_to_twice_its_slot_size_and_no_further(arena: Arena, size_class: int) -> None:
    """heap.h HEAP_SLAB_FALL_UP, one row of fall_up_mask per class: with no partial slab of its
    own class, a request takes a slot of a class whose slots are at most twice its own (here
    the farthest such class), and with only a slab of the class past that, it makes a slab of
    its own class. Only a performance rule, so nothing else notices when a row is wrong."""
    own, top = heap_oracle.slab_slot_size(size_class), heap_oracle.slab_fall_up(size_class)
    far = arena.malloc(heap_oracle.slab_slot_size(top))
    pointer = arena.malloc(own)
    assert _slab_class_of(arena, pointer) == top, "took a slot of the farthest class it may"
    assert arena.free(pointer, own) == kIOReturnSuccess
    assert arena.free(far, heap_oracle.slab_slot_size(top)) == kIOReturnSuccess
    arena.settle()  # the emptied slab was current for both classes: gone at the request's end
    if top + 1 < SLAB_CLASSES:
        past = arena.malloc(heap_oracle.slab_slot_size(top + 1))
        pointer = arena.malloc(own)
        assert _slab_class_of(arena, pointer) == size_class, "made its own slab, not one past its reach"
        assert arena.free(pointer, own) == kIOReturnSuccess
        assert arena.free(past, heap_oracle.slab_slot_size(top + 1)) == kIOReturnSuccess
    arena.settle()
    assert heap_decoder.decode(arena).heap.slabs == ()
    arena.check_all()


def test_a_damaged_header_is_reported_not_followed(arena: Arena) -> None:
    pointer = arena.malloc(2400)  # past the slabs: a block with a header
    header = HeapBlock.from_address(pointer - HEAP_BLOCK_HEADER_SIZE)
    header.requested = 2401  # as an overflow from the block below would
    assert arena.free(pointer, 2401) == kIOReturnBadArgument
    assert arena.free(pointer, 2400) == kIOReturnBadArgument
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "block header checksum mismatch"
    assert result.where == pointer - HEAP_BLOCK_HEADER_SIZE
    header.requested = 2400
    arena.check_all()
    assert arena.free(pointer, 2400) == kIOReturnSuccess


@pytest.mark.parametrize(
    ("name", "error", "problem"),
    [
        ("slot_size", "slab descriptor damaged", "descriptor damaged"),
        ("slot_count", "slab descriptor damaged", "descriptor damaged"),
        ("first", "slab descriptor damaged", "descriptor damaged"),
        ("reciprocal", "slab geometry wrong", "geometry"),
        ("meta", "slab descriptor names another window", "names window"),
        ("mirror", "slab descriptor names another window", "mirror mark"),
    ],
)
def test_a_damaged_slab_descriptor_is_reported_by_both_walks(
    arena: Arena, name: str, error: str, problem: str
) -> None:
    """A slab's descriptor sits in its chunk's header, out of every caller's reach: IOFree
    takes the slot geometry from it, and damage to it is heap_check's (the checksum over
    the fixed fields and the window's address, the class's reciprocal, the window and the
    mirror mark), as the decoder's. Put back, the slab's slots free as before."""
    pointers = [arena.malloc(64) for _ in range(3)]
    slab = heap_decoder.decode(arena).heap.slabs[0]
    field = heap_decoder.layouts().heap_slab[name]
    at = slab.descriptor + field.offset
    saved = arena.read(at, field.size)
    arena.write(at, (int.from_bytes(saved, "little") + 96).to_bytes(field.size, "little"))
    result = arena.heap_check()
    assert not result.ok and result.error == error and result.where == slab.descriptor
    assert any(problem in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    arena.write(at, saved)
    arena.check_all()
    for pointer in pointers:
        assert arena.free(pointer, 64) == kIOReturnSuccess
    arena.check_all()


def test_a_big_slabs_mirror_and_a_stray_descriptor_are_reported_by_both_walks(arena: Arena) -> None:
    """A big (64 KiB) slab's second unit holds its mirror, which IOFree reads for the slots
    there: a mirror that disagrees with the slab, and a descriptor on a unit no slab covers
    (as a slab given back and not cleared would leave), are heap_check's and the decoder's."""
    pointer = arena.malloc(1000)
    lay = heap_decoder.layouts()
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert heap_oracle.slab_span(slab.size_class) == 2 * lay.unit_size
    mirror = slab.descriptor + lay.heap_slab.size
    slot_size = mirror + lay.heap_slab["slot_size"].offset
    assert arena.read(slot_size, 2) == slab.slot_size.to_bytes(2, "little")
    assert_check_names(
        arena,
        slot_size,
        (slab.slot_size + 16).to_bytes(2, "little"),
        "big slab's mirror descriptor wrong",
        mirror,
    )
    chunk = slab.address & ~(HEAP_CHUNK_SIZE - 1)
    blank = chunk + lay.heap_chunk["slabs"].offset  # unit 0: the chunk's header, never a slab
    assert arena.read(blank, lay.heap_slab.size) == bytes(lay.heap_slab.size)
    saved = arena.read(blank, 4)
    arena.write(blank, heap_oracle.HEAP_SLAB_MAGIC.to_bytes(4, "little"))
    assert arena.heap_check().error == "a slab descriptor where no slab is"
    assert any(
        "unit 0: descriptor of a unit no slab covers" in p
        for p in heap_oracle.problems(heap_decoder.decode(arena))
    )
    arena.write(blank, saved)
    arena.write(slot_size, (slab.slot_size + 16).to_bytes(2, "little"))
    assert any(
        "mirror of the slab below wrong in slot_size" in p
        for p in heap_oracle.problems(heap_decoder.decode(arena))
    )
    arena.write(slot_size, slab.slot_size.to_bytes(2, "little"))
    arena.check_all()
    assert arena.free(pointer, 1000) == kIOReturnSuccess


def checked_by_both(arena: Arena) -> None:
    """heap_check and pages_check pass, and the decoder finds no problem either."""
    arena.check_all()
    assert heap_oracle.problems(heap_decoder.decode(arena)) == []


def test_two_chunks_sharing_a_chunk_at_entry_keep_the_lowest() -> None:
    """H8 when two chunks share a chunk_at entry (1 GiB apart): the entry holds the lower;
    a slot of the upper one is still freed (by the page byte); when the lower goes, the
    entry passes to the upper, and to "no chunk" when that goes too. The decoder and
    heap_check recompute every entry at each step."""
    page = 64 * 1024
    arena = Arena((1 << 30) + 32 * MiB, page, mapped=True)
    order = (HEAP_CHUNK_SIZE // page).bit_length() - 1
    home = heap_decoder.decode(arena).heap.home_chunk
    held: list[int] = []
    while True:  # every other chunk-sized block to the kernel
        ret, pa = arena.pages_alloc(order)
        if ret != kIOReturnSuccess:
            break
        held.append(pa)
    low = next(pa for pa in sorted(held) if pa != home and pa + (1 << 30) in held)
    high = low + (1 << 30)
    field = heap_decoder.layouts().heap_state["chunk_at"]
    entry = heap_decoder.symbols().heap_state + field.offset + 8 * ((low // HEAP_CHUNK_SIZE) % field.count)
    for pa in (low, high):
        held.remove(pa)
        assert arena.pages_free(pa) == kIOReturnSuccess
    pointers: list[int] = []
    while arena.heap_stats()["chunks"] < 3:
        pointer = arena.malloc(1024)
        assert pointer != 0
        pointers.append(pointer)
    checked_by_both(arena)
    assert int.from_bytes(arena.read(entry, 8), "little") == low

    def in_chunk(chunk: int) -> list[int]:
        return [p for p in pointers if chunk <= p < chunk + HEAP_CHUNK_SIZE]

    upper = in_chunk(high)
    assert upper and in_chunk(low)
    assert arena.free(upper[0], 1024) == kIOReturnSuccess  # not in chunk_at: the full path
    assert arena.free(upper[0], 1024) == kIOReturnBadArgument
    pointers.remove(upper[0])
    checked_by_both(arena)
    for pointer in in_chunk(low):
        assert arena.free(pointer, 1024) == kIOReturnSuccess
        pointers.remove(pointer)
    checked_by_both(arena)  # its emptied slab is current: the chunk stays until the request's end
    arena.settle()
    assert low not in heap_decoder.decode(arena).heap.chunk_list
    assert int.from_bytes(arena.read(entry, 8), "little") == high
    checked_by_both(arena)
    for pointer in in_chunk(high):
        assert arena.free(pointer, 1024) == kIOReturnSuccess
        pointers.remove(pointer)
    arena.settle()
    assert int.from_bytes(arena.read(entry, 8), "little") == heap_oracle.HEAP_CHUNK_AT_NONE
    checked_by_both(arena)
    for pointer in pointers:
        assert arena.free(pointer, 1024) == kIOReturnSuccess
    for pa in held:
        assert arena.pages_free(pa) == kIOReturnSuccess
    checked_by_both(arena)


@pytest.mark.parametrize("length", [80, 16], ids=["above-its-slot", "below-its-fall-up"])
def test_a_slot_length_outside_its_class_is_reported(arena: Arena, length: int) -> None:
    """A live 64-byte slot whose requested[] says 80 (more than the slot) or 16 (a request
    that would never fall up to a 64-byte slot): check names the slab, before the counters
    (heap.mutant.9499, seed 4: the class check's failure skipped went unnoticed)."""
    pointer = arena.malloc(64)
    slab = heap_decoder.decode(arena).heap.slabs[0]
    assert slab.slot_size == 64 and slab.slot(0) == pointer
    assert heap_oracle.slab_fall_up(heap_oracle.slab_class(length)) < slab.size_class or length > 64
    entry = slab.address + heap_oracle.SLAB_META_ENTRY * slab.slot_count  # requested[0]
    error = "slot requested size outside its class"
    assert_check_names(arena, entry, length.to_bytes(2, "little"), error, slab.descriptor)
    assert arena.free(pointer, 64) == kIOReturnSuccess


# ------------------------------------------------------------------ heap_check: one damage per check
# Each check the mutation run (make mutate, heap.c, seed 1) found unasserted: damage exactly
# what it guards, assert the exact reason and address, repair, and the heap checks clean again.
# Also the legitimate state the slab-list check must not take for damage (two partial slabs).


def heap_state_field(name: str) -> tuple[int, int]:
    """(address, size) of a field of the global heap_state."""
    field = heap_decoder.layouts().heap_state[name]
    return heap_decoder.symbols().heap_state + field.offset, field.size


def test_a_forged_slab_outside_the_chunks_on_a_partial_list_is_reported(arena: Arena) -> None:
    """A caller can write anything into its own large block: a slab descriptor with a valid
    checksum where a chunk would keep it, naming a window of the block. Linked at the head of
    a partial list, it is still reported: its page block
    is a large block, not a heap chunk (without that check the walk would only see a list
    longer than the chunks' slabs)."""
    pointer = arena.malloc(64)
    lay = heap_decoder.layouts()
    real = heap_decoder.decode(arena).heap.slabs[0]
    big = arena.malloc(HEAP_CHUNK_SIZE)  # more than a chunk holds: a page run
    assert arena.heap_stats()["large_blocks"] == 1
    run = big - HEAP_BLOCK_HEADER_SIZE
    window = run + lay.unit_size  # unit 1 of the "chunk" at run: a window in the caller's block
    forged = run + lay.heap_chunk["slabs"].offset + lay.heap_slab.size  # its descriptor
    hs = lay.heap_slab
    desc = bytearray(arena.read(real.descriptor, hs.size))
    check = heap_oracle.slab_check(
        window, real.magic, real.size_class, real.owner, real.slot_size, real.slot_count, real.first
    )
    desc[hs["check"].offset : hs["check"].offset + 2] = check.to_bytes(2, "little")
    desc[hs["meta"].offset : hs["meta"].offset + 8] = window.to_bytes(8, "little")
    desc[hs["prev"].offset : hs["prev"].offset + 8] = bytes(8)
    desc[hs["next"].offset : hs["next"].offset + 8] = real.descriptor.to_bytes(8, "little")
    arena.write(forged, bytes(desc))
    head_at = (
        heap_decoder.symbols().heap_state
        + lay.heap_state["slab_partial"].offset
        + 8 * (real.owner * lay.slab_classes + real.size_class)
    )
    assert arena.read(head_at, 8) == real.descriptor.to_bytes(8, "little")
    prev_at = real.descriptor + hs["prev"].offset
    arena.write(head_at, forged.to_bytes(8, "little"))
    arena.write(prev_at, forged.to_bytes(8, "little"))
    result = arena.heap_check()
    assert not result.ok and result.error == "partial list entry is not a slab" and result.where == forged
    assert heap_oracle.problems(heap_decoder.decode(arena))
    arena.write(head_at, real.descriptor.to_bytes(8, "little"))
    arena.write(prev_at, bytes(8))
    arena.check_all()
    assert arena.free(big, HEAP_CHUNK_SIZE) == kIOReturnSuccess
    assert arena.free(pointer, 64) == kIOReturnSuccess


def assert_check_names(arena: Arena, at: int, damage: bytes, error: str, where: int) -> None:
    """Writes ``damage`` at ``at``: heap_check reports ``error`` at ``where``; then the
    bytes are put back and the heap checks clean again."""
    saved = arena.read(at, len(damage))
    arena.write(at, damage)
    result = arena.heap_check()
    assert not result.ok
    assert result.error == error
    assert result.where == where
    arena.write(at, saved)
    arena.check_all()


def test_a_chunk_whose_page_block_is_not_a_heap_chunk_is_reported(arena: Arena) -> None:
    """The chunk's page block says 'kernel', not 'heap chunk': check names the chunk and why."""
    pointer = arena.malloc(400)
    arena.check_all()
    chunk = heap_decoder.decode(arena).heap.chunk_list[0]
    state = PageAllocator.in_dll(load(), "pages_state")
    info = ctypes.cast(state.info, ctypes.c_void_p).value
    assert info is not None
    byte_at = info + ((chunk - state.base) >> state.page_shift)
    saved = arena.read(byte_at, 1)
    owners, owned = heap_decoder.layouts().page_owner, heap_decoder.layouts().page_state["PAGE_STATE_OWNED"]
    assert page_state(saved[0]) == owned + owners["PAGE_OWNER_HEAP_CHUNK"]
    kernel = bytes([page_byte(owned + owners["PAGE_OWNER_KERNEL"], page_order(saved[0]))])
    assert_check_names(arena, byte_at, kernel, "chunk is not a heap chunk block of the page allocator", chunk)
    assert arena.free(pointer, 400) == kIOReturnSuccess


def test_a_chunk_pointer_inside_a_chunk_block_is_reported(arena: Arena) -> None:
    """The chunk list's head moved one page into its chunk: that page is in a heap chunk
    block, but not at its start, and check says so before it reads anything there
    (heap.mutant.10231, seed 3: without the start test the walk only found a bad magic)."""
    pointer = arena.malloc(400)
    head_at, _ = heap_state_field("chunks")
    inside = int.from_bytes(arena.read(head_at, 8), "little") + 4096
    error = "chunk is not a heap chunk block of the page allocator"
    assert_check_names(arena, head_at, inside.to_bytes(8, "little"), error, inside)
    assert arena.free(pointer, 400) == kIOReturnSuccess


def test_a_forged_free_block_outside_the_chunks_on_a_free_list_is_reported(arena: Arena) -> None:
    """A free-block header with a valid checksum, forged in a caller's own large block and
    linked at the head of the free list its size belongs to: its page block is a large block,
    not a heap chunk, and check names it (heap.mutant.11246, seed 3: without the owner test
    the forged entry passed as a free block)."""
    pointer = arena.malloc(400)
    lay = heap_decoder.layouts()
    (fl, sl), entries = next((key, e) for key, e in heap_decoder.decode(arena).heap.free_lists.items() if e)
    head = entries[0][0]
    big = arena.malloc(HEAP_CHUNK_SIZE)  # more than a chunk holds: a page run
    assert arena.heap_stats()["large_blocks"] == 1
    forged = big - HEAP_BLOCK_HEADER_SIZE + 4096
    real = HeapBlock.from_address(head)
    header = HeapBlock.from_address(forged)
    header.size, header.prev_size, header.requested, header.state = real.size, 0, 0, real.state
    _reseal(header, forged)
    link = lay.heap_free_block
    arena.write(forged + link["next_free"].offset, head.to_bytes(8, "little"))
    arena.write(forged + link["prev_free"].offset, bytes(8))
    lists_at, _ = heap_state_field("free_lists")
    head_at = lists_at + 8 * (fl * lay.sl_count + sl)
    assert arena.read(head_at, 8) == head.to_bytes(8, "little")
    back_at = head + link["prev_free"].offset
    arena.write(head_at, forged.to_bytes(8, "little"))
    arena.write(back_at, forged.to_bytes(8, "little"))
    result = arena.heap_check()
    assert not result.ok and result.error == "free list entry is not a free block" and result.where == forged
    arena.write(head_at, head.to_bytes(8, "little"))
    arena.write(back_at, bytes(8))
    arena.check_all()
    assert arena.free(big, HEAP_CHUNK_SIZE) == kIOReturnSuccess
    assert arena.free(pointer, 400) == kIOReturnSuccess


def _forged_is_refused(arena: Arena, header: int, length: int) -> None:
    """IOFree and heap_lookup refuse the block a forged header at ``header`` describes, and
    nothing changes."""
    before = arena.snapshot()
    assert arena.free(header + HEAP_BLOCK_HEADER_SIZE, length) == kIOReturnBadArgument
    assert arena.lookup(header + HEAP_BLOCK_HEADER_SIZE) is None
    assert arena.snapshot() == before
    arena.check_all()


def test_a_remainder_that_stays_in_its_list_takes_the_heads_place_with_its_links(arena: Arena) -> None:
    """tlsf_alloc cuts a block from the bottom of its list's head; a remainder that stays in
    the same list takes the head's place (free_replace_head), so the next block of that list
    must point back at the remainder, not at the block handed out. Two free blocks of 131 KiB
    share a list 4 KiB wide (its floor 128 KiB); a request just above the slabs takes the head
    (without the back link's update, heap_check and the decoder named the next block's back
    link). Below 64 KiB the lists are at most 1 KiB wide and no remainder stays."""
    size = 131 * 1024 - HEAP_BLOCK_HEADER_SIZE
    low, first_gap, high, second_gap = (arena.malloc(n) for n in (size, 3000, size, 3000))
    assert arena.free(low, size) == kIOReturnSuccess
    assert arena.free(high, size) == kIOReturnSuccess
    lay = heap_decoder.layouts()
    lists = heap_decoder.decode(arena).heap.free_lists
    key = lay.mapping_insert(size + HEAP_BLOCK_HEADER_SIZE)
    assert [entry for entry, _ in lists[key]] == [high - HEAP_BLOCK_HEADER_SIZE, low - HEAP_BLOCK_HEADER_SIZE]
    small = arena.malloc(2049)  # above the slabs: a TLSF block of 2,080 bytes, cut from the head
    assert small == high
    remainder = high - HEAP_BLOCK_HEADER_SIZE + 2080
    lists = heap_decoder.decode(arena).heap.free_lists
    assert lists[key] == ((remainder, 0), (low - HEAP_BLOCK_HEADER_SIZE, remainder))
    checked_by_both(arena)
    for pointer, n in ((small, 2049), (first_gap, 3000), (second_gap, 3000)):
        assert arena.free(pointer, n) == kIOReturnSuccess
    checked_by_both(arena)


def test_a_header_forged_inside_a_block_does_not_make_its_payload_freeable(arena: Arena) -> None:
    """used_map, not a header, says where a block starts (H4): a header forged inside a caller's
    TLSF block, with a valid checksum, the caller's used state and the length freed with, is
    refused by IOFree (block_free_fast and the full resolve) and by heap_lookup, and nothing
    changes. Without the used_map test in block_free_fast the forged block was freed."""
    outer = arena.malloc(4000)
    forged = outer + 256
    header = HeapBlock.from_address(forged)
    header.size, header.prev_size, header.requested = 128, 272, 100
    header.state = heap_decoder.layouts().block_state["HEAP_BLOCK_USED"]
    _reseal(header, forged)
    _forged_is_refused(arena, forged, 100)
    assert arena.free(outer, 4000) == kIOReturnSuccess


def test_a_header_forged_across_a_real_one_at_a_misaligned_address_is_refused(arena: Arena) -> None:
    """A pointer 8 bytes into a TLSF block's payload: its "header" is the real header's second
    half and the payload's first 8 bytes, which the caller writes. Forged there (a valid
    checksum for that address, the caller's used state, the length freed with), and with
    used_map's bit for the granule it rounds down to set (the real header's), it is refused
    for its alignment (block_free_fast's first test; without it the forged block was freed)."""
    outer = arena.malloc(4000)
    real = HeapBlock.from_address(outer - HEAP_BLOCK_HEADER_SIZE)
    forged = outer - HEAP_BLOCK_HEADER_SIZE + 8
    used = heap_decoder.layouts().block_state["HEAP_BLOCK_USED"]
    prev_size = real.state | real.check << 16  # what the real header's second half reads as
    check = heap_oracle.block_check(forged, real.requested, prev_size, 100, used)
    arena.write(outer, (100).to_bytes(4, "little") + used.to_bytes(2, "little") + check.to_bytes(2, "little"))
    header = HeapBlock.from_address(forged)
    assert (header.size, header.prev_size, header.requested, header.state, header.check) == (
        real.requested,
        prev_size,
        100,
        used,
        check,
    )
    _forged_is_refused(arena, forged, 100)
    assert arena.free(outer, 4000) == kIOReturnSuccess


def test_a_block_smaller_than_the_minimum_is_reported(arena: Arena) -> None:
    """A header resealed with a size of 16 (below HEAP_MIN_BLOCK, still a multiple of 16 and
    inside the chunk): check names that block, not the garbage 16 bytes on (heap.mutant.10379,
    seed 3: `size < HEAP_MIN_BLOCK` -> `==` went unnoticed)."""
    pointer = arena.malloc(3000)
    address = pointer - HEAP_BLOCK_HEADER_SIZE
    header = HeapBlock.from_address(address)
    size = header.size
    header.size = HEAP_ALIGN
    _reseal(header, address)
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "block size out of range"
    assert result.where == address
    header.size = size
    _reseal(header, address)
    arena.check_all()
    assert arena.free(pointer, 3000) == kIOReturnSuccess


def test_a_free_block_marked_used_in_the_used_map_is_reported(arena: Arena) -> None:
    """A free block whose used_map bit is set (IOFree would take it for live): check says so."""
    pointer = arena.malloc(400)
    snap = heap_decoder.decode(arena)
    chunk = snap.heap.chunks[0]
    free_state = heap_decoder.layouts().block_state["HEAP_BLOCK_FREE"]
    free = [b for b in chunk.blocks if b.state == free_state]
    assert free, "a fresh chunk with one small block has a free block"
    block = free[0]
    granule = (block.address - chunk.address) // HEAP_ALIGN
    assert granule not in chunk.used_granules
    word_at = chunk.address + heap_decoder.layouts().heap_chunk["used_map"].offset + granule // 64 * 8
    saved = arena.read(word_at, 8)
    word = int.from_bytes(saved, "little") | 1 << (granule % 64)
    arena.write(word_at, word.to_bytes(8, "little"))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "used_map disagrees with the block state"
    assert result.where == block.address
    arena.write(word_at, saved)
    arena.check_all()
    assert arena.free(pointer, 400) == kIOReturnSuccess


def _reseal(header: HeapBlock, address: int) -> None:
    """Recompute a header's checksum after a field was changed (a forged header)."""
    header.check = heap_oracle.block_check(
        address, header.size, header.prev_size, header.requested, header.state
    )


def test_a_wrong_mirror_of_a_full_slab_is_reported(arena: Arena) -> None:
    """A full 64 KiB slab is on no partial list, so only the slab walk can see its mirror:
    the mirror naming another owner is reported at the mirror, by check and by the decoder
    (as the per-window loop of the byte map it replaces was, heap.mutant.8960)."""
    size = 1024  # the largest class of the 64 KiB span
    count = heap_decoder.layouts().slot_count(heap_oracle.slab_class(size))
    pointers = [arena.malloc(size) for _ in range(count)]
    slab = heap_decoder.decode(arena).heap.slabs[0]
    assert slab.free_count == 0 and heap_oracle.slab_span(slab.size_class) == heap_oracle.HEAP_SLAB_BIG_SIZE
    lay = heap_decoder.layouts()
    mirror = slab.descriptor + lay.heap_slab.size
    owner_at = mirror + lay.heap_slab["owner"].offset
    saved = arena.read(owner_at, 1)
    arena.write(owner_at, bytes([saved[0] ^ 1]))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "big slab's mirror descriptor wrong"
    assert result.where == mirror
    assert any(
        "mirror of the slab below wrong in owner" in p
        for p in heap_oracle.problems(heap_decoder.decode(arena))
    )
    arena.write(owner_at, saved)
    arena.check_all()
    for pointer in pointers:
        assert arena.free(pointer, size) == kIOReturnSuccess
    arena.check_all()


def test_a_requested_size_past_its_block_is_reported(arena: Arena) -> None:
    """A used block whose requested size (checksum resealed) no longer fits it: check names it,
    and walks no further than that block (heap.mutant.10365: a `break` there went unnoticed)."""
    pointer = arena.malloc(3000)  # a TLSF block: header, payload of 3008 bytes
    address = pointer - HEAP_BLOCK_HEADER_SIZE
    header = HeapBlock.from_address(address)
    header.requested = header.size - HEAP_BLOCK_HEADER_SIZE + 1
    _reseal(header, address)
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "requested size does not fit the block"
    assert result.where == address
    header.requested = 3000
    _reseal(header, address)
    arena.check_all()
    assert arena.free(pointer, 3000) == kIOReturnSuccess


def test_two_neighbouring_free_blocks_are_reported(arena: Arena) -> None:
    """A used block made free by hand (state and used_map bit, checksum resealed) next to the
    free block below it: TLSF never leaves two free neighbours (H2), and check says where
    (heap.mutant.10444: a `break` there went unnoticed)."""
    low, high = arena.malloc(3000), arena.malloc(3000)
    assert arena.free(low, 3000) == kIOReturnSuccess  # a free block, then `high` above it
    address = high - HEAP_BLOCK_HEADER_SIZE
    chunk = address & ~(HEAP_CHUNK_SIZE - 1)
    header = HeapBlock.from_address(address)
    assert header.prev_size == heap_decoder.decode(arena).heap.chunks[0].blocks[0].size
    granule = (address - chunk) // HEAP_ALIGN
    word_at = chunk + heap_decoder.layouts().heap_chunk["used_map"].offset + granule // 64 * 8
    saved_word, saved_header = arena.read(word_at, 8), arena.read(address, HEAP_BLOCK_HEADER_SIZE)
    arena.write(word_at, (int.from_bytes(saved_word, "little") & ~(1 << granule % 64)).to_bytes(8, "little"))
    header.state, header.requested = heap_decoder.layouts().block_state["HEAP_BLOCK_FREE"], 0
    _reseal(header, address)
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "two neighbouring free blocks (not coalesced)"
    assert result.where == address
    arena.write(word_at, saved_word)
    arena.write(address, saved_header)
    arena.check_all()
    assert arena.free(high, 3000) == kIOReturnSuccess


@pytest.mark.parametrize("counter", ["allocs", "frees", "large_blocks"])
@pytest.mark.parametrize("delta", [1, -1])
def test_a_block_counter_off_by_one_either_way_is_reported(arena: Arena, counter: str, delta: int) -> None:
    """allocs or frees (whose difference is the live blocks' count) or large_blocks above or
    below what the walk finds: 'heap counters disagree', and the decoder says so too."""
    assert arena.free(arena.malloc(64), 64) == kIOReturnSuccess  # frees is not 0
    live = [(arena.malloc(size), size) for size in (64, 3000, HEAP_CHUNK_SIZE)]  # a slab slot, small, large
    assert arena.heap_stats()["large_blocks"] == 1
    arena.check_all()
    address, size = heap_state_field(counter)
    saved = arena.read(address, size)
    value = int.from_bytes(saved, "little") + delta
    arena.write(address, value.to_bytes(size, "little"))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "heap counters disagree with the walk"
    assert result.where == heap_decoder.symbols().heap_state
    assert any("counter" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    arena.write(address, saved)
    arena.check_all()
    for pointer, length in live:
        assert arena.free(pointer, length) == kIOReturnSuccess


@pytest.mark.parametrize("change", ["cleared", "set"])
def test_a_slab_partial_map_bit_that_disagrees_with_its_list_is_reported(arena: Arena, change: str) -> None:
    """slab_partial_map (the bit scan behind the fall-up) with a partial class's bit cleared,
    or an empty class's bit set: check names the map; an allocation meanwhile still gets a
    slot (a set bit over an empty list leads to the slow path, never to a NULL slab)."""
    live = [(arena.malloc(64), 64)]
    arena.check_all()
    address, size = heap_state_field("slab_partial_map")  # the caller's word (owner 0)
    saved = arena.read(address, size)
    bit = heap_oracle.slab_class(64) if change == "cleared" else heap_oracle.slab_class(16)
    arena.write(address, (int.from_bytes(saved, "little") ^ 1 << bit).to_bytes(size, "little"))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "slab_partial_map disagrees with the partial lists"
    assert result.where == address
    if change == "set":
        pointer = arena.malloc(16)
        assert pointer != 0 and arena.lookup(pointer) == 16
        live.append((pointer, 16))
    arena.write(address, saved)
    if change == "set":  # the new slab of class 0 put its bit in the saved word's place
        arena.write(address, (int.from_bytes(saved, "little") | 1 << bit).to_bytes(size, "little"))
    arena.check_all()
    for pointer, length in live:
        assert arena.free(pointer, length) == kIOReturnSuccess
    arena.check_all()


def slabs_of_class(arena: Arena, request: int) -> list[heap_oracle.Slab]:
    slot = (request + HEAP_ALIGN - 1) // HEAP_ALIGN * HEAP_ALIGN
    return [s for s in heap_decoder.decode(arena).heap.slabs if s.slot_size == slot]


def fill_two_slabs(arena: Arena, request: int) -> tuple[list[int], heap_oracle.Slab]:
    """Allocate ``request``-byte slots until a second slab of that class is taken; returns the
    pointers and the first (now full) slab."""
    pointers: list[int] = []
    while len(slabs_of_class(arena, request)) < 2:
        pointer = arena.malloc(request)
        assert pointer != 0
        pointers.append(pointer)
    full = [s for s in slabs_of_class(arena, request) if s.free_count == 0]
    assert len(full) == 1
    return pointers, full[0]


def test_two_partial_slabs_in_one_list_check_clean(arena: Arena) -> None:
    """A slab with a free slot and a successor in its partial list is the normal state, not
    damage: fill one slab, start a second, free one slot of the first; both are partial."""
    request = 64
    pointers, first = fill_two_slabs(arena, request)
    victim = next(
        p for p in pointers if first.address <= p < first.address + heap_oracle.slab_span(first.size_class)
    )
    assert arena.free(victim, request) == kIOReturnSuccess
    pointers.remove(victim)
    slabs = slabs_of_class(arena, request)
    assert len(slabs) == 2 and all(0 < s.free_count < s.slot_count for s in slabs)
    partial = heap_decoder.decode(arena).heap.slab_partial
    lists = [entries for entries in partial.values() if len(entries) == 2]
    assert len(lists) == 1, "both partial slabs in one list"
    assert {slab for slab, _ in lists[0]} == {s.descriptor for s in slabs}
    arena.check_all()
    for pointer in pointers:
        assert arena.free(pointer, request) == kIOReturnSuccess
    arena.check_all()


def test_a_partial_slab_cut_off_its_list_is_reported(arena: Arena) -> None:
    """Two partial slabs in one list, the first's next link cut: the second still has its
    back link, so only the count of listed against partial slabs sees it (heap.mutant.9930
    dropped that comparison and went unnoticed)."""
    request = 64
    pointers, first = fill_two_slabs(arena, request)
    victim = next(
        p for p in pointers if first.address <= p < first.address + heap_oracle.slab_span(first.size_class)
    )
    assert arena.free(victim, request) == kIOReturnSuccess
    pointers.remove(victim)
    head, _ = next(e for e in heap_decoder.decode(arena).heap.slab_partial.values() if len(e) == 2)[0]
    link = head + heap_decoder.layouts().heap_slab["next"].offset
    saved = arena.read(link, 8)
    arena.write(link, bytes(8))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "slab with a free slot missing from the partial lists"
    arena.write(link, saved)
    arena.check_all()
    for pointer in pointers:
        assert arena.free(pointer, request) == kIOReturnSuccess


def test_a_full_slab_with_a_stale_list_link_is_reported(arena: Arena) -> None:
    """A full slab (off the partial lists) whose next link still points somewhere: check says so."""
    request = 64
    pointers, first = fill_two_slabs(arena, request)
    second = next(s for s in slabs_of_class(arena, request) if s.address != first.address)
    next_field = heap_decoder.layouts().heap_slab["next"]
    address = first.descriptor + next_field.offset
    saved = arena.read(address, next_field.size)
    assert int.from_bytes(saved, "little") == 0
    arena.write(address, second.descriptor.to_bytes(next_field.size, "little"))
    result = arena.heap_check()
    assert not result.ok
    assert result.error == "slab on a partial list exactly when it has a free slot: not so"
    assert result.where == first.descriptor
    arena.write(address, saved)
    arena.check_all()
    for pointer in pointers:
        assert arena.free(pointer, request) == kIOReturnSuccess


# ------------------------------------------------------------------ exhaustion


@pytest.mark.parametrize("page_size", [4096, 65536])
@pytest.mark.parametrize("preexisting", [0, 5])
def test_exhaustion_then_full_free_restores_the_baseline_exactly(page_size: int, preexisting: int) -> None:
    arena = Arena(16 * MiB, page_size)
    keep = [(arena.malloc(size), size) for size in (40, 3000, 70000, 24, 500)[:preexisting]]
    baseline = arena.snapshot()
    allocs, frees = counters(arena)

    rng = random.Random(page_size + preexisting)
    live: list[tuple[int, int]] = []
    sizes = [0, 24, 100, 500, 4000, 40000, 70000, 300000]
    while sizes:
        size = rng.choice(sizes)
        pointer = arena.malloc(size)
        if pointer == 0:
            sizes.remove(size)  # this size no longer fits; keep filling with the others
            continue
        live.append((pointer, size))
    assert arena.malloc(0) == 0
    # No page block large enough for another chunk is left (free pages may remain, scattered).
    chunk_order = (HEAP_CHUNK_SIZE // page_size).bit_length() - 1
    pages = arena.pages_stats()
    assert pages["free_pages"] == 0 or pages["largest_free_order"] < chunk_order
    arena.check_all()

    rng.shuffle(live)
    for pointer, size in live:
        assert arena.free(pointer, size) == kIOReturnSuccess
    assert arena.snapshot() == baseline
    assert counters(arena) == (allocs + len(live), frees + len(live))
    arena.check_all()
    for pointer, size in keep:
        assert arena.free(pointer, size) == kIOReturnSuccess


def test_a_block_merged_into_a_free_neighbour_is_reused_first(arena: Arena) -> None:
    """A freed block merged into the free block below it is the head of its list afterwards,
    as any freed block is (last freed, first reused), even when the merged block stays in the
    list it was in and was not its head (block_release keeps the links only of a head)."""
    big = 131072 - HEAP_BLOCK_HEADER_SIZE  # a 128 KiB block: its list spans 128-132 KiB
    p = arena.malloc(big)
    x = arena.malloc(2064)  # a 2,080-byte block right above p (past the slabs)
    keep = [arena.malloc(3000)]
    q = arena.malloc(big)
    keep.append(arena.malloc(3000))
    assert p < x < keep[0] < q < keep[1]
    assert arena.free(p, big) == kIOReturnSuccess
    assert arena.free(q, big) == kIOReturnSuccess  # q heads the list, p behind it
    assert arena.free(x, 2064) == kIOReturnSuccess  # merges into p: same list, to its head
    arena.check_all()
    assert arena.malloc(big) == p
    assert arena.free(p, big) == kIOReturnSuccess
    for pointer in keep:
        assert arena.free(pointer, 3000) == kIOReturnSuccess
    arena.check_all()


def test_emptied_chunks_go_back_to_the_page_allocator(arena: Arena) -> None:
    baseline = arena.snapshot()
    blocks = [arena.malloc(60000) for _ in range(HEAP_CHUNK_SIZE // 60000 + 2)]  # more than one chunk holds
    assert arena.heap_stats()["chunks"] > 1
    for pointer in blocks:
        assert arena.free(pointer, 60000) == kIOReturnSuccess
    assert arena.heap_stats()["chunks"] == 1
    assert arena.snapshot() == baseline


# ------------------------------------------------------------------ §3-§5 IONew & co (C macros)

SHIM = r"""
#include <stdint.h>
#include "IOLib.h"

typedef struct { uint8_t bytes[24]; } rec24;
typedef struct { uint8_t bytes[4096]; } rec4096;

void *shim_new_u64(uint64_t count) { return IONew(uint64_t, count); }
void *shim_new_rec4096(uint64_t count) { return IONew(rec4096, count); }
void *shim_newzero_rec24(uint64_t count) { return IONewZero(rec24, count); }
void *shim_newzero_rec4096(uint64_t count) { return IONewZero(rec4096, count); }
void *shim_new_u32_signed(int64_t count) { return IONew(uint32_t, count); }
void *shim_new_u8_int(int count) { return IONew(uint8_t, count); }
int32_t shim_delete_checked_u64(void *p, uint64_t count) { return IODeleteChecked(p, uint64_t, count); }
void *shim_delete_u64(void *p, uint64_t count) { IODelete(p, uint64_t, count); return p; }
void *shim_safedelete_u64(void *p, uint64_t count) { IOSafeDeleteNULL(p, uint64_t, count); return p; }
"""


@pytest.fixture(scope="module")
def shim() -> Iterator[ctypes.CDLL]:
    lib = compile_shim(SHIM)
    for name in ("shim_new_u64", "shim_new_rec4096", "shim_newzero_rec24", "shim_newzero_rec4096"):
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = [ctypes.c_uint64]
    lib.shim_new_u32_signed.restype = ctypes.c_void_p
    lib.shim_new_u32_signed.argtypes = [ctypes.c_int64]
    lib.shim_new_u8_int.restype = ctypes.c_void_p
    lib.shim_new_u8_int.argtypes = [ctypes.c_int]
    lib.shim_delete_checked_u64.restype = ctypes.c_int32
    lib.shim_delete_checked_u64.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    for name in ("shim_delete_u64", "shim_safedelete_u64"):
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    yield lib


def test_ionew_sizes_and_alignment(arena: Arena, shim: ctypes.CDLL) -> None:
    pointer = shim.shim_new_u64(3)
    assert pointer % 16 == 0
    assert arena.lookup(pointer) == 24
    zeroed = shim.shim_newzero_rec24(10)
    assert arena.lookup(zeroed) == 240
    assert arena.read(zeroed, 240) == bytes(240)
    empty = shim.shim_new_u64(0)
    assert empty and arena.lookup(empty) == 0
    arena.check_all()


def test_ionewzero_is_zero_after_dirty_reuse(arena: Arena, shim: ctypes.CDLL) -> None:
    pointer = shim.shim_new_rec4096(2)
    arena.fill(pointer, 0xAA, 8192)
    assert shim.shim_delete_checked_u64(pointer, 1024) == kIOReturnSuccess  # 8192 bytes as u64
    again = shim.shim_newzero_rec4096(2)
    assert again == pointer
    assert arena.read(again, 8192) == bytes(8192)


@pytest.mark.parametrize(
    ("function", "count"),
    [
        ("shim_new_rec4096", 0x0010000000000000),  # product is exactly 2^64
        ("shim_new_rec4096", 2**64 - 1),
        ("shim_newzero_rec24", 2**64 // 24 + 1),
        ("shim_new_u64", 2**61),
        ("shim_new_u32_signed", -1),  # negative counts are overflow too
        ("shim_new_u32_signed", -(2**63)),
        ("shim_new_u8_int", -1),
    ],
)
def test_ionew_overflow_never_enters_the_allocator(
    arena: Arena, shim: ctypes.CDLL, function: str, count: int
) -> None:
    before = arena.heap_stats()
    assert getattr(shim, function)(count) is None
    assert arena.heap_stats() == before  # allocs unchanged: IOMalloc was not called


def test_iodelete(arena: Arena, shim: ctypes.CDLL) -> None:
    pointer = shim.shim_new_u64(3)
    allocs, frees = counters(arena)
    assert shim.shim_delete_checked_u64(pointer, 4) == kIOReturnBadArgument  # wrong count
    assert arena.lookup(pointer) == 24  # still allocated
    assert shim.shim_delete_checked_u64(pointer, 2**62) == kIOReturnSuccess  # overflow: silent no-op
    assert counters(arena) == (allocs, frees)
    assert shim.shim_delete_u64(pointer, 3) == pointer  # IODelete does not touch the pointer
    assert counters(arena) == (allocs, frees + 1)
    assert arena.lookup(pointer) is None
    arena.check_all()


def test_iosafedeletenull(arena: Arena, shim: ctypes.CDLL) -> None:
    pointer = shim.shim_new_u64(3)
    allocs, frees = counters(arena)
    assert shim.shim_safedelete_u64(pointer, 3) is None
    assert counters(arena) == (allocs, frees + 1)
    assert shim.shim_safedelete_u64(None, 3) is None
    assert counters(arena) == (allocs, frees + 1)


# ------------------------------------------------------------------ decoding the state from outside
# The decoder is harness/oracle/heap.py (the one that reads guest RAM); tests/host/heap_decoder.py
# points it at this process's memory. tests/host/test_heap_oracle.py tests it in depth.


def test_an_outside_decoder_agrees_with_the_counters(arena: Arena) -> None:
    rng = random.Random(3)
    live: list[tuple[int, int]] = []
    for _ in range(300):
        if live and rng.random() < 0.4:
            pointer, size = live.pop(rng.randrange(len(live)))
            assert arena.free(pointer, size) == kIOReturnSuccess
        else:
            size = rng.choice(
                [rng.randrange(0, 600), rng.randrange(0, 70000), rng.randrange(64 * 1024, 400000)]
            )
            live.append((arena.malloc(size), size))
    live.append((arena.malloc(5 * 4096), 5 * 4096))  # a run of 4 + 2 pages: one continuation block
    stats = arena.heap_stats()
    snapshot = heap_decoder.decode(arena)
    assert heap_oracle.problems(snapshot) == []
    assert snapshot.live_blocks() == {pointer: size for pointer, size in live if pointer}
    assert snapshot.used_bytes == stats["used_bytes"] and snapshot.free_bytes == stats["free_bytes"]
    found = snapshot.heap.counters
    used_blocks = found["allocs"] - found["frees"] - found["large_blocks"]  # heap_stats derives it so
    counters = found | {"chunks": found["chunk_count"], "used_blocks": used_blocks}
    assert {k: counters[k] for k in stats} == stats
    state = Arena.state()
    page_bytes = ctypes.string_at(state.info, state.page_count)
    assert PAGE_STATE_CONTINUATION in {page_state(byte) for byte in page_bytes}
    arena.check_all()


def test_layout_matches_dwarf() -> None:
    """The ctypes mirrors (what a decoder assumes) match the DWARF of the built library."""
    elftools = pytest.importorskip("elftools.elf.elffile")
    offsets: dict[str, dict[str, int]] = {}
    with LIB_PATH.open("rb") as handle:
        dwarf = elftools.ELFFile(handle).get_dwarf_info()
        for unit in dwarf.iter_CUs():
            for die in unit.iter_DIEs():
                if die.tag != "DW_TAG_structure_type" or "DW_AT_name" not in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode()
                members = {}
                for child in die.iter_children():
                    if child.tag == "DW_TAG_member" and "DW_AT_data_member_location" in child.attributes:
                        members[child.attributes["DW_AT_name"].value.decode()] = child.attributes[
                            "DW_AT_data_member_location"
                        ].value
                if members:
                    offsets.setdefault(name, members)
    for c_name, mirror in (
        ("heap_block", HeapBlock),
        ("page_allocator", PageAllocator),
    ):
        expected = {field[0]: getattr(mirror, field[0]).offset for field in mirror._fields_}
        assert offsets[c_name] == expected, c_name


# ------------------------------------------------------------------ model-based

SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 600),
    st.sampled_from([start - 16 + d for start in class_starts()[::7] for d in (-1, 0, 1) if start >= 17]),
    st.integers(600, HEAP_LARGE_MIN - 1),
    st.integers(HEAP_LARGE_MIN - 2, HEAP_LARGE_MIN + 2),
    st.integers(HEAP_LARGE_MIN, 300000),
)


class HeapMachine(RuleBasedStateMachine):
    """alloc / zalloc / free / wrong-size free / double free / middle-pointer free vs a model.

    Each live block is filled with its own byte, checked again at free, so any write by the
    heap into a live block (or two blocks overlapping) shows up.
    """

    live_blocks = Bundle("live_blocks")

    def __init__(self) -> None:
        super().__init__()
        self.arena = Arena(8 * MiB, 4096)
        self.live: dict[int, tuple[int, int]] = {}  # pointer -> (size, fill byte)
        self.freed: set[int] = set()
        self.allocs = 0
        self.frees = 0
        self.next_byte = 1

    def _allocated(self, pointer: int, size: int, zero: bool) -> int:
        if pointer == 0:
            return 0
        assert pointer % 16 == 0
        assert pointer not in self.live
        end = pointer + max(size, 1)
        for other, (other_size, _) in self.live.items():
            assert end <= other or other + max(other_size, 1) <= pointer, "overlapping blocks"
        if zero:
            assert self.arena.read(pointer, size) == bytes(size)
        byte = self.next_byte
        self.next_byte = self.next_byte % 255 + 1
        self.arena.fill(pointer, byte, size)
        self.live[pointer] = (size, byte)
        self.freed.discard(pointer)
        self.allocs += 1
        return pointer

    @rule(target=live_blocks, size=SIZES)
    def alloc(self, size: int) -> int:
        return self._allocated(self.arena.malloc(size), size, zero=False)

    @rule(target=live_blocks, size=SIZES)
    def zalloc(self, size: int) -> int:
        return self._allocated(self.arena.zalloc(size), size, zero=True)

    @rule(pointer=consumes(live_blocks))
    def free(self, pointer: int) -> None:
        if pointer not in self.live:
            return
        size, byte = self.live.pop(pointer)
        assert self.arena.read(pointer, size) == bytes([byte]) * size, "a live block was overwritten"
        assert self.arena.free(pointer, size) == kIOReturnSuccess
        self.freed.add(pointer)
        self.frees += 1

    @rule(pointer=live_blocks, delta=st.sampled_from([-16, -1, 1, 16, 4096]))
    def free_wrong_size(self, pointer: int, delta: int) -> None:
        if pointer not in self.live:
            return
        size = self.live[pointer][0]
        if size + delta < 0:
            return
        before = self.arena.heap_stats()
        assert self.arena.free(pointer, size + delta) == kIOReturnBadArgument
        assert self.arena.heap_stats() == before

    @rule(pick=st.integers(0, 2**16), size=SIZES)
    def double_free(self, pick: int, size: int) -> None:
        # An index, not sampled_from(addresses): the strategy must not depend on run-time values.
        stale = sorted(self.freed - set(self.live))
        if not stale:
            return
        pointer = stale[pick % len(stale)]
        before = self.arena.heap_stats()
        assert self.arena.free(pointer, size) == kIOReturnBadArgument
        assert self.arena.heap_stats() == before

    @rule(pointer=live_blocks, offset=st.sampled_from([16, 32, 48, 4096]))
    def free_middle(self, pointer: int, offset: int) -> None:
        if pointer not in self.live or offset >= self.live[pointer][0]:
            return
        before = self.arena.heap_stats()
        assert self.arena.free(pointer + offset, self.live[pointer][0]) == kIOReturnBadArgument
        assert self.arena.heap_stats() == before

    @rule()
    def settle(self) -> None:
        """A request's end: the empty current slabs go, and heap_space, which counts the heap
        as settled already, reads the same before and after."""
        before = self.arena.space()
        stats = self.arena.heap_stats()
        self.arena.settle()
        assert self.arena.space() == before
        assert {k: v for k, v in self.arena.heap_stats().items() if k in ("used_bytes", "used_blocks")} == {
            k: v for k, v in stats.items() if k in ("used_bytes", "used_blocks")
        }
        assert not [s for s in heap_decoder.decode(self.arena).heap.slabs if s.free_count == s.slot_count]

    @invariant()
    def consistent(self) -> None:
        self.arena.check_all()
        snapshot = heap_decoder.decode(self.arena)  # the harness's decoder agrees with heap_check
        assert heap_oracle.problems(snapshot) == []
        assert self.arena.space() == snapshot.space(4096)  # heap_space's settled view, simulated
        assert snapshot.live_blocks() == {pointer: size for pointer, (size, _) in self.live.items()}
        stats = self.arena.heap_stats()
        assert stats["used_bytes"] == sum(size for size, _ in self.live.values())
        assert stats["used_blocks"] + stats["large_blocks"] == len(self.live)
        assert (stats["allocs"], stats["frees"]) == (self.allocs, self.frees)


TestHeapMachine = HeapMachine.TestCase
TestHeapMachine.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)


# ------------------------------------------------------------------ benchmark hook


def test_bench_workload_runs_clean(arena: Arena) -> None:
    baseline = arena.snapshot()
    assert load().heap_bench(20000, 1, 512) == 0
    assert load().heap_bench(2000, 2, 200000) == 0
    assert arena.snapshot() == baseline
    arena.check_all()


# ------------------------------------------------------------------ the heap.c survivors of seed 7


def test_an_empty_chunk_other_than_the_home_chunk_is_reported(arena: Arena) -> None:
    """H6: only the home chunk may be entirely free. With the only live block in a second
    chunk and heap_state.home_chunk naming that one, the real home chunk is an empty chunk
    kept: check and the decoder say so (heap.mutant.14766, seed 7, dropped the check and went
    unnoticed)."""
    blocks = _fill_home_chunk(arena)
    other = arena.malloc(16384)  # no room in the home chunk: a second chunk
    assert arena.heap_stats()["chunks"] == 2
    for pointer, size in blocks:
        assert arena.free(pointer, size) == kIOReturnSuccess
    arena.settle()
    heap = heap_decoder.decode(arena).heap
    home = heap.home_chunk
    (second,) = [c for c in heap.chunk_list if c != home]
    field = heap_decoder.symbols().heap_state + heap_decoder.layouts().heap_state["home_chunk"].offset
    assert arena.read(field, 8) == home.to_bytes(8, "little")
    arena.write(field, second.to_bytes(8, "little"))
    try:
        assert any("empty chunk kept" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    finally:
        arena.write(field, home.to_bytes(8, "little"))
    assert_check_names(
        arena, field, second.to_bytes(8, "little"), "an empty chunk other than the home chunk was kept", home
    )
    assert arena.free(other, 16384) == kIOReturnSuccess
    checked_by_both(arena)


def test_heap_alloc_refuses_an_owner_out_of_range(arena: Arena) -> None:
    """heap_alloc() with an owner past the last (a firmware bug) returns NULL and changes
    nothing: the per-owner tables have no row for it (heap.mutant.9740, seed 7, refused
    only HEAP_OWNER_COUNT itself and went unnoticed)."""
    lib = load()
    before = arena.heap_stats()
    count = heap_decoder.layouts().owner["HEAP_OWNER_COUNT"]
    for owner in (count, count + 1, 200):
        for size in (16, 3000):
            assert not lib.heap_alloc(size, owner, False)
    assert arena.heap_stats() == before
    checked_by_both(arena)


def test_heap_space_counts_the_free_block_of_a_second_chunk_that_stays(arena: Arena) -> None:
    """heap_space() leaves out the free blocks of a chunk that settling would give back, and
    only those: a second chunk holding a live block stays, and its free tail is the largest
    request the heap can serve (heap.mutant.10492, seed 7: the chunk's block walk skipped
    made every chunk but the home one count as given back, unnoticed)."""
    blocks = _fill_home_chunk(arena)
    other = arena.malloc(16384)  # a second chunk: this block and a free tail of nearly 4 MiB
    assert arena.heap_stats()["chunks"] == 2
    space = arena.space()
    assert space == heap_decoder.decode(arena).space(4096)
    assert space[2] > HEAP_CHUNK_SIZE // 2, space
    assert arena.free(other, 16384) == kIOReturnSuccess
    for pointer, size in blocks:
        assert arena.free(pointer, size) == kIOReturnSuccess
    checked_by_both(arena)


def test_a_forged_free_list_entry_is_reported(arena: Arena) -> None:
    """A free list's only entry replaced by a copy of its block's header (links cleared)
    planted inside a live block: the same size class, the same back link, as many blocks
    listed as the chunks hold; only the header's checksum, which folds its address, tells it
    from the real one (heap.mutant.15076, seed 7, dropped that test and went unnoticed)."""
    keep = arena.malloc(3000)
    hole = arena.malloc(3000)
    guard = arena.malloc(3000)  # the hole stays a block of its own, in a list of its own
    assert arena.free(hole, 3000) == kIOReturnSuccess
    lay = heap_decoder.layouts()
    lists = heap_decoder.decode(arena).heap.free_lists
    ((fl, sl),) = [key for key, entries in lists.items() if entries == ((hole - HEAP_BLOCK_HEADER_SIZE, 0),)]
    forged = keep  # 16-aligned, inside a live block
    saved = arena.read(forged, 2 * HEAP_BLOCK_HEADER_SIZE)
    arena.write(forged, arena.read(hole - HEAP_BLOCK_HEADER_SIZE, HEAP_BLOCK_HEADER_SIZE) + bytes(16))
    head = (
        heap_decoder.symbols().heap_state + lay.heap_state["free_lists"].offset + 8 * (fl * lay.sl_count + sl)
    )
    try:
        arena.write(head, forged.to_bytes(8, "little"))
        assert any(f"{forged:#x}" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
        arena.write(head, (hole - HEAP_BLOCK_HEADER_SIZE).to_bytes(8, "little"))
        assert_check_names(
            arena, head, forged.to_bytes(8, "little"), "free list entry is not a free block", forged
        )
    finally:
        arena.write(head, (hole - HEAP_BLOCK_HEADER_SIZE).to_bytes(8, "little"))
        arena.write(forged, saved)
    for pointer in (keep, guard):
        assert arena.free(pointer, 3000) == kIOReturnSuccess
    checked_by_both(arena)


def test_a_slab_on_the_wrong_spare_list_is_found_by_both_walks(arena: Arena) -> None:
    """An empty slab of the small span moved to its owner's big-span spare list: the marks and
    the count of listed slabs still agree, only the entry's own rule (owner, span, mark) sees
    it (heap.mutant.13044, seed 8, skipped that rule and went unnoticed)."""
    pointer = arena.malloc(100)
    assert arena.free(pointer, 100) == kIOReturnSuccess  # kept: empty, on the spare list
    (slab,) = heap_decoder.decode(arena).heap.slabs
    assert heap_oracle.slab_span_index(slab.size_class) == 0
    heads = dict(_spare_heads(arena))
    field = heap_decoder.layouts().heap_state["slab_spare"]
    base = heap_decoder.symbols().heap_state + field.offset
    small, big = (
        base + 8 * (slab.owner * heap_oracle.SLAB_SPANS),
        base + 8 * (slab.owner * heap_oracle.SLAB_SPANS + 1),
    )
    assert heads[small] == slab.descriptor and heads[big] == 0
    arena.write(small, bytes(8))
    arena.write(big, slab.descriptor.to_bytes(8, "little"))
    try:
        result = arena.heap_check()
        assert (
            result.error == "slab on the wrong spare list, or not marked spare"
            and result.where == slab.descriptor
        )
        assert any("spare list (0,1)" in p for p in heap_oracle.problems(heap_decoder.decode(arena)))
    finally:
        arena.write(big, bytes(8))
        arena.write(small, slab.descriptor.to_bytes(8, "little"))
    checked_by_both(arena)
