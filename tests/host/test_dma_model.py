"""The IODMACommand reference model (§13) on its own: each rule, bounce and edu bytes."""

from __future__ import annotations

from harness.models.dma_model import Memory, Model, effective_bits

PAGE = 4096


def memory(handle: int, length: int, direction: int, runs: list[tuple[int, int]], fill: int = 0xA5) -> Memory:
    return Memory(handle, length, direction, runs, bytearray([fill]) * length)


def test_create_rules() -> None:
    m = Model(page=PAGE, iommu=True)
    assert m.create_outcome(0).error is None and effective_bits(0) == 64
    assert m.create_outcome(12).error is None and m.create_outcome(11).error == "kIOReturnNoMemory"
    assert m.create_outcome(1).error == "kIOReturnNoMemory"
    assert m.create_outcome(200).error is None and effective_bits(200) == 64
    assert m.create_outcome(256).error == "kIOReturnBadArgument"
    assert m.create_outcome(32, options=1).error == "kIOReturnBadArgument"
    assert Model(page=65536, iommu=True).create_outcome(15).error == "kIOReturnNoMemory"


def test_prepare_errors_busy_and_reprepare() -> None:
    m = Model(page=PAGE, iommu=True)
    m.add_command(0x10, 28)
    a = memory(1, 3 * PAGE, 3, [(0x4010_0000, 3 * PAGE)])
    b = memory(2, 100, 1, [(0x4020_0000, 100)])
    assert m.prepare_outcome(0x10, None, 0, 0, 32).error == "kIOReturnBadArgument"
    assert m.prepare_outcome(0x10, a, 0, 0, 33).error == "kIOReturnOverrun"
    assert m.prepare_outcome(0x10, None, 0, 0, 33).error == "kIOReturnOverrun"  # the stub checks first
    assert m.prepare_outcome(0x10, a, 0, 0, 0).error == "kIOReturnBadArgument"
    assert m.prepare_outcome(0x10, a, 1, 0, 32).error == "kIOReturnBadArgument"  # 0 = whole length from 1
    assert m.prepare_outcome(0x10, a, 0, 3 * PAGE + 1, 32).error == "kIOReturnBadArgument"
    assert m.prepare_outcome(0x11, a, 0, 0, 32).error == "kIOReturnBadArgument"
    assert m.prepare_outcome(0x10, a, 5, 10, 32).error is None
    m.prepared(0x10, a, 5, 10, 3, [(0x1005, 10)], False)
    assert m.prepare_outcome(0x10, b, 0, 0, 32).error == "kIOReturnBusy"
    assert m.prepare_outcome(0x10, a, 0, 0, 32).error is None  # same descriptor: re-prepare
    ended = m.prepared(0x10, a, 0, 0, 3, [(0x2000, 3 * PAGE)], False)
    assert [(p.offset, p.length) for p in ended] == [(5, 10)]
    prep = m.commands[0x10].prepared
    assert prep is not None and (prep.offset, prep.length) == (0, 3 * PAGE)
    # A kernel-side failure with the same descriptor leaves the command detached.
    out = m.prepare_outcome(0x10, a, 0, 4 * PAGE, 32)
    assert out.error == "kIOReturnBadArgument"
    assert len(m.prepare_failed(0x10, out)) == 1 and m.commands[0x10].prepared is None
    assert m.complete_outcome(0x10).error == "kIOReturnNotReady"
    assert m.preparation_outcome(0x10).error == "kIOReturnNotReady"


def test_segment_checks() -> None:
    m = Model(page=PAGE, iommu=False)
    m.add_command(1, 64)
    m.add_command(2, 32)
    md = memory(5, 2 * PAGE + 8, 2, [(0x4000_3000, PAGE), (0x4000_4000, PAGE), (0x4000_9000, 8)])
    good = [(0x4000_3010, 2 * PAGE - 0x10), (0x4000_9000, 8)]
    n = 2 * PAGE + 8 - 0x10
    assert m.check_segments(1, md, 0x10, n, 32, 2, good, False) == []
    assert m.check_segments(1, md, 0x10, n, 1, 2, good[:1], False) == []  # prefix only: allowed
    problems = m.check_segments(1, md, 0x10, n, 32, 3, good[:1], True)
    assert any("flags" in p for p in problems) and any("bounced" in p for p in problems)
    assert any("room for more" in p for p in problems)
    high = memory(6, PAGE, 3, [(0x1_2000_0000, PAGE)])
    assert m.needs_bounce(high, 0, PAGE, 32) and not m.needs_bounce(high, 0, PAGE, 64)
    assert m.check_segments(2, high, 0, 0, 32, 3, [(0x4000_0000, PAGE)], True) == []
    assert any("2^32" in p for p in m.check_segments(2, high, 0, 0, 32, 3, [(0x1_0000_0000, PAGE)], True))
    assert not Model(page=PAGE, iommu=True).needs_bounce(high, 0, PAGE, 32)


def test_bounce_copies_out_at_prepare_and_back_at_complete_for_in_only() -> None:
    m = Model(page=PAGE, iommu=False)
    m.add_command(1, 32)
    m.add_command(2, 32)
    src = memory(7, 64, 2, [(0x1_2000_0000, 64)], fill=0x11)  # Out: the device reads it
    dst = memory(8, 64, 1, [(0x1_3000_0000, 64)], fill=0x22)  # In: the device writes it
    m.prepared(1, src, 0, 0, 2, [(0x4000_0000, 64)], True)
    m.prepared(2, dst, 0, 0, 1, [(0x4000_1000, 64)], True)
    src.data[0:4] = b"late"  # written after prepare: the bounce copy does not see it
    assert m.to_device(0x4000_0000, 64) and m.edu[:4] == b"\x11" * 4
    assert m.from_device(0x4000_1000 + 8, 16)
    assert dst.data == bytearray([0x22]) * 64  # not yet: the device wrote the bounce copy
    m.complete(2)
    assert dst.data[8:24] == bytearray([0x11]) * 16 and dst.data[:8] == bytearray([0x22]) * 8
    m.complete(1)
    assert src.data[:4] == b"late"  # Out only: nothing copied back


def test_iommu_blocks_device_writes_to_out_only_and_stale_iovas() -> None:
    m = Model(page=PAGE, iommu=True)
    m.add_command(1, 28)
    out_only = memory(3, 32, 2, [(0x4000_5000, 32)], fill=0x33)
    m.prepared(1, out_only, 0, 0, 2, [(0x2000, 32)], False)
    assert m.to_device(0x2000, 32) and m.edu[:32] == bytearray([0x33]) * 32
    assert not m.from_device(0x2000, 16) and out_only.data == bytearray([0x33]) * 32
    m.complete(1)
    assert not m.to_device(0x2000, 8) and m.edu[:8] == bytes(8)  # a faulting read gives zeros


def test_perform_operation() -> None:
    m = Model(page=PAGE, iommu=True)
    m.add_command(1, 0)
    md = memory(3, 100, 3, [(0x4000_5000, 100)], fill=0x44)
    data = memory(4, 50, 3, [(0x4000_6000, 50)], fill=0x55)
    assert m.perform_outcome(1, "read", 0, 10, data).error == "kIOReturnNotReady"
    m.prepared(1, md, 10, 20, 3, [(0x3000, 20)], False)
    assert m.perform_outcome(1, "write", 0, 10, None).error == "kIOReturnBadArgument"
    assert m.perform_outcome(1, "zero", 0, 10, None).error is None
    assert m.perform_outcome(1, "write", 0, 101, data).error == "kIOReturnBadArgument"
    assert m.perform_outcome(1, "write", 0, 51, data).error == "kIOReturnBadArgument"
    assert m.perform_outcome(1, "write", 15, 10, data).error == "kIOReturnUnderrun"
    assert m.perform_outcome(1, "both", 0, 1, data).error == "kIOReturnBadArgument"
    assert m.perform(1, "write", 15, 10, data, 0) == 5
    assert md.data[25:30] == bytearray([0x55]) * 5 and md.data[30] == 0x44
    assert m.perform(1, "zero", 0, 2, None, 0) == 2 and md.data[10:12] == bytes(2)
    assert m.perform(1, "read", 0, 4, data, 46) == 4 and data.data[46:50] == bytes(2) + b"\x44\x44"
    assert m.release(1) is not None and m.release_outcome(1).error == "kIOReturnBadArgument"
