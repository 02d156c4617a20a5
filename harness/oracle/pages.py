"""The page allocator's per-page metadata byte: its format, decoded in this one place, and
the host's reading of it from guest RAM.

Format (``firmware/mm/pages.h``; ``tests/host/test_format_constants.py`` checks these numbers
against the firmware's own definitions)::

    bits 0..4  order of the block the page belongs to
    bits 5..7  state: enum page_state (reserved, free, continuation), or
               PAGE_STATE_OWNED + enum page_owner for an owned block

The enum values are not restated here: decoders take them from the ELF's DWARF
(``page_state``, ``page_owner``). Every user of the byte (:mod:`harness.oracle.heap`,
:class:`PageBytes`, ``tests/host``) goes through :func:`page_order` / :func:`page_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from harness.addresses import PhysAddr
from harness.errors import InvalidInput
from harness.image.elf import Firmware

PAGE_INFO_ORDER_MASK = 0x1F
"""Bits 0..4 of the page byte: the order of the block."""
PAGE_INFO_STATE_SHIFT = 5
"""Bits 5..7 of the page byte: the state."""
PAGES_ORDER_COUNT = 32
"""Orders 0..31 fit the 5-bit field."""
PAGES_NO_PAGE = 0xFFFF_FFFF
"""End of a free list (the links are page indices)."""

FIRMWARE_NAMES = ("PAGE_INFO_ORDER_MASK", "PAGE_INFO_STATE_SHIFT", "PAGES_ORDER_COUNT", "PAGES_NO_PAGE")
"""The constants above that ``pages.h`` defines under the same name."""


def page_order(byte: int) -> int:
    """The order of the block a page belongs to, from its metadata byte."""
    return byte & PAGE_INFO_ORDER_MASK


def page_state(byte: int) -> int:
    """The state field of a page's metadata byte (``enum page_state``, or OWNED + owner)."""
    return byte >> PAGE_INFO_STATE_SHIFT


def page_byte(state: int, order: int) -> int:
    """The metadata byte for a page in ``state`` of a block of ``order`` (to forge one in tests)."""
    if not 0 <= order <= PAGE_INFO_ORDER_MASK or not 0 <= state < 1 << (8 - PAGE_INFO_STATE_SHIFT):
        raise InvalidInput(f"no page byte has state {state} and order {order}")
    return state << PAGE_INFO_STATE_SHIFT | order


def state_name(state: int, states: Mapping[str, int], owners: Mapping[str, int]) -> str:
    """``free``, ``reserved``, ``continuation`` or the owner name (``buffer``, ``heap_chunk``...)
    for a state field, given the ``page_state`` and ``page_owner`` enums (from DWARF)."""
    owned = states["PAGE_STATE_OWNED"]
    if state >= owned:
        name = {v: k for k, v in owners.items()}[state - owned]
        return name.removeprefix("PAGE_OWNER_").lower()
    name = {v: k for k, v in states.items()}[state]
    return name.removeprefix("PAGE_STATE_").lower()


class _Ram(Protocol):
    def read(self, pa: PhysAddr, length: int) -> bytes: ...


class BootedImage(Protocol):
    """What :class:`PageBytes` needs of a guest: its ELF and a host view of its RAM."""

    @property
    def elf(self) -> Firmware: ...

    @property
    def ram(self) -> _Ram: ...


class PageBytes:
    """The page allocator's metadata byte of each page, read from guest RAM at the address and
    layout the ELF's symbol table and DWARF give (never from what the guest prints)."""

    def __init__(self, guest: BootedImage) -> None:
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
            raise InvalidInput(f"PA {pa:#x} is outside the page allocator's range")
        info = self._layout.read(blob, "info")
        return self.guest.ram.read(PhysAddr(info + index), 1)[0]

    def owner(self, pa: int) -> str:
        """``free``, ``reserved``, ``continuation`` or the owner name (``buffer``, ``heap_chunk``...)
        of the block holding ``pa``."""
        return state_name(page_state(self.byte(pa)), self.states, self.owners)
