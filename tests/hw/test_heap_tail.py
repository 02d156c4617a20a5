"""harness.tools.heap_tail: the guest heap's tail counted under -icount (docs/allocators.md,
"A current slab per class")."""

from __future__ import annotations

from pathlib import Path

from harness.tools.heap_tail import heap_tail


def test_the_counted_tail_is_the_same_on_every_run(tmp_path: Path) -> None:
    """Under -icount shift=0,sleep=off one tick is 16 guest instructions: two fresh guests give
    the same median, p99 and max, which is what makes the tool's figures comparable between
    builds where the real-time ones move by a fifth; and churn's tail (a slab made or given
    back) is several times its median."""
    first = heap_tail(["churn"], 2000, 1, tmp_path / "first")
    second = heap_tail(["churn"], 2000, 1, tmp_path / "second")
    assert first == second
    ((trace, median, p99, top),) = first
    assert trace == "churn" and median > 0 and 3 * median < p99 <= top
