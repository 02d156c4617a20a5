"""The heap and object verbs (``alloc``/``zalloc``/``free``/``new``/``newzero``/``delete``/
``safedelete``/``obj``/``check``/``stats``, docs/heap-verbs.md) as typed calls, and the
host's own reading of the allocators' state (:mod:`harness.oracle.heap`) from guest RAM, the
ELF's symbols and its DWARF.

:class:`HeapVerbs` is mixed into :class:`~harness.guest.Guest`, so tests call
``guest.alloc(...)``; it needs only ``ok``, ``elf`` and ``ram`` from the class it joins.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from harness.addresses import PhysAddr, VirtAddr
from harness.errors import ProtocolError
from harness.oracle import heap as heap_oracle

if TYPE_CHECKING:
    from harness.image.elf import Firmware
    from harness.link.protocol import Reply
    from harness.qemu.ram import SharedRam


class HeapVerbs:
    """Typed heap/object verbs over a booted guest's request channel."""

    if TYPE_CHECKING:  # what the class this is mixed into (Guest) provides
        elf: Firmware

        @abstractmethod
        def ok(self, line: str, *, timeout: float | None = None) -> Reply: ...

        @property
        @abstractmethod
        def ram(self) -> SharedRam: ...

    def alloc(self, size: int) -> VirtAddr:
        return VirtAddr(self.ok(f"alloc {size:#x}").number("va"))

    def zalloc(self, size: int) -> VirtAddr:
        return VirtAddr(self.ok(f"zalloc {size:#x}").number("va"))

    def free(self, va: VirtAddr | int, size: int) -> None:
        self.ok(f"free {va:#x} {size:#x}")

    def new(self, type_name: str, count: int, *, zero: bool = False) -> VirtAddr:
        verb = "newzero" if zero else "new"
        return VirtAddr(self.ok(f"{verb} {type_name} {count:#x}").number("va"))

    def delete(self, va: VirtAddr | int, type_name: str, count: int) -> tuple[int, bool]:
        """IODelete: the pointer variable after the call (unchanged), and whether it freed
        (False: a NULL pointer or an overflowing count, which IODelete ignores)."""
        r = self.ok(f"delete {va:#x} {type_name} {count:#x}")
        return r.number("ptr"), bool(r.number("freed"))

    def safedelete(self, va: VirtAddr | int, type_name: str, count: int) -> tuple[int, bool]:
        """IOSafeDeleteNULL: the pointer variable after the call, and whether it freed."""
        r = self.ok(f"safedelete {va:#x} {type_name} {count:#x}")
        return r.number("ptr"), bool(r.number("freed"))

    def stats(self, *keys: str) -> dict[str, int]:
        """Every ``stats`` key, parsed; or only ``keys`` (``stats keys=a,b``, the reply cut to
        them by the guest: a per-step check that needs two keys does not carry forty over
        the UART)."""
        line = f"stats keys={','.join(keys)}" if keys else "stats"
        reply = self.ok(line)
        got = {k: v for k, v in reply.parsed_keys().items() if isinstance(v, int)}
        if keys and set(got) != set(keys):
            raise ProtocolError(f"asked for stats {sorted(keys)}, got {sorted(got)}", command=line)
        return got

    def check(self) -> dict[str, int]:
        """The guest's own integrity walk (``check``); an ``err`` raises GuestError."""
        return {k: v for k, v in self.ok("check").parsed_keys().items() if isinstance(v, int)}

    def obj_new(self, class_name: str) -> Reply:
        return self.ok(f"obj new {class_name}")

    def obj_retain(self, handle: int) -> Reply:
        return self.ok(f"obj retain {handle:#x}")

    def obj_release(self, handle: int) -> Reply:
        return self.ok(f"obj release {handle:#x}")

    def obj_classes(self) -> dict[str, int]:
        """Class name -> instance size, from ``obj classes``."""
        r = self.ok("obj classes")
        names, sizes = r.value("classes").split(","), r.value("sizes").split(",")
        return {name: int(size) for name, size in zip(names, sizes, strict=True)}

    @property
    def heap_layouts(self) -> heap_oracle.Layouts:
        """The allocators' struct layouts and enums, from the booted ELF's DWARF (cached)."""
        return heap_oracle.layouts_for(self.elf)

    @property
    def heap_symbols(self) -> heap_oracle.Symbols:
        """Addresses of pages_state, heap_state and object_registry (ELF symbols)."""
        return heap_oracle.Symbols(
            pages_state=self.elf.symbol("pages_state").address,
            heap_state=self.elf.symbol("heap_state").address,
            object_registry=self.elf.symbol("object_registry").address,
        )

    def heap_snapshot(self) -> heap_oracle.Snapshot:
        """The page allocator, heap and object registry decoded from guest RAM by the host.

        RAM is identity mapped (VA == PA), so the pointers stored in guest memory are PAs.
        Call between requests: the agent is idle then and the state is quiescent.
        """
        ram = self.ram
        return heap_oracle.decode(
            lambda address, length: ram.read(PhysAddr(address), length), self.heap_layouts, self.heap_symbols
        )

    def heap_verify(self) -> heap_oracle.Snapshot:
        """Decode and check every allocator invariant from the host, and that the heap is
        settled (read between requests); raises OracleMismatch."""
        return heap_oracle.verify(self.heap_snapshot(), command="(host heap decoder)", between_requests=True)
