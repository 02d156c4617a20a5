"""One exception family for everything the harness can report.

Every error carries what it was doing (the command or request) and, where a guest was
involved, the tail of its console, so a failure report is readable on its own. Nothing in
``harness/`` raises outside this tree (``tests/host/test_errors.py`` holds it to this
drawing); the two members that also derive from a built-in (``NotFound``, ``InvalidInput``)
do so only so that ``except KeyError``/``except ValueError`` callers keep working.

The whole tree (classes defined elsewhere are marked with their module)::

    IomemError
    ├── ProfileError                a machine profile is malformed (file, field, reason)
    ├── BuildError                  ``make firmware`` / ``make host-lib`` failed
    ├── LaunchError                 QEMU could not start, or died before the guest was up
    ├── StateError                  a machine/guest used in the wrong runstate
    ├── ProtocolError               the guest broke the serial protocol
    ├── GuestCrashed                ``! panic``, or QEMU stopped underneath a request
    ├── GuestHung                   QEMU alive, guest silent (with the PC, if known)
    ├── BuildIdMismatch             the banner's build-id is not the booted ELF's
    ├── GuestError                  a request answered ``err`` where ``ok`` was required
    ├── OracleMismatch              independent sources disagree (names them and their claims)
    ├── ModelError                  a reference model was driven inconsistently (a test bug)
    ├── NotFound (also KeyError)    no such symbol, section, DWARF type, reply key...
    ├── InvalidInput (also ValueError)  a value handed to the harness is malformed
    │   └── TraceFormatError        oracle/qemu_trace.py: a traced SMMU event in an unknown format
    ├── QmpError                    qemu/qmp.py: QMP failed or answered an error
    ├── GdbStubError                qemu/gdbstub.py: the gdbstub link failed
    │   ├── GdbTimeout              qemu/gdbstub.py: no answer in time
    │   └── MissingRegister         qemu/registers.py: QEMU does not expose a register
    ├── RamOutOfRange               qemu/ram.py: a host access outside guest RAM
    ├── EduClamped                  guest/dma.py: QEMU's edu masked a DMA address (stdout warning)
    ├── SmmuError                   oracle/smmu.py: the SMMU walker cannot proceed
    │   └── CorruptSmmuTable        oracle/smmu.py: an STE/CD/stream table the guest must never write
    └── PagewalkError               oracle/pagewalk.py: the walker cannot proceed
        ├── RegimeError             oracle/pagewalk.py: reserved/unsupported register setting
        └── CorruptTable            oracle/pagewalk.py: a descriptor the guest must never write
"""

from __future__ import annotations

from collections.abc import Sequence


class IomemError(Exception):
    """Base of every harness error.

    ``command``: the request line, QMP command or command line being run;
    ``console_tail``: the last lines the guest printed, newest last.
    """

    def __init__(self, message: str, *, command: str | None = None, console_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.command = command
        self.console_tail = console_tail

    def __str__(self) -> str:
        parts = [self.message]
        if self.command:
            parts.append(f"  while running: {self.command}")
        if self.console_tail:
            tail = "\n".join("    | " + line for line in self.console_tail.splitlines())
            parts.append("  console tail:\n" + tail)
        return "\n".join(parts)


class ProfileError(IomemError):
    """A machine profile is malformed: names the file, the field and the reason."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        super().__init__(f"{path}: field '{field}': {reason}")
        self.path = path
        self.field = field
        self.reason = reason


class BuildError(IomemError):
    """The firmware could not be built."""


class LaunchError(IomemError):
    """QEMU could not be started, or died before the guest was up."""

    def __init__(self, message: str, *, cmdline: Sequence[str], stderr: str, returncode: int | None) -> None:
        super().__init__(message, command=" ".join(cmdline))
        self.cmdline = list(cmdline)
        self.stderr = stderr
        self.returncode = returncode

    def __str__(self) -> str:
        text = super().__str__()
        if self.returncode is not None:
            text += f"\n  QEMU exit status: {self.returncode}"
        if self.stderr.strip():
            text += "\n  QEMU stderr:\n" + "\n".join("    " + s for s in self.stderr.rstrip().splitlines())
        return text


class StateError(IomemError):
    """An operation was asked of a machine in the wrong runstate."""


class ProtocolError(IomemError):
    """The guest's reply broke the serial protocol (tag mismatch, garbage, second banner...)."""


class GuestCrashed(IomemError):
    """The guest reported ``! panic`` or QEMU stopped underneath a request."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        command: str | None = None,
        console_tail: str = "",
        registers: dict[str, int] | None = None,
    ) -> None:
        super().__init__(message, command=command, console_tail=console_tail)
        self.reason = reason
        self.registers = dict(registers or {})


class GuestHung(IomemError):
    """The guest stopped answering while QEMU is alive; carries where the CPU was, if known."""

    def __init__(
        self,
        message: str,
        *,
        command: str | None = None,
        console_tail: str = "",
        pc: int | None = None,
        runstate: str | None = None,
    ) -> None:
        super().__init__(message, command=command, console_tail=console_tail)
        self.pc = pc
        self.runstate = runstate


class BuildIdMismatch(IomemError):
    """The banner's build-id is not the one of the ELF that was booted."""


class GuestError(IomemError):
    """A request was answered ``err``: carries the error name and the reply."""

    def __init__(
        self, message: str, *, error: str, command: str | None = None, console_tail: str = ""
    ) -> None:
        super().__init__(message, command=command, console_tail=console_tail)
        self.error = error


class OracleMismatch(IomemError):
    """Independent sources disagree: names the sources and what they said."""

    def __init__(self, what: str, claims: dict[str, object], *, command: str | None = None) -> None:
        detail = "; ".join(f"{source}: {value!r}" for source, value in claims.items())
        super().__init__(f"{what}: sources disagree ({detail})", command=command)
        self.what = what
        self.claims = dict(claims)


class ModelError(IomemError):
    """A reference model (``harness.models``) was asked something inconsistent: a bug in the
    test driving it, not in the guest."""


class NotFound(IomemError, KeyError):
    """A name is not there: an ELF symbol or section, a DWARF struct, member or enum, a reply
    key. Also a ``KeyError``."""


class InvalidInput(IomemError, ValueError):
    """A value handed to the harness is malformed or out of range: a request line, a protocol
    number, an address. Also a ``ValueError``."""
