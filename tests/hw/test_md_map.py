"""IOMemoryDescriptor::CreateMapping and IOMemoryMap (driverkit-memory.md §9, §10.2, §12).

Every claim of the guest is checked against the host: the page walker (MAIR byte,
shareability, XN, permissions, the physical pages in order, unmapped guards), QEMU's own
``gva2gpa``, guest RAM read from the host, and CTR_EL0 read through the gdbstub.
"""

from __future__ import annotations

import os

import pytest

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import Baseline, Descriptors, Mapping_, Released
from harness.models.descriptors import (
    CACHE_MODES,
    DK_CACHE_OPTIONS,
    DK_FIXED_ADDRESS,
    DK_GUARD_LARGE,
    DK_GUARD_NONE,
    DK_GUARD_SMALL,
    DK_READ_ONLY,
    EXPECTED_MEMORY_TYPE,
    KERNEL_CACHE_SHIFT,
    Segment,
)
from harness.oracle.descriptors import pa_at, pages_of, unmapped, walk_runs
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import Fault, FaultKind, PageWalker, Translation
from harness.oracle.translation import perm_of
from harness.qemu.profile import Profile

FIXED_VA = 0x30_0000_0000  # inside the mapping area, far above what first fit hands out in a test
AREA = (0x10_0000_0000, 0x40_0000_0000)


@pytest.fixture
def mds(guest: Guest) -> Descriptors:
    return Descriptors(guest)


def _leaf(walker: PageWalker, va: int) -> Translation:
    result = walker.walk(va)
    assert isinstance(result, Translation), f"{va:#x}: {result}"
    return result


def _check_pages(guest: Guest, m: Mapping_, page: int) -> list[Translation]:
    """Three-way check of every page of a mapping; returns the walker's leaves."""
    walker = guest.walker()
    leaves = []
    for va in range(m.page_start(page), m.page_end(page), page):
        result = guest.check_translation(VirtAddr(va + 8), walker)
        assert isinstance(result, Translation)
        leaves.append(result)
    return leaves


def _assert_faults_everywhere(guest: Guest, va: int) -> None:
    """Unmapped in all three sources, and a guest access is a caught translation fault."""
    result = guest.check_translation(VirtAddr(va))
    assert isinstance(result, Fault) and result.kind is FaultKind.TRANSLATION
    assert guest.machine.gva2gpa(va) is None
    reply = guest.err(f"peek {va & ~7:#x}", "kIOReturnNotReadable")
    assert reply.value("fault") == "translation"


# --------------------------------------------------------------------------- §9.3: the ten modes
@pytest.mark.parametrize("mode", CACHE_MODES)
def test_cache_mode_memory_type_and_aliases(
    guest: Guest, mds: Descriptors, profile: Profile, mode: str
) -> None:
    page = profile.granule
    buf = mds.create(2 * page)
    m = mds.map(buf.md, cache=mode)
    assert (m.cache, m.perm, m.offset, m.length) == (mode, "rw", 0, 2 * page)
    want = EXPECTED_MEMORY_TYPE[mode]
    segments = mds.segments(buf.md)
    leaves = _check_pages(guest, m, page)  # guest translate == walker == gva2gpa on the PA
    for leaf in leaves:
        assert leaf.mair_byte == want.mair, f"{mode}: MAIR byte {leaf.mair_byte:#04x}, want {want.mair:#04x}"
        assert leaf.sh == want.sh, f"{mode}: shareability {leaf.sh}, want {want.sh}"
        assert leaf.uxn and leaf.pxn  # device / non-cacheable always; WB too (never executable)
        assert leaf.el1 == "rw" and leaf.af
    seen = guest.translate(m.va)
    assert seen.attr == want.mair
    assert walk_runs(guest.walker(), m.va, m.length) == segments

    # Bytes written through one alias read back through the other and sit in RAM.
    data = os.urandom(256)
    guest.write(VirtAddr(m.va + page - 128), data)
    assert guest.read(VirtAddr(buf.va + page - 128), 256) == data
    assert guest.ram.read(PhysAddr(segments[0].pa + page - 128), 128) == data[:128]
    back = os.urandom(64)
    guest.write(VirtAddr(buf.va + 8), back)
    assert guest.read(VirtAddr(m.va + 8), 64) == back


def test_aliases_of_every_mode_see_the_same_bytes(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    buf = mds.create(profile.granule)
    maps = [mds.map(buf.md, cache=mode) for mode in CACHE_MODES]
    assert len({m.va for m in maps}) == len(CACHE_MODES)
    for i, writer in enumerate(maps):
        data = os.urandom(32)
        guest.write(VirtAddr(writer.va + 64 * i), data)
        for reader in maps:
            assert guest.read(VirtAddr(reader.va + 64 * i), 32) == data, (writer.cache, reader.cache)
        assert guest.ram.read(PhysAddr(mds.segments(buf.md)[0].pa + 64 * i), 32) == data


def test_non_cacheable_aliases_are_cleaned_to_poc(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """DC CIVAC over the mapped pages before a non-cacheable or device alias exists (and again
    after it is gone), never for a cacheable one; the line size is CTR_EL0's, read by QEMU."""
    page = profile.granule
    with guest.gdb.stopped():
        ctr = guest.gdb.read_register("ctr_el0")
    line = 4 << ((ctr >> 16) & 0xF)
    stats = mds.stats()
    assert stats["dline"] == line
    ledger.checked("stats", "dline", "gdbstub")
    buf = mds.create(2 * page + 1)  # 3 pages
    for mode in CACHE_MODES:
        before = mds.stats()["dc_civac"]
        m = mds.map(buf.md, cache=mode)
        after_map = mds.stats()["dc_civac"]
        assert m.map is not None
        mds.map_release(m.map)
        after_release = mds.stats()["dc_civac"]
        lines = 3 * page // line
        if EXPECTED_MEMORY_TYPE[mode].cacheable:
            assert after_release == before, mode
        else:
            assert (after_map - before, after_release - after_map) == (lines, lines), mode
        ledger.checked("stats", "dc_civac", "model")
    # A sub-page mapping still maintains the whole pages it maps.
    before = mds.stats()["dc_civac"]
    mds.map(buf.md, cache="writecombine", offset=page + 3, length=5)
    assert mds.stats()["dc_civac"] - before == page // line


# --------------------------------------------------------------------------- §9.2: the option word
@pytest.mark.parametrize("word", sorted(DK_CACHE_OPTIONS))
def test_driverkit_cache_option_words(guest: Guest, mds: Descriptors, word: int) -> None:
    """0x200/0x400/0x800 are Copyback/WriteThrough/RealTime; a decoder that shifted the word
    like a kernel kIOMap* value would give WriteThru/WriteCombine/PostedReordered instead."""
    buf = mds.create(100)
    m = mds.map(buf.md, options=word)
    mode = DK_CACHE_OPTIONS[word]
    assert m.cache == mode
    leaf = _leaf(guest.walker(), m.va)
    assert leaf.mair_byte == EXPECTED_MEMORY_TYPE[mode].mair
    trap = CACHE_MODES[(word & 0xF00) >> KERNEL_CACHE_SHIFT]
    if trap != mode and EXPECTED_MEMORY_TYPE[trap].mair != EXPECTED_MEMORY_TYPE[mode].mair:
        assert leaf.mair_byte != EXPECTED_MEMORY_TYPE[trap].mair, f"{word:#x} decoded as {trap}"
    assert word in (0x000, 0x100) or trap != mode  # only Default and Inhibit coincide


@pytest.mark.parametrize(
    "word",
    [0x300, 0x500, 0x600, 0x700, 0x900, 0xA00, 0xC00, 0xF00, 0x1000, 0x8000, 0xFF00, 0x302, 0x600 | 0x1],
)
def test_other_cache_option_words_are_bad_arguments(guest: Guest, mds: Descriptors, word: int) -> None:
    buf = mds.create(100)
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(buf.md, options=word), "kIOReturnBadArgument")
    baseline.check(guest)


@pytest.mark.parametrize("word", [0x20, 0x40, 0x80, 0x10000, 1 << 40])
def test_option_bits_outside_every_field_are_ignored(guest: Guest, mds: Descriptors, word: int) -> None:
    """XNU's CreateMapping looks only at FixedAddress, ReadOnly, the guard field and 0xFF00."""
    buf = mds.create(100)
    m = mds.map(buf.md, options=word)
    assert (m.cache, m.perm, m.guard) == ("default", "rw", mds.page)


def test_every_mode_by_name_but_only_five_by_option_word(mds: Descriptors) -> None:
    buf = mds.create(100)
    reachable = {mds.map(buf.md, options=w).cache for w in DK_CACHE_OPTIONS}
    assert reachable == {"default", "inhibit", "copyback", "writethru", "realtime"}
    assert {mds.map(buf.md, cache=c).cache for c in CACHE_MODES} == set(CACHE_MODES)


def test_unknown_cache_name(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(100)
    for name in ("writeback", "Copyback", "3", ""):
        guest.err(f"md map {buf.md:#x} cache={name}", "kIOReturnBadArgument")
    guest.err(f"md map {buf.md:#x} cache=copyback options=0x200", "kIOReturnBadArgument")
    guest.err(f"md map {buf.md:#x} options=0 ro", "kIOReturnBadArgument")
    guest.err(f"md map {buf.md:#x} options=0 guard=none", "kIOReturnBadArgument")


# --------------------------------------------------------------------------- §10.2: the range
def test_length_zero_maps_the_whole_descriptor(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    buf = mds.create(3 * profile.granule + 10)
    m = mds.map(buf.md)
    assert (m.offset, m.length) == (0, 3 * profile.granule + 10)  # not rounded to pages
    assert m.va % profile.granule == 0
    guest.poke(VirtAddr(m.va + m.length - 1), 0x5A, 1)  # GetAddress + GetLength - 1 is accessible
    assert guest.peek(VirtAddr(buf.va + m.length - 1), 1) == 0x5A
    mds.setlength(buf.md, 7)
    assert mds.map(buf.md).length == 7
    info = mds.map_info(m.map or 0)
    assert (info.va, info.offset, info.length, info.md) == (m.va, 0, 3 * profile.granule + 10, buf.md)


def test_offset_inside_a_page(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(3 * page)
    pattern = os.urandom(3 * page)
    for at in range(page - 256, 2 * page + 256, 256):
        guest.write(VirtAddr(buf.va + at), pattern[at : at + 256])
    m = mds.map(buf.md, offset=page + 0x10, length=0x20)
    assert (m.va % page, m.offset, m.length) == (0x10, page + 0x10, 0x20)
    assert guest.read(m.va, 0x20) == pattern[page + 0x10 : page + 0x30]
    walker = guest.walker()
    assert walk_runs(walker, m.va, 0x20) == walk_runs(walker, buf.va + page + 0x10, 0x20)
    assert guest.translate(m.va).pa == pa_at(mds.segments(buf.md), page + 0x10)
    # Exactly one page is mapped: the guard begins right after it.
    _assert_faults_everywhere(guest, m.page_start(page) + page)
    _assert_faults_everywhere(guest, m.page_start(page) - 1)


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (1, 0),  # length 0 is the whole descriptor, so any offset overruns
        (100, 0),
        (100, 1),  # offset == length
        (101, 1),
        (0, 101),
        (50, 51),
        (2**64 - 1, 2),
        (1, 2**64 - 1),
    ],
)
def test_bad_ranges(guest: Guest, mds: Descriptors, offset: int, length: int) -> None:
    """The DriverKit path answers kIOReturnError for every range failure (§10.2); the cache=
    extension answers kIOReturnBadArgument."""
    buf = mds.create(100)
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(buf.md, options=0, offset=offset, length=length), "kIOReturnError")
    guest.err(mds.map_line(buf.md, cache="default", offset=offset, length=length), "kIOReturnBadArgument")
    guest.err(mds.map_line(buf.md, offset=offset, length=length), "kIOReturnBadArgument")
    baseline.check(guest)


def test_zero_length_descriptor_cannot_be_mapped(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(100)
    mds.setlength(buf.md, 0)
    for offset, length in ((0, 0), (0, 1)):
        guest.err(mds.map_line(buf.md, options=0, offset=offset, length=length), "kIOReturnError")
        guest.err(mds.map_line(buf.md, offset=offset, length=length), "kIOReturnBadArgument")
    sub = mds.sub(mds.create(10).md, 5, 0)
    guest.err(mds.map_line(sub.md, options=0), "kIOReturnError")
    mds.setlength(buf.md, 1)
    assert mds.map(buf.md).length == 1


# --------------------------------------------------------------------------- guards
@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ({}, "small"),
        ({"guard": "small"}, "small"),
        ({"guard": "default"}, "small"),
        ({"guard": "large"}, "large"),
        ({"options": 0x0}, "small"),
        ({"options": DK_GUARD_SMALL}, "small"),
        ({"options": DK_GUARD_LARGE}, "large"),
        ({"options": 0x10}, "small"),  # not one of the four values: XNU's default case, Small
        ({"options": 0x1C}, "small"),
    ],
)
def test_guard_regions_fault_on_both_sides(
    guest: Guest, mds: Descriptors, profile: Profile, how: dict[str, int | str], kind: str
) -> None:
    page = profile.granule
    guard = page if kind == "small" else max(0x10000, page)
    buf = mds.create(2 * page)
    neighbours = [mds.map(buf.md, guard="none") for _ in range(2)]
    m = mds.map(buf.md, **how)  # type: ignore[arg-type]
    after = [mds.map(buf.md, guard="none") for _ in range(2)]
    assert m.guard == guard
    start, end = m.page_start(page), m.page_end(page)
    walker = guest.walker()
    assert unmapped(walker, start - guard, start) and unmapped(walker, end, end + guard)
    assert isinstance(walker.walk(start - guard - 1), Translation)  # the guard is no larger than claimed
    for va in (start - 1, start - guard, end, end + guard - 1):
        _assert_faults_everywhere(guest, va)
    for va in (start, end - 1):
        assert isinstance(_leaf(walker, va), Translation)
    # Nothing else is placed inside the guards.
    for other in neighbours + after:
        assert other.page_end(page) <= start - guard or other.page_start(page) >= end + guard
    assert guest.pagesize() == page  # still serving


def test_unguarded_mappings_pack_and_large_guards_keep_distance(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    # One buffer per mapping: a second identical request on the same buffer would hand back the
    # first mapping (§10.2 Reuse, tested below), so each mapping here maps its own buffer.
    page = profile.granule
    bufs = [mds.create(page) for _ in range(4)]
    a, b = mds.map(bufs[0].md, guard="none"), mds.map(bufs[1].md, guard="none")
    assert (a.guard, b.guard) == (0, 0)
    assert b.va == a.va + page  # GuardedNone: no gap at all
    c, d = mds.map(bufs[2].md, options=DK_GUARD_NONE), mds.map(bufs[3].md, guard="large")
    assert c.guard == 0 and c.va == b.va + page
    assert d.va - (c.va + page) >= max(0x10000, page)


# --------------------------------------------------------------------------- fixed addresses
def test_fixed_address(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(2 * page)
    m = mds.map(buf.md, address=FIXED_VA)
    assert (m.va, m.guard) == (FIXED_VA, 0)
    assert walk_runs(guest.walker(), FIXED_VA, 2 * page) == mds.segments(buf.md)
    guest.check_translation(VirtAddr(FIXED_VA + page + 8))
    # DriverKit word: FixedAddress + the address; the guard bits are ignored with it.
    dk = mds.map(buf.md, options=DK_FIXED_ADDRESS | DK_GUARD_LARGE, address=FIXED_VA + 4 * page)
    assert (dk.va, dk.guard) == (FIXED_VA + 4 * page, 0)
    # Without FixedAddress the address argument is ignored (as in XNU).
    anywhere = mds.map(buf.md, options=0, address=FIXED_VA + 8 * page)
    assert anywhere.va != FIXED_VA + 8 * page
    # With an offset the address keeps that byte's in-page position.
    off = mds.map(buf.md, offset=page + 0x30, length=0x10, address=FIXED_VA + 16 * page + 0x30)
    assert off.va == FIXED_VA + 16 * page + 0x30
    assert guest.translate(off.va).pa == pa_at(mds.segments(buf.md), page + 0x30)


@pytest.mark.parametrize(
    ("address", "offset", "ext_error"),
    [
        (0x1_0000_0000, 0, "kIOReturnNotPermitted"),  # the raw vm map part of the window
        (0x40_0000_0000, 0, "kIOReturnNotPermitted"),  # beyond the window
        (0x4000_0000, 0, "kIOReturnNotPermitted"),  # RAM
        (0, 0, "kIOReturnNotPermitted"),
    ],
)
def test_bad_fixed_addresses(
    guest: Guest, mds: Descriptors, address: int, offset: int, ext_error: str
) -> None:
    buf = mds.create(100)
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(buf.md, address=address, offset=offset, length=4), ext_error)
    guest.err(
        mds.map_line(buf.md, options=DK_FIXED_ADDRESS, address=address, offset=offset, length=4),
        "kIOReturnError",
    )
    baseline.check(guest)


@pytest.mark.parametrize(("in_page", "offset"), [(0x10, 0), (0, 0x10), (0x123, 0x40), (0xFF8, 0)])
@pytest.mark.parametrize("how", ["extension", "driverkit"])
def test_fixed_address_with_another_in_page_offset_is_realigned(
    guest: Guest, mds: Descriptors, profile: Profile, in_page: int, offset: int, how: str
) -> None:
    """§10.2: XNU does not refuse a fixed address whose in-page part differs from the first
    byte's: memoryReferenceMap only logs it and the VM layer truncates the start to its page
    (vm_map_enter_mem_object_sanitize). The pages go at the page of `address`; GetAddress is
    that page plus the first byte's in-page position. (iomem used to refuse it:
    kIOReturnNotAligned / kIOReturnError, in test_bad_fixed_addresses.)"""
    page = profile.granule
    buf = mds.create(2 * page)
    data = os.urandom(32)
    guest.write(VirtAddr(buf.va + offset), data)
    address = FIXED_VA + 4 * page + in_page
    if how == "extension":
        m = mds.map(buf.md, address=address, offset=offset, length=32)
    else:
        m = mds.map(buf.md, options=DK_FIXED_ADDRESS, address=address, offset=offset, length=32)
    assert m.va == FIXED_VA + 4 * page + offset % page
    assert walk_runs(guest.walker(), m.va, 32) == [Segment(pa_at(mds.segments(buf.md), offset), 32)]
    assert guest.read(m.va, 32) == data
    guest.check_translation(VirtAddr(m.va))


def test_occupied_fixed_addresses(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(page)
    other = mds.create(page)  # another descriptor: never compatible with buf's mappings
    guarded = mds.map(buf.md)  # first fit: low in the area, with one-page guards
    taken = mds.map(buf.md, address=FIXED_VA)
    assert taken.va == FIXED_VA
    baseline = Baseline.take(guest)
    for address in (FIXED_VA, guarded.page_start(page), guarded.page_start(page) - page, buf.va):
        guest.err(mds.map_line(other.md, address=address), "kIOReturnNoSpace")
        guest.err(mds.map_line(other.md, options=DK_FIXED_ADDRESS, address=address), "kIOReturnError")
    for address in (guarded.page_start(page) - page, buf.va):  # buf itself: no mapping starts there
        guest.err(mds.map_line(buf.md, address=address), "kIOReturnNoSpace")
    baseline.check(guest)
    # The same descriptor at the very address of its compatible fixed mapping: XNU's
    # copyCompatible hands that mapping back (+1) instead of failing (§10.2 Reuse).
    again = mds.map(buf.md, address=FIXED_VA)
    assert (again.map, again.va) == (taken.map, FIXED_VA)
    assert again.map is not None and mds.map_release(again.map) == Released(1, False)
    assert mds.map(other.md, address=FIXED_VA + page).va == FIXED_VA + page  # right next to it is free


# --------------------------------------------------------------------------- read-only
@pytest.mark.parametrize("how", [{"ro": True}, {"options": DK_READ_ONLY}, {"options": DK_READ_ONLY | 0x400}])
def test_read_only_mapping_rejects_writes(
    guest: Guest, mds: Descriptors, profile: Profile, how: dict[str, object]
) -> None:
    buf = mds.create(profile.granule)
    guest.fill(buf.va, 64, 0x3C)
    # Another task than the buffer's creator: XNU honours ReadOnly only there (§10.2; the
    # creator's own mapping is writable, test_read_only_is_ignored_for_the_creator).
    assert guest.ok("task 2").number("task") == 2
    m = mds.map(buf.md, **how)  # type: ignore[arg-type]
    assert m.perm == "ro"
    leaf = guest.check_translation(m.va)
    assert isinstance(leaf, Translation) and leaf.el1 == "ro" and perm_of(leaf) == "ro"
    pa = mds.segments(buf.md)[0].pa
    for line in (f"poke {m.va:#x} 1", f"fill {m.va:#x} 8 0", f"write {m.va + 8:#x} 00ff"):
        reply = guest.err(line, "kIOReturnNotWritable")
        assert reply.value("fault") == "permission"
    assert guest.translate(m.va, write=True).fault == "permission"
    assert guest.ram.read(PhysAddr(pa), 64) == b"\x3c" * 64
    assert guest.read(m.va, 64) == b"\x3c" * 64
    guest.poke(buf.va, 7, 1)  # the buffer's own mapping is still writable
    assert guest.peek(m.va, 1) == 7


def test_out_buffer_is_writable_by_its_creator(guest: Guest, mds: Descriptors) -> None:
    """§10.2: direction Out makes a mapping read-only only for a task that did not create the
    buffer: the creator (task 1, the driver) writes; task 2 gets a read-only mapping."""
    buf = mds.create(100, dir="out")
    assert mds.info(buf.md).kind == "buffer" and guest.ok(f"md info {buf.md:#x}").number("creator") == 1
    m = mds.map(buf.md)
    assert m.perm == "rw" and _leaf(guest.walker(), m.va).el1 == "rw"
    guest.poke(m.va, 0x99, 1)
    guest.ok("task 2")
    other = mds.map(buf.md)
    assert other.perm == "ro" and _leaf(guest.walker(), other.va).el1 == "ro"
    assert guest.err(f"poke {other.va:#x} 1 1", "kIOReturnNotWritable").value("fault") == "permission"
    assert guest.peek(other.va, 1) == 0x99


@pytest.mark.parametrize(
    ("dir_", "how"),
    [
        ("none", {"ro": True}),
        ("inout", {"options": DK_READ_ONLY}),
        ("in", {"options": DK_READ_ONLY | 0x100}),
        ("out", {}),
        ("out", {"options": DK_READ_ONLY | 0x400}),
    ],
)
def test_read_only_is_ignored_for_the_creator(
    guest: Guest, mds: Descriptors, profile: Profile, dir_: str, how: dict[str, object]
) -> None:
    """XNU CreateMapping_Impl: `if ((ReadOnly & options) || dir == Out) { if (!reserved ||
    current_task() != reserved->creator) koptions |= kIOMapReadOnly; }`. The buffer's creator
    gets a writable mapping (the walker's AP bits say EL1 RW, a write lands in RAM); another
    task gets a read-only one (AP RO, a write is a permission fault, RAM unchanged)."""
    page = profile.granule
    buf = mds.create(page, dir=dir_)
    pa = mds.segments(buf.md)[0].pa
    own = mds.map(buf.md, **how)  # type: ignore[arg-type]
    assert own.perm == "rw"
    leaf = guest.check_translation(own.va)
    assert isinstance(leaf, Translation) and leaf.el1 == "rw" and perm_of(leaf) == "rw"
    guest.poke(own.va, 0xA5, 1)
    assert guest.ram.read(PhysAddr(pa), 1) == b"\xa5"
    assert guest.ok("task 7").number("task") == 7
    theirs = mds.map(buf.md, **how)  # type: ignore[arg-type]
    assert theirs.perm == "ro" and theirs.map != own.map  # another task: never the creator's map
    leaf = guest.check_translation(theirs.va)
    assert isinstance(leaf, Translation) and leaf.el1 == "ro" and perm_of(leaf) == "ro"
    assert guest.err(f"poke {theirs.va:#x} 0x5a 1", "kIOReturnNotWritable").value("fault") == "permission"
    assert guest.ram.read(PhysAddr(pa), 1) == b"\xa5"
    guest.ok("task 1")  # back to the creator: a new request maps writable again
    assert mds.map(buf.md, **how).perm == "rw"  # type: ignore[arg-type]


def test_out_sub_descriptor_has_no_creator(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """A sub (or multi) descriptor records no creator (XNU `reserved == NULL`): the rule always
    applies, even in the task that created the buffer below it."""
    buf = mds.create(profile.granule)
    sub = mds.sub(buf.md, 0, 64, dir="out")
    m = mds.map(sub.md)
    assert m.perm == "ro" and _leaf(guest.walker(), m.va).el1 == "ro"
    assert mds.map(sub.md, options=0).perm == "ro"
    plain = mds.sub(buf.md, 0, 64)
    assert mds.map(plain.md).perm == "rw" and mds.map(plain.md, ro=True).perm == "ro"


def test_task_verb(guest: Guest) -> None:
    assert guest.ok("task").number("task") == 1
    assert guest.ok("task 0x10").number("task") == 16
    guest.err("task 0", "kIOReturnBadArgument")
    guest.err("task 0x100000000", "kIOReturnBadArgument")
    assert guest.ok("task").number("task") == 16


# --------------------------------------------------------------------------- IOMemoryMap lifetime
def test_release_unmaps_in_all_three_sources(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(3 * page)
    baseline = Baseline.take(guest)
    m = mds.map(buf.md, cache="inhibit")
    assert m.map is not None
    guest.write(VirtAddr(m.va + 100), b"kept")
    _check_pages(guest, m, page)
    assert mds.info(buf.md).refs == 2  # the map holds a reference
    released = mds.map_release(m.map)
    assert (released.refs, released.freed) == (0, True)
    for va in range(m.page_start(page), m.page_end(page), page):
        _assert_faults_everywhere(guest, va + 8)
    guest.err(f"map info {m.map:#x}", "kIOReturnBadArgument")
    guest.err(f"map release {m.map:#x}", "kIOReturnBadArgument")
    assert mds.info(buf.md).refs == 1
    assert guest.read(VirtAddr(buf.va + 100), 4) == b"kept"
    baseline.check(guest)


def test_descriptor_released_first_stays_alive_for_its_map(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    page = profile.granule
    baseline = Baseline.take(guest)
    buf = mds.create(2 * page)
    data = os.urandom(200)
    guest.write(VirtAddr(buf.va + page - 100), data)
    m = mds.map(buf.md, offset=page - 100, length=200)
    assert m.map is not None
    pages = pages_of(mds.segments(buf.md), page)
    owners = PageBytes(guest)
    released = mds.release(buf.md)
    assert (released.refs, released.freed) == (1, False)
    guest.err(f"md length {buf.md:#x}", "kIOReturnBadArgument")  # the caller's handle is gone
    assert guest.read(m.va, 200) == data  # the memory is not
    assert {owners.owner(pa) for pa in pages} == {"buffer"}
    assert mds.map_info(m.map).md == buf.md
    assert mds.map_release(m.map).freed
    assert {owners.owner(pa) for pa in pages} == {"free"}
    walker = guest.walker()
    assert isinstance(walker.walk(buf.va), Fault) and isinstance(walker.walk(m.va), Fault)
    baseline.check(guest)


def test_many_mappings_come_and_go_without_leaks(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(5 * page + 3)
    baseline = Baseline.take(guest)
    for round_ in range(3):
        maps = [
            mds.map(buf.md, cache=CACHE_MODES[i % 10], offset=i * 7, length=page + i, ro=bool(i & 1))
            for i in range(20)
        ]
        guest.fill(buf.va, 5 * page + 3, round_ + 1)
        guest.write(VirtAddr(buf.va + 50), os.urandom(300))
        for i, m in enumerate(maps):
            assert guest.crc(m.va, m.length) == guest.crc(VirtAddr(buf.va + i * 7), m.length)
        orders = (maps[::2] + maps[1::2], maps[1::2] + maps[::2], maps[::-1])
        for m in orders[round_]:
            assert m.map is not None
            mds.map_release(m.map)
        baseline.check(guest)
        assert mds.info(buf.md).refs == 1  # every map gave its reference back
    assert all(AREA[0] <= m.va < AREA[1] for m in maps)


# --------------------------------------------------------------------------- §10.2 reuse
def _mair(guest: Guest, va: int) -> int:
    return _leaf(guest.walker(), va).mair_byte


@pytest.mark.parametrize("how", ["extension", "driverkit"])
def test_inhibit_then_default_returns_the_uncached_mapping(
    guest: Guest, mds: Descriptors, profile: Profile, how: str
) -> None:
    """XNU IOMemoryMap::copyCompatible: a Default request is compatible with an existing mapping
    of any cache mode, so CreateMapping(Inhibit) then CreateMapping(Default) hands back the
    uncached mapping: the same map +1, the same VA, MAIR byte 0x00 in the page tables."""
    page = profile.granule
    buf = mds.create(2 * page)
    first = mds.map(buf.md, cache="inhibit") if how == "extension" else mds.map(buf.md, options=0x100)
    assert _mair(guest, first.va) == 0x00
    stats = mds.stats()
    second = mds.map(buf.md) if how == "extension" else mds.map(buf.md, options=0)
    assert (second.map, second.va, second.cache) == (first.map, first.va, "inhibit")
    assert _mair(guest, second.va) == 0x00 and guest.translate(second.va).attr == 0x00
    after = mds.stats()
    assert {k: after[k] for k in ("maps_live", "va_ranges", "md_live")} == {
        k: stats[k] for k in ("maps_live", "va_ranges", "md_live")
    }
    assert mds.info(buf.md).refs == 2  # one map, holding the descriptor once
    assert first.map is not None
    assert mds.map_release(first.map) == Released(1, False)  # the caller held it twice
    assert _mair(guest, first.va) == 0x00  # still mapped
    assert mds.map_release(first.map) == Released(0, True)
    _assert_faults_everywhere(guest, first.va)


def test_default_then_inhibit_is_a_new_mapping(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """The other way round the modes differ and the request is not Default: a new mapping."""
    buf = mds.create(profile.granule)
    wb = mds.map(buf.md)
    uc = mds.map(buf.md, cache="inhibit")
    assert wb.map != uc.map and wb.va != uc.va
    assert (_mair(guest, wb.va), _mair(guest, uc.va)) == (0xFF, 0x00)
    assert mds.map(buf.md, cache="inhibit").map == uc.map  # an equal mode is compatible too
    assert mds.map(buf.md, cache="writethru").map not in (wb.map, uc.map)


def test_a_sub_range_shares_the_old_mapping(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """A compatible request for a range inside an existing mapping gets a new IOMemoryMap that
    shares the old one's VA (XNU's sub-map): no new page-table entries or VA, the old mode, and
    the VA stays mapped until both maps are gone."""
    page = profile.granule
    buf = mds.create(2 * page)
    whole = mds.map(buf.md, cache="inhibit")
    ranges = mds.stats()["va_ranges"]
    part = mds.map(buf.md, offset=page + 0x10, length=0x20)
    assert part.map != whole.map
    assert (part.va, part.offset, part.length, part.cache) == (
        whole.va + page + 0x10,
        page + 0x10,
        0x20,
        "inhibit",
    )
    assert mds.stats()["va_ranges"] == ranges and mds.stats()["maps_live"] == 2
    assert _mair(guest, part.va) == 0x00
    assert whole.map is not None and part.map is not None
    assert mds.map_release(whole.map) == Released(1, False)  # the sub-map holds it
    guest.poke(VirtAddr(part.va), 0x5A, 1)
    assert guest.ram.read(PhysAddr(pa_at(mds.segments(buf.md), page + 0x10)), 1) == b"\x5a"
    assert mds.map_release(part.map) == Released(0, True)
    _assert_faults_everywhere(guest, whole.va)
    assert mds.stats()["maps_live"] == 0 and mds.info(buf.md).refs == 1


@pytest.mark.parametrize(
    "second",
    [
        {"ro": True},  # read-only differs
        {"guard": "none"},  # guard class differs
        {"guard": "large"},
        {"cache": "copyback"},  # not Default and not the old mode
        {"offset": 0, "length": 0},  # not inside [0x10, ...)
    ],
)
def test_incompatible_requests_make_new_mappings(
    guest: Guest, mds: Descriptors, profile: Profile, second: dict[str, object]
) -> None:
    page = profile.granule
    buf = mds.create(2 * page)
    first = mds.map(buf.md, offset=0x10, length=page)
    other = mds.map(buf.md, **second)  # type: ignore[arg-type]
    assert other.map != first.map and other.va & ~(page - 1) != first.va & ~(page - 1)


# --------------------------------------------------------------------------- §9.3 Device alignment
DEVICE_MODES = [m for m in CACHE_MODES if EXPECTED_MEMORY_TYPE[m].mair & 0xF0 == 0]


@pytest.mark.parametrize("mode", DEVICE_MODES)
def test_unaligned_access_to_device_memory_is_an_alignment_fault(
    guest: Guest, mds: Descriptors, profile: Profile, mode: str
) -> None:
    """§9.3 [Rec]: real CPUs fault on an unaligned access to Device memory; QEMU 7.2 TCG does
    not, so the agent sets SCTLR_EL1.A around its raw accesses to Device-type VAs and the CPU's
    own check raises the architectural alignment fault (DFSC 0b100001). The walker confirms the
    page is Device memory; RAM shows a faulted store wrote nothing; Normal memory (the buffer's
    own VA, a Default and a WriteCombine alias) stays unaligned-friendly afterwards."""
    page = profile.granule
    buf = mds.create(2 * page)
    guest.fill(buf.va, 64, 0x11)
    m = mds.map(buf.md, cache=mode)
    assert _leaf(guest.walker(), m.va).mair_byte & 0xF0 == 0  # a Device memory type
    pa = mds.segments(buf.md)[0].pa
    for line, far in (
        (f"peek {m.va + 1:#x} 4", m.va + 1),
        (f"peek {m.va + 4:#x} 8", m.va + 4),
        (f"poke {m.va + 2:#x} 0x55 4", m.va + 2),
        (f"read {m.va + 1:#x} 16", m.va + 1),
        (f"write {m.va + 3:#x} 00112233445566778899", m.va + 3),
        (f"fill {m.va + 1:#x} 16 0x77", m.va + 1),
    ):
        reply = guest.err(line)
        assert reply.value("fault") == "alignment", line
        assert (reply.number("far"), reply.number("esr") & 0x3F) == (far, 0x21), line
    assert guest.ram.read(PhysAddr(pa), 64) == b"\x11" * 64  # nothing was stored
    # Aligned accesses of every width, and single bytes anywhere, are fine.
    guest.ok(f"poke {m.va + 8:#x} 0x1234 2")
    assert guest.peek(VirtAddr(m.va + 8), 8) == 0x1111_1111_1111_1234
    assert guest.read(VirtAddr(m.va + 7), 1) == b"\x11"
    guest.ok(f"write {m.va + 16:#x} {'ab' * 13}")  # 8 + 4 + 1 from an aligned start
    assert guest.ram.read(PhysAddr(pa + 16), 14) == b"\xab" * 13 + b"\x11"
    # Normal memory after the faults: SCTLR_EL1.A is off again.
    # (A Default request would reuse the uncached mapping, §10.2: ask for Copyback.)
    for normal in (buf.va, mds.map(buf.md, cache="writecombine").va, mds.map(buf.md, cache="copyback").va):
        assert guest.peek(VirtAddr(normal + 1), 8) == int.from_bytes(
            guest.ram.read(PhysAddr(pa + 1), 8), "little"
        )
        guest.ok(f"write {normal + 3:#x} 0102030405")
