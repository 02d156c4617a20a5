"""H1: IOMalloc / IOMallocZero / IOFree / IONew / IONewZero / IODelete / IOSafeDeleteNULL on
the guest (driverkit-memory.md §0.1-§5), every claim checked against an independent source:
guest RAM read by the host, the allocators' state decoded by the host from RAM with the ELF's
symbols and DWARF (harness/oracle/heap.py), and the ELF's DWARF for type widths.

The file is not called test_heap.py: tests/host has one, and pytest's default import mode
needs distinct basenames.
"""

from __future__ import annotations

import random

import pytest
from elftools.elf.elffile import ELFFile
from heap_support import (
    HEAP_LARGE_MIN,
    baseline_state,
    class_starts,
    decoded_and_compared,
    fill,
    intact,
    model_for,
    zeroed,
)

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.models.heap import TYPE_SIZES, HeapModel
from harness.oracle import heap as heap_oracle
from harness.qemu.profile import Profile

SPEC_STATS = ("heap_used", "heap_free", "pages_free", "allocs", "frees")


def _in_heap(guest: Guest, va: int, size: int) -> bool:
    base, length = guest.info().heap
    return base <= va and va + max(size, 1) <= base + length


# ------------------------------------------------------------------ §0.1 type widths, from DWARF

WIDTHS = {
    "IOVirtualAddress": 8,
    "IOPhysicalAddress": 8,
    "IOPhysicalAddress32": 4,
    "IOPhysicalAddress64": 8,
    "IOPhysicalLength": 8,
    "IOPhysicalLength32": 4,
    "IOPhysicalLength64": 8,
    "IOByteCount": 8,
    "IOByteCount32": 4,
    "IOByteCount64": 8,
    "IOCacheMode": 4,
    "IOOptionBits": 4,
    "IOItemCount": 4,
}
DW_ATE_UNSIGNED = 0x07  # DWARF 5, 7.8 (0x08 is unsigned_char)


def _typedef_encodings(path: str) -> dict[str, int]:
    """DW_AT_encoding of the base type under each typedef (following typedef chains)."""
    out: dict[str, int] = {}
    with open(path, "rb") as handle:
        for cu in ELFFile(handle).get_dwarf_info().iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_typedef" or "DW_AT_name" not in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode()
                target = die
                while target is not None and target.tag != "DW_TAG_base_type":
                    target = (
                        target.get_DIE_from_attribute("DW_AT_type")
                        if "DW_AT_type" in target.attributes
                        else None
                    )
                if target is not None:
                    out.setdefault(name, int(target.attributes["DW_AT_encoding"].value))
    return out


@pytest.mark.profiles("virt-4k")  # one ELF serves every profile
def test_scalar_type_widths_and_signedness_from_dwarf(guest: Guest) -> None:
    sizes = guest.elf.dwarf.base_type_sizes()
    assert {name: sizes.get(name) for name in WIDTHS} == WIDTHS
    encodings = _typedef_encodings(str(guest.elf.path))
    assert {name: encodings.get(name) for name in WIDTHS} == dict.fromkeys(WIDTHS, DW_ATE_UNSIGNED)
    segment = guest.elf.dwarf.struct("IOAddressSegment")
    assert segment.size == 16
    assert {n: (f.offset, f.size) for n, f in segment.fields.items()} == {"address": (0, 8), "length": (8, 8)}
    # The protocol's TYPEs: the guest's sizeof against DWARF's (rec24/rec4096 are typedefs).
    types = guest.ok("types")
    dwarf_sizes = {
        "u8": 1,
        "u16": 2,
        "u32": 4,
        "u64": 8,
        "rec24": sizes["rec24"],
        "rec4096": sizes["rec4096"],
    }
    assert {name: types.number(name) for name in TYPE_SIZES} == dwarf_sizes == TYPE_SIZES


# ------------------------------------------------------------------ stats and check agree with the decoder


def test_stats_has_every_spec_key_and_agrees_with_the_decoder(guest: Guest) -> None:
    guest.alloc(100)
    guest.alloc(70_000)
    stats = guest.stats()
    for key in (*SPEC_STATS, "requests", "errors", "faults", "pt_used", "pt_total"):
        assert key in stats, key
    snap = guest.heap_verify()
    free_pages = sum(
        b.pages for b in snap.pages.blocks if b.state == snap.layouts.page_state["PAGE_STATE_FREE"]
    )
    assert stats["heap_used"] == snap.used_bytes == 70_100
    assert stats["heap_free"] == snap.free_bytes
    assert stats["pages_free"] == free_pages
    assert (
        (stats["allocs"], stats["frees"])
        == (snap.heap.counters["allocs"], snap.heap.counters["frees"])
        == (2, 0)
    )
    check = guest.check()
    assert check["blocks"] == len(snap.live_blocks()) == 2
    assert check["free"] == snap.free_bytes
    assert check["pages_free"] == free_pages


def test_stats_cut_to_the_keys_asked_for_says_what_the_full_reply_says(guest: Guest) -> None:
    """``stats keys=a,b`` (what the state machines ask after every step): exactly those keys, in
    the full reply's order, with the full reply's values; an unknown name is a bad argument."""
    guest.alloc(100)
    wanted = ["pages_free", "heap_used", "md_live", "maps_live", "dma_live", "pt_used", "allocs"]
    full = guest.ok("stats")
    cut = guest.ok(f"stats keys={','.join(wanted)}")
    assert list(cut.keys) == [key for key in full.keys if key in wanted]
    assert {key: cut.number(key) for key in wanted} == {key: full.number(key) for key in wanted}
    assert list(guest.ok("stats keys=requests").keys) == ["requests"]
    assert guest.ok("stats keys=requests").number("requests") == full.number("requests") + 3
    for bad in ("nosuchkey", "heap_used,", "heap_used,,allocs", "heap"):
        reply = guest.err(f"stats keys={bad}", "kIOReturnBadArgument")
        assert "unknown key" in reply.text and not reply.keys
    assert guest.stats("heap_used", "allocs") == {"heap_used": 100, "allocs": 1}


def test_accounting_sums_to_the_heap(guest: Guest) -> None:
    """free + used + metadata (+ padding, other owners) = the page allocator's range, exactly."""
    for size in (0, 1, 100, 5000, 65535, 65536, 300_000):
        guest.alloc(size)
    snap = guest.heap_verify()
    parts = heap_oracle.accounting(snap)
    assert sum(parts.values()) == snap.pages.size
    assert parts["used"] == guest.stats()["heap_used"] == sum((0, 1, 100, 5000, 65535, 65536, 300_000))
    assert parts["free_in_chunks"] == guest.stats()["heap_free"]
    base, length = guest.info().heap
    assert base <= snap.pages.base and snap.pages.end <= base + length  # the range lies in info heap=


# ------------------------------------------------------------------ §1 IOMalloc / IOMallocZero

SIZES = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4095, 4096, 65535, 65536, 100_000, 300_000]


def test_alloc_blocks_are_aligned_in_the_heap_writable_and_disjoint(guest: Guest) -> None:
    model = model_for(guest)
    for index, size in enumerate(SIZES):
        va = model.alloc(size, guest.request(f"alloc {size}"))
        assert va is not None and va % 16 == 0 and _in_heap(guest, va, size)
        if size:
            crc = guest.fill(VirtAddr(va), size, index + 1)  # written by the guest...
            assert guest.ram.read(PhysAddr(va), size) == bytes([index + 1]) * size  # ...seen by the host
            guest.ram.write(PhysAddr(va + size - 1), b"\xee")  # written by the host, read by the guest
            assert guest.read(VirtAddr(va + size - 1), 1) == b"\xee"
            assert crc
    decoded_and_compared(guest, model)  # disjoint, in chunks or runs, sizes as requested
    model.compare_check(guest.check(), guest.heap_snapshot())
    model.compare_stats(guest.stats())


@pytest.mark.parametrize("size", [8, 240, 5000, 65535, 65536, 200_000])
def test_zalloc_is_zero_after_the_same_block_was_freed_dirty(guest: Guest, size: int) -> None:
    va = guest.alloc(size)
    guest.fill(va, size, 0xAA)
    assert intact(guest, va, size, 0xAA)
    guest.free(va, size)
    again = guest.zalloc(size)
    assert again == va  # the dirty memory came back, so the zero fill is what is tested
    assert zeroed(guest, again, size)
    guest.heap_verify()


def test_alloc_zero_is_unique_and_freed_with_zero(guest: Guest) -> None:
    first, second = guest.alloc(0), guest.alloc(0)
    assert first != second and first % 16 == 0 and second % 16 == 0
    snap = guest.heap_verify()
    assert snap.live_blocks() == {first: 0, second: 0}
    guest.err(f"free {second:#x} 1", "kIOReturnBadArgument")
    guest.free(first, 0)
    guest.free(second, 0)
    assert guest.heap_verify().live_blocks() == {}


@pytest.mark.parametrize("size", [2**64 - 1, 2**63, 2**40, "heap+1"])
def test_a_request_that_cannot_be_met_is_no_memory_and_changes_nothing(guest: Guest, size: int | str) -> None:
    amount = guest.info().heap[1] + 1 if size == "heap+1" else int(size)
    before_stats, before_state = baseline_state(guest)
    counters = guest.stats()
    for verb in ("alloc", "zalloc"):
        guest.err(f"{verb} {amount:#x}", "kIOReturnNoMemory")
    after = guest.stats()
    assert after["alloc_failures"] == counters["alloc_failures"] + 2  # entered, refused
    assert (after["allocs"], after["frees"]) == (counters["allocs"], counters["frees"])
    assert baseline_state(guest) == (before_stats, before_state)
    guest.check()
    assert guest.alloc(64)  # still serving


# ------------------------------------------------------------------ §2 IOFree


def test_free_restores_usage_and_counts_one_free(guest: Guest) -> None:
    baseline = baseline_state(guest)
    before = guest.stats()
    va = guest.alloc(100)
    assert guest.stats()["heap_used"] == before["heap_used"] + 100
    guest.free(va, 100)
    after = guest.stats()
    assert after["frees"] == before["frees"] + 1 and after["heap_used"] == before["heap_used"]
    assert baseline_state(guest) == baseline  # decoded state byte for byte, free-list order aside


@pytest.mark.parametrize("size", [0, 24, 100, 4000, 65535, 65536, 200_000])
def test_bad_frees_are_rejected_and_change_nothing(guest: Guest, size: int) -> None:
    va = guest.alloc(size)
    neighbour = guest.alloc(64)
    fill(guest, va, size, 0x11)
    state = baseline_state(guest)
    counters = {k: guest.stats()[k] for k in ("allocs", "frees", "alloc_failures")}
    scratch, _ = guest.scratch()
    bad = [(va, wrong) for wrong in {size + 1, size - 1, size + 16, 0, 2**64 - 1} - {size} if wrong >= 0]
    bad += [(va + offset, size) for offset in (1, 8, 16, 32, 4096) if offset < max(size, 1)]
    bad += [
        (va - 16, size),  # the header
        (va - 32, size),
        (scratch, 16),  # not heap memory
        (guest.elf.symbol("heap_state").address, 16),  # the allocator's own state
        (0x10, 16),
        (va + 3, size),  # unaligned
    ]
    for pointer, length in bad:
        reply = guest.err(f"free {pointer:#x} {length:#x}", "kIOReturnBadArgument")
        assert "nothing freed" in reply.text
    assert baseline_state(guest) == state
    assert {k: guest.stats()[k] for k in counters} == counters
    assert intact(guest, va, size, 0x11)
    guest.check()
    guest.free(va, size)
    after = baseline_state(guest)
    guest.err(f"free {va:#x} {size:#x}", "kIOReturnBadArgument")  # double free
    assert baseline_state(guest) == after
    guest.free(neighbour, 64)


@pytest.mark.parametrize("size", [0, 64, 256])
def test_bad_frees_into_a_slab_are_rejected_and_change_nothing(guest: Guest, size: int) -> None:
    """The slab-only places a pointer can name, found by the host decoder: a slot never handed
    out, the slab header, the tail past the last slot (the next block's header), the middle of
    a slot; each is refused under every size, and nothing changes. Then the slot that was freed
    is refused too (its requested[] entry says free), while its slab lives on."""
    va, keep = guest.alloc(size), guest.alloc(size)
    slab = next(s for s in guest.heap_snapshot().heap.slabs if va in {s.slot(i) for i in s.used_slots()})
    never = next(slab.slot(i) for i in range(slab.slot_count) if slab.free_map >> i & 1)
    state = baseline_state(guest)
    bad = [never, slab.address, slab.address + slab.first - 16, slab.slot(slab.slot_count)]
    bad += [va + offset for offset in range(16, slab.slot_size, 16)]
    for pointer in bad:
        for length in {size, 0, 16}:
            reply = guest.err(f"free {pointer:#x} {length:#x}", "kIOReturnBadArgument")
            assert "nothing freed" in reply.text
    assert baseline_state(guest) == state
    guest.free(va, size)
    after = baseline_state(guest)
    assert guest.heap_snapshot().live_blocks().get(keep) == size  # the slab lives on
    guest.err(f"free {va:#x} {size:#x}", "kIOReturnBadArgument")  # double free of a slot
    assert baseline_state(guest) == after
    guest.free(keep, size)
    guest.heap_verify()


def test_free_null_is_a_no_op(guest: Guest) -> None:
    state, stats = baseline_state(guest), guest.stats()
    for size in (0, 16, 2**64 - 1):
        guest.ok(f"free 0x0 {size:#x}")
    assert baseline_state(guest) == state
    assert guest.stats()["frees"] == stats["frees"]


# ------------------------------------------------------------------ §3 IONew / IONewZero


@pytest.mark.parametrize("type_name", sorted(TYPE_SIZES))
def test_new_every_type(guest: Guest, type_name: str) -> None:
    model = model_for(guest)
    for count in (0, 1, 3, 17):
        reply = guest.request(f"new {type_name} {count}")
        va = model.new(type_name, count, reply)
        assert va is not None and reply.number("size") == TYPE_SIZES[type_name] * count
        assert va % 16 == 0  # at least _Alignof(type); [Rec] 16
    decoded_and_compared(guest, model)
    for va in model.plain_blocks():
        block = model.live[va]
        assert block.type_name is not None
        model.delete(
            va, block.type_name, block.count, guest.request(f"delete {va:#x} {block.type_name} {block.count}")
        )
    decoded_and_compared(guest, model)
    model.compare_stats(guest.stats())


def test_new_u64_3_is_24_bytes_16_aligned(guest: Guest) -> None:
    reply = guest.ok("new u64 3")
    assert reply.number("size") == 24 and reply.number("va") % 16 == 0
    assert guest.heap_verify().live_blocks() == {reply.number("va"): 24}


def test_newzero_rec24_10_is_240_zero_bytes_after_dirty_reuse(guest: Guest) -> None:
    va = guest.alloc(240)
    guest.fill(va, 240, 0xAA)
    guest.free(va, 240)
    reply = guest.ok("newzero rec24 10")
    assert reply.number("size") == 240 and reply.number("va") == va
    assert zeroed(guest, va, 240)


@pytest.mark.parametrize(
    ("type_name", "count"),
    [
        ("rec4096", 0x0010000000000000),  # 2^52 * 2^12 = 2^64: one past SIZE_MAX
        ("rec4096", 2**64 - 1),
        ("rec24", 2**64 // 24 + 1),
        ("u64", 2**61),
        ("u16", 2**63),
    ],
)
@pytest.mark.parametrize("verb", ["new", "newzero"])
def test_new_overflow_never_enters_the_allocator(guest: Guest, verb: str, type_name: str, count: int) -> None:
    state = baseline_state(guest)
    before = guest.stats()
    reply = guest.err(f"{verb} {type_name} {count:#x}", "kIOReturnNoMemory")
    assert "overflows" in reply.text
    after = guest.stats()
    # allocs AND alloc_failures unchanged: IOMalloc was not called at all (a call that fails
    # counts as a failure, see the control below).
    assert {k: after[k] for k in ("allocs", "frees", "alloc_failures")} == {
        k: before[k] for k in ("allocs", "frees", "alloc_failures")
    }
    assert baseline_state(guest) == state
    # Control: the largest count that does not overflow reaches the allocator, which says no.
    guest.err(f"{verb} u8 {2**64 - 1:#x}", "kIOReturnNoMemory")
    assert guest.stats()["alloc_failures"] == before["alloc_failures"] + 1


# ------------------------------------------------------------------ §4 IODelete, §5 IOSafeDeleteNULL


def test_delete_frees_and_leaves_the_pointer(guest: Guest) -> None:
    va = guest.new("u64", 3)
    frees = guest.stats()["frees"]
    assert guest.delete(va, "u64", 3) == (va, True)  # IODelete does not touch the variable
    assert guest.stats()["frees"] == frees + 1
    assert guest.heap_verify().live_blocks() == {}


def test_delete_with_a_wrong_count_is_rejected_and_keeps_the_block(guest: Guest) -> None:
    va = guest.new("u64", 3)
    fill(guest, va, 24, 0x77)
    state = baseline_state(guest)
    for type_name, count in (("u64", 4), ("u64", 2), ("u8", 25), ("rec24", 2), ("u64", 0)):
        reply = guest.err(f"delete {va:#x} {type_name} {count}", "kIOReturnBadArgument")
        assert reply.number("ptr") == va
    assert baseline_state(guest) == state
    assert guest.heap_verify().live_blocks() == {va: 24} and intact(guest, va, 24, 0x77)
    guest.check()
    # IODelete knows bytes, not types: u32 x 6 is the same 24 bytes, and it frees.
    assert guest.delete(va, "u32", 6) == (va, True)


def test_delete_with_an_overflowing_count_does_nothing(guest: Guest) -> None:
    va = guest.new("u64", 3)
    state, frees = baseline_state(guest), guest.stats()["frees"]
    assert guest.delete(va, "u64", 2**62) == (va, False)  # silent no-op, as in DriverKit
    assert guest.safedelete(va, "u64", 2**62) == (0, False)  # the variable is NULLed all the same
    assert baseline_state(guest) == state and guest.stats()["frees"] == frees
    assert guest.heap_verify().live_blocks() == {va: 24}


def test_safedelete_nulls_the_pointer_and_null_is_a_no_op(guest: Guest) -> None:
    va = guest.new("u64", 3)
    frees = guest.stats()["frees"]
    assert guest.safedelete(va, "u64", 3) == (0, True)
    assert guest.stats()["frees"] == frees + 1
    state = baseline_state(guest)
    assert guest.safedelete(0, "u64", 3) == (0, False)
    assert guest.delete(0, "u64", 3) == (0, False)
    assert guest.stats()["frees"] == frees + 1 and baseline_state(guest) == state


def test_safedelete_with_a_wrong_count_is_rejected_but_nulls_the_variable(guest: Guest) -> None:
    va = guest.new("u64", 3)
    reply = guest.err(f"safedelete {va:#x} u64 4", "kIOReturnBadArgument")
    assert reply.number("ptr") == 0  # IOSafeDeleteNULL sets ptr = NULL whatever IOFree did
    assert guest.heap_verify().live_blocks() == {va: 24}


# ------------------------------------------------------------------ size classes


def _slot_size(guest: Guest, va: int) -> int | None:
    """The slot size of the slab whose live slot starts at ``va`` (decoded by the host)."""
    for slab in guest.heap_snapshot().heap.slabs:
        if va in (slab.slot(i) for i in slab.used_slots()):
            return slab.slot_size
    return None


def test_every_size_class_boundary(guest: Guest) -> None:
    """Each TLSF class start s (and s +- 1 as requests s-16 +- 1): the block size in the header
    (read by the host), the free block's list after a free, and exact reuse of that block.
    Requests of at most HEAP_SLAB_MAX bytes take a slot of a slab of their class instead (no
    header): the slot size decoded by the host, and exact reuse of the slot."""
    layouts = guest.heap_layouts
    state = baseline_state(guest)
    guard = guest.alloc(0)
    for start in class_starts():
        if start < 32 or start - 16 >= HEAP_LARGE_MIN:
            continue
        for request in (start - 17, start - 16, start - 15):
            if not 0 <= request < HEAP_LARGE_MIN:
                continue
            va = guest.alloc(request)
            if request <= heap_oracle.HEAP_SLAB_MAX:
                want = heap_oracle.slab_slot_size(heap_oracle.slab_class(request))
                assert _slot_size(guest, va) == want, request
                guest.free(va, request)
                continue
            size = int.from_bytes(guest.ram.read(PhysAddr(va - 16), 4), "little")
            need = heap_oracle.small_block_size(request)
            assert need <= size < need + 32, (request, size)  # split unless the rest is < 32 bytes
            guest.free(va, request)
        # The block of exactly `start` bytes, freed next to a live block: its list, then reuse.
        va = guest.alloc(start - 16)
        # the live neighbour: the next slot of the same slab, or a block past the slabs
        keep_size = start - 16 if start - 16 <= heap_oracle.HEAP_SLAB_MAX else heap_oracle.HEAP_SLAB_MAX + 1
        keep = guest.alloc(keep_size)
        guest.free(va, start - 16)
        snap = guest.heap_snapshot()
        if start - 16 <= heap_oracle.HEAP_SLAB_MAX:  # the slot is free in its slab, then reused
            assert va not in snap.live_blocks() and _slot_size(guest, keep) is not None, start
        else:
            fl, sl = layouts.mapping_insert(start)
            assert va - 16 in {entry for entry, _ in snap.heap.free_lists.get((fl, sl), ())}, start
        assert guest.alloc(start - 16) == va, start  # the good-fit search finds that list first
        guest.free(va, start - 16)
        guest.free(keep, keep_size)
    chunks = len(guest.heap_verify().heap.chunks)
    # HEAP_LARGE_MIN and over: a block of a chunk the heap holds when one fits, else a page run
    small, big = guest.alloc(HEAP_LARGE_MIN - 1), guest.alloc(HEAP_LARGE_MIN)
    snap = guest.heap_verify()
    assert snap.heap.large == () and {small, big} <= {b.payload for c in snap.heap.chunks for b in c.blocks}
    largest = max(snap.free_blocks().values())
    over = largest - 16 + 1  # one byte more than the largest free block holds
    large = guest.alloc(over)
    assert large % guest.pagesize() == 16  # a page run, pointer 16 bytes in
    snap = guest.heap_verify()
    assert [lg.payload for lg in snap.heap.large] == [large] and len(snap.heap.chunks) == chunks  # none added
    guest.free(small, HEAP_LARGE_MIN - 1)
    guest.free(big, HEAP_LARGE_MIN)
    guest.free(large, over)
    guest.free(guard, 0)
    assert baseline_state(guest) == state


# ------------------------------------------------------------------ exhaustion

LADDER = [16 << 20, 4 << 20, 1 << 20, 256 << 10, HEAP_LARGE_MIN, 32 << 10, 8 << 10, 2 << 10, 512, 128, 32, 0]


def test_exhaustion_then_full_free_restores_the_baseline_exactly(guest: Guest) -> None:
    pre = [guest.alloc(size) for size in (40, 3000, 70_000)]  # live blocks before the baseline
    handle = guest.obj_new("IOMemTestObject").number("obj")
    stats, state = baseline_state(guest)
    live: list[tuple[int, int]] = []
    for size in LADDER:  # each size until it no longer fits: large blocks first, so it is fast
        while True:
            reply = guest.request(f"alloc {size}")
            if not reply.ok:
                assert reply.error == "kIOReturnNoMemory", reply.line
                break
            live.append((reply.number("va"), size))
    # Exhausted: nothing fits, the guest still serves, both integrity walks agree.
    guest.err("alloc 0", "kIOReturnNoMemory")
    guest.err("obj new OSObject", "kIOReturnNoMemory")
    guest.err("new u8 1", "kIOReturnNoMemory")
    snap = guest.heap_verify()
    assert len(snap.live_blocks()) == len(live) + len(pre) + 1
    assert guest.check()["blocks"] == len(live) + len(pre) + 1
    assert guest.stats()["heap_used"] == snap.used_bytes
    assert len(live) < 2000 * -(-guest.profile.ram_mib // 256)  # the ladder keeps it quick (per 256 MiB)
    random.Random(7).shuffle(live)
    for va, size in live:
        guest.free(va, size)
    assert baseline_state(guest) == (stats, state)  # every statistic and every byte of state
    guest.obj_release(handle)
    for va, size in zip(pre, (40, 3000, 70_000), strict=True):
        guest.free(va, size)


# ------------------------------------------------------------------ long random churn


def test_long_random_churn_against_the_model(guest: Guest, profile: Profile) -> None:
    """2000 random steps; every reply checked by the model, the decoded state every 50 steps."""
    rng = random.Random(profile.name)
    model: HeapModel = model_for(guest)
    state = baseline_state(guest)
    bytes_of: dict[int, int] = {}
    for step in range(2000):
        roll = rng.random()
        blocks = model.plain_blocks()
        if roll < 0.35 or not blocks:
            size = rng.choice(
                [rng.randrange(0, 600), rng.randrange(0, HEAP_LARGE_MIN), rng.randrange(0, 300_000)]
            )
            verb = rng.choice(["alloc", "zalloc"])
            va = model.alloc(size, guest.request(f"{verb} {size}"), zero=verb == "zalloc")
            if va is not None:
                if verb == "zalloc":
                    assert zeroed(guest, va, size)
                bytes_of[va] = step % 251 + 1
                fill(guest, va, size, bytes_of[va])
        elif roll < 0.45:
            type_name = rng.choice(sorted(TYPE_SIZES))
            count = rng.randrange(0, 50)
            va = model.new(type_name, count, guest.request(f"new {type_name} {count}"))
            if va is not None:
                bytes_of[va] = step % 251 + 1
                fill(guest, va, model.live[va].size, bytes_of[va])
        elif roll < 0.55:
            handle = model.obj_new("IOMemTestObject", guest.request("obj new IOMemTestObject"))
            assert handle is not None
        elif roll < 0.65 and model.objects:
            handle = rng.choice(model.live_handles())
            model.obj_release(handle, guest.request(f"obj release {handle:#x}"))
        elif roll < 0.7:
            va = rng.choice(blocks)
            model.free(va, model.live[va].size + 1, guest.request(f"free {va:#x} {model.live[va].size + 1}"))
        else:
            va = rng.choice(blocks)
            size = model.live[va].size
            assert intact(guest, va, size, bytes_of.pop(va)), f"step {step}: live block {va:#x} overwritten"
            model.free(va, size, guest.request(f"free {va:#x} {size}"))
        if step % 50 == 49:
            decoded_and_compared(guest, model)
            model.compare_stats(guest.stats())
    for va in model.plain_blocks():
        model.free(va, model.live[va].size, guest.request(f"free {va:#x} {model.live[va].size}"))
    for handle in model.live_handles():
        model.obj_release(handle, guest.request(f"obj release {handle:#x}"))
    decoded_and_compared(guest, model)
    assert baseline_state(guest) == state


# ------------------------------------------------------------------ corruption is reported, by both walks


def test_a_damaged_header_is_reported_by_check_and_by_the_decoder(guest: Guest) -> None:
    va = guest.alloc(2100)  # past the slabs (HEAP_SLAB_MAX): a block with a header
    guest.alloc(2100)
    header = PhysAddr(va - 16)
    saved = guest.ram.read(header, 16)
    guest.ram.write(PhysAddr(va - 16 + 8), (2101).to_bytes(4, "little"))  # requested: 2100 -> 2101
    reply = guest.err("check", "kIOReturnInternalError")
    assert reply.value("allocator") == "heap" and reply.number("at") == va - 16
    assert "checksum" in reply.text
    found = heap_oracle.problems(guest.heap_snapshot())
    assert any(f"{va - 16:#x}" in p and "checksum" in p for p in found), found
    ledger.checked("check", "err.allocator", "heap-decoder")  # the decoder finds it in the heap too
    ledger.checked("check", "err.at", "heap-decoder")  # ... at that header
    guest.err(f"free {va:#x} 2101", "kIOReturnBadArgument")  # a damaged header is not followed
    guest.err(f"free {va:#x} 2100", "kIOReturnBadArgument")
    guest.ram.write(header, saved)
    guest.check()
    guest.heap_verify()
    guest.free(va, 2100)


def test_a_damaged_slab_is_reported_by_check_and_by_the_decoder(guest: Guest) -> None:
    """The slab form of the test above: a slab descriptor (in its chunk's header) whose slot
    size is overwritten fails its checksum, and check and the decoder both name it; put back,
    the slab's slots free as before."""
    va = guest.alloc(64)
    neighbour = guest.alloc(64)
    slab = next(s for s in guest.heap_snapshot().heap.slabs if va in (s.slot(i) for i in s.used_slots()))
    field = guest.heap_layouts.heap_slab["slot_size"]
    where = PhysAddr(slab.descriptor + field.offset)
    saved = guest.ram.read(where, field.size)
    guest.ram.write(where, (32).to_bytes(field.size, "little"))
    reply = guest.err("check", "kIOReturnInternalError")
    assert reply.value("allocator") == "heap" and reply.number("at") == slab.descriptor
    assert "slab descriptor damaged" in reply.text
    found = heap_oracle.problems(guest.heap_snapshot())
    assert any(f"slab {slab.address:#x}" in p and "descriptor damaged" in p for p in found), found
    guest.ram.write(where, saved)
    guest.check()
    guest.heap_verify()
    guest.free(va, 64)
    guest.free(neighbour, 64)


def test_a_damaged_page_byte_is_reported_by_check_and_by_the_decoder(guest: Guest) -> None:
    snap = guest.heap_verify()
    free_state = snap.layouts.page_state["PAGE_STATE_FREE"]
    block = next(b for b in snap.pages.blocks if b.state == free_state and b.order >= 1)
    info = guest.heap_layouts.page_allocator
    raw = guest.ram.read(PhysAddr(guest.elf.symbol("pages_state").address), info.size)
    byte_pa = PhysAddr(info.read(raw, "info") + block.index + 1)  # the block's second page
    saved = guest.ram.read(byte_pa, 1)
    guest.ram.write(byte_pa, bytes([saved[0] ^ 0x20]))  # another state
    reply = guest.err("check", "kIOReturnInternalError")
    assert reply.value("allocator") == "pages"
    assert heap_oracle.problems(guest.heap_snapshot())
    guest.ram.write(byte_pa, saved)
    guest.check()
    guest.heap_verify()


# ------------------------------------------------------------------ picolibc's arena, bench


def test_picolibc_arena_is_apart_from_the_heap_and_scratch(guest: Guest) -> None:
    elf = guest.elf
    start, end = elf.symbol("__heap_start").address, elf.symbol("__heap_end").address
    data = (elf.symbol("__data_start").address, elf.symbol("__data_end").address)
    assert data[0] <= start < end <= data[1] and end - start >= 1 << 20
    info = guest.info()
    for base, length in (info.heap, info.scratch):
        assert end <= base or base + length <= start
    state = baseline_state(guest)
    reply = guest.ok("bench heap 20000 max=4096", timeout=60)
    assert reply.number("iomem_failed") == reply.number("picolibc_failed") == 0
    assert reply.number("calls") == reply.number("picolibc_calls") == reply.number("stub_calls") >= 20000
    top = guest.ram.read_u64(PhysAddr(elf.symbol("__malloc_sbrk_top").address))  # picolibc's break
    assert start < top <= end
    assert baseline_state(guest) == state  # the workload freed every IOMalloc block
    guest.err("bench heap 0", "kIOReturnBadArgument")
