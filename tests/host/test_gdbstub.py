"""The gdbstub client and the register snapshot.

Two parts:

* RSP framing, acks, escapes, stop-reply handling and the handshake, against a scripted fake
  stub on a socketpair (no QEMU).
* ``test_qemu_*``: NEED A REAL QEMU. They start a bare ``qemu-system-aarch64 -M virt`` (no
  firmware; the last one assembles a 30-line guest with the cross compiler) with the gdbstub
  and QMP on socketpairs, and are skipped with a reason when the binaries are missing. QEMU is
  always SIGKILLed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.oracle.pagewalk import Fault, Identity, PageWalker, Regime, Translation
from harness.qemu.gdbstub import (
    GdbStub,
    GdbStubError,
    GdbTimeout,
    RspConnection,
    checksum,
    decode_body,
    escape,
    frame,
    parse_feature_regs,
)
from harness.qemu.registers import SystemRegisters, read_registers, time_snapshot

QEMU = shutil.which("qemu-system-aarch64")
CROSS_CC = shutil.which("aarch64-linux-gnu-gcc")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-aarch64 is not installed (needs QEMU)")


# ============================================================================ framing
def test_checksums_and_frames() -> None:
    assert frame(b"g") == b"$g#67"
    assert frame(b"?") == b"$?#3f"
    assert frame(b"OK") == b"$OK#9a"
    assert checksum(b"") == 0
    assert escape(b"a$b#c}d*e") == b"a}\x04b}\x03c}]d}\x0ae"
    assert decode_body(escape(b"a$b#c}d*e")) == b"a$b#c}d*e"
    assert decode_body(b"0* ") == b"0000"            # run-length: ' ' is 32, 32-29 = 3 more
    assert frame(b"$") == b"$}\x04#81"


class Peer:
    """The far end of a socketpair, driven by the test."""

    def __init__(self) -> None:
        self.client_sock, self.sock = socket.socketpair()
        self.sock.settimeout(2.0)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            data += self.sock.recv(n - len(data))
        return data

    def pending(self) -> bytes:
        self.sock.setblocking(False)
        try:
            return self.sock.recv(65536)
        except BlockingIOError:
            return b""
        finally:
            self.sock.settimeout(2.0)


def test_ack_mode_resends_after_nak() -> None:
    peer = Peer()
    rsp = RspConnection(peer.client_sock, timeout=1.0)
    peer.send(b"-+")
    rsp.send_packet(b"g")
    assert peer.recv_exactly(10) == b"$g#67$g#67"


def test_received_packets_are_acked_and_bad_checksums_naked() -> None:
    peer = Peer()
    rsp = RspConnection(peer.client_sock, timeout=1.0)
    peer.send(b"$OK#00$OK#9a")
    assert rsp.recv_packet() == b"OK"
    assert peer.pending() == b"-+"


def test_packets_split_across_reads() -> None:
    peer = Peer()
    rsp = RspConnection(peer.client_sock, timeout=1.0)
    rsp.ack_mode = False

    def dribble() -> None:
        for byte in b"$0011223344556677#":
            peer.send(bytes((byte,)))
            time.sleep(0.001)
        peer.send(b"%02x" % checksum(b"0011223344556677"))

    thread = threading.Thread(target=dribble)
    thread.start()
    assert rsp.recv_packet() == b"0011223344556677"
    thread.join()


def test_stop_replies_are_set_aside() -> None:
    peer = Peer()
    stub = GdbStub(peer.client_sock, timeout=1.0)
    stub.rsp.ack_mode = False
    peer.send(frame(b"T02thread:01;") + frame(b"00000000deadbeef"))
    assert stub.request(b"p20") == b"00000000deadbeef"
    assert stub.stop_replies == [b"T02thread:01;"]


def test_timeout_and_closed_connection() -> None:
    peer = Peer()
    rsp = RspConnection(peer.client_sock, timeout=0.05)
    rsp.ack_mode = False
    with pytest.raises(GdbTimeout):
        rsp.recv_packet()
    peer.sock.close()
    with pytest.raises(GdbStubError, match="closed"):
        rsp.recv_packet()


def test_regnums_follow_gdb_rules() -> None:
    xml = b"""<?xml version="1.0"?><!DOCTYPE feature SYSTEM "gdb-target.dtd">
    <feature name="f"><reg name="a" bitsize="64"/><reg name="b" bitsize="32"/>
    <reg name="c" bitsize="64" regnum="10"/><reg name="d" bitsize="64"/></feature>"""
    regs = parse_feature_regs(xml, 5, "x.xml")
    assert [(r.name, r.regnum, r.bitsize) for r in regs] == [("a", 5, 64), ("b", 6, 32), ("c", 10, 64),
                                                              ("d", 11, 64)]


# ============================================================================ a fake gdbstub
TARGET_XML = (b'<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target>'
              b'<architecture>aarch64</architecture><xi:include href="core.xml"/>'
              b'<xi:include href="sys.xml"/></target>')
CORE_XML = (b'<?xml version="1.0"?><!-- $escaped# on the wire --><feature name="org.gnu.gdb.aarch64.core">'
            + b"".join(b'<reg name="x%d" bitsize="64"/>' % i for i in range(31))
            + b'<reg name="sp" bitsize="64"/><reg name="pc" bitsize="64"/><reg name="cpsr" bitsize="32"/>'
            b"</feature>")
SYS_NAMES = ["TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "MAIR_EL1", "SCTLR", "ESR_EL1", "FAR_EL1", "ELR_EL1",
             "VBAR", "SPSR_EL1", "PAR_EL1", "SP_EL0", "SP_EL1", "ID_AA64MMFR0_EL1"]
SYS_XML = (b'<?xml version="1.0"?><feature name="org.qemu.gdb.arm.sys.regs">'
           + b"".join(b'<reg name="%s" bitsize="64" regnum="%d"/>' % (n.encode(), 68 + i)
                      for i, n in enumerate(SYS_NAMES)) + b"</feature>")


class FakeStub(threading.Thread):
    """Mimics QEMU 7.2's gdbstub closely enough: ack mode only, stop-on-any-byte while
    running, an unsolicited ``T02`` stop reply, chunked ``qXfer`` answers with ``$`` escaped."""

    def __init__(self, sock: socket.socket, *, running: bool) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.running = running
        self.files = {"target.xml": TARGET_XML, "core.xml": CORE_XML, "sys.xml": SYS_XML}
        self.regs = {68 + i: 0x1000 + i for i in range(len(SYS_NAMES))}
        self.log: list[bytes] = []

    def put(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def run(self) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while buf:
                    if self.running:          # QEMU: any byte stops the VM and is discarded
                        self.running, buf = False, buf[1:]
                        self.put(b"T02thread:01;")
                        continue
                    if buf[:1] != b"$":
                        buf = buf[1:]
                        continue
                    end = buf.find(b"#")
                    if end < 0 or len(buf) < end + 3:
                        break
                    body, buf = buf[1:end], buf[end + 3:]
                    self.sock.sendall(b"+")
                    self.log.append(body)
                    self.answer(decode_body(body))

    def answer(self, cmd: bytes) -> None:
        if cmd.startswith(b"qSupported"):
            self.put(b"PacketSize=40;qXfer:features:read+;multiprocess+")
        elif cmd.startswith(b"qXfer:features:read:"):
            annex, span = cmd[len(b"qXfer:features:read:"):].split(b":")
            off, length = (int(x, 16) for x in span.split(b","))
            data = self.files[annex.decode()]
            part = data[off:off + length]
            self.sock.sendall(frame((b"l" if off + length >= len(data) else b"m") + part))
        elif cmd == b"qAttached":
            self.put(b"1")
        elif cmd.startswith(b"p"):
            regnum = int(cmd[1:], 16)
            self.put(self.regs.get(regnum, 0).to_bytes(8, "little").hex().encode() if regnum in self.regs
                     else b"E14")
        elif cmd == b"g":
            core = b"".join(i.to_bytes(8, "little") for i in range(31))
            core += (0x40000000).to_bytes(8, "little") + (0x40080000).to_bytes(8, "little")
            self.put((core + (0x3C5).to_bytes(4, "little")).hex().encode())
        elif cmd == b"c":
            self.running = True
        else:
            self.put(b"")


def fake(running: bool) -> tuple[GdbStub, FakeStub]:
    ours, theirs = socket.socketpair()
    server = FakeStub(theirs, running=running)
    server.start()
    return GdbStub(ours, timeout=2.0), server


def test_handshake_reads_xml_includes_and_restores_run_state() -> None:
    stub, server = fake(running=True)
    stub.handshake()
    assert stub.packet_size == 0x40 and stub.rsp.ack_mode          # no QStartNoAckMode offered
    assert list(stub.xml_files) == ["target.xml", "core.xml", "sys.xml"]
    assert (stub.register("pc").regnum, stub.register("cpsr").bitsize) == (32, 32)
    assert stub.register("sctlr").regnum == 68 + SYS_NAMES.index("SCTLR")
    # 'c' has no reply: give the fake's thread a moment to read it before looking.
    deadline = time.monotonic() + 2.0
    while not server.running and time.monotonic() < deadline:
        time.sleep(0.001)
    assert server.running                      # was running: resumed with 'c'
    assert server.log[-1] == b"c"
    assert stub.stop_replies == [b"T02thread:01;"]


def test_read_registers_from_fake() -> None:
    stub, server = fake(running=False)
    stub.handshake()
    regs = read_registers(stub)
    assert not server.running                  # it was paused: left paused
    assert (regs.sctlr_el1, regs.vbar_el1, regs.id_aa64mmfr0_el1) == (0x1004, 0x1008, 0x100D)
    assert (regs.pc, regs.sp, regs.cpsr, regs.current_el) == (0x40080000, 0x40000000, 0x3C5, 1)
    assert regs.x == tuple(range(31))
    assert regs.as_dict()["x7"] == 7
    server.running = True
    read_registers(stub, resume=False)
    assert not server.running
    with pytest.raises(GdbStubError, match="does not describe a register"):
        stub.read_register("NOPE_EL1")


# ============================================================================ real QEMU
class RawQmp:
    """QMP as JSON lines on a socket: enough for a test, events are collected, not parsed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("r")
        self.events: list[str] = []
        json.loads(self.file.readline())                     # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name: str, **args: object) -> object:
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            msg = json.loads(self.file.readline())
            if "event" in msg:
                self.events.append(msg["event"])
            elif "error" in msg:
                raise RuntimeError(f"QMP {name}: {msg['error']}")
            else:
                return msg["return"]

    def status(self) -> str:
        reply = self.cmd("query-status")
        assert isinstance(reply, dict)
        return str(reply["status"])


@contextlib.contextmanager
def qemu(*extra: str) -> Iterator[tuple[GdbStub, RawQmp]]:
    assert QEMU is not None
    gdb_ours, gdb_theirs = socket.socketpair()
    mon_ours, mon_theirs = socket.socketpair()
    cmd = [QEMU, "-M", "virt", "-cpu", "cortex-a57", "-m", "64M", "-nodefaults", "-nic", "none",
           "-display", "none", "-no-reboot",
           "-chardev", f"socket,id=gdb0,fd={gdb_theirs.fileno()}", "-gdb", "chardev:gdb0",
           "-chardev", f"socket,id=mon,fd={mon_theirs.fileno()}", "-mon", "chardev=mon,mode=control",
           *extra]
    proc = subprocess.Popen(cmd, pass_fds=(gdb_theirs.fileno(), mon_theirs.fileno()),
                            stdin=subprocess.DEVNULL)       # stderr inherited: pytest shows it
    gdb_theirs.close()
    mon_theirs.close()
    try:
        mon_ours.settimeout(10.0)
        yield GdbStub(gdb_ours, timeout=5.0), RawQmp(mon_ours)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        gdb_ours.close()
        mon_ours.close()


@needs_qemu
def test_qemu_reset_registers() -> None:
    with qemu("-S") as (stub, qmp):
        assert qmp.status() == "prelaunch"
        stub.handshake()
        assert qmp.status() == "prelaunch"                   # the handshake does not start or stop it
        names = set(stub.registers)
        assert {"ttbr0_el1", "tcr_el1", "mair_el1", "sctlr", "vbar", "id_aa64mmfr0_el1"} <= names
        regs = read_registers(stub)
        assert regs.pc == 0                                  # no -kernel: the CPU starts at flash 0
        assert regs.cpsr == 0x3C5 | (1 << 30)                # EL1h, DAIF masked (and Z)
        assert regs.current_el == 1
        assert regs.sctlr_el1 == 0x00C5_0838 and not regs.mmu_on    # Cortex-A57 reset value
        assert regs.id_aa64mmfr0_el1 == 0x1124               # A57: PARange 44 bits, 4K+64K only
        assert (regs.tcr_el1, regs.ttbr0_el1, regs.mair_el1, regs.vbar_el1) == (0, 0, 0, 0)
        regime = Regime.from_snapshot(regs)
        walked = PageWalker(lambda pa, n: stub.read_memory(pa, n), regime).walk(0x4000_0000)
        assert walked == Identity(va=0x4000_0000, pa=0x4000_0000)
        with stub.stopped():
            assert stub.read_memory(0x4000_0000, 4) == bytes.fromhex("d00dfeed")   # the DTB at RAM base


@needs_qemu
def test_qemu_halt_and_resume_semantics() -> None:
    with qemu() as (stub, qmp):
        assert qmp.status() == "running"                     # a socketpair gdbstub does not stop it
        stub.handshake()
        assert qmp.status() == "running"                     # handshake halted and resumed it
        regs = read_registers(stub)
        assert isinstance(regs, SystemRegisters)
        assert qmp.status() == "running"
        read_registers(stub, resume=False)
        assert qmp.status() == "paused"
        qmp.cmd("cont")                                      # QMP resumes what the gdbstub stopped
        assert qmp.status() == "running"
        qmp.cmd("stop")
        read_registers(stub)
        assert qmp.status() == "paused"                      # paused by QMP: stays paused
        qmp.cmd("cont")
        assert qmp.status() == "running"
        assert stub.stop_replies and all(r.startswith(b"T02") for r in stub.stop_replies)
        seconds = time_snapshot(stub, count=20)
        print(f"register snapshot (halt + g + 14 p + resume): {seconds * 1e3:.2f} ms")
        assert seconds < 0.05


GUEST_S = """
    .text
    .global _start
_start:
    ldr x0, ={mair:#x}
    msr mair_el1, x0
    ldr x0, ={tcr:#x}
    msr tcr_el1, x0
    ldr x0, =l1_t0
    msr ttbr0_el1, x0
    ldr x0, =l1_t1
    msr ttbr1_el1, x0
    isb
    tlbi vmalle1
    dsb sy
    isb
    mrs x0, sctlr_el1
    orr x0, x0, #1
    msr sctlr_el1, x0
    isb
    ldr x1, =0x40200000
    ldr x2, [x1]
1:  wfi
    b 1b

    .data
    .balign 4096
l1_t0:  .quad 0, l2_ram + 3
        .fill 510, 8, 0
l2_ram: .quad 0x40000701, l3 + 3, 0x00600000406006C5
        .fill 509, 8, 0
l3:     .quad 0x41000F4B, 0x006000000900040F, 0x41002303, 0, 0, 0x41005417
        .fill 506, 8, 0
l1_t1:  .quad 0x40000411
        .fill 511, 8, 0
"""


def build_guest(tmp: Path) -> Path:
    assert CROSS_CC is not None
    tcr = (25 | (1 << 8) | (1 << 10) | (3 << 12) | (25 << 16) | (1 << 24) | (1 << 26) | (3 << 28)
           | (0b10 << 30) | (0b100 << 32))
    src = tmp / "guest.S"
    src.write_text(GUEST_S.format(mair=0x0C0804FF00BB44FF, tcr=tcr))
    elf = tmp / "guest.elf"
    subprocess.run([CROSS_CC, "-nostdlib", "-static", "-no-pie", "-Wl,-Ttext=0x40080000",
                    "-Wl,--build-id=none", "-o", str(elf), str(src)], check=True)
    return elf


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@needs_qemu
@pytest.mark.skipif(CROSS_CC is None, reason="aarch64-linux-gnu-gcc is not installed")
def test_qemu_pagewalk_matches_gva2gpa(tmp_path: Path) -> None:
    """Three sources on one set of tables: the walker (registers + RAM via the gdbstub),
    QEMU's own ``gva2gpa``, and the descriptors as written in GUEST_S."""
    elf = build_guest(tmp_path)
    with qemu("-kernel", str(elf)) as (stub, qmp):
        stub.handshake()
        wait_for(lambda: read_registers(stub).mmu_on)
        with stub.stopped():
            regs = read_registers(stub)
            walker = PageWalker(lambda pa, n: stub.read_memory(pa, n), Regime.from_snapshot(regs))
            leaves = list(walker.iter_mappings())
            probes = {t.va + 0x10: walker.walk(t.va + 0x10) for t in leaves}
            gva2gpa = {va: str(qmp.cmd("human-monitor-command", **{"command-line": f"gva2gpa {va:#x}"}))
                       for va in probes}
    summary = [(t.va, t.pa, t.level, t.cache, t.el1, t.el0, t.af) for t in leaves]
    assert summary == [
        (0x4000_0000, 0x4000_0000, 2, "copyback", "rw", "none", True),
        (0x4020_0000, 0x4100_0000, 3, "writethru", "rw", "rw", True),
        (0x4020_1000, 0x0900_0000, 3, "inhibit", "rw", "none", True),
        (0x4020_2000, 0x4100_2000, 3, "copyback", "rw", "none", False),
        (0x4020_5000, 0x4100_5000, 3, "posted", "rw", "none", True),
        (0x4040_0000, 0x4060_0000, 2, "writecombine", "ro", "ro", True),
        ((1 << 64) - (1 << 39), 0x4000_0000, 1, "copyback", "rw", "none", True),
    ]
    for leaf in leaves:
        va = leaf.va + 0x10
        assert gva2gpa[va].strip() == f"gpa: {leaf.pa + 0x10:#x}", (hex(va), gva2gpa[va])
        result = probes[va]
        if leaf.af:
            assert isinstance(result, Translation) and result.pa == leaf.pa + 0x10
        else:
            assert isinstance(result, Fault) and result.kind == "access-flag"   # gva2gpa ignores AF
    assert regs.tcr_el1 >> 32 & 7 == 0b100 and walker.regime.ttbr0.pa_bits == 44
    assert os.path.exists(elf)
