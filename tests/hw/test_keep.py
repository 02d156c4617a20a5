"""``pytest --iomem-keep``: a failing test leaves its guest paused and says how to get in;
``iomem attach DIR`` opens its console, its gdbstub answers on ``DIR/gdb.sock``, and
``iomem reap`` ends it. Passing tests' guests are reaped as always."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pexpect
import pytest

from harness import PROJECT_ROOT

pytestmark = pytest.mark.profiles("virt-4k")
IOMEM = [sys.executable, "-m", "harness"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _rsp(path: Path, payload: bytes) -> bytes:
    checksum = sum(payload) & 0xFF
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"$" + payload + b"#%02x" % checksum)
        data = b""
        while b"#" not in data.lstrip(b"+"):
            data += sock.recv(4096)
        sock.sendall(b"+")
    return data


def test_keep_attach_reap(pytester: pytest.Pytester, profile: object) -> None:
    pytester.makepyfile(
        test_u1_keep_inner=textwrap.dedent("""
        def test_u1_keep_fails(guest):
            guest.ok("poke " + hex(guest.scratch()[0]) + " 0x5eed")
            assert False, "keep me"

        def test_u1_keep_passes(guest):
            guest.ok("info")
    """)
    )
    result = pytester.runpytest_subprocess("--profile", "virt-4k", "-p", "no:cacheprovider", "--iomem-keep")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    kept_dirs = re.findall(r"iomem attach (\S+)", out)
    assert len(kept_dirs) == 1, out  # the failing test's guest only
    directory = Path(kept_dirs[0])
    assert re.search(rf"gdb-multiarch \S+iomem\.elf -ex 'target remote {directory}/gdb\.sock'", out)
    pid = int(re.search(r"kept guest: QEMU pid (\d+)", out).group(1))  # type: ignore[union-attr]
    try:
        assert _alive(pid), "the kept guest did not outlive pytest"
        # Paused: no guest time passes; the gdbstub answers (register read) on its socket.
        assert _rsp(directory / "gdb.sock", b"g").lstrip(b"+").startswith(b"$")
        child = pexpect.spawn(IOMEM[0], [*IOMEM[1:], "attach", str(directory)], cwd=PROJECT_ROOT, timeout=20)
        child.expect(r"attached to")
        child.sendline(f"peek {_scratch(directory)}")
        child.expect(r"ok value=0x5eed")  # the state the failing test left behind
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        reaped = subprocess.run(
            [*IOMEM, "reap"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False
        )
    assert f"reaped QEMU pid {pid}" in reaped.stdout, reaped.stdout + reaped.stderr
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not directory.exists()


def _scratch(directory: Path) -> str:
    """The scratch address, from the kept guest's own console log (its `info` reply)."""
    artifacts = Path(json.loads((directory / "kept.json").read_text())["artifacts"])
    match = re.search(r"scratch=(0x[0-9a-f]+)", (artifacts / "console.log").read_text(errors="replace"))
    assert match, "no scratch= in the console log"
    return match.group(1)
