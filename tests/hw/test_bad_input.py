"""Bad input on the serial line: each gets the right error and the next request still works."""

from __future__ import annotations

import pytest

from harness.guest import Guest

pytestmark = pytest.mark.profiles("virt-4k")

BAD_REQUESTS = [
    ("frobnicate", "kIOReturnUnsupported"),
    ("echo sideways", "kIOReturnUnsupported"),
    ("peek", "kIOReturnBadArgument"),  # missing argument
    ("peek 0x40000000 8 9", "kIOReturnBadArgument"),  # extra argument
    ("peek 0x40000000 colour=red", "kIOReturnBadArgument"),  # unknown key
    ("peek width=8 0x40000000", "kIOReturnBadArgument"),  # positional after a key
    ("peek -1", "kIOReturnBadArgument"),
    ("peek +1", "kIOReturnBadArgument"),
    ("peek 0x", "kIOReturnBadArgument"),
    ("peek 12abc", "kIOReturnBadArgument"),
    ("peek 18446744073709551616", "kIOReturnBadArgument"),  # 2^64
    ("peek 0x10000000000000000", "kIOReturnBadArgument"),
    ("peek 1e3", "kIOReturnBadArgument"),
    ("fill 0x40000000 0x 1", "kIOReturnBadArgument"),
]


@pytest.mark.parametrize(("line", "error"), BAD_REQUESTS)
def test_bad_request_then_recovery(guest: Guest, line: str, error: str) -> None:
    reply = guest.err(line, error)
    assert reply.tag is not None
    assert guest.pagesize() == guest.info().page


def test_bad_numbers_are_never_zero(guest: Guest) -> None:
    """A bad number must not silently act as 0: fill at a bad address changes nothing at 0."""
    guest.err("crc junk 16", "kIOReturnBadArgument")
    guest.err("read 0x40000000 -5", "kIOReturnBadArgument")


def _raw(guest: Guest, data: bytes):  # type: ignore[no-untyped-def]
    assert guest.console is not None
    return guest.console.raw_exchange(data)


def test_overlong_line_is_discarded_and_sync_kept(guest: Guest) -> None:
    reply = _raw(guest, b"@77 read " + b"1" * 2000 + b"\n")
    assert reply.error == "kIOReturnMessageTooLarge"
    assert reply.tag == 77
    assert guest.pagesize() > 0


def test_line_of_exactly_1024_bytes_is_accepted(guest: Guest) -> None:
    line = b"@9 hello" + b" " * (1024 - len(b"@9 hello"))
    assert len(line) == 1024
    reply = _raw(guest, line + b"\n")
    assert reply.ok and reply.tag == 9
    reply = _raw(guest, line + b" \n")
    assert reply.error == "kIOReturnMessageTooLarge"


def test_garbage_bytes(guest: Guest) -> None:
    reply = _raw(guest, b"@5 pe\xffek 0x0\n")
    assert reply.error == "kIOReturnBadArgument" and "0xff" in reply.text.lower()
    reply = _raw(guest, b"\x00\x01\x02\x1b[A\n")
    assert reply.error == "kIOReturnBadArgument"
    assert guest.pagesize() > 0


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r\r\n"])
def test_cr_lf_mixes(guest: Guest, ending: bytes) -> None:
    reply = _raw(guest, b"@41 pagesize" + ending)
    assert reply.ok and reply.tag == 41
    assert reply.number("page") == guest.pagesize()


def test_cr_inside_a_line_is_ignored(guest: Guest) -> None:
    reply = _raw(guest, b"@42 page\rsize\n")
    assert reply.ok and reply.tag == 42


@pytest.mark.parametrize("tag", [b"@", b"@x", b"@12345678901", b"@4294967296", b"@-1"])
def test_bad_tags(guest: Guest, tag: bytes) -> None:
    reply = _raw(guest, tag + b" pagesize\n")
    assert reply.error == "kIOReturnBadArgument" and reply.tag is None
    assert guest.pagesize() > 0


def test_tag_without_verb(guest: Guest) -> None:
    reply = _raw(guest, b"@8\n")
    assert reply.error == "kIOReturnBadArgument" and reply.tag == 8


def test_largest_tag(guest: Guest) -> None:
    reply = _raw(guest, b"@4294967295 pagesize\n")
    assert reply.ok and reply.tag == 4294967295


def test_empty_lines_get_no_reply(guest: Guest) -> None:
    assert guest.console is not None
    guest.console.send_raw(b"\n   \n\r\n")
    reply = _raw(guest, b"@50 pagesize\n")
    assert reply.ok and reply.tag == 50


def test_untagged_request(guest: Guest) -> None:
    reply = _raw(guest, b"pagesize\n")
    assert reply.ok and reply.tag is None


def test_echo_and_backspace(guest: Guest) -> None:
    """A person typing: echo on shows the characters, backspace erases one."""
    assert guest.console is not None
    console = guest.console
    assert guest.ok("echo on").number("echo") == 1
    console.send_raw(b"@60 pagesizX\x7fe\n")
    # The echo shows the typing, including the erase sequence, before the reply.
    reply = console.raw_exchange(b"")
    assert reply.ok and reply.tag == 60
    log = console.log_path.read_bytes()
    assert b"pagesizX\x08 \x08e" in log
    assert guest.ok("echo off").number("echo") == 0
