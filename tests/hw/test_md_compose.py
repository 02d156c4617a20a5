"""CreateSubMemoryDescriptor and CreateWithMemoryDescriptors (driverkit-memory.md §10.3,
§10.4): every error of the two tables, lengths, physical segments against the host page
walker, bytes through mappings against guest RAM, and the references composites hold.
"""

from __future__ import annotations

import os

import pytest

from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import Baseline, Descriptors
from harness.models.descriptors import MAX_PARTS, Segment, merge_runs
from harness.oracle.descriptors import pages_of, walk_runs
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import Translation
from harness.qemu.profile import Profile

MAX_DEPTH = 16


@pytest.fixture
def mds(guest: Guest) -> Descriptors:
    return Descriptors(guest)


def _sub_segments(parent: list[Segment], offset: int, length: int) -> list[Segment]:
    """Bytes [offset, offset + length) of a descriptor with segments ``parent``."""
    pieces: list[tuple[int, int]] = []
    for seg in parent:
        if length == 0:
            break
        if offset >= seg.length:
            offset -= seg.length
            continue
        n = min(seg.length - offset, length)
        pieces.append((seg.pa + offset, n))
        length -= n
        offset = 0
    return merge_runs(pieces)


def _ram(guest: Guest, segments: list[Segment]) -> bytes:
    return b"".join(guest.ram.read(s.pa, s.length) for s in segments)


# --------------------------------------------------------------------------- sub-descriptors
def test_sub_descriptor_is_a_sub_range(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(4 * page)
    parent = mds.segments(buf.md)
    for offset, length in ((0, 4 * page), (page + 3, 2 * page), (4 * page - 1, 1), (17, 0)):
        sub = mds.sub(buf.md, offset, length)
        assert sub.length == length and mds.length(sub.md) == length
        assert mds.segments(sub.md) == _sub_segments(parent, offset, length)
        info = mds.info(sub.md)
        assert (info.kind, info.direction, info.depth, info.refs) == ("sub", 0, 2, 1)
    assert mds.info(buf.md).refs == 5  # the caller's + one per sub-descriptor


@pytest.mark.parametrize("direction", ["none", "in", "out", "inout"])
def test_sub_direction_is_the_passed_options(mds: Descriptors, direction: str) -> None:
    buf = mds.create(100, dir="inout")
    sub = mds.sub(buf.md, 0, 10, dir=direction)
    assert mds.info(sub.md).direction == {"none": 0, "in": 1, "out": 2, "inout": 3}[direction]


@pytest.mark.parametrize(
    ("what", "offset", "length", "dir"),
    [
        ("NULL parent", 0, 1, None),
        ("options beyond 0x3", 0, 1, 4),
        ("options beyond 0x3", 0, 1, 0x10),
        ("offset + length overflows", 2**64 - 1, 2, None),
        ("offset + length overflows", 1, 2**64 - 1, None),
        ("end beyond the length", 0, 101, None),
        ("end beyond the length", 100, 1, None),
        ("end beyond the length", 101, 0, None),
    ],
)
def test_sub_errors(
    guest: Guest, mds: Descriptors, what: str, offset: int, length: int, dir: int | None
) -> None:
    buf = mds.create(100)
    parent = 0 if what == "NULL parent" else buf.md
    baseline = Baseline.take(guest)
    guest.err(mds.sub_line(parent, offset, length, dir=dir), "kIOReturnBadArgument")
    baseline.check(guest)


def test_sub_range_follows_the_current_length(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(100)
    mds.setlength(buf.md, 60)
    guest.err(mds.sub_line(buf.md, 50, 11), "kIOReturnBadArgument")
    assert mds.sub(buf.md, 50, 10).length == 10
    assert mds.sub(buf.md, 60, 0).length == 0


def test_sub_of_a_sub_and_its_mapping(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    buf = mds.create(3 * page)
    data = os.urandom(256)
    guest.write(VirtAddr(buf.va + page + 100), data)
    outer = mds.sub(buf.md, page, 2 * page)
    inner = mds.sub(outer.md, 100, 256)
    assert mds.info(inner.md).depth == 3
    assert mds.segments(inner.md) == _sub_segments(mds.segments(buf.md), page + 100, 256)
    m = mds.map(inner.md)
    assert m.va % page == 100  # the in-page position of the first byte's physical address
    assert guest.read(m.va, 256) == data
    assert walk_runs(guest.walker(), m.va, 256) == mds.segments(inner.md)


def test_parent_released_first_keeps_the_bytes(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    baseline = Baseline.take(guest)
    buf = mds.create(2 * page)
    data = os.urandom(64)
    guest.write(VirtAddr(buf.va + page), data)
    sub = mds.sub(buf.md, page, 64)
    pages = pages_of(mds.segments(buf.md), page)
    released = mds.release(buf.md)
    assert (released.refs, released.freed) == (1, False)
    assert _ram(guest, mds.segments(sub.md)) == data
    m = mds.map(sub.md)
    assert guest.read(m.va, 64) == data
    assert m.map is not None
    mds.map_release(m.map)
    owners = PageBytes(guest)
    assert {owners.owner(pa) for pa in pages} == {"buffer"}
    assert mds.release(sub.md).freed  # the last reference: the sub, then the buffer, go
    assert {owners.owner(pa) for pa in pages} == {"free"}
    baseline.check(guest)


def test_sub_past_its_parents_shrunk_length_cannot_be_mapped(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    """§10.3, XNU IOSubMemoryDescriptor::makeMapping: the sub is mapped by its parent at
    _start + offset, so the range is checked against the parent's *current* length, and
    getPhysicalSegment gives nothing past it. (This test used to say the opposite: iomem kept a
    sub backed whatever SetLength did to its parent, which XNU does not.)"""
    buf = mds.create(200)
    guest.write(VirtAddr(buf.va + 150), b"tail")
    sub = mds.sub(buf.md, 100, 100)
    parent = mds.segments(buf.md)
    mds.setlength(buf.md, 10)
    assert mds.length(sub.md) == 100  # the sub's own length does not change
    assert mds.segments(sub.md) == []  # no segments past the parent's length
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(sub.md), "kIOReturnBadArgument")
    guest.err(mds.map_line(sub.md, options=0), "kIOReturnError")
    guest.err(mds.map_line(sub.md, options=0, offset=60, length=4), "kIOReturnError")
    baseline.check(guest)
    mds.setlength(buf.md, 150)  # half the sub is inside the parent again
    assert mds.segments(sub.md) == _sub_segments(parent, 100, 50)
    guest.err(mds.map_line(sub.md, options=0), "kIOReturnError")  # the whole sub: past the end
    head = mds.map(sub.md, options=0, offset=0, length=50)
    assert walk_runs(guest.walker(), head.va, 50) == _sub_segments(parent, 100, 50)
    mds.setlength(buf.md, 200)
    m = mds.map(sub.md, cache="writethru")
    assert guest.read(VirtAddr(m.va + 50), 4) == b"tail"


def test_sub_mapping_holds_the_parent_with_a_parent_relative_offset(
    guest: Guest, mds: Descriptors, profile: Profile
) -> None:
    """§10.3/§12: the map of a sub-descriptor is the parent's: GetOffset is parent-relative, the
    map holds the parent (not the sub), and a compatible mapping of the parent is reused."""
    page = profile.granule
    baseline = Baseline.take(guest)
    buf = mds.create(3 * page)
    data = os.urandom(0x100)
    guest.write(VirtAddr(buf.va + page + 0x30), data)
    sub = mds.sub(buf.md, page + 0x30, 0x100)
    inner = mds.sub(sub.md, 0x10, 0x20)
    m = mds.map(sub.md)
    assert (m.offset, m.length) == (page + 0x30, 0x100)
    assert mds.map_info(m.map).md == buf.md if m.map is not None else False
    assert (mds.info(sub.md).refs, mds.info(buf.md).refs) == (2, 3)  # sub: caller + inner
    assert guest.read(m.va, 0x100) == data
    assert walk_runs(guest.walker(), m.va, 0x100) == mds.segments(sub.md)
    mi = mds.map(inner.md, cache="inhibit")  # sub of a sub: still the buffer, offsets added
    assert (mi.offset, mi.length) == (page + 0x40, 0x20)
    assert mds.map_info(mi.map).md == buf.md if mi.map is not None else False
    assert guest.read(mi.va, 0x20) == data[0x10:0x30]
    # A mapping of the sub range through the parent is the sub's mapping again (reuse).
    again = mds.map(buf.md, offset=page + 0x30, length=0x100)
    assert (again.map, again.va) == (m.map, m.va)
    # The subs can go: the maps hold the buffer.
    assert mds.release(inner.md).freed and mds.release(sub.md).freed
    assert guest.read(m.va, 0x100) == data
    for handle in (m.map, m.map, mi.map):
        assert handle is not None
        mds.map_release(handle)
    assert mds.release(buf.md).freed
    baseline.check(guest)


def test_out_sub_descriptor_maps_read_only(guest: Guest, mds: Descriptors) -> None:
    """§10.2: Out-only memory maps read-only for a task that did not create the buffer; a
    composite records no creator, so its Out mappings are read-only (buffers' are not)."""
    buf = mds.create(100, dir="out")
    assert mds.map(buf.md).perm == "rw"
    out = mds.map(mds.sub(buf.md, 0, 100, dir="out").md)
    assert out.perm == "ro"
    leaf = guest.check_translation(out.va)
    assert isinstance(leaf, Translation) and leaf.el1 == "ro"
    assert guest.err(f"poke {out.va:#x} 1 1", "kIOReturnNotWritable").value("fault") == "permission"
    for direction in ("in", "inout", "none"):
        assert mds.map(mds.sub(buf.md, 0, 100, dir=direction).md).perm == "rw"
    multi = mds.multi([buf.md], dir="out")
    assert mds.map(multi.md).perm == "ro"


# --------------------------------------------------------------------------- multi-descriptors
def test_multi_concatenates(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    parts = [mds.create(page), mds.create(2 * page, align=2 * page), mds.create(page)]
    mds.setlength(parts[2].md, 100)
    multi = mds.multi([p.md for p in parts])
    assert multi.length == 3 * page + 100
    expected = merge_runs((s.pa, s.length) for p in parts for s in mds.segments(p.md))
    assert mds.segments(multi.md) == expected
    info = mds.info(multi.md)
    assert (info.kind, info.depth, info.refs) == ("multi", 2, 1)
    assert [mds.info(p.md).refs for p in parts] == [2, 2, 2]
    # The bytes, in order, through one mapping.
    for i, p in enumerate(parts):
        guest.fill(p.va, 64, 0x10 + i)
    m = mds.map(multi.md)
    assert walk_runs(guest.walker(), m.va, m.length) == expected
    for i, start in enumerate((0, page, 3 * page)):
        assert guest.read(VirtAddr(m.va + start), 64) == bytes([0x10 + i]) * 64
    assert _ram(guest, expected)[page : page + 64] == b"\x11" * 64


def test_multi_can_repeat_a_part(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    buf = mds.create(profile.granule)
    guest.poke(buf.va, 0xAB, 1)
    multi = mds.multi([buf.md] * 3)
    assert multi.length == 3 * profile.granule and mds.info(buf.md).refs == 4
    m = mds.map(multi.md)
    for i in range(3):
        assert guest.peek(VirtAddr(m.va + i * profile.granule), 1) == 0xAB
    guest.poke(VirtAddr(m.va + 2 * profile.granule + 1), 0xCD, 1)
    assert guest.peek(VirtAddr(buf.va + 1), 1) == 0xCD


def test_multi_of_parts_meeting_mid_page(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """Parts whose bytes meet inside a page cannot be mapped into one contiguous VA range:
    segments still list them; mapping is kIOReturnError (DriverKit) / kIOReturnNotAligned."""
    a, b = mds.create(100), mds.create(100)
    multi = mds.multi([a.md, b.md])
    assert multi.length == 200
    segments = mds.segments(multi.md)
    assert sum(s.length for s in segments) == 200 and len(segments) == 2
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(multi.md, options=0), "kIOReturnError")
    guest.err(mds.map_line(multi.md), "kIOReturnNotAligned")
    baseline.check(guest)
    # Each part alone, and a range inside one part, map fine.
    assert mds.map(multi.md, offset=10, length=90).length == 90
    assert mds.map(multi.md, offset=100, length=100).va % profile.granule == 0
    # Physically adjacent parts are one run and map fine although they meet mid-page.
    halves = mds.multi([mds.sub(a.md, 0, 40).md, mds.sub(a.md, 40, 60).md])
    assert len(mds.segments(halves.md)) == 1
    assert mds.map(halves.md).length == 100


def test_multi_direction_is_the_passed_options(mds: Descriptors) -> None:
    """The parts' directions may differ: XNU checks them only with a debug assertion."""
    a, b = mds.create(10, dir="in"), mds.create(10, dir="out")
    assert mds.info(mds.multi([a.md, b.md], dir="inout").md).direction == 3
    assert mds.info(mds.multi([a.md, b.md]).md).direction == 0


def test_multi_of_32_and_33(guest: Guest, mds: Descriptors) -> None:
    buf = mds.create(10)
    multi = mds.multi([buf.md] * MAX_PARTS)
    assert multi.length == 10 * MAX_PARTS
    baseline = Baseline.take(guest)
    guest.err(mds.multi_line([buf.md] * (MAX_PARTS + 1)), "kIOReturnOverrun")
    guest.err(mds.multi_line([buf.md] * 40 + [0]), "kIOReturnOverrun")  # the stub checks first
    baseline.check(guest)
    # Space-separated arguments and comma lists mix.
    handles = ",".join(f"{buf.md:#x}" for _ in range(4))
    reply = guest.ok(f"md multi {buf.md:#x} {handles} {buf.md:#x}")
    assert reply.number("length") == 60 and reply.number("count") == 6


@pytest.mark.parametrize(
    ("what", "line"),
    [
        ("count 0", "md multi"),
        ("count 0", "md multi dir=in"),
        ("NULL entry", "md multi {md},0"),
        ("NULL entry", "md multi 0"),
        ("options beyond 0x3", "md multi {md} dir=4"),
        ("options beyond 0x3", "md multi {md} dir=0x100"),
        ("not held", "md multi {md},0x12345"),
        ("malformed list", "md multi {md},,{md}"),
        ("malformed list", "md multi {md},"),
        ("malformed list", "md multi {md},x"),
    ],
)
def test_multi_errors(guest: Guest, mds: Descriptors, what: str, line: str) -> None:
    buf = mds.create(10)
    baseline = Baseline.take(guest)
    guest.err(line.format(md=f"{buf.md:#x}"), "kIOReturnBadArgument")
    baseline.check(guest)


def test_parts_released_first_keep_the_bytes(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    page = profile.granule
    baseline = Baseline.take(guest)
    parts = [mds.create(page) for _ in range(3)]
    for i, p in enumerate(parts):
        guest.fill(p.va, page, 0x40 + i)
    multi = mds.multi([p.md for p in parts])
    for p in parts:
        assert mds.release(p.md).refs == 1
    m = mds.map(multi.md)
    assert [guest.peek(VirtAddr(m.va + i * page + page - 1), 1) for i in range(3)] == [0x40, 0x41, 0x42]
    segments = mds.segments(multi.md)
    assert guest.ram.read(PhysAddr(segments[-1].pa + segments[-1].length - 1), 1) == b"\x42"
    assert mds.release(multi.md).refs == 1  # the map still holds it
    assert m.map is not None
    assert mds.map_release(m.map).freed
    baseline.check(guest)


def test_nesting_depth_limit(guest: Guest, mds: Descriptors) -> None:
    """iomem bounds composites at depth 16 (a buffer is 1); deeper is kIOReturnNoMemory, the
    code DriverKit gives when the kernel cannot build the descriptor."""
    baseline = Baseline.take(guest)
    buf = mds.create(64)
    chain = [buf.md]
    for depth in range(2, MAX_DEPTH + 1):
        sub = mds.sub(chain[-1], 0, 64) if depth % 2 else mds.multi([chain[-1]])
        assert mds.info(sub.md).depth == depth
        chain.append(sub.md)
    guest.err(mds.sub_line(chain[-1], 0, 1), "kIOReturnNoMemory")
    guest.err(mds.multi_line([buf.md, chain[-1]]), "kIOReturnNoMemory")
    guest.poke(buf.va, 0x77, 1)
    m = mds.map(chain[-1])
    assert guest.peek(m.va, 1) == 0x77
    assert m.map is not None
    mds.map_release(m.map)
    for handle in chain:  # parents first: everything stays alive until the deepest goes
        released = mds.release(handle)
        assert released.freed == (handle == chain[-1])
    baseline.check(guest)


def test_multi_walks_its_parts_current_lengths(guest: Guest, mds: Descriptors, profile: Profile) -> None:
    """§10.4, XNU IOMultiMemoryDescriptor::getPhysicalSegment / doMap: the multi keeps its
    length, but segments and mappings walk each part's *current* length. After a part shrinks,
    the later bytes shift to the next part, the tail resolves to nothing, and CreateMapping of
    the whole multi fails (kIOReturnError; the extension says kIOReturnUnderrun)."""
    page = profile.granule
    a, b = mds.create(page), mds.create(page)
    guest.fill(a.va, page, 0xAA)
    guest.fill(b.va, page, 0xBB)
    multi = mds.multi([a.md, b.md])
    seg_a, seg_b = mds.segments(a.md), mds.segments(b.md)
    assert mds.segments(multi.md) == merge_runs([(s.pa, s.length) for s in seg_a + seg_b])
    mds.setlength(a.md, page // 2)
    assert mds.length(multi.md) == 2 * page  # its own length is what it was
    shifted = merge_runs([(seg_a[0].pa, page // 2)] + [(s.pa, s.length) for s in seg_b])
    assert mds.segments(multi.md) == shifted  # b's bytes now start at multi byte page/2
    baseline = Baseline.take(guest)
    guest.err(mds.map_line(multi.md, options=0), "kIOReturnError")
    guest.err(mds.map_line(multi.md), "kIOReturnUnderrun")
    guest.err(mds.map_line(multi.md, offset=page, length=page), "kIOReturnUnderrun")
    baseline.check(guest)
    shifted_map = mds.map(multi.md, offset=page // 2, length=page)  # exactly b now
    assert walk_runs(guest.walker(), shifted_map.va, page) == seg_b
    assert guest.read(shifted_map.va, 4) == b"\xbb" * 4
    mds.setlength(a.md, page)
    whole = mds.map(multi.md)
    assert walk_runs(guest.walker(), whole.va, 2 * page) == mds.segments(multi.md)
    assert guest.read(VirtAddr(whole.va + page - 2), 4) == b"\xaa\xaa\xbb\xbb"
