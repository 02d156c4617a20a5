"""No QEMU process outlives the harness: not after a failing test, not after a killed harness."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.guest import Guest
from harness.qemu import profile as profiles

pytestmark = pytest.mark.profiles("virt-4k")


def _qemu_pids() -> set[int]:
    """Live QEMU processes, by their command line (``pgrep -x`` cannot: comm is cut to 15 bytes)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv0.endswith(b"qemu-system-aarch64") and state != "Z":
            pids.add(int(entry.name))
    return pids


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


INNER_CONFTEST = """
import os
from pathlib import Path

def pytest_sessionfinish(session):
    # QEMU children still alive when the session ends: the plugin's teardown leaked them
    # (checked before the parent-death signal could clean up after it).
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            argv0 = (entry / "cmdline").read_bytes().split(b"\\0", 1)[0]
        except OSError:
            continue
        if int(ppid) == os.getpid() and state != "Z" and argv0.endswith(b"qemu-system-aarch64"):
            alive.append(entry.name)
    Path("leftover-qemu.txt").write_text(" ".join(alive))
"""


def test_failing_tests_leave_no_qemu(pytester: pytest.Pytester, profile: object) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(
        test_inner=textwrap.dedent("""
        def test_assertion_fails(guest):
            assert guest.pagesize() == 1
        def test_exception(guest):
            raise RuntimeError("boom")
        def test_two_guests(make_guest, profile):
            make_guest(profile).boot(); make_guest(profile).boot()
            assert False
        def test_alive_at_the_end(guest):
            pass
    """)
    )
    probe = Guest(profiles.load("virt-4k")).boot()  # the detector itself must see a live QEMU
    try:
        assert probe.machine.pid in _qemu_pids()
    finally:
        probe.close()
    result = pytester.runpytest_subprocess("--profile", "virt-4k", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines(["*iomem virt-4k*", "*console.log*"])
    assert (pytester.path / "leftover-qemu.txt").read_text() == ""


def test_killed_harness_takes_qemu_with_it() -> None:
    script = textwrap.dedent("""
        import sys, time
        from harness.qemu import profile
        from harness.guest import Guest
        g = Guest(profile.load("virt-4k")).boot()
        print(g.machine.pid, flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        qemu_pid = int(child.stdout.readline())
        assert not _gone(qemu_pid, 0.1)
        child.kill()
        child.wait()
        assert _gone(qemu_pid, 5), f"QEMU {qemu_pid} outlived its harness"
    finally:
        child.kill()
        child.wait()
