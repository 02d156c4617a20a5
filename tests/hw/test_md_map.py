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
from harness.guest.descriptors import Baseline, Descriptors, Mapping_
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
    page = profile.granule
    buf = mds.create(page)
    a, b = mds.map(buf.md, guard="none"), mds.map(buf.md, guard="none")
    assert (a.guard, b.guard) == (0, 0)
    assert b.va == a.va + page  # GuardedNone: no gap at all
    c, d = mds.map(buf.md, options=DK_GUARD_NONE), mds.map(buf.md, guard="large")
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
        (FIXED_VA + 0x10, 0, "kIOReturnNotAligned"),  # in-page part differs from the offset's
        (FIXED_VA, 0x10, "kIOReturnNotAligned"),
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


def test_occupied_fixed_addresses(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(page)
    guarded = mds.map(buf.md)  # first fit: low in the area, with one-page guards
    taken = mds.map(buf.md, address=FIXED_VA)
    assert taken.va == FIXED_VA
    baseline = Baseline.take(guest)
    for address in (FIXED_VA, guarded.page_start(page), guarded.page_start(page) - page, buf.va):
        guest.err(mds.map_line(buf.md, address=address), "kIOReturnNoSpace")
        guest.err(mds.map_line(buf.md, options=DK_FIXED_ADDRESS, address=address), "kIOReturnError")
    baseline.check(guest)
    assert mds.map(buf.md, address=FIXED_VA + page).va == FIXED_VA + page  # right next to it is free


# --------------------------------------------------------------------------- read-only
@pytest.mark.parametrize("how", [{"ro": True}, {"options": DK_READ_ONLY}, {"options": DK_READ_ONLY | 0x400}])
def test_read_only_mapping_rejects_writes(
    guest: Guest, mds: Descriptors, profile: Profile, how: dict[str, object]
) -> None:
    buf = mds.create(profile.granule)
    guest.fill(buf.va, 64, 0x3C)
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
    buffer; in iomem the caller created every buffer."""
    buf = mds.create(100, dir="out")
    m = mds.map(buf.md)
    assert m.perm == "rw"
    guest.poke(m.va, 0x99, 1)


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
