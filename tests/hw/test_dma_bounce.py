"""Bounce buffers without an IOMMU (§13.2, §13.3): on virt-4k-dma32 descriptor memory sits above
4 GiB (fw_cfg ``opt/iomem/dma-high``) and the edu reaches only 32 bits. PrepareForDMA with
``bits=32`` must hand out segments below 2^32 holding a copy of the data; CompleteDMA copies
device writes back (In transfers only). Every byte is checked in guest RAM from the host."""

from __future__ import annotations

import os

import pytest
from dma_support import BOUNCE_PROFILES, DmaBaseline, DmaBench, device_segments

from harness.addresses import PhysAddr
from harness.guest import Guest
from harness.qemu.profile import Profile

pytestmark = pytest.mark.profiles(*BOUNCE_PROFILES)
LOW = 1 << 32


@pytest.fixture
def bench(guest: Guest) -> DmaBench:
    return DmaBench(guest)


def _ram(bench: DmaBench, address: int, length: int) -> bytes:
    return bench.guest.ram.read(PhysAddr(address), length)


def test_buffers_live_above_4g(bench: DmaBench, profile: Profile) -> None:
    assert profile.fw_cfg_value("opt/iomem/dma-high") == "1"
    buf = bench.buffer(3 * 4096, "inout")
    assert all(seg.pa >= LOW for seg in buf.runs), f"dma-high buffer pages below 4 GiB: {buf.runs}"


def test_prepare_bounces_below_2_to_the_bits(bench: DmaBench) -> None:
    baseline = DmaBaseline.take(bench.guest)
    buf = bench.buffer(6000, "out", offset=100, tail=10)
    c = bench.dma.create(32).handle
    prep = bench.prepare(c, buf)
    assert prep.bounced and prep.length == buf.length
    assert all(seg.end <= LOW for seg in prep.segments), prep.segments
    own = buf.phys_runs(0, buf.span)
    for address, n in device_segments(prep):
        assert not any(pa < address + n and address < pa + m for pa, m in own), "bounce overlaps the buffer"
    # The bounce pages hold the data at prepare time.
    copied = b"".join(_ram(bench, a, n) for a, n in device_segments(prep))
    assert copied == bytes(buf.content)
    assert bench.guest.ok("stats").number("bounce_pages") > 0
    bench.dma.complete(c)
    bench.check_bytes(buf)
    bench.dma.release(c)
    bench.mds.release(buf.md)
    baseline.check(bench.guest)


def test_no_limit_means_no_bounce(bench: DmaBench) -> None:
    buf = bench.buffer(3000, "inout", offset=5)
    c = bench.dma.create(0).handle
    prep = bench.prepare(c, buf)
    assert not prep.bounced
    assert device_segments(prep) == buf.phys_runs(buf.offset, buf.length)
    bench.dma.complete(c)


def test_device_writes_reach_the_buffer_only_at_complete(bench: DmaBench) -> None:
    dst = bench.buffer(3000, "in", offset=33, tail=33)
    src = bench.buffer(3000, "out")
    c_dst, c_src = bench.dma.create(32).handle, bench.dma.create(32).handle
    p_dst, p_src = bench.prepare(c_dst, dst), bench.prepare(c_src, src)
    assert p_dst.bounced and p_src.bounced
    before = bytes(dst.content)
    r = bench.dma.to_device(bench.device_address(p_src, 0), 3000)
    assert r.status & 0x100
    r = bench.dma.from_device(bench.device_address(p_dst, 0), 3000)
    assert r.status & 0x100
    assert b"".join(_ram(bench, a, n) for a, n in device_segments(p_dst)) == bytes(src.content)
    assert bench.host_read(dst, dst.offset, dst.length) == before, (
        "device data reached the buffer before complete"
    )
    bench.dma.complete(c_dst)
    dst.content[:] = src.content
    bench.check_bytes(dst)
    bench.dma.complete(c_src)
    bench.check_bytes(src)


def test_out_only_bounce_is_not_copied_back(bench: DmaBench) -> None:
    """Without an IOMMU nothing stops the device writing an Out-only bounce buffer; CompleteDMA
    must not copy those bytes over the descriptor (only In transfers are copied back)."""
    out = bench.buffer(500, "out", offset=3, tail=3)
    c = bench.dma.create(32).handle
    prep = bench.prepare(c, out)
    assert prep.bounced
    junk = os.urandom(500)
    scratch = bench.buffer(500, "inout")
    bench.host_write(scratch, 0, junk)
    scratch.content[:] = junk
    c2 = bench.dma.create(32).handle
    p2 = bench.prepare(c2, scratch)
    bench.dma.to_device(bench.device_address(p2, 0), 500)
    bench.dma.from_device(bench.device_address(prep, 0), 500)
    assert b"".join(_ram(bench, a, n) for a, n in device_segments(prep)) == junk
    bench.dma.complete(c)
    bench.check_bytes(out)
    bench.dma.complete(c2)


def test_perform_operation_works_on_the_bounce_copy(bench: DmaBench) -> None:
    buf = bench.buffer(200, "inout")
    data = bench.buffer(200, "inout")
    c = bench.dma.create(32).handle
    prep = bench.prepare(c, buf)
    assert prep.bounced
    assert bench.dma.perform(c, "write", 0, 100, data.md, data.offset) == 100
    seen = b"".join(_ram(bench, a, n) for a, n in device_segments(prep))
    assert seen[:100] == bytes(data.content[:100]), "PerformOperation(Write) did not reach the DMA memory"
    bench.dma.complete(c)
    buf.content[:100] = data.content[:100]
    bench.check_bytes(buf)
