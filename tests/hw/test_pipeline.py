"""Pipelined requests (``Guest.pipeline``) on the real request line: the guest takes input only
as far as it has room (docs/protocol-notes.md, Transport) and handles one line at a time, so
many requests can be on the wire at once and nothing is lost, reordered or mixed up. Each
reply is checked against what the host reads in guest RAM, and against the same requests sent
one at a time."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest

from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.qemu.profile import Profile, with_icount

CHUNK = 400  # bytes per write: an 800-hex-digit line, near the agent's 1024-byte limit


@pytest.mark.profiles("virt-4k", "virt-4k-smmu")
@pytest.mark.parametrize("clock", ["real-time", "icount"])  # -icount: what the DMA-heavy tests run
def test_pipelined_replies_match_ram_and_sequential_replies(
    profile: Profile, make_guest: Callable[..., Guest], clock: str
) -> None:
    guest = make_guest(with_icount(profile) if clock == "icount" else profile).boot()
    assert bool(guest.profile.icount) == (clock == "icount")
    base, length = guest.scratch()
    chunks = min(length // CHUNK, 40)
    payloads = [bytes((i * 7 + j) & 0xFF for j in range(CHUNK)) for i in range(chunks)]
    lines: list[str] = []
    for i, data in enumerate(payloads):
        va = base + i * CHUNK
        lines += [
            f"write {va:#x} {data.hex()} crc32={zlib.crc32(data):#x}",
            f"crc {va:#x} {CHUNK}",
            f"peek {va:#x} 8",
            "no-such-verb",  # an error reply in the stream
            f"read {va:#x} 64",
        ]
    replies = guest.pipeline(lines)
    assert len(replies) == len(lines)
    assert [r.tag for r in replies] == sorted({r.tag for r in replies})  # one each, in order
    for i, data in enumerate(payloads):
        write, crc, peek, bad, read = replies[5 * i : 5 * i + 5]
        want = zlib.crc32(data)
        assert write.ok and write.number("crc32") == want, write.line
        assert crc.ok and crc.number("crc32") == want, crc.line
        assert peek.ok and peek.number("value") == int.from_bytes(data[:8], "little"), peek.line
        assert not bad.ok, bad.line
        assert read.ok and bytes.fromhex(read.value("data")) == data[:64], read.line
    assert guest.ram.read(PhysAddr(base), chunks * CHUNK) == b"".join(payloads)  # the host's eyes
    # The same reads one at a time answer the same (tags aside).
    for line, reply in list(zip(lines, replies, strict=True))[1::5]:
        assert guest.request(line).keys == reply.keys
    assert guest.read(VirtAddr(base), 16) == payloads[0][:16]
