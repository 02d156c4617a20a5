"""The allocator benchmark's plumbing (issue P1): build/host/heapbench replays every trace
against the host-built heap and malloc, and the JSON check names whatever is missing.
Never a timing assertion: only that every trace runs, frees everything and reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import heapbench


def _run(allocator: str, trace: str, ops: int = 2000) -> dict[str, str]:
    proc = subprocess.run(
        [str(heapbench.HEAPBENCH), allocator, trace, str(ops), "7"],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(part.split("=", 1) for part in proc.stdout.split() if "=" in part)


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    subprocess.run(
        ["make", "-C", str(heapbench.ROOT), str(heapbench.HEAPBENCH.relative_to(heapbench.ROOT))],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("trace", heapbench.TRACES)
@pytest.mark.parametrize("allocator", ["iomem", "malloc"])
def test_every_trace_runs_against_both_kinds_of_allocator(allocator: str, trace: str) -> None:
    ops = 100 if trace == "large" else 2000
    fields = _run(allocator, trace, ops)
    assert fields["failed"] == "0"
    assert int(fields["measured"]) == ops
    assert int(fields["calls"]) >= ops
    result = heapbench._result("host", trace, allocator, fields, 1e9 / float(fields["freq"]))
    assert result["median"] <= result["p99"] <= result["max"]  # type: ignore[operator]


def test_the_same_seed_gives_the_same_trace() -> None:
    a, b = _run("iomem", "pareto"), _run("malloc", "pareto")
    assert a["calls"] == b["calls"]  # same operations, whichever allocator runs them


def test_the_check_names_every_missing_trace_and_allocator() -> None:
    rows: list[dict[str, object]] = []
    for where, allocators in (("guest", heapbench.GUEST_ALLOCATORS), ("host", heapbench.HOST_ALLOCATORS)):
        for trace in heapbench.TRACES:
            for allocator in allocators:
                rows.append(
                    {
                        "where": where,
                        "trace": trace,
                        "allocator": allocator,
                        "unit": "ticks",
                        "median": 1,
                        "p99": 2,
                    }
                )
    assert heapbench.check_results({"schema": heapbench.SCHEMA_VERSION, "heap": rows}) == []
    problems = heapbench.check_results({"schema": heapbench.SCHEMA_VERSION, "heap": rows[1:]})
    assert problems == ["no heap result for guest small iomem"]
    assert heapbench.check_results({"heap": rows}) != []


def test_suite_times_are_summed_per_test_file(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.hw.test_a" name="one" time="1.5"/>'
        '<testcase classname="tests.hw.test_a" name="two" time="0.5"/>'
        '<testcase classname="tests.hw.test_b.TestX" name="three" time="2"/>'
        "</testsuite></testsuites>"
    )
    suite = heapbench.suite_from_junit(junit, 66.0)
    assert suite["boot_poweroff_median_ms"] == 66.0
    assert suite["files"] == [
        {"file": "tests/hw/test_a.py", "tests": 2, "wall_s": 2.0},
        {"file": "tests/hw/test_b.py", "tests": 1, "wall_s": 2.0},
    ]
