"""Host-side views that check what the descriptor verbs claim, from sources the guest does
not control.

* ``md segments`` / ``bmd create va`` -> :func:`walk_runs`: the physical runs the host page
  walker finds behind a VA range (tables read from guest RAM, registers from the gdbstub).
* "this VA range is unmapped" (guards, released maps) -> :func:`unmapped`.
* "these pages belong to a buffer" -> :class:`harness.oracle.pages.PageBytes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.addresses import PhysAddr
from harness.errors import InvalidInput, OracleMismatch
from harness.models.descriptors import Segment, merge_runs
from harness.oracle.pagewalk import PageWalker, Translation


def walk_runs(walker: PageWalker, va: int, length: int) -> list[Segment]:
    """The physical runs behind [va, va + length) according to the host page walker; raises
    :class:`~harness.errors.OracleMismatch` if any byte of it is unmapped."""
    pieces: list[tuple[int, int]] = []
    pos, end = va, va + length
    while pos < end:
        result = walker.walk(pos)
        if not isinstance(result, Translation):
            raise OracleMismatch(
                f"VA {pos:#x} inside [{va:#x}, {end:#x})", {"claim": "mapped", "host page walker": result}
            )
        leaf_end = result.va_base + result.size
        n = min(end, leaf_end) - pos
        pieces.append((result.pa, n))
        pos += n
    return merge_runs(pieces)


def unmapped(walker: PageWalker, start: int, end: int) -> bool:
    """True when the walker finds no translation anywhere in [start, end)."""
    return next(iter(walker.iter_mappings(start, end)), None) is None


def pages_of(segments: Iterable[Segment], page: int) -> list[int]:
    """Every page (its PA) the segments touch."""
    out: list[int] = []
    for seg in segments:
        first = seg.pa & ~(page - 1)
        out.extend(range(first, seg.end, page))
    return out


def pa_at(segments: Sequence[Segment], offset: int) -> PhysAddr:
    """The physical address of byte ``offset`` of a descriptor, from its segments."""
    for seg in segments:
        if offset < seg.length:
            return PhysAddr(seg.pa + offset)
        offset -= seg.length
    raise InvalidInput(f"offset beyond the segments ({sum(s.length for s in segments)} bytes)")
