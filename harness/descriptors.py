"""Typed calls for the memory-descriptor verbs (``bmd``, ``md``, ``map``) on a booted
:class:`~harness.guest.Guest`, and the host-side views that check what they claim.

Claims and their independent checks:

* ``md segments`` / ``bmd create va`` -> :func:`walk_runs`: the physical runs the host page
  walker finds behind a VA range (tables read from guest RAM, registers from the gdbstub).
* "these pages belong to a buffer" -> :class:`PageBytes`: the page allocator's own metadata
  byte of each page, read from guest RAM at the address and layout the ELF's symbol table
  and DWARF give (``pages.h`` documents that layout for outside decoders).
* Everything about the DriverKit option word is restated here from the spec (§9.2), not
  taken from the firmware, so a wrong table in the firmware shows up as a mismatch.

See ``docs/descriptors.md`` for the verbs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.oracle.pagewalk import PageWalker, Translation
from harness.protocol import Reply

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


# --------------------------------------------------------------------------- reply types
@dataclass(frozen=True)
class Segment:
    pa: PhysAddr
    length: int

    @property
    def end(self) -> int:
        return self.pa + self.length


@dataclass(frozen=True)
class Buffer:
    md: int
    va: VirtAddr
    capacity: int
    length: int


@dataclass(frozen=True)
class Composite:
    md: int
    length: int


@dataclass(frozen=True)
class MdInfo:
    kind: str
    direction: int
    length: int
    depth: int
    refs: int
    capacity: int | None
    va: VirtAddr | None
    pages: int | None
    contiguous: bool | None


@dataclass(frozen=True)
class Mapping_:
    """One ``md map`` / ``map info`` answer (named with a trailing _ to leave ``Mapping`` to typing)."""

    map: int | None
    va: VirtAddr
    offset: int
    length: int
    cache: str
    perm: str
    guard: int
    md: int | None = None

    def page_start(self, page: int) -> int:
        return self.va & ~(page - 1)

    def page_end(self, page: int) -> int:
        return (self.va + self.length + page - 1) & ~(page - 1)


@dataclass(frozen=True)
class Released:
    refs: int
    freed: bool


# --------------------------------------------------------------------------- verbs
def _opt(key: str, value: int | str | None) -> str:
    if value is None:
        return ""
    return f" {key}={value:#x}" if isinstance(value, int) else f" {key}={value}"


def _handles(mds: Iterable[int]) -> str:
    return ",".join(f"{h:#x}" for h in mds)


class Descriptors:
    """The descriptor verbs of one guest. ``*_line`` builds the request so tests can send it with
    ``guest.err`` to look at an error; the plain calls require ``ok``."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest

    @property
    def page(self) -> int:
        assert self.guest.banner is not None
        return self.guest.banner.page

    # -------------------------------------------------------------- buffers
    @staticmethod
    def create_line(capacity: int, *, dir: str | int | None = None, align: int | None = None) -> str:
        return f"bmd create {capacity:#x}" + _opt("dir", dir) + _opt("align", align)

    def create(self, capacity: int, *, dir: str | int | None = None, align: int | None = None) -> Buffer:
        r = self.guest.ok(self.create_line(capacity, dir=dir, align=align))
        return Buffer(r.number("md"), VirtAddr(r.number("va")), r.number("capacity"), r.number("length"))

    def address_range(self, md: int) -> tuple[VirtAddr, int]:
        r = self.guest.ok(f"bmd range {md:#x}")
        return VirtAddr(r.number("va")), r.number("length")

    def setlength(self, md: int, length: int) -> int:
        return self.guest.ok(f"md setlength {md:#x} {length:#x}").number("length")

    # -------------------------------------------------------------- descriptors
    def length(self, md: int) -> int:
        return self.guest.ok(f"md length {md:#x}").number("length")

    def info(self, md: int) -> MdInfo:
        r = self.guest.ok(f"md info {md:#x}")

        def opt(key: str) -> int | None:
            return r.number(key) if key in r else None

        va = opt("va")
        contiguous = opt("contiguous")
        return MdInfo(
            kind=r.value("kind"),
            direction=r.number("dir"),
            length=r.number("length"),
            depth=r.number("depth"),
            refs=r.number("refs"),
            capacity=opt("capacity"),
            va=VirtAddr(va) if va is not None else None,
            pages=opt("pages"),
            contiguous=bool(contiguous) if contiguous is not None else None,
        )

    def segments(self, md: int) -> list[Segment]:
        """Every physical segment, following ``next=`` when the reply is split."""
        out: list[Segment] = []
        first = 0
        while True:
            r = self.guest.ok(f"md segments {md:#x} first={first}")
            count = r.number("count")
            index = first
            while f"seg{index}" in r:
                pa, length = r.span(f"seg{index}")
                out.append(Segment(PhysAddr(pa), length))
                index += 1
            if "next" not in r:
                break
            first = r.number("next")
            if first != index:
                raise ValueError(f"md segments: next={first} but the reply ended at seg{index - 1}")
        if len(out) != count:
            raise ValueError(f"md segments: count={count} but {len(out)} segN keys")
        return out

    def release(self, md: int) -> Released:
        r = self.guest.ok(f"md release {md:#x}")
        return Released(r.number("refs"), bool(r.number("freed")))

    @staticmethod
    def sub_line(md: int, offset: int, length: int, *, dir: str | int | None = None) -> str:
        return f"md sub {md:#x} {offset:#x} {length:#x}" + _opt("dir", dir)

    def sub(self, md: int, offset: int, length: int, *, dir: str | int | None = None) -> Composite:
        r = self.guest.ok(self.sub_line(md, offset, length, dir=dir))
        return Composite(r.number("md"), r.number("length"))

    @staticmethod
    def multi_line(mds: Sequence[int], *, dir: str | int | None = None) -> str:
        return f"md multi {_handles(mds)}" + _opt("dir", dir)

    def multi(self, mds: Sequence[int], *, dir: str | int | None = None) -> Composite:
        r = self.guest.ok(self.multi_line(mds, dir=dir))
        return Composite(r.number("md"), r.number("length"))

    # -------------------------------------------------------------- mappings
    @staticmethod
    def map_line(
        md: int,
        *,
        cache: str | None = None,
        options: int | None = None,
        offset: int | None = None,
        length: int | None = None,
        address: int | None = None,
        guard: str | None = None,
        ro: bool = False,
    ) -> str:
        line = f"md map {md:#x}" + _opt("cache", cache) + _opt("options", options)
        line += _opt("offset", offset) + _opt("length", length) + _opt("address", address)
        line += _opt("guard", guard)
        return line + (" ro" if ro else "")

    @staticmethod
    def _mapping(r: Reply, handle: int | None) -> Mapping_:
        return Mapping_(
            map=handle,
            va=VirtAddr(r.number("va")),
            offset=r.number("offset"),
            length=r.number("length"),
            cache=r.value("cache"),
            perm=r.value("perm"),
            guard=r.number("guard"),
            md=r.number("md") if "md" in r else None,
        )

    def map(
        self,
        md: int,
        *,
        cache: str | None = None,
        options: int | None = None,
        offset: int | None = None,
        length: int | None = None,
        address: int | None = None,
        guard: str | None = None,
        ro: bool = False,
    ) -> Mapping_:
        line = self.map_line(
            md,
            cache=cache,
            options=options,
            offset=offset,
            length=length,
            address=address,
            guard=guard,
            ro=ro,
        )
        r = self.guest.ok(line)
        return self._mapping(r, r.number("map"))

    def map_info(self, map_: int) -> Mapping_:
        return self._mapping(self.guest.ok(f"map info {map_:#x}"), map_)

    def map_release(self, map_: int) -> Released:
        r = self.guest.ok(f"map release {map_:#x}")
        return Released(r.number("refs"), bool(r.number("freed")))

    # -------------------------------------------------------------- accounting
    def stats(self) -> dict[str, int]:
        r = self.guest.ok("stats")
        return {k: r.number(k) for k in r.keys}


# --------------------------------------------------------------------------- independent views
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


def walk_runs(walker: PageWalker, va: int, length: int) -> list[Segment]:
    """The physical runs behind [va, va + length) according to the host page walker; raises if
    any byte of it is unmapped."""
    pieces: list[tuple[int, int]] = []
    pos, end = va, va + length
    while pos < end:
        result = walker.walk(pos)
        if not isinstance(result, Translation):
            raise AssertionError(f"VA {pos:#x} inside [{va:#x}, {end:#x}) does not translate: {result}")
        leaf_end = result.va_base + result.size
        n = min(end, leaf_end) - pos
        pieces.append((result.pa, n))
        pos += n
    return merge_runs(pieces)


def unmapped(walker: PageWalker, start: int, end: int) -> bool:
    """True when the walker finds no translation anywhere in [start, end)."""
    return next(iter(walker.iter_mappings(start, end)), None) is None


class PageBytes:
    """The page allocator's metadata byte of each page, read from guest RAM (pages.h: bits 0..4
    order, bits 5..7 state; state 3 + owner for an owned block)."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        dwarf = guest.elf.dwarf
        self._layout = dwarf.struct("page_allocator")
        self._address = guest.elf.symbol("pages_state").address
        self.states = dwarf.enum("page_state")
        self.owners = dwarf.enum("page_owner")

    def _state(self) -> bytes:
        return self.guest.ram.read(PhysAddr(self._address), self._layout.size)

    def free_pages(self) -> int:
        return self._layout.read(self._state(), "free_pages")

    def byte(self, pa: int) -> int:
        blob = self._state()
        base = self._layout.read(blob, "base")
        size = self._layout.read(blob, "page_size")
        count = self._layout.read(blob, "page_count")
        index = (pa - base) // size
        if not 0 <= index < count:
            raise ValueError(f"PA {pa:#x} is outside the page allocator's range")
        info = self._layout.read(blob, "info")
        return self.guest.ram.read(PhysAddr(info + index), 1)[0]

    def owner(self, pa: int) -> str:
        """``free``, ``reserved``, ``continuation`` or the owner name (``buffer``, ``heap_chunk``...)
        of the block holding ``pa``."""
        state = self.byte(pa) >> 5
        owned = self.states["PAGE_STATE_OWNED"]
        if state >= owned:
            name = {v: k for k, v in self.owners.items()}[state - owned]
            return name.removeprefix("PAGE_OWNER_").lower()
        name = {v: k for k, v in self.states.items()}[state]
        return name.removeprefix("PAGE_STATE_").lower()


def pages_of(segments: Iterable[Segment], page: int) -> list[int]:
    """Every page (its PA) the segments touch."""
    out: list[int] = []
    for seg in segments:
        first = seg.pa & ~(page - 1)
        out.extend(range(first, seg.end, page))
    return out


# --------------------------------------------------------------------------- leak checks
LEAK_KEYS = (
    "heap_used",
    "heap_blocks",
    "heap_chunks",
    "pages_free",
    "objects",
    "md_live",
    "maps_live",
    "va_ranges",
    "va_bytes",
    "pt_used",
)
"""``stats`` keys that must come back to their value once everything created is released.
(The heap and object keys are H1's; a key missing from ``stats`` is skipped.)"""


@dataclass(frozen=True)
class Baseline:
    """The allocator state to come back to: ``stats`` keys and the page allocator's free count
    read from guest RAM (not from the guest's reply)."""

    stats: Mapping[str, int]
    ram_free_pages: int

    @classmethod
    def take(cls, guest: Guest) -> Baseline:
        stats = Descriptors(guest).stats()
        return cls(
            MappingProxyType({k: stats[k] for k in LEAK_KEYS if k in stats}),
            PageBytes(guest).free_pages(),
        )

    def differences(self, guest: Guest) -> dict[str, tuple[int, int]]:
        """Keys whose value moved: name -> (baseline, now)."""
        now = Baseline.take(guest)
        out = {k: (v, now.stats[k]) for k, v in self.stats.items() if now.stats.get(k) != v}
        if now.ram_free_pages != self.ram_free_pages:
            out["pages_state.free_pages (RAM)"] = (self.ram_free_pages, now.ram_free_pages)
        return out

    def check(self, guest: Guest) -> None:
        """Raise unless every key is back and the guest's own integrity walk (H1's ``check``:
        page allocator, heap and object registry) finds nothing wrong."""
        walk = guest.request("check")
        if not walk.ok and walk.error != "kIOReturnUnsupported":
            raise AssertionError(f"the guest's integrity check failed: {walk.line}")
        moved = self.differences(guest)
        if moved:
            raise AssertionError(
                "not back to the baseline: "
                + ", ".join(f"{k} {before} -> {after}" for k, (before, after) in moved.items())
            )


def pa_at(segments: Sequence[Segment], offset: int) -> PhysAddr:
    """The physical address of byte ``offset`` of a descriptor, from its segments."""
    for seg in segments:
        if offset < seg.length:
            return PhysAddr(seg.pa + offset)
        offset -= seg.length
    raise ValueError("offset beyond the segments")
