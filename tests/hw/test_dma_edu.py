"""Bytes moved by the edu DMA engine through IODMACommand preparations (§13.2), checked from the
host: guest RAM around and inside every buffer, the SMMU walker against the CPU page walker,
QEMU's own SMMU trace, and the SMMU event queue in guest RAM.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dma_support import (
    DIRS,
    DMA_PROFILES,
    FAULT_EVENTS,
    ORACLE_COUNTS,
    SMMU_PROFILES,
    Buffer,
    DmaBench,
    command_bits,
)

from harness import ledger
from harness.errors import GuestCrashed
from harness.guest import Guest
from harness.guest.dma import EDU_MAX_TRANSFER, EduClamped, Prepared
from harness.oracle.smmu import EventType, SmmuFault, SmmuTranslation
from harness.qemu.profile import Profile


@pytest.fixture
def bench(guest: Guest) -> DmaBench:
    return DmaBench(guest)


def _copy(bench: DmaBench, src: Buffer, src_prep: Prepared, dst: Buffer, dst_prep: Prepared, n: int) -> None:
    """edu: device reads n bytes of src into its buffer, then writes them into dst."""
    done = 0
    while done < n:
        step = min(EDU_MAX_TRANSFER, n - done)
        a = bench.device_address(src_prep, done)
        b = bench.device_address(dst_prep, done)
        # one transfer must stay inside one segment
        for prep, addr in ((src_prep, a), (dst_prep, b)):
            seg = next(s for s in prep.segments if s.address <= addr < s.end)
            step = min(step, seg.end - addr)
        r1 = bench.dma.to_device(a, step)
        r2 = bench.dma.from_device(b, step)
        assert r1.status & 0x100 and r2.status & 0x100, (r1.reply.line, r2.reply.line)
        assert not r1.faults and not r2.faults, (r1.faults, r2.faults)
        dst.content[done : done + step] = src.content[done : done + step]
        done += step


@pytest.mark.profiles(*DMA_PROFILES)
@pytest.mark.parametrize(
    ("length", "offset"),
    [(1, 0), (64, 3), (4095, 0), (4095, 0x801), (9000, 0x123)],
    ids=["1B", "64B-unaligned", "4095B", "4095B-cross-page", "9000B-multi"],
)
def test_edu_moves_the_bytes_and_touches_nothing_else(
    bench: DmaBench, profile: Profile, length: int, offset: int
) -> None:
    bits = command_bits(profile)
    src = bench.buffer(length, "out", offset=offset, tail=77)
    dst = bench.buffer(length, "in", offset=offset + 5, tail=3)
    c1, c2 = bench.dma.create(bits).handle, bench.dma.create(bits).handle
    p1, p2 = bench.prepare(c1, src), bench.prepare(c2, dst)
    ledger.compare("dma prepare", "flags", (p1.flags, p2.flags), (DIRS["out"], DIRS["in"]), "model")
    assert p1.length == length and p2.length == length
    for prep in (p1, p2):
        for seg in prep.segments:
            assert seg.end <= 1 << profile.edu_dma_bits, f"{seg} beyond the edu's reach"
    if profile.smmu:
        bench.check_segments_translate(src, p1)
        bench.check_segments_translate(dst, p2)
    _copy(bench, src, p1, dst, p2, length)
    if profile.smmu:
        # QEMU's translate_success lines agree with the walker while the mappings are in place.
        assert bench.trace_agrees().checked >= 2
    bench.dma.complete(c1)
    bench.dma.complete(c2)
    bench.check_bytes(src)
    bench.check_bytes(dst)
    assert bytes(dst.content) == bytes(src.content)


@pytest.mark.profiles(*SMMU_PROFILES)
def test_trace_translations_match_the_host_walker(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(3 * 4096 + 100, "inout", offset=0x40)
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    bench.trace.skip()
    at = 0
    while at < buf.length:
        address = bench.device_address(prep, at)
        seg = next(s for s in prep.segments if s.address <= address < s.end)
        n = min(EDU_MAX_TRANSFER, buf.length - at, seg.end - address)
        bench.dma.to_device(address, n)
        bench.dma.from_device(address, n)
        at += n
    agreement = bench.trace_agrees()  # while the mappings are in place
    assert agreement.checked >= 2 * -(-buf.length // EDU_MAX_TRANSFER)
    bench.dma.complete(c)
    bench.check_bytes(buf)  # read then written back: unchanged


@pytest.mark.profiles(*SMMU_PROFILES)
def test_device_write_into_out_only_buffer_faults_and_changes_nothing(
    bench: DmaBench, profile: Profile
) -> None:
    out = bench.buffer(256, "out", offset=16, tail=16)
    src = bench.buffer(256, "out")
    c1, c2 = bench.dma.create(command_bits(profile)).handle, bench.dma.create(command_bits(profile)).handle
    p_out, p_src = bench.prepare(c1, out), bench.prepare(c2, src)
    walker = bench.smmu_walker()
    target = bench.device_address(p_out, 0)
    verdict = walker.translate(profile.edu_stream_id, target, write=True)
    assert isinstance(verdict, SmmuFault) and verdict.kind is EventType.F_PERMISSION
    assert isinstance(walker.translate(profile.edu_stream_id, target, write=False), SmmuTranslation)
    bench.dma.to_device(bench.device_address(p_src, 0), 256)  # the edu buffer now holds src
    bench.trace.skip()
    prod = bench.eventq_prod()
    r = bench.dma.from_device(target, 256)
    events = bench.events_since(prod)
    assert events, "no SMMU event record for a device write into an Out-only buffer"
    assert {e.kind for e in events} == {EventType.F_PERMISSION}, [e.name for e in events]
    assert all(e.sid == profile.edu_stream_id and not e.read for e in events)
    assert all(target <= e.iova < target + 256 for e in events)
    assert {e.kind for e in bench.trace_events()} == {EventType.F_PERMISSION}
    assert r.faults, "the guest did not report the SMMU fault (`! fault smmu ...`)"
    ORACLE_COUNTS[(profile.name, "SMMU event records (isolation faults)")] += len(events)
    bench.dma.complete(c1)
    bench.dma.complete(c2)
    bench.check_bytes(out)


@pytest.mark.profiles(*SMMU_PROFILES)
@pytest.mark.parametrize("direction", ["to-device", "from-device"])
def test_dma_after_complete_faults_and_changes_nothing(
    bench: DmaBench, profile: Profile, direction: str
) -> None:
    buf = bench.buffer(512, "inout", offset=8, tail=8)
    src = bench.buffer(512, "out")
    c = bench.dma.create(command_bits(profile)).handle
    c_src = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    p_src = bench.prepare(c_src, src)
    iova = bench.device_address(prep, 0)
    bench.dma.to_device(bench.device_address(p_src, 0), 512)  # edu buffer = src bytes
    bench.dma.complete(c)
    walker = bench.smmu_walker()
    gone = walker.lookup(profile.edu_stream_id, iova)
    assert isinstance(gone, SmmuFault) and gone.kind is EventType.F_TRANSLATION, gone
    prod = bench.eventq_prod()
    bench.trace.skip()
    r = bench.dma.edu(direction, iova, 512)  # type: ignore[arg-type]
    events = bench.events_since(prod)
    assert events and {e.kind for e in events} <= set(FAULT_EVENTS), [e.name for e in events]
    assert {e.kind for e in events} == {EventType.F_TRANSLATION}
    assert all(e.read == (direction == "to-device") for e in events)
    assert r.faults, "the guest did not report the SMMU fault"
    ORACLE_COUNTS[(profile.name, "SMMU event records (isolation faults)")] += len(events)
    assert not [t for t in bench.trace.new() if getattr(t, "iova", -1) == iova and hasattr(t, "pa")]
    bench.dma.complete(c_src)
    bench.check_bytes(buf)
    bench.check_bytes(src)


@pytest.mark.profiles(*DMA_PROFILES)
def test_qemu_abort_is_reported_as_a_crash_with_qemus_message(guest: Guest) -> None:
    """edu given a count its 7.2 range check rejects makes QEMU abort(): the harness reports a
    crash with QEMU's own message, not a timeout. The firmware refuses such counts, so the
    registers are poked directly through the identity-mapped BAR."""
    info = guest.ok("edu info")
    bar = info.span("bar0")[0]
    guest.ok(f"poke {bar + 0x88:#x} 0x40000 8")  # destination: the edu buffer
    guest.ok(f"poke {bar + 0x90:#x} 0x1000 8")  # 4096 bytes: one past the 7.2 limit
    with pytest.raises(GuestCrashed) as caught:
        guest.request(f"poke {bar + 0x98:#x} 0x1 4")
        for _ in range(100):  # the transfer (and the abort) runs 100 ms of virtual time later
            guest.request("pagesize")
            time.sleep(0.02)
    assert "hardware error: EDU: DMA range" in caught.value.message, caught.value.message
    assert "SIGABRT" in caught.value.message


@pytest.mark.profiles("virt-4k-smmu")
def test_an_edu_clamp_warning_fails_the_transfer(
    profile: Profile, artifacts: Path, firmware_elf: Path
) -> None:
    """QEMU's edu silently redirects a bus address its dma_mask changes; the only sign is a line
    on QEMU's stdout, which the client turns into EduClamped at once (QEMU's stdout is
    line-buffered). A Guest of its own: the plugin would fail the test for the clamp too."""
    with Guest(profile, artifacts / "clamp", firmware=firmware_elf) as guest:
        dma = DmaBench(guest).dma
        asked = (1 << profile.edu_dma_bits) + 0x1000
        with pytest.raises(EduClamped, match=f"{asked:#x} -> 0x1000"):
            dma.to_device(asked, 16)
        assert guest.machine.edu_clamps() == [(asked, 0x1000)]


@pytest.mark.profiles(*SMMU_PROFILES)
def test_guest_dma_translate_agrees_with_the_host_walker(bench: DmaBench, profile: Profile) -> None:
    buf = bench.buffer(3 * profile.granule, "out", offset=0x30)
    c = bench.dma.create(command_bits(profile)).handle
    prep = bench.prepare(c, buf)
    walker = bench.smmu_walker()
    for seg in prep.segments:
        for iova in range(seg.address, seg.end, profile.granule // 2):
            mine = walker.lookup(profile.edu_stream_id, iova)
            assert isinstance(mine, SmmuTranslation)
            said = bench.guest.ok(f"dma translate {iova:#x}")
            ledger.compare("dma translate", "pa", said.number("pa"), mine.pa, "smmu", what=f"{iova:#x}")
            ledger.compare(
                "dma translate", "perm", said.value("perm"), "rw" if mine.writable else "ro", "smmu"
            )
    bench.dma.complete(c)
