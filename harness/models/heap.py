"""A host reference model of DriverKit's memory utilities (driverkit-memory.md §1-§7) as the
guest's verbs expose them (docs/heap-verbs.md).

The model knows what the spec says and nothing of how the guest allocates: for each verb it
predicts the reply (status, error name, the keys that follow from the arguments) and the
effect on the live blocks, objects and counters, then checks the guest's reply against that
prediction. Addresses cannot be predicted; the model checks the properties they must have
(16-aligned, inside the heap, overlapping no live block) and remembers them. Whether a very
large request fits depends on fragmentation, so a request the model cannot decide is
allowed to succeed or fail with ``kIOReturnNoMemory``, but either outcome is then checked in
full.

:meth:`HeapModel.compare_stats` and :meth:`HeapModel.compare_snapshot` hold the guest's
``stats``/``check`` and the host-decoded allocator state (:mod:`harness.oracle.heap`) to the
model. Any disagreement raises :class:`~harness.errors.OracleMismatch` naming both sides.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from harness.errors import OracleMismatch
from harness.link.protocol import Reply
from harness.oracle.heap import Snapshot

U64 = 1 << 64
HEAP_ALIGN = 16  # [Rec] every pointer is 16-aligned (IOLib.h)
TYPE_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "rec24": 24, "rec4096": 4096}
CLASS_SIZES = {"OSObject": 16, "IOMemTestObject": 64}
TEST_CLASS = "IOMemTestObject"  # its free hook counts (stats test_object_frees)
BAD_ARGUMENT = "kIOReturnBadArgument"
NO_MEMORY = "kIOReturnNoMemory"


@dataclass
class LiveBlock:
    size: int  # the requested size
    origin: str  # "alloc", "zalloc", "new", "newzero", "obj"
    handle: int = 0  # the object's handle, for object memory
    type_name: str | None = None  # new/newzero: the TYPE and COUNT it was made with
    count: int = 0


@dataclass
class LiveObject:
    handle: int
    class_name: str
    size: int
    refs: int
    ptr: int


@dataclass
class HeapModel:
    """The spec's view of the heap: live blocks, objects, counters.

    ``heap``: the page allocator's range (base, size) that every block must lie in;
    ``sure_fit``: requests up to this many bytes (in total with the live ones) must succeed.
    """

    heap: tuple[int, int]
    sure_fit: int = 16 << 20
    live: dict[int, LiveBlock] = field(default_factory=dict)
    objects: dict[int, LiveObject] = field(default_factory=dict)
    stale_handles: set[int] = field(default_factory=set)
    freed: set[int] = field(default_factory=set)  # pointers freed and not handed out again
    allocs: int = 0
    frees: int = 0
    alloc_failures: int = 0
    test_object_frees: int = 0
    _starts: list[int] = field(default_factory=list, repr=False, compare=False)  # sorted live keys

    # ------------------------------------------------------------ queries
    @property
    def used(self) -> int:
        """stats heap_used: the sum of the requested sizes of live blocks."""
        return sum(block.size for block in self.live.values())

    def plain_blocks(self) -> list[int]:
        """Live blocks that are not object memory, by address (what free/delete may name)."""
        return sorted(va for va, block in self.live.items() if not block.handle)

    def live_handles(self) -> list[int]:
        return sorted(self.objects)

    # ------------------------------------------------------------ helpers
    def _fail(self, what: str, reply: Reply, want: object) -> OracleMismatch:
        return OracleMismatch(what, {"guest": reply.line, "model": want}, command=what)

    def _expect_error(self, what: str, reply: Reply, error: str) -> None:
        if reply.ok or reply.error != error:
            raise self._fail(what, reply, f"err {error}")

    def _expect_keys(self, what: str, reply: Reply, keys: dict[str, int]) -> None:
        got = {k: reply.number(k) if k in reply else None for k in keys}
        if not reply.ok or got != keys:
            raise self._fail(what, reply, keys)

    def _fits(self, size: int) -> bool | None:
        """True: must succeed; False: cannot; None: depends on fragmentation."""
        if size > self.heap[1]:
            return False
        if self.used + size <= self.sure_fit:
            return True
        return None

    def _new_block(self, what: str, reply: Reply, size: int, origin: str, handle: int = 0) -> int:
        """Checks and records a block the guest handed out at ``va``."""
        va = reply.number("va") if "va" in reply else reply.number("ptr")
        base, length = self.heap
        if va % HEAP_ALIGN or not base <= va or va + max(size, 1) > base + length:
            raise self._fail(what, reply, f"a 16-aligned block inside [{base:#x}, +{length:#x})")
        end = va + max(size, 1)
        # Live blocks never overlap, so in address order their ends rise too: only the last
        # block that starts below `end` can overlap [va, end) (a bisection, not a scan of
        # every live block: 8192 objects were 33 M comparisons; issue P1).
        if len(self._starts) != len(self.live):
            self._starts = sorted(self.live)
        below = bisect.bisect_left(self._starts, end)
        if below:
            other = self._starts[below - 1]
            block = self.live[other]
            if va < other + max(block.size, 1):
                raise self._fail(what, reply, f"a block overlapping none (overlaps {other:#x} {block})")
        self.live[va] = LiveBlock(size, origin, handle)
        bisect.insort(self._starts, va)
        self.freed.discard(va)
        self.allocs += 1
        return va

    def _allocation(self, what: str, reply: Reply, size: int, origin: str) -> int | None:
        fits = self._fits(size)
        if reply.ok:
            if fits is False:
                raise self._fail(what, reply, f"err {NO_MEMORY}")
            if "va" not in reply:
                raise self._fail(what, reply, "va=")
            self._expect_keys(what, reply, {"va": reply.number("va"), "size": size})
            return self._new_block(what, reply, size, origin)
        if fits is True:
            raise self._fail(what, reply, "ok")
        self._expect_error(what, reply, NO_MEMORY)
        self.alloc_failures += 1  # the allocator was entered and said no
        return None

    def _release_block(self, va: int) -> None:
        del self.live[va]
        if len(self._starts) == len(self.live) + 1:
            del self._starts[bisect.bisect_left(self._starts, va)]
        self.freed.add(va)
        self.frees += 1

    # ------------------------------------------------------------ §1 IOMalloc / IOMallocZero
    def alloc(self, size: int, reply: Reply, *, zero: bool = False) -> int | None:
        """``alloc SIZE`` / ``zalloc SIZE``: the VA, or None when the guest said NoMemory."""
        verb = "zalloc" if zero else "alloc"
        return self._allocation(f"{verb} {size}", reply, size, verb)

    # ------------------------------------------------------------ §2 IOFree
    def _free_outcome(self, va: int, size: int) -> bool:
        """Whether IOFree(va, size) frees; False means rejected (or NULL, see callers).

        Only a block IOMalloc/IONew handed out, with its size: an object's memory (``obj new``)
        is refused even with its own pointer and instance size (§2 [Rec]; the block belongs to
        another kind of allocation)."""
        block = self.live.get(va)
        return block is not None and block.size == size and not block.handle

    def free(self, va: int, size: int, reply: Reply) -> None:
        what = f"free {va:#x} {size}"
        if va == 0:
            self._expect_keys(what, reply, {})
        elif self._free_outcome(va, size):
            self._expect_keys(what, reply, {})
            self._release_block(va)
        else:
            self._expect_error(what, reply, BAD_ARGUMENT)

    # ------------------------------------------------------------ §3 IONew / IONewZero
    def new(self, type_name: str, count: int, reply: Reply, *, zero: bool = False) -> int | None:
        verb = "newzero" if zero else "new"
        what = f"{verb} {type_name} {count:#x}"
        if type_name not in TYPE_SIZES:
            self._expect_error(what, reply, BAD_ARGUMENT)
            return None
        size = TYPE_SIZES[type_name] * count
        if size >= U64:  # overflow: NULL without entering the allocator (no counter moves)
            self._expect_error(what, reply, NO_MEMORY)
            return None
        va = self._allocation(what, reply, size, verb)
        if va is not None:
            self.live[va].type_name, self.live[va].count = type_name, count
        return va

    # ------------------------------------------------------------ §4 IODelete, §5 IOSafeDeleteNULL
    def delete(self, va: int, type_name: str, count: int, reply: Reply, *, safe: bool = False) -> None:
        verb = "safedelete" if safe else "delete"
        what = f"{verb} {va:#x} {type_name} {count:#x}"
        if type_name not in TYPE_SIZES:
            self._expect_error(what, reply, BAD_ARGUMENT)
            return
        size = TYPE_SIZES[type_name] * count
        # The caller's variable after the call: IOSafeDeleteNULL NULLs it, IODelete leaves it.
        ptr = {"ptr": 0 if safe else va}
        if va == 0 or size >= U64:  # NULL, or an overflowing count: IODelete does nothing
            self._expect_keys(what, reply, ptr | {"freed": 0})
        elif self._free_outcome(va, size):
            self._expect_keys(what, reply, ptr | {"freed": 1})
            self._release_block(va)
        else:
            self._expect_error(what, reply, BAD_ARGUMENT)
            if "ptr" not in reply or reply.number("ptr") != ptr["ptr"]:
                raise self._fail(what, reply, f"err {BAD_ARGUMENT} ptr={ptr['ptr']:#x}")

    # ------------------------------------------------------------ §6-§7 objects
    def obj_new(self, class_name: str, reply: Reply) -> int | None:
        what = f"obj new {class_name}"
        if class_name not in CLASS_SIZES:
            self._expect_error(what, reply, BAD_ARGUMENT)
            return None
        size = CLASS_SIZES[class_name]
        if not reply.ok:
            if self._fits(size):
                raise self._fail(what, reply, "ok")
            self._expect_error(what, reply, NO_MEMORY)
            self.alloc_failures += 1
            return None
        handle = reply.number("obj")
        if handle in self.objects or handle in self.stale_handles or handle == 0:
            raise self._fail(what, reply, "a handle never seen before")
        self._expect_keys(what, reply, {"obj": handle, "size": size, "refs": 1, "ptr": reply.number("ptr")})
        if reply.value("class") != class_name:
            raise self._fail(what, reply, f"class={class_name}")
        ptr = self._new_block(what, reply, size, "obj", handle)
        self.objects[handle] = LiveObject(handle, class_name, size, 1, ptr)
        return handle

    def obj_retain(self, handle: int, reply: Reply) -> None:
        what = f"obj retain {handle:#x}"
        obj = self.objects.get(handle)
        if obj is None:
            self._expect_error(what, reply, BAD_ARGUMENT)
            return
        obj.refs += 1
        self._expect_keys(what, reply, {"refs": obj.refs, "freed": 0, "ptr": obj.ptr})

    def obj_release(self, handle: int, reply: Reply) -> None:
        """OSSafeReleaseNULL: one reference less; the last one frees; NULL (handle 0) is a no-op."""
        what = f"obj release {handle:#x}"
        if handle == 0:
            self._expect_keys(what, reply, {"refs": 0, "freed": 0, "ptr": 0, "inst": 0})
            return
        obj = self.objects.get(handle)
        if obj is None:
            self._expect_error(what, reply, BAD_ARGUMENT)
            return
        obj.refs -= 1
        if obj.refs:
            self._expect_keys(what, reply, {"refs": obj.refs, "freed": 0, "ptr": obj.ptr, "inst": 0})
            return
        self._expect_keys(what, reply, {"refs": 0, "freed": 1, "ptr": 0, "inst": 0})
        del self.objects[handle]
        self.stale_handles.add(handle)
        self._release_block(obj.ptr)
        if obj.class_name == TEST_CLASS:
            self.test_object_frees += 1

    # ------------------------------------------------------------ observers
    def compare_stats(self, stats: dict[str, int], *, command: str = "stats") -> None:
        """The guest's ``stats`` keys that the model knows exactly."""
        want = {
            "heap_used": self.used,
            "allocs": self.allocs,
            "frees": self.frees,
            "alloc_failures": self.alloc_failures,
            "heap_blocks": len(self.live),
            "objects": len(self.objects),
            "test_object_frees": self.test_object_frees,
        }
        got = {key: stats.get(key) for key in want}
        if got != want:
            raise OracleMismatch("stats vs model", {"guest stats": got, "model": want}, command=command)

    def compare_check(self, check: dict[str, int], snapshot: Snapshot) -> None:
        """The guest's ``check`` reply: its counts against the model and the host decoder."""
        want = {
            "blocks": len(self.live),
            "objects": len(self.objects),
            "free": snapshot.free_bytes,
            "free_blocks": len(snapshot.free_blocks()),
            "chunks": len(snapshot.heap.chunks),
            "large": len(snapshot.heap.large),
            "pages_free": snapshot.pages.free_pages,
        }
        got = {key: check.get(key) for key in want}
        if got != want:
            raise OracleMismatch("check vs model/decoder", {"guest check": got, "model+decoder": want})

    def compare_snapshot(self, snapshot: Snapshot, *, command: str = "(host heap decoder)") -> None:
        """The decoded allocator state holds exactly the model's blocks and objects."""
        model_blocks = {va: block.size for va, block in self.live.items()}
        decoded = snapshot.live_blocks()
        if decoded != model_blocks:
            missing = {hex(k): v for k, v in model_blocks.items() if decoded.get(k) != v}
            extra = {hex(k): v for k, v in decoded.items() if model_blocks.get(k) != v}
            raise OracleMismatch(
                "live blocks",
                {"decoded (not in model)": extra, "model (not decoded)": missing},
                command=command,
            )
        owners = snapshot.block_owners()
        want_owners = {va: "object" if block.handle else "caller" for va, block in self.live.items()}
        if owners != want_owners:
            raise OracleMismatch("block owners", {"decoded": owners, "model": want_owners}, command=command)
        want_objects = {o.ptr: (o.handle, o.class_name, o.refs) for o in self.objects.values()}
        got_objects = {o.address: (o.handle, o.class_name, o.refcount) for o in snapshot.objects.live}
        if got_objects != want_objects:
            raise OracleMismatch(
                "live objects", {"decoded": got_objects, "model": want_objects}, command=command
            )
        counters = snapshot.heap.counters
        got = {k: counters.get(k) for k in ("allocs", "frees", "alloc_failures")}
        want = {"allocs": self.allocs, "frees": self.frees, "alloc_failures": self.alloc_failures}
        if got != want:
            raise OracleMismatch("heap call counters", {"decoded": got, "model": want}, command=command)
