"""The bit layouts the firmware exports as data (firmware/mm/formats.h, ``iomem_formats``).

The host library carries the table of the page-metadata byte's fields (mm/pages.h) and the
descriptor bits the page walker reads (mm/pte.h), built from the firmware's own macros. These
tests read it through ctypes: its shape, and that it agrees with the layouts the harness
decodes with today (harness/oracle/heap.py for the page byte; the Arm ARM positions the
walker in harness/oracle/pagewalk.py uses for descriptors).
"""

from __future__ import annotations

import ctypes

from hostlib import load

from harness.oracle import heap as heap_oracle


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
    assert mask(*page_info["order"]) == heap_oracle.PAGE_INFO_ORDER_MASK
    assert page_info["state"][0] == heap_oracle.PAGE_INFO_STATE_SHIFT
    assert page_info["state"][0] + page_info["state"][1] == 8  # the state is the rest of the byte


def test_pte_bits_are_the_architectural_ones() -> None:
    # VMSAv8-64 stage-1 descriptor positions (Arm ARM D8.3), as the walker decodes them.
    assert formats()["pte"] == {
        "valid": (0, 1),
        "table_or_page": (1, 1),
        "attrindx": (2, 3),
        "ap_el0": (6, 1),
        "ap_ro": (7, 1),
        "sh": (8, 2),
        "af": (10, 1),
        "ng": (11, 1),
        "output_address": (12, 36),
        "pxn": (53, 1),
        "uxn": (54, 1),
    }
