"""The three-way translation check: the guest's ``translate`` (AT S1E1R/W + PAR_EL1), the
host page-table walker (registers from the gdbstub, tables from guest RAM) and QEMU's own
``gva2gpa``. Any disagreement raises :class:`OracleMismatch` naming the source that diverged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness import ledger
from harness.errors import OracleMismatch
from harness.link.protocol import Reply
from harness.oracle.pagewalk import Fault, Identity, Translation, WalkResult

SOURCES = ("guest translate", "host walker", "QEMU gva2gpa")


@dataclass(frozen=True)
class GuestTranslation:
    """What the guest's ``translate`` verb said: a PA and attributes, or a fault."""

    va: int
    pa: int | None
    attr: int | None
    cache: str | None
    perm: str | None
    fault: str | None
    reply: Reply

    @classmethod
    def from_reply(cls, va: int, reply: Reply) -> GuestTranslation:
        if reply.ok:
            return cls(
                va,
                reply.number("pa"),
                reply.number("attr"),
                reply.value("cache"),
                reply.value("perm"),
                None,
                reply,
            )
        return cls(va, None, None, None, None, reply.keys.get("fault", reply.error or "?"), reply)


def perm_of(walk: Translation) -> str:
    """The EL1 permission as the guest spells it: ``ro``, ``rw``, ``rx`` (or ``rwx``, never mapped)."""
    if walk.el1 == "rw":
        return "rw" if walk.pxn else "rwx"
    return "ro" if walk.pxn else "rx"


def _odd_one_out(values: dict[str, object]) -> str:
    counts = Counter(repr(v) for v in values.values())
    if len(counts) == 2:
        minority = min(counts, key=lambda k: counts[k])
        if counts[minority] == 1:
            return next(name for name, v in values.items() if repr(v) == minority)
    return "several sources"


def check(
    guest_view: GuestTranslation, walk: WalkResult, qemu_pa: int | None, *, command: str | None = None
) -> WalkResult:
    """Compare the three answers for one VA; return the walker's (richest) result if they agree."""
    va = guest_view.va
    walker_pa = walk.pa if isinstance(walk, Translation | Identity) else None
    pas: dict[str, object] = {SOURCES[0]: guest_view.pa, SOURCES[1]: walker_pa, SOURCES[2]: qemu_pa}
    if len({repr(v) for v in pas.values()}) != 1:
        raise OracleMismatch(
            f"PA of VA {va:#x} ({_odd_one_out(pas)} diverged)",
            _describe(guest_view, walk, qemu_pa),
            command=command,
        )
    if isinstance(walk, Translation):
        if guest_view.attr is None:
            raise OracleMismatch(
                f"memory attributes of VA {va:#x}",
                {"guest": None, "host page walker": walk.mair_byte},
                command=command,
            )
        claims: dict[str, tuple[object, object]] = {}
        if guest_view.attr != walk.mair_byte:
            claims["MAIR byte"] = (guest_view.attr, walk.mair_byte)
        if guest_view.perm != perm_of(walk):
            claims["permission"] = (guest_view.perm, perm_of(walk))
        if (
            walk.cache is not None
            and guest_view.cache != walk.cache
            and not _same_memtype(guest_view.cache, walk.cache)
        ):
            claims["cache mode"] = (guest_view.cache, walk.cache)
        if claims:
            raise OracleMismatch(
                f"attributes of VA {va:#x} (guest translate vs host walker: "
                + ", ".join(f"{k} {g!r} != {h!r}" for k, (g, h) in claims.items())
                + ")",
                _describe(guest_view, walk, qemu_pa),
                command=command,
            )
    if isinstance(walk, Fault) and guest_view.fault is None:
        raise OracleMismatch(
            f"VA {va:#x}: the guest translated it, the walker faults",
            _describe(guest_view, walk, qemu_pa),
            command=command,
        )
    if guest_view.pa is not None:
        ledger.checked("translate", "pa", "walker")
        ledger.checked("translate", "pa", "gva2gpa")
        if isinstance(walk, Translation):
            for key in ("attr", "perm") + (("cache",) if walk.cache is not None else ()):
                ledger.checked("translate", key, "walker")
    elif isinstance(walk, Fault):
        _check_fault(guest_view, walk, command)
    return walk


def _check_fault(guest_view: GuestTranslation, walk: Fault, command: str | None) -> None:
    """A translate fault against the walker's: the kind, and the level where it has one."""
    keys = guest_view.reply.keys
    ledger.compare("translate", "err.fault", keys.get("fault"), str(walk.kind), "walker")
    if "level" in keys:
        ledger.compare("translate", "err.level", int(keys["level"]), walk.level, "walker")
    if "par" in keys:
        par = int(keys["par"], 16)
        ledger.compare("translate", "err.par", par & 1, 1, "walker", what="PAR_EL1.F")


# IOCacheModes that share one MAIR byte: the guest may name the mode it mapped, the walker
# only sees the byte (docs/pagewalk.md).
_SAME_BYTE = ({"copyback", "default", "copybackinner"}, {"inhibit", "realtime"})


def _same_memtype(a: str | None, b: str | None) -> bool:
    return any(a in group and b in group for group in _SAME_BYTE)


def _describe(guest_view: GuestTranslation, walk: WalkResult, qemu_pa: int | None) -> dict[str, object]:
    return {
        SOURCES[0]: guest_view.reply.line,
        SOURCES[1]: walk,
        SOURCES[2]: f"{qemu_pa:#x}" if qemu_pa is not None else "unmapped",
    }
