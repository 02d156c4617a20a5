"""The firmware's in-guest C unit tests (``IOMEM_TEST`` in ``firmware/``, ``lib/selftest.h``).

Each test found in the ELF's ``iomem_tests`` section is a pytest item of its own, on every
profile, run in a fresh guest by the agent verb ``selftest run NAME``. A failing expectation
fails the item with its file:line and values. Tests named ``xfail_*`` fail on purpose: they
check that failures are reported that way.
"""

from __future__ import annotations

import re

import pytest

from harness import PROJECT_ROOT, ledger
from harness.guest import Guest
from harness.image.build import ensure_firmware
from harness.image.selftests import SelfTest, selftests


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "selftest" in metafunc.fixturenames:
        found = selftests(ensure_firmware())
        metafunc.parametrize("selftest", found, ids=[t.name for t in found])


def test_selftest(guest: Guest, selftest: SelfTest) -> None:
    reply = guest.request(f"selftest run {selftest.name}", timeout=30)
    if selftest.name.startswith("xfail_"):
        _check_failure_report(reply.line, selftest)
        return
    if not reply.ok:
        pytest.fail(
            f"{selftest.file}:{selftest.line}: selftest {selftest.name}: "
            f"{reply.keys.get('failures', '?')} of {reply.keys.get('checks', '?')} checks failed\n"
            f"  {reply.text.replace('; ', chr(10) + '  ')}",
            pytrace=False,
        )
    assert reply.value("test") == selftest.name
    assert reply.number("checks") > 0


def _check_failure_report(line: str, selftest: SelfTest) -> None:
    untagged = line.split(" ", 1)[1] if line.startswith("@") else line
    match = re.fullmatch(
        r"err kIOReturnError test=(\S+) checks=(\d+) failures=(\d+) at=(\S+):(\d+) (.*)", untagged
    )
    assert match, line
    name, checks, failures, file, lineno, text = match.groups()
    assert (name, int(checks), int(failures)) == (selftest.name, 3, 2)
    assert file == selftest.file
    source = (PROJECT_ROOT / file).read_text().splitlines()
    assert "EXPECT_EQ(two + 1, 4)" in source[int(lineno) - 1]  # the first failure, by file:line
    assert "EXPECT_EQ(two + 1, 4): 0x3 vs 0x4" in text
    assert "EXPECT_STREQ(\"tlb\", \"cache\"): 'tlb' vs 'cache'" in text


def test_the_guest_lists_what_the_elf_holds(guest: Guest) -> None:
    count = guest.ok("selftest list").number("count")
    ledger.compare("selftest list", "count", count, len(selftests(guest.elf.path)), "elf", what="iomem_tests")
    guest.err("selftest list 1", "kIOReturnBadArgument")


def test_an_unknown_selftest_is_a_bad_argument(guest: Guest) -> None:
    guest.err("selftest run no_such_test", "kIOReturnBadArgument")
