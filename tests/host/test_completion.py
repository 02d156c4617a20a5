"""Console completion comes from the verb table (here: the firmware ELF's), never a list of its own."""

from __future__ import annotations

from dataclasses import replace

from harness.image.build import ensure_firmware
from harness.link.completion import Completer, format_help
from harness.link.describe import from_elf
from harness.link.protocol import parse_reply


def _completer() -> Completer:
    d = from_elf(ensure_firmware())
    modes = ("default", "inhibit", "copyback", "copybackinner")
    return Completer(replace(d, choices={"MODE": modes, "DIR": ("none", "in", "out", "inout")}))


def test_verbs_subverbs_keys_values_and_handles() -> None:
    c = _completer()
    assert c.candidates("", "pe") == ["peek"]
    assert c.candidates("md ", "s") == ["segments", "setlength", "sub"]
    assert c.candidates("help ", "tr") == ["translate"]
    assert "cache=" in c.candidates("md map 0x3 ", "") and "ro" in c.candidates("md map 0x3 ", "")
    assert c.candidates("md map 0x3 ", "cache=copy") == ["cache=copyback", "cache=copybackinner"]
    assert c.candidates("vm map 1 2 3 ", "perm=r") == ["perm=ro", "perm=rw", "perm=rx"]
    assert c.candidates("bmd create 0x1000 ", "dir=i") == ["dir=in", "dir=inout"]
    c.observe("bmd create 0x1000", parse_reply("ok md=0x10000003c va=0x1000 capacity=4096 length=4096"))  # type: ignore[arg-type]
    assert c.candidates("md map ", "0x1") == ["0x10000003c"]
    c.observe("md release 0x10000003c", parse_reply("ok refs=0 freed=1"))  # type: ignore[arg-type]
    assert c.candidates("md map ", "0x1") == []


def test_help_is_shown_as_grammar_and_keys() -> None:
    reply = parse_reply("ok verb=md subverb=map usage=MD,[ro] keys=map,va errkeys= MODE=a,b")
    assert reply is not None
    assert format_help(reply) == (
        "md map MD [ro]\n  ok replies:  map va\n  err replies: the error code\n  MODE: a b"
    )
