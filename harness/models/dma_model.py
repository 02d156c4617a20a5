"""A host model of IODMACommand (driverkit-memory.md §13) and of the edu DMA engine, written
from the spec and the QEMU facts alone, independent of the firmware.

It predicts what each call answers (an error name or success), what state every command is in
(prepared with which descriptor, offset and length), and the bytes: what the device sees
through a preparation (the descriptor's own memory, or a bounce copy), what an edu transfer
moves, and what CompleteDMA copies back.

The model never talks to the guest and imports nothing of QEMU. Tests feed it the facts only
the hardware decides (a descriptor's physical runs, the segments a prepare returned) and
compare its predictions with the guest's replies and guest RAM read by the host.

Choices where §13 leaves room ([Rec] in the spec, documented in docs/dma-oracles.md):

* errors found before the kernel is reached (options, a NULL descriptor, ``max`` > 32:
  Overrun from the user-side stub, Busy) change nothing; any later failure leaves the command
  unprepared ("the descriptor is completed again and the command detached");
* ``length == 0`` prepares the descriptor's whole length from ``offset``; a range past the
  descriptor is BadArgument;
* PerformOperation works on the DMA memory, i.e. the bounce copy when the preparation bounced;
  it copies ``min(length, prepared length - dmaOffset)`` bytes and answers Underrun when that
  is short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.errors import ModelError

MAX_SEGMENTS = 32
EDU_BUFFER = 4096
DIRECTION_IN = 0x1  # the device may write the memory
DIRECTION_OUT = 0x2  # the device may read the memory
PERFORM_READ, PERFORM_WRITE, PERFORM_ZERO = 0x1, 0x2, 0x4
PERFORM_OPTIONS = {"read": PERFORM_READ, "write": PERFORM_WRITE, "zero": PERFORM_ZERO}


@dataclass
class Memory:
    """What the model knows of one memory descriptor: length, direction and physical runs
    (from the descriptor model or the host walker), and its bytes."""

    handle: int
    length: int
    direction: int  # kIOMemoryDirection bits: 1 In, 2 Out, 3 InOut
    runs: list[tuple[int, int]]  # (PA, length) in descriptor order, covering ``length``
    data: bytearray

    def pa_at(self, offset: int) -> int:
        at = offset
        for pa, length in self.runs:
            if at < length:
                return pa + at
            at -= length
        raise ModelError(f"offset {offset} beyond descriptor {self.handle:#x} of {self.length} bytes")

    def phys_runs(self, offset: int, length: int) -> list[tuple[int, int]]:
        """Physical runs behind [offset, offset + length), adjacent runs merged."""
        out: list[tuple[int, int]] = []
        at, left = offset, length
        for pa, run in self.runs:
            if left == 0:
                break
            if at >= run:
                at -= run
                continue
            take = min(run - at, left)
            start = pa + at
            if out and out[-1][0] + out[-1][1] == start:
                out[-1] = (out[-1][0], out[-1][1] + take)
            else:
                out.append((start, take))
            left -= take
            at = 0
        if left:
            raise ModelError(f"[{offset}, +{length}) beyond descriptor {self.handle:#x}")
        return out


@dataclass
class Preparation:
    md: Memory
    offset: int
    length: int
    flags: int
    bounced: bool
    segments: list[tuple[int, int]] = field(default_factory=list)  # (device address, length)
    bounce: bytearray | None = None  # the device's view when bounced

    def locate(self, address: int, length: int) -> int | None:
        """Offset within the preparation of the device range [address, address + length), or
        None unless it lies inside one segment."""
        at = 0
        for seg, seg_len in self.segments:
            if seg <= address and address + length <= seg + seg_len:
                return at + address - seg
            at += seg_len
        return None


@dataclass
class Command:
    handle: int
    bits: int  # effective maxAddressBits (64 = no limit)
    prepared: Preparation | None = None


@dataclass(frozen=True)
class Outcome:
    """A prediction: ``error`` (a kIOReturn name) or None for success."""

    error: str | None
    detail: str = ""


OK = Outcome(None)


def effective_bits(bits: int) -> int:
    """maxAddressBits as the kernel uses it: 0 and 64..255 mean no limit."""
    return 64 if bits == 0 or bits >= 64 else bits


class Model:
    """All commands, the edu buffer, and whether an IOMMU translates device addresses."""

    def __init__(self, *, page: int, iommu: bool) -> None:
        self.page = page
        self.page_shift = page.bit_length() - 1
        self.iommu = iommu
        self.commands: dict[int, Command] = {}
        self.released: set[int] = set()
        self.edu = bytearray(EDU_BUFFER)
        self.edu_known = 0  # bytes at the start of the edu buffer the model knows

    # ------------------------------------------------------------ Create (§13.1)
    def create_outcome(self, bits: int, options: int = 0) -> Outcome:
        if options:
            return Outcome("kIOReturnBadArgument", "options != 0")
        if bits > 255:
            return Outcome("kIOReturnBadArgument", "maxAddressBits > 255")
        if 1 <= bits < self.page_shift:
            return Outcome("kIOReturnNoMemory", f"maxAddressBits {bits} < PAGE_SHIFT {self.page_shift}")
        return OK

    def add_command(self, handle: int, bits: int) -> Command:
        if handle in self.commands:
            raise ModelError(f"handle {handle:#x} is already a live command")
        command = Command(handle, effective_bits(bits))
        self.commands[handle] = command
        return command

    # ------------------------------------------------------------ PrepareForDMA (§13.2)
    def resolve(self, md: Memory, offset: int, length: int) -> tuple[int, int] | None:
        """(offset, length) a prepare covers, or None if the range is beyond the descriptor."""
        length = md.length if length == 0 else length
        if offset > md.length or length > md.length - offset or length == 0:
            return None
        return offset, length

    def _resolved(self, md: Memory, offset: int, length: int) -> tuple[int, int]:
        resolved = self.resolve(md, offset, length)
        if resolved is None:
            raise ModelError(f"[{offset}, +{length}) is not a range of descriptor {md.handle:#x}")
        return resolved

    def prepare_outcome(
        self, handle: int, md: Memory | None, offset: int, length: int, capacity: int, options: int = 0
    ) -> Outcome:
        command = self.commands.get(handle)
        if command is None:
            return Outcome("kIOReturnBadArgument", "not a live command")
        if capacity > MAX_SEGMENTS:  # the user-side stub checks before anything reaches the kernel
            return Outcome("kIOReturnOverrun", "segment capacity > 32 (user-side stub)")
        if options or md is None:
            return Outcome("kIOReturnBadArgument", "options or NULL descriptor")
        if command.prepared is not None and command.prepared.md is not md:
            return Outcome("kIOReturnBusy", "prepared with another descriptor")
        if capacity == 0:
            return Outcome("kIOReturnBadArgument", "segment capacity 0")
        if self.resolve(md, offset, length) is None:
            return Outcome("kIOReturnBadArgument", "range beyond the descriptor")
        return OK

    def prepare_failed(self, handle: int, outcome: Outcome) -> list[Preparation]:
        """Apply a failed prepare; returns the preparations it ended (implicitly completed)."""
        command = self.commands.get(handle)
        if command is None or outcome.error in ("kIOReturnOverrun", "kIOReturnBusy"):
            return []
        if outcome.detail == "options or NULL descriptor":
            return []
        ended = []
        if command.prepared is not None:
            ended.append(self._end(command))
        return ended

    def needs_bounce(self, md: Memory, offset: int, length: int, bits: int) -> bool:
        """Without an IOMMU, memory at or above 2^bits must be bounced."""
        if self.iommu or bits >= 64:
            return False
        return any(pa + run > 1 << bits for pa, run in md.phys_runs(offset, length))

    def expected_physical_segments(self, md: Memory, offset: int, length: int) -> list[tuple[int, int]]:
        """Without an IOMMU and without bounce: the physical runs (adjacent pages merged)."""
        return md.phys_runs(offset, length)

    def check_segments(
        self,
        handle: int,
        md: Memory,
        offset: int,
        length: int,
        capacity: int,
        flags: int,
        segments: Sequence[tuple[int, int]],
        bounced: bool,
    ) -> list[str]:
        """Everything §13.2 says about a successful prepare's answer; the list of violations."""
        command = self.commands[handle]
        resolved = self._resolved(md, offset, length)
        offset, length = resolved
        problems = []
        want_flags = md.direction & (DIRECTION_IN | DIRECTION_OUT)
        if flags != want_flags:
            problems.append(f"flags {flags:#x}, descriptor direction gives {want_flags:#x}")
        limit = min(capacity, MAX_SEGMENTS)
        if not 1 <= len(segments) <= limit:
            problems.append(f"{len(segments)} segments, capacity {limit}")
        total = sum(n for _, n in segments)
        if total > length:
            problems.append(f"segments cover {total} bytes, more than the prepared {length}")
        if total < length and len(segments) < limit:
            problems.append(f"segments cover {total} of {length} bytes with room for more")
        if any(n == 0 for _, n in segments):
            problems.append("a zero-length segment")
        top = 1 << command.bits
        for address, n in segments:
            if address + n > top:
                problems.append(f"segment {address:#x}+{n:#x} not below 2^{command.bits}")
        want_bounce = self.needs_bounce(md, offset, length, command.bits)
        if bounced != want_bounce:
            problems.append(f"bounced={int(bounced)}, expected {int(want_bounce)}")
        if segments:
            first = segments[0][0]
            in_page = md.pa_at(offset) % self.page
            if not bounced and first % self.page != in_page:
                problems.append(f"first segment {first:#x} does not keep the in-page offset {in_page:#x}")
        if not self.iommu and not bounced:
            want = self.expected_physical_segments(md, offset, length)
            if list(segments) != want[: len(segments)] or (len(segments) == len(want) and total != length):
                problems.append(f"physical segments {list(segments)}, expected {want}")
        return problems

    def prepared(
        self,
        handle: int,
        md: Memory,
        offset: int,
        length: int,
        flags: int,
        segments: Sequence[tuple[int, int]],
        bounced: bool,
    ) -> list[Preparation]:
        """Record a successful prepare; returns the preparation it implicitly completed."""
        command = self.commands[handle]
        ended = [self._end(command)] if command.prepared is not None else []
        resolved = self._resolved(md, offset, length)
        offset, length = resolved
        bounce = bytearray(md.data[offset : offset + length]) if bounced else None
        command.prepared = Preparation(md, offset, length, flags, bounced, list(segments), bounce)
        return ended

    # ------------------------------------------------------------ CompleteDMA (§13.3)
    def complete_outcome(self, handle: int, options: int = 0) -> Outcome:
        command = self.commands.get(handle)
        if command is None or options:
            return Outcome("kIOReturnBadArgument")
        if command.prepared is None:
            return Outcome("kIOReturnNotReady", "not prepared")
        return OK

    def complete(self, handle: int) -> Preparation:
        return self._end(self.commands[handle])

    def _end(self, command: Command) -> Preparation:
        prep = command.prepared
        if prep is None:
            raise ModelError(f"command {command.handle:#x} is not prepared")
        if prep.bounce is not None and prep.flags & DIRECTION_IN:
            prep.md.data[prep.offset : prep.offset + prep.length] = prep.bounce
        command.prepared = None
        return prep

    # ------------------------------------------------------------ GetPreparation (§13.4)
    def preparation_outcome(self, handle: int) -> Outcome:
        command = self.commands.get(handle)
        if command is None:
            return Outcome("kIOReturnBadArgument")
        return OK if command.prepared is not None else Outcome("kIOReturnNotReady")

    # ------------------------------------------------------------ PerformOperation (§13.4)
    def perform_outcome(
        self, handle: int, op: str, dma_offset: int, length: int, data: Memory | None
    ) -> Outcome:
        command = self.commands.get(handle)
        if command is None or op not in PERFORM_OPTIONS:
            return Outcome("kIOReturnBadArgument")
        if command.prepared is None:
            return Outcome("kIOReturnNotReady")
        if length > command.prepared.md.length:
            return Outcome("kIOReturnBadArgument", "length beyond the command's descriptor")
        if op != "zero":
            if data is None:
                return Outcome("kIOReturnBadArgument", "no data descriptor")
            if length > data.length:
                return Outcome("kIOReturnBadArgument", "length beyond the data descriptor")
        if dma_offset + length > command.prepared.length:
            return Outcome("kIOReturnUnderrun", "short copy")
        return OK

    def perform(
        self, handle: int, op: str, dma_offset: int, length: int, data: Memory | None, data_offset: int
    ) -> int:
        """Apply a PerformOperation (success or Underrun); returns the bytes copied."""
        prep = self.commands[handle].prepared
        if prep is None:
            raise ModelError(f"command {handle:#x} is not prepared")
        n = max(0, min(length, prep.length - dma_offset))
        view, base = self.view(prep)
        at = base + dma_offset
        if op == "zero":
            view[at : at + n] = bytes(n)
        elif data is None:
            raise ModelError(f"PerformOperation {op} needs a data descriptor")
        elif op == "read":
            n = min(n, data.length - data_offset)
            data.data[data_offset : data_offset + n] = view[at : at + n]
        else:
            n = min(n, data.length - data_offset)
            view[at : at + n] = data.data[data_offset : data_offset + n]
        return n

    @staticmethod
    def view(prep: Preparation) -> tuple[bytearray, int]:
        """The device view of a preparation and the index of its first byte in it."""
        if prep.bounce is not None:
            return prep.bounce, 0
        return prep.md.data, prep.offset

    # ------------------------------------------------------------ release
    def release_outcome(self, handle: int) -> Outcome:
        return OK if handle in self.commands else Outcome("kIOReturnBadArgument")

    def release(self, handle: int) -> Preparation | None:
        command = self.commands.pop(handle)
        self.released.add(handle)
        return self._end(command) if command.prepared is not None else None

    # ------------------------------------------------------------ edu
    def edu_target(self, address: int, length: int) -> tuple[Preparation, int] | None:
        """The live preparation whose segments hold [address, +length), and the offset in it."""
        for command in self.commands.values():
            prep = command.prepared
            if prep is None:
                continue
            at = prep.locate(address, length)
            if at is not None:
                return prep, at
        return None

    def device_may(self, prep: Preparation, *, write: bool) -> bool:
        """Whether the device access reaches memory: with an IOMMU, a write needs In (reads are
        always allowed by QEMU's SMMU); without one nothing is enforced."""
        if not self.iommu or not write:
            return True
        return bool(prep.flags & DIRECTION_IN)

    def to_device(self, address: int, length: int) -> bool:
        """The device reads [address, +length) into its buffer. Returns False when the access
        faults (IOMMU): the device then reads zeros (QEMU fills failed reads with zeros)."""
        target = self.edu_target(address, length)
        if target is None:
            if not self.iommu:
                raise ModelError(f"device read of {address:#x}+{length:#x} outside any preparation")
            self.edu[:length] = bytes(length)
            self.edu_known = max(self.edu_known, length)
            return False
        prep, at = target
        view, base = self.view(prep)
        self.edu[:length] = view[base + at : base + at + length]
        self.edu_known = max(self.edu_known, length)
        return True

    def from_device(self, address: int, length: int) -> bool:
        """The device writes its buffer to [address, +length). Returns False when the access
        faults: nothing changes."""
        if length > self.edu_known:
            raise ModelError(f"the model knows only {self.edu_known} bytes of the edu buffer")
        target = self.edu_target(address, length)
        if target is None:
            if not self.iommu:
                raise ModelError(f"device write of {address:#x}+{length:#x} outside any preparation")
            return False
        prep, at = target
        if not self.device_may(prep, write=True):
            return False
        view, base = self.view(prep)
        view[base + at : base + at + length] = self.edu[:length]
        return True

    # ------------------------------------------------------------ queries
    def live(self) -> list[int]:
        return sorted(self.commands)

    def prepared_handles(self) -> list[int]:
        return sorted(h for h, c in self.commands.items() if c.prepared is not None)

    def preparations_of(self, md: Memory) -> list[Preparation]:
        return [c.prepared for c in self.commands.values() if c.prepared is not None and c.prepared.md is md]
