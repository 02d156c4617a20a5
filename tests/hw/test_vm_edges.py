"""Paths of the page-table code no other test took (found by ``make mutate``): unmapping a
range that is not mapped, and running out of page-table pages. Checked from the host: the
walker, ``:verify`` and the guest's ``check``."""

from __future__ import annotations

import pytest

from harness.guest import Guest
from harness.oracle.pagewalk import Fault, Translation
from harness.tools.structs import VASPACE_BASE
from harness.tools.verify import map_window, verify


def _pt_used(guest: Guest) -> int:
    return guest.ok("stats").number("pt_used")


def test_unmapping_what_is_not_mapped_changes_nothing(guest: Guest) -> None:
    page = guest.profile.granule
    window = map_window(guest)  # the raw `vm map` part starts here (above RAM past 4 GiB)
    base = window[0] + 64 * page
    guest.ok(f"vm map {base:#x} 0x40000000 {3 * page:#x}")
    before = list(guest.walker().iter_mappings())
    used = _pt_used(guest)
    guest.ok(f"vm unmap {window[0]:#x} {page:#x}")  # never mapped
    guest.ok(f"vm unmap {base + 8 * page:#x} {4 * page:#x}")  # beyond the mapping
    assert list(guest.walker().iter_mappings()) == before and _pt_used(guest) == used
    guest.ok(f"vm unmap {base + page:#x} {page:#x}")  # the middle page only
    walker = guest.walker()
    assert isinstance(walker.walk(base), Translation) and walker.walk(base).pa == 0x4000_0000  # type: ignore[union-attr]
    assert isinstance(walker.walk(base + page), Fault)
    assert isinstance(walker.walk(base + 2 * page), Translation)
    guest.ok(f"vm unmap {base - 4 * page:#x} {16 * page:#x}")  # a range that covers it all, and more
    assert all(isinstance(walker.walk(base + i * page), Fault) for i in range(3)) or all(
        isinstance(guest.walker().walk(base + i * page), Fault) for i in range(3)
    )
    assert verify(guest).ok and guest.check() is not None


@pytest.mark.profiles("virt-4k", "virt-16k", "virt-64k")
def test_running_out_of_page_table_pages_is_an_error_and_leaves_no_trace(guest: Guest) -> None:
    page = guest.profile.granule
    step = page * (page // 8)  # one new last-level table per mapping
    baseline = _pt_used(guest)
    mapped: list[int] = []
    failure = None
    for va in range(map_window(guest)[0], VASPACE_BASE, step):  # the raw `vm map` part
        reply = guest.request(f"vm map {va:#x} 0x40000000 {page:#x}")
        if not reply.ok:
            failure = (va, reply)
            break
        mapped.append(va)
    if failure is None:
        pytest.skip(f"{len(mapped)} tables fit: the pool outlasts the window on this granule")
    va, reply = failure
    assert reply.error in ("kIOReturnNoMemory", "kIOReturnNoResources", "kIOReturnNoSpace"), reply.line
    walker = guest.walker()
    assert isinstance(walker.walk(va), Fault)  # the failed map left nothing behind
    assert isinstance(walker.walk(mapped[-1]), Translation)
    assert verify(guest).ok
    guest.check()
    assert guest.pagesize() == page  # and the guest still works
    for va in mapped:
        guest.ok(f"vm unmap {va:#x} {page:#x}")
    assert all(isinstance(guest.walker().walk(v), Fault) for v in mapped[:: max(1, len(mapped) // 8)])
    assert verify(guest).ok
    assert _pt_used(guest) == baseline  # every table the mappings took is given back
    guest.ok(f"vm map {mapped[0]:#x} 0x40000000 {page:#x}")  # and mapping works again
