"""The warm-guest pool's rules (harness/guest/warm.py), without starting QEMU."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.guest import warm
from harness.qemu import profile as profiles
from harness.qemu.machine import QEMU_IDLE_WARNING, Machine, Runstate


@pytest.fixture(autouse=True)
def _pool() -> Iterator[None]:
    was = warm.enabled()
    warm.enable(True)
    yield
    warm.enable(was)


def _machine(tmp_path: Path, name: str = "virt-4k", firmware: str = "fw.elf") -> Machine:
    image = tmp_path / firmware
    if not image.exists():
        image.write_bytes(b"\x7fELF")
    return Machine(profiles.load(name), image, tmp_path / "artifacts")


def test_one_machine_per_profile_and_firmware_version(tmp_path: Path) -> None:
    first, second = _machine(tmp_path), _machine(tmp_path)
    assert warm.park(first) and warm.parked() == 1
    assert not warm.park(second)  # the key is taken: the caller powers it off
    assert warm.park(_machine(tmp_path, "virt-16k")) and warm.parked() == 2
    assert warm.park(_machine(tmp_path, firmware="other.elf")) and warm.parked() == 3
    counted = Machine(profiles.with_icount(first.profile), first.firmware, tmp_path / "artifacts")
    assert warm.park(counted) and warm.parked() == 4  # the same name on another clock: another key
    assert warm.take(profiles.with_icount(first.profile), first.firmware) is None  # not RUNNING
    assert warm.parked() == 3
    image = tmp_path / "fw.elf"
    os.utime(image, ns=(1, 1))  # a rebuilt file is another key: the parked one is not taken
    assert warm.take(profiles.load("virt-4k"), image) is None and warm.parked() == 3
    warm.drain()
    assert warm.parked() == 0


def test_a_machine_that_is_not_running_is_never_handed_out(tmp_path: Path) -> None:
    machine = _machine(tmp_path)
    assert warm.park(machine)
    assert warm.take(machine.profile, machine.firmware) is None  # CREATED, not RUNNING: ended instead
    assert machine.state is Runstate.OFF and warm.parked() == 0


def test_nothing_is_parked_while_the_pool_is_off(tmp_path: Path) -> None:
    machine = _machine(tmp_path)
    assert warm.park(machine)
    warm.enable(False)
    assert warm.parked() == 0 and machine.state is Runstate.OFF  # turning it off ends them
    assert not warm.park(_machine(tmp_path))


def test_only_the_icount_idle_warning_may_be_in_qemus_output(tmp_path: Path) -> None:
    machine = _machine(tmp_path)
    machine.artifacts.mkdir()
    assert machine.said_nothing()
    machine.stderr_path.write_text(QEMU_IDLE_WARNING + "\n")
    assert machine.said_nothing()
    machine.stderr_path.write_text(QEMU_IDLE_WARNING + "\nEDU: clamping DMA 0x10001000 to 0x1000!\n")
    assert not machine.said_nothing()
    machine.stderr_path.write_text("")
    machine.trace_path.write_text("smmuv3_translate_success ...\n")
    assert not machine.said_nothing()


def test_room_is_asked_before_anything_is_done_to_a_machine(tmp_path: Path) -> None:
    first, second = _machine(tmp_path), _machine(tmp_path)
    assert warm.has_room(first)
    assert warm.park(first)
    assert not warm.has_room(second) and warm.has_room(_machine(tmp_path, "virt-16k"))
    warm.enable(False)
    assert not warm.has_room(second)
