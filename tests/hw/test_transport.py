"""The request line's two transports (docs/protocol-notes.md, Transport). The harness writes
its requests to a virtio console and the guest answers there (QEMU 7.2's PL011 moves a byte
per main-loop turn or system call); the protocol itself is the PL011's, and a guest whose only
input is the UART must serve it the same way, answering on the UART. Which way the bytes went
is read from guest RAM: the virtio rings' used indexes, which only QEMU's device model writes
(firmware/drivers/virtio_console.c)."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest

from harness.addresses import PhysAddr
from harness.guest import Guest
from harness.qemu.profile import Profile

CHUNK = 200  # bytes per write request: a 400-hex-digit line


def _used_index(guest: Guest, ring: str = "vcon_used") -> int:
    """How many buffers QEMU's virtio console has used on a queue since the driver started:
    receive buffers it filled (``vcon_used``) or transmit buffers it sent (``vcon_tx_used``)."""
    layout = guest.elf.dwarf.struct("virtq_used")
    blob = guest.ram.read(PhysAddr(guest.elf.symbol(ring).address), layout.size)
    return layout.read(blob, "idx")


def _serve_and_check(guest: Guest) -> None:
    """Writes, CRCs and reads, pipelined, each reply checked against guest RAM read by the
    host; then a request alone, a bad byte and an over-long line, with their error replies."""
    base, length = guest.scratch()
    payloads = [bytes((i * 13 + j) & 0xFF for j in range(CHUNK)) for i in range(min(length // CHUNK, 20))]
    lines: list[str] = []
    for i, data in enumerate(payloads):
        va = base + i * CHUNK
        lines += [f"write {va:#x} {data.hex()} crc32={zlib.crc32(data):#x}", f"crc {va:#x} {CHUNK}"]
    replies = guest.pipeline(lines)
    for i, data in enumerate(payloads):
        va = base + i * CHUNK
        assert replies[2 * i].ok, replies[2 * i].line
        assert guest.ram.read(PhysAddr(va), CHUNK) == data  # identity-mapped scratch: VA == PA
        assert replies[2 * i + 1].number("crc32") == zlib.crc32(data)
    assert guest.ok("pagesize").number("page") == guest.profile.granule
    assert guest.console is not None
    bad = guest.console.raw_exchange(b"@5 pe\xffek 0x0\n")
    assert bad.error == "kIOReturnBadArgument" and bad.tag == 5 and "0xff" in bad.text.lower()
    long = guest.console.raw_exchange(b"@77 read " + b"1" * 2000 + b"\n")
    assert long.error == "kIOReturnMessageTooLarge" and long.tag == 77
    assert guest.pagesize() == guest.profile.granule


@pytest.mark.profiles("virt-4k", "virt-64k-smmu")
def test_requests_and_replies_go_over_the_virtio_console(guest: Guest) -> None:
    before, sent = _used_index(guest), _used_index(guest, "vcon_tx_used")
    assert before > 0 and sent > 0  # `echo off` after the banner came and went this way already
    _serve_and_check(guest)
    assert _used_index(guest) > before
    assert _used_index(guest, "vcon_tx_used") >= sent + 2  # the replies went back the same way


@pytest.mark.profiles("virt-4k", "virt-64k-smmu")
def test_protocol_served_on_the_uart_alone(profile: Profile, make_guest: Callable[..., Guest]) -> None:
    guest = make_guest(profile, uart_input=True).boot()
    _serve_and_check(guest)
    assert _used_index(guest) == 0  # nothing came through the virtio console
    assert _used_index(guest, "vcon_tx_used") == 0  # and every reply went out on the UART
