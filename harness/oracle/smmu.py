"""Host-side SMMUv3 walker: StreamID + IOVA -> PA and device permission, as QEMU 7.2 does it.

Why it exists: behind the SMMU the guest *claims* "IOVA x reaches your buffer's bytes, read
only". This module is the host's own reading of the same structures, from SMMU registers QEMU
reports (HMP ``xp`` on the MMIO, which dispatches real register reads) and guest RAM the host
read, so the claim is checked against something the guest does not control.

Everything here is pure: memory comes only through ``read_phys(pa, size) -> bytes`` and the
registers are plain integers (:class:`SmmuRegisters`), so ``tests/host`` drives it with
hand-built tables. The chain (dma-facts §4.3-4.6):

* registers: CR0.SMMUEN (0: every DMA bypasses, IOVA == PA), STRTAB_BASE, STRTAB_BASE_CFG
  (linear or two-level stream table);
* the STE of the StreamID (edu at 00:01.0 is 0x8): V, Config (abort / bypass / stage-1),
  S1ContextPtr;
* the CD: T0SZ, TG0, EPD0, IPS, ASID, R (record faults), HAD0, TTB0, MAIR;
* the stage-1 tables: the same VMSAv8-64 descriptors as the CPU's, so the walk itself is
  :class:`harness.oracle.pagewalk.PageWalker` on a regime made from the CD (TCR.HA set: the
  SMMU does not check the access flag; TCR.HPD0 = CD.HAD0: APTable ignored).

The device permission is QEMU's: reads always allowed, writes only if the effective AP[2] is 0
(APTable[1] folded in unless HAD0). ``perm`` is QEMU's IOMMU access mask (1 = read, 2 = write),
the number its ``smmuv3_translate_success`` trace event prints.

Corruption versus a miss, as in the CPU walker: a structure QEMU rejects with a ``C_BAD_*``
event, or a pointer outside RAM, is something the firmware must never write. ``strict=True``
(the default) raises :class:`CorruptSmmuTable` (a corrupt page-table descriptor raises
:class:`~harness.oracle.pagewalk.CorruptTable`); ``strict=False`` returns the
:class:`SmmuFault` QEMU would record instead. An invalid descriptor, an IOVA outside the CD's
range, an STE abort and a denied write are ordinary :class:`SmmuFault` results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from harness.errors import InvalidInput, IomemError
from harness.oracle.pagewalk import (
    Fault,
    FaultKind,
    PageWalker,
    ReadPhys,
    Regime,
    RegimeError,
    Translation,
)

SMMU_BASE = 0x0905_0000
"""SMMUv3 MMIO on QEMU ``virt`` (page 0; page 1 at +0x10000 aliases it in 7.2)."""

STE_SIZE = 64
CD_SIZE = 64
EVENT_SIZE = 32
_ADDR_MASK = 0x000F_FFFF_FFFF_FFC0  # bits [51:6]
_MASK48 = (1 << 48) - 1
IOMMU_RO = 1
IOMMU_RW = 3
QEMU_OAS_BITS = 44  # SMMU_IDR5.OAS in QEMU 7.2
_IPS_BITS = (32, 36, 40, 42, 44, 48)  # CD.IPS 0..5 (6 = 52 bits is undefined in QEMU 7.2)


class EventType(IntEnum):
    """SMMUv3 event record types (dma-facts §4.9)."""

    F_UUT = 0x01
    C_BAD_STREAMID = 0x02
    F_STE_FETCH = 0x03
    C_BAD_STE = 0x04
    F_STREAM_DISABLED = 0x06
    F_TRANSL_FORBIDDEN = 0x07
    C_BAD_SUBSTREAMID = 0x08
    F_CD_FETCH = 0x09
    C_BAD_CD = 0x0A
    F_WALK_EABT = 0x0B
    F_TRANSLATION = 0x10
    F_ADDR_SIZE = 0x11
    F_ACCESS = 0x12
    F_PERMISSION = 0x13
    F_TLB_CONFLICT = 0x20
    F_CFG_CONFLICT = 0x21
    E_PAGE_REQ = 0x24


# --------------------------------------------------------------------------- errors
class SmmuError(IomemError):
    """Base of the errors this module raises."""


class CorruptSmmuTable(SmmuError):
    """An STE, CD, stream-table descriptor or register setting the firmware should never write.
    ``event`` is what QEMU would record instead (None: QEMU silently masks or ignores it)."""

    def __init__(self, reason: str, *, sid: int, address: int | None, event: EventType | None) -> None:
        where = f" at PA {address:#x}" if address is not None else ""
        super().__init__(f"SMMU structure for StreamID {sid:#x}{where}: {reason}")
        self.reason = reason
        self.sid = sid
        self.address = address
        self.event = event


# --------------------------------------------------------------------------- registers
@dataclass(frozen=True, slots=True)
class SmmuRegisters:
    """The registers the walk (and the event-queue reader) needs, as the host read them."""

    cr0: int
    strtab_base: int
    strtab_base_cfg: int
    idr0: int = 0x0D40_101A
    idr5: int = 0x0000_0074
    eventq_base: int = 0
    eventq_prod: int = 0
    eventq_cons: int = 0
    gerror: int = 0
    gerrorn: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.cr0 & 1)

    @property
    def eventq_enabled(self) -> bool:
        return bool(self.cr0 & 4)

    @property
    def strtab_two_level(self) -> bool:
        return (self.strtab_base_cfg >> 16) & 3 == 1

    @property
    def strtab_log2size(self) -> int:
        return self.strtab_base_cfg & 0x3F

    @property
    def strtab_split(self) -> int:
        return (self.strtab_base_cfg >> 6) & 0x1F

    @property
    def eventq_log2size(self) -> int:
        return min(self.eventq_base & 0x1F, 19)

    @property
    def eventq_address(self) -> int:
        return self.eventq_base & 0x000F_FFFF_FFFF_FFE0 & ~((EVENT_SIZE << self.eventq_log2size) - 1)

    @property
    def active_gerrors(self) -> int:
        """GERROR bits whose GERRORN bit differs: errors not yet acknowledged."""
        return (self.gerror ^ self.gerrorn) & 0x1FD


# (name, offset, width in bytes): only 0x68/0x80/0x90/0xA0/0xB0 may be read as 64 bits (§4.2)
REGISTER_READS: tuple[tuple[str, int, int], ...] = (
    ("idr0", 0x00, 4),
    ("idr5", 0x14, 4),
    ("cr0", 0x20, 4),
    ("gerror", 0x60, 4),
    ("gerrorn", 0x64, 4),
    ("strtab_base", 0x80, 8),
    ("strtab_base_cfg", 0x88, 4),
    ("eventq_base", 0xA0, 8),
    ("eventq_prod", 0xA8, 4),
    ("eventq_cons", 0xAC, 4),
)

_XP_LINE = re.compile(r"^\s*([0-9a-fA-F]+):\s*(0x[0-9a-fA-F]+)\s*$", re.M)


def parse_xp(text: str, address: int) -> int:
    """The value of one ``xp /1wx`` or ``xp /1gx`` answer (``0000000009050080: 0x...``)."""
    for match in _XP_LINE.finditer(text):
        if int(match.group(1), 16) == address:
            return int(match.group(2), 16)
    raise SmmuError(f"no value for {address:#x} in the monitor's answer {text!r}")


def read_registers(hmp: Callable[[str], str], base: int = SMMU_BASE) -> SmmuRegisters:
    """Read the SMMU's registers through QEMU's monitor (``xp`` dispatches real MMIO reads,
    without side effects for these registers): ``hmp`` is e.g. ``QmpSession.hmp``."""
    lines = [f"xp /1{'g' if width == 8 else 'w'}x {base + offset:#x}" for _, offset, width in REGISTER_READS]
    # A monitor that takes a batch (QmpSession.hmp_many, when ``hmp`` is its ``hmp``) gets all
    # the reads in one go: the same reads, in the same order, one round trip (issue P1).
    batch = getattr(getattr(hmp, "__self__", None), "hmp_many", None)
    answers: list[str] = list(batch(lines)) if callable(batch) else [hmp(line) for line in lines]
    values = {
        name: parse_xp(answer, base + offset)
        for (name, offset, _), answer in zip(REGISTER_READS, answers, strict=True)
    }
    return SmmuRegisters(**values)


# --------------------------------------------------------------------------- decoded structures
@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One decoded STE (only the fields QEMU 7.2 uses)."""

    sid: int
    address: int
    words: tuple[int, ...]  # the 16 32-bit words
    config: str  # "abort", "bypass" or "translate"
    cd_address: int


@dataclass(frozen=True, slots=True)
class ContextDescriptor:
    """CD 0 of a stage-1 stream: what QEMU decodes of it."""

    address: int
    words: tuple[int, ...]
    t0sz: int
    granule: int
    epd0: bool
    ips_bits: int  # effective: min(CD.IPS, SMMU_IDR5.OAS)
    asid: int
    record_faults: bool  # CD.R: F_TRANSLATION / F_PERMISSION are recorded as events
    had0: bool
    ttb0: int
    mair: int

    @property
    def input_bits(self) -> int:
        return 64 - self.t0sz

    def regime(self) -> Regime:
        """A CPU EL1&0 regime with the same stage-1 walk: TTBR0 = TTB0, TCR from the CD (TTBR1
        disabled, HA set since the SMMU never checks AF, HPD0 = HAD0), MMU on, little-endian."""
        tg0 = {4096: 0b00, 65536: 0b01, 16384: 0b10}[self.granule]
        ips = _IPS_BITS.index(self.ips_bits)
        tcr = (
            self.t0sz
            | (int(self.epd0) << 7)
            | (tg0 << 14)
            | (25 << 16)  # T1SZ: any legal value, the half is disabled
            | (1 << 23)  # EPD1
            | (0b10 << 30)  # TG1 = 4K
            | (ips << 32)
            | (1 << 39)  # HA
            | (int(self.had0) << 41)  # HPD0
        )
        return Regime.from_registers(
            ttbr0_el1=self.ttb0 & _MASK48, ttbr1_el1=0, tcr_el1=tcr, mair_el1=self.mair, sctlr_el1=1
        )


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class SmmuTranslation:
    """A successful stage-1 translation of one IOVA (``leaf``: the CPU walker's reading)."""

    sid: int
    iova: int
    pa: int
    writable: bool
    asid: int
    leaf: Translation
    record_faults: bool = True  # the CD's R bit: whether a fault here would be recorded

    @property
    def perm(self) -> int:
        """QEMU's IOMMU access mask for this page: 1 read-only, 3 read-write."""
        return IOMMU_RW if self.writable else IOMMU_RO

    @property
    def size(self) -> int:
        return self.leaf.size

    @property
    def granule(self) -> int:
        return self.leaf.granule

    @property
    def level(self) -> int:
        return self.leaf.level

    @property
    def page_end(self) -> int:
        """First IOVA past the page or block that translated ``iova``."""
        return (self.iova | (self.leaf.size - 1)) + 1


@dataclass(frozen=True, slots=True)
class SmmuBypass:
    """No translation: SMMUEN = 0 or STE.Config = bypass. The device address is the PA."""

    sid: int
    iova: int
    reason: str

    @property
    def pa(self) -> int:
        return self.iova

    writable = True
    perm = IOMMU_RW


@dataclass(frozen=True, slots=True)
class SmmuFault:
    """The device access fails. ``event`` is the record QEMU writes to the event queue, or None
    when it writes none (STE abort; F_TRANSLATION / F_PERMISSION with CD.R = 0)."""

    sid: int
    iova: int
    kind: EventType
    reason: str
    recorded: bool
    level: int | None = None
    address: int | None = None  # STE, CD or descriptor PA where the walk stopped

    @property
    def event(self) -> EventType | None:
        return self.kind if self.recorded else None


SmmuResult = SmmuTranslation | SmmuBypass | SmmuFault


@dataclass(frozen=True, slots=True)
class SmmuRun:
    """A stretch of IOVA space that maps to contiguous PAs with one permission."""

    iova: int
    pa: int
    length: int
    writable: bool

    @property
    def perm(self) -> int:
        return IOMMU_RW if self.writable else IOMMU_RO


# --------------------------------------------------------------------------- the walker
def _words(raw: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4))


class SmmuWalker:
    """One snapshot of the SMMU: registers plus a RAM reader. Make a new one (or call
    :meth:`clear_cache`) after the guest may have changed its STEs, CDs or tables."""

    def __init__(self, read_phys: ReadPhys, registers: SmmuRegisters, *, strict: bool = True) -> None:
        self.read_phys = read_phys
        self.registers = registers
        self.strict = strict
        self._walkers: dict[tuple[int, int], tuple[ContextDescriptor, PageWalker]] = {}
        self._walk_abort: int | None = None

    def clear_cache(self) -> None:
        self._walkers.clear()

    # ---- helpers
    def _read(self, pa: int, size: int) -> bytes | None:
        try:
            raw = self.read_phys(pa, size)
        except (IomemError, IndexError, ValueError, OSError):
            return None
        return raw if len(raw) == size else None

    def _corrupt(
        self, sid: int, iova: int, reason: str, event: EventType | None, address: int | None
    ) -> SmmuFault:
        if self.strict:
            raise CorruptSmmuTable(reason, sid=sid, address=address, event=event)
        kind = event if event is not None else EventType.C_BAD_STE
        return SmmuFault(sid, iova, kind, reason, recorded=event is not None, address=address)

    # ---- stream table
    def ste_address(self, sid: int, iova: int = 0) -> int | SmmuFault:
        """The PA of the STE for ``sid`` (linear or two-level), or the fault QEMU reports."""
        regs = self.registers
        if not 0 <= sid < 1 << 16:
            raise InvalidInput(f"StreamID {sid:#x} is not 16 bits")
        log2size = regs.strtab_log2size
        base = regs.strtab_base & _ADDR_MASK
        if not regs.strtab_two_level:
            if sid >= 1 << min(log2size, 16):
                return SmmuFault(
                    sid,
                    iova,
                    EventType.C_BAD_STREAMID,
                    f"StreamID beyond the linear table of 2^{log2size} entries",
                    recorded=True,
                )
            size = STE_SIZE << log2size
            if base & (size - 1) and self.strict:
                raise CorruptSmmuTable(
                    f"STRTAB_BASE {base:#x} is not aligned to the table size {size:#x}",
                    sid=sid,
                    address=base,
                    event=None,
                )
            base &= ~((size >> 1) - 1)  # QEMU masks to half the table size
            return base + sid * STE_SIZE
        split = regs.strtab_split
        if sid >= 1 << min(log2size, 16):
            return SmmuFault(sid, iova, EventType.C_BAD_STREAMID, "StreamID beyond the table", recorded=True)
        l1_address = base + (sid >> split) * 8
        raw = self._read(l1_address, 8)
        if raw is None:
            return self._corrupt(
                sid, iova, "L1 stream-table descriptor outside RAM", EventType.F_STE_FETCH, l1_address
            )
        l1 = int.from_bytes(raw, "little")
        span = l1 & 0x1F
        index = sid & ((1 << split) - 1)
        if span == 0:
            return SmmuFault(
                sid,
                iova,
                EventType.C_BAD_STREAMID,
                "L1 descriptor has Span 0",
                recorded=True,
                address=l1_address,
            )
        if index >= 1 << (span - 1) and (self.strict or index > (1 << span) - 1):  # QEMU: up to 2^Span - 1
            return self._corrupt(
                sid,
                iova,
                f"L2 index {index} beyond Span {span} (2^(Span-1) STEs)",
                EventType.C_BAD_STREAMID,
                l1_address,
            )
        return (l1 & _ADDR_MASK) + index * STE_SIZE

    def ste(self, sid: int, iova: int = 0) -> StreamEntry | SmmuFault:
        """The decoded STE of ``sid``, or the fault QEMU reports fetching or decoding it."""
        where = self.ste_address(sid, iova)
        if isinstance(where, SmmuFault):
            return where
        raw = self._read(where, STE_SIZE)
        if raw is None:
            return self._corrupt(sid, iova, "STE outside RAM", EventType.F_STE_FETCH, where)
        w = _words(raw)
        if not w[0] & 1:
            return self._corrupt(sid, iova, "STE.V = 0", EventType.C_BAD_STE, where)
        config = (w[0] >> 1) & 7
        if config & 0b100 == 0:
            return StreamEntry(sid, where, w, "abort", 0)
        if config == 0b100:
            return StreamEntry(sid, where, w, "bypass", 0)
        if config != 0b101:
            return self._corrupt(
                sid, iova, f"STE.Config = {config:#05b} (stage 2: unsupported)", EventType.C_BAD_STE, where
            )
        if (w[1] >> 27) & 0x1F:
            return self._corrupt(sid, iova, "STE.S1CDMax != 0 (no substreams)", EventType.C_BAD_STE, where)
        if (w[2] >> 27) & 1:
            return self._corrupt(sid, iova, "STE.S1STALLD = 1", EventType.C_BAD_STE, where)
        cd_address = ((w[1] & 0xFFFF) << 32) | (w[0] & 0xFFFF_FFC0)
        return StreamEntry(sid, where, w, "translate", cd_address)

    def cd(self, ste: StreamEntry, iova: int = 0) -> ContextDescriptor | SmmuFault:
        """CD 0 of a stage-1 STE, decoded with QEMU 7.2's checks (``decode_cd``)."""
        sid, where = ste.sid, ste.cd_address
        raw = self._read(where, CD_SIZE)
        if raw is None:
            return self._corrupt(sid, iova, "CD outside RAM", EventType.F_CD_FETCH, where)
        w = _words(raw)

        def bad(reason: str) -> SmmuFault:
            return self._corrupt(sid, iova, f"CD: {reason}", EventType.C_BAD_CD, where)

        if not (w[0] >> 31) & 1:
            return bad("V = 0")
        if not (w[1] >> 9) & 1:
            return bad("AA64 = 0")
        if not (w[1] >> 14) & 1:
            return bad("A = 0 (QEMU only terminates with an abort)")
        if (w[1] >> 12) & 1:
            return bad("S = 1 (no stall model)")
        if (w[1] >> 10) & 3:
            return bad("HA/HD set (no hardware access/dirty flag update)")
        ips = w[1] & 7
        if ips >= len(_IPS_BITS):
            return bad(f"IPS = {ips} (52-bit output is undefined in QEMU 7.2)")
        ips_bits = min(_IPS_BITS[ips], QEMU_OAS_BITS)
        ttb0 = ((w[3] << 32) | w[2]) & 0x000F_FFFF_FFFF_FFF0
        epd0 = bool((w[0] >> 14) & 1)
        t0sz, tg0 = w[0] & 0x3F, (w[0] >> 6) & 3
        granule = {0b00: 4096, 0b01: 65536, 0b10: 16384}.get(tg0, 0)
        for half, disabled, tsz, gran, endi in (
            (0, epd0, t0sz, granule, (w[0] >> 15) & 1),
            (
                1,
                bool((w[0] >> 30) & 1),
                (w[0] >> 16) & 0x3F,
                {0b01: 16384, 0b10: 4096, 0b11: 65536}.get((w[0] >> 22) & 3, 0),
                (w[0] >> 15) & 1,
            ),
        ):
            if disabled:
                continue
            if not 16 <= tsz <= 39:
                return bad(f"T{half}SZ = {tsz} (QEMU takes 16..39)")
            if gran == 0 or endi:
                return bad(f"TG{half} reserved or ENDI = 1")
            ttb = ttb0 if half == 0 else ((w[5] << 32) | w[4]) & 0x000F_FFFF_FFFF_FFF0
            if ttb >> ips_bits:
                return bad(f"TTB{half} {ttb:#x} beyond the {ips_bits}-bit output size")
        if (w[1] >> 6) & 3 and self.strict:
            return bad("TBI set (QEMU 7.2 honours it only in table selection)")
        return ContextDescriptor(
            address=where,
            words=w,
            t0sz=t0sz,
            granule=granule or 4096,
            epd0=epd0,
            ips_bits=ips_bits,
            asid=w[1] >> 16,
            record_faults=bool((w[1] >> 13) & 1),
            had0=bool((w[2] >> 1) & 1),
            ttb0=ttb0,
            mair=(w[7] << 32) | w[6],
        )

    def _stage1(self, sid: int, iova: int) -> SmmuBypass | SmmuFault | tuple[ContextDescriptor, PageWalker]:
        if not self.registers.enabled:
            return SmmuBypass(sid, iova, "SMMU disabled (CR0.SMMUEN = 0)")
        ste = self.ste(sid, iova)
        if isinstance(ste, SmmuFault):
            return ste
        if ste.config == "abort":
            return SmmuFault(
                sid, iova, EventType.F_TRANSLATION, "STE.Config = abort", recorded=False, address=ste.address
            )
        if ste.config == "bypass":
            return SmmuBypass(sid, iova, "STE.Config = bypass")
        key = (sid, ste.cd_address)
        cached = self._walkers.get(key)
        if cached is None:
            cd = self.cd(ste, iova)
            if isinstance(cd, SmmuFault):
                return cd
            try:
                regime = cd.regime()
            except RegimeError as exc:
                return self._corrupt(sid, iova, f"CD: {exc.message}", EventType.C_BAD_CD, cd.address)
            cached = (cd, PageWalker(self._walk_read, regime, strict=self.strict))
            self._walkers[key] = cached
        return cached

    def _walk_read(self, pa: int, size: int) -> bytes:
        """The stage-1 walker's reader: a table outside RAM reads as invalid descriptors and is
        noted, so :meth:`lookup` reports F_WALK_EABT (and forgets the cached zeros)."""
        raw = self._read(pa, size)
        if raw is None:
            self._walk_abort = pa
            return bytes(size)
        return raw

    # ---- public
    def lookup(self, sid: int, iova: int) -> SmmuResult:
        """Translate ``iova`` for ``sid`` without an access check: the permission is reported."""
        if not 0 <= iova < 1 << 64:
            raise InvalidInput(f"IOVA {iova:#x} is not a 64-bit address")
        stage1 = self._stage1(sid, iova)
        if not isinstance(stage1, tuple):
            return stage1
        cd, walker = stage1
        if cd.epd0 or iova >> cd.input_bits:
            why = "CD.EPD0 = 1" if cd.epd0 else f"IOVA beyond the CD's {cd.input_bits}-bit range"
            return SmmuFault(sid, iova, EventType.F_TRANSLATION, why, recorded=cd.record_faults, level=0)
        self._walk_abort = None
        try:
            result = walker.walk(iova)
        except RegimeError as exc:
            return self._corrupt(sid, iova, f"CD: {exc.message}", EventType.C_BAD_CD, cd.address)
        aborted = self._walk_abort
        if aborted is not None:
            walker.clear_cache()
            return self._corrupt(
                sid, iova, f"table read at {aborted:#x} outside RAM", EventType.F_WALK_EABT, aborted
            )
        if isinstance(result, Translation):
            writable = not result.ap & 0b10
            return SmmuTranslation(sid, iova, result.pa, writable, cd.asid, result, cd.record_faults)
        if not isinstance(result, Fault):  # Identity: the CD regime always has the MMU on
            raise SmmuError(f"the stage-1 walk of IOVA {iova:#x} gave {result!r}")
        kind = EventType.F_ADDR_SIZE if result.kind is FaultKind.ADDRESS_SIZE else EventType.F_TRANSLATION
        return SmmuFault(
            sid,
            iova,
            kind,
            result.reason,
            recorded=cd.record_faults,
            level=result.level,
            address=result.descriptor_pa,
        )

    def translate(self, sid: int, iova: int, *, write: bool) -> SmmuResult:
        """What a device read (``write=False``) or write of ``iova`` does: a translation, a
        bypass, or the fault (a write to a read-only page is F_PERMISSION)."""
        result = self.lookup(sid, iova)
        if write and isinstance(result, SmmuTranslation) and not result.writable:
            return SmmuFault(
                sid,
                iova,
                EventType.F_PERMISSION,
                "device write to a read-only page (AP[2] = 1)",
                recorded=result.record_faults,
                level=result.level,
                address=result.leaf.descriptor_pa,
            )
        return result

    def runs(self, sid: int, iova: int, length: int) -> list[SmmuRun] | SmmuFault:
        """The PA runs behind ``[iova, iova + length)``: contiguous PAs with one permission
        merge into one run. The first page that does not translate is returned as the fault."""
        out: list[SmmuRun] = []
        at, end = iova, iova + length
        while at < end:
            result = self.lookup(sid, at)
            if isinstance(result, SmmuFault):
                return result
            step = end - at if isinstance(result, SmmuBypass) else min(result.page_end, end) - at
            pa, writable = result.pa, result.writable
            if out and out[-1].pa + out[-1].length == pa and out[-1].writable == writable:
                last = out[-1]
                out[-1] = SmmuRun(last.iova, last.pa, last.length + step, writable)
            else:
                out.append(SmmuRun(at, pa, step, writable))
            at += step
        return out

    def iter_mappings(self, sid: int, start: int = 0, end: int = 1 << 48) -> Iterator[SmmuTranslation]:
        """Every valid leaf of ``sid``'s stage-1 tables intersecting IOVA ``[start, end)``, as
        whole leaves (``iova``/``pa`` = the leaf's start)."""
        stage1 = self._stage1(sid, start)
        if not isinstance(stage1, tuple):
            return
        cd, walker = stage1
        if cd.epd0:
            return
        end = min(end, 1 << cd.input_bits)
        if start >= end:
            return
        for leaf in walker.iter_mappings(start, end):
            yield SmmuTranslation(sid, leaf.va, leaf.pa, not leaf.ap & 0b10, cd.asid, leaf, cd.record_faults)

    def context(self, sid: int) -> ContextDescriptor | None:
        """The decoded CD of a stage-1 stream (None when the stream does not translate)."""
        stage1 = self._stage1(sid, 0)
        return stage1[0] if isinstance(stage1, tuple) else None


# --------------------------------------------------------------------------- event queue
@dataclass(frozen=True, slots=True)
class SmmuEvent:
    """One 32-byte event record (dma-facts §4.9)."""

    index: int  # queue slot
    type: int
    sid: int
    iova: int  # InputAddr: the faulting chunk's IOVA (not page aligned)
    read: bool  # RnW: 1 = the device read memory (edu to-device)
    words: tuple[int, ...]

    @property
    def kind(self) -> EventType | None:
        try:
            return EventType(self.type)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        kind = self.kind
        return kind.name if kind is not None else f"type {self.type:#x}"


def decode_event(raw: bytes, index: int = 0) -> SmmuEvent:
    if len(raw) != EVENT_SIZE:
        raise InvalidInput(f"an event record is {EVENT_SIZE} bytes, not {len(raw)}")
    w = _words(raw)
    return SmmuEvent(
        index=index,
        type=w[0] & 0xFF,
        sid=w[1],
        iova=(w[5] << 32) | w[4],
        read=bool((w[3] >> 3) & 1),
        words=w,
    )


def queue_index(value: int, log2size: int) -> int:
    """Index plus wrap bit (PROD/CONS layout) as one monotonic-modulo-2^(n+1) number."""
    return value & ((2 << log2size) - 1)


def read_events(
    read_phys: ReadPhys, registers: SmmuRegisters, prod_from: int, prod_to: int
) -> list[SmmuEvent]:
    """The event records QEMU wrote between two EVENTQ_PROD readings (wrap bit included);
    the guest may already have consumed them, the records stay in RAM."""
    n = registers.eventq_log2size
    entries = 1 << n
    start, stop = queue_index(prod_from, n), queue_index(prod_to, n)
    count = (stop - start) % (2 * entries)
    if count > entries:
        raise SmmuError(f"EVENTQ_PROD went from {prod_from:#x} to {prod_to:#x}: more than a queue of events")
    base = registers.eventq_address
    out = []
    for k in range(count):
        slot = (start + k) % entries
        out.append(decode_event(read_phys(base + slot * EVENT_SIZE, EVENT_SIZE), slot))
    return out
