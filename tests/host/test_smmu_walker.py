"""The host SMMUv3 walker against hand-written STE/CD/descriptors and an independent builder.

The golden tests spell every word out in hex, worked by hand from dma-facts §4.4-4.6; the
builder tests (``smmubuilder`` + ``ptbuilder``) then cover every granule and many layouts.
"""

from __future__ import annotations

import random

import pytest
from ptbuilder import BLOCK_LEVELS, LEVEL_SHIFT, Ram, leaf_attrs
from smmubuilder import Smmu, cd_words, write_words

from harness.oracle.pagewalk import CorruptTable
from harness.oracle.smmu import (
    IOMMU_RO,
    IOMMU_RW,
    CorruptSmmuTable,
    EventType,
    SmmuBypass,
    SmmuError,
    SmmuFault,
    SmmuRegisters,
    SmmuRun,
    SmmuTranslation,
    SmmuWalker,
    decode_event,
    parse_xp,
    read_events,
    read_registers,
)

RAM = 0x4000_0000
SID = 0x8

# ----------------------------------------------------------------------------- golden, by hand
# STRTAB 0x40000000 (LOG2SIZE 5), STE 8 at +0x200 -> CD 0x40001000 (4K, T0SZ 25, ASID 5, R),
# TTB0 0x40002000 (L1) -> L2 0x40003000 -> L3 0x40004000; L1[1] -> L2' 0x40005000 with APTable[1].
GOLDEN = {
    0x4000_0200: 0x4000_100B,  # STE w0: CD | Config=0b101 | V
    0x4000_1000: 0xC000_0019,  # CD w0: V, EPD1, TG0=4K, T0SZ=25
    0x4000_1004: 0x0005_6204,  # CD w1: ASID 5, A, R, AA64, IPS=44 bits
    0x4000_1008: 0x4000_2000,  # CD w2: TTB0[31:4]
    0x4000_2000: 0x4000_3003,  # L1[0] -> table
    0x4000_2008: 0x4000_5003,  # L1[1] -> table ...
    0x4000_200C: 0x4000_0000,  # ... with APTable[1] (bit 62)
    0x4000_3000: 0x4000_4003,  # L2[0] -> table
    0x4000_3008: 0x4080_0401,  # L2[1]: 2M block -> 0x40800000, AF
    0x4000_4010: 0x4060_0403,  # L3[2]: page 0x2000 -> 0x40600000, AF, RW
    0x4000_4018: 0x4070_0483,  # L3[3]: page 0x3000 -> 0x40700000, AF, AP[2]=1 (read-only)
    0x4000_5000: 0x40A0_0401,  # L2'[0]: 2M block, IOVA 0x40000000 -> 0x40A00000
}


def golden_ram(extra: dict[int, int] | None = None) -> Ram:
    ram = Ram(RAM)
    ram.alloc(0x8000, 4096)
    for pa, word in (GOLDEN | (extra or {})).items():
        ram.mem[pa - RAM : pa - RAM + 4] = word.to_bytes(4, "little")
    return ram


def golden_regs(**changes: int) -> SmmuRegisters:
    return SmmuRegisters(**({"cr0": 0xD, "strtab_base": RAM, "strtab_base_cfg": 5} | changes))


def walker(ram: Ram, regs: SmmuRegisters | None = None, *, strict: bool = True) -> SmmuWalker:
    return SmmuWalker(ram.read, regs or golden_regs(), strict=strict)


def ok(result: object) -> SmmuTranslation:
    assert isinstance(result, SmmuTranslation), result
    return result


def fault(result: object) -> SmmuFault:
    assert isinstance(result, SmmuFault), result
    return result


def test_golden_pages_blocks_and_permissions() -> None:
    w = walker(golden_ram())
    t = ok(w.lookup(SID, 0x2F00))
    assert (t.pa, t.writable, t.perm, t.level, t.size, t.asid) == (0x4060_0F00, True, IOMMU_RW, 3, 4096, 5)
    t = ok(w.lookup(SID, 0x3010))
    assert (t.pa, t.writable, t.perm) == (0x4070_0010, False, IOMMU_RO)
    assert ok(w.translate(SID, 0x3010, write=False)).pa == 0x4070_0010
    denied = fault(w.translate(SID, 0x3010, write=True))
    assert (denied.kind, denied.event, denied.address) == (
        EventType.F_PERMISSION,
        EventType.F_PERMISSION,
        0x4000_4018,
    )
    t = ok(w.lookup(SID, 0x20_1234))
    assert (t.pa, t.level, t.size, t.writable) == (0x4080_1234, 2, 2 << 20, True)
    miss = fault(w.lookup(SID, 0x1000))
    assert (miss.kind, miss.level, miss.recorded, miss.address) == (
        EventType.F_TRANSLATION,
        3,
        True,
        0x4000_4008,
    )
    # APTable[1] makes the L1[1] subtree read-only ...
    t = ok(w.lookup(SID, 0x4000_0040))
    assert (t.pa, t.writable) == (0x40A0_0040, False)
    # ... unless CD.HAD0 (w2 bit 1) says to ignore APTable.
    had = walker(golden_ram({0x4000_1008: 0x4000_2002}))
    assert ok(had.lookup(SID, 0x4000_0040)).writable
    # Beyond the CD's 39-bit input range: a translation fault, whatever the tables say.
    assert fault(w.lookup(SID, 1 << 39)).kind is EventType.F_TRANSLATION


def test_golden_runs_merge_and_split_on_pa_and_permission() -> None:
    w = walker(golden_ram())
    assert w.runs(SID, 0x2F00, 0x200) == [
        SmmuRun(0x2F00, 0x4060_0F00, 0x100, True),
        SmmuRun(0x3000, 0x4070_0000, 0x100, False),
    ]
    assert w.runs(SID, 0x20_0100, 0x1000) == [SmmuRun(0x20_0100, 0x4080_0100, 0x1000, True)]
    assert fault(w.runs(SID, 0x2000, 0x3000)).kind is EventType.F_TRANSLATION  # page 0x4000 unmapped


def test_record_bit_decides_whether_faults_become_events() -> None:
    quiet = walker(golden_ram({0x4000_1004: 0x0005_4204}))  # R = 0
    miss = fault(quiet.lookup(SID, 0x1000))
    assert miss.kind is EventType.F_TRANSLATION and miss.event is None
    denied = fault(quiet.translate(SID, 0x3000, write=True))
    assert denied.kind is EventType.F_PERMISSION and not denied.recorded


def test_smmu_disabled_bypass_and_abort() -> None:
    off = walker(golden_ram(), golden_regs(cr0=0xC))
    result = off.translate(SID, 0x4123_4567, write=True)
    assert isinstance(result, SmmuBypass) and result.pa == 0x4123_4567 and "SMMUEN" in result.reason
    bypass = walker(golden_ram({0x4000_0200: 0x9}))
    result = bypass.lookup(SID, 0x4000_1000)
    assert isinstance(result, SmmuBypass) and result.pa == 0x4000_1000 and result.perm == IOMMU_RW
    abort = walker(golden_ram({0x4000_0200: 0x1}))
    f = fault(abort.lookup(SID, 0x2000))
    assert f.event is None and "abort" in f.reason  # QEMU records no event for an STE abort


def test_stream_id_beyond_the_table_is_c_bad_streamid() -> None:
    f = fault(walker(golden_ram()).lookup(32, 0x2000))
    assert f.kind is EventType.C_BAD_STREAMID and f.recorded
    f = fault(walker(golden_ram(), golden_regs(strtab_base_cfg=3)).lookup(SID, 0x2000))
    assert f.kind is EventType.C_BAD_STREAMID


# ----------------------------------------------------------------------------- corruption
CORRUPTIONS: list[tuple[str, dict[int, int], EventType | None]] = [
    ("STE.V = 0", {0x4000_0200: 0x4000_100A}, EventType.C_BAD_STE),
    ("stage 2 config", {0x4000_0200: 0x4000_100D}, EventType.C_BAD_STE),
    ("S1CDMax", {0x4000_0204: 1 << 27}, EventType.C_BAD_STE),
    ("S1STALLD", {0x4000_0208: 1 << 27}, EventType.C_BAD_STE),
    ("STE -> CD outside RAM", {0x4000_0200: 0x0000_100B}, EventType.F_CD_FETCH),
    ("CD.V = 0", {0x4000_1000: 0x4000_0019}, EventType.C_BAD_CD),
    ("CD.AA64 = 0", {0x4000_1004: 0x0005_6004}, EventType.C_BAD_CD),
    ("CD.A = 0", {0x4000_1004: 0x0005_2204}, EventType.C_BAD_CD),
    ("CD.S = 1", {0x4000_1004: 0x0005_7204}, EventType.C_BAD_CD),
    ("CD.HA = 1", {0x4000_1004: 0x0005_6A04}, EventType.C_BAD_CD),
    ("CD.IPS = 52 bits", {0x4000_1004: 0x0005_6206}, EventType.C_BAD_CD),
    ("T0SZ = 40", {0x4000_1000: 0xC000_0028}, EventType.C_BAD_CD),
    ("T0SZ = 15", {0x4000_1000: 0xC000_000F}, EventType.C_BAD_CD),
    ("TG0 reserved", {0x4000_1000: 0xC000_00D9}, EventType.C_BAD_CD),
    ("ENDI", {0x4000_1000: 0xC000_8019}, EventType.C_BAD_CD),
    ("EPD1 = 0 with T1SZ = 0", {0x4000_1000: 0x8000_0019}, EventType.C_BAD_CD),
    ("TTB0 beyond the OAS", {0x4000_100C: 0x0000_1000}, EventType.C_BAD_CD),
    ("table pointer outside RAM", {0x4000_2000: 0x0010_0003}, EventType.F_WALK_EABT),
]


@pytest.mark.parametrize(("what", "words", "event"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_structures_raise_strict_and_fault_otherwise(
    what: str, words: dict[int, int], event: EventType | None
) -> None:
    ram = golden_ram(words)
    with pytest.raises(CorruptSmmuTable) as caught:
        walker(ram).lookup(SID, 0x2000)
    assert caught.value.event is event and caught.value.sid == SID
    assert f"{SID:#x}" in str(caught.value)
    f = fault(walker(ram, strict=False).lookup(SID, 0x2000))
    assert f.kind is event and f.recorded


def test_ste_outside_ram_is_an_ste_fetch_fault() -> None:
    regs = golden_regs(strtab_base=0x1000_0000)
    with pytest.raises(CorruptSmmuTable) as caught:
        walker(golden_ram(), regs).lookup(SID, 0)
    assert caught.value.event is EventType.F_STE_FETCH
    assert fault(walker(golden_ram(), regs, strict=False).lookup(SID, 0)).kind is EventType.F_STE_FETCH


def test_misaligned_stream_table_is_corrupt_but_masked_like_qemu() -> None:
    regs = golden_regs(strtab_base=RAM + 0x400)  # table of 0x800 bytes: QEMU masks to 0x400
    with pytest.raises(CorruptSmmuTable, match="aligned"):
        walker(golden_ram(), regs).lookup(SID, 0x2000)
    assert walker(golden_ram(), regs, strict=False).ste_address(SID) == RAM + 0x400 + 0x200


def test_page_table_corruption_is_the_cpu_walkers_corrupt_table() -> None:
    ram = golden_ram({0x4000_4010: 0x4060_0401})  # level-3 descriptor of type 0b01
    with pytest.raises(CorruptTable):
        walker(ram).lookup(SID, 0x2000)
    assert fault(walker(ram, strict=False).lookup(SID, 0x2000)).kind is EventType.F_TRANSLATION


def test_access_flag_is_ignored_like_qemu() -> None:
    ram = golden_ram({0x4000_4010: 0x4060_0003})  # AF = 0
    t = ok(walker(ram).lookup(SID, 0x2000))
    assert t.pa == 0x4060_0000 and not t.leaf.af


# ----------------------------------------------------------------------------- two-level table
def test_two_level_stream_table() -> None:
    ram = golden_ram()
    l1 = RAM + 0x6000
    l2 = RAM + 0x7000
    # SPLIT 6: SID 8 -> L1[0], L2 index 8; Span 5 -> 16 STEs.
    ram.write64(l1, l2 | 5)
    write_words(ram, l2 + 8 * 64, [0x4000_100B] + [0] * 15)
    regs = golden_regs(strtab_base=l1, strtab_base_cfg=(1 << 16) | (6 << 6) | 8)
    assert ok(walker(ram, regs).lookup(SID, 0x2F00)).pa == 0x4060_0F00
    ram.write64(l1, l2 | 4)  # Span 4: 8 STEs, index 8 is beyond (QEMU would accept up to 15)
    with pytest.raises(CorruptSmmuTable):
        walker(ram, regs).lookup(SID, 0x2F00)
    assert ok(walker(ram, regs, strict=False).lookup(SID, 0x2F00)).pa == 0x4060_0F00
    ram.write64(l1, l2)  # Span 0
    assert fault(walker(ram, regs).lookup(SID, 0)).kind is EventType.C_BAD_STREAMID


# ----------------------------------------------------------------------------- every granule
GEOMETRIES = [(4096, 39), (4096, 48), (16384, 47), (16384, 36), (65536, 42), (65536, 48), (4096, 25)]


@pytest.mark.parametrize(("granule", "bits"), GEOMETRIES, ids=[f"{g // 1024}k-{b}" for g, b in GEOMETRIES])
@pytest.mark.parametrize("seed", range(4))
def test_builder_layouts_agree_with_the_walker(granule: int, bits: int, seed: int) -> None:
    rng = random.Random(seed * 1000 + granule + bits)
    ram = Ram(RAM)
    smmu = Smmu(ram, granule=granule, iova_bits=bits)
    smmu.attach(SID, asid=7)
    leaves = []
    for _ in range(12):
        level = rng.choice([3, 3, 3, *BLOCK_LEVELS[granule]])
        size = 1 << LEVEL_SHIFT[granule][level]
        if size >= 1 << bits:
            continue
        iova = rng.randrange(0, (1 << bits) // size) * size
        pa = 0x80_0000_0000 + rng.randrange(0, 1 << 20) * size
        ap = rng.choice([0b00, 0b10])
        leaf = smmu.tables.map(iova, pa & ((1 << 44) - 1) & ~(size - 1), level, leaf_attrs(ap=ap))
        if leaf is not None:
            leaves.append(leaf)
    regs = SmmuRegisters(**smmu.registers())
    w = SmmuWalker(ram.read, regs)
    assert leaves
    for leaf in leaves:
        for offset in (0, leaf.size - 1, rng.randrange(leaf.size)):
            t = ok(w.translate(SID, leaf.va + offset, write=False))
            assert (t.pa, t.size, t.asid, t.granule) == (leaf.pa + offset, leaf.size, 7, granule)
            assert t.writable == (not leaf.attrs & (1 << 7))
            verdict = w.translate(SID, leaf.va + offset, write=True)
            assert isinstance(verdict, SmmuTranslation) == t.writable
    found = {(t.iova, t.pa, t.size, t.writable) for t in w.iter_mappings(SID)}
    assert found == {(leaf.va, leaf.pa, leaf.size, not leaf.attrs & (1 << 7)) for leaf in leaves}
    cd = w.context(SID)
    assert cd is not None and (cd.granule, cd.input_bits) == (granule, bits)


def test_builder_cd_matches_the_documented_examples() -> None:
    """dma-facts §4.5 gives ready-made w0 values; the builder must produce them."""
    assert cd_words(ttb0=0, granule=4096, iova_bits=39)[0] == 0xC000_0019
    assert cd_words(ttb0=0, granule=4096, iova_bits=48)[0] == 0xC000_0010
    assert cd_words(ttb0=0, granule=16384, iova_bits=47)[0] == 0xC000_0091
    assert cd_words(ttb0=0, granule=65536, iova_bits=42)[0] == 0xC000_0056
    assert cd_words(ttb0=0, asid=3)[1] == 0x0000_6204 | (3 << 16)


# ----------------------------------------------------------------------------- registers and events
def test_parse_xp_and_read_registers_through_a_monitor() -> None:
    assert parse_xp("0000000009050000: 0x0d40101a\r\n", 0x905_0000) == 0x0D40_101A
    with pytest.raises(SmmuError):
        parse_xp("0000000009050004: 0x1\n", 0x905_0000)
    values = {
        0x905_0020: 0xD,
        0x905_0080: 0x4000_0000,
        0x905_0088: 5,
        0x905_00A0: 0x4010_0007,
        0x905_00A8: 0x83,
    }
    asked: list[str] = []

    def hmp(line: str) -> str:
        asked.append(line)
        address = int(line.split()[-1], 16)
        return f"{address:016x}: {values.get(address, 0):#x}\n"

    regs = read_registers(hmp)
    assert (regs.cr0, regs.strtab_base, regs.strtab_base_cfg, regs.eventq_prod) == (0xD, RAM, 5, 0x83)
    assert regs.enabled and regs.eventq_enabled and not regs.strtab_two_level
    assert (regs.eventq_log2size, regs.eventq_address) == (7, 0x4010_0000)
    # 64-bit reads only where QEMU implements them (0x80, 0xA0); every other register 32-bit.
    wide = {int(a.split()[-1], 16) - 0x905_0000 for a in asked if a.startswith("xp /1g")}
    assert wide == {0x80, 0xA0}


def _record(kind: int, sid: int, iova: int, read: bool) -> bytes:
    words = [kind, sid, 0, 0x8 if read else 0, iova & 0xFFFF_FFFF, iova >> 32, 0, 0]
    return b"".join(w.to_bytes(4, "little") for w in words)


def test_event_records_decode_and_queue_wraps() -> None:
    e = decode_event(_record(0x13, 0x8, 0x2004, read=False))
    assert (e.kind, e.sid, e.iova, e.read, e.name) == (
        EventType.F_PERMISSION,
        8,
        0x2004,
        False,
        "F_PERMISSION",
    )
    assert decode_event(_record(0x77, 1, 0, True)).name == "type 0x77"
    ram = Ram(RAM)
    q = ram.alloc(4 * 32, 4 * 32)  # 4 entries: LOG2SIZE 2, wrap bit at bit 2
    for slot in range(4):
        ram.mem[q - RAM + 32 * slot : q - RAM + 32 * slot + 32] = _record(0x10, 8, 0x1000 * slot, True)
    regs = SmmuRegisters(cr0=0xD, strtab_base=0, strtab_base_cfg=0, eventq_base=q | 2)
    got = read_events(ram.read, regs, 0b011, 0b101)  # slot 3, wrap, slot 0
    assert [(e.index, e.iova) for e in got] == [(3, 0x3000), (0, 0x0000)]
    assert read_events(ram.read, regs, 0b101, 0b101) == []
    with pytest.raises(SmmuError):
        read_events(ram.read, regs, 0, 0b1111)  # not a reachable PROD move


def test_smmu_registers_decode_gerror() -> None:
    regs = SmmuRegisters(cr0=0xD, strtab_base=0, strtab_base_cfg=0, gerror=0x5, gerrorn=0x1)
    assert regs.active_gerrors == 0x4


def test_walker_cache_is_per_snapshot() -> None:
    ram = golden_ram()
    w = walker(ram)
    assert ok(w.lookup(SID, 0x2000)).pa == 0x4060_0000
    ram.mem[0x4010:0x4014] = (0x4061_0403).to_bytes(4, "little")
    w.clear_cache()
    assert ok(w.lookup(SID, 0x2000)).pa == 0x4061_0000
