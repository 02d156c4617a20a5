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


def is_power_of_two(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


class Model:
    def __init__(self, page: int) -> None:
        self.page = page
        self.nodes: dict[int, Node] = {}
        self.maps: dict[int, MapNode] = {}

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
    ) -> MapPrediction:
        """CreateMapping through ``options=`` (DriverKit codes) or the ``cache=`` extension."""
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
        if whole == 0 or offset >= whole or length > whole - offset:
            return MapPrediction("kIOReturnError" if dk else "kIOReturnBadArgument")
        runs = self.runs(handle, offset, length)
        # Byte `offset` lands at its PA's in-page position; a later run must begin a page in
        # both VA and PA, or no page-granular mapping holds the bytes in order.
        position = runs[0].pa % self.page + runs[0].length
        for run in runs[1:]:
            if position % self.page or run.pa % self.page:
                return MapPrediction("kIOReturnError" if dk else "kIOReturnNotAligned")
            position += run.length
        read_only = read_only or (node.direction == 0x2 and node.kind != "buffer")
        return MapPrediction(
            None,
            offset=offset,
            length=length,
            cache=cache,
            perm="ro" if read_only else "rw",
            guard=0 if fixed else guard_bytes(guard, self.page),
            runs=tuple(runs),
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

    def add_map(self, handle: int, md: int, prediction: MapPrediction, fixed: bool = False) -> MapNode:
        node = self.held(md)
        if prediction.error is not None:
            raise ModelError(f"add_map with a failing prediction ({prediction.error})")
        m = MapNode(
            handle,
            node,
            prediction.offset,
            prediction.length,
            prediction.cache,
            prediction.perm == "ro",
            prediction.guard,
            fixed,
        )
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

    def release_map(self, handle: int) -> tuple[int, bool]:
        m = self.maps.pop(handle)
        self._drop(m.md)
        return 0, True

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
    def _pieces(self, node: Node, offset: int, length: int) -> list[tuple[Node, int, int]]:
        """(buffer, offset in it, length) pieces of [offset, offset + length) of node."""
        if node.kind == "buffer":
            if offset + length > node.capacity:
                raise ModelError("beyond the buffer's capacity")
            return [(node, offset, length)] if length else []
        if node.kind == "sub":
            if node.parent is None:
                raise ModelError(f"sub-descriptor {node.handle:#x} has no parent")
            return self._pieces(node.parent, node.offset + offset, length)
        out: list[tuple[Node, int, int]] = []
        for part, part_len in zip(node.parts, node.lengths, strict=True):
            if length == 0:
                break
            if offset >= part_len:
                offset -= part_len
                continue
            n = min(part_len - offset, length)
            out.extend(self._pieces(part, offset, n))
            length -= n
            offset = 0
        if length:
            raise ModelError("beyond the composite's length")
        return out

    def runs(self, handle: int, offset: int, length: int) -> list[Segment]:
        """The physical runs of bytes [offset, offset + length), merged where contiguous."""
        pieces: list[tuple[int, int]] = []
        for buf, off, n in self._pieces(self.nodes[handle], offset, length):
            while n:
                index, within = divmod(off, self.page)
                take = min(n, self.page - within)
                pieces.append((buf.pages[index] + within, take))
                off += take
                n -= take
        return merge_runs(pieces)

    def segments(self, handle: int) -> list[Segment]:
        node = self.nodes[handle]
        return self.runs(handle, 0, node.length)

    def write(self, handle: int, offset: int, data: bytes) -> None:
        """Bytes written at descriptor (or map: pass the map's descriptor) offset."""
        pos = 0
        for buf, off, n in self._pieces(self.nodes[handle], offset, len(data)):
            buf.data[off : off + n] = data[pos : pos + n]
            pos += n

    def read(self, handle: int, offset: int, length: int) -> bytes:
        out = bytearray()
        for buf, off, n in self._pieces(self.nodes[handle], offset, length):
            out += buf.data[off : off + n]
        return bytes(out)

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
