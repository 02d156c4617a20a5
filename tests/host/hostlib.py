"""The firmware's allocators built for the host (``make host-lib``), seen through ctypes.

``load()`` builds ``build/host/libiomem_host.so`` when it is missing or stale (``make``
decides) and declares the prototypes of firmware/mm/pages.h, heap.h, IOLib.h and
OSObject.h. The library has one global state, as on the guest: ``Arena`` hands it a fresh
buffer and re-runs the init functions in the boot order (pages, heap, objects).

Macros (IONew, IODelete, OSTypeAlloc, OSSafeReleaseNULL) cannot be called through ctypes;
``compile_shim`` compiles a few lines of C that use them against the same headers, into a
small library that resolves IOMalloc & co. from the loaded host library.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import mmap
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.image.build import run_make
from harness.oracle.pages import (  # the page byte's format: stated once, in the harness
    PAGES_ORDER_COUNT,
)

ROOT = Path(__file__).resolve().parents[2]
# IOMEM_HOST_LIB names a library built some other way (e.g. with sanitizers); make is then skipped.
LIB_OVERRIDE = os.environ.get("IOMEM_HOST_LIB")
LIB_PATH = Path(LIB_OVERRIDE) if LIB_OVERRIDE else ROOT / "build" / "host" / "libiomem_host.so"
SHIM_DIR = ROOT / "build" / "host" / "shims"
HOST_CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-DIOMEM_HOST"]
INCLUDES = ["-I", str(ROOT / "firmware" / "include"), "-I", str(ROOT / "firmware")]


# IOReturn.h
def _io_return(code: int) -> int:
    """An IOReturn as the int32 ctypes hands back."""
    return code - 2**32 if code >= 2**31 else code


kIOReturnSuccess = 0
kIOReturnNoMemory = _io_return(0xE00002BD)
kIOReturnNoResources = _io_return(0xE00002BE)
kIOReturnBadArgument = _io_return(0xE00002C2)
kIOReturnInternalError = _io_return(0xE00002C9)
kIOReturnNotReady = _io_return(0xE00002D8)

# pages.h (enum values; the page byte's format is harness.oracle.pages')
PAGE_OWNER_KERNEL = 0
PAGE_OWNER_HEAP_CHUNK = 1
PAGE_OWNER_HEAP_LARGE = 2
PAGE_OWNER_PAGE_TABLE = 3
PAGE_OWNER_BUFFER = 4
PAGE_OWNER_COUNT = 5
PAGE_STATE_RESERVED = 0
PAGE_STATE_FREE = 1
PAGE_STATE_CONTINUATION = 2
PAGE_STATE_OWNED = 3

# heap.h
HEAP_ALIGN = 16
HEAP_BLOCK_HEADER_SIZE = 16
HEAP_MIN_BLOCK = 32
HEAP_SL_SHIFT = 5
HEAP_FL_SHIFT = 9
HEAP_CHUNK_SIZE = 4 * 1024 * 1024
HEAP_LARGE_MIN = 64 * 1024
HEAP_BLOCK_FREE = 0xF4EE
HEAP_BLOCK_USED = 0xA110
HEAP_BLOCK_SENTINEL = 0x5E47
HEAP_CHUNK_MAGIC = 0x4B4E5548434D4F49
HEAP_LARGE_MAGIC = 0x4752414C

# OSObject.h
OBJECT_POISON_BYTE = 0xDE
OBJECT_REGISTRY_SLOTS = 16384
OBJECT_MAX_LIVE = OBJECT_REGISTRY_SLOTS // 2

c_u8_p = ctypes.POINTER(ctypes.c_uint8)
c_u32_p = ctypes.POINTER(ctypes.c_uint32)


class PhysAddr(ctypes.Structure):
    _fields_ = [("pa", ctypes.c_uint64)]


class PageBlock(ctypes.Structure):
    _fields_ = [("start", PhysAddr), ("order", ctypes.c_uint), ("state", ctypes.c_int)]


class PagesStats(ctypes.Structure):
    _fields_ = [
        ("page_size", ctypes.c_uint64),
        ("base", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("total_pages", ctypes.c_uint64),
        ("free_pages", ctypes.c_uint64),
        ("free_blocks", ctypes.c_uint64),
        ("largest_free_order", ctypes.c_uint64),
    ]


class PagesCheckReport(ctypes.Structure):
    _fields_ = [
        ("free_pages", ctypes.c_uint64),
        ("free_blocks", ctypes.c_uint64),
        ("used_blocks", ctypes.c_uint64),
        ("error", ctypes.c_char_p),
        ("error_pa", ctypes.c_uint64),
    ]


class PageAllocator(ctypes.Structure):
    """struct page_allocator (the global ``pages_state``)."""

    _fields_ = [
        ("page_size", ctypes.c_uint64),
        ("page_shift", ctypes.c_uint32),
        ("reserved_pages", ctypes.c_uint32),
        ("base", ctypes.c_uint64),
        ("page_count", ctypes.c_uint64),
        ("managed_pages", ctypes.c_uint64),
        ("free_pages", ctypes.c_uint64),
        ("info", c_u8_p),
        ("free_next", c_u32_p),
        ("free_prev", c_u32_p),
        ("free_head", ctypes.c_uint32 * PAGES_ORDER_COUNT),
        ("free_blocks", ctypes.c_uint32 * PAGES_ORDER_COUNT),
        ("nonempty_orders", ctypes.c_uint32),
        ("initialized", ctypes.c_uint32),
    ]


class HeapStats(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "used_bytes",
            "free_bytes",
            "used_blocks",
            "free_blocks",
            "large_blocks",
            "large_pages",
            "chunks",
            "allocs",
            "frees",
            "alloc_failures",
        )
    ]


class HeapCheckReport(ctypes.Structure):
    _fields_ = [
        ("blocks", ctypes.c_uint64),
        ("used_bytes", ctypes.c_uint64),
        ("free_blocks", ctypes.c_uint64),
        ("free_bytes", ctypes.c_uint64),
        ("large_blocks", ctypes.c_uint64),
        ("chunks", ctypes.c_uint64),
        ("error", ctypes.c_char_p),
        ("error_address", ctypes.c_uint64),
    ]


class HeapBlock(ctypes.Structure):
    """struct heap_block: the 16-byte header in front of every block of a chunk."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("prev_size", ctypes.c_uint32),
        ("requested", ctypes.c_uint32),
        ("state", ctypes.c_uint16),
        ("check", ctypes.c_uint16),
    ]


class OSMetaClass(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("instance_size", ctypes.c_size_t),
        ("free", ctypes.c_void_p),
        ("super", ctypes.c_void_p),
    ]


class OSObject(ctypes.Structure):
    _fields_ = [("meta", ctypes.c_void_p), ("refcount", ctypes.c_int32)]


_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    # pages.h (enum values; the page byte's format is harness.oracle.pages')
    "pages_init": (ctypes.c_int32, [PhysAddr, ctypes.c_uint64, ctypes.c_uint64]),
    "pages_page_size": (ctypes.c_uint64, []),
    "pages_order_for": (ctypes.c_uint, [ctypes.c_uint64]),
    "pages_alloc": (ctypes.c_int32, [ctypes.c_uint, ctypes.c_int, ctypes.POINTER(PhysAddr)]),
    "pages_free": (ctypes.c_int32, [PhysAddr, ctypes.c_int]),
    "pages_alloc_contig": (
        ctypes.c_int32,
        [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int, ctypes.POINTER(PhysAddr)],
    ),
    "pages_free_contig": (ctypes.c_int32, [PhysAddr, ctypes.c_uint64, ctypes.c_int]),
    "pages_block_containing": (ctypes.c_bool, [PhysAddr, ctypes.POINTER(PageBlock)]),
    "pages_block_next": (ctypes.c_bool, [PhysAddr, ctypes.POINTER(PageBlock)]),
    "pages_stats": (None, [ctypes.POINTER(PagesStats)]),
    "pages_check": (ctypes.c_int32, [ctypes.POINTER(PagesCheckReport)]),
    # heap.h, IOLib.h
    "heap_init": (ctypes.c_int32, []),
    "heap_lookup": (ctypes.c_int32, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]),
    "heap_stats": (None, [ctypes.POINTER(HeapStats)]),
    "heap_check": (ctypes.c_int32, [ctypes.POINTER(HeapCheckReport)]),
    "heap_settle": (None, []),
    "heap_space": (None, [ctypes.POINTER(ctypes.c_uint64)] * 3),
    "heap_bench": (ctypes.c_uint64, [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]),
    "IOMalloc": (ctypes.c_void_p, [ctypes.c_size_t]),
    "IOMallocZero": (ctypes.c_void_p, [ctypes.c_size_t]),
    "IOFree": (None, [ctypes.c_void_p, ctypes.c_size_t]),
    "IOFreeChecked": (ctypes.c_int32, [ctypes.c_void_p, ctypes.c_size_t]),
    "heap_alloc": (ctypes.c_void_p, [ctypes.c_size_t, ctypes.c_int, ctypes.c_bool]),
    "heap_free": (ctypes.c_int32, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]),
    # OSObject.h
    "object_init": (ctypes.c_int32, []),
    "OSObjectAllocate": (ctypes.c_int32, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]),
    "OSObjectRetain": (None, [ctypes.c_void_p]),
    "OSObjectRelease": (None, [ctypes.c_void_p]),
    "object_retain": (ctypes.c_int32, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]),
    "object_release": (ctypes.c_int32, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]),
    "object_handle": (ctypes.c_uint64, [ctypes.c_void_p]),
    "object_lookup": (ctypes.c_int32, [ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)]),
    "object_live_count": (ctypes.c_uint64, []),
    "object_class_register": (ctypes.c_int32, [ctypes.c_void_p]),
    "object_class_count": (ctypes.c_size_t, []),
    "object_class_at": (ctypes.c_void_p, [ctypes.c_size_t]),
    "object_class_find": (ctypes.c_void_p, [ctypes.c_char_p]),
}


def build() -> None:
    """Run ``make host-lib``: it rebuilds the library only when a source or header changed."""
    if LIB_OVERRIDE:
        return
    run_make("host-lib")


@functools.cache
def load() -> ctypes.CDLL:
    """The host library, built if needed, with every prototype declared.

    Loaded RTLD_GLOBAL so that shims (``compile_shim``) resolve IOMalloc & co. from it.
    """
    build()
    lib = ctypes.CDLL(str(LIB_PATH), mode=ctypes.RTLD_GLOBAL)
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def compile_shim(source: str) -> ctypes.CDLL:
    """Compile C ``source`` (which may include IOLib.h / OSObject.h) into a library and load it.

    Built with the host-lib flags; cached by content in build/host/shims.
    """
    lib = load()  # first, so the shim's undefined symbols resolve against it
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    SHIM_DIR.mkdir(parents=True, exist_ok=True)
    c_path = SHIM_DIR / f"shim_{digest}.c"
    so_path = SHIM_DIR / f"shim_{digest}.so"
    if not so_path.exists() or so_path.stat().st_mtime < LIB_PATH.stat().st_mtime:
        # Written and built under private names, then renamed: pytest-xdist workers may race.
        c_partial = c_path.with_suffix(f".{os.getpid()}.c")
        partial = so_path.with_suffix(f".{os.getpid()}.so")
        c_partial.write_text(source)
        result = subprocess.run(
            ["gcc", *HOST_CFLAGS, *INCLUDES, "-o", str(partial), str(c_partial)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError("compiling a shim failed:\n" + result.stderr)
        os.replace(c_partial, c_path)
        os.replace(partial, so_path)
    del lib
    return ctypes.CDLL(str(so_path))


@dataclass(frozen=True)
class Check:
    """The outcome of pages_check or heap_check."""

    ok: bool
    error: str | None
    where: int
    report: dict[str, int]


def _struct_dict(value: ctypes.Structure) -> dict[str, int]:
    values: dict[str, int] = {}
    for field in value._fields_:
        name, kind = field[0], field[1]
        if kind is ctypes.c_uint64 and name not in ("error_pa", "error_address"):
            values[name] = int(getattr(value, name))
    return values


class Arena:
    """A host buffer handed to pages_init, then heap_init and object_init on top (boot order).

    The range starts at a multiple of the next power of two >= size, so the buddy layout
    (which depends on absolute frame numbers) is the same in every run: tests, and
    Hypothesis replaying them, see the same behaviour whatever address the buffer got.
    """

    def __init__(self, size: int, page_size: int = 4096, *, heap: bool = True, mapped: bool = False) -> None:
        """``mapped``: the buffer is an anonymous mapping, so a range of a GiB or more costs
        only the pages that are touched (a ctypes buffer is zeroed, every page of it)."""
        self.lib = load()
        self.page_size = page_size
        alignment = max(page_size, 1 << (size - 1).bit_length())
        self.buffer: ctypes.Array[ctypes.c_char] | mmap.mmap
        if mapped:
            self.buffer = mmap.mmap(-1, size + alignment)
            raw = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        else:
            self.buffer = ctypes.create_string_buffer(size + alignment)
            raw = ctypes.addressof(self.buffer)
        self.base = (raw + alignment - 1) & ~(alignment - 1)
        self.size = size
        ret = self.lib.pages_init(PhysAddr(self.base), size, page_size)
        if ret != kIOReturnSuccess:
            raise RuntimeError(f"pages_init failed: {ret:#x}")
        if heap:
            ret = self.lib.heap_init()
            if ret != kIOReturnSuccess:
                raise RuntimeError(f"heap_init failed: {ret:#x}")
            self.lib.object_init()

    # ---------------------------------------------------------------- pages
    def pages_stats(self) -> dict[str, int]:
        stats = PagesStats()
        self.lib.pages_stats(ctypes.byref(stats))
        return _struct_dict(stats)

    def pages_check(self) -> Check:
        report = PagesCheckReport()
        ret = self.lib.pages_check(ctypes.byref(report))
        error = report.error.decode() if report.error else None
        return Check(ret == kIOReturnSuccess, error, report.error_pa, _struct_dict(report))

    def pages_alloc(self, order: int, owner: int = PAGE_OWNER_KERNEL) -> tuple[int, int]:
        out = PhysAddr()
        ret = self.lib.pages_alloc(order, owner, ctypes.byref(out))
        return ret, out.pa

    def pages_free(self, pa: int, owner: int = PAGE_OWNER_KERNEL) -> int:
        return int(self.lib.pages_free(PhysAddr(pa), owner))

    def pages_alloc_contig(
        self, count: int, alignment: int = 0, owner: int = PAGE_OWNER_KERNEL
    ) -> tuple[int, int]:
        out = PhysAddr()
        ret = self.lib.pages_alloc_contig(count, alignment, owner, ctypes.byref(out))
        return ret, out.pa

    def pages_free_contig(self, pa: int, count: int, owner: int = PAGE_OWNER_KERNEL) -> int:
        return int(self.lib.pages_free_contig(PhysAddr(pa), count, owner))

    def block_containing(self, pa: int) -> PageBlock | None:
        block = PageBlock()
        return block if self.lib.pages_block_containing(PhysAddr(pa), ctypes.byref(block)) else None

    @staticmethod
    def state() -> PageAllocator:
        """The live ``pages_state`` global, read in place."""
        return PageAllocator.in_dll(load(), "pages_state")

    # ---------------------------------------------------------------- heap
    def heap_stats(self) -> dict[str, int]:
        stats = HeapStats()
        self.lib.heap_stats(ctypes.byref(stats))
        return _struct_dict(stats)

    def heap_check(self) -> Check:
        report = HeapCheckReport()
        ret = self.lib.heap_check(ctypes.byref(report))
        error = report.error.decode() if report.error else None
        return Check(ret == kIOReturnSuccess, error, report.error_address, _struct_dict(report))

    def check_all(self) -> None:
        """Assert both integrity walks pass."""
        pages = self.pages_check()
        assert pages.ok, f"pages_check: {pages.error} at {pages.where:#x}"
        heap = self.heap_check()
        assert heap.ok, f"heap_check: {heap.error} at {heap.where:#x}"

    def malloc(self, size: int) -> int:
        return int(self.lib.IOMalloc(size) or 0)

    def zalloc(self, size: int) -> int:
        return int(self.lib.IOMallocZero(size) or 0)

    def free(self, address: int, size: int) -> int:
        return int(self.lib.IOFreeChecked(address or None, size))

    def lookup(self, address: int) -> int | None:
        """The requested size of the live block at ``address``, or None."""
        requested = ctypes.c_size_t()
        ret = self.lib.heap_lookup(address or None, ctypes.byref(requested))
        return requested.value if ret == kIOReturnSuccess else None

    def settle(self) -> None:
        """heap_settle(): what the guest's agent does at the end of every request."""
        self.lib.heap_settle()

    def space(self) -> tuple[int, int, int]:
        """heap_space(): held, free and largest bytes, as the bench's probe reads them."""
        held, free, largest = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        self.lib.heap_space(ctypes.byref(held), ctypes.byref(free), ctypes.byref(largest))
        return held.value, free.value, largest.value

    def snapshot(self) -> dict[str, int]:
        """Every heap and page statistic except the call counters, at a request's end
        (settled, as the guest's agent leaves the heap between requests)."""
        self.settle()
        calls = ("allocs", "frees", "alloc_failures")
        heap = {f"heap.{k}": v for k, v in self.heap_stats().items() if k not in calls}
        pages = {f"pages.{k}": v for k, v in self.pages_stats().items()}
        return heap | pages

    # ---------------------------------------------------------------- raw memory
    @staticmethod
    def read(address: int, length: int) -> bytes:
        return ctypes.string_at(address, length)

    @staticmethod
    def write(address: int, data: bytes) -> None:
        ctypes.memmove(address, data, len(data))

    @staticmethod
    def fill(address: int, byte: int, length: int) -> None:
        ctypes.memset(address, byte, length)


def metaclass(name: str) -> int:
    """The address of a firmware metaclass (e.g. ``IOMemTestObjectMetaClass``)."""
    return ctypes.addressof(OSMetaClass.in_dll(load(), name))


def u64_global(name: str) -> int:
    return int(ctypes.c_uint64.in_dll(load(), name).value)
