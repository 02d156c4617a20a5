"""The physical page allocator (firmware/mm/pages.c) on a host buffer, through ctypes."""

from __future__ import annotations

import ctypes
import random

import pytest
from hostlib import (
    PAGE_OWNER_BUFFER,
    PAGE_OWNER_COUNT,
    PAGE_OWNER_HEAP_CHUNK,
    PAGE_OWNER_KERNEL,
    PAGE_STATE_CONTINUATION,
    PAGE_STATE_FREE,
    PAGE_STATE_OWNED,
    PAGE_STATE_RESERVED,
    Arena,
    PageBlock,
    PhysAddr,
    kIOReturnBadArgument,
    kIOReturnNoMemory,
    kIOReturnSuccess,
    load,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from harness.oracle.pages import PAGES_NO_PAGE, PAGES_ORDER_COUNT, page_byte, page_order, page_state

GRANULES = [4096, 16384, 65536]


def info_bytes() -> bytes:
    """The page bytes, decoded from the ``pages_state`` global as the harness will."""
    state = Arena.state()
    return ctypes.string_at(state.info, state.page_count)


def allocator_image() -> tuple[bytes, tuple[int, ...], tuple[int, ...], int]:
    """Everything that must come back unchanged: page bytes, list heads and lengths, free pages."""
    state = Arena.state()
    return info_bytes(), tuple(state.free_head), tuple(state.free_blocks), state.free_pages


def _check(arena: Arena) -> None:
    result = arena.pages_check()
    assert result.ok, f"{result.error} at {result.where:#x}"


@pytest.fixture(params=GRANULES, ids=lambda size: f"{size // 1024}k")
def arena(request: pytest.FixtureRequest) -> Arena:
    page_size: int = request.param
    return Arena(256 * page_size, page_size, heap=False)


# ------------------------------------------------------------------ init


@pytest.mark.parametrize("page_size", [0, 1, 2048, 8192, 4097, 32768, 1 << 20])
def test_init_rejects_a_page_size_that_is_not_a_granule(page_size: int) -> None:
    lib = load()
    buffer = ctypes.create_string_buffer(1 << 20)
    assert lib.pages_init(PhysAddr(ctypes.addressof(buffer)), 1 << 20, page_size) == kIOReturnBadArgument


def test_init_rejects_a_wrapping_or_empty_range() -> None:
    lib = load()
    assert lib.pages_init(PhysAddr(2**64 - 4096), 8192, 4096) == kIOReturnBadArgument
    assert lib.pages_init(PhysAddr(0x1000), 0, 4096) == kIOReturnNoMemory
    # Two pages: one holds the metadata, but the range must keep at least one more.
    buffer = ctypes.create_string_buffer(3 * 4096)
    base = (ctypes.addressof(buffer) + 4095) & ~4095
    assert lib.pages_init(PhysAddr(base), 4096, 4096) == kIOReturnNoMemory


def test_init_lays_out_metadata_then_free_pages(arena: Arena) -> None:
    state = Arena.state()
    stats = arena.pages_stats()
    assert state.page_count == 256
    assert state.reserved_pages >= 1
    assert stats["total_pages"] == 256 - state.reserved_pages == stats["free_pages"]
    assert stats["page_size"] == arena.page_size
    assert stats["base"] == arena.base
    info = info_bytes()
    assert all(byte == PAGE_STATE_RESERVED for byte in info[: state.reserved_pages])
    assert all(page_state(byte) == PAGE_STATE_FREE for byte in info[state.reserved_pages :])
    _check(arena)


def test_unaligned_range_is_rounded_inward() -> None:
    lib = load()
    buffer = ctypes.create_string_buffer(64 * 4096)
    base = ((ctypes.addressof(buffer) + 4095) & ~4095) + 100
    assert lib.pages_init(PhysAddr(base), 40 * 4096, 4096) == kIOReturnSuccess
    state = Arena.state()
    assert state.base == (base + 4095) & ~4095
    assert state.page_count == 39  # the partial pages at both ends are left out


# ------------------------------------------------------------------ alloc / free


@pytest.mark.parametrize("order", range(7))
def test_blocks_are_naturally_aligned_physically(arena: Arena, order: int) -> None:
    ret, pa = arena.pages_alloc(order)
    assert ret == kIOReturnSuccess
    assert pa % (arena.page_size << order) == 0
    block = arena.block_containing(pa + (arena.page_size << order) - 1)
    assert block is not None
    assert (block.start.pa, block.order, block.state) == (pa, order, PAGE_STATE_OWNED + PAGE_OWNER_KERNEL)
    _check(arena)


def test_page_bytes_describe_every_page_of_a_block(arena: Arena) -> None:
    ret, pa = arena.pages_alloc(3, PAGE_OWNER_BUFFER)
    assert ret == kIOReturnSuccess
    first = (pa - Arena.state().base) // arena.page_size
    expected = page_byte(PAGE_STATE_OWNED + PAGE_OWNER_BUFFER, 3)
    assert info_bytes()[first : first + 8] == bytes([expected]) * 8
    assert page_order(expected) == 3


def test_exhaustion_then_free_restores_the_exact_state(arena: Arena) -> None:
    baseline = allocator_image()
    total = arena.pages_stats()["total_pages"]
    pages = []
    while True:
        ret, pa = arena.pages_alloc(0)
        if ret != kIOReturnSuccess:
            assert ret == kIOReturnNoMemory
            break
        pages.append(pa)
    assert len(pages) == total == len(set(pages))
    assert arena.pages_stats()["free_pages"] == 0
    assert arena.pages_alloc(0)[0] == kIOReturnNoMemory
    _check(arena)
    random.Random(7).shuffle(pages)
    for pa in pages:
        assert arena.pages_free(pa) == kIOReturnSuccess
    assert allocator_image()[0] == baseline[0]
    assert allocator_image()[2:] == baseline[2:]
    _check(arena)


def test_free_coalesces_buddies(arena: Arena) -> None:
    ret, big = arena.pages_alloc(4)
    assert ret == kIOReturnSuccess
    assert arena.pages_free(big) == kIOReturnSuccess
    before = allocator_image()
    smalls = [arena.pages_alloc(0)[1] for _ in range(16)]
    for pa in reversed(smalls):
        assert arena.pages_free(pa) == kIOReturnSuccess
    assert allocator_image()[0] == before[0]
    # After coalescing, an order-4 block is available again at the same place.
    assert arena.pages_alloc(4) == (kIOReturnSuccess, big)


def test_bad_frees_are_rejected_and_change_nothing(arena: Arena) -> None:
    ret, pa = arena.pages_alloc(2)
    assert ret == kIOReturnSuccess
    image = allocator_image()
    page = arena.page_size
    state = Arena.state()
    for bad, owner in [
        (pa + page, PAGE_OWNER_KERNEL),  # a page inside the block
        (pa + 1, PAGE_OWNER_KERNEL),  # not page aligned
        (pa, PAGE_OWNER_HEAP_CHUNK),  # the wrong owner
        (pa, PAGE_OWNER_COUNT),  # no such owner
        (state.base, PAGE_OWNER_KERNEL),  # the metadata pages
        (state.base - page, PAGE_OWNER_KERNEL),  # below the range
        (state.base + state.page_count * page, PAGE_OWNER_KERNEL),  # past the range
        (0, PAGE_OWNER_KERNEL),
    ]:
        assert arena.pages_free(bad, owner) == kIOReturnBadArgument, hex(bad)
        assert allocator_image() == image
    assert arena.pages_free(pa) == kIOReturnSuccess
    image = allocator_image()
    assert arena.pages_free(pa) == kIOReturnBadArgument  # double free
    assert allocator_image() == image
    _check(arena)


def test_bad_orders_and_owners_are_rejected(arena: Arena) -> None:
    assert arena.pages_alloc(PAGES_ORDER_COUNT)[0] == kIOReturnBadArgument
    assert arena.pages_alloc(0, PAGE_OWNER_COUNT)[0] == kIOReturnBadArgument
    assert arena.pages_alloc(20)[0] == kIOReturnNoMemory  # valid order, far too large


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_order_for(count: int) -> None:
    assert load().pages_order_for(count) == [0, 0, 1, 2][count]


def test_order_for_large_counts() -> None:
    lib = load()
    for shift in range(1, 40):
        assert lib.pages_order_for(1 << shift) == shift
        assert lib.pages_order_for((1 << shift) + 1) == shift + 1


# ------------------------------------------------------------------ contiguous runs


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 8, 9, 13, 31, 33])
def test_contig_takes_exactly_the_pages_asked_for(arena: Arena, count: int) -> None:
    image = allocator_image()
    free_before = arena.pages_stats()["free_pages"]
    ret, pa = arena.pages_alloc_contig(count)
    assert ret == kIOReturnSuccess
    assert arena.pages_stats()["free_pages"] == free_before - count
    _check(arena)
    # Every page of the run is held; the page after it is not part of it.
    info = info_bytes()
    first = (pa - Arena.state().base) // arena.page_size
    states = [page_state(byte) for byte in info[first : first + count]]
    assert states[0] == PAGE_STATE_OWNED + PAGE_OWNER_KERNEL
    assert all(s in (PAGE_STATE_OWNED + PAGE_OWNER_KERNEL, PAGE_STATE_CONTINUATION) for s in states)
    assert arena.pages_free_contig(pa, count) == kIOReturnSuccess
    assert allocator_image() == image


@pytest.mark.parametrize("alignment_pages", [2, 4, 16, 64])
def test_contig_alignment_above_a_page(arena: Arena, alignment_pages: int) -> None:
    alignment = alignment_pages * arena.page_size
    ret, pa = arena.pages_alloc_contig(3, alignment)
    assert ret == kIOReturnSuccess
    assert pa % alignment == 0
    assert arena.pages_free_contig(pa, 3) == kIOReturnSuccess
    _check(arena)


def test_contig_alignment_must_be_a_power_of_two(arena: Arena) -> None:
    assert arena.pages_alloc_contig(1, 3 * arena.page_size)[0] == kIOReturnBadArgument
    assert arena.pages_alloc_contig(0)[0] == kIOReturnBadArgument
    assert arena.pages_alloc_contig(1, 1)[0] == kIOReturnSuccess  # <= a page: page alignment


def test_contig_run_cannot_be_freed_piecemeal(arena: Arena) -> None:
    ret, pa = arena.pages_alloc_contig(7)  # blocks of 4, 2, 1 pages
    assert ret == kIOReturnSuccess
    image = allocator_image()
    page = arena.page_size
    assert arena.pages_free(pa) == kIOReturnBadArgument  # the head alone would orphan the rest
    assert arena.pages_free(pa + 4 * page) == kIOReturnBadArgument  # a continuation block
    assert arena.pages_free(pa + 6 * page) == kIOReturnBadArgument
    assert arena.pages_free_contig(pa, 6) == kIOReturnBadArgument  # shorter than the run
    assert arena.pages_free_contig(pa, 5) == kIOReturnBadArgument
    assert arena.pages_free_contig(pa, 8) == kIOReturnBadArgument  # longer than the run
    assert arena.pages_free_contig(pa + 4 * page, 3) == kIOReturnBadArgument
    assert arena.pages_free_contig(pa, 7, PAGE_OWNER_BUFFER) == kIOReturnBadArgument
    assert allocator_image() == image
    assert arena.pages_free_contig(pa, 7) == kIOReturnSuccess
    assert arena.pages_free_contig(pa, 7) == kIOReturnBadArgument  # double free
    _check(arena)


def test_power_of_two_runs_free_either_way(arena: Arena) -> None:
    ret, pa = arena.pages_alloc_contig(4)
    assert ret == kIOReturnSuccess
    assert arena.pages_free(pa) == kIOReturnSuccess
    ret, pa = arena.pages_alloc(2)
    assert ret == kIOReturnSuccess
    assert arena.pages_free_contig(pa, 4) == kIOReturnSuccess
    _check(arena)


def test_block_next_walks_every_block(arena: Arena) -> None:
    lib = load()
    arena.pages_alloc_contig(5)
    arena.pages_alloc(1)
    state = Arena.state()
    cursor = state.base
    pages = 0
    block = PageBlock()
    while lib.pages_block_next(PhysAddr(cursor), ctypes.byref(block)):
        assert block.start.pa == cursor
        pages += 1 << block.order
        cursor = block.start.pa + (arena.page_size << block.order)
    assert pages == state.page_count


# ------------------------------------------------------------------ integrity check


def test_check_reports_a_corrupt_page_byte(arena: Arena) -> None:
    ret, pa = arena.pages_alloc(2)
    assert ret == kIOReturnSuccess
    state = Arena.state()
    index = (pa - state.base) // arena.page_size + 1
    saved = state.info[index]
    state.info[index] = page_byte(PAGE_STATE_FREE, 2)
    result = arena.pages_check()
    assert not result.ok
    assert result.error == "page byte differs from its block head"
    assert result.where == pa + arena.page_size
    state.info[index] = saved
    _check(arena)


def test_check_reports_a_broken_free_list(arena: Arena) -> None:
    state = Arena.state()
    order = next(o for o in range(PAGES_ORDER_COUNT) if state.free_blocks[o] > 0)
    head = state.free_head[order]
    state.free_prev[head] = 0
    result = arena.pages_check()
    assert not result.ok
    assert result.error is not None and "back link" in result.error
    state.free_prev[head] = PAGES_NO_PAGE
    _check(arena)


def test_check_reports_uncoalesced_buddies(arena: Arena) -> None:
    state = Arena.state()
    ret, pa = arena.pages_alloc(1)
    assert ret == kIOReturnSuccess
    index = (pa - state.base) // arena.page_size
    # Mark both halves free order 0 by hand, without telling the lists.
    state.info[index] = state.info[index + 1] = page_byte(PAGE_STATE_FREE, 0)
    result = arena.pages_check()
    assert not result.ok
    assert result.error == "free buddies not coalesced"


# ------------------------------------------------------------------ model-based


class PagesMachine(RuleBasedStateMachine):
    """Random alloc / contig / free / bad free against a model of who holds which pages."""

    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.arena = Arena(128 * 4096, 4096, heap=False)
        self.total = self.arena.pages_stats()["total_pages"]
        self.held: dict[int, tuple[bool, int, int]] = {}  # pa -> (is_run, pages, owner)

    def _held_pages(self) -> int:
        return sum(pages for _, pages, _ in self.held.values())

    def _overlaps(self, pa: int, pages: int) -> bool:
        end = pa + pages * 4096
        return any(pa < p + n * 4096 and p < end for p, (_, n, _) in self.held.items())

    @rule(target=blocks, order=st.integers(0, 6), owner=st.integers(0, PAGE_OWNER_COUNT - 1))
    def alloc(self, order: int, owner: int) -> int:
        ret, pa = self.arena.pages_alloc(order, owner)
        if ret == kIOReturnNoMemory:
            return 0
        assert ret == kIOReturnSuccess
        assert pa % (4096 << order) == 0
        assert not self._overlaps(pa, 1 << order)
        self.held[pa] = (False, 1 << order, owner)
        return pa

    @rule(target=blocks, count=st.integers(1, 40), align_shift=st.integers(0, 6))
    def contig(self, count: int, align_shift: int) -> int:
        ret, pa = self.arena.pages_alloc_contig(count, 4096 << align_shift, PAGE_OWNER_BUFFER)
        if ret == kIOReturnNoMemory:
            return 0
        assert ret == kIOReturnSuccess
        assert pa % (4096 << align_shift) == 0
        assert not self._overlaps(pa, count)
        self.held[pa] = (True, count, PAGE_OWNER_BUFFER)
        return pa

    @rule(pa=consumes(blocks))
    def free(self, pa: int) -> None:
        if pa not in self.held:
            assert self.arena.pages_free(pa) == kIOReturnBadArgument
            return
        is_run, pages, owner = self.held.pop(pa)
        if is_run:
            assert self.arena.pages_free_contig(pa, pages, owner) == kIOReturnSuccess
        else:
            assert self.arena.pages_free(pa, owner) == kIOReturnSuccess

    @rule(pa=blocks, delta=st.integers(-2, 2))
    def free_wrong(self, pa: int, delta: int) -> None:
        image = allocator_image()
        held = self.held.get(pa)
        if held is None:
            # Already freed (or never allocated): a double free.
            assert self.arena.pages_free(pa) == kIOReturnBadArgument
        elif held[0]:
            if delta != 0 and held[1] + delta > 0:
                assert self.arena.pages_free_contig(pa, held[1] + delta, held[2]) == kIOReturnBadArgument
        else:
            wrong_owner = (held[2] + 1) % PAGE_OWNER_COUNT
            assert self.arena.pages_free(pa, wrong_owner) == kIOReturnBadArgument
        assert allocator_image() == image

    @invariant()
    def consistent(self) -> None:
        result = self.arena.pages_check()
        assert result.ok, f"{result.error} at {result.where:#x}"
        assert self.arena.pages_stats()["free_pages"] == self.total - self._held_pages()


TestPagesMachine = PagesMachine.TestCase
TestPagesMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("page", [1, 7, 8, 13, 31])
def test_check_finds_a_corrupt_page_byte_anywhere_in_a_large_block(arena: Arena, page: int) -> None:
    """pages_check compares a block's page bytes eight at a time where aligned: a wrong byte
    before, inside and after the aligned words of a 32-page block is found, at its own page."""
    ret, pa = arena.pages_alloc(5)
    assert ret == kIOReturnSuccess
    state = Arena.state()
    index = (pa - state.base) // arena.page_size + page
    saved = state.info[index]
    state.info[index] = page_byte(PAGE_STATE_FREE, 5)
    result = arena.pages_check()
    assert not result.ok
    assert result.error == "page byte differs from its block head"
    assert result.where == pa + page * arena.page_size
    state.info[index] = saved
    _check(arena)
