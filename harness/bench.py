"""``iomem bench``: the speed figures the project promises, measured, never asserted in tests.

Writes ``results.json`` (raw samples and summaries), ``results.md`` (a readable table, also
printed) and ``*.png`` plots into the output directory.
"""

from __future__ import annotations

import functools
import json
import platform
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.addresses import PhysAddr, VirtAddr
from harness.errors import GuestError, IomemError, OracleMismatch, StateError
from harness.guest import Guest, warm
from harness.image.build import ensure_firmware
from harness.qemu import profile as profiles
from harness.qemu.ram import PmemsaveRam


@dataclass
class Result:
    name: str
    unit: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "unit": self.unit,
            "n": len(self.samples),
            "median": self.median,
            "p99": self.p99,
            "min": min(self.samples),
            "max": max(self.samples),
        }


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_boot(out: Path, repeat: int) -> list[Result]:
    results = []
    firmware = ensure_firmware()
    for profile in profiles.all_profiles():
        to_banner, whole = [], []
        for i in range(repeat):
            t0 = time.perf_counter()
            with Guest(profile, out / "logs" / f"boot-{profile.name}-{i}", firmware=firmware) as guest:
                to_banner.append(guest.boot_seconds)
            whole.append(time.perf_counter() - t0)
        results.append(Result(f"boot to banner ({profile.name})", "ms", [t * 1000 for t in to_banner]))
        results.append(Result(f"boot + power-off ({profile.name})", "ms", [t * 1000 for t in whole]))
        cycles = _warm_cycles(out, profile, firmware, repeat)
        results.append(Result(f"warm reboot + park ({profile.name})", "ms", cycles))
    return results


def _warm_cycles(out: Path, profile: profiles.Profile, firmware: Path, repeat: int) -> list[float]:
    """What a test pays per guest under pytest (harness/guest/warm.py): a guest booted by
    rebooting the parked QEMU in place, then parked again (the reboot is begun at the park
    and waited for at the next boot, so one cycle holds exactly one reboot)."""
    was = warm.enabled()
    warm.enable(True)
    try:
        with Guest(profile, out / "logs" / f"warm-{profile.name}-first", firmware=firmware):
            pass  # the QEMU every cycle below reuses
        cycles = []
        for i in range(repeat):
            t0 = time.perf_counter()
            with Guest(profile, out / "logs" / f"warm-{profile.name}-{i}", firmware=firmware) as guest:
                if not guest.warm:
                    raise IomemError(f"bench: the {profile.name} guest was not rebooted in place")
            cycles.append((time.perf_counter() - t0) * 1000)
        return cycles
    finally:
        warm.enable(was)


def bench_round_trips(out: Path, repeat: int) -> list[Result]:
    profile = profiles.load(profiles.DEFAULT_PROFILE)
    with Guest(profile, out / "logs" / "round-trip") as guest:
        scratch, _ = guest.scratch()
        small = _time(lambda: guest.ok("pagesize"), repeat)
        line64 = "crc " + f"{scratch:#x} 16".ljust(56)  # a 64-byte request line
        sized = _time(lambda: guest.ok(line64.strip()), repeat)
        read4k = _time(lambda: guest.read(scratch, 4096), max(repeat // 10, 5))
    return [
        Result("round trip: pagesize", "ms", [t * 1000 for t in small]),
        Result("round trip: crc (request line ~64 B)", "ms", [t * 1000 for t in sized]),
        Result("guest read over serial, 4 KiB", "ms", [t * 1000 for t in read4k]),
    ]


def bench_memory_reads(out: Path, repeat: int) -> list[Result]:
    profile = profiles.load(profiles.DEFAULT_PROFILE)
    results = []
    with Guest(profile, out / "logs" / "memory") as guest:
        scratch, _ = guest.scratch()
        pa = guest.phys(VirtAddr(scratch))
        if guest.machine.qmp is None:
            raise StateError("the guest has no QMP connection")
        pmem = PmemsaveRam(guest.machine.qmp, profile.ram_base, profile.ram_size, guest.artifacts)
        try:
            for size, label in ((4096, "4 KiB"), (1 << 20, "1 MiB")):
                shared = _time(functools.partial(guest.ram.read, PhysAddr(pa), size), repeat)
                dumped = _time(functools.partial(pmem.read, PhysAddr(pa), size), max(repeat // 4, 5))
                via_map, via_dump = guest.ram.read(PhysAddr(pa), size), pmem.read(PhysAddr(pa), size)
                if via_map != via_dump:
                    raise OracleMismatch(
                        f"crc32 of {size} bytes at PA {pa:#x}",
                        {"shared RAM": hex(zlib.crc32(via_map)), "pmemsave": hex(zlib.crc32(via_dump))},
                    )
                results.append(
                    Result(f"host read {label}: shared RAM file", "ms", [t * 1000 for t in shared])
                )
                results.append(Result(f"host read {label}: QMP pmemsave", "ms", [t * 1000 for t in dumped]))
        finally:
            pmem.close()
    return results


HEAP_BENCH_MAX = (64, 512, 4096)  # request sizes uniform in [0, max]


def bench_guest_heap(out: Path, repeat: int, ops: int = 100_000) -> list[Result]:
    """``bench heap`` in the guest: ns per IOMalloc/IOFree call and per picolibc malloc/free
    call on the same workload in the same run (CNTVCT_EL0, loop overhead subtracted), and
    their ratio. TCG time, so only the ratio says something about the allocators."""
    results = []
    profile = profiles.load(profiles.DEFAULT_PROFILE)
    with Guest(profile, out / "logs" / "guest-heap") as guest:
        guest.ok(f"bench heap {ops} max=4096", timeout=120)  # warm-up: TCG translates the code once
        for max_request in HEAP_BENCH_MAX:
            iomem, libc, ratio = [], [], []
            for seed in range(1, repeat + 1):
                r = guest.ok(f"bench heap {ops} max={max_request} seed={seed}", timeout=120)
                if r.number("iomem_failed") or r.number("picolibc_failed"):
                    raise GuestError(f"bench heap: allocations failed: {r.line}", error="", command=r.line)
                ns = 1e9 / r.number("freq") / r.number("calls")
                stub = r.number("stub_ticks")
                iomem.append((r.number("iomem_ticks") - stub) * ns)
                libc.append((r.number("picolibc_ticks") - stub) * ns)
                ratio.append(iomem[-1] / libc[-1])
            label = f"guest {profile.name}, sizes 0..{max_request}"
            results.append(Result(f"IOMalloc/IOFree per call ({label})", "ns/op", iomem))
            results.append(Result(f"picolibc malloc/free per call ({label})", "ns/op", libc))
            results.append(Result(f"IOMalloc / picolibc time ratio ({label})", "ratio", ratio))
    return results


def _table(results: list[Result]) -> str:
    lines = ["| benchmark | n | median | p99 | unit |", "|---|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.name} | {len(r.samples)} | {r.median:.3f} | {r.p99:.3f} | {r.unit} |")
    return "\n".join(lines)


def _plot(results: list[Result], path: Path, unit: str = "milliseconds") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(results) + 1.5))
    names = [r.name for r in results]
    ax.barh(
        names, [r.median for r in results], xerr=[[0] * len(results), [r.p99 - r.median for r in results]]
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"{unit} (median, whisker to p99; log scale)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_benchmarks(
    out: Path,
    *,
    quick: bool = False,
    heap_only: bool = False,
    readme: bool = False,
    junit: Path | None = None,
) -> int:
    from harness import heapbench

    out.mkdir(parents=True, exist_ok=True)
    repeat = 5 if quick else 20
    heapbench.ensure_heapbench()
    results: list[Result] = []
    if not heap_only:
        results = bench_boot(out, repeat) + bench_round_trips(out, repeat * 25)
        results += bench_memory_reads(out, repeat * 5)
        results += bench_guest_heap(out, repeat // 2)
        from harness.bench_dma import bench_dma  # DMA (M1): edu transfers, prepare/complete, icount

        results += bench_dma(out, repeat)
    heap = heapbench.guest_heap(out, quick) + heapbench.host_heap(quick)
    sizes = heapbench.code_size()
    meta = {
        "host": platform.node(),
        "python": platform.python_version(),
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    payload = {
        "schema": heapbench.SCHEMA_VERSION,
        "meta": meta,
        "results": [r.summary() | {"samples": asdict(r)["samples"]} for r in results],
        "heap": heap,
        "code_size": sizes,
        "suite": None,
    }
    if junit is not None:  # tests and wall_s per file from a pytest --junitxml run
        boots = [r.median for r in results if r.name.startswith("boot + power-off")]
        suite = heapbench.suite_from_junit(junit, statistics.median(boots) if boots else None)
        payload["suite"] = suite
        heapbench.plot_suite(suite, out / "suite.png")
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    heap_md = heapbench.tables(heap, sizes)
    table = (_table(results) + "\n\n" if results else "") + heap_md
    if readme and not heapbench.update_readme(heapbench.ROOT / "README.md", heap_md):
        print("README.md has no heap-bench markers: not updated")
    (out / "results.md").write_text(table + "\n")
    names = ["results.json", "results.md", "heap-fill-frag.png"]
    if results:
        _plot([r for r in results if r.unit == "ms"], out / "results.png")
        _plot([r for r in results if r.unit == "ns/op"], out / "heap.png", "ns per call")
        names += ["results.png", "heap.png"]
    heapbench.plots(heap, out)
    print(table)
    problems = heapbench.check_results(payload)
    if problems:
        print("\n".join(problems))
        return 1
    written = ", ".join(str(out / name) for name in names)
    print(f"\nwritten: {written}")
    return 0
