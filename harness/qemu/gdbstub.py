"""A small GDB Remote Serial Protocol client for QEMU's gdbstub: the host's way to read CPU
and system registers without asking the guest.

Why its own client: the harness needs ~15 register reads per snapshot, over a socket it
already owns (``-gdb chardev:...`` on a socketpair), with hard timeouts and without a gdb
binary. Only what that needs is here: framing, checksums, acks and ``QStartNoAckMode``,
``qSupported``, the target description (``qXfer:features:read``) that maps register names to
numbers, ``p``/``g`` reads, and halting (ctrl-C) and resuming (``c``).

QEMU 7.2 behaviour this relies on (measured; see ``docs/pagewalk.md``):

* Any byte that reaches the stub while the VM runs stops the VM and is *discarded*, so the
  client sends a lone ctrl-C (0x03) first when the VM may be running.
* Every time the VM stops (QMP ``stop``, ctrl-C, gdb attach) the stub sends an unsolicited
  stop reply (``T02thread:...;``). Requests here skip such packets and keep them in
  :attr:`GdbStub.stop_replies`, so they can never be mistaken for a reply.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from harness.errors import IomemError

# --------------------------------------------------------------------------- errors


class GdbStubError(IomemError):
    """The gdbstub conversation failed (timeout, bad packet, error reply)."""


class GdbTimeout(GdbStubError):
    """No (complete) answer within the timeout."""


# --------------------------------------------------------------------------- framing
_ESCAPED = frozenset(b"$#}*")


def checksum(data: bytes) -> int:
    """RSP checksum: the sum of the (escaped) payload bytes, modulo 256."""
    return sum(data) & 0xFF


def escape(payload: bytes) -> bytes:
    """Escape ``$ # } *`` as ``}`` followed by the byte XOR 0x20."""
    if not _ESCAPED.intersection(payload):
        return payload
    out = bytearray()
    for byte in payload:
        if byte in _ESCAPED:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    """``$<escaped payload>#<checksum>``."""
    body = escape(payload)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


def decode_body(body: bytes) -> bytes:
    """Undo escaping (``}x``) and run-length encoding (``c*N``: N-29 more copies of c)."""
    if b"}" not in body and b"*" not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        byte = body[i]
        if byte == 0x7D and i + 1 < len(body):
            out.append(body[i + 1] ^ 0x20)
            i += 2
        elif byte == 0x2A and out and i + 1 < len(body):
            out += bytes((out[-1],)) * (body[i + 1] - 29)
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def is_stop_reply(payload: bytes) -> bool:
    """Stop/exit replies (``S``, ``T``, ``W``, ``X``) and console output (``O``...). None of
    the requests this client sends can be answered with a packet starting with these."""
    head = payload[:1]
    return head in (b"S", b"T", b"W", b"X") or (head == b"O" and payload != b"OK")


class RspConnection:
    """Packets over a connected stream socket, with acks until no-ack mode is on."""

    def __init__(self, sock: socket.socket, *, timeout: float = 5.0) -> None:
        self.sock = sock
        self.timeout = timeout
        self.ack_mode = True
        self._buf = bytearray()
        self._packets: deque[bytes] = deque()
        self._acks: deque[bytes] = deque()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, payload: bytes, *, timeout: float | None = None) -> None:
        data = frame(payload)
        for _ in range(4):
            self.sock.sendall(data)
            if not self.ack_mode:
                return
            ack = self._next_ack(timeout)
            if ack == b"+":
                return
        raise GdbStubError(f"gdbstub kept NAKing packet {payload[:60]!r}")

    def recv_packet(self, timeout: float | None = None) -> bytes:
        """The next packet's decoded payload (acked in ack mode)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._packets:
            self._pump(deadline)
        return self._packets.popleft()

    def drain(self) -> list[bytes]:
        """Every complete packet already readable, without blocking."""
        self._pump(None)
        packets = list(self._packets)
        self._packets.clear()
        return packets

    def _next_ack(self, timeout: float | None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._acks:
            self._pump(deadline)
        return self._acks.popleft()

    def _pump(self, deadline: float | None) -> None:
        """Read what is available (waiting until ``deadline``; None: do not wait), parse it."""
        wait = 0.0 if deadline is None else deadline - time.monotonic()
        if deadline is not None and wait <= 0:
            raise GdbTimeout(f"gdbstub did not answer within {self.timeout:g}s")
        ready, _, _ = select.select([self.sock], [], [], max(wait, 0.0))
        if ready:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise GdbStubError(f"gdbstub connection failed: {exc}") from exc
            if not chunk:
                raise GdbStubError("gdbstub closed the connection")
            self._buf += chunk
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        while buf:
            head = buf[0]
            if head in b"+-":
                self._acks.append(bytes((head,)))
                del buf[0]
                continue
            if head != 0x24:  # '$'; anything else between packets is noise
                start = buf.find(b"$")
                acks = [b for b in buf[: start if start >= 0 else len(buf)] if b in b"+-"]
                self._acks.extend(bytes((b,)) for b in acks)
                del buf[: start if start >= 0 else len(buf)]
                continue
            end = buf.find(b"#")
            if end < 0 or len(buf) < end + 3:
                return  # incomplete packet: wait for more
            body, check = bytes(buf[1:end]), bytes(buf[end + 1 : end + 3])
            del buf[: end + 3]
            good = check.lower() == f"{checksum(body):02x}".encode()
            if self.ack_mode:
                self.sock.sendall(b"+" if good else b"-")
            if good:
                self._packets.append(decode_body(body))
            elif not self.ack_mode:
                raise GdbStubError(f"bad checksum on packet {body[:60]!r} (got {check!r})")


# --------------------------------------------------------------------------- target description
@dataclass(frozen=True, slots=True)
class Register:
    name: str
    regnum: int
    bitsize: int
    feature: str


_INCLUDE = re.compile(rb"<xi:include\s+href=\"([^\"]+)\"\s*/>")


def parse_feature_regs(xml_text: bytes, first_regnum: int, feature_file: str) -> list[Register]:
    """The ``<reg>`` elements of one target-description file, numbered the way gdb numbers
    them: an explicit ``regnum`` resets the count, otherwise previous + 1."""
    cleaned = re.sub(rb"<!DOCTYPE[^>]*>", b"", xml_text)
    cleaned = _INCLUDE.sub(b"", cleaned)
    root = ET.fromstring(cleaned)
    regs = []
    regnum = first_regnum
    for feature in root.iter("feature"):
        fname = feature.get("name", feature_file)
        for reg in feature.iter("reg"):
            if reg.get("regnum") is not None:
                regnum = int(reg.get("regnum", "0"))
            regs.append(Register(reg.get("name", ""), regnum, int(reg.get("bitsize", "0")), fname))
            regnum += 1
    return regs


# --------------------------------------------------------------------------- the client
class GdbStub:
    """One gdbstub connection. Call :meth:`handshake` once, then read registers.

    The socket stays owned by the caller (``Machine``); :meth:`close` only forgets it.
    """

    def __init__(self, sock: socket.socket, *, timeout: float = 5.0) -> None:
        self.rsp = RspConnection(sock, timeout=timeout)
        self.features: dict[str, str] = {}
        self.packet_size = 4096
        self.registers: dict[str, Register] = {}
        self.stop_replies: list[bytes] = []
        self.xml_files: dict[str, bytes] = {}
        self._phys_mode = False
        # Break/watchpoints inserted (Z) and not removed (z): QEMU keeps them across a reset.
        self.breakpoints: set[bytes] = set()

    # ---- basic exchange
    def request(self, payload: bytes | str, *, timeout: float | None = None) -> bytes:
        """Send one packet, return its reply; unsolicited stop replies are set aside."""
        data = payload.encode() if isinstance(payload, str) else payload
        self.rsp.send_packet(data, timeout=timeout)
        while True:
            reply = self.rsp.recv_packet(timeout)
            if is_stop_reply(reply):
                self.stop_replies.append(reply)
                continue
            if data[:1] in (b"Z", b"z") and reply == b"OK":
                point = data[1:]
                if data[:1] == b"Z":
                    self.breakpoints.add(point)
                else:
                    self.breakpoints.discard(point)
            return reply

    def handshake(self) -> None:
        """qSupported, no-ack mode if offered, then the register map from the target XML.

        Leaves the run state as it found it: a running VM is halted first (a packet sent to a
        running VM is lost) and resumed at the end."""
        with self.stopped():
            self._handshake()

    def _handshake(self) -> None:
        reply = self.request(b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;xmlRegisters=aarch64")
        for item in reply.decode(errors="replace").split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                self.features[key] = value
            elif item:
                self.features[item.rstrip("+-?")] = item[-1:]
        if "PacketSize" in self.features:
            self.packet_size = int(self.features["PacketSize"], 16)
        if self.features.get("QStartNoAckMode") == "+":
            if self.request(b"QStartNoAckMode") != b"OK":
                raise GdbStubError("gdbstub refused QStartNoAckMode")
            self.rsp.ack_mode = False
        if self.features.get("qXfer:features:read") == "+":
            self._load_registers()

    def read_xml(self, annex: str) -> bytes:
        """One target-description file, read in ``PacketSize`` chunks."""
        data = bytearray()
        chunk = max(256, self.packet_size - 16)
        while True:
            reply = self.request(f"qXfer:features:read:{annex}:{len(data):x},{chunk:x}")
            if not reply or reply[:1] not in (b"m", b"l"):
                raise GdbStubError(f"qXfer:features:read:{annex} failed: {reply[:60]!r}")
            data += reply[1:]
            if reply[:1] == b"l":
                return bytes(data)

    def _load_registers(self) -> None:
        regs: list[Register] = []
        pending = ["target.xml"]
        while pending:
            annex = pending.pop(0)
            text = self.read_xml(annex)
            self.xml_files[annex] = text
            includes = [m.decode() for m in _INCLUDE.findall(text)]
            regs += parse_feature_regs(text, regs[-1].regnum + 1 if regs else 0, annex)
            pending = includes + pending  # includes come in document order, depth first
        self.registers = {}
        for reg in regs:  # first wins: "fpcr" is both an FPU and a system register
            self.registers.setdefault(reg.name.lower(), reg)

    # ---- registers
    def register(self, name: str) -> Register:
        try:
            return self.registers[name.lower()]
        except KeyError:
            raise GdbStubError(f"the gdbstub does not describe a register named {name!r}") from None

    def read_register(self, reg: Register | str) -> int:
        """``p<regnum>``: one register, decoded from little-endian hex."""
        if isinstance(reg, str):
            reg = self.register(reg)
        reply = self.request(f"p{reg.regnum:x}")
        if not reply or (reply[:1] == b"E" and len(reply) == 3):
            raise GdbStubError(f"reading {reg.name} (p{reg.regnum:x}) failed: {reply!r}")
        try:
            return int.from_bytes(bytes.fromhex(reply.decode()), "little")
        except ValueError:
            raise GdbStubError(f"reading {reg.name}: unreadable reply {reply[:60]!r}") from None

    def write_register(self, reg: Register | str, value: int) -> None:
        """``P<regnum>=<value>``: set one register (fault injection). Halt the VM first."""
        if isinstance(reg, str):
            reg = self.register(reg)
        data = value.to_bytes(reg.bitsize // 8, "little").hex()
        reply = self.request(f"P{reg.regnum:x}={data}")
        if reply != b"OK":
            raise GdbStubError(f"writing {reg.name} (P{reg.regnum:x}) failed: {reply!r}")

    def read_general(self) -> dict[str, int]:
        """``g``: the registers QEMU puts in the general block (x0..x30, sp, pc, cpsr)."""
        reply = self.request(b"g")
        if reply[:1] == b"E":
            raise GdbStubError(f"'g' failed: {reply!r}")
        raw = bytes.fromhex(reply.decode())
        values: dict[str, int] = {}
        offset = 0
        for reg in sorted(self.registers.values(), key=lambda r: r.regnum):
            size = reg.bitsize // 8
            if offset + size > len(raw):
                break
            values[reg.name] = int.from_bytes(raw[offset : offset + size], "little")
            offset += size
        return values

    # ---- memory
    def set_physical_memory_mode(self, physical: bool) -> None:
        """QEMU extension ``Qqemu.PhyMemMode``: make ``m`` read guest-physical addresses
        (1) or virtual ones through the vCPU's current MMU (0)."""
        if self._phys_mode == physical:
            return
        if physical and b"PhyMemMode" not in self.request(b"qqemu.Supported").split(b";"):
            raise GdbStubError("this gdbstub has no qemu.PhyMemMode: cannot read physical memory")
        if self.request(f"Qqemu.PhyMemMode:{int(physical)}") != b"OK":
            raise GdbStubError("gdbstub refused Qqemu.PhyMemMode")
        self._phys_mode = physical

    def read_memory(self, addr: int, length: int, *, physical: bool = True) -> bytes:
        """``m`` reads, in packet-sized chunks. The VM must be stopped (see :meth:`stopped`).
        Physical by default: a virtual read goes through the very tables being checked."""
        self.set_physical_memory_mode(physical)
        data = bytearray()
        step = max(16, (self.packet_size - 8) // 2)
        while len(data) < length:
            n = min(step, length - len(data))
            reply = self.request(f"m{addr + len(data):x},{n:x}")
            if not reply or reply[:1] == b"E":
                raise GdbStubError(f"reading {n} bytes at {addr + len(data):#x} failed: {reply[:20]!r}")
            data += bytes.fromhex(reply.decode())
        return bytes(data)

    # ---- run control
    def halt(self) -> bool:
        """Make sure the VM is stopped; True if it was running (this call stopped it).

        Sends ctrl-C, then a probe (``qAttached``): a stop reply before the probe's answer
        means the ctrl-C stopped a running VM; a paused VM ignores the ctrl-C. Stale stop
        replies (from an earlier QMP ``stop``) are drained first so they do not count."""
        self.stop_replies.extend(self.rsp.drain())
        before = len(self.stop_replies)
        self.rsp.send_raw(b"\x03")
        self.request(b"qAttached")
        return len(self.stop_replies) > before

    def resume(self) -> None:
        """``c``: let the VM run. No reply is awaited (the stop reply comes at the next stop)."""
        self.rsp.send_packet(b"c")

    @contextlib.contextmanager
    def stopped(self, *, resume: bool = True) -> Iterator[bool]:
        """Hold the VM stopped for the block; resume afterwards only if this stopped it."""
        was_running = self.halt()
        try:
            yield was_running
        finally:
            if was_running and resume:
                self.resume()
