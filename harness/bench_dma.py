"""``iomem bench`` DMA figures: wall time of one edu transfer through a prepared IODMACommand,
PrepareForDMA + CompleteDMA cost with and without the SMMU, and what ``-icount`` (which the
DMA-heavy tests boot, ``profile.with_icount``) buys and costs (boot, round trip, transfer)
against the profiles' real-time clock.

Measured, never asserted. Hooked into :func:`harness.bench.run_benchmarks`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

from harness.bench import Result
from harness.guest import Guest
from harness.guest.dma import EDU_MAX_TRANSFER, Dma, EduDirection
from harness.image.build import ensure_firmware
from harness.qemu import profile as profiles

DMA_PROFILES = ("virt-4k-smmu", "virt-64k-smmu", "virt-4k-dma32", "virt-4k")


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _bits(p: profiles.Profile) -> int:
    return p.edu_dma_bits if p.edu_dma_bits < 64 else 0


def bench_dma_profile(out: Path, p: profiles.Profile, label: str, repeat: int) -> list[Result]:
    """Transfers of EDU_MAX_TRANSFER (4095) bytes, and prepare/complete of one page, on ``p``."""
    transfer, prepare, complete, rt = [], [], [], []
    with Guest(p, out / "logs" / f"dma-{label}", firmware=ensure_firmware()) as guest:
        dma = Dma(guest)
        page = p.granule
        md = guest.ok(f"bmd create {max(4096, page):#x} dir=inout").number("md")
        c = dma.create(_bits(p)).handle
        prep = dma.prepare(c, md, length=4096)
        address = prep.segments[0].address
        dma.to_device(address, EDU_MAX_TRANSFER)  # warm-up: TCG translates the driver once
        for i in range(repeat):
            direction: EduDirection = "from-device" if i % 2 else "to-device"
            transfer.append(_ms(functools.partial(dma.edu, direction, address, EDU_MAX_TRANSFER)))
        dma.complete(c)
        for _ in range(repeat * 4):
            prepare.append(_ms(lambda: dma.prepare(c, md, length=4096)))
            complete.append(_ms(lambda: dma.complete(c)))
            rt.append(_ms(lambda: guest.ok("pagesize")))
        boot = guest.boot_seconds * 1000
    return [
        Result(f"edu transfer 4095 B, wall ({label})", "ms", transfer),
        Result(f"PrepareForDMA 4 KiB ({label})", "ms", prepare),
        Result(f"CompleteDMA 4 KiB ({label})", "ms", complete),
        Result(f"round trip: pagesize ({label})", "ms", rt),
        Result(f"boot to banner, DMA bench guest ({label})", "ms", [boot]),
    ]


def bench_dma(out: Path, repeat: int) -> list[Result]:
    results = []
    for name in DMA_PROFILES:
        p = profiles.load(name)
        results += bench_dma_profile(out, p, f"{name}, icount {p.icount or 'off'}", repeat)
    # The speed choice: the same SMMU profile on the instruction-counted clock that the
    # DMA-heavy tests boot (profile.with_icount), against its own real-time clock above.
    p = profiles.load("virt-4k-smmu")
    counted = profiles.with_icount(p)
    if counted is not p:
        results += bench_dma_profile(out, counted, f"virt-4k-smmu, icount {counted.icount}", repeat)
    return results
