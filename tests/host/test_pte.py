"""firmware/mm/pte.c through the host library: the descriptor builder and geometry the guest's
page tables are made with, held to the host walker's reading of the same bits
(harness/oracle/pagewalk.py) and to the Arm ARM's granule rules."""

from __future__ import annotations

import ctypes

import hostlib
import pytest

from harness.models.descriptors import CACHE_MODES
from harness.oracle.pagewalk import cache_mode
from harness.oracle.pte import PTE_AF, PTE_AP_RO, PTE_PXN, PTE_TABLE_OR_PAGE, PTE_UXN, PTE_VALID

MODES = CACHE_MODES  # the ten IOCacheModes in value order (one list, in the model)
EXECUTE_NEVER = {
    "inhibit",
    "writecombine",
    "posted",
    "realtime",
    "postedreordered",
    "postedcombinedreordered",
}
MAIR = 0x0C0804FF00BB44FF
READ, WRITE, EXEC = 1, 2, 4
SH_OUTER, SH_INNER = 2, 3


class Geometry(ctypes.Structure):
    _fields_ = [
        ("granule_shift", ctypes.c_uint),
        ("stride", ctypes.c_uint),
        ("va_bits", ctypes.c_uint),
        ("start_level", ctypes.c_uint),
    ]


class PAddr(ctypes.Structure):
    _fields_ = [("pa", ctypes.c_uint64)]


class Attrs(ctypes.Structure):
    _fields_ = [("cache", ctypes.c_uint32), ("prot", ctypes.c_uint)]


class CacheModeInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("attr_index", ctypes.c_uint8),
        ("mair", ctypes.c_uint8),
        ("shareability", ctypes.c_uint8),
        ("execute_never", ctypes.c_bool),
    ]


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    library = hostlib.load()
    geo = ctypes.POINTER(Geometry)
    for name, restype, argtypes in (
        ("pt_geometry_init", ctypes.c_bool, [geo, ctypes.c_uint64, ctypes.c_uint]),
        ("pt_entries", ctypes.c_uint, [geo, ctypes.c_uint]),
        ("pt_block_allowed", ctypes.c_bool, [geo, ctypes.c_uint]),
        ("pte_make_table", ctypes.c_uint64, [geo, PAddr]),
        ("pte_make_leaf", ctypes.c_uint64, [geo, ctypes.c_uint, PAddr, Attrs]),
        ("pte_output_address", PAddr, [geo, ctypes.c_uint64, ctypes.c_uint]),
        ("pte_leaf_attrs", Attrs, [ctypes.c_uint64]),
        ("cache_mode_info", ctypes.POINTER(CacheModeInfo), [ctypes.c_uint32]),
        ("cache_mode_from_name", ctypes.c_bool, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32)]),
        ("cache_mode_name_for_attr", ctypes.c_char_p, [ctypes.c_uint8, ctypes.c_uint]),
    ):
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes
    return library


def _geometry(lib: ctypes.CDLL, granule: int, va_bits: int = 48) -> Geometry:
    g = Geometry()
    assert lib.pt_geometry_init(ctypes.byref(g), granule, va_bits)
    return g


@pytest.mark.parametrize(
    ("granule", "va_bits", "shift", "start", "root_entries"),
    [
        (4096, 48, 12, 0, 512),
        (4096, 39, 12, 1, 512),
        (4096, 30, 12, 2, 512),
        (16384, 48, 14, 0, 2),
        (16384, 47, 14, 1, 2048),
        (65536, 48, 16, 1, 64),
        (65536, 42, 16, 2, 8192),
    ],
)
def test_geometry(
    lib: ctypes.CDLL, granule: int, va_bits: int, shift: int, start: int, root_entries: int
) -> None:
    g = _geometry(lib, granule, va_bits)
    assert (g.granule_shift, g.stride, g.va_bits, g.start_level) == (shift, shift - 3, va_bits, start)
    assert lib.pt_entries(ctypes.byref(g), start) == root_entries
    assert lib.pt_entries(ctypes.byref(g), 3) == 1 << (shift - 3)


@pytest.mark.parametrize(("granule", "va_bits"), [(8192, 48), (0, 48), (4096, 12), (4096, 49), (65536, 16)])
def test_bad_geometry_is_refused(lib: ctypes.CDLL, granule: int, va_bits: int) -> None:
    assert not lib.pt_geometry_init(ctypes.byref(Geometry()), granule, va_bits)


@pytest.mark.parametrize(("granule", "levels"), [(4096, {1, 2}), (16384, {2}), (65536, {2})])
def test_block_levels(lib: ctypes.CDLL, granule: int, levels: set[int]) -> None:
    g = _geometry(lib, granule)
    assert {level for level in range(4) if lib.pt_block_allowed(ctypes.byref(g), level)} == levels


@pytest.mark.parametrize("granule", [4096, 16384, 65536])
def test_table_descriptor(lib: ctypes.CDLL, granule: int) -> None:
    g = _geometry(lib, granule)
    pte = lib.pte_make_table(ctypes.byref(g), PAddr(0x4123_4567 | 0xFFFF_0000_0000_0000))
    assert pte == (0x4123_4567 & ~(granule - 1)) | PTE_TABLE_OR_PAGE | PTE_VALID
    assert lib.pte_output_address(ctypes.byref(g), pte, 1).pa == 0x4123_4567 & ~(granule - 1)


@pytest.mark.parametrize("granule", [4096, 16384, 65536])
@pytest.mark.parametrize("mode", range(len(MODES)))
@pytest.mark.parametrize("prot", [READ, READ | WRITE, READ | EXEC, READ | WRITE | EXEC])
def test_leaf_bits_are_what_the_walker_reads(lib: ctypes.CDLL, granule: int, mode: int, prot: int) -> None:
    g = _geometry(lib, granule)
    for level in (2, 3):
        size = 1 << (g.granule_shift + (3 - level) * g.stride)
        pa = 0x4000_0000 + 3 * size + 0x123
        pte = lib.pte_make_leaf(ctypes.byref(g), level, PAddr(pa), Attrs(mode, prot))
        assert pte & PTE_VALID and pte & PTE_AF and pte & PTE_UXN
        assert bool(pte & PTE_TABLE_OR_PAGE) == (level == 3)
        assert pte & 0xFFFF_FFFF_F000 & ~(size - 1) == pa & ~(size - 1)
        assert lib.pte_output_address(ctypes.byref(g), pte, level).pa == pa & ~(size - 1)
        index = (pte >> 2) & 7
        byte = (MAIR >> (8 * index)) & 0xFF
        name = MODES[mode]
        want = {"default": "copyback", "realtime": "inhibit"}.get(name, name)
        sh = (pte >> 8) & 3
        assert sh == (SH_INNER if name == "copybackinner" else SH_OUTER)
        read_back = "copybackinner" if byte == 0xFF and sh == SH_INNER else cache_mode(byte)
        assert read_back == want
        assert bool(pte & PTE_AP_RO) == (not prot & WRITE)
        assert bool(pte & PTE_PXN) == (name in EXECUTE_NEVER or not prot & EXEC)
        attrs = lib.pte_leaf_attrs(pte)
        assert MODES[attrs.cache] == want
        assert attrs.prot == READ | (prot & WRITE) | (0 if pte & PTE_PXN else EXEC)


def test_an_unknown_mode_maps_as_default(lib: ctypes.CDLL) -> None:
    g = _geometry(lib, 4096)
    assert lib.pte_make_leaf(ctypes.byref(g), 3, PAddr(0x4000_0000), Attrs(99, READ)) == lib.pte_make_leaf(
        ctypes.byref(g), 3, PAddr(0x4000_0000), Attrs(0, READ)
    )
    assert not lib.cache_mode_info(10) and lib.cache_mode_info(9).contents.name == b"postedcombinedreordered"


def test_cache_mode_names(lib: ctypes.CDLL) -> None:
    out = ctypes.c_uint32(77)
    for index, name in enumerate(MODES):
        assert lib.cache_mode_from_name(name.encode(), ctypes.byref(out)) and out.value == index
        info = lib.cache_mode_info(index).contents
        assert info.name == name.encode() and info.execute_never == (name in EXECUTE_NEVER)
        assert (MAIR >> (8 * info.attr_index)) & 0xFF == info.mair
    out.value = 77
    assert not lib.cache_mode_from_name(b"copyback2", ctypes.byref(out)) and out.value == 77
    assert not lib.cache_mode_from_name(b"", ctypes.byref(out))


@pytest.mark.parametrize(
    ("byte", "sh", "name"),
    [
        (0xFF, SH_OUTER, b"copyback"),
        (0xFF, SH_INNER, b"copybackinner"),
        (0x00, SH_OUTER, b"inhibit"),
        (0x44, SH_OUTER, b"writecombine"),
        (0xBB, SH_OUTER, b"writethru"),
        (0x04, SH_OUTER, b"posted"),
        (0x08, SH_OUTER, b"postedreordered"),
        (0x0C, SH_OUTER, b"postedcombinedreordered"),
        (0xEE, SH_OUTER, None),
    ],
)
def test_mode_read_back_from_the_mair_byte(lib: ctypes.CDLL, byte: int, sh: int, name: bytes | None) -> None:
    assert lib.cache_mode_name_for_attr(byte, sh) == name
