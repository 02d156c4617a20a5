"""Hardware tests: each boots fresh guests (fixtures come from harness.pytest_plugin)."""

from __future__ import annotations

pytest_plugins = ["pytester"]


def pytest_terminal_summary(terminalreporter: object) -> None:
    """How often the DMA oracles agreed, per profile (tests/hw/dma_support.py)."""
    from dma_support import ORACLE_COUNTS

    if ORACLE_COUNTS:
        write = terminalreporter.write_line  # type: ignore[attr-defined]
        write("DMA oracle agreement (checks that passed):")
        for (profile, what), n in sorted(ORACLE_COUNTS.items()):
            write(f"  {profile:<14} {what:<42} {n:>6}")
