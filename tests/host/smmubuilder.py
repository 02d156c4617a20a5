"""A host-side builder of SMMUv3 stream tables and context descriptors, for testing the walker.

Written from dma-facts §4.4-4.5 (field positions spelled out per 32-bit word) and kept free of
any import from ``harness.oracle.smmu``; the stage-1 tables come from ``ptbuilder`` (the same
VMSAv8-64 format as the CPU's), so a test that builds with these and walks with the oracle
checks two independent readings against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptbuilder import Half, Ram

TG0 = {4096: 0b00, 65536: 0b01, 16384: 0b10}


def cd_words(
    *,
    ttb0: int,
    granule: int = 4096,
    iova_bits: int = 39,
    asid: int = 1,
    ips: int = 4,
    record: bool = True,
    had0: bool = False,
    epd0: bool = False,
    mair: int = 0x0000_0000_0044_FF00,
) -> list[int]:
    """The 16 words of a stage-1 CD: V, AA64, A, EPD1 and the given fields."""
    w = [0] * 16
    w[0] = (64 - iova_bits) | (TG0[granule] << 6) | (int(epd0) << 14) | (1 << 30) | (1 << 31)
    w[1] = ips | (1 << 9) | (int(record) << 13) | (1 << 14) | (asid << 16)
    w[2] = (ttb0 & 0xFFFF_FFF0) | (int(had0) << 1)
    w[3] = (ttb0 >> 32) & 0x7FFFF
    w[6], w[7] = mair & 0xFFFF_FFFF, mair >> 32
    return w


def ste_words(*, cd: int = 0, config: str = "translate") -> list[int]:
    w = [0] * 16
    if config == "translate":
        w[0] = (cd & 0xFFFF_FFC0) | 0b1011
        w[1] = (cd >> 32) & 0xFFFF
    elif config == "bypass":
        w[0] = 0b1001
    elif config == "abort":
        w[0] = 0b0001
    else:
        raise ValueError(config)
    return w


def write_words(ram: Ram, pa: int, words: list[int]) -> None:
    off = pa - ram.base
    for i, word in enumerate(words):
        ram.mem[off + 4 * i : off + 4 * i + 4] = word.to_bytes(4, "little")


@dataclass
class Smmu:
    """A linear stream table + one CD per StreamID + the stage-1 tables (a ptbuilder Half)."""

    ram: Ram
    log2size: int = 5
    granule: int = 4096
    iova_bits: int = 39
    strtab: int = 0
    cd: int = 0
    half: Half | None = None

    def __post_init__(self) -> None:
        size = 64 << self.log2size
        self.strtab = self.ram.alloc(size, size)
        self.cd = self.ram.alloc(64, 64)
        self.half = Half(self.ram, self.granule, self.iova_bits)

    @property
    def tables(self) -> Half:
        assert self.half is not None
        return self.half

    def ste_pa(self, sid: int) -> int:
        return self.strtab + 64 * sid

    def attach(self, sid: int, **cd_fields: object) -> None:
        """Point ``sid`` at the CD (stage 1) with the given CD fields."""
        fields = {"ttb0": self.tables.root, "granule": self.granule, "iova_bits": self.iova_bits} | cd_fields
        write_words(self.ram, self.cd, cd_words(**fields))  # type: ignore[arg-type]
        write_words(self.ram, self.ste_pa(sid), ste_words(cd=self.cd))

    def registers(self, *, enabled: bool = True) -> dict[str, int]:
        return {
            "cr0": 0xD if enabled else 0xC,
            "strtab_base": self.strtab,
            "strtab_base_cfg": self.log2size,
        }
