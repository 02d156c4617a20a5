"""harness.tools.heap_tail: the guest heap's tail counted under -icount (docs/allocators.md,
"A current slab per class")."""

from __future__ import annotations

from pathlib import Path

from harness.tools.heap_tail import heap_tail


def test_the_counted_tail_agrees_within_a_tick_on_every_run(tmp_path: Path) -> None:
    """Under -icount shift=0,sleep=off one tick is 16 guest instructions: two fresh guests give
    a median, p99 and max within one tick of each other (where in a tick each call starts
    depends on how long the guest waited for the request), which is what makes the tool's
    figures comparable between builds where the real-time ones move by a fifth (without
    -icount, the max alone differed by 1,400-2,400 ticks); and pareto's tail over its first
    2,000 calls (the slabs of some thirty classes made, TLSF blocks above 2 KiB) is several
    times its median."""
    ((trace, *first),) = heap_tail(["pareto"], 2000, 1, tmp_path / "first")
    ((_, *second),) = heap_tail(["pareto"], 2000, 1, tmp_path / "second")
    assert all(abs(a - b) <= 1 for a, b in zip(first, second, strict=True)), (first, second)
    median, p99, top = first
    assert trace == "pareto" and median > 0 and 3 * median < p99 <= top
