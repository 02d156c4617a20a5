"""The allocator benchmark of issue P1: the same traces (``firmware/lib/bench_traces.c``) in
the guest (``bench heap trace=NAME allocator=...``, CNTVCT_EL0 per call) and on the host
(``build/host/heapbench``, the TSC per call), every heap result one dict of the JSON."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import GuestError, StateError
from harness.guest import Guest
from harness.image.build import ensure_firmware
from harness.qemu import profile as profiles

SCHEMA_VERSION = 2
TRACES = ("small", "pareto", "churn", "mixed", "frag50", "frag100", "large")
GUEST_ALLOCATORS = ("iomem", "picolibc")
HOST_ALLOCATORS = ("iomem", "glibc", "jemalloc", "mimalloc")
PRELOAD = {"jemalloc": "libjemalloc.so.2", "mimalloc": "libmimalloc.so.2"}
ROOT = Path(__file__).resolve().parent.parent
HEAPBENCH = ROOT / "build" / "host" / "heapbench"

_INT = re.compile(r"^-?\d+$")


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def _series(text: str) -> list[float | None]:
    return [None if v == "-" else int(v) / 1e6 for v in text.split(",")] if text not in ("", "-") else []


def _result(
    where: str, trace: str, allocator: str, f: dict[str, str], ns_per_tick: float
) -> dict[str, object]:
    timer = int(f["timer"])
    measured = max(int(f["measured"]), 1)
    # The mean of the fastest 99.9 % of calls when the runner gives it (the host preempts
    # the emulator: one stall of milliseconds would otherwise be most of the mean).
    mean_ticks = int(f["trim_x100"]) / 100 if "trim_x100" in f else int(f["sum"]) / measured
    net = max(mean_ticks - timer, 1e-9)
    out: dict[str, object] = {
        "where": where,
        "trace": trace,
        "allocator": allocator,
        "unit": "ticks",
        "median": int(f["median"]),
        "p99": int(f["p99"]),
        "max": int(f["max"]),
        "mean": mean_ticks,
        "timer_ticks": timer,
        "tick_ns": ns_per_tick,
        "median_ns": max(int(f["median"]) - timer, 0) * ns_per_tick,
        "p99_ns": max(int(f["p99"]) - timer, 0) * ns_per_tick,
        "ns_per_op": net * ns_per_tick,
        "ops_per_s": 1e9 / (net * ns_per_tick),
        "calls": int(f["calls"]),
        "measured": measured,
        "failed": int(f["failed"]),
        "p99_over_median": int(f["p99"]) / max(int(f["median"]), 1),
    }
    if "ns_per_op" in f:  # host: from untimed replays (heapbench.c), not the per-call sum
        out["ns_per_op"] = max(float(f["ns_per_op"]), 0.0)
        out["ops_per_s"] = 1e9 / max(float(f["ns_per_op"]), 1e-3)
    if where == "guest" or allocator == "iomem":
        out["frag_avg"] = int(f["frag_avg_ppm"]) / 1e6
        out["frag_max"] = int(f["frag_max_ppm"]) / 1e6
        out["meta_bytes_per_block"] = int(f["meta_x100"]) / 100
    if "series" in f:
        out["frag_series"] = _series(f["series"])
    if "fill" in f:
        out["fill_cost_ticks"] = [None if v == "-" else int(v) / 100 for v in f["fill"].split(",")]
    return out


def guest_heap(out: Path, quick: bool) -> list[dict[str, object]]:
    """Every trace against IOMalloc/IOFree and picolibc's malloc/free in one guest. Each
    allocator runs the trace `repeat` times, alternately; the run with the lowest mean
    cost per call is kept (the host preempts the emulator now and then: one 5 ms stall
    moves the mean of 20,000 calls by a third). Trace by trace, not in rounds as on the
    host: picolibc's heap never shrinks, so what a trace meets in it (and its
    fragmentation figure) depends on the traces run before; in rounds, the large trace's
    free megabytes made picolibc's small trace read 0 % instead of 40 %."""
    ops, repeat = (2000, 1) if quick else (20000, 3)
    results: list[dict[str, object]] = []
    profile = profiles.load(profiles.DEFAULT_PROFILE)
    with Guest(profile, out / "logs" / "guest-heap-traces") as guest:
        for trace in TRACES:
            n = ops if trace != "large" else max(ops // 20, 50)
            best: dict[str, dict[str, object]] = {}
            for _ in range(repeat):
                for allocator in ("stub", *GUEST_ALLOCATORS):  # stub first: TCG translates the loop once
                    line = f"bench heap trace={trace} allocator={allocator} ops={n} seed=1"
                    r = guest.ok(line, timeout=600)
                    f = _fields(r.line)
                    if int(f["failed"]):
                        raise GuestError(f"bench heap: allocations failed: {r.line}", error="", command=line)
                    if allocator == "stub":
                        continue
                    row = _result("guest", trace, allocator, f, 1e9 / int(f["freq"]))
                    if allocator not in best or _num(row, "mean") < _num(best[allocator], "mean"):
                        best[allocator] = row
            results += [best[a] | {"runs": repeat} for a in GUEST_ALLOCATORS]
    return results


def host_heap(quick: bool) -> list[dict[str, object]]:
    """Every trace against the host-built heap and glibc / jemalloc / mimalloc. Each
    allocator runs each trace `repeat` times, in rounds over all traces and allocators, in
    a process of its own each time; the run with the lowest ns/op is kept. On this shared
    machine a spell of several seconds can run everything 30-50 % slower, and a single
    run per allocator put a ratio anywhere in a 2x range."""
    if not HEAPBENCH.exists():
        raise StateError(f"{HEAPBENCH} is missing: run `make heapbench`")
    ops, repeat = (50_000, 1) if quick else (500_000, 3)
    best: dict[tuple[str, str], dict[str, object]] = {}
    for _ in range(repeat):  # rounds over every trace: a slow spell hits one round, not all three
        for trace in TRACES:
            n = ops if trace != "large" else max(ops // 50, 200)
            for allocator in HOST_ALLOCATORS:
                row = _host_run(allocator, trace, n)
                key = (trace, allocator)
                if key not in best or _num(row, "ns_per_op") < _num(best[key], "ns_per_op"):
                    best[key] = row
    return [best[(t, a)] | {"runs": repeat} for t in TRACES for a in HOST_ALLOCATORS]


def _host_run(allocator: str, trace: str, ops: int) -> dict[str, object]:
    """One heapbench process: `allocator` (iomem, or malloc preloaded as glibc / jemalloc /
    mimalloc) on `trace`."""
    env = dict(os.environ)
    if allocator in PRELOAD:
        env["LD_PRELOAD"] = PRELOAD[allocator]
    which = "iomem" if allocator == "iomem" else "malloc"
    proc = subprocess.run(
        [str(HEAPBENCH), which, trace, str(ops), "1"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("ok "):
        raise StateError(f"heapbench {allocator} {trace}: {proc.stderr or proc.stdout}")
    f = _fields(proc.stdout)
    return _result("host", trace, allocator, f, 1e9 / float(f["freq"]))


def code_size() -> dict[str, int]:
    """Text bytes: the heap's object file (heap_check and the benchmark probe included), and
    picolibc's malloc + free objects in its libc.a."""
    sizes: dict[str, int] = {}
    tool = shutil.which("aarch64-linux-gnu-size")
    heap_o = ROOT / "build" / "firmware" / "mm" / "heap.c.o"
    libc = Path("/usr/lib/picolibc/aarch64-linux-gnu/lib/libc.a")
    if tool is None:
        return sizes
    if heap_o.exists():
        text = subprocess.run([tool, str(heap_o)], capture_output=True, text=True, check=False).stdout
        sizes["iomem"] = int(text.splitlines()[1].split()[0])
    if libc.exists():
        text = subprocess.run([tool, str(libc)], capture_output=True, text=True, check=False).stdout
        total = 0
        for line in text.splitlines()[1:]:
            parts = line.split()
            if parts and _INT.match(parts[0]) and re.search(r"nano-malloc-(malloc|free)\.c", line):
                total += int(parts[0])
        sizes["picolibc"] = total
    return sizes


def check_results(payload: dict[str, object]) -> list[str]:
    """What the JSON lacks: the schema version, or a (where, trace, allocator) heap result."""
    problems = []
    if payload.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema is {payload.get('schema')!r}, not {SCHEMA_VERSION}")
    heap = payload.get("heap")
    rows = heap if isinstance(heap, list) else []
    have = {(r.get("where"), r.get("trace"), r.get("allocator")) for r in rows if isinstance(r, dict)}
    keys = ("where", "trace", "allocator", "unit", "median", "p99")
    for row in rows:
        if not isinstance(row, dict) or any(k not in row for k in keys):
            problems.append(f"a heap result lacks one of {keys}: {row!r}")
    for where, allocators in (("guest", GUEST_ALLOCATORS), ("host", HOST_ALLOCATORS)):
        for trace in TRACES:
            for allocator in allocators:
                if (where, trace, allocator) not in have:
                    problems.append(f"no heap result for {where} {trace} {allocator}")
    return problems


def _pick(rows: list[dict[str, object]], where: str, trace: str, allocator: str) -> dict[str, object]:
    for r in rows:
        if (r["where"], r["trace"], r["allocator"]) == (where, trace, allocator):
            return r
    return {}


def _num(row: dict[str, object], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else float("nan")


def tables(rows: list[dict[str, object]], sizes: dict[str, int]) -> str:
    """The heap tables of results.md (and of the README)."""
    lines = [
        "### Guest: IOMalloc/IOFree against picolibc (ticks of CNTVCT_EL0 per call)",
        "",
    ]
    guest = [r for r in rows if r["where"] == "guest"]
    if guest:
        tick = _num(guest[0], "tick_ns")
        lines += [
            f"One tick = {tick:.0f} ns (the timer's resolution); reading it twice costs "
            f"{int(_num(guest[0], 'timer_ticks'))} ticks, included in median / p99 / max. "
            "Emulator (TCG) time: compare ratios.",
            "",
            "| trace | iomem median / p99 / max | picolibc median / p99 / max | iomem ops/s | "
            "picolibc ops/s | speed-up | iomem p99/median | frag avg iomem / picolibc | "
            "metadata B/block iomem / picolibc |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for trace in TRACES:
            a, b = _pick(rows, "guest", trace, "iomem"), _pick(rows, "guest", trace, "picolibc")
            if not a or not b:
                continue
            lines.append(
                f"| {trace} | {a['median']} / {a['p99']} / {a['max']} "
                f"| {b['median']} / {b['p99']} / {b['max']} "
                f"| {_num(a, 'ops_per_s'):,.0f} | {_num(b, 'ops_per_s'):,.0f} "
                f"| {_num(a, 'ops_per_s') / _num(b, 'ops_per_s'):.2f}x | {_num(a, 'p99_over_median'):.1f} "
                f"| {_num(a, 'frag_avg') * 100:.1f} % / {_num(b, 'frag_avg') * 100:.1f} % "
                f"| {_num(a, 'meta_bytes_per_block'):.1f} / {_num(b, 'meta_bytes_per_block'):.1f} |"
            )
    host = [r for r in rows if r["where"] == "host"]
    if host:
        lines += [
            "",
            "### Host: the same heap source (-O2) against glibc, jemalloc, mimalloc (ns per call)",
            "",
            "ns per call: the fastest of 7 untimed replays of the recorded trace, less the same "
            "replay against a stub allocator (a call that returns a constant); of "
            f"{host[0].get('runs', 1)} processes per allocator, run alternately, the fastest. "
            "Median / p99: the TSC around each call, less the cost of reading it (resolution ~10 ns "
            "here).",
            "",
            "| trace | iomem | glibc | jemalloc | mimalloc | iomem / mimalloc | iomem median / p99 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for trace in TRACES:
            cells = {a: _pick(rows, "host", trace, a) for a in HOST_ALLOCATORS}
            if not all(cells.values()):
                continue
            ratio = _num(cells["iomem"], "ns_per_op") / _num(cells["mimalloc"], "ns_per_op")
            lines.append(
                f"| {trace} | "
                + " | ".join(f"{_num(cells[a], 'ns_per_op'):.1f}" for a in HOST_ALLOCATORS)
                + f" | {ratio:.2f}x | {_num(cells['iomem'], 'median_ns'):.1f}"
                + f" / {_num(cells['iomem'], 'p99_ns'):.1f} |"
            )
    if sizes:
        lines += ["", "Code size (text bytes): " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()) + "."]
    return "\n".join(lines)


def plots(rows: list[dict[str, object]], out: Path) -> list[Path]:
    """Cost per call against heap fill, and fragmentation over a trace (guest, both allocators)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for allocator, style in (("iomem", "o-"), ("picolibc", "s--")):
        for trace in ("pareto", "frag100"):
            row = _pick(rows, "guest", trace, allocator)
            fill = row.get("fill_cost_ticks")
            if isinstance(fill, list):
                xs = [(i + 0.5) * 10 for i, v in enumerate(fill) if v is not None]
                ys = [v for v in fill if v is not None]
                axes[0].plot(xs, ys, style, label=f"{allocator} {trace}")
            series = row.get("frag_series")
            if isinstance(series, list) and series:
                ys = [v * 100 for v in series if v is not None]
                axes[1].plot(range(len(ys)), ys, style, label=f"{allocator} {trace}")
    axes[0].set_xlabel("heap fill (live bytes / held bytes), %")
    axes[0].set_ylabel("mean ticks per call")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[1].set_xlabel("point in the trace (1/32 steps)")
    axes[1].set_ylabel("fragmentation, % (1 - largest free / free)")
    axes[1].legend()
    fig.tight_layout()
    path = out / "heap-fill-frag.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def suite_from_junit(junit: Path, boot_ms: float | None) -> dict[str, object]:
    """Tests and summed wall time per test file from a pytest ``--junitxml`` report, with the
    boot + power-off median measured in this bench run (None when it was not measured)."""
    import xml.etree.ElementTree as ET

    files: dict[str, list[float]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("classname", "").split(".")
        stem = next((i for i, part in enumerate(name) if part.startswith("test_")), len(name) - 1)
        key = "/".join(name[: stem + 1]) + ".py"
        files.setdefault(key, []).append(float(case.get("time", "0")))
    rows = [{"file": k, "tests": len(v), "wall_s": round(sum(v), 3)} for k, v in sorted(files.items())]
    return {"source": str(junit), "boot_poweroff_median_ms": boot_ms, "files": rows}


def plot_suite(suite: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = suite.get("files")
    rows = sorted(files if isinstance(files, list) else [], key=lambda r: -float(r["wall_s"]))[:30]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(rows) + 1.5))
    ax.barh([f"{r['file']} ({r['tests']})" for r in rows], [float(r["wall_s"]) for r in rows])
    ax.set_xlabel("seconds (sum of the file's test durations)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


README_START = "<!-- heap-bench:start (generated by `iomem bench --readme` from results.md) -->"
README_END = "<!-- heap-bench:end -->"


def update_readme(readme: Path, tables_md: str) -> bool:
    """Replaces the README's generated block with `tables_md`; False if it has no markers."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{tables_md.strip()}\n{README_END}{tail}")
    return True


def ensure_heapbench() -> None:
    """Builds build/host/heapbench and installs jemalloc / mimalloc when missing (make)."""
    ensure_firmware()
    subprocess.run(["make", "-C", str(ROOT), "heapbench"], check=True, stdout=subprocess.DEVNULL)
