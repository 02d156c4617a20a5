"""The guest heap's tail counted, not timed: ``bench heap trace=T allocator=iomem`` on a guest
run under ``-icount shift=0,sleep=off``, where one CNTVCT tick is 16 guest instructions and the
figures agree within a tick from run to run (how long the guest waited for the request sets
where in a tick each call starts, so a call may read one tick more or less). The real-time
p99/median of ``iomem bench`` moves by 20 % with the machine's load; this says whether a change
made a slow path (the p99) longer or shorter in instructions (docs/allocators.md, "A current
slab per class"), or whether a real-time tail is the host's, not the guest's (large: p99/median
3.5-3.8 in real time, 20 against 19 ticks here).

    .venv/bin/python -m harness.tools.heap_tail [--ops N] [--seed S] [TRACE ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.guest import Guest
from harness.qemu import profile as profiles
from harness.qemu.profile import with_icount

ICOUNT = "shift=0,sleep=off"
TRACES = ("small", "pareto", "churn", "mixed", "frag50", "frag100", "large")


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def heap_tail(traces: list[str], ops: int, seed: int, logs: Path) -> list[tuple[str, int, int, int]]:
    """(trace, median, p99, max) in ticks of 16 guest instructions, each after an untimed
    warm-up run of the same trace (TCG translates the code once)."""
    profile = with_icount(profiles.load(profiles.DEFAULT_PROFILE), ICOUNT)
    rows = []
    with Guest(profile, logs) as guest:
        for trace in traces:
            command = f"bench heap trace={trace} allocator=iomem seed={seed}"
            guest.ok(f"{command} ops={max(ops // 10, 1)}", timeout=600)
            reply = guest.ok(f"{command} ops={ops}", timeout=600)
            f = _fields(reply.line)
            rows.append((trace, int(f["median"]), int(f["p99"]), int(f["max"])))
    return rows


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m harness.tools.heap_tail", description=summary)
    parser.add_argument("traces", nargs="*", metavar="TRACE", help=f"of {', '.join(TRACES)} (default: all)")
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    unknown = [t for t in args.traces if t not in TRACES]
    if unknown:
        parser.error(f"unknown trace {unknown[0]!r} (one of {', '.join(TRACES)})")
    with tempfile.TemporaryDirectory(prefix="iomem-heap-tail-") as logs:
        rows = heap_tail(args.traces or list(TRACES), args.ops, args.seed, Path(logs))
    print("| trace | median | p99 | max | p99/median |")
    print("|---|---:|---:|---:|---:|")
    for trace, median, p99, top in rows:
        print(f"| {trace} | {median} | {p99} | {top} | {p99 / median:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
