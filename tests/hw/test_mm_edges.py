"""Paths of firmware/mm that the other tests did not take, each found by a ``make mutate``
survivor (README, "make mutate"). Checked from the host: the page walker reads the guest's
tables, ``:verify`` and the guest's ``check`` judge the rest."""

from __future__ import annotations

from harness.guest import Guest
from harness.oracle.pagewalk import Fault, Translation
from harness.tools.verify import map_window, verify


def _pt_used(guest: Guest) -> int:
    return guest.ok("stats").number("pt_used")


def test_unmapping_a_page_out_of_a_block_keeps_the_rest_of_the_block(guest: Guest) -> None:
    """vm.c splits the block into a table of pages (split_block): every other page must keep
    its output address and its attributes; the unmapped one faults."""
    page = guest.profile.granule
    block = page * (page // 8)  # a level-2 block: 2 MiB, 32 MiB, 512 MiB
    base = (map_window(guest)[0] + 2 * block - 1) & ~(block - 1)
    ram = guest.profile.ram_base  # 1 GiB aligned on virt, so aligned to every block size
    assert ram % block == 0
    used = _pt_used(guest)
    guest.ok(f"vm map {base:#x} {ram:#x} {block:#x} cache=writethru perm=ro")
    whole = guest.walker().walk(base)
    assert isinstance(whole, Translation) and whole.size == block, whole  # one block leaf

    hole = base + 3 * page
    guest.ok(f"vm unmap {hole:#x} {page:#x}")
    walker = guest.walker()
    assert isinstance(walker.walk(hole), Fault)
    for offset in (0, page, 2 * page, 4 * page, block // 2, block - page):
        got = walker.walk(base + offset)
        assert isinstance(got, Translation), (hex(offset), got)
        assert (got.pa, got.size, got.level) == (ram + offset, page, 3), hex(offset)
        assert (got.cache, got.ap, got.uxn, got.pxn, got.sh) == (
            whole.cache,
            whole.ap,
            whole.uxn,
            whole.pxn,
            whole.sh,
        ), hex(offset)
    if block <= guest.profile.ram_size:  # 64K: a 512 MiB block reaches past RAM, which :verify reports
        assert verify(guest).ok
    guest.check()

    guest.ok(f"vm unmap {base:#x} {block:#x}")
    assert isinstance(guest.walker().walk(base), Fault)
    assert _pt_used(guest) == used  # the split's table is given back
    assert verify(guest).ok


def test_an_edit_that_starts_inside_an_entry_leaves_the_head_of_the_entry_alone(guest: Guest) -> None:
    """Map, then unmap, [page, block) of a level-2 entry: the edit ends at the entry's end but
    does not start at its start, so it is not a whole-entry edit (vm.c whole_entry_edit),
    even with the output address block aligned."""
    page = guest.profile.granule
    block = page * (page // 8)
    base = (map_window(guest)[0] + 2 * block - 1) & ~(block - 1)
    ram = guest.profile.ram_base
    used = _pt_used(guest)
    guest.ok(f"vm map {base + page:#x} {ram:#x} {block - page:#x}")  # ram is block aligned
    walker = guest.walker()
    assert isinstance(walker.walk(base), Fault)  # not asked for
    for offset in (page, 2 * page, block - page):
        got = walker.walk(base + offset)
        assert isinstance(got, Translation), (hex(offset), got)
        assert (got.pa, got.size) == (ram + offset - page, page), hex(offset)

    head = ram + 5 * page  # any page of RAM: the head gets its own mapping
    guest.ok(f"vm unmap {base + page:#x} {block - page:#x}")
    guest.ok(f"vm map {base:#x} {head:#x} {page:#x}")
    guest.ok(f"vm map {base + page:#x} {ram:#x} {block - page:#x}")
    guest.ok(f"vm unmap {base + page:#x} {block - page:#x}")  # the tail again: the head stays
    walker = guest.walker()
    got = walker.walk(base)
    assert isinstance(got, Translation) and got.pa == head, got
    assert all(isinstance(walker.walk(base + o), Fault) for o in (page, block // 2, block - page))
    assert verify(guest).ok
    guest.check()
    guest.ok(f"vm unmap {base:#x} {page:#x}")
    assert _pt_used(guest) == used
