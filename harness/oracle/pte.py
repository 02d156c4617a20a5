"""VMSAv8-64 stage-1 descriptor fields (Arm ARM D8.3), named once for the harness.

The names mirror ``firmware/mm/pte.h``; the ones listed in :data:`FIRMWARE_NAMES` exist
there too and ``tests/host/test_format_constants.py`` checks they hold the same values. The
rest (contiguous hint, table attributes, the FEAT_LPA output-address field) are
architecture facts the firmware never writes, but the walker must read.
"""

from __future__ import annotations

# ---------------------------------------------------------------- shared with pte.h
PT_LAST_LEVEL = 3
PT_DESCRIPTOR_SIZE = 8
PT_OA_BITS_MAX = 48
"""Output address bits without FEAT_LPA."""

PTE_VALID = 1 << 0
PTE_TABLE_OR_PAGE = 1 << 1
"""Levels 0-2: table (1) vs block (0); level 3: page (1) vs reserved (0)."""
PTE_ATTRINDX_SHIFT = 2
PTE_ATTRINDX_MASK = 0x7
"""AttrIndx[2:0]: the MAIR_EL1 slot."""
PTE_AP_EL0 = 1 << 6
"""AP[1]: EL0 may access."""
PTE_AP_RO = 1 << 7
"""AP[2]: read-only."""
PTE_SH_SHIFT = 8
PTE_SH_MASK = 0x3
PTE_AF = 1 << 10
PTE_NG = 1 << 11
PTE_PXN = 1 << 53
PTE_UXN = 1 << 54
PTE_OA_MASK = ((1 << PT_OA_BITS_MAX) - 1) & ~0xFFF

SH_NON = 0
SH_OUTER = 2
SH_INNER = 3

FIRMWARE_NAMES = (
    "PT_LAST_LEVEL",
    "PT_DESCRIPTOR_SIZE",
    "PT_OA_BITS_MAX",
    "PTE_VALID",
    "PTE_TABLE_OR_PAGE",
    "PTE_ATTRINDX_SHIFT",
    "PTE_ATTRINDX_MASK",
    "PTE_AP_EL0",
    "PTE_AP_RO",
    "PTE_SH_SHIFT",
    "PTE_SH_MASK",
    "PTE_AF",
    "PTE_NG",
    "PTE_PXN",
    "PTE_UXN",
    "PTE_OA_MASK",
    "SH_NON",
    "SH_OUTER",
    "SH_INNER",
)
"""The constants above that ``pte.h`` defines under the same name."""

# ---------------------------------------------------------------- architecture only
PTE_AP_SHIFT = 6
PTE_AP_MASK = 0x3
"""AP[2:1] as a two-bit field (bit 0 of it is :data:`PTE_AP_EL0`, bit 1 :data:`PTE_AP_RO`)."""
PTE_CONTIGUOUS = 1 << 52
"""The contiguous hint."""
PTE_LPA_OA_SHIFT = 12
PTE_LPA_OA_MASK = 0xF
"""64K granule with 52-bit output (FEAT_LPA): OA[51:48] in descriptor bits [15:12]."""
PTE_LPA_OA_BIT = 48
"""Where those four bits go in the output address."""

PTE_TABLE_ATTRS_SHIFT = 59
"""Table descriptors: bits [63:59] are NSTable, APTable[1:0], UXNTable, PXNTable. Shifted down
by this, the hierarchical attributes are the ``TABLE_*`` bits below."""
TABLE_PXN = 1 << 0
"""PXNTable: no EL1 execution below this table."""
TABLE_UXN = 1 << 1
"""UXNTable (XNTable): no EL0 execution below this table."""
TABLE_AP_NO_EL0 = 1 << 2
"""APTable[0]: no EL0 access below this table."""
TABLE_AP_RO = 1 << 3
"""APTable[1]: read-only below this table."""
