"""Typed calls for the DMA verbs (``dma ...``, IODMACommand, driverkit-memory.md §13) and the
edu DMA engine (``edu to-device`` / ``edu from-device``) on a booted
:class:`~harness.guest.Guest`.

Segment addresses are device (bus) addresses: an :data:`~harness.addresses.IOVA` behind the
SMMU, a :data:`~harness.addresses.PhysAddr` without one; :class:`Dma` types them by the profile.
``*_line`` builds a request so a test can send it with ``guest.err`` to look at an error; the
plain calls require ``ok``.

Two QEMU-side checks ride along with every edu transfer: QEMU must not have printed an edu
clamp warning (the transfer went to an address nobody asked for: :class:`EduClamped`), and a
QEMU that aborted (edu's fatal range check) surfaces as ``GuestCrashed`` carrying QEMU's own
message (``Guest._diagnose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.addresses import IOVA, PhysAddr
from harness.errors import IomemError, StateError
from harness.guest.core import Guest
from harness.link.protocol import Event, Reply

DeviceAddress = IOVA | PhysAddr

# §13 constants
DIRECTION_IN = 0x1  # kIOMemoryDirectionIn: the device may write the memory
DIRECTION_OUT = 0x2  # kIOMemoryDirectionOut: the device may read the memory
MAX_SEGMENTS = 32
PERFORM_OPS = ("read", "write", "zero")
EDU_BUFFER = 4096
EDU_MAX_TRANSFER = 4095  # QEMU 7.2 aborts on a full 4096-byte transfer (dma-facts §1.2)

EduDirection = Literal["to-device", "from-device"]


class EduClamped(IomemError):
    """QEMU's edu ANDed a bus address with its dma_mask: the transfer went elsewhere."""


@dataclass(frozen=True)
class DmaSegment:
    address: DeviceAddress
    length: int

    @property
    def end(self) -> int:
        return self.address + self.length


@dataclass(frozen=True)
class DmaCommand:
    handle: int
    bits: int


@dataclass(frozen=True)
class Prepared:
    """One ``dma prepare`` answer."""

    flags: int
    count: int
    segments: tuple[DmaSegment, ...]
    bounced: bool
    reply: Reply

    @property
    def length(self) -> int:
        """Bytes the segments cover (less than the prepared length when they were truncated)."""
        return sum(s.length for s in self.segments)

    @property
    def device_reads(self) -> bool:
        return bool(self.flags & DIRECTION_OUT)

    @property
    def device_writes(self) -> bool:
        return bool(self.flags & DIRECTION_IN)


@dataclass(frozen=True)
class Preparation:
    """One ``dma preparation`` answer (GetPreparation)."""

    md: int
    offset: int
    length: int


@dataclass(frozen=True)
class EduTransfer:
    """One edu transfer: the guest's ``status``, its wait in ns, and the ``!`` events (e.g.
    ``! fault smmu ...``) the guest printed before the reply."""

    status: int
    ns: int
    events: tuple[Event, ...]
    reply: Reply

    @property
    def faults(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind == "fault")


def _opt(key: str, value: int | None) -> str:
    return "" if value is None else f" {key}={value:#x}"


class Dma:
    """The DMA and edu verbs of one guest."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.smmu = guest.profile.smmu
        self._clamps_seen = 0

    def device_address(self, value: int) -> DeviceAddress:
        return IOVA(value) if self.smmu else PhysAddr(value)

    # ------------------------------------------------------------ IODMACommand
    @staticmethod
    def create_line(bits: int | None = None) -> str:
        return "dma create" + ("" if bits is None else f" bits={bits}")

    def create(self, bits: int | None = None) -> DmaCommand:
        r = self.guest.ok(self.create_line(bits))
        return DmaCommand(r.number("dma"), r.number("bits"))

    @staticmethod
    def prepare_line(
        dma: int, md: int, *, offset: int | None = None, length: int | None = None, max: int | None = None
    ) -> str:
        return (
            f"dma prepare {dma:#x} {md:#x}"
            + _opt("offset", offset)
            + _opt("length", length)
            + ("" if max is None else f" max={max}")
        )

    def parse_prepared(self, r: Reply) -> Prepared:
        count = r.number("count")
        segments = []
        for i in range(count):
            address, length = r.span(f"seg{i}")
            segments.append(DmaSegment(self.device_address(address), length))
        extra = [k for k in r.keys if k.startswith("seg") and k[3:].isdigit() and int(k[3:]) >= count]
        if extra:
            raise IomemError(f"prepare reply has segments beyond count={count}: {extra}", command=r.line)
        return Prepared(r.number("flags"), count, tuple(segments), bool(r.number("bounced")), r)

    def prepare(
        self,
        dma: int,
        md: int,
        *,
        offset: int | None = None,
        length: int | None = None,
        max: int | None = None,
    ) -> Prepared:
        return self.parse_prepared(
            self.guest.ok(self.prepare_line(dma, md, offset=offset, length=length, max=max))
        )

    def complete(self, dma: int) -> None:
        self.guest.ok(f"dma complete {dma:#x}")

    def preparation(self, dma: int) -> Preparation:
        r = self.guest.ok(f"dma preparation {dma:#x}")
        return Preparation(r.number("md"), r.number("offset"), r.number("length"))

    @staticmethod
    def perform_line(
        dma: int, op: str, dma_offset: int, length: int, md: int | None = None, data_offset: int = 0
    ) -> str:
        line = f"dma perform {dma:#x} {op} {dma_offset:#x} {length:#x}"
        return line if md is None else line + f" {md:#x} {data_offset:#x}"

    def perform(
        self, dma: int, op: str, dma_offset: int, length: int, md: int | None = None, data_offset: int = 0
    ) -> int:
        """PerformOperation; returns the length the guest reports."""
        return self.guest.ok(self.perform_line(dma, op, dma_offset, length, md, data_offset)).number("length")

    def release(self, dma: int) -> None:
        self.guest.ok(f"dma release {dma:#x}")

    # ------------------------------------------------------------ edu
    @staticmethod
    def edu_line(direction: EduDirection, address: int, length: int) -> str:
        return f"edu {direction} {address:#x} {length:#x}"

    def edu(
        self, direction: EduDirection, address: int, length: int, *, timeout: float = 10.0
    ) -> EduTransfer:
        """Run one edu transfer: ``to-device`` = the device reads RAM at ``address`` into its
        buffer, ``from-device`` = it writes its buffer to RAM at ``address``."""
        console = self.guest.console
        if console is None:
            raise StateError("guest not booted", command=self.edu_line(direction, address, length))
        before = len(console.events)
        line = self.edu_line(direction, address, length)
        r = self.guest.ok(line, timeout=timeout)
        self.check_no_clamp(line)
        return EduTransfer(r.number("status"), r.number("ns"), tuple(console.events[before:]), r)

    def edu_reply(self, direction: EduDirection, address: int, length: int) -> Reply:
        """The raw reply, whatever its status (for error cases)."""
        line = self.edu_line(direction, address, length)
        reply = self.guest.request(line)
        self.check_no_clamp(line)
        return reply

    def to_device(self, address: int, length: int) -> EduTransfer:
        return self.edu("to-device", address, length)

    def from_device(self, address: int, length: int) -> EduTransfer:
        return self.edu("from-device", address, length)

    def check_no_clamp(self, command: str | None = None) -> None:
        """Raise :class:`EduClamped` if QEMU printed a new edu clamp warning."""
        clamps = self.guest.machine.edu_clamps()
        if len(clamps) > self._clamps_seen:
            new = clamps[self._clamps_seen :]
            self._clamps_seen = len(clamps)
            detail = ", ".join(f"{a:#x} -> {b:#x}" for a, b in new)
            raise EduClamped(
                f"QEMU's edu clamped DMA addresses to its {self.guest.profile.edu_dma_bits}-bit mask: "
                + detail,
                command=command,
            )
