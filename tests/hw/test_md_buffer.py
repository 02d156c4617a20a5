"""IOBufferMemoryDescriptor (driverkit-memory.md §11): Create, SetLength, GetLength,
GetAddressRange, physical segments, and what release gives back.

Independent eyes: the host page walker (the buffer VA's pages), guest RAM read from the host
(contents, and the page allocator's own metadata byte of every page), and the firmware ELF
(where that metadata lives).
"""

from __future__ import annotations

import zlib

import pytest

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import Baseline, Descriptors
from harness.oracle.descriptors import pages_of, unmapped, walk_runs
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import Fault, FaultKind
from harness.qemu.profile import Profile


@pytest.fixture
def mds(guest: Guest) -> Descriptors:
    return Descriptors(guest)


def _buffer_bytes(guest: Guest, mds: Descriptors, md: int) -> bytes:
    """A descriptor's bytes read from guest RAM by the host, through its segments."""
    return b"".join(guest.ram.read(seg.pa, seg.length) for seg in mds.segments(md))


# --------------------------------------------------------------------------- Create
def test_create_100_bytes(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    buf = mds.create(100)
    assert (buf.capacity, buf.length) == (100, 100)
    assert buf.va % profile.granule == 0
    info = mds.info(buf.md)
    assert (info.kind, info.capacity, info.length, info.refs, info.pages) == ("buffer", 100, 100, 1, 1)
    assert info.va == buf.va
    # GetAddressRange: the same VA, the current length; it translates to the first segment.
    assert mds.address_range(buf.md) == (buf.va, 100)
    segments = mds.segments(buf.md)
    assert len(segments) == 1 and segments[0].length == 100
    assert walk_runs(guest.walker(), buf.va, 100) == segments
    # The whole page reads zero, through the guest and in RAM.
    assert guest.crc(buf.va, profile.granule) == zlib.crc32(bytes(profile.granule))
    assert guest.ram.read(PhysAddr(segments[0].pa & ~(profile.granule - 1)), profile.granule) == bytes(
        profile.granule
    )


def test_memory_is_zero_filled_even_when_reused(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """Zero-fill is only shown by memory that held something before: dirty a buffer, free it,
    and check the next buffer reuses (some of) its pages and reads zero."""
    size = 3 * profile.granule
    first = mds.create(size)
    guest.fill(first.va, size, 0xA5)
    dirty = set(pages_of(mds.segments(first.md), profile.granule))
    assert all(guest.ram.read(PhysAddr(pa), 16) == b"\xa5" * 16 for pa in dirty)
    mds.release(first.md)
    second = mds.create(size)
    segments = mds.segments(second.md)
    assert dirty & set(pages_of(segments, profile.granule)), "no page reused: the test shows nothing"
    assert _buffer_bytes(guest, mds, second.md) == bytes(size)
    assert guest.crc(second.va, size) == zlib.crc32(bytes(size))


def test_capacity_zero_is_no_memory(guest: Guest, mds: Descriptors) -> None:
    baseline = Baseline.take(guest)
    guest.err(mds.create_line(0), "kIOReturnNoMemory")
    guest.err(mds.create_line(0, dir="inout", align=0x10000), "kIOReturnNoMemory")
    baseline.check(guest)


@pytest.mark.parametrize("direction", ["none", "in", "out", "inout", 0, 1, 2, 3])
def test_direction_bits_are_accepted(mds: Descriptors, direction: str | int) -> None:
    value = direction if isinstance(direction, int) else {"none": 0, "in": 1, "out": 2, "inout": 3}[direction]
    buf = mds.create(64, dir=direction)
    assert mds.info(buf.md).direction == value


@pytest.mark.parametrize("options", [0x4, 0x7, 0x10, 0x100, 0x8000_0000, 1 << 63])
def test_other_option_bits_are_bad_arguments(guest: Guest, mds: Descriptors, options: int) -> None:
    baseline = Baseline.take(guest)
    guest.err(mds.create_line(64, dir=options), "kIOReturnBadArgument")
    baseline.check(guest)


@pytest.mark.parametrize(
    ("capacity", "align"),
    [
        (2**64 - 1, 0),  # page rounding overflows
        (2**63, 2**63),  # capacity + alignment overflows
        (2**40, 0),  # more than RAM
        (4096, 2**40),  # contiguous and aligned beyond RAM
    ],
)
def test_impossible_sizes_are_no_memory_and_leak_nothing(
    guest: Guest, mds: Descriptors, capacity: int, align: int
) -> None:
    baseline = Baseline.take(guest)
    guest.err(mds.create_line(capacity, align=align), "kIOReturnNoMemory")
    baseline.check(guest)


def test_running_out_of_pages_midway_gives_everything_back(guest: Guest, mds: Descriptors) -> None:
    """A scattered buffer larger than the free memory fails after taking pages one by one:
    every page taken so far must go back."""
    baseline = Baseline.take(guest)
    free_bytes = baseline.stats["pages_free"] * mds.page if "pages_free" in baseline.stats else 2**28
    guest.err(mds.create_line(free_bytes + mds.page), "kIOReturnNoMemory")
    baseline.check(guest)
    assert mds.create(100).length == 100  # and the allocator still works


# --------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("multiple", [2, 4, 16])
def test_alignment_above_the_page_is_contiguous_and_aligned(
    guest: Guest, mds: Descriptors, profile: Profile, multiple: int
) -> None:
    align = multiple * profile.granule
    mds.create(profile.granule)  # so the next buffer does not start aligned by luck
    buf = mds.create(3 * profile.granule + 5, align=align)
    segments = mds.segments(buf.md)
    assert len(segments) == 1
    assert segments[0].pa % align == 0 and segments[0].length == 3 * profile.granule + 5
    assert mds.info(buf.md).contiguous is True
    assert walk_runs(guest.walker(), buf.va, buf.capacity) == segments
    assert buf.va % profile.granule == 0


@pytest.mark.parametrize("align", [0, 1, 3, 16, 100, 4096])
def test_alignment_up_to_a_page_is_raised_to_the_page(mds: Descriptors, profile: Profile, align: int) -> None:
    """XNU raises the alignment of DriverKit buffers to a page; values below it (powers of two
    or not) are accepted."""
    buf = mds.create(10, align=align)
    assert buf.va % profile.granule == 0
    assert mds.segments(buf.md)[0].pa % profile.granule == 0


@pytest.mark.parametrize("extra", [1, 3])
def test_alignment_above_the_page_must_be_a_power_of_two(
    guest: Guest, mds: Descriptors, profile: Profile, extra: int
) -> None:
    baseline = Baseline.take(guest)
    for align in (profile.granule + extra, 3 * profile.granule * extra):
        guest.err(mds.create_line(100, align=align), "kIOReturnBadArgument")
    baseline.check(guest)


# --------------------------------------------------------------------------- segments
def test_scattered_buffer_segments_follow_the_page_tables(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    """Punch holes into the page allocator so the next buffer is built from them; its
    segments must be exactly what the host walker finds behind its VA, in order."""
    page = profile.granule
    singles = [mds.create(page) for _ in range(10)]
    for buf in singles[1::2]:
        mds.release(buf.md)
    big = mds.create(6 * page + 1)
    segments = mds.segments(big.md)
    assert len(segments) >= 2, f"the holes were not used: {segments}"
    assert sum(s.length for s in segments) == 6 * page + 1
    assert walk_runs(guest.walker(), big.va, big.capacity) == segments
    assert mds.info(big.md).contiguous is False
    owners = PageBytes(guest)
    assert {owners.owner(pa) for pa in pages_of(segments, page)} == {"buffer"}


def test_segments_cover_the_current_length(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    buf = mds.create(5 * profile.granule)
    mds.setlength(buf.md, profile.granule + 7)
    segments = mds.segments(buf.md)
    assert sum(s.length for s in segments) == profile.granule + 7
    assert walk_runs(guest.walker(), buf.va, profile.granule + 7) == segments
    mds.setlength(buf.md, 0)
    assert mds.segments(buf.md) == []


def test_many_segments_are_listed_across_replies(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """More segments than one reply holds (128): the listing continues with first=."""
    page = profile.granule
    count = 140 if page < 65536 else 60  # 64K: fewer pages to spare
    singles = [mds.create(page) for _ in range(2 * count)]
    for buf in singles[::2]:
        mds.release(buf.md)
    big = mds.create(count * page)
    segments = mds.segments(big.md)
    assert walk_runs(guest.walker(), big.va, big.capacity) == segments
    assert len(segments) == count, "every page should come from a separate hole"
    if count > 128:
        reply = guest.ok(f"md segments {big.md:#x}")
        assert reply.number("count") == count and reply.number("next") == 128 and "seg128" not in reply
        ledger.checked("md segments", "next", "model")  # 128 per reply, as docs/protocol-notes.md says


# --------------------------------------------------------------------------- SetLength / GetLength
def test_setlength_within_capacity(mds: Descriptors) -> None:
    buf = mds.create(100)
    assert mds.setlength(buf.md, 50) == 50
    assert mds.length(buf.md) == 50
    info = mds.info(buf.md)
    assert (info.capacity, info.length) == (100, 50)
    assert mds.address_range(buf.md) == (buf.va, 50)  # GetAddressRange: current length ([Rec])
    assert mds.setlength(buf.md, 100) == 100
    assert mds.setlength(buf.md, 0) == 0 and mds.length(buf.md) == 0


def test_setlength_above_capacity_is_refused_and_changes_nothing(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(100)
    mds.setlength(buf.md, 40)
    for length in (101, 4096, 2**64 - 1):
        guest.err(f"md setlength {buf.md:#x} {length}", "kIOReturnBadArgument")
        assert mds.length(buf.md) == 40
    assert mds.info(buf.md).capacity == 100


def test_setlength_needs_a_buffer(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(100)
    sub = mds.sub(buf.md, 0, 10)
    reply = guest.err(f"md setlength {sub.md:#x} 5", "kIOReturnBadArgument")
    assert "not an IOBufferMemoryDescriptor" in reply.text
    guest.err(f"bmd range {sub.md:#x}", "kIOReturnBadArgument")
    assert mds.length(sub.md) == 10


# --------------------------------------------------------------------------- the buffer's own VA
def test_buffer_va_has_guard_pages(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(2 * page + 1)
    end = buf.va + 3 * page
    walker = guest.walker()
    for va in (buf.va - 8, end):
        result = walker.walk(va)
        assert isinstance(result, Fault) and result.kind is FaultKind.TRANSLATION
        assert guest.machine.gva2gpa(va) is None
        assert guest.err(f"peek {va:#x}", "kIOReturnNotReadable").value("fault") == "translation"
    assert unmapped(walker, buf.va - page, buf.va) and unmapped(walker, end, end + page)
    guest.poke(VirtAddr(end - 8), 0x1122334455667788)  # the last page of the buffer is writable


# --------------------------------------------------------------------------- release
def test_release_gives_everything_back(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    baseline = Baseline.take(guest)
    owners = PageBytes(guest)
    buffers = [
        mds.create(1),
        mds.create(3 * profile.granule),
        mds.create(2 * profile.granule, align=4 * profile.granule),
    ]
    pages = {b.md: pages_of(mds.segments(b.md), profile.granule) for b in buffers}
    for buf in buffers:
        assert {owners.owner(pa) for pa in pages[buf.md]} <= {"buffer", "continuation"}
        assert owners.owner(pages[buf.md][0]) == "buffer"
    assert baseline.differences(guest), "creating buffers moved no counter: the baseline shows nothing"
    walker = guest.walker()
    for buf in buffers:
        released = mds.release(buf.md)
        assert (released.refs, released.freed) == (0, True)
        assert {owners.owner(pa) for pa in pages[buf.md]} == {"free"}
        walker.clear_cache()
        assert isinstance(walker.walk(buf.va), Fault)
        assert guest.machine.gva2gpa(buf.va) is None
        guest.err(f"md length {buf.md:#x}", "kIOReturnBadArgument")  # the handle is gone
        guest.err(f"md release {buf.md:#x}", "kIOReturnBadArgument")
    baseline.check(guest)


@pytest.mark.parametrize("handle", ["0", "0x1", "0xffffffffffffffff", "nonsense"])
def test_bad_handles(guest: Guest, handle: str) -> None:
    for verb in ("md length", "md info", "md segments", "md release", "md setlength {} 1", "bmd range"):
        line = verb.format(handle) if "{}" in verb else f"{verb} {handle}"
        guest.err(line, "kIOReturnBadArgument")


def test_other_objects_are_not_descriptors(guest: Guest, mds: Descriptors) -> None:
    """A handle the caller holds for something else (a map, an obj) is not a descriptor."""
    buf = mds.create(64)
    m = mds.map(buf.md)
    assert m.map is not None
    guest.err(f"md length {m.map:#x}", "kIOReturnBadArgument")
    guest.err(f"map info {buf.md:#x}", "kIOReturnBadArgument")
    obj = guest.ok("obj new IOMemTestObject").number("obj")
    guest.err(f"md length {obj:#x}", "kIOReturnBadArgument")
    guest.err(f"md sub {obj:#x} 0 1", "kIOReturnBadArgument")


MD_CLASSES = (
    "IOMemoryDescriptor",
    "IOBufferMemoryDescriptor",
    "IOSubMemoryDescriptor",
    "IOMultiMemoryDescriptor",
    "IOMemoryMap",
)


def test_descriptor_classes_are_registered_metaclasses(guest: Guest, mds: Descriptors) -> None:
    """The classes are on the OSObject class list from boot (main.c registers them after
    object_init()), before any descriptor call. An instance made by `obj new` is constructed but
    not initialised (§6): releasing it must free nothing it does not own."""
    classes = guest.ok("obj classes").value("classes").split(",")  # nothing created yet
    assert set(MD_CLASSES) <= set(classes)
    mds.create(1)
    baseline = Baseline.take(guest)
    for name in MD_CLASSES:
        reply = guest.ok(f"obj new {name}")
        size = guest.elf.dwarf.struct(name).size
        assert reply.number("size") == size, name
        guest.err(
            f"md length {reply.number('obj'):#x}", "kIOReturnBadArgument"
        )  # not the caller's descriptor
        assert guest.ok(f"obj release {reply.value('obj')}").number("freed") == 1
    baseline.check(guest)


def test_a_full_object_table_is_no_resources_not_no_memory(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    """C1 item 8: every live object (buffers, maps, subs, multis, OSObjects) takes a registry
    slot. The table holds far more than the old 512 (600 buffers and 100 maps here), and when
    it is full the descriptor calls say kIOReturnNoResources, told apart from memory, while
    plenty of pages are free (the page allocator's own count, read from RAM by the host)."""
    baseline = Baseline.take(guest)
    limit = guest.heap_layouts.object_registry["slots"].count // 2  # OBJECT_MAX_LIVE
    bufs = [mds.create(64) for _ in range(600)]
    maps = [mds.map(b.md) for b in bufs[:100]]
    # Pipelined (no round trip each), one request past the limit: every reply is read in
    # order up to the first refusal, which must be the last request's.
    handles = []
    for reply in guest.pipeline(["obj new OSObject"] * (limit - len(bufs) - len(maps) + 1)):
        if not reply.ok:
            break
        handles.append(reply.number("obj"))
    assert reply.error == "kIOReturnNoResources" and len(bufs) + len(maps) + len(handles) == limit
    free_bytes = guest.heap_snapshot().pages.free_pages * profile.granule
    assert free_bytes > 64 << 20  # memory is not what ran out
    guest.err("bmd create 100", "kIOReturnNoResources")
    guest.err(mds.sub_line(bufs[0].md, 0, 8), "kIOReturnNoResources")
    guest.err(mds.multi_line([bufs[0].md]), "kIOReturnNoResources")
    guest.err(mds.map_line(bufs[1].md, cache="inhibit"), "kIOReturnNoResources")  # the extension
    guest.err(mds.map_line(bufs[1].md, options=0x100), "kIOReturnError")  # DriverKit: every failure
    assert mds.map(bufs[1].md).map == maps[1].map  # reuse needs no new object
    guest.check()
    for reply in guest.pipeline([f"obj release {handle:#x}" for handle in handles]):
        assert reply.ok, reply.line
    for m in maps:
        assert m.map is not None
        mds.map_release(m.map)
    assert maps[1].map is not None
    mds.map_release(maps[1].map)
    for b in bufs:
        mds.release(b.md)
    baseline.check(guest)


def test_md_info_cut_to_the_keys_asked_for_says_what_the_full_reply_says(guest: Guest) -> None:
    """``md info MD keys=...`` (the descriptor state machine's per-step check): exactly those
    keys in the full reply's order and values; an unknown name is a bad argument."""
    md = guest.ok("bmd create 5000").number("md")
    full = guest.ok(f"md info {md:#x}")
    cut = guest.ok(f"md info {md:#x} keys=refs,kind,capacity")
    assert list(cut.keys) == ["kind", "refs", "capacity"]
    assert all(cut.value(key) == full.value(key) for key in cut.keys)
    guest.err(f"md info {md:#x} keys=refs,segments", "kIOReturnBadArgument")
    guest.ok(f"md release {md:#x}")
