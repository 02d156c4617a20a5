"""Shared pieces of the heap and object hardware tests (not a test module)."""

from __future__ import annotations

from harness.addresses import PhysAddr
from harness.guest import Guest
from harness.models.heap import HeapModel
from harness.oracle import heap as heap_oracle

HEAP_LARGE_MIN = heap_oracle.HEAP_LARGE_MIN
CHUNK_SIZE = 256 * 1024


def class_starts(sl_shift: int = 5, fl_shift: int = 9) -> list[int]:
    """The lower bound of every TLSF size class below the large threshold (heap.h)."""
    starts = list(range(0, 1 << fl_shift, 16))
    for top in range(fl_shift, 17):
        step = 1 << (top - sl_shift)
        starts += [(1 << top) + i * step for i in range(1 << sl_shift)]
    return starts


def model_for(guest: Guest) -> HeapModel:
    """A model whose heap range is the page allocator's, as the host decodes it."""
    pages = guest.heap_snapshot().pages
    return HeapModel(heap=(pages.base, pages.size))


def fill(guest: Guest, va: int, size: int, byte: int) -> None:
    """Write a block's bytes from the host (the guest is idle between requests)."""
    if size:
        guest.ram.write(PhysAddr(va), bytes([byte]) * size)


def intact(guest: Guest, va: int, size: int, byte: int) -> bool:
    return guest.ram.read(PhysAddr(va), size) == bytes([byte]) * size


def zeroed(guest: Guest, va: int, size: int) -> bool:
    return guest.ram.read(PhysAddr(va), size) == bytes(size)


def decoded_and_compared(guest: Guest, model: HeapModel) -> heap_oracle.Snapshot:
    """Host decoder: every invariant holds, and the state is exactly the model's."""
    snapshot = guest.heap_verify()
    model.compare_snapshot(snapshot)
    return snapshot


# The stats keys that describe allocator state (not call counters, not other subsystems).
STATE_STATS = (
    "heap_used",
    "heap_free",
    "pages_free",
    "pages_total",
    "heap_blocks",
    "heap_free_blocks",
    "heap_chunks",
    "heap_large",
    "heap_large_pages",
    "objects",
    "pt_used",
    "pt_total",
)


def baseline_state(guest: Guest) -> tuple[dict[str, int], tuple[object, ...]]:
    """The allocator stats a full free must restore and the canonical decoded state."""
    stats = guest.stats()
    return {k: stats[k] for k in STATE_STATS}, guest.heap_verify().canonical
