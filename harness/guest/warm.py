"""Warm guests: a QEMU whose guest ended cleanly is kept running and rebooted in place
(``Machine.reboot_in_place``) for the next guest of the same profile and firmware,
instead of a new QEMU being started (about 60 ms of QEMU start-up and 10-20 ms of power-off
saved per guest; issue P1).

What the next guest gets is what a reset button gives: the CPU and every device reset, the
firmware image reloaded (its segments rewritten, its bss zeroed), the firmware booting from
its entry point and announcing itself with a banner whose build-id is checked again. RAM
outside the image keeps what the last guest left there; the firmware initialises everything
it uses (it must, on real hardware), and a firmware that relied on zeroed RAM would be caught
rather than hidden.

A machine is kept only when nothing of the last guest can leak into the next one's results:

* the guest ended without an exception, still running and answering;
* nothing sent to it named a device verb (``dma``, ``edu``, ``poke``: QEMU 7.2's edu has no
  reset handler, so its registers and DMA timer would survive), and no gdbstub break- or
  watchpoint is left (QEMU keeps them across a reset; the gdbstub session itself belongs to
  the machine and serves the next guest);
* QEMU has written no trace line and nothing to its output but the icount idle warning
  (``QEMU_IDLE_WARNING``: the edu clamp warnings, fatal lines and SMMU trace events are
  read per machine);
* it was started with the profile's own command line (no extra arguments) and may be reaped
  with the harness (not kept for ``--iomem-keep``).

At most one machine is parked per (profile with its ``icount``, firmware file); the pool is per process, off
unless :func:`enable` was called (the pytest plugin does, unless ``--iomem-cold``), and every
parked machine is shut down by :func:`drain` (pytest's session end, and the exit handler in
``harness/qemu/machine.py`` for anything left).
"""

from __future__ import annotations

from pathlib import Path

from harness.qemu.machine import Machine, Runstate
from harness.qemu.profile import Profile

Key = tuple[Profile, str, int, int]

_parked: dict[Key, Machine] = {}
_enabled = False


def enable(on: bool = True) -> None:
    """Turn parking on (or off, which also ends every parked machine)."""
    global _enabled
    _enabled = on
    if not on:
        drain()


def enabled() -> bool:
    return _enabled


def key(profile: Profile, firmware: Path) -> Key | None:
    """The pool key of a profile (all of it: the same name with another ``icount`` is another
    command line) and a firmware file as it is now (a rebuilt file is a new key)."""
    try:
        st = firmware.stat()
    except OSError:
        return None
    return (profile, str(firmware), st.st_ino, st.st_mtime_ns)


def take(profile: Profile, firmware: Path) -> Machine | None:
    """A parked, still running machine for this profile and firmware, or None."""
    k = key(profile, firmware)
    machine = _parked.pop(k, None) if k is not None else None
    if machine is None:
        return None
    if machine.state is not Runstate.RUNNING or not machine.alive():
        machine.shutdown(graceful_timeout=0)
        return None
    return machine


def has_room(machine: Machine) -> bool:
    """Whether :func:`park` would keep ``machine`` (asked before anything is done to it)."""
    k = key(machine.profile, machine.firmware)
    return _enabled and k is not None and k not in _parked


def park(machine: Machine) -> bool:
    """Keep ``machine`` for the next guest of its profile and firmware; False (and the caller
    shuts it down) when the pool is off or already holds one for that key."""
    k = key(machine.profile, machine.firmware)
    if not _enabled or k is None or k in _parked:
        return False
    _parked[k] = machine
    return True


def parked() -> int:
    """How many machines are parked."""
    return len(_parked)


def drain() -> None:
    """Shut down every parked machine."""
    while _parked:
        _, machine = _parked.popitem()
        machine.shutdown(graceful_timeout=0)
