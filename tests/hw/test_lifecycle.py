"""The harness itself on real guests: build-id check, crash and hang reporting, teardown."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import BuildIdMismatch, GuestCrashed, GuestHung, LaunchError
from harness.guest import Guest
from harness.image.elf import Firmware
from harness.qemu.machine import Runstate
from harness.qemu.profile import Profile

pytestmark = pytest.mark.profiles("virt-4k")


def _patched_copy(elf: Path, directory: Path) -> Path:
    """A copy of the firmware whose build-id note differs in one byte."""
    copy = directory / "patched.elf"
    shutil.copy(elf, copy)
    build_id = bytes.fromhex(Firmware(elf).build_id)
    blob = bytearray(copy.read_bytes())
    where = blob.find(build_id)
    assert where > 0 and blob.find(build_id, where + 1) < 0
    blob[where] ^= 0xFF
    copy.write_bytes(bytes(blob))
    return copy


def test_build_id_mismatch_is_detected(
    profile: Profile, make_guest: Callable[..., Guest], firmware_elf: Path, artifacts: Path
) -> None:
    image = _patched_copy(firmware_elf, artifacts)
    guest = make_guest(profile, firmware=firmware_elf)
    guest.machine.firmware = image  # boot one image, check against another: a stale ELF
    with pytest.raises(BuildIdMismatch, match="build-id"):
        guest.boot()
    assert Firmware(image).build_id != Firmware(firmware_elf).build_id


def test_patched_image_boots_and_reports_its_own_id(
    profile: Profile, make_guest: Callable[..., Guest], firmware_elf: Path, artifacts: Path
) -> None:
    image = _patched_copy(firmware_elf, artifacts)
    guest = make_guest(profile, firmware=image).boot()
    assert guest.banner is not None and guest.banner.build == Firmware(image).build_id


def test_killed_qemu_is_reported_as_crashed(guest: Guest) -> None:
    assert guest.machine.pid is not None
    os.kill(guest.machine.pid, signal.SIGKILL)
    with pytest.raises(GuestCrashed, match="QEMU exited"):
        guest.request("pagesize", timeout=5)


def test_guest_panic_is_reported_as_crashed_with_registers(guest: Guest) -> None:
    """A real panic, not a faked one: the host points the idle CPU's PC at an unmapped
    address through the gdbstub; the instruction abort happens outside any command."""
    bad_pc = 0x7F_0000_0000
    # The prompt after `echo off` fully out first: stopped in the middle of it, the CPU would
    # leave a stray "i" on the line before the panic (seen once under load).
    assert guest.console is not None and guest.console.quiet()
    with guest.gdb.stopped():
        guest.gdb.write_register("pc", bad_pc)
    with pytest.raises(GuestCrashed, match="panic") as caught:
        guest.request("pagesize", timeout=5)
    assert caught.value.registers["elr"] == bad_pc
    assert caught.value.registers["far"] == bad_pc
    assert (caught.value.registers["esr"] >> 26) == 0x21  # instruction abort, same EL
    assert "! panic" in caught.value.console_tail


def test_stopped_cpu_is_reported_as_hung_with_pc(guest: Guest) -> None:
    assert guest.machine.qmp is not None
    guest.machine.qmp.execute("stop")
    t0 = time.monotonic()
    with pytest.raises(GuestHung) as caught:
        guest.request("pagesize", timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert caught.value.runstate == "paused"
    assert caught.value.pc is not None
    text = guest.elf.symbolize(caught.value.pc)
    assert "+" in text, f"pc {caught.value.pc:#x} is not inside a firmware function"


def test_launch_failure_carries_cmdline_and_stderr(
    profile: Profile, make_guest: Callable[..., Guest]
) -> None:
    guest = make_guest(profile, extra_args=("-device", "no-such-device"))
    with pytest.raises(LaunchError) as caught:
        guest.boot()
    assert "no-such-device" in caught.value.stderr
    assert "qemu-system-aarch64" in caught.value.cmdline[0]
    assert guest.machine.state is Runstate.OFF and not guest.machine.alive()


def test_teardown_reaps_qemu(profile: Profile, make_guest: Callable[..., Guest]) -> None:
    guest = make_guest(profile).boot()
    pid = guest.machine.pid
    assert pid is not None and guest.machine.alive()
    status = guest.close()
    assert status == 0, "quit should power off through PSCI, exiting QEMU cleanly"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_quit_powers_off(profile: Profile, make_guest: Callable[..., Guest]) -> None:
    guest = make_guest(profile).boot()
    assert guest.console is not None
    guest.console.send_raw(b"@1 quit\n")
    assert guest.machine.process is not None
    assert guest.machine.process.wait(timeout=5) == 0
    assert guest.machine.qmp is not None
    deadline = time.monotonic() + 2
    while not guest.machine.qmp.events_named("SHUTDOWN") and time.monotonic() < deadline:
        time.sleep(0.01)
    (shutdown,) = guest.machine.qmp.events_named("SHUTDOWN")
    assert shutdown["data"]["reason"] == "guest-shutdown"
