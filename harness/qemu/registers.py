"""CPU and system registers as QEMU sees them, read through the gdbstub: a source the guest
does not control (the guest's own ``info`` reply is a claim; this is the check).

One call, :func:`read_registers`, gives a typed :class:`SystemRegisters` snapshot. It works
whether the VM is running or paused: it halts a running VM with ctrl-C, reads, and resumes
it (unless ``resume=False``); a VM the harness paused (QMP ``stop``) stays paused and QMP
``cont`` resumes it afterwards. Reads of a running VCPU would race with it, so there is no
"read without stopping" mode.

Register names differ between QEMU versions and CPU models (QEMU 7.2 calls SCTLR_EL1
``SCTLR`` and VBAR_EL1 ``VBAR``); :data:`SYSREG_NAMES` lists the accepted spellings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from harness.qemu.gdbstub import GdbStub, GdbStubError

SYSREG_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ttbr0_el1": ("TTBR0_EL1",),
        "ttbr1_el1": ("TTBR1_EL1",),
        "tcr_el1": ("TCR_EL1",),
        "mair_el1": ("MAIR_EL1",),
        "sctlr_el1": ("SCTLR_EL1", "SCTLR"),
        "esr_el1": ("ESR_EL1",),
        "far_el1": ("FAR_EL1",),
        "elr_el1": ("ELR_EL1",),
        "vbar_el1": ("VBAR_EL1", "VBAR"),
        "spsr_el1": ("SPSR_EL1",),
        "par_el1": ("PAR_EL1",),
        "sp_el0": ("SP_EL0",),
        "sp_el1": ("SP_EL1",),
        "id_aa64mmfr0_el1": ("ID_AA64MMFR0_EL1",),
    }
)
"""Snapshot field -> gdbstub register names to try, in order."""


class MissingRegister(GdbStubError):
    """The gdbstub's target description has none of the names for a register we need."""


@dataclass(frozen=True, slots=True)
class SystemRegisters:
    """One consistent snapshot (the VM was stopped while it was read)."""

    ttbr0_el1: int
    ttbr1_el1: int
    tcr_el1: int
    mair_el1: int
    sctlr_el1: int
    esr_el1: int
    far_el1: int
    elr_el1: int
    vbar_el1: int
    spsr_el1: int
    par_el1: int
    sp_el0: int
    sp_el1: int
    id_aa64mmfr0_el1: int
    pc: int
    sp: int
    cpsr: int
    x: tuple[int, ...]  # x0..x30

    @property
    def current_el(self) -> int:
        return (self.cpsr >> 2) & 3

    @property
    def mmu_on(self) -> bool:
        return bool(self.sctlr_el1 & 1)

    def as_dict(self) -> dict[str, int]:
        """Flat name -> value (x registers as x0..x30), e.g. for ``GuestCrashed.registers``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "x"}
        out.update({f"x{i}": v for i, v in enumerate(self.x)})
        return out


def _resolve(stub: GdbStub, field: str) -> str:
    for name in SYSREG_NAMES[field]:
        if name.lower() in stub.registers:
            return name
    raise MissingRegister(f"gdbstub has no register for {field} (tried {', '.join(SYSREG_NAMES[field])})")


def read_registers(stub: GdbStub, *, resume: bool = True) -> SystemRegisters:
    """Snapshot the registers. Halts a running VM for the duration and, if it halted it,
    resumes it afterwards (``resume=False`` leaves it stopped). Call ``stub.handshake()`` once
    before the first snapshot."""
    if not stub.registers:
        raise GdbStubError("no register map: call GdbStub.handshake() first")
    names = {field: _resolve(stub, field) for field in SYSREG_NAMES}
    with stub.stopped(resume=resume):
        general = stub.read_general()
        sysregs = {field: stub.read_register(name) for field, name in names.items()}
    missing = [n for n in ("pc", "sp", "cpsr", *(f"x{i}" for i in range(31))) if n not in general]
    if missing:
        raise MissingRegister(f"the 'g' packet lacks {', '.join(missing)}")
    return SystemRegisters(
        pc=general["pc"],
        sp=general["sp"],
        cpsr=general["cpsr"],
        x=tuple(general[f"x{i}"] for i in range(31)),
        **sysregs,
    )


def time_snapshot(stub: GdbStub, *, count: int = 50, resume: bool = True) -> float:
    """Mean seconds per :func:`read_registers` call (for docs and ``make bench``)."""
    start = time.perf_counter()
    for _ in range(count):
        read_registers(stub, resume=resume)
    return (time.perf_counter() - start) / count
