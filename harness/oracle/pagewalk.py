"""Stage-1 AArch64 translation-table walker for the EL1&0 regime (Arm ARM D8, VMSAv8-64).

Why it exists: the guest *claims* "VA x maps to PA y, write-back, read-only"; this module is
the host's own reading of the same tables, from register values the gdbstub reported and RAM
the host read, so the claim can be checked against something the guest does not control.

Everything here is pure: memory comes only through a ``read_phys(pa, size) -> bytes`` callback
and registers are plain integers, so ``tests/host`` drives it with hand-built tables.

What the walker does and does not model (details in ``docs/pagewalk.md``):

* TTBR0/TTBR1 halves, 4K/16K/64K granules from TCR.TG0/TG1 (their encodings differ), any
  T0SZ/T1SZ from 16 (12 for 64K) to 48 (47 for 64K), start level per the Arm ARM, TBI,
  EPDn, HPDn, hierarchical APTable/UXNTable/PXNTable, SCTLR.M (MMU off: identity), SCTLR.EE.
* Output size from TCR.IPS bounded by ID_AA64MMFR0_EL1.PARange when known; 52-bit output only
  for the 64K granule (FEAT_LPA: OA[51:48] in descriptor bits [15:12]). TCR.DS=1 (FEAT_LPA2)
  is rejected with :class:`RegimeError`.
* A descriptor the architecture calls reserved, or an output/table address beyond the PA
  size, or a set RES0 bit the walker checks, is *corruption*: with ``strict=True`` (the
  default) the walker raises :class:`CorruptTable`; with ``strict=False`` it returns the
  :class:`Fault` the Arm ARM says the hardware reports instead.
* An ordinary miss (invalid descriptor, VA outside both halves, AF=0 without TCR.HA) is a
  :class:`Fault` result, never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, Protocol

from harness.errors import InvalidInput, IomemError
from harness.oracle.pte import (
    PT_LAST_LEVEL,
    PT_OA_BITS_MAX,
    PTE_AF,
    PTE_AP_MASK,
    PTE_AP_RO,
    PTE_AP_SHIFT,
    PTE_ATTRINDX_MASK,
    PTE_ATTRINDX_SHIFT,
    PTE_CONTIGUOUS,
    PTE_LPA_OA_BIT,
    PTE_LPA_OA_MASK,
    PTE_LPA_OA_SHIFT,
    PTE_NG,
    PTE_PXN,
    PTE_SH_MASK,
    PTE_SH_SHIFT,
    PTE_TABLE_ATTRS_SHIFT,
    PTE_TABLE_OR_PAGE,
    PTE_UXN,
    PTE_VALID,
    TABLE_AP_NO_EL0,
    TABLE_AP_RO,
    TABLE_PXN,
    TABLE_UXN,
)

ReadPhys = Callable[[int, int], bytes]
"""``read_phys(pa, size) -> bytes``: exactly ``size`` bytes of guest physical memory at ``pa``.
Errors it raises propagate unchanged (the walker does not guess what they mean)."""

VA_LIMIT = 1 << 64

# --------------------------------------------------------------------------- errors


class PagewalkError(IomemError):
    """Base of every error this module raises."""


class RegimeError(PagewalkError):
    """The translation registers hold a reserved, unsupported or inconsistent setting."""


class CorruptTable(PagewalkError):
    """A descriptor the guest should never have written (reserved encoding, RES0 bits set,
    address beyond the PA size). ``fault`` is what the hardware would report instead."""

    def __init__(
        self, reason: str, *, va: int, level: int, descriptor_pa: int, descriptor: int, fault: Fault
    ) -> None:
        super().__init__(
            f"corrupt translation table at level {level}: descriptor {descriptor:#018x} "
            f"at PA {descriptor_pa:#x} (walking VA {va:#x}): {reason}"
        )
        self.reason = reason
        self.va = va
        self.level = level
        self.descriptor_pa = descriptor_pa
        self.descriptor = descriptor
        self.fault = fault


# --------------------------------------------------------------------------- memory attributes
MAIR_TO_CACHE_MODE: Mapping[int, str] = MappingProxyType(
    {
        0xFF: "copyback",  # also what kIODefaultCache maps to: reported as "copyback"
        0x00: "inhibit",  # also kIORealTimeCache (same MAIR byte): reported as "inhibit"
        0xBB: "writethru",
        0x44: "writecombine",
        0x04: "posted",
        0x08: "postedreordered",
        0x0C: "postedcombinedreordered",
        0x4F: "copybackinner",
    }
)
"""MAIR attribute byte -> IOCacheMode name (driverkit-memory.md §9.3, classic column).
Not injective on the IOCacheMode side: default/copyback and inhibit/realtime share a byte."""

_DEVICE_TYPES = ("nGnRnE", "nGnRE", "nGRE", "GRE")
_ALLOC_HINTS = ("no-alloc", "WA", "RA", "")  # indexed by the R:W bits; RWA is the default, left out


def cache_mode(mair_byte: int) -> str | None:
    """The IOCacheMode name for a MAIR attribute byte, or None if iomem never programs it."""
    return MAIR_TO_CACHE_MODE.get(mair_byte)


def _normal_half(nibble: int) -> str:
    if nibble == 0b0100:
        return "NC"
    kind = ("WT", "WB")[(nibble >> 2) & 1]
    text = kind if nibble & 0b1000 else kind + " transient"
    hint = _ALLOC_HINTS[nibble & 3]
    return f"{text} {hint}" if hint else text


def describe_memtype(mair_byte: int) -> str:
    """Arm memory type of a MAIR attribute byte: ``Device-nGnRnE``, ``Normal WB``,
    ``Normal inner WB, outer NC``... (allocation hints shown only when not RWA)."""
    if not 0 <= mair_byte <= 0xFF:
        raise InvalidInput(f"MAIR attribute byte out of range: {mair_byte:#x}")
    outer, inner = mair_byte >> 4, mair_byte & 0xF
    if outer == 0:
        dtype = _DEVICE_TYPES[inner >> 2]
        if inner & 3 == 0:
            return f"Device-{dtype}"
        if inner & 3 == 1:
            return f"Device-{dtype} XS=0"  # FEAT_XS encoding
        return f"reserved ({mair_byte:#04x})"
    if inner == 0:
        special = {0x40: "Normal NC XS=0", 0xA0: "Normal WT XS=0", 0xF0: "Normal WB tagged"}
        return special.get(mair_byte, f"reserved ({mair_byte:#04x})")
    i, o = _normal_half(inner), _normal_half(outer)
    return f"Normal {i}" if i == o else f"Normal inner {i}, outer {o}"


# --------------------------------------------------------------------------- results
class LeafKind(StrEnum):
    BLOCK = "block"
    PAGE = "page"


class FaultKind(StrEnum):
    TRANSLATION = "translation"
    ACCESS_FLAG = "access-flag"
    ADDRESS_SIZE = "address-size"


class Shareability(StrEnum):
    NON = "non"
    RESERVED = "reserved"  # SH=0b01; only seen with strict=False
    OUTER = "outer"
    INNER = "inner"


_SH = (Shareability.NON, Shareability.RESERVED, Shareability.OUTER, Shareability.INNER)
El1Access = Literal["rw", "ro"]
El0Access = Literal["none", "rw", "ro"]
_EL1: tuple[El1Access, ...] = ("rw", "rw", "ro", "ro")
_EL0: tuple[El0Access, ...] = ("none", "rw", "none", "ro")


@dataclass(frozen=True, slots=True)
class Translation:
    """One successful stage-1 lookup. From :meth:`PageWalker.walk`, ``va``/``pa`` are the
    address asked and its output address; from :meth:`PageWalker.iter_mappings` they are the
    start of the leaf. ``ap``/``el1``/``el0``/``uxn``/``pxn`` are effective values (table
    APTable/XNTable folded in unless TCR.HPDn); the raw bits are in ``descriptor``."""

    va: int
    pa: int
    ttbr: int  # 0 or 1: which half translated it
    granule: int  # bytes
    level: int
    kind: LeafKind
    size: int  # bytes covered by this block or page
    descriptor: int
    descriptor_pa: int
    ap: int  # effective AP[2:1]
    el1: El1Access
    el0: El0Access
    uxn: bool
    pxn: bool
    sh: Shareability
    af: bool
    ng: bool
    contiguous: bool
    attr_index: int
    mair_byte: int
    cache: str | None  # IOCacheMode name, None if the MAIR byte is not one iomem uses
    memtype: str

    @property
    def va_base(self) -> int:
        return self.va & ~(self.size - 1)

    @property
    def pa_base(self) -> int:
        return self.pa & ~(self.size - 1)

    @property
    def contiguous_span(self) -> int:
        """Bytes covered by the contiguous-hint group this leaf belongs to (``size`` if none)."""
        if not self.contiguous:
            return self.size
        return self.size * _CONTIGUOUS_ENTRIES.get((self.granule, self.level), 1)


@dataclass(frozen=True, slots=True)
class Identity:
    """SCTLR_EL1.M == 0: VA == PA. Data accesses are Device-nGnRnE (instruction fetches are
    Normal, cacheability per SCTLR.I; not modelled)."""

    va: int
    pa: int
    memtype: str = "Device-nGnRnE"
    cache: str = "inhibit"


@dataclass(frozen=True, slots=True)
class Fault:
    """The lookup fails the way the hardware would report it (ESR DFSC kind and level)."""

    va: int
    kind: FaultKind
    level: int
    reason: str
    ttbr: int | None = None
    descriptor_pa: int | None = None
    descriptor: int | None = None


WalkResult = Translation | Identity | Fault

# --------------------------------------------------------------------------- regime (registers)
_TG0_SHIFT = {0b00: 12, 0b01: 16, 0b10: 14}
_TG1_SHIFT = {0b01: 14, 0b10: 12, 0b11: 16}  # TG1 uses a different encoding from TG0
_PA_BITS = (32, 36, 40, 42, 44, 48, 52)  # TCR.IPS and ID_AA64MMFR0.PARange
_CONTIGUOUS_ENTRIES = {
    (4096, 1): 16,
    (4096, 2): 16,
    (4096, 3): 16,
    (16384, 2): 32,
    (16384, 3): 128,
    (65536, 2): 32,
    (65536, 3): 32,
}
_MASK48 = (1 << 48) - 1


def _bits(hi: int, lo: int) -> int:
    """Mask of bits [hi:lo] (empty if hi < lo)."""
    return ((1 << (hi + 1)) - 1) & ~((1 << lo) - 1) if hi >= lo else 0


@dataclass(frozen=True, slots=True)
class HalfRegime:
    """One of the two VA halves of the EL1&0 regime, decoded from TCR_EL1 and TTBRn_EL1."""

    select: int  # 0: TTBR0 (VA top bits 0), 1: TTBR1 (VA top bits 1)
    disabled: bool  # TCR.EPDn: every walk of this half faults at level 0
    granule: int  # bytes (0 if TGn is reserved, see ``problem``)
    txsz: int
    input_bits: int
    start_level: int
    start_entries: int
    base: int  # PA of the start-level table
    base_res0: int  # TTBR BADDR bits below the table alignment that are set
    pa_bits: int  # effective output address size of this half
    lpa: bool  # 52-bit output with 64K: OA[51:48] in descriptor bits [15:12]
    tbi: bool
    hpd: bool
    problem: str | None  # why this half cannot be walked; None if it can

    @property
    def granule_shift(self) -> int:
        return self.granule.bit_length() - 1

    @property
    def va_window(self) -> tuple[int, int]:
        """[start, end) of the canonical (untagged) VAs this half translates."""
        span = 1 << self.input_bits
        return (0, span) if self.select == 0 else (VA_LIMIT - span, VA_LIMIT)


class TranslationRegisters(Protocol):
    """What the walker needs from a register snapshot (``registers.SystemRegisters`` fits)."""

    @property
    def ttbr0_el1(self) -> int: ...
    @property
    def ttbr1_el1(self) -> int: ...
    @property
    def tcr_el1(self) -> int: ...
    @property
    def mair_el1(self) -> int: ...
    @property
    def sctlr_el1(self) -> int: ...
    @property
    def id_aa64mmfr0_el1(self) -> int | None: ...


def _decode_half(select: int, ttbr: int, tcr: int, ips_bits: int, parange_bits: int | None) -> HalfRegime:
    if select == 0:
        txsz, epd, tg = tcr & 0x3F, (tcr >> 7) & 1, (tcr >> 14) & 3
        shift = _TG0_SHIFT.get(tg)
        tbi, hpd = (tcr >> 37) & 1, (tcr >> 41) & 1
    else:
        txsz, epd, tg = (tcr >> 16) & 0x3F, (tcr >> 23) & 1, (tcr >> 30) & 3
        shift = _TG1_SHIFT.get(tg)
        tbi, hpd = (tcr >> 38) & 1, (tcr >> 42) & 1
    name = f"TTBR{select}"
    problem: str | None = None
    pa_bits = ips_bits if parange_bits is None else min(ips_bits, parange_bits)
    if shift is None:
        problem = f"TCR_EL1.TG{select}={tg:#04b} is a reserved granule encoding"
        shift = 12
    elif shift != 16:
        pa_bits = min(pa_bits, 48)  # 52-bit output needs 64K (FEAT_LPA) or TCR.DS (LPA2)
    granule = 1 << shift
    stride = shift - 3
    min_txsz, max_txsz = (12, 47) if shift == 16 else (16, 48)
    if not min_txsz <= txsz <= max_txsz:
        if problem is None:
            problem = (
                f"TCR_EL1.T{select}SZ={txsz} is outside [{min_txsz}, {max_txsz}] for the "
                f"{granule // 1024}K granule (the hardware faults or clamps)"
            )
        txsz = min(max(txsz, min_txsz), max_txsz)
    input_bits = 64 - txsz
    levels = -(-(input_bits - shift) // stride)  # ceil((inputsize - grainsize) / stride)
    start_level = 4 - levels
    start_shift = shift + stride * (3 - start_level)
    start_entries = 1 << (input_bits - start_shift)
    lpa = shift == 16 and pa_bits == 52
    align = max(64, start_entries * 8)
    raw = ttbr & _MASK48
    low = raw & (align - 1) & ~1  # bit 0 is CnP, not part of the address
    if lpa:
        low &= ~0x3C  # TTBR[5:2] hold BADDR[51:48]
    base = (raw & ~(align - 1)) | ((((ttbr >> 2) & 0xF) << 48) if lpa else 0)
    if problem is not None:
        problem = f"{name}: {problem}"
    return HalfRegime(
        select=select,
        disabled=bool(epd),
        granule=granule,
        txsz=txsz,
        input_bits=input_bits,
        start_level=start_level,
        start_entries=start_entries,
        base=base,
        base_res0=low,
        pa_bits=pa_bits,
        lpa=lpa,
        tbi=bool(tbi),
        hpd=bool(hpd),
        problem=problem,
    )


@dataclass(frozen=True, slots=True)
class Regime:
    """The EL1&0 stage-1 translation regime, decoded once from register values."""

    mmu_on: bool
    big_endian: bool  # SCTLR.EE: descriptors are big-endian
    wxn: bool  # SCTLR.WXN (reported, not folded into uxn/pxn)
    ha: bool  # TCR.HA: hardware sets AF, so AF=0 does not fault
    mair: int
    pa_bits: int  # PAMax for MMU-off accesses (PARange, or 48 when unknown)
    lpa_implemented: bool  # 64K level-1 blocks are legal (FEAT_LPA)
    ttbr0: HalfRegime
    ttbr1: HalfRegime
    tcr: int
    sctlr: int

    @classmethod
    def from_registers(
        cls,
        *,
        ttbr0_el1: int,
        ttbr1_el1: int,
        tcr_el1: int,
        mair_el1: int,
        sctlr_el1: int,
        id_aa64mmfr0_el1: int | None = None,
    ) -> Regime:
        """Decode the registers. ``id_aa64mmfr0_el1`` (when known) bounds the PA size by
        PARange and says which granules exist; without it IPS is trusted and all exist."""
        if tcr_el1 >> 59 & 1:
            raise RegimeError(
                f"TCR_EL1.DS=1 (FEAT_LPA2 descriptor format) is not supported (TCR_EL1={tcr_el1:#x})"
            )
        ips = (tcr_el1 >> 32) & 7
        if ips >= len(_PA_BITS):
            raise RegimeError(f"TCR_EL1.IPS={ips:#05b} is reserved (TCR_EL1={tcr_el1:#x})")
        parange_bits: int | None = None
        unsupported: set[int] = set()
        if id_aa64mmfr0_el1 is not None:
            parange = id_aa64mmfr0_el1 & 0xF
            if parange >= len(_PA_BITS):
                raise RegimeError(f"ID_AA64MMFR0_EL1.PARange={parange} is not a known encoding")
            parange_bits = _PA_BITS[parange]
            if (id_aa64mmfr0_el1 >> 20) & 0xF == 0:
                unsupported.add(16384)
            if (id_aa64mmfr0_el1 >> 24) & 0xF == 0xF:
                unsupported.add(65536)
            if (id_aa64mmfr0_el1 >> 28) & 0xF == 0xF:
                unsupported.add(4096)
        ips_bits = _PA_BITS[ips]
        lpa_implemented = (parange_bits or ips_bits) == 52
        halves = []
        for select, ttbr in ((0, ttbr0_el1), (1, ttbr1_el1)):
            half = _decode_half(select, ttbr, tcr_el1, ips_bits, parange_bits)
            if half.problem is None and half.granule in unsupported:
                half = replace(
                    half,
                    problem=f"TTBR{select}: the {half.granule // 1024}K granule is "
                    f"not implemented (ID_AA64MMFR0_EL1={id_aa64mmfr0_el1:#x})",
                )
            halves.append(half)
        return cls(
            mmu_on=bool(sctlr_el1 & 1),
            big_endian=bool(sctlr_el1 >> 25 & 1),
            wxn=bool(sctlr_el1 >> 19 & 1),
            ha=bool(tcr_el1 >> 39 & 1),
            mair=mair_el1,
            pa_bits=parange_bits or 48,
            lpa_implemented=lpa_implemented,
            ttbr0=halves[0],
            ttbr1=halves[1],
            tcr=tcr_el1,
            sctlr=sctlr_el1,
        )

    @classmethod
    def from_snapshot(cls, regs: TranslationRegisters) -> Regime:
        """Decode from any object with the register attributes (e.g. ``SystemRegisters``)."""
        return cls.from_registers(
            ttbr0_el1=regs.ttbr0_el1,
            ttbr1_el1=regs.ttbr1_el1,
            tcr_el1=regs.tcr_el1,
            mair_el1=regs.mair_el1,
            sctlr_el1=regs.sctlr_el1,
            id_aa64mmfr0_el1=regs.id_aa64mmfr0_el1,
        )

    def half_for(self, va: int) -> HalfRegime:
        """The half VA bit 55 selects (the architecture's rule, TBI or not)."""
        return self.ttbr1 if (va >> 55) & 1 else self.ttbr0


# --------------------------------------------------------------------------- the walker
@dataclass(frozen=True, slots=True)
class _Geometry:
    """Per-half constants precomputed so the hot loop only indexes tuples."""

    shifts: tuple[int, ...]  # by level 0..3: VA bit where the level's index starts
    entries: int  # descriptors in a full (non-start) table
    table_addr: int  # address mask of a table descriptor
    table_res0: int
    leaf_addr: tuple[int, ...]  # by level
    leaf_res0: tuple[int, ...]  # by level
    block_ok: tuple[bool, ...]  # by level: a block descriptor is legal here


def _geometry(half: HalfRegime, lpa_implemented: bool) -> _Geometry:
    gs = half.granule_shift
    stride = gs - 3
    shifts = tuple(gs + stride * (3 - level) for level in range(4))
    lpa_field = (PTE_LPA_OA_MASK << PTE_LPA_OA_SHIFT) if half.lpa else 0
    low_res0 = _bits(gs - 1, 12) & ~lpa_field  # between bit 12 and the granule
    table_res0 = _bits(51, 48) | low_res0
    leaf_addr = tuple(_bits(PT_OA_BITS_MAX - 1, s) for s in shifts)
    leaf_res0 = tuple(
        _bits(49, 48) | (low_res0 if level == 3 else _bits(s - 1, 12) & ~lpa_field & ~(1 << 16))
        for level, s in enumerate(shifts)
    )
    if gs == 12:
        block_ok = (False, True, True, False)
    elif gs == 14:
        block_ok = (False, False, True, False)
    else:
        block_ok = (False, lpa_implemented, True, False)
    return _Geometry(
        shifts=shifts,
        entries=1 << stride,
        table_addr=_bits(PT_OA_BITS_MAX - 1, gs),
        table_res0=table_res0,
        leaf_addr=leaf_addr,
        leaf_res0=leaf_res0,
        block_ok=block_ok,
    )


class PageWalker:
    """A walk session: one regime, one memory reader, and a cache of the table pages read.

    Every table is read whole, once per session, and unpacked into a tuple of descriptors;
    make a new walker (or call :meth:`clear_cache`) after the guest may have changed its
    tables. ``strict`` chooses between raising :class:`CorruptTable` (the oracle's default:
    our firmware must never write such descriptors) and returning the hardware's Fault.
    """

    def __init__(
        self, read_phys: ReadPhys, regime: Regime, *, strict: bool = True, max_cached_tables: int = 4096
    ) -> None:
        self.read_phys = read_phys
        self.regime = regime
        self.strict = strict
        self.max_cached_tables = max_cached_tables
        self.tables_read = 0
        self.bytes_read = 0
        self._cache: dict[int, tuple[int, ...]] = {}
        self._fmt_char = ">" if regime.big_endian else "<"
        self._geo = {
            h.select: _geometry(h, regime.lpa_implemented)
            for h in (regime.ttbr0, regime.ttbr1)
            if h.problem is None
        }
        self._attrs = tuple(self._attr(i) for i in range(8))

    def _attr(self, index: int) -> tuple[int, str | None, str]:
        byte = (self.regime.mair >> (8 * index)) & 0xFF
        return byte, cache_mode(byte), describe_memtype(byte)

    def clear_cache(self) -> None:
        """Forget every table read so far (the guest may have changed them)."""
        self._cache.clear()

    def _table(self, pa: int, count: int) -> tuple[int, ...]:
        table = self._cache.get(pa)
        if table is None or len(table) < count:
            raw = self.read_phys(pa, count * 8)
            if len(raw) != count * 8:
                raise PagewalkError(f"read_phys({pa:#x}, {count * 8}) returned {len(raw)} bytes")
            if len(self._cache) >= self.max_cached_tables:
                self._cache.clear()
            table = struct.unpack(f"{self._fmt_char}{count}Q", raw)
            self._cache[pa] = table
            self.tables_read += 1
            self.bytes_read += count * 8
        return table

    # ---- checks shared by walk and iter_mappings
    def _usable(self, half: HalfRegime) -> _Geometry:
        if half.problem is not None:
            raise RegimeError(half.problem)
        if half.base_res0 and self.strict:
            raise RegimeError(
                f"TTBR{half.select}_EL1 base {half.base:#x} has bits {half.base_res0:#x} set "
                f"below the {max(64, half.start_entries * 8)}-byte table alignment"
            )
        return self._geo[half.select]

    def _bad(
        self, reason: str, kind: FaultKind, *, va: int, half: HalfRegime, level: int, dpa: int, desc: int
    ) -> Fault:
        fault = Fault(
            va=va, kind=kind, level=level, reason=reason, ttbr=half.select, descriptor_pa=dpa, descriptor=desc
        )
        if self.strict:
            raise CorruptTable(reason, va=va, level=level, descriptor_pa=dpa, descriptor=desc, fault=fault)
        return fault

    def _next_table(
        self, half: HalfRegime, geo: _Geometry, level: int, desc: int, dpa: int, va: int
    ) -> int | Fault:
        nxt = desc & geo.table_addr
        if half.lpa:
            nxt |= ((desc >> PTE_LPA_OA_SHIFT) & PTE_LPA_OA_MASK) << PTE_LPA_OA_BIT
        if desc & geo.table_res0:
            reason = f"table descriptor has RES0 bits {desc & geo.table_res0:#x} set"
            kind = FaultKind.TRANSLATION
        elif nxt >> half.pa_bits:
            reason = f"next-level table address {nxt:#x} is beyond the {half.pa_bits}-bit PA size"
            kind = FaultKind.ADDRESS_SIZE
        else:
            return nxt
        return self._bad(reason, kind, va=va, half=half, level=level, dpa=dpa, desc=desc)

    def _leaf_problem(
        self, half: HalfRegime, geo: _Geometry, level: int, desc: int, out: int, sh: int
    ) -> tuple[str, FaultKind] | None:
        """Why a leaf descriptor is corrupt (in the order the walker checks), or None."""
        if level == PT_LAST_LEVEL:
            if not desc & PTE_TABLE_OR_PAGE:
                return "descriptor type 0b01 is reserved at level 3", FaultKind.TRANSLATION
        elif not geo.block_ok[level]:
            return (
                f"a block descriptor is not allowed at level {level} with the "
                f"{half.granule // 1024}K granule",
                FaultKind.TRANSLATION,
            )
        res0 = desc & geo.leaf_res0[level]
        if res0:
            kind = LeafKind.PAGE if level == PT_LAST_LEVEL else LeafKind.BLOCK
            return f"{kind} descriptor has RES0 bits {res0:#x} set", FaultKind.TRANSLATION
        if out >> half.pa_bits:
            return f"output address {out:#x} is beyond the {half.pa_bits}-bit PA size", FaultKind.ADDRESS_SIZE
        if sh == 1 and self.strict:  # not strict: reported as RESERVED, the hardware does not fault
            return "SH=0b01 is a reserved shareability encoding", FaultKind.TRANSLATION
        return None

    def _leaf(
        self,
        half: HalfRegime,
        geo: _Geometry,
        level: int,
        desc: int,
        dpa: int,
        va: int,
        tattrs: int,
        whole: bool,
    ) -> Translation | Fault:
        kind = LeafKind.PAGE if level == PT_LAST_LEVEL else LeafKind.BLOCK
        size = 1 << geo.shifts[level]
        out = desc & geo.leaf_addr[level]
        if half.lpa:
            out |= ((desc >> PTE_LPA_OA_SHIFT) & PTE_LPA_OA_MASK) << PTE_LPA_OA_BIT
        sh = (desc >> PTE_SH_SHIFT) & PTE_SH_MASK
        problem = self._leaf_problem(half, geo, level, desc, out, sh)
        if problem is not None:
            return self._bad(*problem, va=va, half=half, level=level, dpa=dpa, desc=desc)
        ap = (desc >> PTE_AP_SHIFT) & PTE_AP_MASK
        ap_ro = PTE_AP_RO >> PTE_AP_SHIFT
        if tattrs & TABLE_AP_NO_EL0:
            ap &= ap_ro
        if tattrs & TABLE_AP_RO:
            ap |= ap_ro
        index = (desc >> PTE_ATTRINDX_SHIFT) & PTE_ATTRINDX_MASK
        byte, cache, memtype = self._attrs[index]
        if whole:
            va_out, pa_out = va & ~(size - 1), out
        else:
            va_out, pa_out = va, out | (va & (size - 1))
        return Translation(
            va=va_out,
            pa=pa_out,
            ttbr=half.select,
            granule=half.granule,
            level=level,
            kind=kind,
            size=size,
            descriptor=desc,
            descriptor_pa=dpa,
            ap=ap,
            el1=_EL1[ap],
            el0=_EL0[ap],
            uxn=bool(desc & PTE_UXN or tattrs & TABLE_UXN),
            pxn=bool(desc & PTE_PXN or tattrs & TABLE_PXN),
            sh=_SH[sh],
            af=bool(desc & PTE_AF),
            ng=bool(desc & PTE_NG),
            contiguous=bool(desc & PTE_CONTIGUOUS),
            attr_index=index,
            mair_byte=byte,
            cache=cache,
            memtype=memtype,
        )

    # ---- public
    def walk(self, va: int) -> WalkResult:
        """Translate one VA the way an EL1 data access would (permissions are reported, not
        checked). A miss is a :class:`Fault`; corruption raises unless ``strict=False``."""
        if not 0 <= va < VA_LIMIT:
            raise InvalidInput(f"VA {va:#x} is not a 64-bit address")
        regime = self.regime
        if not regime.mmu_on:
            if va >> regime.pa_bits:
                return Fault(
                    va,
                    FaultKind.ADDRESS_SIZE,
                    0,
                    f"MMU off and VA is beyond the {regime.pa_bits}-bit PA size",
                )
            return Identity(va=va, pa=va)
        half = regime.ttbr1 if (va >> 55) & 1 else regime.ttbr0
        top = 56 if half.tbi else 64
        high = (va & ((1 << top) - 1)) >> half.input_bits
        if high != (0 if half.select == 0 else (1 << (top - half.input_bits)) - 1):
            return Fault(
                va,
                FaultKind.TRANSLATION,
                0,
                f"VA is outside both halves (T{half.select}SZ={half.txsz})",
                ttbr=half.select,
            )
        if half.disabled:
            return Fault(
                va,
                FaultKind.TRANSLATION,
                0,
                f"TCR_EL1.EPD{half.select}=1: walks of this half are disabled",
                ttbr=half.select,
            )
        geo = self._usable(half)
        if half.base >> half.pa_bits:
            return Fault(
                va,
                FaultKind.ADDRESS_SIZE,
                0,
                f"TTBR{half.select}_EL1 base {half.base:#x} is beyond the {half.pa_bits}-bit PA size",
                ttbr=half.select,
            )
        level, table, count, tattrs = half.start_level, half.base, half.start_entries, 0
        shifts = geo.shifts
        while True:
            entries = self._cache.get(table)
            if entries is None or len(entries) < count:
                entries = self._table(table, count)
            index = (va >> shifts[level]) & (count - 1)
            desc = entries[index]
            dpa = table + 8 * index
            if not desc & PTE_VALID:
                return Fault(
                    va,
                    FaultKind.TRANSLATION,
                    level,
                    "invalid descriptor",
                    ttbr=half.select,
                    descriptor_pa=dpa,
                    descriptor=desc,
                )
            if level < PT_LAST_LEVEL and desc & PTE_TABLE_OR_PAGE:
                nxt = self._next_table(half, geo, level, desc, dpa, va)
                if isinstance(nxt, Fault):
                    return nxt
                if not half.hpd:
                    tattrs |= desc >> PTE_TABLE_ATTRS_SHIFT
                level, table, count = level + 1, nxt, geo.entries
                continue
            leaf = self._leaf(half, geo, level, desc, dpa, va, tattrs, whole=False)
            if isinstance(leaf, Translation) and not leaf.af and not regime.ha:
                return Fault(
                    va,
                    FaultKind.ACCESS_FLAG,
                    level,
                    "access flag is 0",
                    ttbr=half.select,
                    descriptor_pa=dpa,
                    descriptor=desc,
                )
            return leaf

    def iter_mappings(self, start: int = 0, end: int = VA_LIMIT) -> Iterator[Translation]:
        """Every valid leaf intersecting VA ``[start, end)``, in VA order, as whole leaves
        (``va``/``pa`` are the leaf's start). Invalid subtrees are skipped without reading
        them; leaves with AF=0 are included (``af=False``). Canonical VAs only (no TBI tags).
        Corruption raises (strict) or the corrupt entry is skipped."""
        if not 0 <= start <= end <= VA_LIMIT:
            raise InvalidInput(f"bad VA range [{start:#x}, {end:#x})")
        if not self.regime.mmu_on:
            raise RegimeError("SCTLR_EL1.M=0: the MMU is off, there are no mappings to enumerate")
        for half in (self.regime.ttbr0, self.regime.ttbr1):
            lo, hi = half.va_window
            s, e = max(start, lo), min(end, hi)
            if s >= e or half.disabled:
                continue
            geo = self._usable(half)
            if half.base >> half.pa_bits:
                if self.strict:
                    raise RegimeError(
                        f"TTBR{half.select}_EL1 base {half.base:#x} is beyond the {half.pa_bits}-bit PA size"
                    )
                continue
            yield from self._iter_table(
                half, geo, half.start_level, half.base, half.start_entries, lo, s, e, 0
            )

    def _iter_table(
        self,
        half: HalfRegime,
        geo: _Geometry,
        level: int,
        table: int,
        count: int,
        table_va: int,
        s: int,
        e: int,
        tattrs: int,
    ) -> Iterator[Translation]:
        shift = geo.shifts[level]
        entries = self._table(table, count)
        first = (s - table_va) >> shift
        last = (e - 1 - table_va) >> shift
        for index in range(first, last + 1):
            desc = entries[index]
            if not desc & PTE_VALID:
                continue
            va = table_va + (index << shift)
            dpa = table + 8 * index
            if level < PT_LAST_LEVEL and desc & PTE_TABLE_OR_PAGE:
                nxt = self._next_table(half, geo, level, desc, dpa, va)
                if isinstance(nxt, Fault):
                    continue
                sub = tattrs if half.hpd else tattrs | desc >> PTE_TABLE_ATTRS_SHIFT
                span = 1 << shift
                yield from self._iter_table(
                    half, geo, level + 1, nxt, geo.entries, va, max(s, va), min(e, va + span), sub
                )
                continue
            leaf = self._leaf(half, geo, level, desc, dpa, va, tattrs, whole=True)
            if isinstance(leaf, Translation):
                yield leaf


# --------------------------------------------------------------------------- one-shot helpers
def walk(read_phys: ReadPhys, regime: Regime, va: int, *, strict: bool = True) -> WalkResult:
    """Translate one VA with a throwaway session (use :class:`PageWalker` for many)."""
    return PageWalker(read_phys, regime, strict=strict).walk(va)


def iter_mappings(
    read_phys: ReadPhys, regime: Regime, start: int = 0, end: int = VA_LIMIT, *, strict: bool = True
) -> Iterator[Translation]:
    """Every valid leaf intersecting ``[start, end)``; see :meth:`PageWalker.iter_mappings`."""
    return PageWalker(read_phys, regime, strict=strict).iter_mappings(start, end)
