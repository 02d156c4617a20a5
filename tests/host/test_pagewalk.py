"""The stage-1 walker against hand-written descriptors and against an independent builder.

The golden tests spell descriptors out in hex (worked by hand from the Arm ARM), so a shared
misunderstanding between ``ptbuilder`` and the walker still shows up; the Hypothesis tests
then cover the space the hand-written ones cannot.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ptbuilder import (
    BLOCK_LEVELS,
    CLASSIC_MAIR,
    IPS_48,
    LEVEL_SHIFT,
    Half,
    Ram,
    leaf_attrs,
    tcr,
)

from harness.oracle.pagewalk import (
    MAIR_TO_CACHE_MODE,
    CorruptTable,
    Fault,
    FaultKind,
    Identity,
    LeafKind,
    PageWalker,
    Regime,
    RegimeError,
    Shareability,
    Translation,
    cache_mode,
    describe_memtype,
    iter_mappings,
    walk,
)

RAM = 0x4000_0000
T1_39 = (1 << 64) - (1 << 39)     # lowest TTBR1 VA with T1SZ=25
EPD1 = 1 << 23


def regime(*, ttbr0: int = 0, ttbr1: int = 0, tcr_el1: int, mair: int = CLASSIC_MAIR, sctlr: int = 1,
           mmfr0: int | None = None) -> Regime:
    return Regime.from_registers(ttbr0_el1=ttbr0, ttbr1_el1=ttbr1, tcr_el1=tcr_el1, mair_el1=mair,
                                 sctlr_el1=sctlr, id_aa64mmfr0_el1=mmfr0)


def fresh_ram(size: int) -> Ram:
    ram = Ram(RAM)
    ram.alloc(size, 4096)
    return ram


def ok(result: object) -> Translation:
    assert isinstance(result, Translation), result
    return result


def fault(result: object) -> Fault:
    assert isinstance(result, Fault), result
    return result


# ----------------------------------------------------------------------------- 4K, by hand
# T0SZ=T1SZ=25 (39-bit halves, start level 1), TG0=4K (0b00), TG1=4K (0b10), IPS=48 bits.
TCR_4K_39 = 25 | (25 << 16) | (0b10 << 30) | (0b101 << 32)
GOLDEN_4K = {
    0x4000_0000: 0x0000_0000_4000_1003,  # L1[0] -> L2 table at 0x40001000
    0x4000_0008: 0x0000_0000_8000_0701,  # L1[1]: 1G block VA 0x40000000 -> 0x80000000, inner, AF, idx0
    0x4000_1000: 0x0000_0000_4000_2003,  # L2[0] -> L3 table at 0x40002000
    0x4000_1008: 0x0060_0000_4060_06C5,  # L2[1]: 2M block -> 0x40600000, UXN PXN AF outer AP=11 idx1
    0x4000_2000: 0x0000_0000_4000_5C4B,  # L3[0]: page -> 0x40005000, nG AF non AP=01 idx2
    0x4000_2008: 0x0000_0000_4000_6303,  # L3[1]: page with AF=0
    0x4000_3008: 0x0000_0000_C000_048D,  # TTBR1 L1[1]: 1G block -> 0xC0000000, AF non AP=10 idx3
}


def golden_4k() -> tuple[Ram, Regime]:
    ram = fresh_ram(0x8000)
    for pa, desc in GOLDEN_4K.items():
        ram.write64(pa, desc)
    return ram, regime(ttbr0=0x4000_0000, ttbr1=0x4000_3000, tcr_el1=TCR_4K_39)


def test_4k_regime_decode() -> None:
    _, reg = golden_4k()
    for half in (reg.ttbr0, reg.ttbr1):
        assert (half.granule, half.input_bits, half.start_level, half.start_entries) == (4096, 39, 1, 512)
        assert half.pa_bits == 48 and half.problem is None
    assert reg.ttbr1.va_window == (T1_39, 1 << 64)


def test_4k_level3_page() -> None:
    ram, reg = golden_4k()
    t = ok(walk(ram.read, reg, 0x0123))
    assert (t.va, t.pa, t.level, t.kind, t.size) == (0x123, 0x4000_5123, 3, LeafKind.PAGE, 4096)
    assert (t.descriptor, t.descriptor_pa, t.ttbr) == (0x4000_5C4B, 0x4000_2000, 0)
    assert (t.el1, t.el0, t.ap) == ("rw", "rw", 1)
    assert (t.uxn, t.pxn, t.sh) == (False, False, Shareability.NON)
    assert (t.af, t.ng, t.contiguous) == (True, True, False)
    assert (t.attr_index, t.mair_byte, t.cache, t.memtype) == (2, 0xBB, "writethru", "Normal WT")


def test_4k_level2_block() -> None:
    ram, reg = golden_4k()
    t = ok(walk(ram.read, reg, 0x20_1234))
    assert (t.pa, t.level, t.kind, t.size, t.va_base, t.pa_base) == (
        0x4060_1234, 2, LeafKind.BLOCK, 2 << 20, 0x20_0000, 0x4060_0000)
    assert (t.el1, t.el0, t.uxn, t.pxn, t.sh) == ("ro", "ro", True, True, Shareability.OUTER)
    assert (t.mair_byte, t.cache, t.memtype) == (0x44, "writecombine", "Normal NC")


def test_4k_level1_block() -> None:
    ram, reg = golden_4k()
    t = ok(walk(ram.read, reg, 0x7FFF_FFF8))
    assert (t.pa, t.level, t.size, t.sh, t.cache, t.el0) == (0xBFFF_FFF8, 1, 1 << 30, Shareability.INNER,
                                                             "copyback", "none")
    assert t.memtype == "Normal WB"


def test_4k_ttbr1_block() -> None:
    ram, reg = golden_4k()
    t = ok(walk(ram.read, reg, T1_39 + 0x4000_1234))
    assert (t.ttbr, t.pa, t.level, t.descriptor_pa) == (1, 0xC000_1234, 1, 0x4000_3008)
    assert (t.el1, t.el0, t.sh, t.cache, t.memtype) == ("ro", "none", Shareability.NON, "inhibit",
                                                        "Device-nGnRnE")


def test_4k_faults() -> None:
    ram, reg = golden_4k()
    f = fault(walk(ram.read, reg, 0x1000))
    assert (f.kind, f.level, f.descriptor_pa, f.descriptor) == (FaultKind.ACCESS_FLAG, 3, 0x4000_2008,
                                                                0x4000_6303)
    f = fault(walk(ram.read, reg, 0x2000))
    assert (f.kind, f.level, f.descriptor) == (FaultKind.TRANSLATION, 3, 0)
    f = fault(walk(ram.read, reg, 0x8000_0000))
    assert (f.kind, f.level, f.descriptor_pa) == (FaultKind.TRANSLATION, 1, 0x4000_0010)
    for gap in (1 << 39, 0x00FF_FFFF_FFFF_FFFF, T1_39 - 1, 0x8000_0000_0000_0000):
        f = fault(walk(ram.read, reg, gap))
        assert (f.kind, f.level) == (FaultKind.TRANSLATION, 0), hex(gap)
    f = fault(walk(ram.read, reg, T1_39))     # TTBR1 L1[0] is empty
    assert (f.kind, f.level, f.ttbr) == (FaultKind.TRANSLATION, 1, 1)


def test_4k_hardware_access_flag() -> None:
    ram, reg = golden_4k()
    reg_ha = regime(ttbr0=0x4000_0000, ttbr1=0x4000_3000, tcr_el1=TCR_4K_39 | (1 << 39))
    t = ok(walk(ram.read, reg_ha, 0x1000))
    assert not t.af and t.pa == 0x4000_6000
    assert isinstance(walk(ram.read, reg, 0x1000), Fault)


def test_4k_iter_mappings() -> None:
    ram, reg = golden_4k()
    got = [(t.va, t.pa, t.level, t.af) for t in iter_mappings(ram.read, reg)]
    assert got == [
        (0x0, 0x4000_5000, 3, True),
        (0x1000, 0x4000_6000, 3, False),
        (0x20_0000, 0x4060_0000, 2, True),
        (0x4000_0000, 0x8000_0000, 1, True),
        (T1_39 + 0x4000_0000, 0xC000_0000, 1, True),
    ]
    assert [t.va for t in iter_mappings(ram.read, reg, 0x1000, 0x20_0001)] == [0x1000, 0x20_0000]
    assert list(iter_mappings(ram.read, reg, 0x2000, 0x20_0000)) == []


def test_cache_reads_each_table_once() -> None:
    ram, reg = golden_4k()
    walker = PageWalker(ram.read, reg)
    for va in range(0, 0x4000, 0x100):
        walker.walk(va)
    assert walker.tables_read == 3 and ram.reads == 3
    walker.clear_cache()
    walker.walk(0)
    assert ram.reads == 6


def test_table_attributes_and_hpd() -> None:
    ram, _ = golden_4k()
    # APTable=0b11 (no EL0, read-only), UXNTable, PXNTable on L1[0]
    ram.write64(0x4000_0000, 0x4000_1003 | (0b1111 << 59))
    t = ok(walk(ram.read, regime(ttbr0=0x4000_0000, tcr_el1=TCR_4K_39), 0x0))
    assert (t.el1, t.el0, t.ap, t.uxn, t.pxn) == ("ro", "none", 2, True, True)
    hpd0 = TCR_4K_39 | (1 << 41)
    t = ok(walk(ram.read, regime(ttbr0=0x4000_0000, tcr_el1=hpd0), 0x0))
    assert (t.el1, t.el0, t.uxn, t.pxn) == ("rw", "rw", False, False)


def test_epd_tbi_and_mmu_off() -> None:
    ram, _ = golden_4k()
    f = fault(walk(ram.read, regime(ttbr0=RAM, tcr_el1=TCR_4K_39 | (1 << 7)), 0x0))
    assert (f.kind, f.level) == (FaultKind.TRANSLATION, 0) and "EPD0" in f.reason
    tagged = 0xAB00_0000_0000_0123
    assert isinstance(walk(ram.read, regime(ttbr0=RAM, tcr_el1=TCR_4K_39), tagged), Fault)
    t = ok(walk(ram.read, regime(ttbr0=RAM, tcr_el1=TCR_4K_39 | (1 << 37)), tagged))
    assert (t.va, t.pa) == (tagged, 0x4000_5123)
    off = walk(ram.read, regime(tcr_el1=0, sctlr=0), 0x4000_1234)
    assert off == Identity(va=0x4000_1234, pa=0x4000_1234)
    f = fault(walk(ram.read, regime(tcr_el1=0, sctlr=0, mmfr0=0x1124), 1 << 44))
    assert f.kind == FaultKind.ADDRESS_SIZE
    with pytest.raises(RegimeError, match="MMU is off"):
        list(iter_mappings(ram.read, regime(tcr_el1=0, sctlr=0)))


def test_big_endian_tables() -> None:
    ram = Ram(RAM, big_endian=True)
    ram.alloc(0x8000, 4096)
    for pa, desc in GOLDEN_4K.items():
        ram.write64(pa, desc)
    reg = regime(ttbr0=RAM, tcr_el1=TCR_4K_39, sctlr=1 | (1 << 25))
    assert ok(walk(ram.read, reg, 0x20_0010)).pa == 0x4060_0010


# ----------------------------------------------------------------------------- 16K and 64K, by hand
# 16K, T0SZ=16: 48-bit, start level 0 with 2 entries; TG1=0b01 is 16K.
TCR_16K_48 = 16 | (0b10 << 14) | (16 << 16) | (0b01 << 30) | (0b101 << 32)
GOLDEN_16K = {
    0x4000_0000: 0x4000_4003,                 # L0[0] -> L1 at 0x40004000
    0x4000_4000: 0x4000_8003,                 # L1[0] -> L2 at 0x40008000
    0x4000_8000: 0x4000_C003,                 # L2[0] -> L3 at 0x4000C000
    0x4000_8008: 0x4200_0701,                 # L2[1]: 32M block VA 0x2000000 -> 0x42000000
    0x4000_C008: 0x0010_0000_4001_0413,       # L3[1]: page VA 0x4000 -> 0x40010000, contiguous, idx4
}


def golden_16k() -> tuple[Ram, Regime]:
    ram = fresh_ram(0x10000)
    for pa, desc in GOLDEN_16K.items():
        ram.write64(pa, desc)
    return ram, regime(ttbr0=RAM, tcr_el1=TCR_16K_48 | EPD1)


def test_16k() -> None:
    ram, reg = golden_16k()
    assert (reg.ttbr0.start_level, reg.ttbr0.start_entries, reg.ttbr0.granule) == (0, 2, 16384)
    assert (reg.ttbr1.granule, reg.ttbr1.start_level) == (16384, 0)
    t = ok(walk(ram.read, reg, 0x4567))
    assert (t.pa, t.level, t.size, t.contiguous, t.contiguous_span) == (0x4001_0567, 3, 16384, True, 2 << 20)
    assert (t.attr_index, t.mair_byte, t.cache) == (4, 0xFF, "copyback")
    t = ok(walk(ram.read, reg, 0x2FF_FFFF))
    assert (t.pa, t.level, t.kind, t.size) == (0x42FF_FFFF, 2, LeafKind.BLOCK, 32 << 20)
    assert fault(walk(ram.read, reg, 0x8000)).level == 3
    assert fault(walk(ram.read, reg, 1 << 47)).level == 0        # L0[1] empty
    assert fault(walk(ram.read, reg, 1 << 36)).level == 1
    assert [(t.va, t.level) for t in iter_mappings(ram.read, reg)] == [(0x4000, 3), (0x200_0000, 2)]


# 64K, T0SZ=16: 48-bit, start level 1 with 64 entries; TG0=0b01, TG1=0b11.
TCR_64K_48 = 16 | (0b01 << 14) | (16 << 16) | (0b11 << 30) | (0b101 << 32)
GOLDEN_64K = {
    0x4000_0000: 0x4001_0003,                 # L1[0] -> L2 at 0x40010000
    0x4001_0000: 0x4002_0003,                 # L2[0] -> L3 at 0x40020000
    0x4001_0008: 0x0060_0000_6000_0415,       # L2[1]: 512M block -> 0x60000000, idx5, UXN PXN
    0x4002_0010: 0x4005_041B,                 # L3[2]: page VA 0x20000 -> 0x40050000, idx6
}


def golden_64k() -> tuple[Ram, Regime]:
    ram = fresh_ram(0x30000)
    for pa, desc in GOLDEN_64K.items():
        ram.write64(pa, desc)
    return ram, regime(ttbr0=RAM, tcr_el1=TCR_64K_48 | EPD1)


def test_64k() -> None:
    ram, reg = golden_64k()
    assert (reg.ttbr0.start_level, reg.ttbr0.start_entries, reg.ttbr1.granule) == (1, 64, 65536)
    t = ok(walk(ram.read, reg, 0x2_ABCD))
    assert (t.pa, t.level, t.size, t.cache, t.memtype) == (0x4005_ABCD, 3, 65536, "postedreordered",
                                                           "Device-nGRE")
    t = ok(walk(ram.read, reg, 0x3000_0000))
    assert (t.pa, t.level, t.size, t.cache, t.memtype, t.uxn, t.pxn) == (
        0x7000_0000, 2, 512 << 20, "posted", "Device-nGnRE", True, True)
    assert [t.va for t in iter_mappings(ram.read, reg)] == [0x2_0000, 0x2000_0000]


def test_64k_52bit_output() -> None:
    ram, _ = golden_64k()
    ram.write64(0x4002_0018, 0x4005_3403)    # L3[3]: OA[51:48]=3 in bits [15:12]
    reg52 = regime(ttbr0=RAM, tcr_el1=(TCR_64K_48 & ~(7 << 32)) | (0b110 << 32))
    assert reg52.ttbr0.pa_bits == 52 and reg52.ttbr0.lpa
    assert ok(walk(ram.read, reg52, 0x3_0010)).pa == 0x3_0000_4005_0010
    with pytest.raises(CorruptTable, match="RES0"):     # the same bits are RES0 with 48-bit output
        walk(ram.read, regime(ttbr0=RAM, tcr_el1=TCR_64K_48), 0x3_0010)
    # 4K with IPS=52 and no TCR.DS is still a 48-bit output size
    assert regime(ttbr0=RAM, tcr_el1=(TCR_4K_39 & ~(7 << 32)) | (0b110 << 32)).ttbr0.pa_bits == 48


# ----------------------------------------------------------------------------- every attribute combination
@pytest.mark.parametrize("granule", [4096, 16384, 65536])
def test_every_attribute_combination(granule: int) -> None:
    ram = Ram(RAM)
    half = Half(ram, granule, 39 if granule != 65536 else 42)
    combos = list(itertools.product(range(4), (0, 2, 3), range(8), (False, True), (False, True)))
    page = LEVEL_SHIFT[granule][3]
    for n, (ap, sh, idx, uxn, pxn) in enumerate(combos):
        half.map(n << page, 0x8000_0000 + (n << page), 3, leaf_attrs(attr_index=idx, ap=ap, sh=sh,
                                                                      uxn=uxn, pxn=pxn))
    reg = regime(ttbr0=half.root, tcr_el1=tcr(t0=(granule, half.va_bits)))
    walker = PageWalker(ram.read, reg)
    el1 = {0: "rw", 1: "rw", 2: "ro", 3: "ro"}
    el0 = {0: "none", 1: "rw", 2: "none", 3: "ro"}
    shs = {0: "non", 2: "outer", 3: "inner"}
    mair = [(CLASSIC_MAIR >> (8 * i)) & 0xFF for i in range(8)]
    for n, (ap, sh, idx, uxn, pxn) in enumerate(combos):
        t = ok(walker.walk((n << page) + 8))
        assert (t.el1, t.el0, t.sh, t.uxn, t.pxn) == (el1[ap], el0[ap], shs[sh], uxn, pxn)
        assert (t.attr_index, t.mair_byte, t.cache) == (idx, mair[idx], MAIR_TO_CACHE_MODE[mair[idx]])
        assert t.pa == 0x8000_0008 + (n << page)


def test_memtype_and_cache_names() -> None:
    expected = {
        0xFF: ("copyback", "Normal WB"), 0x00: ("inhibit", "Device-nGnRnE"),
        0xBB: ("writethru", "Normal WT"), 0x44: ("writecombine", "Normal NC"),
        0x04: ("posted", "Device-nGnRE"), 0x08: ("postedreordered", "Device-nGRE"),
        0x0C: ("postedcombinedreordered", "Device-GRE"),
        0x4F: ("copybackinner", "Normal inner WB, outer NC"),
    }
    for byte, (name, memtype) in expected.items():
        assert (cache_mode(byte), describe_memtype(byte)) == (name, memtype)
    assert cache_mode(0xEE) is None
    assert describe_memtype(0xEE) == "Normal WB RA"
    assert describe_memtype(0x77) == "Normal WB transient"
    assert describe_memtype(0x02) == "reserved (0x02)"
    assert describe_memtype(0x40) == "Normal NC XS=0"


# ----------------------------------------------------------------------------- corrupt tables
def corrupt(ram: Ram, reg: Regime, pa: int, desc: int, va: int, match: str, level: int) -> CorruptTable:
    ram.write64(pa, desc)
    with pytest.raises(CorruptTable, match=match) as info:
        walk(ram.read, reg, va)
    err = info.value
    assert (err.level, err.descriptor_pa, err.descriptor) == (level, pa, desc)
    assert f"{pa:#x}" in str(err) and f"level {level}" in str(err)
    soft = walk(ram.read, reg, va, strict=False)
    assert soft == err.fault
    return err


def test_corrupt_reserved_level3_encoding() -> None:
    ram, reg = golden_4k()
    err = corrupt(ram, reg, 0x4000_2018, 0x4000_7401, 0x3000, "reserved at level 3", 3)
    assert err.fault.kind == FaultKind.TRANSLATION


@pytest.mark.parametrize(("which", "pa", "desc", "va", "level"), [
    ("4k-l0", 0, 0x401, 0, 0),                       # built below with a 48-bit 4K half
    ("16k-l1", 0x4000_4008, 0x10_0000_0401, 1 << 36, 1),
    ("64k-l1", 0x4000_0008, 0x400_0000_0401, 1 << 42, 1),
])
def test_corrupt_block_at_forbidden_level(which: str, pa: int, desc: int, va: int, level: int) -> None:
    if which == "4k-l0":
        ram = fresh_ram(0x1000)
        reg = regime(ttbr0=RAM, tcr_el1=tcr(t0=(4096, 48)))
        pa = RAM
    elif which == "16k-l1":
        ram, reg = golden_16k()
    else:
        ram, reg = golden_64k()
    err = corrupt(ram, reg, pa, desc, va, "block descriptor is not allowed", level)
    assert err.fault.kind == FaultKind.TRANSLATION


def test_64k_level1_block_allowed_with_lpa() -> None:
    ram, _ = golden_64k()
    ram.write64(0x4000_0008, 0x400_0000_0401)
    reg52 = regime(ttbr0=RAM, tcr_el1=(TCR_64K_48 & ~(7 << 32)) | (0b110 << 32))
    t = ok(walk(ram.read, reg52, (1 << 42) + 5))
    assert (t.level, t.size, t.pa) == (1, 1 << 42, (1 << 42) + 5)


def test_corrupt_addresses_beyond_pa_size() -> None:
    ram, _ = golden_4k()
    reg40 = regime(ttbr0=RAM, tcr_el1=(TCR_4K_39 & ~(7 << 32)) | (0b010 << 32))   # IPS=40 bits
    err = corrupt(ram, reg40, 0x4000_1010, (1 << 40) | 0x701, 0x40_0000, "beyond the 40-bit", 2)
    assert err.fault.kind == FaultKind.ADDRESS_SIZE
    err = corrupt(ram, reg40, 0x4000_1018, (1 << 41) | 0x3, 0x60_0000, "table address", 2)
    assert err.fault.kind == FaultKind.ADDRESS_SIZE
    mmfr0_44 = regime(ttbr0=RAM, tcr_el1=TCR_4K_39, mmfr0=0x1124)      # Cortex-A57: PARange 44 bits
    assert mmfr0_44.ttbr0.pa_bits == 44
    corrupt(ram, mmfr0_44, 0x4000_1010, (1 << 45) | 0x701, 0x40_0000, "beyond the 44-bit", 2)
    f = fault(walk(ram.read, regime(ttbr0=1 << 45, tcr_el1=TCR_4K_39, mmfr0=0x1124), 0))
    assert (f.kind, f.level) == (FaultKind.ADDRESS_SIZE, 0)


def test_corrupt_res0_bits() -> None:
    ram, reg = golden_4k()
    corrupt(ram, reg, 0x4000_0000, 0x4000_1003 | (1 << 48), 0x0, "table descriptor has RES0", 1)
    ram, reg = golden_4k()
    corrupt(ram, reg, 0x4000_2000, 0x4000_5C4B | (1 << 49), 0x0, "page descriptor has RES0", 3)
    ram, reg = golden_4k()
    corrupt(ram, reg, 0x4000_1008, 0x0060_0000_4060_06C5 | (1 << 13), 0x20_0000, "block descriptor", 2)
    ram, reg = golden_16k()
    corrupt(ram, reg, 0x4000_4000, 0x4000_8003 | (1 << 12), 0x0, "table descriptor has RES0", 1)
    ram, reg = golden_64k()
    corrupt(ram, reg, 0x4002_0010, 0x4005_141B, 0x2_0000, "page descriptor has RES0", 3)


def test_reserved_shareability() -> None:
    ram, reg = golden_4k()
    ram.write64(0x4000_2000, 0x4000_5C4B | (0b01 << 8))
    with pytest.raises(CorruptTable, match="SH=0b01"):
        walk(ram.read, reg, 0x0)
    assert ok(walk(ram.read, reg, 0x0, strict=False)).sh == Shareability.RESERVED


def test_corrupt_in_iter_mappings() -> None:
    ram, reg = golden_4k()
    ram.write64(0x4000_2018, 0x4000_7401)
    with pytest.raises(CorruptTable):
        list(iter_mappings(ram.read, reg))
    assert len(list(iter_mappings(ram.read, reg, strict=False))) == 5


def test_bad_registers() -> None:
    with pytest.raises(RegimeError, match="DS=1"):
        regime(tcr_el1=TCR_4K_39 | (1 << 59))
    with pytest.raises(RegimeError, match="IPS"):
        regime(tcr_el1=TCR_4K_39 | (0b111 << 32))
    ram, _ = golden_4k()
    reset_tcr = regime(ttbr0=RAM, tcr_el1=0)          # TCR_EL1 reset value: T0SZ=0, TG1=0b00
    with pytest.raises(RegimeError, match="T0SZ=0"):
        walk(ram.read, reset_tcr, 0)
    with pytest.raises(RegimeError, match="TG1=0b00"):
        walk(ram.read, reset_tcr, 0xFFFF_FFFF_FFFF_0000)
    # TG1 reserved but EPD1 set: walks of TTBR1 just fault, TTBR0 is unaffected
    assert fault(walk(ram.read, regime(ttbr0=RAM, tcr_el1=25 | (1 << 23) | (5 << 32)),
                       0xFFFF_FFFF_FFFF_0000)).level == 0
    with pytest.raises(RegimeError, match="16K granule is not implemented"):
        walk(ram.read, regime(ttbr0=RAM, tcr_el1=TCR_16K_48, mmfr0=0x1124), 0)
    with pytest.raises(RegimeError, match="alignment"):
        walk(ram.read, regime(ttbr0=RAM + 0x100, tcr_el1=TCR_4K_39), 0)
    # not strict: the low bits are ignored the way the hardware masks them
    assert ok(walk(ram.read, regime(ttbr0=RAM + 0x101, tcr_el1=TCR_4K_39), 0, strict=False)).pa == 0x4000_5000
    with pytest.raises(ValueError):
        walk(ram.read, reset_tcr, 1 << 64)


@pytest.mark.parametrize(("granule", "txsz", "start_level", "entries"), [
    (4096, 16, 0, 512), (4096, 25, 1, 512), (4096, 30, 1, 16), (4096, 34, 2, 512), (4096, 39, 2, 16),
    (4096, 48, 3, 16), (16384, 16, 0, 2), (16384, 17, 1, 2048), (16384, 28, 2, 2048), (16384, 29, 2, 1024),
    (16384, 39, 3, 2048), (16384, 48, 3, 4), (65536, 12, 1, 1024), (65536, 16, 1, 64), (65536, 22, 2, 8192),
    (65536, 25, 2, 1024), (65536, 35, 3, 8192), (65536, 36, 3, 4096), (65536, 47, 3, 2),
])
def test_start_level_per_arm_arm(granule: int, txsz: int, start_level: int, entries: int) -> None:
    tg0 = {4096: 0b00, 65536: 0b01, 16384: 0b10}[granule]
    half = regime(tcr_el1=txsz | (tg0 << 14) | (1 << 23) | (0b10 << 30) | (0b101 << 32)).ttbr0
    assert (half.start_level, half.start_entries, half.problem) == (start_level, entries, None)


# ----------------------------------------------------------------------------- Hypothesis: builder vs walker
@st.composite
def layouts(draw: st.DrawFn) -> tuple[Ram, Regime, list[Half]]:
    ram = Ram(RAM)
    halves = []
    for select in (0, 1):
        granule = draw(st.sampled_from([4096, 16384, 65536]))
        va_bits = draw(st.integers(25, 48))
        half = Half(ram, granule, va_bits, select)
        shifts = LEVEL_SHIFT[granule]
        levels = [lvl for lvl in (3, *BLOCK_LEVELS[granule]) if shifts[lvl] < va_bits
                  and lvl >= half.start_level]
        cluster = draw(st.integers(0, (1 << va_bits) - 1))   # most leaves land near it: shared tables
        for _ in range(draw(st.integers(0, 16))):
            level = draw(st.sampled_from(levels))
            size = 1 << shifts[level]
            slots = (1 << va_bits) // size
            if draw(st.integers(0, 3)):
                slot = min(cluster // size + draw(st.integers(0, 40)), slots - 1)
            else:
                slot = draw(st.integers(0, slots - 1))
            va_off = slot * size
            pa = draw(st.integers(0, (1 << 48) // size - 1)) * size
            attrs = leaf_attrs(attr_index=draw(st.integers(0, 7)), ap=draw(st.integers(0, 3)),
                               sh=draw(st.sampled_from([0, 2, 3])), af=draw(st.booleans()),
                               ng=draw(st.booleans()), uxn=draw(st.booleans()), pxn=draw(st.booleans()))
            half.map(va_off, pa, level, attrs)
        halves.append(half)
    t0, t1 = halves
    reg = regime(ttbr0=t0.root, ttbr1=t1.root,
                 tcr_el1=tcr(t0=(t0.granule, t0.va_bits), t1=(t1.granule, t1.va_bits), ips=IPS_48))
    return ram, reg, halves


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.randoms(use_true_random=False))
def test_builder_roundtrip(layout: tuple[Ram, Regime, list[Half]], rnd: random.Random) -> None:
    ram, reg, halves = layout
    walker = PageWalker(ram.read, reg)
    leaves = sorted((leaf for h in halves for leaf in h.leaves), key=lambda leaf: leaf.va)
    for leaf in leaves:
        offset = rnd.randrange(leaf.size)
        result = walker.walk(leaf.va + offset)
        if not leaf.attrs >> 10 & 1:
            assert isinstance(result, Fault) and result.kind == FaultKind.ACCESS_FLAG
            assert (result.level, result.descriptor_pa) == (leaf.level, leaf.descriptor_pa)
            continue
        t = ok(result)
        assert (t.pa, t.level, t.size, t.descriptor_pa) == (leaf.pa + offset, leaf.level, leaf.size,
                                                            leaf.descriptor_pa)
        assert t.kind == (LeafKind.PAGE if leaf.level == 3 else LeafKind.BLOCK)
        assert t.attr_index == (leaf.attrs >> 2) & 7 and t.ap == (leaf.attrs >> 6) & 3
        assert (t.uxn, t.pxn, t.ng) == (bool(leaf.attrs >> 54 & 1), bool(leaf.attrs >> 53 & 1),
                                        bool(leaf.attrs >> 11 & 1))
    listed = [(t.va, t.pa, t.level, t.size, t.descriptor_pa) for t in walker.iter_mappings()]
    assert listed == [(leaf.va, leaf.pa, leaf.level, leaf.size, leaf.descriptor_pa) for leaf in leaves]
    # a VA no leaf covers must fault
    for half in halves:
        probe = half.window + rnd.randrange(1 << half.va_bits)
        if not any(leaf.va <= probe < leaf.va + leaf.size for leaf in half.leaves):
            assert isinstance(walker.walk(probe), Fault)


def test_ten_thousand_pages_each_table_read_once() -> None:
    ram = Ram(RAM)
    half = Half(ram, 4096, 48)
    for i in range(10_000):
        half.map(0x1000_0000 + i * 4096, 0x8000_0000 + i * 4096, 3, leaf_attrs(attr_index=i % 8))
    tables = (len(ram.mem) - 4096) // 4096 + 1
    walker = PageWalker(ram.read, regime(ttbr0=half.root, tcr_el1=tcr(t0=(4096, 48))))
    leaves = list(walker.iter_mappings())
    assert [t.va for t in leaves] == [0x1000_0000 + i * 4096 for i in range(10_000)]
    assert walker.tables_read == ram.reads == tables
    for t in leaves[::97]:
        assert walker.walk(t.va + 1) == dataclasses.replace(t, va=t.va + 1, pa=t.pa + 1)
    assert ram.reads == tables
