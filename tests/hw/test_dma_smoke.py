"""M1 firmware smoke test (the firmware engineer's own check, not the real DMA suite).

Builds its DMA machines from the existing profiles with the QEMU options the DMA profiles
need (docs/dma.md "Profiles"): ``-icount shift=0,sleep=off`` so that edu's 100 ms of virtual
time per transfer costs little wall time, a wide or 32-bit edu ``dma_mask``, and for the bounce
machine 4608 MiB of RAM with fw_cfg ``opt/iomem/dma-high=1``. Runs once (marked for
virt-4k-smmu) whatever ``--profile`` selects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from harness.guest import Guest
from harness.qemu import profile as profiles
from harness.qemu.profile import Profile

ICOUNT = ("-icount", "shift=0,sleep=off")
DATA = bytes(range(0x40, 0x60))
STATS_KEYS = (
    "dma_live",
    "dma_prepared",
    "iova_ranges",
    "iova_bytes",
    "bounce_pages",
    "iopt_tables",
    "iopt_pages",
)


def machine(base: str, **changes: object) -> Profile:
    return dataclasses.replace(profiles.load(base), **changes)  # type: ignore[arg-type]


def dma_stats(guest: Guest) -> dict[str, int]:
    reply = guest.ok("stats")
    return {k: reply.number(k) for k in STATS_KEYS} | {"pages_free": reply.number("pages_free")}


def round_trip(guest: Guest, bits: int) -> tuple[Guest, dict[str, int]]:
    """Buffer -> edu -> buffer+0x800 through one prepared command; returns the prepare reply's numbers."""
    buf = guest.ok("bmd create 8192 dir=inout")
    md, va = buf.number("md"), buf.number("va")
    guest.ok(f"write {va:#x} {DATA.hex()}")
    dma = guest.ok(f"dma create bits={bits}").number("dma")
    prep = guest.ok(f"dma prepare {dma:#x} {md:#x}")
    seg0 = prep.span("seg0")
    assert prep.number("count") >= 1 and seg0[0] + seg0[1] <= (1 << bits if bits else 1 << 64)
    guest.ok(f"edu to-device {seg0[0]:#x} {len(DATA)}")
    guest.ok(f"edu from-device {seg0[0] + 0x800:#x} {len(DATA)}")
    guest.ok(f"dma complete {dma:#x}")
    assert bytes.fromhex(guest.ok(f"read {va + 0x800:#x} {len(DATA)}").value("data")) == DATA
    return guest, {"md": md, "dma": dma, "seg0": seg0[0], "bounced": prep.number("bounced")}


@pytest.mark.profiles("virt-4k-smmu")
@pytest.mark.parametrize("granule", [4096, 65536])
def test_smmu_round_trip_and_unmap(make_guest: Callable[..., Guest], profile: Profile, granule: int) -> None:
    guest = make_guest(machine("virt-4k-smmu", granule=granule, qemu_args=ICOUNT)).boot()
    before = dma_stats(guest)
    info = guest.ok("dma info")
    assert info.number("iommu") == 1 and info.number("granule") == granule
    _, r = round_trip(guest, 32)
    assert r["bounced"] == 0 and r["seg0"] < 1 << 32
    # A completed IOVA stops working at once: the device write faults and is reported first.
    console = guest.console
    assert console is not None
    n = len(console.events)
    reply = guest.ok(f"edu from-device {r['seg0']:#x} 16")
    assert reply.number("faults") > 0
    assert any("fault smmu" in str(getattr(e, "line", e)) for e in console.events[n:])
    # An Out-only buffer is read-only for the device.
    out = guest.ok("bmd create 4096 dir=out").number("md")
    prep = guest.ok(f"dma prepare {r['dma']:#x} {out:#x}")
    assert prep.number("flags") == 0x2
    assert guest.ok(f"edu from-device {prep.span('seg0')[0]:#x} 16").number("faults") > 0
    guest.ok(f"dma release {r['dma']:#x}")
    guest.ok(f"md release {out:#x}")
    guest.ok(f"md release {r['md']:#x}")
    guest.ok("check")
    assert dma_stats(guest) == before


@pytest.mark.profiles("virt-4k-smmu")
def test_bounce_below_4g(make_guest: Callable[..., Guest], profile: Profile) -> None:
    args = (*ICOUNT, "-global", "edu.dma_mask=0xffffffff", "-fw_cfg", "name=opt/iomem/dma-high,string=1")
    guest = make_guest(machine("virt-4k", ram_mib=4608, qemu_args=args)).boot()
    before = dma_stats(guest)
    _, r = round_trip(guest, 32)
    assert r["bounced"] == 1 and r["seg0"] < 1 << 32
    low = guest.ok("dma create bits=30").number("dma")
    guest.err(f"dma prepare {low:#x} {r['md']:#x}", "kIOReturnNoResources")
    for h in (r["dma"], low):
        guest.ok(f"dma release {h:#x}")
    guest.ok(f"md release {r['md']:#x}")
    guest.ok("check")
    assert dma_stats(guest) == before


@pytest.mark.profiles("virt-4k-smmu")
def test_physical_segments_without_iommu(make_guest: Callable[..., Guest], profile: Profile) -> None:
    guest = make_guest(machine("virt-4k", qemu_args=(*ICOUNT, "-global", "edu.dma_mask=0xffffffffff"))).boot()
    _, r = round_trip(guest, 0)
    assert r["bounced"] == 0 and r["seg0"] >= 0x4000_0000  # a RAM physical address


@pytest.mark.profiles("virt-4k-smmu")
def test_command_rules(guest: Guest) -> None:
    guest.err("dma create bits=11", "kIOReturnNoMemory")
    guest.err("dma create bits=256", "kIOReturnBadArgument")
    guest.err("dma create options=1", "kIOReturnBadArgument")
    dma = guest.ok("dma create bits=64").number("dma")
    a = guest.ok("bmd create 4096 dir=in").number("md")
    b = guest.ok("bmd create 4096 dir=out").number("md")
    guest.err(f"dma prepare {dma:#x} {a:#x} max=0", "kIOReturnBadArgument")
    guest.err(f"dma prepare {dma:#x} {a:#x} max=33", "kIOReturnOverrun")
    guest.err(f"dma complete {dma:#x}", "kIOReturnNotReady")
    guest.ok(f"dma prepare {dma:#x} {a:#x}")
    guest.err(f"dma prepare {dma:#x} {b:#x}", "kIOReturnBusy")
    guest.ok(f"dma prepare {dma:#x} {a:#x} offset=16 length=32")  # same descriptor: prepared again
    assert guest.ok(f"dma preparation {dma:#x}").number("offset") == 16
    guest.err(f"dma perform {dma:#x} 3 0 4 {b:#x} 0", "kIOReturnBadArgument")
    assert guest.err(f"dma perform {dma:#x} read 16 32 {b:#x} 0", "kIOReturnUnderrun").number("length") == 16
    guest.ok(f"dma complete {dma:#x}")
    guest.err(f"dma complete {dma:#x}", "kIOReturnNotReady")
    guest.ok(f"dma release {dma:#x}")
    guest.ok("check")
