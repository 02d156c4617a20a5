"""Model-based testing of every heap and object verb on the guest (Hypothesis stateful).

Each example boots a fresh guest and runs a random sequence of alloc/zalloc/free/new/
newzero/delete/safedelete/obj/check/stats requests, good and bad. Every reply is checked
against :class:`harness.models.heap.HeapModel`, and after every step the allocators' state is
decoded from guest RAM by the host (``harness/oracle/heap.py``): all invariants must hold and
the live blocks and objects must be exactly the model's. Block contents are written from the
host at allocation and must be intact at free (nothing else writes into a live block);
zalloc/newzero memory must read zero from the host.

CI budget: derandomized (same sequences every run, no example database), 30 examples of up
to 25 steps per profile: 120 examples on the four profiles. Raise ``HEAP_SM_EXAMPLES`` for a
longer hunt. A failure shrinks to a minimal sequence; keep it as a test in
``test_heap_regressions.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from heap_support import HEAP_LARGE_MIN, class_starts, decoded_and_compared, fill, intact, model_for, zeroed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from state_machine_settings import state_machine_settings

from harness.addresses import PhysAddr
from harness.guest import Guest
from harness.link.protocol import Reply
from harness.models.heap import CLASS_SIZES, TYPE_SIZES, HeapModel
from harness.qemu.profile import Profile

STEPS = 25
SETTINGS = state_machine_settings("HEAP_SM_EXAMPLES", examples=30, steps=STEPS)

SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 600),
    st.sampled_from([s - 16 + d for s in class_starts()[::9] for d in (-1, 0, 1) if s >= 17]),
    st.integers(600, HEAP_LARGE_MIN - 1),
    st.integers(HEAP_LARGE_MIN - 2, HEAP_LARGE_MIN + 2),
    st.integers(HEAP_LARGE_MIN, 300_000),
)
TYPES = st.sampled_from(sorted(TYPE_SIZES))
COUNTS = st.one_of(
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 3),
    st.sampled_from([0x0010000000000000, 2**64 - 1, 2**61, 2**64 // 24 + 1, 2**63]),
)
CLASSES = st.sampled_from(sorted(CLASS_SIZES))
PICK = st.integers(0, 2**16)  # an index into a run-time list: strategies never see addresses

# Rules that need something to act on only run when it exists, so that steps are not wasted.
has_blocks = precondition(lambda self: bool(self.model.plain_blocks()))
has_objects = precondition(lambda self: bool(self.model.objects))
has_stale_blocks = precondition(lambda self: bool(self.model.freed - set(self.model.live)))
has_stale_handles = precondition(lambda self: bool(self.model.stale_handles))


def _metaclass(guest: Guest, name: str) -> int:
    return guest.elf.symbol(f"{name}MetaClass").address


class GuestHeapMachine(RuleBasedStateMachine):
    """One fresh guest per example, driven against the model."""

    profile: Profile
    artifacts: Path
    firmware: Path
    examples = 0
    verbs: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1
        self.guest = Guest(self.profile, self.artifacts, firmware=self.firmware).boot()
        send = self.guest.request

        def counted(line: str, *, timeout: float | None = None) -> Reply:
            reply = send(line, timeout=timeout)
            words = line.split()
            self.verbs[" ".join(words[:2]) if words[0] == "obj" else words[0]] += 1
            self.verbs[f"{words[0]} -> {'ok' if reply.ok else reply.error}"] += 1
            return reply

        self.guest.request = counted  # type: ignore[method-assign]
        self.model: HeapModel = model_for(self.guest)
        self.bytes_of: dict[int, int] = {}  # live plain block -> the byte the host filled it with
        self.next_byte = 1

    def teardown(self) -> None:
        self.guest.close(reuse=True)  # rebooted in place for the next example if it is clean (warm.py)

    # ------------------------------------------------------------ helpers
    def _fill(self, va: int, size: int) -> None:
        byte = self.next_byte
        self.next_byte = self.next_byte % 255 + 1
        fill(self.guest, va, size, byte)
        self.bytes_of[va] = byte

    def _pick_plain(self, pick: int) -> int | None:
        blocks = self.model.plain_blocks()
        return blocks[pick % len(blocks)] if blocks else None

    def _pick_handle(self, pick: int) -> int | None:
        handles = self.model.live_handles()
        return handles[pick % len(handles)] if handles else None

    def _forget(self, va: int) -> None:
        size = self.model.live[va].size
        assert intact(self.guest, va, size, self.bytes_of[va]), f"live block {va:#x} was overwritten"
        del self.bytes_of[va]

    # ------------------------------------------------------------ §1 IOMalloc / IOMallocZero
    @rule(size=SIZES, zero=st.booleans())
    def alloc(self, size: int, zero: bool) -> None:
        verb = "zalloc" if zero else "alloc"
        va = self.model.alloc(size, self.guest.request(f"{verb} {size}"), zero=zero)
        if va is not None:
            if zero:
                assert zeroed(self.guest, va, size), f"zalloc {size} at {va:#x} is not zero"
            self._fill(va, size)

    # ------------------------------------------------------------ §2 IOFree
    @rule(pick=PICK)
    @has_blocks
    def free(self, pick: int) -> None:
        va = self._pick_plain(pick)
        if va is None:
            return
        size = self.model.live[va].size
        self._forget(va)
        self.model.free(va, size, self.guest.request(f"free {va:#x} {size}"))

    @rule(pick=PICK, delta=st.sampled_from([-16, -1, 1, 16, 4096, 2**63]))
    @has_blocks
    def free_wrong_size(self, pick: int, delta: int) -> None:
        va = self._pick_plain(pick)
        if va is None or not 0 <= self.model.live[va].size + delta < 2**64:
            return
        size = self.model.live[va].size + delta
        self.model.free(va, size, self.guest.request(f"free {va:#x} {size}"))

    @rule(pick=PICK, size=SIZES)
    @has_stale_blocks
    def free_stale(self, pick: int, size: int) -> None:
        stale = sorted(self.model.freed - set(self.model.live))
        if stale:
            va = stale[pick % len(stale)]
            self.model.free(va, size, self.guest.request(f"free {va:#x} {size}"))

    @rule(pick=PICK, offset=st.sampled_from([-16, -8, 8, 16, 32, 4096, 65536]))
    @has_blocks
    def free_inside(self, pick: int, offset: int) -> None:
        va = self._pick_plain(pick)
        if va is None:
            return
        size = self.model.live[va].size
        self.model.free(va + offset, size, self.guest.request(f"free {va + offset:#x} {size}"))

    @rule(pick=PICK, safe=st.booleans(), via_delete=st.booleans())
    @has_objects
    def free_object_memory(self, pick: int, safe: bool, via_delete: bool) -> None:
        """IOFree / IODelete of a live object's own pointer and instance size: refused (§2)."""
        handle = self._pick_handle(pick)
        if handle is None:
            return
        obj = self.model.objects[handle]
        if via_delete:
            verb = "safedelete" if safe else "delete"
            reply = self.guest.request(f"{verb} {obj.ptr:#x} u8 {obj.size:#x}")
            self.model.delete(obj.ptr, "u8", obj.size, reply, safe=safe)
        else:
            self.model.free(obj.ptr, obj.size, self.guest.request(f"free {obj.ptr:#x} {obj.size}"))

    @rule(size=st.sampled_from([0, 16, 2**64 - 1]))
    def free_null(self, size: int) -> None:
        self.model.free(0, size, self.guest.request(f"free 0x0 {size}"))

    # ------------------------------------------------------------ §3 IONew / IONewZero
    @rule(type_name=TYPES, count=COUNTS, zero=st.booleans())
    def new(self, type_name: str, count: int, zero: bool) -> None:
        verb = "newzero" if zero else "new"
        va = self.model.new(type_name, count, self.guest.request(f"{verb} {type_name} {count:#x}"), zero=zero)
        if va is not None:
            size = self.model.live[va].size
            if zero:
                assert zeroed(self.guest, va, size), f"{verb} {type_name} {count} at {va:#x} is not zero"
            self._fill(va, size)

    # ------------------------------------------------------------ §4-§5 IODelete / IOSafeDeleteNULL
    @rule(pick=PICK, safe=st.booleans(), same=st.booleans(), type_name=TYPES, count=COUNTS)
    @has_blocks
    def delete(self, pick: int, safe: bool, same: bool, type_name: str, count: int) -> None:
        """With ``same``, the TYPE and COUNT the block was made with (or its byte size as u8),
        else arbitrary ones (mostly a size mismatch, or an overflow that frees nothing)."""
        va = self._pick_plain(pick)
        if va is None:
            return
        block = self.model.live[va]
        if same:
            type_name, count = (block.type_name, block.count) if block.type_name else ("u8", block.size)
        verb = "safedelete" if safe else "delete"
        will_free = TYPE_SIZES[type_name] * count == block.size
        if will_free:
            self._forget(va)
        self.model.delete(
            va, type_name, count, self.guest.request(f"{verb} {va:#x} {type_name} {count:#x}"), safe=safe
        )

    @rule(safe=st.booleans(), type_name=TYPES, count=COUNTS)
    def delete_null(self, safe: bool, type_name: str, count: int) -> None:
        verb = "safedelete" if safe else "delete"
        self.model.delete(
            0, type_name, count, self.guest.request(f"{verb} 0x0 {type_name} {count:#x}"), safe=safe
        )

    # ------------------------------------------------------------ §6-§7 objects
    @rule(class_name=CLASSES)
    def obj_new(self, class_name: str) -> None:
        handle = self.model.obj_new(class_name, self.guest.request(f"obj new {class_name}"))
        if handle is None:
            return
        obj = self.model.objects[handle]
        memory = self.guest.ram.read(PhysAddr(obj.ptr), obj.size)
        layout = self.guest.heap_layouts.os_object
        assert layout.read(memory, "meta") == _metaclass(self.guest, class_name)
        assert layout.read(memory, "refcount") == 1
        assert memory[layout.size :] == bytes(obj.size - layout.size), "a new object is zero-filled"

    @rule(pick=PICK)
    @has_objects
    def obj_retain(self, pick: int) -> None:
        handle = self._pick_handle(pick)
        if handle is not None:
            self.model.obj_retain(handle, self.guest.request(f"obj retain {handle:#x}"))

    @rule(pick=PICK)
    @has_objects
    def obj_release(self, pick: int) -> None:
        handle = self._pick_handle(pick)
        if handle is None:
            return
        obj = self.model.objects[handle]
        self.model.obj_release(handle, self.guest.request(f"obj release {handle:#x}"))
        if handle not in self.model.objects and obj.size > 16:
            # freed: poisoned from offset 16 (the heap's list links take the first 16 bytes)
            poison = self.guest.ram.read(PhysAddr(obj.ptr + 16), obj.size - 16)
            assert poison == b"\xde" * (obj.size - 16), f"freed object {obj.ptr:#x} is not poisoned"

    @rule(pick=PICK, retain=st.booleans())
    @has_stale_handles
    def obj_stale(self, pick: int, retain: bool) -> None:
        stale = sorted(self.model.stale_handles)
        if not stale:
            return
        handle = stale[pick % len(stale)]
        verb = "retain" if retain else "release"
        reply = self.guest.request(f"obj {verb} {handle:#x}")
        (self.model.obj_retain if retain else self.model.obj_release)(handle, reply)

    @rule()
    def obj_release_null(self) -> None:
        self.model.obj_release(0, self.guest.request("obj release 0x0"))

    # ------------------------------------------------------------ observers
    @invariant()
    def state_matches_the_model(self) -> None:
        """After every step: host decoder (invariants + model), stats, and the guest's check."""
        snapshot = decoded_and_compared(self.guest, self.model)
        self.model.compare_stats(self.guest.stats())
        self.model.compare_check(self.guest.check(), snapshot)


@pytest.mark.profiles("virt-4k", "virt-16k", "virt-64k", "virt-4k-smmu")
def test_heap_state_machine(profile: Profile, artifacts: Path, firmware_elf: Path) -> None:
    class Machine(GuestHeapMachine):
        pass

    # Derandomized runs are seeded from the machine's name: one name per profile, so that each
    # profile gets its own sequences rather than the same ones again.
    Machine.__name__ = Machine.__qualname__ = f"GuestHeapMachine_{profile.name.replace('-', '_')}"
    Machine.profile, Machine.artifacts, Machine.firmware = profile, artifacts / "example", firmware_elf
    Machine.verbs = Counter()
    run_state_machine_as_test(Machine, settings=SETTINGS)
    print(
        f"{profile.name}: {Machine.examples} examples of up to {STEPS} steps; requests: {dict(Machine.verbs)}"
    )
    assert Machine.examples >= SETTINGS.max_examples  # the budget ran (derandomized: same every time)
