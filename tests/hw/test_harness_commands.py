"""The ``:`` harness commands and the co-process line filter of ``iomem exec``: bad input
costs one ``err`` reply, never the session, and ``:verify`` sees what the host oracles see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from harness.guest import Guest
from harness.link.protocol import Reply
from harness.tools.commands import Commands
from harness.tools.lines import HarnessCommand, classify

pytestmark = pytest.mark.profiles("virt-4k")
IOMEM = [sys.executable, "-m", "harness"]


def _exec(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [*IOMEM, "exec", *args], input=data, capture_output=True, timeout=60, cwd=PROJECT_ROOT, check=False
    )


def _cmd(guest: Guest, line: str) -> list[Reply]:
    kind = classify(line)
    assert isinstance(kind, HarnessCommand)
    return Commands(guest).run(kind)


def _one(guest: Guest, line: str) -> Reply:
    (reply,) = _cmd(guest, line)
    return reply


def test_a_malformed_line_costs_one_err_reply_not_the_session(profile: object) -> None:
    """The report's example: `(echo hello; echo '@4242 pagesize'; echo pagesize) | iomem exec`."""
    stdin = b"hello\n@4242 pagesize\n" + b"peek " * 400 + b"\ncaf\xe9\n:nope\npagesize\n"
    result = _exec(stdin=stdin)
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 6 and lines[0].startswith("ok proto=1")
    assert lines[1].startswith("err kIOReturnBadArgument by=harness")
    assert lines[2].startswith("err kIOReturnMessageTooLarge by=harness") and len(lines[2]) < 200
    assert lines[3].startswith("err kIOReturnBadArgument by=harness")
    assert lines[4].startswith("err kIOReturnUnsupported by=harness")
    assert lines[5] == "ok page=4096"


def test_line_mode_error_quotes_at_most_sixty_bytes(profile: object) -> None:
    result = _exec("x" * 1500)
    assert result.returncode == 2 and result.stdout == b""
    assert len(result.stderr) < 300 and b"x" * 61 not in result.stderr


def test_harness_commands_in_json(profile: object) -> None:
    result = _exec("--json", stdin=":help\n:phys-read 0x40000000 8\n:walk 0x40000000\n")
    replies = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert result.returncode == 0, result.stderr
    assert "verify" in replies[0]["keys"]["commands"].split(",")
    assert replies[1]["keys"]["len"] == 8 and len(replies[1]["keys"]["data"]) == 16
    assert replies[2]["keys"]["pa"] == 0x40000000


def test_verify_is_clean_on_a_fresh_guest_and_with_maps(guest: Guest) -> None:
    reply = _one(guest, ":verify")
    assert reply.ok, reply.line
    assert reply.number("mappings") > 0
    md = guest.ok("bmd create 0x3000").number("md")
    guest.ok(f"md map {md:#x}")
    reply = _one(guest, ":verify")
    assert reply.ok and reply.number("maps") == 1 and reply.number("reservations") >= 1, reply.line


def test_verify_sees_a_cleared_valid_bit_and_phys_write_restores(guest: Guest) -> None:
    """Clear the valid bit of the leaf that maps the top of RAM (the guest never touches it)."""
    assert guest.banner is not None
    top = guest.banner.ram_base + guest.banner.ram_size - guest.profile.granule
    leaf = _one(guest, f":walk {top:#x}")
    where, value = leaf.number("descriptor_pa"), leaf.number("descriptor")
    original = guest.ram.read(where, 8)  # type: ignore[arg-type]
    broken = (value & ~1).to_bytes(8, "little").hex()
    assert _one(guest, f":phys-write {where:#x} {broken}").ok
    reply = _one(guest, ":verify")
    assert not reply.ok and reply.value("oracle") == "pagewalk" and "not mapped" in reply.text
    assert _one(guest, f":walk {top:#x}").value("fault") == "translation"
    assert _one(guest, f":phys-write {where:#x} {original.hex()}").ok
    assert _one(guest, ":verify").ok
    assert guest.pagesize() == guest.profile.granule


def test_verify_sees_a_map_pointing_at_the_wrong_page(guest: Guest) -> None:
    md = guest.ok("bmd create 0x2000").number("md")
    va = guest.ok(f"md map {md:#x}").number("va")
    leaf = _one(guest, f":walk {va:#x}")
    where, value = leaf.number("descriptor_pa"), leaf.number("descriptor")
    moved = (value + guest.profile.granule).to_bytes(8, "little").hex()
    assert _one(guest, f":phys-write {where:#x} {moved}").ok
    reply = _one(guest, ":verify")
    assert not reply.ok and "maps" in reply.value("oracle").split(","), reply.line


def test_raw_bytes_get_their_replies_and_the_session_goes_on(guest: Guest) -> None:
    replies = _cmd(guest, ":raw " + b"@77 pagesize\n\x00\xff\n@5 frob".hex())
    assert [r.tag for r in replies[:-1]] == [77, None, 5]
    assert replies[0].ok and replies[1].error == "kIOReturnBadArgument"
    assert replies[-1].number("replies") == 3
    replies = _cmd(guest, ":raw " + b"echo on\n".hex())  # echo is off again afterwards
    assert replies[0].ok and guest.pagesize() == guest.profile.granule


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (":phys-read 0x0 4", "kIOReturnNotReadable"),
        (":phys-read 0x40000000 5000", "kIOReturnMessageTooLarge"),
        (":phys-write 0x40000000 abc", "kIOReturnBadArgument"),
        (":walk", "kIOReturnBadArgument"),
        (":walk -1", "kIOReturnBadArgument"),
        (":raw zz", "kIOReturnBadArgument"),
        (":frobnicate", "kIOReturnUnsupported"),
    ],
)
def test_bad_harness_commands_are_err_replies(guest: Guest, line: str, error: str) -> None:
    reply = _one(guest, line)
    assert reply.error == error and reply.value("by") == "harness"


def test_regs_come_from_the_gdbstub(guest: Guest) -> None:
    reply = _one(guest, ":regs")
    assert reply.number("tcr_el1") == guest.registers().tcr_el1
    assert reply.number("ttbr0_el1") == guest.info().ttbr0


def test_verify_accepts_a_sub_past_its_parents_shrunk_length(guest: Guest) -> None:
    """Found by `iomem fuzz` (seed 11): layout is fixed at creation (docs/descriptors.md), so a
    sub may reach past its buffer's length after a SetLength, never past its capacity."""
    page = guest.profile.granule
    md = guest.ok(f"bmd create {2 * page:#x}").number("md")
    guest.ok(f"md sub {md:#x} {page:#x} {page:#x}")
    guest.ok(f"md setlength {md:#x} 0x10")
    reply = _one(guest, ":verify")
    assert reply.ok, reply.line


def test_console_takes_harness_commands_and_refuses_bad_lines(profile: object, tmp_path: Path) -> None:
    import pexpect

    child = pexpect.spawn(
        sys.executable,
        ["-m", "harness", "console", "--log-dir", str(tmp_path)],
        cwd=str(PROJECT_ROOT),
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        encoding="utf-8",
        timeout=60,  # boots, a gdbstub read and :verify: slow only on a loaded machine
    )
    try:
        child.expect_exact("iomem> ")
        child.sendline(":walk 0x40000000")
        child.expect_exact("ok va=0x40000000 pa=0x40000000")
        child.sendline("@7 pagesize")
        child.expect_exact("err kIOReturnBadArgument by=harness")
        child.sendline(":verify")
        child.expect_exact("ok oracles=heap,pagewalk,maps,descriptors")
        child.sendline("pagesize")
        child.expect_exact("ok page=4096")
        # EOF only at the prompt: between prompts readline has the tty back in cooked mode,
        # where a ^D typed ahead is swallowed (one CI run lost it and timed out).
        child.expect_exact("iomem> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
