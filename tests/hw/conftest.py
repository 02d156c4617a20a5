"""Hardware tests: each boots fresh guests (fixtures come from harness.pytest_plugin)."""

from __future__ import annotations

import json
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first, by the durations recorded in .test_durations (``make test-durations``):
    pytest-xdist hands tests out in this order, so the long state machines start while every
    worker is busy instead of ending the run on one worker while the other idles (the
    longest-processing-time rule). Tests the file does not know keep their order, after."""
    from harness import PROJECT_ROOT

    try:
        durations: dict[str, float] = json.loads((PROJECT_ROOT / ".test_durations").read_text())
    except (OSError, ValueError):
        return
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (-durations.get(item.nodeid, 0.0), position[id(item)]))
