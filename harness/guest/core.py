"""What tests and the CLI use: a booted guest (QEMU + console + independent eyes) behind
typed calls, one per protocol verb. The memory and translation verbs are here; the heap and
object verbs come from :class:`~harness.guest.heap.HeapVerbs`, the descriptor verbs from
:class:`~harness.guest.descriptors.Descriptors`.

Every call returns parsed values; an ``err`` reply raises :class:`GuestError` unless the
``*_reply`` form is used to look at the error itself.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.errors import (
    BuildIdMismatch,
    GuestCrashed,
    GuestError,
    GuestHung,
    IomemError,
    QemuAborted,
    QemuKilled,
    StateError,
)
from harness.guest import warm
from harness.guest.heap import HeapVerbs
from harness.image.build import ensure_firmware
from harness.image.elf import Firmware
from harness.link.console import Console
from harness.link.describe import Description
from harness.link.describe import from_elf as describe_elf
from harness.link.protocol import PROTO_VERSION, Banner, Reply
from harness.oracle import translation
from harness.oracle.pagewalk import PageWalker, Regime, WalkResult
from harness.qemu.gdbstub import GdbStub
from harness.qemu.machine import Machine, Runstate, qemu_fatal_lines
from harness.qemu.profile import Profile
from harness.qemu.ram import SharedRam
from harness.qemu.registers import SystemRegisters, read_registers

BOOT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Info:
    page: int
    granule: int
    ram: tuple[int, int]
    pa_bits: int
    ttbr0: int
    ttbr1: int
    tcr: int
    mair: int
    sctlr: int
    heap: tuple[int, int]
    scratch: tuple[int, int]
    reply: Reply


_FIRMWARES: dict[tuple[str, int, int, int], Firmware] = {}


def _firmware(path: Path) -> Firmware:
    """One :class:`Firmware` per version of an ELF file (path, inode, size, mtime): its
    build-id is read once per process, not for every guest (a rebuilt file is a new key)."""
    try:
        st = path.stat()
    except OSError:
        return Firmware(path)  # which says what is wrong with it
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    elf = _FIRMWARES.get(key)
    if elf is None:
        if len(_FIRMWARES) > 32:
            _FIRMWARES.clear()
        elf = _FIRMWARES[key] = Firmware(path)
    return elf


class Guest(HeapVerbs):
    """A fresh guest for one profile. Use as a context manager: it is always reaped."""

    def __init__(
        self,
        profile: Profile,
        artifacts: Path | None = None,
        *,
        firmware: Path | None = None,
        extra_args: tuple[str, ...] = (),
        check_build_id: bool = True,
        uart_input: bool = False,
    ) -> None:
        self.profile = profile
        self.artifacts = Path(artifacts) if artifacts else Path(tempfile.mkdtemp(prefix="iomem-"))
        self.elf = _firmware(Path(firmware) if firmware is not None else ensure_firmware(profile))
        self.machine = Machine(
            profile, self.elf.path, self.artifacts, extra_args=extra_args, uart_input=uart_input
        )
        self.console: Console | None = None
        self.banner: Banner | None = None
        self._check_build_id = check_build_id
        self.boot_seconds = 0.0
        self._description: Description | None = None
        self._closed = False
        self.warm = False  # booted by rebooting a parked QEMU in place (harness/guest/warm.py)
        self.parked = False  # closed by parking its QEMU for the next guest

    # ------------------------------------------------------------ lifecycle
    def boot(self) -> Self:
        """Start QEMU paused, attach everything, ``cont``, wait for the banner, turn echo off."""

        t0 = time.monotonic()
        parked = (
            warm.take(self.profile, self.machine.firmware) if self._may_take_a_parked_machine() else None
        )
        if parked is not None:
            self._reboot_parked(parked)
        else:
            self.machine.start()
            if self.machine.serial is None:
                raise StateError("the machine started without a serial line")
            log = self.artifacts / "console.log"
            self.console = Console(self.machine.serial, log, diagnose=self._diagnose)
            self.machine.cont()
        if self.console is None:
            raise StateError("the guest has no console after boot")
        self.banner = self.console.wait_banner(BOOT_TIMEOUT)
        self.boot_seconds = time.monotonic() - t0
        if self.banner.proto != PROTO_VERSION:
            raise IomemError(f"guest speaks protocol {self.banner.proto}, harness {PROTO_VERSION}")
        if self._check_build_id and self.banner.build != self.elf.build_id:
            raise BuildIdMismatch(
                f"banner build-id {self.banner.build} is not the booted ELF's {self.elf.build_id} "
                f"({self.elf.path})",
                console_tail=self.console.tail(),
            )
        self.ok("echo off")
        return self

    def _may_take_a_parked_machine(self) -> bool:
        m = self.machine
        return (
            warm.enabled()
            and m.state is Runstate.CREATED
            and m.die_with_parent
            and not m.extra_args
            and not m.uart_input
        )

    def _reboot_parked(self, machine: Machine) -> None:
        """Boot on a parked machine (harness/guest/warm.py): this guest's console log is its
        own; QEMU's command line, output and QMP trace stay in the directory it started in."""
        try:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            (self.artifacts / "qemu.txt").write_text(
                f"QEMU pid {machine.pid}, rebooted in place (system_reset) for this guest; "
                f"its command line, output and QMP trace: {machine.artifacts}\n"
            )
        except OSError:
            machine.shutdown(graceful_timeout=0)
            raise
        self.machine = machine
        if machine.serial is None:
            raise StateError("the parked machine has no serial line")
        self.console = Console(machine.serial, self.artifacts / "console.log", diagnose=self._diagnose)
        self.warm = True
        machine.reboot_in_place()

    def _parkable(self) -> bool:
        """Whether nothing of this guest can leak into the next one (harness/guest/warm.py)."""
        m, console = self.machine, self.console
        if not warm.has_room(m) or console is None or self.banner is None or console.failure is not None:
            return False
        if m.gdbstub is not None and m.gdbstub.breakpoints:  # they would outlive the reset
            return False
        if console.touched_devices or m.extra_args or m.uart_input or not m.die_with_parent:
            return False
        if m.state is not Runstate.RUNNING or not m.alive() or not m.said_nothing():
            return False
        try:
            return console.request("hello", timeout=1.0).ok and console.quiet()
        except IomemError:
            return False

    def _begin_reboot(self) -> bool:
        """The parked machine reboots while the harness goes on (the next guest waits for it)."""
        try:
            self.machine.start_reboot()
        except IomemError:
            return False
        return True

    def close(self, *, reuse: bool = False) -> int | None:
        """Power the guest off (``quit``) if it still answers, then reap QEMU. With ``reuse``
        (a test that passed) a clean guest's QEMU is parked instead, for the next guest of the
        same profile to reboot in place (harness/guest/warm.py); then None is returned."""
        if self._closed:
            return self.machine.exit_status()
        self._closed = True
        if reuse and self._parkable() and self._begin_reboot() and warm.park(self.machine):
            self.parked = True
            if self.console is not None:
                self.console.close()
            return None
        graceful = 0.0  # a guest that panicked or fell silent is not asked, nor waited for
        console = self.console
        asking = console is not None and console.failure is None and self.machine.state is Runstate.RUNNING
        if console is not None and asking and self.machine.alive():
            with contextlib.suppress(IomemError):
                console.request("quit", timeout=1.0)
                graceful = 1.0  # PSCI SYSTEM_OFF: QEMU exits by itself
        status = self.machine.shutdown(graceful_timeout=graceful)
        if self.console is not None:
            self.console.close()
        return status

    def __enter__(self) -> Self:
        try:
            return self.boot()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(reuse=exc_type is None)

    def _diagnose(self, what: str, command: str | None) -> IomemError:
        """Tell a crashed guest from a hung one, from QEMU's side."""
        tail = self.console.tail() if self.console else ""
        runstate = self.machine.qemu_status()
        if runstate == "gone":
            status = self.machine.wait_exit(2.0)  # the socket can close before the exit is reaped
            how = f"status {status}"
            if status is not None and status < 0:
                with contextlib.suppress(ValueError):
                    how += f" ({signal.Signals(-status).name})"
            said = qemu_fatal_lines(self.machine.stderr_text())
            crashed = GuestCrashed
            if status == -signal.SIGKILL:
                crashed = QemuKilled
            elif status == -signal.SIGABRT or said or "hardware error" in self.machine.stderr_text():
                crashed = QemuAborted
            return crashed(
                f"{what}: QEMU exited with {how}" + (": " + "; ".join(said) if said else ""),
                reason="qemu exited",
                command=command,
                console_tail=tail + "\n" + self.machine.stderr_text(),
            )
        if runstate in ("shutdown", "guest-panicked", "internal-error", "io-error"):
            return GuestCrashed(
                f"{what}: QEMU runstate is {runstate}", reason=runstate, command=command, console_tail=tail
            )
        pc = self.machine.program_counter()
        where = f" at {self.elf.symbolize(pc)} (pc={pc:#x})" if pc is not None else ""
        return GuestHung(
            f"{what}: the guest is {runstate} but silent{where}",
            command=command,
            console_tail=tail,
            pc=pc,
            runstate=runstate,
        )

    # ------------------------------------------------------------ raw requests
    @property
    def ram(self) -> SharedRam:
        if self.machine.ram is None:
            raise StateError("guest RAM is not mapped: the machine is not started")
        return self.machine.ram

    def request(self, line: str, *, timeout: float | None = None) -> Reply:
        """One request; returns the reply whatever its status. Reply keys that the firmware's
        verb table does not declare for the verb are recorded in the claims ledger."""
        if self.console is None:
            raise IomemError("guest not booted", command=line)
        reply = self.console.request(line, timeout=timeout)
        self._record_stated(line, reply)
        return reply

    def pipeline(self, lines: Sequence[str], *, timeout: float | None = None) -> list[Reply]:
        """Many independent requests without a round trip each (``Console.pipeline``): the
        replies, in order, whatever their status, each recorded in the ledger as
        :meth:`request` does. Only for requests that do not depend on an earlier reply."""
        if self.console is None:
            raise IomemError("guest not booted", command=lines[0] if lines else None)
        replies = self.console.pipeline(lines, timeout=timeout)
        for line, reply in zip(lines, replies, strict=True):
            self._record_stated(line, reply)
        return replies

    def _record_stated(self, line: str, reply: Reply) -> None:
        verb = self.description.verb_of(line)
        if verb is not None and reply.keys:
            described = self.description.verbs[verb]
            for key in reply.keys:
                declared = described.reply_key(key, error=not reply.ok)
                name = key if declared is None else declared.name
                name = name if reply.ok else f"err.{name}"
                if declared is None:
                    ledger.undeclared(verb, name)
                else:
                    ledger.stated(verb, name)

    @property
    def description(self) -> Description:
        """The protocol's description: the booted ELF's verb table (harness.link.describe),
        looked up once per guest (not a path resolution and a stat per request)."""
        if self._description is None:
            self._description = describe_elf(self.elf.path)
        return self._description

    def ok(self, line: str, *, timeout: float | None = None) -> Reply:
        """One request that must succeed; an ``err`` raises :class:`GuestError`."""
        reply = self.request(line, timeout=timeout)
        if not reply.ok:
            raise GuestError(
                f"guest answered {reply.error} {reply.text}".rstrip(),
                error=reply.error or "",
                command=line,
                console_tail=self.console.tail() if self.console else "",
            )
        return reply

    def err(self, line: str, error: str | None = None) -> Reply:
        """One request that must fail (with ``error`` if given); success raises."""
        reply = self.request(line)
        if error is not None and reply.error == error and (verb := self.description.verb_of(line)):
            ledger.checked(verb, ledger.ERROR, "spec")  # the code the spec's table names
        if reply.ok or (error is not None and reply.error != error):
            got = "ok" if reply.ok else reply.error
            raise GuestError(
                f"expected {error or 'an error'}, guest answered {got}: {reply.line}",
                error=reply.error or "",
                command=line,
                console_tail=self.console.tail() if self.console else "",
            )
        return reply

    # ------------------------------------------------------------ typed verbs
    def info(self) -> Info:
        r = self.ok("info")
        return Info(
            page=r.number("page"),
            granule=r.number("granule"),
            ram=r.span("ram"),
            pa_bits=r.number("pa_bits"),
            ttbr0=r.number("ttbr0"),
            ttbr1=r.number("ttbr1"),
            tcr=r.number("tcr"),
            mair=r.number("mair"),
            sctlr=r.number("sctlr"),
            heap=r.span("heap"),
            scratch=r.span("scratch"),
            reply=r,
        )

    def pagesize(self) -> int:
        return self.ok("pagesize").number("page")

    def peek(self, va: VirtAddr, width: int = 8) -> int:
        return self.ok(f"peek {va:#x} {width}").number("value")

    def poke(self, va: VirtAddr, value: int, width: int = 8) -> None:
        self.ok(f"poke {va:#x} {value:#x} {width}")

    def read(self, va: VirtAddr, length: int) -> bytes:
        """Read through the guest; the reply's CRC is checked against its data."""
        r = self.ok(f"read {va:#x} {length}")
        data = bytes.fromhex(r.value("data")) if length else b""
        if zlib.crc32(data) != r.number("crc32") or len(data) != length:
            raise IomemError(
                f"read reply is inconsistent: {len(data)} bytes, crc32 {r.value('crc32')}",
                command=f"read {va:#x} {length}",
            )
        return data

    def write(self, va: VirtAddr, data: bytes) -> int:
        """Write through the guest (with a CRC the guest checks); returns the guest's CRC."""
        return self.ok(f"write {va:#x} {data.hex()} crc32={zlib.crc32(data):#x}").number("crc32")

    def fill(self, va: VirtAddr, length: int, byte: int) -> int:
        return self.ok(f"fill {va:#x} {length} {byte:#x}").number("crc32")

    def crc(self, va: VirtAddr, length: int) -> int:
        return self.ok(f"crc {va:#x} {length}").number("crc32")

    def scratch(self) -> tuple[VirtAddr, int]:
        base, length = self.info().scratch
        return VirtAddr(base), length

    def phys(self, va: VirtAddr) -> PhysAddr:
        """The PA of an identity-mapped RAM VA (RAM is mapped VA == PA; checked by F2's oracles)."""
        return PhysAddr(int(va))

    # ------------------------------------------------------------ independent eyes
    @property
    def gdb(self) -> GdbStub:
        """QEMU's gdbstub on this guest (a source the guest does not control)."""
        if self.machine.gdbstub is None:
            if self.machine.gdb is None:
                raise IomemError("this machine was started without a gdbstub")
            stub = GdbStub(self.machine.gdb)
            stub.handshake()
            self.machine.gdbstub = stub  # one session per connection, whichever guest it serves
        return self.machine.gdbstub

    def registers(self) -> SystemRegisters:
        """A register snapshot read by QEMU (the CPU is halted for the read, then resumed)."""
        return read_registers(self.gdb)

    def walker(self) -> PageWalker:
        """A host page-table walker over the guest's current translation regime."""
        regime = Regime.from_snapshot(self.registers())
        ram = self.ram
        return PageWalker(lambda pa, size: ram.read(PhysAddr(pa), size), regime)

    def translate(self, va: VirtAddr, *, write: bool = False) -> translation.GuestTranslation:
        """The guest's own translation (AT S1E1R, or S1E1W with ``write``)."""
        reply = self.request(f"translate {va:#x}" + (" w" if write else ""))
        return translation.GuestTranslation.from_reply(int(va), reply)

    def check_translation(self, va: VirtAddr, walker: PageWalker | None = None) -> WalkResult:
        """Three-way check of one VA; raises OracleMismatch naming the source that diverged."""
        walker = walker or self.walker()
        return translation.check(
            self.translate(va),
            walker.walk(int(va)),
            self.machine.gva2gpa(int(va)),
            command=f"translate {va:#x}",
        )
