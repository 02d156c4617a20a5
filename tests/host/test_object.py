"""OSObject allocation, reference counts, free hooks and the live-object registry (spec §6-§7)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
from hostlib import (
    OBJECT_MAX_LIVE,
    OBJECT_POISON_BYTE,
    Arena,
    OSMetaClass,
    OSObject,
    compile_shim,
    kIOReturnBadArgument,
    kIOReturnNoResources,
    kIOReturnSuccess,
    load,
    metaclass,
    u64_global,
)

TEST_CLASS = "IOMemTestObjectMetaClass"
TEST_OBJECT_SIZE = 64  # sizeof(IOMemTestObject)
INT32_MAX = 2**31 - 1


@pytest.fixture
def arena() -> Arena:
    return Arena(8 * 1024 * 1024, 4096)


def allocate(class_symbol: str = TEST_CLASS) -> int:
    out = ctypes.c_void_p()
    assert load().OSObjectAllocate(metaclass(class_symbol), ctypes.byref(out)) == kIOReturnSuccess
    assert out.value is not None
    return out.value


def retain(pointer: int) -> tuple[int, int]:
    refs = ctypes.c_int32(-1)
    return load().object_retain(pointer, ctypes.byref(refs)), refs.value


def release(pointer: int) -> tuple[int, int]:
    refs = ctypes.c_int32(-1)
    return load().object_release(pointer, ctypes.byref(refs)), refs.value


def lookup(handle: int) -> int | None:
    out = ctypes.c_void_p()
    return out.value if load().object_lookup(handle, ctypes.byref(out)) == kIOReturnSuccess else None


def frees() -> int:
    return u64_global("iomem_test_object_frees")


# ------------------------------------------------------------------ classes


def test_class_list(arena: Arena) -> None:
    lib = load()
    names = [
        OSMetaClass.from_address(lib.object_class_at(index)).name.decode()
        for index in range(lib.object_class_count())
    ]
    assert names == ["OSObject", "IOMemTestObject"]
    assert lib.object_class_at(len(names)) is None
    assert lib.object_class_find(b"IOMemTestObject") == metaclass(TEST_CLASS)
    assert lib.object_class_find(b"NoSuchClass") is None
    test_class = OSMetaClass.in_dll(lib, TEST_CLASS)
    assert test_class.instance_size == TEST_OBJECT_SIZE
    assert test_class.super == metaclass("OSObjectMetaClass")


def test_class_registration_rules(arena: Arena) -> None:
    lib = load()
    assert lib.object_class_register(metaclass(TEST_CLASS)) == kIOReturnSuccess  # again: fine
    impostor = OSMetaClass(b"IOMemTestObject", 64, None, None)
    assert lib.object_class_register(ctypes.addressof(impostor)) == kIOReturnBadArgument
    tiny = OSMetaClass(b"Tiny", 8, None, None)
    assert lib.object_class_register(ctypes.addressof(tiny)) == kIOReturnBadArgument
    assert lib.object_class_register(None) == kIOReturnBadArgument


# ------------------------------------------------------------------ lifetime


def test_new_object_has_one_reference_and_lives_in_the_heap(arena: Arena) -> None:
    baseline = arena.snapshot()
    pointer = allocate()
    header = OSObject.from_address(pointer)
    assert header.meta == metaclass(TEST_CLASS)
    assert header.refcount == 1
    assert arena.lookup(pointer) == TEST_OBJECT_SIZE  # a live heap block of the instance size
    assert arena.read(pointer + 16, TEST_OBJECT_SIZE - 16) == bytes(TEST_OBJECT_SIZE - 16)
    assert release(pointer) == (kIOReturnSuccess, 0)
    assert arena.snapshot() == baseline


def test_retain_release_and_free_hook_runs_once(arena: Arena) -> None:
    baseline = arena.snapshot()
    pointer = allocate()
    hooks = frees()
    assert retain(pointer) == (kIOReturnSuccess, 2)
    assert release(pointer) == (kIOReturnSuccess, 1)
    assert frees() == hooks
    assert arena.lookup(pointer) == TEST_OBJECT_SIZE
    assert release(pointer) == (kIOReturnSuccess, 0)
    assert frees() == hooks + 1
    assert arena.snapshot() == baseline
    # The object is gone: further retains and releases are refused and run no hook.
    assert retain(pointer)[0] == kIOReturnBadArgument
    assert release(pointer)[0] == kIOReturnBadArgument
    assert frees() == hooks + 1
    arena.check_all()


def test_plain_osobject_has_no_hook(arena: Arena) -> None:
    hooks = frees()
    pointer = allocate("OSObjectMetaClass")
    assert arena.lookup(pointer) == 16
    assert release(pointer) == (kIOReturnSuccess, 0)
    assert frees() == hooks


def test_freed_object_is_poisoned(arena: Arena) -> None:
    pointer = allocate()
    guard = arena.malloc(16)  # so the freed block does not merge with the free tail
    arena.fill(pointer + 16, 0x33, TEST_OBJECT_SIZE - 16)
    assert release(pointer) == (kIOReturnSuccess, 0)
    # The heap reuses the first 16 bytes of a free block for its list links; the rest
    # shows the poison.
    assert arena.read(pointer + 16, TEST_OBJECT_SIZE - 16) == bytes([OBJECT_POISON_BYTE]) * 48
    assert arena.free(guard, 16) == kIOReturnSuccess


def test_stale_handle_is_rejected_even_when_memory_and_slot_are_reused(arena: Arena) -> None:
    lib = load()
    first = allocate()
    handle = lib.object_handle(first)
    assert handle != 0 and lookup(handle) == first
    assert release(first) == (kIOReturnSuccess, 0)
    assert lookup(handle) is None
    assert lib.object_handle(first) == 0
    second = allocate()
    assert second == first  # same memory (and, by the hash, the same slot)
    new_handle = lib.object_handle(second)
    assert new_handle != handle
    assert new_handle & 0xFFFFFFFF == handle & 0xFFFFFFFF
    assert lookup(handle) is None
    assert lookup(new_handle) == second
    assert release(second) == (kIOReturnSuccess, 0)


@pytest.mark.parametrize("handle", [0, 1, 0x1_0000_0000, 0x1_0000_0401, 2**64 - 1])
def test_bogus_handles_are_rejected(arena: Arena, handle: int) -> None:
    assert lookup(handle) is None


def test_pointers_that_are_not_objects_are_rejected(arena: Arena) -> None:
    block = arena.malloc(64)
    for pointer in (block, block + 16, 0):
        assert retain(pointer)[0] == kIOReturnBadArgument
        assert release(pointer)[0] == kIOReturnBadArgument
    lib = load()
    lib.OSObjectRetain(block)  # the void forms ignore it
    lib.OSObjectRelease(block)
    assert arena.lookup(block) == 64


def test_unregistered_class_is_rejected(arena: Arena) -> None:
    lib = load()
    stranger = OSMetaClass(b"Stranger", 32, None, None)
    out = ctypes.c_void_p(1)
    assert lib.OSObjectAllocate(ctypes.addressof(stranger), ctypes.byref(out)) == kIOReturnBadArgument
    assert out.value is None
    assert lib.OSObjectAllocate(None, ctypes.byref(out)) == kIOReturnBadArgument
    assert lib.OSObjectAllocate(metaclass(TEST_CLASS), None) == kIOReturnBadArgument


def test_registry_full_then_empty(arena: Arena) -> None:
    lib = load()
    baseline = arena.snapshot()
    objects = [allocate() for _ in range(OBJECT_MAX_LIVE)]
    assert lib.object_live_count() == OBJECT_MAX_LIVE
    out = ctypes.c_void_p()
    allocs = arena.heap_stats()["allocs"]
    assert lib.OSObjectAllocate(metaclass(TEST_CLASS), ctypes.byref(out)) == kIOReturnNoResources
    assert arena.heap_stats()["allocs"] == allocs  # refused before touching the heap
    handles = {lib.object_handle(pointer) for pointer in objects}
    assert len(handles) == OBJECT_MAX_LIVE and 0 not in handles
    for pointer in objects:
        assert lookup(lib.object_handle(pointer)) == pointer
    for pointer in reversed(objects):
        assert release(pointer) == (kIOReturnSuccess, 0)
    assert lib.object_live_count() == 0
    assert arena.snapshot() == baseline
    assert all(lookup(handle) is None for handle in handles)


def test_churn_keeps_lookups_working(arena: Arena) -> None:
    """Many alloc/free rounds leave tombstones everywhere; lookups must still find every object."""
    lib = load()
    for _ in range(20):
        objects = [allocate() for _ in range(300)]
        for pointer in objects:
            assert lookup(lib.object_handle(pointer)) == pointer
        for pointer in objects:
            assert release(pointer) == (kIOReturnSuccess, 0)
    assert lib.object_live_count() == 0
    arena.check_all()


def test_count_pegs_at_int32_max(arena: Arena) -> None:
    pointer = allocate()
    header = OSObject.from_address(pointer)
    header.refcount = INT32_MAX - 1
    assert retain(pointer) == (kIOReturnSuccess, INT32_MAX)
    assert retain(pointer) == (kIOReturnSuccess, INT32_MAX)
    assert release(pointer) == (kIOReturnSuccess, INT32_MAX)
    header.refcount = 1
    assert release(pointer) == (kIOReturnSuccess, 0)


# ------------------------------------------------------------------ the macros

SHIM = r"""
#include "OSObject.h"
#include "mm/object.h" /* the test class IOMemTestObject */

void *shim_type_alloc(void) { return OSTypeAlloc(IOMemTestObject); }
void *shim_safe_release(void *pointer)
{
    IOMemTestObject *object = pointer;
    OSSafeReleaseNULL(object);
    return object;
}
"""


@pytest.fixture(scope="module")
def shim() -> Iterator[ctypes.CDLL]:
    lib = compile_shim(SHIM)
    lib.shim_type_alloc.restype = ctypes.c_void_p
    lib.shim_type_alloc.argtypes = []
    lib.shim_safe_release.restype = ctypes.c_void_p
    lib.shim_safe_release.argtypes = [ctypes.c_void_p]
    yield lib


def test_ostypealloc_and_ossafereleasenull(arena: Arena, shim: ctypes.CDLL) -> None:
    baseline = arena.snapshot()
    pointer = shim.shim_type_alloc()
    assert pointer and OSObject.from_address(pointer).refcount == 1
    assert retain(pointer) == (kIOReturnSuccess, 2)
    assert shim.shim_safe_release(pointer) is None  # the variable is NULLed ...
    assert OSObject.from_address(pointer).refcount == 1  # ... but only one reference dropped
    hooks = frees()
    assert shim.shim_safe_release(pointer) is None
    assert frees() == hooks + 1
    assert shim.shim_safe_release(None) is None  # NULL: nothing happens
    assert arena.snapshot() == baseline
