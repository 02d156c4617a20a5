"""What tests and the CLI use: a booted guest (QEMU + console + independent eyes) behind
typed calls, one per protocol verb.

Every call returns parsed values; an ``err`` reply raises :class:`GuestError` unless the
``*_reply`` form is used to look at the error itself.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.addresses import PhysAddr, VirtAddr
from harness.build import ensure_firmware
from harness.console import Console
from harness.elf import Firmware
from harness.errors import BuildIdMismatch, GuestCrashed, GuestError, GuestHung, IomemError
from harness.gdbstub import GdbStub
from harness.machine import Machine, Runstate, qemu_fatal_lines
from harness.memory import SharedRam
from harness.oracle import heap as heap_oracle
from harness.oracle import translation
from harness.oracle.pagewalk import PageWalker, Regime, WalkResult
from harness.profile import Profile
from harness.protocol import PROTO_VERSION, Banner, Reply
from harness.registers import SystemRegisters, read_registers

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


class Guest:
    """A fresh guest for one profile. Use as a context manager: it is always reaped."""

    def __init__(
        self,
        profile: Profile,
        artifacts: Path | None = None,
        *,
        firmware: Path | None = None,
        extra_args: tuple[str, ...] = (),
        check_build_id: bool = True,
    ) -> None:
        self.profile = profile
        self.artifacts = Path(artifacts) if artifacts else Path(tempfile.mkdtemp(prefix="iomem-"))
        self.elf = Firmware(firmware if firmware is not None else ensure_firmware(profile))
        self.machine = Machine(profile, self.elf.path, self.artifacts, extra_args=extra_args)
        self.console: Console | None = None
        self.banner: Banner | None = None
        self._check_build_id = check_build_id
        self.boot_seconds = 0.0
        self._gdb: GdbStub | None = None

    # ------------------------------------------------------------ lifecycle
    def boot(self) -> Self:
        """Start QEMU paused, attach everything, ``cont``, wait for the banner, turn echo off."""

        t0 = time.monotonic()
        self.machine.start()
        assert self.machine.serial is not None
        self.console = Console(self.machine.serial, self.artifacts / "console.log", diagnose=self._diagnose)
        self.machine.cont()
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

    def close(self) -> int | None:
        """Power the guest off (``quit``) if it still answers, then reap QEMU."""
        if self.console is not None and self.machine.state is Runstate.RUNNING and self.machine.alive():
            with contextlib.suppress(IomemError):
                self.console.request("quit", timeout=1.0)
            self.machine.wait_exit(1.0)  # PSCI SYSTEM_OFF: QEMU exits by itself
        status = self.machine.shutdown(graceful_timeout=1.0)
        if self.console is not None:
            self.console.close()
        return status

    def __enter__(self) -> Self:
        try:
            return self.boot()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            return GuestCrashed(
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
        assert self.machine.ram is not None
        return self.machine.ram

    def request(self, line: str, *, timeout: float | None = None) -> Reply:
        """One request; returns the reply whatever its status."""
        if self.console is None:
            raise IomemError("guest not booted", command=line)
        return self.console.request(line, timeout=timeout)

    def ok(self, line: str, *, timeout: float | None = None) -> Reply:
        """One request that must succeed; an ``err`` raises :class:`GuestError`."""
        reply = self.request(line, timeout=timeout)
        if not reply.ok:
            assert self.console is not None
            raise GuestError(
                f"guest answered {reply.error} {reply.text}".rstrip(),
                error=reply.error or "",
                command=line,
                console_tail=self.console.tail(),
            )
        return reply

    def err(self, line: str, error: str | None = None) -> Reply:
        """One request that must fail (with ``error`` if given); success raises."""
        reply = self.request(line)
        if reply.ok or (error is not None and reply.error != error):
            assert self.console is not None
            got = "ok" if reply.ok else reply.error
            raise GuestError(
                f"expected {error or 'an error'}, guest answered {got}: {reply.line}",
                error=reply.error or "",
                command=line,
                console_tail=self.console.tail(),
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
        if self._gdb is None:
            if self.machine.gdb is None:
                raise IomemError("this machine was started without a gdbstub")
            self._gdb = GdbStub(self.machine.gdb)
            self._gdb.handshake()
        return self._gdb

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

    # ------------------------------------------------------------ H1: heap and object verbs
    # Typed calls for alloc/zalloc/free/new/newzero/delete/safedelete/obj/check/stats
    # (docs/heap-verbs.md), and the host's own reading of the allocators' state
    # (harness/oracle/heap.py) from guest RAM, the ELF's symbols and its DWARF.

    def alloc(self, size: int) -> VirtAddr:
        return VirtAddr(self.ok(f"alloc {size:#x}").number("va"))

    def zalloc(self, size: int) -> VirtAddr:
        return VirtAddr(self.ok(f"zalloc {size:#x}").number("va"))

    def free(self, va: VirtAddr | int, size: int) -> None:
        self.ok(f"free {va:#x} {size:#x}")

    def new(self, type_name: str, count: int, *, zero: bool = False) -> VirtAddr:
        verb = "newzero" if zero else "new"
        return VirtAddr(self.ok(f"{verb} {type_name} {count:#x}").number("va"))

    def delete(self, va: VirtAddr | int, type_name: str, count: int) -> tuple[int, bool]:
        """IODelete: the pointer variable after the call (unchanged), and whether it freed
        (False: a NULL pointer or an overflowing count, which IODelete ignores)."""
        r = self.ok(f"delete {va:#x} {type_name} {count:#x}")
        return r.number("ptr"), bool(r.number("freed"))

    def safedelete(self, va: VirtAddr | int, type_name: str, count: int) -> tuple[int, bool]:
        """IOSafeDeleteNULL: the pointer variable after the call, and whether it freed."""
        r = self.ok(f"safedelete {va:#x} {type_name} {count:#x}")
        return r.number("ptr"), bool(r.number("freed"))

    def stats(self) -> dict[str, int]:
        """Every ``stats`` key, parsed."""
        return {k: v for k, v in self.ok("stats").parsed_keys().items() if isinstance(v, int)}

    def check(self) -> dict[str, int]:
        """The guest's own integrity walk (``check``); an ``err`` raises GuestError."""
        return {k: v for k, v in self.ok("check").parsed_keys().items() if isinstance(v, int)}

    def obj_new(self, class_name: str) -> Reply:
        return self.ok(f"obj new {class_name}")

    def obj_retain(self, handle: int) -> Reply:
        return self.ok(f"obj retain {handle:#x}")

    def obj_release(self, handle: int) -> Reply:
        return self.ok(f"obj release {handle:#x}")

    def obj_classes(self) -> dict[str, int]:
        """Class name -> instance size, from ``obj classes``."""
        r = self.ok("obj classes")
        names, sizes = r.value("classes").split(","), r.value("sizes").split(",")
        return {name: int(size) for name, size in zip(names, sizes, strict=True)}

    @property
    def heap_layouts(self) -> heap_oracle.Layouts:
        """The allocators' struct layouts and enums, from the booted ELF's DWARF (cached)."""
        return heap_oracle.layouts_for(self.elf)

    @property
    def heap_symbols(self) -> heap_oracle.Symbols:
        """Addresses of pages_state, heap_state and object_registry (ELF symbols)."""
        return heap_oracle.Symbols(
            pages_state=self.elf.symbol("pages_state").address,
            heap_state=self.elf.symbol("heap_state").address,
            object_registry=self.elf.symbol("object_registry").address,
        )

    def heap_snapshot(self) -> heap_oracle.Snapshot:
        """The page allocator, heap and object registry decoded from guest RAM by the host.

        RAM is identity mapped (VA == PA), so the pointers stored in guest memory are PAs.
        Call between requests: the agent is idle then and the state is quiescent.
        """
        ram = self.ram
        return heap_oracle.decode(
            lambda address, length: ram.read(PhysAddr(address), length), self.heap_layouts, self.heap_symbols
        )

    def heap_verify(self) -> heap_oracle.Snapshot:
        """Decode and check every allocator invariant from the host; raises OracleMismatch."""
        return heap_oracle.verify(self.heap_snapshot(), command="(host heap decoder)")
