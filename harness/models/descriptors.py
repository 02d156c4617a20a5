"""A host model of the descriptor verbs (docs/descriptors.md, driverkit-memory.md §10-§12),
written from the spec and independent of the firmware: what each call should answer, which
objects live, how many references each holds, which physical bytes every descriptor byte
is, and what those bytes contain.

The model never talks to the guest. Tests feed it the facts only the hardware can know (the
physical pages of a new buffer, read by the host page walker) and compare its predictions
with the guest's replies, the walker and guest RAM. Pure Python, so ``tests/host`` could
drive it too.

The DriverKit constants the model (and the tests) use are restated at the top of this module
from the spec (§9.2 option word, §9.3 memory types, §10.2 guards), not taken from the
firmware, so a wrong table in the firmware shows up as a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.addresses import PhysAddr
from harness.errors import ModelError

# --------------------------------------------------------------------------- spec constants
CACHE_MODES: tuple[str, ...] = (
    "default",
    "inhibit",
    "writethru",
    "copyback",
    "writecombine",
    "copybackinner",
    "posted",
    "realtime",
    "postedreordered",
    "postedcombinedreordered",
)
"""The ten IOCacheModes in value order (kIODefaultCache = 0 ... kIOPostedCombinedReordered = 9)."""


@dataclass(frozen=True)
class MemoryType:
    """What §9.3's classic column (with the project's CopybackInner choice) says a mode maps to."""

    mair: int
    sh: str  # "outer" / "inner"
    xn: bool  # UXN and PXN both set (device and non-cacheable)
    cacheable: bool  # Normal Write-Back or Write-Through


EXPECTED_MEMORY_TYPE: Mapping[str, MemoryType] = MappingProxyType(
    {
        "default": MemoryType(0xFF, "outer", False, True),
        "inhibit": MemoryType(0x00, "outer", True, False),
        "writethru": MemoryType(0xBB, "outer", False, True),
        "copyback": MemoryType(0xFF, "outer", False, True),
        "writecombine": MemoryType(0x44, "outer", True, False),
        # Classic XNU: 0x4F in its own slot; iomem: Attr0 (0xFF) with SH=inner (pte.c, §9.3 [Rec]).
        "copybackinner": MemoryType(0xFF, "inner", False, True),
        "posted": MemoryType(0x04, "outer", True, False),
        "realtime": MemoryType(0x00, "outer", True, False),
        "postedreordered": MemoryType(0x08, "outer", True, False),
        "postedcombinedreordered": MemoryType(0x0C, "outer", True, False),
    }
)

DIRECTIONS: Mapping[str, int] = MappingProxyType({"none": 0, "in": 1, "out": 2, "inout": 3})

# DriverKit CreateMapping option word (spec §9.2): NOT the kernel's kIOMap* encoding.
DK_FIXED_ADDRESS = 0x1
DK_READ_ONLY = 0x2
DK_GUARD_MASK = 0x1C
DK_GUARD_DEFAULT = 0x0
DK_GUARD_NONE = 0x4
DK_GUARD_SMALL = 0x8
DK_GUARD_LARGE = 0xC
DK_CACHE_BITS = 0xFF00
DK_CACHE_OPTIONS: Mapping[int, str] = MappingProxyType(
    {0x000: "default", 0x100: "inhibit", 0x200: "copyback", 0x400: "writethru", 0x800: "realtime"}
)
"""The five values the kernel accepts in ``options & 0xFF00`` and the IOCacheMode each means."""
KERNEL_CACHE_SHIFT = 8
"""The kernel's kIOMapCacheShift: what a wrong decoder would shift DriverKit options by."""

GUARD_LARGE = 0x10000
MAX_PARTS = 32


def guard_bytes(kind: str, page: int) -> int:
    """Bytes of guard on each side for a guard kind (§10.2): one VM page, 64 KiB, or none."""
    return {"none": 0, "small": page, "default": page, "large": max(GUARD_LARGE, page)}[kind]


def dk_guard_kind(options: int) -> str:
    """The guard a DriverKit option word asks for (XNU: values not listed act as Small)."""
    return {DK_GUARD_NONE: "none", DK_GUARD_LARGE: "large"}.get(options & DK_GUARD_MASK, "small")


@dataclass(frozen=True)
class Segment:
    pa: PhysAddr
    length: int

    @property
    def end(self) -> int:
        return self.pa + self.length


def merge_runs(pieces: Iterable[tuple[int, int]]) -> list[Segment]:
    """(pa, length) pieces in order, merged where one continues the previous."""
    out: list[Segment] = []
    for pa, length in pieces:
        if length == 0:
            continue
        if out and out[-1].end == pa:
            out[-1] = Segment(out[-1].pa, out[-1].length + length)
        else:
            out.append(Segment(PhysAddr(pa), length))
    return out


# --------------------------------------------------------------------------- the model
MAX_DEPTH = 16  # iomem's nesting limit (IOMEMORYDESCRIPTOR_MAX_DEPTH)
U64 = (1 << 64) - 1


@dataclass(eq=False)
class Node:
    """A live descriptor."""

    handle: int
    kind: str  # buffer / sub / multi
    direction: int
    length: int
    depth: int
    refs: int = 1
    held: bool = True  # the caller still holds its creation reference
    # buffer
    creator: int = 0  # the task that created it (0: none, as for sub and multi)
    capacity: int = 0
    pages: list[int] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    # sub
    parent: Node | None = None
    offset: int = 0
    # multi
    parts: list[Node] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


@dataclass(eq=False)
class MapNode:
    handle: int
    md: Node
    offset: int
    length: int
    cache: str
    read_only: bool
    guard: int
    fixed: bool
    guard_class: str = "small"  # none / small / large: what was asked (compared for reuse)
    task: int = 1
    va: int | None = None  # GetAddress, once the guest said it
    super: MapNode | None = None  # the mapping whose VA this one shares (reuse of a sub-range)
    refs: int = 1  # the caller's references plus one per map sharing this one's VA
    held: int = 1  # the caller's references
    pieces: list[tuple[Node, int, int]] = field(default_factory=list)  # its bytes, as mapped


@dataclass(frozen=True)
class MapPrediction:
    """What a CreateMapping should do: an error name, or the mapping's shape."""

    error: str | None
    offset: int = 0
    length: int = 0
    cache: str = "default"
    perm: str = "rw"
    guard: int = 0
    runs: tuple[Segment, ...] = ()
    guard_class: str = "small"
    reuse: int | None = None  # the existing map handed back +1 (same range)
    share: int | None = None  # the existing map a new map shares its VA with (a sub-range)
    md: int = 0  # the descriptor the map holds (a sub's parent, §10.3)
    pieces: tuple[tuple[Node, int, int], ...] = ()  # (buffer, offset, length) behind the map


def is_power_of_two(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


class Model:
    def __init__(self, page: int) -> None:
        self.page = page
        self.nodes: dict[int, Node] = {}
        self.maps: dict[int, MapNode] = {}  # live maps, oldest first
        self.task = 1  # the current task (§10.2 [Rec])

    # ------------------------------------------------------------------ predictions
    def create_error(self, capacity: int, direction: int, align: int) -> str | None:
        """§11.1 in iomem's order: options, alignment ([Rec]), capacity."""
        if direction & ~0x3:
            return "kIOReturnBadArgument"
        if align > self.page and not is_power_of_two(align):
            return "kIOReturnBadArgument"
        if capacity == 0 or capacity + align > U64 or capacity + self.page - 1 > U64:
            return "kIOReturnNoMemory"
        return None

    def setlength_error(self, handle: int, length: int) -> str | None:
        node = self.held(handle)
        if node.kind != "buffer":
            return "kIOReturnBadArgument"
        return "kIOReturnBadArgument" if length > node.capacity else None

    def sub_error(self, parent: int | None, offset: int, length: int, direction: int) -> str | None:
        """§10.3 in XNU's order; None for NULL."""
        if parent is None:
            return "kIOReturnBadArgument"
        of = self.held(parent)
        if direction & ~0x3 or offset + length > U64 or offset + length > of.length:
            return "kIOReturnBadArgument"
        if of.depth >= MAX_DEPTH:
            return "kIOReturnNoMemory"
        return None

    def multi_error(self, parts: Sequence[int | None], direction: int) -> str | None:
        """§10.4: the stub's Overrun first, then the kernel's checks."""
        if len(parts) > MAX_PARTS:
            return "kIOReturnOverrun"
        if not parts or direction & ~0x3 or any(p is None for p in parts):
            return "kIOReturnBadArgument"
        nodes = [self.held(p) for p in parts if p is not None]
        if sum(n.length for n in nodes) > U64 or max(n.depth for n in nodes) >= MAX_DEPTH:
            return "kIOReturnNoMemory"
        return None

    def predict_map(
        self,
        handle: int,
        *,
        offset: int,
        length: int,
        cache: str | None = None,
        options: int | None = None,
        read_only: bool = False,
        guard: str = "small",
        fixed: bool = False,
        address: int | None = None,
    ) -> MapPrediction:
        """CreateMapping through ``options=`` (DriverKit codes) or the ``cache=`` extension.

        Reuse (§10.2, XNU ``IOMemoryMap::copyCompatible``): the oldest live map of the same
        descriptor in the same task with the same read-only flag and guard class, whose mode
        equals the request's (or the request is Default), whose range holds the requested
        one, and, for a fixed request, whose address is the requested one, is handed back +1
        (same range) or shared by a new map (a sub-range)."""
        node = self.held(handle)
        dk = options is not None
        if options is not None:
            mode = DK_CACHE_OPTIONS.get(options & DK_CACHE_BITS)
            if mode is None:
                return MapPrediction("kIOReturnBadArgument")
            cache = mode
            read_only = bool(options & DK_READ_ONLY)
            fixed = bool(options & DK_FIXED_ADDRESS)
            guard = dk_guard_kind(options)
        if cache is None:
            raise ModelError("predict_map needs cache= or options=")
        whole = node.length
        length = length or whole
        range_error = "kIOReturnError" if dk else "kIOReturnBadArgument"
        if whole == 0 or offset >= whole or length > whole - offset:
            return MapPrediction(range_error)
        # §10.3: a sub-descriptor is mapped by its parent (XNU IOSubMemoryDescriptor::makeMapping):
        # the range moves into the parent and is checked against the parent's current length;
        # the map's offset is parent-relative and the map holds the parent.
        root, root_offset = node, offset
        while root.kind == "sub":
            if root.parent is None:
                raise ModelError(f"sub-descriptor {root.handle:#x} has no parent")
            root_offset += root.offset
            root = root.parent
            if root_offset >= root.length or length > root.length - root_offset:
                return MapPrediction(range_error)
        # XNU CreateMapping_Impl: ReadOnly or an Out-only descriptor makes the mapping
        # read-only only when the caller did not create the buffer (sub/multi: no creator).
        read_only = (read_only or node.direction == 0x2) and (
            node.kind != "buffer" or node.creator != self.task
        )
        guard_class = "small" if guard == "default" else guard
        if fixed and not dk:
            guard_class = "small"  # the extension takes no guard= with address=: the default
        for old in self.maps.values():
            if (
                old.md is root
                and old.task == self.task
                and old.read_only == read_only
                and old.guard_class == guard_class
                and cache in ("default", old.cache)
                and (not fixed or address == old.va)
                and old.offset <= root_offset
                and root_offset + length <= old.offset + old.length
            ):
                same = (root_offset, length) == (old.offset, old.length)
                pieces = tuple(self._map_pieces(old, root_offset - old.offset, length))
                return MapPrediction(
                    None,
                    offset=root_offset,
                    length=length,
                    cache=old.cache,
                    perm="ro" if read_only else "rw",
                    guard=old.guard,
                    runs=tuple(self._runs_of(pieces)),
                    guard_class=guard_class,
                    reuse=old.handle if same else None,
                    share=None if same else old.handle,
                    md=root.handle,
                    pieces=pieces,
                )
        # §10.4: a multi walks its parts' current lengths; bytes that no longer resolve make
        # the mapping fail (XNU IOMultiMemoryDescriptor::doMap: kIOReturnUnderrun).
        resolved = self._prefix(root, root_offset, length)
        if sum(p[2] for p in resolved) != length:
            return MapPrediction("kIOReturnError" if dk else "kIOReturnUnderrun")
        runs = self._runs_of(resolved)
        # Byte `offset` lands at its PA's in-page position; a later run must begin a page in
        # both VA and PA, or no page-granular mapping holds the bytes in order.
        position = runs[0].pa % self.page + runs[0].length
        for run in runs[1:]:
            if position % self.page or run.pa % self.page:
                return MapPrediction("kIOReturnError" if dk else "kIOReturnNotAligned")
            position += run.length
        return MapPrediction(
            None,
            offset=root_offset,
            length=length,
            cache=cache,
            perm="ro" if read_only else "rw",
            guard=0 if fixed else guard_bytes(guard, self.page),
            runs=tuple(runs),
            guard_class=guard_class,
            md=root.handle,
            pieces=tuple(resolved),
        )

    # ------------------------------------------------------------------ state changes
    def held(self, handle: int) -> Node:
        node = self.nodes.get(handle)
        if node is None or not node.held:
            raise ModelError(f"the caller holds no descriptor {handle:#x}")
        return node

    def add_buffer(self, handle: int, capacity: int, direction: int, pages: Sequence[int]) -> Node:
        """A buffer the guest created; ``pages`` are its physical pages in order (from the walker)."""
        expected = -(-capacity // self.page)
        if len(pages) != expected:
            raise ModelError(f"a buffer of {capacity} bytes has {expected} pages, given {len(pages)}")
        node = Node(
            handle,
            "buffer",
            direction,
            capacity,
            1,
            creator=self.task,
            capacity=capacity,
            pages=list(pages),
            data=bytearray(capacity),
        )
        self._add(node)
        return node

    def add_sub(self, handle: int, parent: int, offset: int, length: int, direction: int) -> Node:
        of = self.held(parent)
        node = Node(handle, "sub", direction, length, of.depth + 1, parent=of, offset=offset)
        of.refs += 1
        self._add(node)
        return node

    def add_multi(self, handle: int, parts: Sequence[int], direction: int) -> Node:
        nodes = [self.held(p) for p in parts]
        for n in nodes:
            n.refs += 1
        node = Node(
            handle,
            "multi",
            direction,
            sum(n.length for n in nodes),
            1 + max(n.depth for n in nodes),
            parts=nodes,
            lengths=[n.length for n in nodes],
        )
        self._add(node)
        return node

    def _add(self, node: Node) -> None:
        if node.handle in self.nodes or node.handle in self.maps:
            raise ModelError(f"handle {node.handle:#x} is already live")
        self.nodes[node.handle] = node

    def setlength(self, handle: int, length: int) -> None:
        self.held(handle).length = length

    def add_map(
        self, handle: int, md: int, prediction: MapPrediction, fixed: bool = False, va: int | None = None
    ) -> MapNode:
        self.held(md)  # the caller asked through a descriptor it holds...
        node = self.nodes[prediction.md]  # ...the map holds the one it maps (a sub's parent)
        if prediction.error is not None:
            raise ModelError(f"add_map with a failing prediction ({prediction.error})")
        if prediction.reuse is not None:
            old = self.maps[prediction.reuse]
            if handle != old.handle:
                raise ModelError(f"reuse of map {old.handle:#x} answered with {handle:#x}")
            old.refs += 1
            old.held += 1
            return old
        shared = self.maps[prediction.share] if prediction.share is not None else None
        m = MapNode(
            handle,
            node,
            prediction.offset,
            prediction.length,
            prediction.cache,
            prediction.perm == "ro",
            prediction.guard,
            shared.fixed if shared is not None else fixed,
            guard_class=prediction.guard_class,
            task=self.task,
            va=va,
            super=shared,
            pieces=list(prediction.pieces),
        )
        if shared is not None:
            shared.refs += 1
        node.refs += 1
        if handle in self.nodes or handle in self.maps:
            raise ModelError(f"handle {handle:#x} is already live")
        self.maps[handle] = m
        return m

    def release(self, handle: int) -> tuple[int, bool]:
        """The caller's ``md release``: (refs after, freed)."""
        node = self.held(handle)
        node.held = False
        return self._drop(node)

    def release_map(self, handle: int) -> tuple[int, bool, list[MapNode]]:
        """The caller's ``map release``: (refs after, freed, the maps that went, each with its
        own VA range: those whose pages are now unmapped)."""
        m = self.maps[handle]
        if m.held < 1:
            raise ModelError(f"the caller holds no map {handle:#x}")
        m.held -= 1
        gone: list[MapNode] = []
        refs = self._drop_map(m, gone)
        return refs, refs == 0, [g for g in gone if g.super is None]

    def _drop_map(self, m: MapNode, gone: list[MapNode]) -> int:
        m.refs -= 1
        if m.refs < 0:
            raise ModelError(f"map {m.handle:#x} over-released")
        if m.refs == 0:
            del self.maps[m.handle]
            gone.append(m)
            self._drop(m.md)
            if m.super is not None:
                self._drop_map(m.super, gone)
        return m.refs

    def held_maps(self) -> list[int]:
        """Map handles the caller holds, once per reference."""
        return [h for h, m in self.maps.items() for _ in range(m.held)]

    def _drop(self, node: Node) -> tuple[int, bool]:
        node.refs -= 1
        refs = node.refs
        if refs < 0:
            raise ModelError(f"descriptor {node.handle:#x} over-released")
        if refs == 0:
            del self.nodes[node.handle]
            if node.parent is not None:
                self._drop(node.parent)
            for part in node.parts:
                self._drop(part)
        return refs, refs == 0

    # ------------------------------------------------------------------ bytes
    def _prefix(self, node: Node, offset: int, length: int) -> list[tuple[Node, int, int]]:
        """(buffer, offset in it, length) pieces of the bytes of [offset, offset + length) of
        node that resolve, in order, up to the first one that does not. Every level walks
        current lengths (§10.3, §10.4): a buffer's bytes end at its length, a sub's at its
        parent's current length, and a multi walks its parts' current lengths, so after a part
        shrinks the later bytes shift to the next part and the tail resolves to nothing."""
        if length == 0:
            return []
        if node.kind == "buffer":
            if offset >= node.length:
                return []
            return [(node, offset, min(length, node.length - offset))]
        if offset >= node.length:
            return []
        length = min(length, node.length - offset)
        if node.kind == "sub":
            if node.parent is None:
                raise ModelError(f"sub-descriptor {node.handle:#x} has no parent")
            return self._prefix(node.parent, node.offset + offset, length)
        out: list[tuple[Node, int, int]] = []
        for part in node.parts:
            if length == 0:
                break
            if offset >= part.length:
                offset -= part.length
                continue
            n = min(part.length - offset, length)
            got = self._prefix(part, offset, n)
            out.extend(got)
            if sum(p[2] for p in got) < n:
                return out
            length -= n
            offset = 0
        return out

    def _pieces(self, node: Node, offset: int, length: int) -> list[tuple[Node, int, int]]:
        """Like _prefix, but every byte must resolve."""
        out = self._prefix(node, offset, length)
        if sum(p[2] for p in out) != length:
            raise ModelError(f"bytes [{offset:#x}, +{length:#x}) of {node.handle:#x} do not all resolve")
        return out

    def _runs_of(self, pieces: Sequence[tuple[Node, int, int]]) -> list[Segment]:
        out: list[tuple[int, int]] = []
        for buf, off, n in pieces:
            while n:
                index, within = divmod(off, self.page)
                take = min(n, self.page - within)
                out.append((buf.pages[index] + within, take))
                off += take
                n -= take
        return merge_runs(out)

    def runs(self, handle: int, offset: int, length: int) -> list[Segment]:
        """The physical runs of bytes [offset, offset + length), merged where contiguous."""
        return self._runs_of(self._pieces(self.nodes[handle], offset, length))

    def segments(self, handle: int) -> list[Segment]:
        """``md segments``: the runs of the bytes that resolve (a prefix of the length)."""
        node = self.nodes[handle]
        return self._runs_of(self._prefix(node, 0, node.length))

    @staticmethod
    def device_unaligned(m: MapNode, va: int, size: int) -> bool:
        """Whether the agent's raw access of ``size`` bytes at ``va`` through map ``m`` takes an
        alignment fault (§9.3 [Rec], cmd_mem.c): on a Device memory type the access sequence
        is 8-byte accesses from ``va``, then 4, 2, 1; only the first can be unaligned (the
        others follow it at multiples of its width), and then nothing is accessed."""
        if EXPECTED_MEMORY_TYPE[m.cache].mair & 0xF0:
            return False  # Normal memory: unaligned accesses are fine
        width = 8 if size >= 8 else 4 if size >= 4 else 2 if size >= 2 else 1
        return va % width != 0

    def first_pa(self, handle: int, offset: int) -> int | None:
        """The physical address of byte ``offset`` of a descriptor, if it resolves."""
        runs = self._runs_of(self._prefix(self.nodes[handle], offset, 1))
        return runs[0].pa if runs else None

    def map_runs(self, m: MapNode, at: int, size: int) -> list[Segment]:
        """The physical runs behind bytes [at, at + size) of a mapping (as mapped when made)."""
        return self._runs_of(self._map_pieces(m, at, size))

    def _map_pieces(self, m: MapNode, at: int, size: int) -> list[tuple[Node, int, int]]:
        out: list[tuple[Node, int, int]] = []
        for buf, off, n in m.pieces:
            if size == 0:
                break
            if at >= n:
                at -= n
                continue
            take = min(n - at, size)
            out.append((buf, off + at, take))
            size -= take
            at = 0
        if size:
            raise ModelError("beyond the mapping")
        return out

    def write_map(self, m: MapNode, at: int, data: bytes) -> None:
        pos = 0
        for buf, off, n in self._map_pieces(m, at, len(data)):
            buf.data[off : off + n] = data[pos : pos + n]
            pos += n

    def read_map(self, m: MapNode, at: int, size: int) -> bytes:
        return b"".join(bytes(buf.data[off : off + n]) for buf, off, n in self._map_pieces(m, at, size))

    def write(self, handle: int, offset: int, data: bytes) -> None:
        """Bytes written through a buffer's own VA (any byte below its capacity)."""
        buf = self.nodes[handle]
        if buf.kind != "buffer" or offset + len(data) > buf.capacity:
            raise ModelError("writes through a descriptor go to a buffer's VA, below its capacity")
        buf.data[offset : offset + len(data)] = data

    def read(self, handle: int, offset: int, length: int) -> bytes:
        buf = self.nodes[handle]
        if buf.kind != "buffer" or offset + length > buf.capacity:
            raise ModelError("reads through a descriptor come from a buffer's VA, below its capacity")
        return bytes(buf.data[offset : offset + length])

    def buffer_runs(self, handle: int, offset: int, length: int) -> list[Segment]:
        """The physical runs of bytes of a buffer below its capacity (its own VA)."""
        buf = self.nodes[handle]
        return self._runs_of([(buf, offset, length)])

    # ------------------------------------------------------------------ accounting
    def refs(self, handle: int) -> int:
        return self.nodes[handle].refs

    def live_descriptors(self) -> int:
        return len(self.nodes)

    def live_maps(self) -> int:
        return len(self.maps)

    def held_handles(self) -> list[int]:
        return [h for h, n in self.nodes.items() if n.held]

    def buffer_pages(self) -> set[int]:
        return {pa for n in self.nodes.values() if n.kind == "buffer" for pa in n.pages}
