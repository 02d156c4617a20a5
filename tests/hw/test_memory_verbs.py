"""The raw memory verbs, each checked against guest RAM read from the host."""

from __future__ import annotations

import os
import zlib

import pytest

from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest

pytestmark = pytest.mark.profiles("virt-4k", "virt-16k", "virt-64k")


def _scratch(guest: Guest) -> tuple[VirtAddr, PhysAddr, int]:
    va, length = guest.scratch()
    return va, guest.phys(va), length


def test_write_lands_in_ram(guest: Guest) -> None:
    va, pa, _ = _scratch(guest)
    data = os.urandom(400)
    crc = guest.write(VirtAddr(va + 3), data)
    assert crc == zlib.crc32(data)
    assert guest.ram.read(PhysAddr(pa + 3), len(data)) == data


def test_read_returns_what_the_host_wrote(guest: Guest) -> None:
    va, pa, _ = _scratch(guest)
    data = os.urandom(4096)
    guest.ram.write(PhysAddr(pa + 4096), data)
    assert guest.read(VirtAddr(va + 4096), 4096) == data
    assert guest.read(VirtAddr(va + 4096), 0) == b""


def test_read_longer_than_4096_is_refused(guest: Guest) -> None:
    va, _, _ = _scratch(guest)
    guest.err(f"read {va:#x} 4097", "kIOReturnMessageTooLarge")
    assert guest.read(va, 16) is not None  # still serving


def test_fill_and_crc_agree_with_the_host(guest: Guest) -> None:
    va, pa, length = _scratch(guest)
    size = min(length, 64 * 1024)
    crc = guest.fill(va, size, 0xA5)
    ram = guest.ram.read(pa, size)
    assert ram == b"\xa5" * size
    assert crc == zlib.crc32(ram) == guest.crc(va, size)
    guest.ram.write(PhysAddr(pa + 100), b"\x01")
    assert guest.crc(va, size) == zlib.crc32(guest.ram.read(pa, size)) != crc


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_peek_poke_widths(guest: Guest, width: int) -> None:
    va, pa, _ = _scratch(guest)
    guest.fill(va, 16, 0)
    value = int.from_bytes(os.urandom(width), "little")
    guest.poke(VirtAddr(va + 8), value, width)
    assert guest.ram.read(pa, 16) == bytes(8) + value.to_bytes(width, "little") + bytes(8 - width)
    assert guest.peek(VirtAddr(va + 8), width) == value
    guest.ram.write(PhysAddr(pa + 8), (0x1122334455667788).to_bytes(8, "little"))
    assert guest.peek(VirtAddr(va + 8), width) == 0x1122334455667788 & ((1 << (8 * width)) - 1)


def test_peek_default_width_is_8(guest: Guest) -> None:
    va, pa, _ = _scratch(guest)
    guest.ram.write(pa, (0xFEDCBA9876543210).to_bytes(8, "little"))
    assert guest.ok(f"peek {va:#x}").number("value") == 0xFEDCBA9876543210


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("poke {va} 0x100 1", "kIOReturnBadArgument"),  # value does not fit the width
        ("poke {va} 1 3", "kIOReturnBadArgument"),  # no such width
        ("peek {va} 16", "kIOReturnBadArgument"),
        ("fill {va} 16 256", "kIOReturnBadArgument"),  # not a byte
        ("write {va} abc", "kIOReturnBadArgument"),  # odd number of hex digits
        ("write {va} zz", "kIOReturnBadArgument"),  # not hex
        ("write {va} 0011 crc32=0x1", "kIOReturnBadArgument"),  # CRC does not match
    ],
)
def test_bad_memory_arguments_change_nothing(guest: Guest, line: str, error: str) -> None:
    va, pa, _ = _scratch(guest)
    guest.fill(va, 64, 0x5A)
    guest.err(line.format(va=hex(va)), error)
    assert guest.ram.read(pa, 64) == b"\x5a" * 64


def test_write_checks_crc_before_writing(guest: Guest) -> None:
    va, pa, _ = _scratch(guest)
    guest.fill(va, 8, 0)
    data = b"\xde\xad\xbe\xef"
    guest.ok(f"write {va:#x} data={data.hex()} crc32={zlib.crc32(data):#x}")
    assert guest.ram.read(pa, 4) == data


SCAN_MAX = 16 << 20  # docs/protocol-notes.md: crc and fill touch at most 16 MiB per request


def test_a_crc_from_the_pcie_window_over_4_gib_is_refused_at_once(guest: Guest) -> None:
    """iomem fuzz's finding: this line read ~750 MiB of unassigned MMIO (each byte an exit to
    QEMU) and held the agent for minutes. It is refused before any byte is read."""
    reply = guest.err("crc 0x10874304 4294967296", "kIOReturnMessageTooLarge")
    assert f"above {SCAN_MAX}" in reply.text
    assert guest.pagesize() == guest.profile.granule  # still serving


@pytest.mark.parametrize("verb", ["crc {va} {n}", "fill {va} {n} 0x5a"])
def test_crc_and_fill_scan_at_most_16_mib(guest: Guest, verb: str) -> None:
    va, pa, _ = _scratch(guest)
    before = guest.ram.read(pa, 64)
    reply = guest.err(verb.format(va=f"{va:#x}", n=SCAN_MAX + 1), "kIOReturnMessageTooLarge")
    assert f"above {SCAN_MAX}" in reply.text
    assert guest.ram.read(pa, 64) == before  # a refused fill writes nothing


def test_a_crc_of_exactly_16_mib_covers_its_last_byte(guest: Guest) -> None:
    buf = guest.ok(f"bmd create {SCAN_MAX:#x}")
    va = VirtAddr(buf.number("va"))
    assert guest.crc(va, SCAN_MAX) == zlib.crc32(bytes(SCAN_MAX))  # a new buffer is zero-filled
    walked = guest.walker().walk(VirtAddr(va + SCAN_MAX - 1))
    assert walked is not None
    guest.ram.write(PhysAddr(walked.pa), b"\x01")  # the last byte, written by the host
    assert guest.crc(va, SCAN_MAX) == zlib.crc32(bytes(SCAN_MAX - 1) + b"\x01")
    guest.ok(f"md release {buf.number('md'):#x}")
