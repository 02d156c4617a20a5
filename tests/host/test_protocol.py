"""The serial protocol's grammar as the harness reads and writes it (no QEMU)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.link.protocol import (
    check_request,
    format_request,
    parse_banner,
    parse_event,
    parse_number,
    parse_reply,
    strip_prompt,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("0x0", 0),
        ("0X1f", 31),
        ("0xdeadBEEF", 0xDEADBEEF),
        ("18446744073709551615", 2**64 - 1),
        ("0xffffffffffffffff", 2**64 - 1),
        ("0x0000000000000000001", 1),
    ],
)
def test_numbers_accepted(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        "0x",
        "x10",
        "1 2",
        " 1",
        "1e3",
        "0b101",
        "12a",
        "0x1g",
        "18446744073709551616",
        "0x10000000000000000",
        "١٢",
        "0x-1",
    ],
)
def test_numbers_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_numbers_round_trip(value: int) -> None:
    assert parse_number(str(value)) == value
    assert parse_number(hex(value)) == value


def test_ok_reply_with_keys() -> None:
    reply = parse_reply("@17 ok va=0x40001000 size=100 ram=0x40000000+0x10000000")
    assert reply is not None and reply.ok and reply.tag == 17
    assert reply.number("va") == 0x40001000
    assert reply.number("size") == 100
    assert reply.span("ram") == (0x40000000, 0x10000000)
    assert reply.to_json() == {
        "tag": 17,
        "status": "ok",
        "error": None,
        "text": "",
        "keys": {"va": 0x40001000, "size": 100, "ram": "0x40000000+0x10000000"},
    }


def test_err_reply_keys_then_text() -> None:
    reply = parse_reply(
        "@3 err kIOReturnNotReadable esr=0x96000007 far=0x0 fault=translation level=3 oops x=1"
    )
    assert reply is not None and not reply.ok
    assert reply.error == "kIOReturnNotReadable"
    assert reply.keys == {"esr": "0x96000007", "far": "0x0", "fault": "translation", "level": "3"}
    assert reply.text == "oops x=1"


def test_untagged_reply_and_non_replies() -> None:
    reply = parse_reply("err kIOReturnBadArgument bad tag")
    assert reply is not None and reply.tag is None and reply.text == "bad tag"
    assert parse_reply("@1 hello") is None
    assert parse_reply("! panic boom") is None
    assert parse_reply("err notacode") is None
    assert parse_reply("") is None


def test_reply_number_errors_name_the_key() -> None:
    reply = parse_reply("ok name=abc")
    assert reply is not None
    with pytest.raises(ValueError, match="name"):
        reply.number("name")
    with pytest.raises(KeyError, match="missing"):
        reply.value("missing")


def test_banner() -> None:
    banner = parse_banner("iomem ready proto=1 build=ABCDEF01 page=16384 ram=0x40000000+0x10000000")
    assert banner is not None
    assert (banner.proto, banner.build, banner.page) == (1, "abcdef01", 16384)
    assert (banner.ram_base, banner.ram_size) == (0x40000000, 0x10000000)
    assert parse_banner("iomem ready proto=1") is None
    assert parse_banner("ok proto=1") is None


def test_events() -> None:
    event = parse_event("! panic data abort esr=0x96000045 far=0x1000 elr=0x40200010")
    assert event is not None and event.kind == "panic"
    assert event.keys["esr"] == "0x96000045"
    assert parse_event("ok") is None


def test_prompt_stripping() -> None:
    assert strip_prompt("iomem> iomem> @1 ok") == "@1 ok"
    assert strip_prompt("ok") == "ok"


@pytest.mark.parametrize("line", ["", "   ", "a\nb", "caf\u00e9", "bell\x07", "@5 hello", "x" * 1020])
def test_bad_requests_rejected_before_sending(line: str) -> None:
    with pytest.raises(ValueError):
        check_request(line)


def test_request_format() -> None:
    assert check_request("  peek 0x10  ") == "peek 0x10"
    assert format_request(7, "hello") == b"@7 hello\n"
    with pytest.raises(ValueError):
        format_request(2**32, "hello")
