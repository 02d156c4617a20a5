"""The bit layouts the firmware exports as data (firmware/mm/formats.h, ``iomem_formats``).

The host library carries the table of the page-metadata byte's fields (mm/pages.h) and the
descriptor bits the page walker reads (mm/pte.h), built from the firmware's own macros. These
tests read it through ctypes: its shape, and that it agrees with the layouts the harness
decodes with today (harness/oracle/pages.py for the page byte, harness/oracle/pte.py for the
descriptor bits the walker reads).
"""

from __future__ import annotations

import ctypes

from hostlib import load

from harness.oracle import pages as page_oracle
from harness.oracle import pte


class FormatField(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("shift", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
    ]


def formats() -> dict[str, dict[str, tuple[int, int]]]:
    """{format: {field: (shift, width)}} from the host library's iomem_formats[]."""
    lib = load()
    count = ctypes.c_uint32.in_dll(lib, "iomem_format_count").value
    rows = (FormatField * (count + 1)).in_dll(lib, "iomem_formats")
    assert rows[count].format is None, "the table ends with a NULL row after iomem_format_count rows"
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for row in rows[:count]:
        assert row.format is not None and row.name is not None
        fields = table.setdefault(row.format.decode(), {})
        assert row.name.decode() not in fields, f"{row.name.decode()} listed twice"
        fields[row.name.decode()] = (row.shift, row.width)
    return table


def mask(shift: int, width: int) -> int:
    return ((1 << width) - 1) << shift


def test_fields_fit_and_do_not_overlap() -> None:
    sizes = {"page_info": 8, "pte": 64}
    table = formats()
    assert set(table) == set(sizes)
    for fmt, fields in table.items():
        used = 0
        for name, (shift, width) in fields.items():
            assert width >= 1 and shift + width <= sizes[fmt], f"{fmt}.{name}"
            assert used & mask(shift, width) == 0, f"{fmt}.{name} overlaps another field"
            used |= mask(shift, width)


def test_page_info_byte_matches_the_harness_decoder() -> None:
    page_info = formats()["page_info"]
    assert mask(*page_info["order"]) == page_oracle.PAGE_INFO_ORDER_MASK
    assert page_info["state"][0] == page_oracle.PAGE_INFO_STATE_SHIFT
    assert page_info["state"][0] + page_info["state"][1] == 8  # the state is the rest of the byte


def test_pte_bits_are_the_walkers() -> None:
    # VMSAv8-64 stage-1 descriptor positions (Arm ARM D8.3), as harness/oracle/pte.py names them.
    fields = formats()["pte"]
    assert set(fields) == {
        "valid",
        "table_or_page",
        "attrindx",
        "ap_el0",
        "ap_ro",
        "sh",
        "af",
        "ng",
        "output_address",
        "pxn",
        "uxn",
    }
    assert mask(*fields["valid"]) == pte.PTE_VALID
    assert mask(*fields["table_or_page"]) == pte.PTE_TABLE_OR_PAGE
    assert mask(*fields["attrindx"]) == pte.PTE_ATTRINDX_MASK << pte.PTE_ATTRINDX_SHIFT
    assert mask(*fields["ap_el0"]) | mask(*fields["ap_ro"]) == pte.PTE_AP_MASK << pte.PTE_AP_SHIFT
    assert mask(*fields["ap_ro"]) == pte.PTE_AP_RO
    assert mask(*fields["sh"]) == pte.PTE_SH_MASK << pte.PTE_SH_SHIFT
    assert mask(*fields["af"]) == pte.PTE_AF
    assert mask(*fields["ng"]) == pte.PTE_NG
    assert mask(*fields["output_address"]) == pte.PTE_OA_MASK
    assert mask(*fields["pxn"]) == pte.PTE_PXN
    assert mask(*fields["uxn"]) == pte.PTE_UXN
