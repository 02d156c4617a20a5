"""IODMACommand §13, row by row: Create, PrepareForDMA, CompleteDMA, GetPreparation,
PerformOperation and release, each answer checked against the spec and the host's eyes
(the page walker for physical segments, the SMMU walker for IOVAs, guest RAM for bytes)."""

from __future__ import annotations

import pytest
from dma_support import (
    DMA_PROFILES,
    NO_IOMMU_PROFILES,
    SMMU_PROFILES,
    DmaBaseline,
    DmaBench,
    command_bits,
    device_segments,
)

from harness.guest import Guest
from harness.oracle.smmu import EventType, SmmuFault
from harness.qemu.profile import Profile

pytestmark = pytest.mark.profiles(*DMA_PROFILES)


@pytest.fixture
def bench(guest: Guest) -> DmaBench:
    return DmaBench(guest)


# --------------------------------------------------------------------------- §13.1 Create
def test_create_max_address_bits_rules(bench: DmaBench, profile: Profile) -> None:
    page_shift = profile.granule.bit_length() - 1
    g = bench.guest
    for bits in (0, page_shift, 28, 32, 63, 64, 200, 255):
        made = bench.dma.create(bits)
        assert made.bits == bits
        bench.dma.release(made.handle)
    for bits in (1, page_shift - 1):
        g.err(bench.dma.create_line(bits), "kIOReturnNoMemory")
    g.err(bench.dma.create_line(256), "kIOReturnBadArgument")
    g.err("dma create options=1", "kIOReturnBadArgument")
    g.err("dma create bits=32 options=0x8000", "kIOReturnBadArgument")


def test_release_and_stale_handles(bench: DmaBench) -> None:
    baseline = DmaBaseline.take(bench.guest)
    c = bench.dma.create().handle
    bench.dma.release(c)
    for line in (
        f"dma release {c:#x}",
        f"dma complete {c:#x}",
        f"dma preparation {c:#x}",
        "dma complete 0x0",
    ):
        bench.guest.err(line, "kIOReturnBadArgument")
    baseline.check(bench.guest)


# --------------------------------------------------------------------------- §13.2 PrepareForDMA
@pytest.mark.parametrize(("direction", "flags"), [("in", 0x1), ("out", 0x2), ("inout", 0x3)])
def test_prepare_flags_count_and_lengths(
    bench: DmaBench, profile: Profile, direction: str, flags: int
) -> None:
    buf = bench.buffer(3 * profile.granule - 100, direction, offset=50, tail=50)
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    assert prep.flags == flags
    assert prep.count == len(prep.segments) >= 1
    assert prep.length == buf.length  # Σ lengths = prepared length (fits in 32 segments)
    first_pa = buf.pa(buf.offset)
    if profile.smmu:
        assert prep.count == 1, "behind an IOMMU the IOVA range is contiguous"
        assert not prep.bounced
        assert prep.segments[0].address % profile.granule == first_pa % profile.granule
        assert prep.segments[-1].end <= 1 << profile.edu_dma_bits
        bench.check_segments_translate(buf, prep)
    elif not prep.bounced:
        # Physical segments: exactly the runs the host page walker finds, adjacent pages merged.
        assert device_segments(prep) == buf.phys_runs(buf.offset, buf.length)
    pre = bench.dma.preparation(c)
    assert (pre.md, pre.offset, pre.length) == (buf.md, buf.offset, buf.length)
    bench.dma.complete(c)


def test_prepare_length_zero_means_the_whole_descriptor(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(5000, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.dma.prepare(c, buf.md)
    assert prep.length == 5000
    assert bench.dma.preparation(c).length == 5000
    bench.dma.complete(c)
    # length 0 is the whole length, not "the rest after offset": with an offset it overruns.
    bench.guest.err(bench.dma.prepare_line(c, buf.md, offset=1), "kIOReturnBadArgument")
    assert bench.dma.prepare(c, buf.md, offset=1, length=4999).length == 4999
    bench.dma.complete(c)


@pytest.mark.parametrize(
    ("offset", "length"), [(0, 5001), (5000, 1), (4999, 2), (2**64 - 1, 2), (1, 2**64 - 1)]
)
def test_prepare_range_beyond_the_descriptor(
    bench: DmaBench, profile: Profile, offset: int, length: int
) -> None:
    buf = bench.buffer(5000, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    bench.guest.err(bench.dma.prepare_line(c, buf.md, offset=offset, length=length), "kIOReturnBadArgument")
    bench.guest.err(f"dma preparation {c:#x}", "kIOReturnNotReady")


def test_prepare_argument_errors(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(100, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    g = bench.guest
    g.err(bench.dma.prepare_line(c, buf.md, max=33), "kIOReturnOverrun")
    g.err(bench.dma.prepare_line(c, buf.md, max=0), "kIOReturnBadArgument")
    g.err(bench.dma.prepare_line(c, 0), "kIOReturnBadArgument")  # NULL descriptor
    g.err(bench.dma.prepare_line(c, buf.md) + " options=1", "kIOReturnBadArgument")
    g.err(f"dma preparation {c:#x}", "kIOReturnNotReady")
    assert bench.dma.prepare(c, buf.md, max=32).count >= 1


def test_busy_with_another_descriptor_and_reprepare_with_the_same(bench: DmaBench, profile: Profile) -> None:
    a = bench.buffer(3000, "inout")
    b = bench.buffer(3000, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    first = bench.dma.prepare(c, a.md, offset=10, length=100)
    bench.guest.err(bench.dma.prepare_line(c, b.md), "kIOReturnBusy")
    pre = bench.dma.preparation(c)
    assert (pre.md, pre.offset, pre.length) == (a.md, 10, 100), "Busy changed the preparation"
    second = bench.dma.prepare(c, a.md, offset=200, length=300)
    pre = bench.dma.preparation(c)
    assert (pre.md, pre.offset, pre.length) == (a.md, 200, 300)
    assert second.length == 300
    if profile.smmu:
        # The first preparation was completed implicitly: its IOVA no longer translates
        # (unless the allocator handed the same range out again).
        walker = bench.smmu_walker()
        old = first.segments[0].address
        result = walker.lookup(profile.edu_stream_id, old)
        page = profile.granule
        new_pages = {a for s in second.segments for a in range(s.address & -page, s.end, page)}
        if old & -page not in new_pages:
            assert isinstance(result, SmmuFault) and result.kind is EventType.F_TRANSLATION, result
    bench.dma.complete(c)
    assert bench.dma.prepare(c, b.md).length == 3000  # after complete, another descriptor is fine
    bench.dma.complete(c)


@pytest.mark.profiles(*NO_IOMMU_PROFILES, "virt-4k-dma32")
def test_more_segments_than_room_gives_a_prefix(bench: DmaBench, profile: Profile) -> None:
    """§13.2: too many segments for the array -> Success with a prefix (Σ lengths < length)."""
    page = profile.granule
    a = bench.buffer(page, "inout")
    multi = bench.mds.multi([a.md, a.md, a.md], dir="inout")  # the same page three times
    c = bench.dma.create(0).handle  # no address limit: nothing bounces, segments are physical
    whole = bench.dma.prepare(c, multi.md)
    assert whole.count == 3 and whole.length == 3 * page
    bench.dma.complete(c)
    prefix = bench.dma.prepare(c, multi.md, max=2)
    assert prefix.count == 2 and prefix.length == 2 * page < 3 * page
    assert prefix.segments == whole.segments[:2]
    assert bench.dma.preparation(c).length == 3 * page  # the preparation itself is whole
    bench.dma.complete(c)


@pytest.mark.profiles(*SMMU_PROFILES)
def test_iovas_fit_max_address_bits(bench: DmaBench, profile: Profile) -> None:
    page_shift = profile.granule.bit_length() - 1
    for bits in (page_shift + 2, 20, 28):  # page 0 of the IOVA space is never handed out
        c = bench.dma.create(bits).handle
        buf = bench.buffer(2 * profile.granule, "in")
        prep = bench.prepare(c, buf)
        assert all(s.end <= 1 << bits for s in prep.segments), (bits, prep.segments)
        bench.check_segments_translate(buf, prep)
        bench.dma.complete(c)


# --------------------------------------------------------------------------- §13.3 CompleteDMA
def test_complete_not_prepared_and_twice(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(64, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    bench.guest.err(f"dma complete {c:#x}", "kIOReturnNotReady")
    bench.prepare(c, buf)
    bench.guest.err(f"dma complete {c:#x} options=1", "kIOReturnBadArgument")
    bench.dma.complete(c)
    bench.guest.err(f"dma complete {c:#x}", "kIOReturnNotReady")
    bench.guest.err(f"dma preparation {c:#x}", "kIOReturnNotReady")


@pytest.mark.profiles(*SMMU_PROFILES)
def test_complete_unmaps_every_iova(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(3 * profile.granule, "inout", offset=7)
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    bench.check_segments_translate(buf, prep)
    bench.dma.complete(c)
    walker = bench.smmu_walker()
    for seg in prep.segments:
        for iova in range(seg.address, seg.end, profile.granule):
            result = walker.lookup(profile.edu_stream_id, iova)
            assert isinstance(result, SmmuFault) and result.kind is EventType.F_TRANSLATION, (
                hex(iova),
                result,
            )
    assert not list(
        walker.iter_mappings(profile.edu_stream_id, prep.segments[0].address, prep.segments[-1].end)
    )


def test_release_completes_a_prepared_command_and_leaks_nothing(bench: DmaBench, profile: Profile) -> None:
    baseline = DmaBaseline.take(bench.guest)
    buf = bench.buffer(2 * profile.granule + 1, "inout")
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    bench.dma.release(c)
    if profile.smmu:
        result = bench.smmu_walker().lookup(profile.edu_stream_id, prep.segments[0].address)
        assert isinstance(result, SmmuFault), result
    bench.mds.release(buf.md)
    baseline.check(bench.guest)


# --------------------------------------------------------------------------- §13.4 PerformOperation
def test_perform_operation_moves_bytes_like_the_cpu(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(300, "inout", offset=20, tail=20)
    data = bench.buffer(200, "inout", offset=8, tail=8)
    c = bench.dma.create(command_bits(profile)).handle
    g = bench.guest
    g.err(bench.dma.perform_line(c, "zero", 0, 10), "kIOReturnNotReady")
    bench.prepare(c, buf)
    # write: data -> DMA memory
    assert bench.dma.perform(c, "write", 10, 50, data.md, data.offset + 5) == 50
    buf.content[10:60] = data.content[5:55]
    # zero
    assert bench.dma.perform(c, "zero", 100, 30) == 30
    buf.content[100:130] = bytes(30)
    # read: DMA memory -> data
    assert bench.dma.perform(c, "read", 0, 40, data.md, data.offset) == 40
    data.content[0:40] = buf.content[0:40]
    # errors
    g.err(bench.dma.perform_line(c, "read", 0, 10), "kIOReturnBadArgument")  # no data descriptor
    g.err(bench.dma.perform_line(c, "write", 0, 10), "kIOReturnBadArgument")
    g.err(bench.dma.perform_line(c, "3", 0, 10, data.md, 0), "kIOReturnBadArgument")  # read|write
    g.err(bench.dma.perform_line(c, "8", 0, 10, data.md, 0), "kIOReturnBadArgument")  # unknown bit
    g.err(bench.dma.perform_line(c, "read", 0, 341, data.md, 0), "kIOReturnBadArgument")  # > descriptor
    g.err(bench.dma.perform_line(c, "write", 0, 217, data.md, 0), "kIOReturnBadArgument")  # > data
    short = g.err(bench.dma.perform_line(c, "zero", 290, 20), "kIOReturnUnderrun")
    if "length" in short:
        assert short.number("length") == 10
    buf.content[290:300] = bytes(10)
    # LEN is checked against the descriptor (340 bytes), not the preparation (300): a copy that
    # leaves the prepared range is short (Underrun), not a bad argument.
    short = g.err(bench.dma.perform_line(c, "zero", 0, 320), "kIOReturnUnderrun")
    if "length" in short:
        assert short.number("length") == 300
    buf.content[0:300] = bytes(300)
    bench.dma.complete(c)
    bench.check_bytes(buf)
    # data's window is [8, 208): the test wrote its first 40 bytes (data.offset = 8)
    bench.check_bytes(data)
