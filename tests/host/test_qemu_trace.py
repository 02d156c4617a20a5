"""Parsing QEMU's SMMU trace lines and matching them against the host SMMU walker."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_smmu_walker import SID, golden_ram, walker

from harness.oracle.qemu_trace import (
    TraceAbort,
    TraceEvent,
    TraceFormatError,
    TraceLog,
    TraceTranslation,
    events,
    match_walker,
    parse,
    parse_line,
    translations,
)
from harness.oracle.smmu import EventType

MR = "smmuv3-iommu-memory-region-8-1"
SAMPLE = f"""\
smmuv3_translate_success {MR} sid=0x8 iova=0x2f00 translated=0x40600f00 perm=0x3
12345@1700000000.123456:smmuv3_translate_success {MR} sid=0x8 iova=0x3000 translated=0x40700000 perm=0x1
smmuv3_translate_abort {MR} sid=0x8 abort on iova:0x2000 is_write=0
smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=0x8
smmuv3_record_event SMMU_EVT_F_PERMISSION sid=0x8
pci_cfg_write edu 01:0 @0x4 <- 0x6
"""


def test_parse_the_three_events_with_and_without_timestamps() -> None:
    records = parse(SAMPLE)
    assert records == [
        TraceTranslation(1, MR, 8, 0x2F00, 0x4060_0F00, 3),
        TraceTranslation(2, MR, 8, 0x3000, 0x4070_0000, 1),
        TraceAbort(3, MR, 8, 0x2000),
        TraceEvent(4, "F_TRANSLATION", 8),
        TraceEvent(5, "F_PERMISSION", 8),
    ]
    assert [e.kind for e in events(records)] == [EventType.F_TRANSLATION, EventType.F_PERMISSION]
    assert len(translations(records, sid=8)) == 2 and translations(records, sid=9) == []
    # A later QEMU adds "stage=": still parsed.
    line = f"smmuv3_translate_success {MR} sid=0x8 iova=0x10 translated=0x40000010 perm=0x3 stage=1"
    assert parse_line(line) == TraceTranslation(0, MR, 8, 0x10, 0x4000_0010, 3)
    assert parse_line("") is None and parse_line("smmuv3_cmdq_opcode <CMD_SYNC>") is None


def test_a_known_event_in_an_unknown_format_is_an_error() -> None:
    with pytest.raises(TraceFormatError, match="line 7"):
        parse_line(f"smmuv3_translate_success {MR} sid=0x8 iova=zz", 7)


def test_trace_log_reads_incrementally_and_keeps_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "trace.log"
    log = TraceLog(path)
    assert log.new() == []  # QEMU has not created it yet
    lines = SAMPLE.splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:20])
    assert [r.line for r in log.new()] == [1]
    with path.open("a") as f:
        f.write(lines[1][20:] + lines[2])
    assert [r.line for r in log.new()] == [2, 3]
    assert log.new() == []


def test_match_against_the_walker_counts_and_names_mismatches() -> None:
    w = walker(golden_ram())
    good = parse(SAMPLE)
    agreement = match_walker(good, w, sid=SID)
    assert (agreement.checked, agreement.ok) == (2, True)
    bad = parse(
        f"smmuv3_translate_success {MR} sid=0x8 iova=0x2f00 translated=0x40610f00 perm=0x3\n"
        f"smmuv3_translate_success {MR} sid=0x8 iova=0x3000 translated=0x40700000 perm=0x3\n"
        f"smmuv3_translate_success {MR} sid=0x8 iova=0x1000 translated=0x40500000 perm=0x3\n"
    )
    agreement = match_walker(bad, w)
    assert agreement.checked == 3 and len(agreement.mismatches) == 3
    assert "0x40610f00" in agreement.mismatches[0] and "0x40600f00" in agreement.mismatches[0]
    assert "perm 0x1" in agreement.mismatches[1]
    assert "F_TRANSLATION" in agreement.mismatches[2]
