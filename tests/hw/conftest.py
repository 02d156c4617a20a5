"""Hardware tests: each boots fresh guests (fixtures come from harness.pytest_plugin)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["pytester"]

_DMA_TOTALS: Counter[tuple[str, str]] = Counter()


@pytest.fixture(autouse=True)
def _dma_oracle_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Carry each test's DMA oracle agreements (tests/hw/dma_support.py) in its report, so the
    controller can add them up under pytest-xdist too."""
    from dma_support import ORACLE_COUNTS

    before = Counter(ORACLE_COUNTS)
    yield
    for (profile, what), n in ORACLE_COUNTS.items():
        if n - before[(profile, what)]:
            request.node.user_properties.append(("dma_oracle", [profile, what, n - before[(profile, what)]]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == "dma_oracle":
                profile, what, n = value
                _DMA_TOTALS[(profile, what)] += n


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How often the DMA oracles agreed, per profile."""
    if _DMA_TOTALS:
        write = terminalreporter.write_line
        write("DMA oracle agreement (checks that passed):")
        for (profile, what), n in sorted(_DMA_TOTALS.items()):
            write(f"  {profile:<14} {what:<42} {n:>6}")

