"""Typed calls for the memory-descriptor verbs (``bmd``, ``md``, ``map``) on a booted
:class:`~harness.guest.Guest`, their reply types, and the leak check (:class:`Baseline`).

What checks the claims: :mod:`harness.oracle.descriptors` (page walker),
:mod:`harness.oracle.pages` (page allocator bytes), :mod:`harness.models.descriptors`
(the spec's reference model and constants). See ``docs/descriptors.md`` for the verbs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypedDict, Unpack

from harness.addresses import PhysAddr, VirtAddr
from harness.errors import GuestError, OracleMismatch, ProtocolError, StateError
from harness.guest.core import Guest
from harness.link.protocol import Reply
from harness.models.descriptors import Segment
from harness.oracle.pages import PageBytes


# --------------------------------------------------------------------------- reply types
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

    @classmethod
    def from_reply(cls, r: Reply) -> MdInfo:
        """An ``md info`` reply (also for replies read in a pipeline)."""

        def opt(key: str) -> int | None:
            return r.number(key) if key in r else None

        va = opt("va")
        contiguous = opt("contiguous")
        return cls(
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
class MapOptions(TypedDict, total=False):
    """The optional arguments of ``md map`` (docs/descriptors.md): ``cache=`` names an
    IOCacheMode, ``options=`` is a DriverKit option word, ``ro`` asks for read-only."""

    cache: str | None
    options: int | None
    offset: int | None
    length: int | None
    address: int | None
    guard: str | None
    ro: bool


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
        if self.guest.banner is None:
            raise StateError("the guest is not booted: no page size yet")
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
        return MdInfo.from_reply(self.guest.ok(f"md info {md:#x}"))

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
                raise ProtocolError(
                    f"md segments: next={first} but the reply ended at seg{index - 1}", command=r.line
                )
        if len(out) != count:
            raise ProtocolError(
                f"md segments: count={count} but {len(out)} segN keys", command=f"md segments {md:#x}"
            )
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
    def map_line(md: int, **options: Unpack[MapOptions]) -> str:
        o = options
        line = f"md map {md:#x}" + _opt("cache", o.get("cache")) + _opt("options", o.get("options"))
        line += _opt("offset", o.get("offset")) + _opt("length", o.get("length"))
        line += _opt("address", o.get("address")) + _opt("guard", o.get("guard"))
        return line + (" ro" if o.get("ro") else "")

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

    def map(self, md: int, **options: Unpack[MapOptions]) -> Mapping_:
        r = self.guest.ok(self.map_line(md, **options))
        return self._mapping(r, r.number("map"))

    def map_info(self, map_: int) -> Mapping_:
        return self._mapping(self.guest.ok(f"map info {map_:#x}"), map_)

    def map_release(self, map_: int) -> Released:
        r = self.guest.ok(f"map release {map_:#x}")
        return Released(r.number("refs"), bool(r.number("freed")))

    # -------------------------------------------------------------- accounting
    def stats(self, *keys: str) -> dict[str, int]:
        """``stats``, or only ``keys`` (:meth:`harness.guest.heap.HeapVerbs.stats`)."""
        return self.guest.stats(*keys)


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
            raise GuestError(
                f"the guest's integrity check failed: {walk.line}", error=walk.error or "", command="check"
            )
        moved = self.differences(guest)
        if moved:
            raise OracleMismatch(
                "not back to the baseline",
                {k: f"{before} -> {after}" for k, (before, after) in moved.items()},
            )
