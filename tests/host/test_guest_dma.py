"""The typed DMA client's parsing and request lines, without a guest."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import IomemError
from harness.guest.dma import Dma, DmaSegment
from harness.link.protocol import parse_reply


def _dma(smmu: bool) -> Dma:
    fake: Any = SimpleNamespace(profile=SimpleNamespace(smmu=smmu))
    return Dma(fake)


def test_prepare_reply_becomes_typed_segments() -> None:
    reply = parse_reply("@3 ok flags=0x3 count=2 seg0=0x4000+0x100 seg1=0x9000+0x20 bounced=0")
    assert reply is not None
    got = _dma(True).parse_prepared(reply)
    assert got.segments == (DmaSegment(0x4000, 0x100), DmaSegment(0x9000, 0x20))  # type: ignore[arg-type]
    assert (got.flags, got.count, got.length, got.bounced, got.device_reads, got.device_writes) == (
        3, 2, 0x120, False, True, True,
    )
    bad = parse_reply("ok flags=0x1 count=1 seg0=0x4000+0x100 seg1=0x9000+0x20 bounced=1")
    assert bad is not None
    with pytest.raises(IomemError, match="beyond count"):
        _dma(False).parse_prepared(bad)


def test_request_lines() -> None:
    assert Dma.create_line() == "dma create" and Dma.create_line(28) == "dma create bits=28"
    assert Dma.prepare_line(0x10, 0x20) == "dma prepare 0x10 0x20"
    line = Dma.prepare_line(1, 2, offset=3, length=4, max=5)
    assert line == "dma prepare 0x1 0x2 offset=0x3 length=0x4 max=5"
    assert Dma.perform_line(1, "zero", 0, 16) == "dma perform 0x1 zero 0x0 0x10"
    assert Dma.perform_line(1, "read", 2, 3, 4, 5) == "dma perform 0x1 read 0x2 0x3 0x4 0x5"
    assert Dma.edu_line("to-device", 0x1000, 16) == "edu to-device 0x1000 0x10"
