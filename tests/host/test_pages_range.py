"""pages_alloc_in (firmware/mm/pages.c): a block inside a physical window, for bounce pages below
a device's reach and buffers kept above 4 GiB (docs/dma.md). Checked against the allocator's own
integrity walk and a random model of what was handed out."""

from __future__ import annotations

import ctypes
import random

from hostlib import (
    PAGE_OWNER_KERNEL,
    Arena,
    PhysAddr,
    kIOReturnBadArgument,
    kIOReturnNoMemory,
    kIOReturnSuccess,
)

SIZE = 4 << 20
PAGE = 4096


def alloc_in(arena: Arena, order: int, low: int, high: int) -> tuple[int, int]:
    fn = arena.lib.pages_alloc_in
    fn.restype = ctypes.c_int32
    fn.argtypes = [ctypes.c_uint, ctypes.c_int, PhysAddr, PhysAddr, ctypes.POINTER(PhysAddr)]
    out = PhysAddr()
    ret = fn(order, PAGE_OWNER_KERNEL, PhysAddr(low), PhysAddr(high), ctypes.byref(out))
    return ret, out.pa


def test_block_lies_inside_the_window_and_is_aligned() -> None:
    arena = Arena(SIZE, PAGE, heap=False)
    rng = random.Random(1)
    held: list[tuple[int, int]] = []
    for _ in range(300):
        order = rng.randrange(0, 4)
        low = arena.base + rng.randrange(0, SIZE // PAGE) * PAGE
        high = low + rng.randrange(1, 64) * PAGE
        ret, pa = alloc_in(arena, order, low, high)
        if ret == kIOReturnSuccess:
            size = PAGE << order
            assert low <= pa and pa + size <= high and pa % size == 0
            assert all(pa + size <= a or a + s <= pa for a, s in held), "handed out twice"
            held.append((pa, size))
        else:
            assert ret == kIOReturnNoMemory
        assert arena.pages_check().ok
    free_before = arena.pages_stats()["free_pages"]
    for pa, _size in held:
        assert arena.pages_free(pa) == kIOReturnSuccess
    assert arena.pages_stats()["free_pages"] == free_before + sum(s for _, s in held) // PAGE
    assert arena.pages_check().ok


def test_empty_or_too_small_window_and_bad_arguments() -> None:
    arena = Arena(SIZE, PAGE, heap=False)
    assert alloc_in(arena, 0, 0, arena.base)[0] == kIOReturnNoMemory  # everything is above
    assert alloc_in(arena, 2, arena.base + SIZE - 2 * PAGE, arena.base + SIZE)[0] == kIOReturnNoMemory
    assert alloc_in(arena, 40, arena.base, arena.base + SIZE)[0] == kIOReturnBadArgument
    ret, pa = alloc_in(arena, 0, arena.base + SIZE - PAGE, 2**64 - 1)
    assert ret == kIOReturnSuccess and pa == arena.base + SIZE - PAGE
    assert arena.pages_check().ok
