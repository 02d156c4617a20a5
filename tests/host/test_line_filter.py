"""The line filter in front of ``iomem exec`` and the console (harness/tools/lines.py)."""

from __future__ import annotations

import io

import pytest

from harness.tools.lines import (
    MAX_REQUEST,
    QUOTE,
    GuestRequest,
    HarnessCommand,
    Refused,
    bounded_lines,
    classify,
    local_reply,
    quote,
)


def _refused(line: str | bytes, **kw: int) -> Refused:
    kind = classify(line, **kw)
    assert isinstance(kind, Refused), kind
    assert kind.reply.status == "err" and kind.reply.keys == {"by": "harness"}
    return kind


@pytest.mark.parametrize("line", ["", "   ", "\r", "\t"])
def test_blank_lines_get_no_reply(line: str) -> None:
    assert classify(line) is None


def test_a_request_keeps_its_words() -> None:
    assert classify("  peek 0x40000000 8 ") == GuestRequest("peek 0x40000000 8")
    assert classify(b"pagesize\r") == GuestRequest("pagesize")  # CRLF input


def test_a_tagged_request_is_refused_with_bad_argument() -> None:
    reply = _refused("@4242 pagesize").reply
    assert reply.error == "kIOReturnBadArgument" and "'@4242 pagesize'" in reply.text


def test_an_overlong_line_is_too_large_and_quoted_short() -> None:
    line = "x" * 1500
    reply = _refused(line).reply
    assert reply.error == "kIOReturnMessageTooLarge"
    assert "1500 bytes" in reply.text and "x" * (QUOTE + 1) not in reply.line
    assert len(reply.line) < 200


def test_the_limit_is_exact_and_counts_dropped_bytes() -> None:
    assert isinstance(classify("p" * MAX_REQUEST), GuestRequest)
    assert _refused("p" * (MAX_REQUEST + 1)).reply.error == "kIOReturnMessageTooLarge"
    reply = _refused("hello", overflow=5000).reply
    assert reply.error == "kIOReturnMessageTooLarge" and "5005 bytes" in reply.text


@pytest.mark.parametrize("line", [b"caf\xe9", b"peek\x00 0x0", b"\x1b[A", "snow\u2603".encode()])
def test_control_and_non_ascii_bytes_are_bad_arguments(line: bytes) -> None:
    reply = _refused(line).reply
    assert reply.error == "kIOReturnBadArgument" and "0x" in reply.text
    assert all(" " <= c <= "~" for c in reply.line)


def test_harness_commands() -> None:
    assert classify(":verify") == HarnessCommand("verify", (), ":verify")
    assert classify(" :Phys-Read 0x40000000 16") == HarnessCommand(
        "phys-read", ("0x40000000", "16"), ":Phys-Read 0x40000000 16"
    )
    assert _refused(":").reply.error == "kIOReturnBadArgument"


def test_quote_is_printable_and_bounded() -> None:
    assert quote("abc") == "'abc'"
    assert quote("a\x00b") == "'a\\x00b'"
    long = quote("y" * 100)
    assert long.startswith("'" + "y" * QUOTE + "'") and long.endswith("(100 bytes)")


def test_local_replies_parse_like_guest_replies() -> None:
    ok = local_reply(None, "", pa="0x40000000", len=4)
    assert ok.ok and ok.number("pa") == 0x40000000 and ok.number("len") == 4
    err = local_reply("kIOReturnUnsupported", "no such thing")
    assert err.error == "kIOReturnUnsupported" and err.text == "no such thing"
    assert err.to_json()["keys"] == {"by": "harness"}


def test_bounded_lines_cut_huge_lines_and_keep_the_last() -> None:
    stream = io.BytesIO(b"a\n" + b"z" * 100_000 + b"\nb\r\nlast")
    got = list(bounded_lines(stream, keep=16))
    assert got == [(b"a", 0), (b"z" * 16, 100_000 - 16), (b"b\r", 0), (b"last", 0)]
    kinds = [classify(head, overflow=dropped) for head, dropped in got]
    assert isinstance(kinds[1], Refused) and kinds[1].reply.error == "kIOReturnMessageTooLarge"
