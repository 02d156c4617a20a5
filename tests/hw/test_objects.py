"""H1: OSTypeAlloc, retain/release and OSSafeReleaseNULL on the guest (driverkit-memory.md
§6-§7). Each claim of the ``obj`` verbs is checked against guest RAM read by the host (the
object's meta pointer and count, the poison after free, the test class's free counter) and
against the registry and heap decoded from RAM (harness/oracle/heap.py), with the ELF's
symbols for the metaclasses and the counter.
"""

from __future__ import annotations

import re

import pytest
from heap_support import baseline_state, decoded_and_compared, model_for

from harness import PROJECT_ROOT
from harness.addresses import PhysAddr, VirtAddr
from harness.errors import GuestCrashed
from harness.guest import Guest
from harness.oracle import heap as heap_oracle
from harness.qemu.profile import Profile

POISON = 0xDE


def _object_memory(guest: Guest, ptr: int, size: int) -> tuple[int, int, bytes]:
    """(meta, refcount, the rest) of an object, read from guest RAM by the host."""
    layout = guest.heap_layouts.os_object
    raw = guest.ram.read(PhysAddr(ptr), size)
    refcount = int.from_bytes(
        raw[layout["refcount"].offset : layout["refcount"].offset + 4], "little", signed=True
    )
    return layout.read(raw, "meta"), refcount, raw[layout.size :]


def _test_frees_in_ram(guest: Guest) -> int:
    return guest.ram.read_u64(PhysAddr(guest.elf.symbol("iomem_test_object_frees").address))


def test_classes_match_the_elf(guest: Guest) -> None:
    classes = guest.obj_classes()
    dwarf = guest.elf.dwarf
    assert classes["OSObject"] == dwarf.struct("OSObject").size == 16
    assert classes["IOMemTestObject"] == dwarf.struct("IOMemTestObject").size == 64
    decoded = {name: size for _, name, size in guest.heap_snapshot().objects.classes}
    assert decoded == classes
    metas = {meta for meta, _, _ in guest.heap_snapshot().objects.classes}
    assert {guest.elf.symbol(f"{name}MetaClass").address for name in ("OSObject", "IOMemTestObject")} <= metas


@pytest.mark.parametrize("class_name", ["OSObject", "IOMemTestObject"])
def test_new_object_has_one_reference_and_lies_in_the_heap(guest: Guest, class_name: str) -> None:
    size = guest.obj_classes()[class_name]
    reply = guest.obj_new(class_name)
    assert reply.value("class") == class_name and reply.number("size") == size and reply.number("refs") == 1
    ptr, handle = reply.number("ptr"), reply.number("obj")
    base, length = guest.info().heap
    assert base <= ptr and ptr + size <= base + length and ptr % 16 == 0
    meta, refcount, rest = _object_memory(guest, ptr, size)
    assert meta == guest.elf.symbol(f"{class_name}MetaClass").address and refcount == 1
    assert rest == bytes(size - 16)  # zero-filled, not initialised
    snap = guest.heap_verify()
    assert snap.live_blocks() == {ptr: size}  # a heap block of exactly the instance size
    [live] = snap.objects.live
    assert (live.handle, live.address, live.class_name, live.refcount) == (handle, ptr, class_name, 1)
    assert guest.check()["objects"] == 1 and guest.stats()["objects"] == 1


def test_retain_release_free_and_stale_handle(guest: Guest) -> None:
    """§6: refs 1 -> 2 -> 1 -> freed; usage back to baseline; poisoned; the handle goes stale."""
    state = baseline_state(guest)
    frees = guest.stats()["test_object_frees"]
    reply = guest.obj_new("IOMemTestObject")
    handle, ptr = reply.number("obj"), reply.number("ptr")
    r = guest.obj_retain(handle)
    assert (r.number("refs"), r.number("freed"), r.number("ptr")) == (2, 0, ptr)
    assert _object_memory(guest, ptr, 64)[1] == 2
    r = guest.obj_release(handle)
    assert (r.number("refs"), r.number("freed"), r.number("ptr"), r.number("inst")) == (1, 0, ptr, 0)
    assert _object_memory(guest, ptr, 64)[1] == 1
    r = guest.obj_release(handle)
    assert (r.number("refs"), r.number("freed"), r.number("ptr"), r.number("inst")) == (0, 1, 0, 0)
    assert guest.ram.read(PhysAddr(ptr + 16), 48) == bytes([POISON]) * 48  # the heap reuses bytes 0..15
    assert baseline_state(guest) == state
    assert guest.stats()["test_object_frees"] == frees + 1 == _test_frees_in_ram(guest)
    assert guest.ok("obj classes").number("test_frees") == frees + 1
    before = baseline_state(guest), guest.stats()["frees"]
    for verb in ("retain", "release"):
        guest.err(f"obj {verb} {handle:#x}", "kIOReturnBadArgument")
    assert (baseline_state(guest), guest.stats()["frees"]) == before


def test_a_handle_is_never_reused(guest: Guest) -> None:
    first = guest.obj_new("OSObject")
    guest.obj_release(first.number("obj"))
    second = guest.obj_new("OSObject")
    assert second.number("ptr") == first.number("ptr")  # same memory (and slot) again...
    assert second.number("obj") != first.number("obj")  # ...under a new handle
    guest.err(f"obj retain {first.number('obj'):#x}", "kIOReturnBadArgument")
    assert guest.obj_retain(second.number("obj")).number("refs") == 2


def test_osobject_free_does_not_run_the_test_hook(guest: Guest) -> None:
    frees = guest.stats()["test_object_frees"]
    guest.obj_release(guest.obj_new("OSObject").number("obj"))
    assert guest.stats()["test_object_frees"] == frees == _test_frees_in_ram(guest)


def test_safe_release_drops_one_reference_and_nulls_the_variable(guest: Guest) -> None:
    """§7: with refs=2 the object survives (refs=1), the caller's variable is NULL either way."""
    reply = guest.obj_new("IOMemTestObject")
    handle, ptr = reply.number("obj"), reply.number("ptr")
    guest.obj_retain(handle)
    r = guest.obj_release(handle)
    assert (r.number("refs"), r.number("freed"), r.number("inst")) == (1, 0, 0)
    assert guest.heap_verify().live_blocks() == {ptr: 64}
    r = guest.obj_release(handle)
    assert (r.number("freed"), r.number("inst")) == (1, 0)
    assert guest.heap_verify().live_blocks() == {}
    state = baseline_state(guest), guest.stats()["frees"]
    r = guest.obj_release(0)  # OSSafeReleaseNULL(NULL): nothing
    assert (r.number("refs"), r.number("freed"), r.number("ptr"), r.number("inst")) == (0, 0, 0, 0)
    assert (baseline_state(guest), guest.stats()["frees"]) == state


@pytest.mark.parametrize("handle", [0x0, 0x1, 0xFFFFFFFF, 0x100000000, 0x1_00000401, 2**64 - 1])
def test_handles_that_name_no_object_are_rejected(guest: Guest, handle: int) -> None:
    live = guest.obj_new("IOMemTestObject").number("obj")
    state = baseline_state(guest)
    if handle == live:
        pytest.skip("the guest handed out this handle")
    guest.err(f"obj retain {handle:#x}", "kIOReturnBadArgument")
    if handle != 0:  # release of 0 is OSSafeReleaseNULL(NULL), a success (above)
        guest.err(f"obj release {handle:#x}", "kIOReturnBadArgument")
    assert baseline_state(guest) == state


def test_unknown_class_is_rejected(guest: Guest) -> None:
    state = baseline_state(guest)
    guest.err("obj new IOMemoryDescriptorX", "kIOReturnBadArgument")
    guest.err("obj new osobject", "kIOReturnBadArgument")
    assert baseline_state(guest) == state


def test_registry_full_is_no_resources_before_the_heap_is_touched(guest: Guest) -> None:
    model = model_for(guest)
    state = baseline_state(guest)
    limit = guest.heap_layouts.object_registry["slots"].count // 2  # OBJECT_MAX_LIVE
    assert limit >= 8192  # C1: well past what a driver keeps (was 512)
    # One request past the limit, pipelined (no round trip each); every reply, in order, is
    # checked by the model up to the first refusal, which must be the last request's.
    handles = []
    for reply in guest.pipeline(["obj new OSObject"] * (limit + 1)):
        if not reply.ok:
            break
        handles.append(model.obj_new("OSObject", reply))
    assert reply.error == "kIOReturnNoResources" and len(handles) == limit
    stats = guest.stats()
    assert stats["alloc_failures"] == 0 and stats["allocs"] == limit  # the heap was not asked
    decoded_and_compared(guest, model)
    assert None not in handles
    releases = guest.pipeline([f"obj release {handle:#x}" for handle in handles if handle is not None])
    for handle, reply in zip(handles, releases, strict=True):
        assert handle is not None
        model.obj_release(handle, reply)
    decoded_and_compared(guest, model)
    assert baseline_state(guest) == state


def test_a_damaged_object_is_reported_by_check_and_by_the_decoder(guest: Guest) -> None:
    ptr = guest.obj_new("IOMemTestObject").number("ptr")
    count_at = PhysAddr(ptr + guest.heap_layouts.os_object["refcount"].offset)
    guest.ram.write(count_at, (0).to_bytes(4, "little"))
    reply = guest.err("check", "kIOReturnInternalError")
    assert reply.value("allocator") == "objects" and reply.number("at") == ptr
    assert any("count 0" in p for p in heap_oracle.problems(guest.heap_snapshot()))
    guest.ram.write(count_at, (1).to_bytes(4, "little"))
    guest.check()
    guest.heap_verify()


def test_obj_verbs_refuse_handles_they_did_not_issue(guest: Guest) -> None:
    """A buffer's or a map's reference belongs to the md/map verbs: `obj release` on it must
    not free pages that are still mapped (the mapping keeps working, checked from the host)."""
    bmd = guest.ok("bmd create 4096")
    md, va = bmd.number("md"), bmd.number("va")
    mapping = guest.ok(f"md map {md:#x}")
    before = guest.stats()
    for verb in ("retain", "release"):
        for handle in (md, mapping.number("map")):
            reply = guest.err(f"obj {verb} {handle:#x}", "kIOReturnBadArgument")
            assert "obj new" in reply.text
    assert guest.stats()["frees"] == before["frees"]
    guest.ok(f"fill {mapping.number('va'):#x} 16 0x5a")
    assert guest.ram.read(PhysAddr(guest.walker().walk(va).pa), 16) == b"\x5a" * 16  # type: ignore[union-attr]
    guest.ok(f"map release {mapping.number('map'):#x}")
    guest.ok(f"md release {md:#x}")
    guest.check()


# ------------------------------------------------------------------ C1 item 1: IOFree of another kind's block


@pytest.mark.parametrize(
    "verb",
    ["free {ptr:#x} {size}", "delete {ptr:#x} u64 {count}", "safedelete {ptr:#x} u8 {size}"],
)
def test_iofree_refuses_a_live_objects_memory(guest: Guest, verb: str) -> None:
    """IOFree/IODelete of an object's own pointer and instance size is bad input refused when it
    is made (§2 [Rec]): the block belongs to the object allocator, not to IOMalloc. Checked
    against the host decoder (the block is still there, tagged as object memory), guest RAM
    (meta and count untouched) and the registry, which keeps working."""
    model = model_for(guest)
    state = baseline_state(guest)
    reply = guest.obj_new("IOMemTestObject")
    handle = model.obj_new("IOMemTestObject", reply)
    assert handle is not None
    ptr, size = reply.number("ptr"), 64
    assert guest.heap_verify().block_owners() == {ptr: "object"}
    before = guest.stats()
    refused = guest.err(verb.format(ptr=ptr, size=size, count=size // 8), "kIOReturnBadArgument")
    assert "OSObject" in refused.text
    assert guest.stats()["frees"] == before["frees"]
    meta, refcount, _ = _object_memory(guest, ptr, size)
    assert meta == guest.elf.symbol("IOMemTestObjectMetaClass").address and refcount == 1
    guest.check()
    decoded_and_compared(guest, model)  # the block is live, object-owned, and the model agrees
    model.obj_retain(handle, guest.obj_retain(handle))
    model.obj_release(handle, guest.obj_release(handle))
    model.obj_release(handle, guest.obj_release(handle))
    decoded_and_compared(guest, model)
    assert baseline_state(guest) == state


def test_iofree_refuses_descriptor_objects_and_metadata(guest: Guest, profile: Profile) -> None:
    """Every heap block the descriptor calls hold (the buffer and map objects, the buffer's page
    list) is found by the host decoder with its owner, and IOFree of each with its exact size is
    refused; the buffer and its mapping keep working and release cleanly."""
    state = baseline_state(guest)
    bmd = guest.ok(f"bmd create {3 * profile.granule}")
    md = bmd.number("md")
    mapping = guest.ok(f"md map {md:#x}")
    snap = guest.heap_verify()
    owners, sizes = snap.block_owners(), snap.live_blocks()
    assert sorted(owners.values()) == ["firmware", "object", "object"]  # page list, buffer, map
    frees = guest.stats()["frees"]
    for ptr, owner in owners.items():
        guest.err(f"free {ptr:#x} {sizes[ptr]}", "kIOReturnBadArgument")
        guest.err(f"delete {ptr:#x} u8 {sizes[ptr]:#x}", "kIOReturnBadArgument")
        assert owner != "caller"
    assert guest.stats()["frees"] == frees
    assert guest.heap_verify().live_blocks() == sizes
    guest.check()
    guest.ok(f"fill {mapping.number('va'):#x} {3 * profile.granule} 0x5a")
    assert guest.read(VirtAddr(bmd.number("va")), 16) == b"\x5a" * 16
    guest.ok(f"map release {mapping.number('map'):#x}")
    guest.ok(f"md release {md:#x}")
    assert baseline_state(guest) == state


def test_an_internal_assertion_names_expression_file_and_line(guest: Guest) -> None:
    """A broken invariant (a live object whose count the host set to 0 behind the guest's back)
    stops the guest with `! panic assertion failed: EXPR (FILE:LINE)`, and that line of the
    source holds that assertion."""
    obj = guest.obj_new("IOMemTestObject")
    count_at = PhysAddr(obj.number("ptr") + guest.heap_layouts.os_object["refcount"].offset)
    guest.ram.write(count_at, (0).to_bytes(4, "little"))
    with pytest.raises(GuestCrashed) as caught:
        guest.request(f"obj retain {obj.number('obj'):#x}", timeout=5)
    pattern = r"! panic assertion failed: (.+) \((firmware/[\w/]+\.c):(\d+)\)"
    match = re.search(pattern, caught.value.console_tail)
    assert match is not None, caught.value.console_tail
    expr, path, line = match.group(1), match.group(2), int(match.group(3))
    assert expr == "count >= 1"
    source = (PROJECT_ROOT / path).read_text().splitlines()
    assert f"ASSERT({expr})" in source[line - 1]
