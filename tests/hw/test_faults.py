"""Synchronous faults inside a command are caught, named, and the agent keeps serving."""

from __future__ import annotations

import pytest

from harness.guest import Guest
from harness.qemu.profile import Profile

ESR_EC_DATA_ABORT_SAME_EL = 0x25
ESR_WNR = 1 << 6


def _esr_ec(esr: int) -> int:
    return (esr >> 26) & 0x3F


def _unmapped(profile: Profile) -> int:
    """An address far above RAM and every device: nothing is mapped there."""
    return 0x7F_0000_0000


@pytest.mark.parametrize("verb", ["peek {va}", "read {va} 16", "crc {va} 16"])
def test_read_fault_is_caught(guest: Guest, profile: Profile, verb: str) -> None:
    va = _unmapped(profile)
    reply = guest.err(verb.format(va=hex(va)), "kIOReturnNotReadable")
    assert reply.number("far") == va
    assert _esr_ec(reply.number("esr")) == ESR_EC_DATA_ABORT_SAME_EL
    assert not reply.number("esr") & ESR_WNR
    assert reply.value("fault") in ("translation", "address-size")
    assert guest.pagesize() == profile.granule


@pytest.mark.parametrize("verb", ["poke {va} 1", "fill {va} 16 0", "write {va} 00ff"])
def test_write_fault_is_caught(guest: Guest, profile: Profile, verb: str) -> None:
    va = _unmapped(profile)
    reply = guest.err(verb.format(va=hex(va)), "kIOReturnNotWritable")
    assert reply.number("far") == va
    assert reply.number("esr") & ESR_WNR
    assert guest.pagesize() == profile.granule


def test_fault_counter_and_repeated_faults(guest: Guest, profile: Profile) -> None:
    before = guest.ok("stats").number("faults")
    for _ in range(50):
        guest.err(f"peek {_unmapped(profile):#x}", "kIOReturnNotReadable")
    assert guest.ok("stats").number("faults") == before + 50
    assert guest.read(guest.scratch()[0], 8) is not None
