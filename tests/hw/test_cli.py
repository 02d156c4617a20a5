"""The `iomem` command line as scripts and people use it (cli.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from harness import PROJECT_ROOT

pytestmark = pytest.mark.profiles("virt-4k")
IOMEM = [sys.executable, "-m", "harness"]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IOMEM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )


def test_exec_hello(profile: object) -> None:
    result = _run("exec", "--profile", "virt-4k", "hello")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("ok proto=1 build=") and "page=4096" in line


def test_exec_json_and_err_status(profile: object, tmp_path: Path) -> None:
    result = _run("exec", "--json", "--log-dir", str(tmp_path), "pagesize", "frobnicate", "pagesize")
    assert result.returncode == 1
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in replies] == ["ok", "err", "ok"]
    assert replies[0]["keys"] == {"page": 4096}
    assert replies[1]["error"] == "kIOReturnUnsupported"
    assert (tmp_path / "console.log").read_bytes().count(b"frobnicate") >= 1


def test_exec_unknown_profile_is_one_line_exit_2(profile: object) -> None:
    result = _run("exec", "--profile", "virt-3k", "hello")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "virt-4k" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("line", ["@3 hello", "caf\u00e9", ""])
def test_exec_malformed_line_exit_2(profile: object, line: str) -> None:
    result = _run("exec", line)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_exec_stdin_is_a_co_process(profile: object) -> None:
    """Each reply arrives (flushed) before the next request is written."""
    child = subprocess.Popen(
        [*IOMEM, "exec"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write("pagesize\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok page=4096"
        child.stdin.write("stats\n")
        child.stdin.flush()
        assert child.stdout.readline().startswith("ok requests=")
        child.stdin.close()
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        child.wait()


def test_exec_reports_a_crash_with_logs(profile: object, tmp_path: Path) -> None:
    result = _run("exec", "--log-dir", str(tmp_path), "pagesize", "quit", "pagesize")
    assert result.returncode == 2
    assert str(tmp_path) in result.stderr


def test_profiles_and_firmware_commands(profile: object) -> None:
    listing = _run("profiles", "--json")
    assert listing.returncode == 0
    names = {p["name"] for p in json.loads(listing.stdout)}
    assert {"virt-4k", "virt-16k", "virt-64k", "virt-4k-smmu"} <= names
    firmware = _run("firmware", "--profile", "virt-16k")
    assert firmware.returncode == 0
    path = Path(firmware.stdout.strip())
    assert path.is_absolute() and path.is_file()


def test_console_session(profile: object, tmp_path: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "harness", "console", "--log-dir", str(tmp_path)],
        cwd=str(PROJECT_ROOT),
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        encoding="utf-8",
        timeout=20,
    )
    try:
        child.expect("iomem console on virt-4k")
        child.expect_exact("iomem> ")
        child.sendline("pagesize")
        child.expect_exact("ok page=4096")
        child.expect_exact("iomem> ")
        child.sendline("help")
        child.expect("ok verbs=.*pagesize")
        child.sendline("peek 0x7f00000000")
        child.expect("err kIOReturnNotReadable")
        # EOF only at the prompt: between prompts readline has the tty back in cooked mode,
        # where a ^D typed ahead is swallowed (one full run lost it and timed out).
        child.expect_exact("iomem> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert (tmp_path / ".iomem_history").read_text().count("pagesize") == 1
