"""QEMU's own record of what the SMMU did: the ``-trace`` log the harness asks for on SMMU
profiles (``qemu/machine.SMMU_TRACE_EVENTS``), parsed, and matched against the host walker.

QEMU 7.2's "log" trace backend writes one line per event (``hw/arm/trace-events``)::

    smmuv3_translate_success <mr> sid=0x8 iova=0x2f00 translated=0x40600f00 perm=0x3
    smmuv3_translate_abort <mr> sid=0x8 abort on iova:0x2000 is_write=0
    smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=0x8

optionally prefixed with ``<tid>@<seconds>.<micros>:`` (``-msg timestamp=on``). A success line
is written for every translate call, i.e. per page chunk of a DMA, including IOTLB hits: it is
a direct IOVA -> PA oracle. ``perm`` is the page's IOMMU permission (1 read, 3 read-write), not
the access direction. Pure functions over text, so ``tests/host`` drives them on sample lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InvalidInput
from harness.oracle.smmu import EventType, SmmuBypass, SmmuFault, SmmuTranslation, SmmuWalker

_PREFIX = r"^(?:\d+@\d+\.\d+:)?"
_SUCCESS = re.compile(
    _PREFIX + r"smmuv3_translate_success (\S+) sid=(0x[0-9a-fA-F]+|\d+) iova=0x([0-9a-fA-F]+) "
    r"translated=0x([0-9a-fA-F]+) perm=0x([0-9a-fA-F]+)(?: stage=(\d+))?\s*$"
)
_ABORT = re.compile(
    _PREFIX + r"smmuv3_translate_abort (\S+) sid=(0x[0-9a-fA-F]+|\d+) abort on iova:0x([0-9a-fA-F]+) "
    r"is_write=(\d+)\s*$"
)
_EVENT = re.compile(_PREFIX + r"smmuv3_record_event (?:SMMU_EVT_)?(\w+) sid=(0x[0-9a-fA-F]+|\d+)\s*$")
_ANY_SMMU = re.compile(_PREFIX + r"(smmuv?3?_\w+)")


def _num(text: str) -> int:
    return int(text, 0)


@dataclass(frozen=True, slots=True)
class TraceTranslation:
    """``smmuv3_translate_success``: QEMU translated ``iova`` to ``pa`` with permission ``perm``."""

    line: int
    region: str
    sid: int
    iova: int
    pa: int
    perm: int


@dataclass(frozen=True, slots=True)
class TraceAbort:
    """``smmuv3_translate_abort``: the STE says abort (no event is recorded)."""

    line: int
    region: str
    sid: int
    iova: int


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """``smmuv3_record_event``: QEMU wrote an event record (or tried: EVENTQEN may be off)."""

    line: int
    name: str
    sid: int

    @property
    def kind(self) -> EventType | None:
        return EventType.__members__.get(self.name)


TraceRecord = TraceTranslation | TraceAbort | TraceEvent


class TraceFormatError(InvalidInput):
    """A line names a traced SMMU event but does not have the format this parser knows."""


def parse_line(text: str, line: int = 0) -> TraceRecord | None:
    """One trace line; None for events this module does not track (and for blank lines)."""
    if m := _SUCCESS.match(text):
        return TraceTranslation(
            line, m.group(1), _num(m.group(2)), int(m.group(3), 16), int(m.group(4), 16), int(m.group(5), 16)
        )
    if m := _ABORT.match(text):
        return TraceAbort(line, m.group(1), _num(m.group(2)), int(m.group(3), 16))
    if m := _EVENT.match(text):
        return TraceEvent(line, m.group(1), _num(m.group(2)))
    m = _ANY_SMMU.match(text)
    if m and m.group(1) in ("smmuv3_translate_success", "smmuv3_translate_abort", "smmuv3_record_event"):
        raise TraceFormatError(f"line {line}: unknown format of {m.group(1)}: {text!r}")
    return None


def parse(text: str, first_line: int = 1) -> list[TraceRecord]:
    out = []
    for n, raw in enumerate(text.splitlines(), first_line):
        record = parse_line(raw, n)
        if record is not None:
            out.append(record)
    return out


class TraceLog:
    """A trace file QEMU is still appending to: :meth:`new` returns the records written since
    the last call (a partial last line is kept for the next call)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._line = 1
        self._pending = b""

    def new(self) -> list[TraceRecord]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        text = data[:cut].decode(errors="replace")
        records = parse(text, self._line)
        self._line += text.count("\n")
        return records

    def skip(self) -> None:
        """Forget everything written so far."""
        self.new()


# --------------------------------------------------------------------------- matching
@dataclass
class Agreement:
    """How the trace's translations compare with the host walker's."""

    checked: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def merge(self, other: Agreement) -> None:
        self.checked += other.checked
        self.mismatches += other.mismatches


def match_walker(records: Iterable[TraceRecord], walker: SmmuWalker, *, sid: int | None = None) -> Agreement:
    """Each ``translate_success`` line must be what the walker gives for the same StreamID and
    IOVA: the same PA and the same permission. Call while the mappings are still in place
    (before CompleteDMA removes them)."""
    out = Agreement()
    for record in records:
        if not isinstance(record, TraceTranslation) or (sid is not None and record.sid != sid):
            continue
        out.checked += 1
        mine = walker.lookup(record.sid, record.iova)
        if isinstance(mine, SmmuTranslation | SmmuBypass):
            if (mine.pa, mine.perm) != (record.pa, record.perm):
                out.mismatches.append(
                    f"trace line {record.line}: sid {record.sid:#x} IOVA {record.iova:#x} -> "
                    f"{record.pa:#x} perm {record.perm:#x}; host walker: {mine.pa:#x} perm {mine.perm:#x}"
                )
        elif isinstance(mine, SmmuFault):
            out.mismatches.append(
                f"trace line {record.line}: sid {record.sid:#x} IOVA {record.iova:#x} -> {record.pa:#x}; "
                f"host walker: {mine.kind.name} ({mine.reason})"
            )
    return out


def translations(records: Iterable[TraceRecord], sid: int | None = None) -> list[TraceTranslation]:
    return [r for r in records if isinstance(r, TraceTranslation) and (sid is None or r.sid == sid)]


def events(records: Iterable[TraceRecord], sid: int | None = None) -> list[TraceEvent]:
    return [r for r in records if isinstance(r, TraceEvent) and (sid is None or r.sid == sid)]
