"""Warm guests (harness/guest/warm.py): a clean guest's QEMU rebooted in place for the next
guest is a fresh boot of the firmware, checked from the host; a guest that may have left
state behind (a device driven, a gdbstub session, an exception) is never reused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from heap_support import baseline_state

from harness.addresses import PhysAddr
from harness.guest import Guest, warm
from harness.qemu.machine import Runstate
from harness.qemu.profile import Profile

pytestmark = pytest.mark.profiles("virt-4k", "virt-4k-dma32", "virt-64k-smmu")

PATTERN = bytes(range(256))


@pytest.fixture(autouse=True)
def _empty_pool() -> None:
    """Each test starts with nothing parked in this process (another test may have left one)."""
    warm.drain()


def _dirty(guest: Guest) -> PhysAddr:
    """Leave state behind: live blocks, objects, a descriptor, and a pattern in RAM."""
    for size in (16, 300, 5000, 70000):
        guest.alloc(size)
    guest.obj_new("OSObject")
    guest.ok("bmd create 65536")
    block = guest.alloc(len(PATTERN))
    guest.write(block, PATTERN)
    return guest.phys(block)


def test_a_warm_reboot_is_a_fresh_boot_on_the_same_qemu(
    profile: Profile, make_guest: Callable[..., Guest]
) -> None:
    cold = make_guest(profile).boot()
    assert not cold.warm
    fresh = baseline_state(cold)
    fresh_check = cold.check()
    pattern_at = _dirty(cold)
    assert baseline_state(cold) != fresh
    pid = cold.machine.pid
    assert cold.close(reuse=True) is None and cold.parked and warm.parked() == 1

    again = make_guest(profile).boot()
    assert again.warm and again.machine.pid == pid and warm.parked() == 0
    assert again.banner is not None and again.banner.build == again.elf.build_id
    # The allocators are as a cold boot leaves them: guest stats, its own check, and the
    # host decoder's canonical state of the heap, objects and pages.
    assert baseline_state(again) == fresh
    assert again.check() == fresh_check
    assert again.stats()["requests"] < 10  # the agent's counters started again
    # ... while RAM outside the firmware image kept what the last guest wrote (a reset
    # button, not a power cycle): the firmware could not have relied on zeroed RAM.
    assert again.ram.read(pattern_at, len(PATTERN)) == PATTERN


def test_a_guest_that_drove_a_device_is_not_reused(
    profile: Profile, make_guest: Callable[..., Guest]
) -> None:
    first = make_guest(profile).boot()
    first.ok("edu info")
    pid = first.machine.pid
    first.close(reuse=True)
    assert not first.parked and first.machine.state is Runstate.OFF and warm.parked() == 0
    second = make_guest(profile).boot()
    assert not second.warm and second.machine.pid != pid


def test_the_gdbstub_session_goes_with_the_qemu_and_a_breakpoint_blocks_reuse(
    profile: Profile, make_guest: Callable[..., Guest]
) -> None:
    first = make_guest(profile).boot()
    before = first.registers()
    first.close(reuse=True)
    assert first.parked  # reading registers leaves nothing behind
    second = make_guest(profile).boot()
    assert second.warm and second.gdb is first.gdb  # one session per connection
    after = second.registers()  # the rebooted CPU, read through the same session
    names = ("ttbr0_el1", "tcr_el1", "mair_el1", "sctlr_el1")
    assert [getattr(after, n) for n in names] == [getattr(before, n) for n in names]
    address = second.elf.symbol("heap_space").address
    with second.gdb.stopped():
        assert second.gdb.request(f"Z1,{address:x},4") == b"OK"  # a hardware breakpoint: QEMU keeps it
    second.close(reuse=True)
    assert not second.parked and second.machine.state is Runstate.OFF and warm.parked() == 0


def test_a_guest_whose_block_raised_is_not_reused(profile: Profile, make_guest: Callable[..., Guest]) -> None:
    first = make_guest(profile)
    with pytest.raises(RuntimeError), first:
        raise RuntimeError("the test failed inside the guest's block")
    assert not first.parked and first.machine.state is Runstate.OFF and warm.parked() == 0


def test_an_explicit_close_powers_off(profile: Profile, make_guest: Callable[..., Guest]) -> None:
    guest = make_guest(profile).boot()
    assert guest.close() == 0 and not guest.parked and warm.parked() == 0
