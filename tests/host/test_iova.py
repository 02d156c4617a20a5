"""The IOVA allocator (firmware/mm/iova.c, docs/dma.md "IOVA space") against a model: first fit
from the bottom, one guard page after every range, never beyond the caller's limit."""

from __future__ import annotations

import ctypes
import hashlib
import random

from hostlib import ROOT, compile_shim, kIOReturnBadArgument, kIOReturnNoResources, kIOReturnSuccess

PAGE = 0x1000
BASE, END = PAGE, 1 << 20
MAX_RANGES = 256


def _lib() -> ctypes.CDLL:
    text = (ROOT / "firmware" / "mm" / "iova.c").read_text()
    source = f"""/* iova.c {hashlib.sha256(text.encode()).hexdigest()} */
#include "mm/iova.c"
static struct iova_space space;
void t_init(uint64_t base, uint64_t end, uint64_t page) {{ iova_init(&space, base, end, page); }}
IOReturn t_alloc(uint64_t size, uint64_t limit, uint64_t *iova)
{{ return iova_alloc(&space, size, limit, iova); }}
IOReturn t_free(uint64_t iova) {{ return iova_free(&space, iova); }}
const char *t_check(void) {{ uint64_t at; return iova_check(&space, &at); }}
uint64_t t_bytes(void) {{ return space.bytes; }}
"""
    lib = compile_shim(source)
    lib.t_alloc.restype = ctypes.c_int32
    lib.t_alloc.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)]
    lib.t_free.restype = ctypes.c_int32
    lib.t_free.argtypes = [ctypes.c_uint64]
    lib.t_init.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64]
    lib.t_check.restype = ctypes.c_char_p
    lib.t_bytes.restype = ctypes.c_uint64
    return lib


def model_alloc(ranges: dict[int, int], size: int, limit: int) -> int | None:
    top = min(limit, END)
    candidate = BASE
    for start in sorted(ranges):
        if candidate + size + PAGE <= start and candidate + size <= top:
            return candidate
        candidate = start + ranges[start] + PAGE
    return candidate if candidate + size <= top else None


def test_matches_the_first_fit_model() -> None:
    lib = _lib()
    lib.t_init(BASE, END, PAGE)
    rng = random.Random(7)
    ranges: dict[int, int] = {}
    for _ in range(3000):
        if ranges and rng.random() < 0.45:
            start = rng.choice(list(ranges))
            assert lib.t_free(start) == kIOReturnSuccess
            del ranges[start]
        else:
            size = rng.randrange(1, 24) * PAGE
            limit = rng.choice([END, 1 << 19, 1 << 16, 2 * PAGE])
            out = ctypes.c_uint64()
            ret = lib.t_alloc(size, limit, ctypes.byref(out))
            want = model_alloc(ranges, size, limit) if len(ranges) < MAX_RANGES else None
            if want is None:
                assert ret == kIOReturnNoResources
            else:
                assert ret == kIOReturnSuccess and out.value == want
                assert out.value + size <= limit
                ranges[out.value] = size
        assert lib.t_check() is None
        assert lib.t_bytes() == sum(ranges.values())


def test_bad_requests() -> None:
    lib = _lib()
    lib.t_init(BASE, END, PAGE)
    out = ctypes.c_uint64()
    assert lib.t_alloc(0, END, ctypes.byref(out)) == kIOReturnBadArgument
    assert lib.t_alloc(PAGE + 1, END, ctypes.byref(out)) == kIOReturnBadArgument
    assert lib.t_alloc(PAGE, PAGE, ctypes.byref(out)) == kIOReturnNoResources  # nothing below the base
    assert lib.t_free(0x5000) == kIOReturnBadArgument
