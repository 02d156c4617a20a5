"""The ``:`` harness commands of ``iomem exec`` and the console: lines for the harness, not the
guest, so a script can check a claim without taking the guest's word.

Every command answers with :class:`~harness.link.protocol.Reply` objects in the guest's
reply shape (``ok key=value...`` / ``err kIOReturnX by=harness why``); a bad argument is an
``err`` reply, never an exception. Only a guest that is really lost (crash, hang) raises.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.addresses import PhysAddr
from harness.errors import IomemError
from harness.link.protocol import MAX_DATA, Reply, parse_number
from harness.oracle.pagewalk import Fault, Identity, PagewalkError, Translation
from harness.oracle.translation import perm_of
from harness.qemu.ram import RamOutOfRange
from harness.tools.lines import HarnessCommand, local_reply, quote
from harness.tools.verify import verify

if TYPE_CHECKING:
    from harness.guest import Guest

USAGE = {
    "verify": ":verify                every host oracle on the guest's state: ok, or err with what disagrees",
    "phys-read": ":phys-read PA LEN      guest RAM read by the host (LEN <= 4096)",
    "phys-write": ":phys-write PA HEX     write guest RAM from the host, the guest paused around it",
    "raw": ":raw HEX               send bytes to the serial line as they are; shows the replies they provoke",
    "walk": ":walk VA               the host page walker's translation of VA",
    "regs": ":regs                  system registers read through QEMU's gdbstub",
    "help": ":help [COMMAND]        this list",
}


class BadCommand(Exception):
    """A ``:`` line the harness refuses (becomes an ``err`` reply)."""

    def __init__(self, error: str, why: str) -> None:
        super().__init__(why)
        self.error = error
        self.why = why


def _arity(cmd: HarnessCommand, count: int) -> None:
    if len(cmd.args) != count:
        raise BadCommand("kIOReturnBadArgument", f"usage: {USAGE[cmd.name].split('  ')[0].strip()}")


def _number(text: str) -> int:
    try:
        return parse_number(text)
    except ValueError:
        raise BadCommand("kIOReturnBadArgument", f"bad number {quote(text)}") from None


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise BadCommand("kIOReturnBadArgument", f"bad hex {quote(text)}") from None


class Commands:
    """The ``:`` commands over one booted guest."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self._table: dict[str, Callable[[HarnessCommand], list[Reply]]] = {
            "verify": self.verify,
            "phys-read": self.phys_read,
            "phys-write": self.phys_write,
            "raw": self.raw,
            "walk": self.walk,
            "regs": self.regs,
            "help": self.help,
        }

    def run(self, cmd: HarnessCommand) -> list[Reply]:
        """The replies to one command (more than one only for ``:raw``)."""
        handler = self._table.get(cmd.name)
        try:
            if handler is None:
                raise BadCommand(
                    "kIOReturnUnsupported", f"no harness command {quote(cmd.name)} (:help lists them)"
                )
            return handler(cmd)
        except BadCommand as exc:
            return [local_reply(exc.error, exc.why)]

    # ------------------------------------------------------------ commands
    def help(self, cmd: HarnessCommand) -> list[Reply]:
        if cmd.args:
            _arity(cmd, 1)
            name = cmd.args[0].lstrip(":")
            if name not in USAGE:
                raise BadCommand("kIOReturnUnsupported", f"no harness command {quote(name)}")
            return [local_reply(None, USAGE[name], command=name)]
        return [local_reply(None, "", commands=",".join(USAGE))]

    def verify(self, cmd: HarnessCommand) -> list[Reply]:
        _arity(cmd, 0)
        verdict = verify(self.guest)
        counts = {k: v for k, v in verdict.counts.items()}
        if verdict.ok:
            return [
                local_reply(
                    None,
                    "",
                    oracles="heap,pagewalk,maps,descriptors"
                    + (",smmu" if self.guest.profile.iommu != "none" else ""),
                    **counts,
                )
            ]
        shown = "; ".join(str(f) for f in verdict.findings[:4])
        return [
            local_reply(
                "kIOReturnInternalError",
                shown,
                oracle=",".join(verdict.oracles()),
                problems=len(verdict.findings),
            )
        ]

    def phys_read(self, cmd: HarnessCommand) -> list[Reply]:
        _arity(cmd, 2)
        pa, length = _number(cmd.args[0]), _number(cmd.args[1])
        if length > MAX_DATA:
            raise BadCommand("kIOReturnMessageTooLarge", f"at most {MAX_DATA} bytes a read")
        try:
            data = self.guest.ram.read(PhysAddr(pa), length)
        except RamOutOfRange as exc:
            raise BadCommand("kIOReturnNotReadable", exc.message) from None
        return [
            local_reply(None, "", pa=f"{pa:#x}", len=length, crc32=f"{zlib.crc32(data):#x}", data=data.hex())
        ]

    def phys_write(self, cmd: HarnessCommand) -> list[Reply]:
        _arity(cmd, 2)
        pa, data = _number(cmd.args[0]), _hex(cmd.args[1])
        try:
            self.poke_ram(pa, data)
        except RamOutOfRange as exc:
            raise BadCommand("kIOReturnNotWritable", exc.message) from None
        return [local_reply(None, "", pa=f"{pa:#x}", len=len(data), crc32=f"{zlib.crc32(data):#x}")]

    def poke_ram(self, pa: int, data: bytes) -> None:
        """Write guest RAM from the host with the vCPU stopped around the write."""
        qmp = self.guest.machine.qmp
        if qmp is None:
            raise IomemError("no QMP connection to pause the guest")
        qmp.execute("stop")
        try:
            self.guest.ram.write(PhysAddr(pa), data)
        finally:
            qmp.execute("cont")

    def raw(self, cmd: HarnessCommand) -> list[Reply]:
        if not cmd.args:
            raise BadCommand("kIOReturnBadArgument", "usage: :raw HEX")
        data = _hex("".join(cmd.args))
        console = self.guest.console
        if console is None:
            raise IomemError("the guest is not booted")
        provoked, _ = console.exchange_raw(data)
        return [*provoked, local_reply(None, "", sent=len(data), replies=len(provoked))]

    def walk(self, cmd: HarnessCommand) -> list[Reply]:
        _arity(cmd, 1)
        va = _number(cmd.args[0])
        try:
            result = self.guest.walker().walk(va)
        except (PagewalkError, RamOutOfRange) as exc:
            raise BadCommand("kIOReturnInternalError", f"the tables are corrupt: {exc.message}") from None
        if isinstance(result, Translation):
            return [
                local_reply(
                    None,
                    "",
                    va=f"{va:#x}",
                    pa=f"{result.pa:#x}",
                    attr=f"{result.mair_byte:#x}",
                    cache=result.cache or "none",
                    perm=perm_of(result),
                    el0=result.el0,
                    level=result.level,
                    size=f"{result.size:#x}",
                    descriptor=f"{result.descriptor:#x}",
                    descriptor_pa=f"{result.descriptor_pa:#x}",
                )
            ]
        if isinstance(result, Identity):
            return [local_reply(None, "", va=f"{va:#x}", pa=f"{result.pa:#x}", mmu="off")]
        if not isinstance(result, Fault):  # pragma: no cover - WalkResult has three kinds
            raise IomemError(f"walker answered {result!r}")
        return [
            local_reply("kIOReturnNotReadable", result.reason, fault=result.kind.value, level=result.level)
        ]

    def regs(self, cmd: HarnessCommand) -> list[Reply]:
        _arity(cmd, 0)
        values = self.guest.registers().as_dict()
        return [local_reply(None, "", **{k: f"{v:#x}" for k, v in values.items()})]
