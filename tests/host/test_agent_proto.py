"""The firmware's protocol code (firmware/agent/: number.c, grammar.c,
dispatch.c, reply.c, session.c) built for the host: the same source
the guest runs, tested in milliseconds, and differentially against the harness's parser."""

from __future__ import annotations

import ctypes
import zlib

import hostlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.link.protocol import parse_number, parse_reply


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    library = hostlib.load()
    library.agent_parse_u64.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]
    library.agent_parse_u64.restype = ctypes.c_int
    library.agent_host_reply.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    library.agent_host_reply.restype = ctypes.c_size_t
    library.agent_host_transcript.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    library.agent_host_transcript.restype = ctypes.c_size_t
    return library


def firmware_number(lib: ctypes.CDLL, text: bytes) -> int | None:
    out = ctypes.c_uint64()
    return out.value if lib.agent_parse_u64(text, ctypes.byref(out)) else None


def harness_number(text: bytes) -> int | None:
    try:
        return parse_number(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def reply(lib: ctypes.CDLL, line: bytes) -> str:
    out = ctypes.create_string_buffer(16384)
    lib.agent_host_reply(line, out, len(out))
    return out.value.decode("ascii")


def transcript(lib: ctypes.CDLL, data: bytes) -> str:
    out = ctypes.create_string_buffer(65536)
    lib.agent_host_transcript(data, len(data), out, len(out))
    return out.value.decode("ascii", errors="replace")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"007", 7),
        (b"0x1F", 31),
        (b"0Xff", 255),
        (b"18446744073709551615", 2**64 - 1),
        (b"0xffffffffffffffff", 2**64 - 1),
        (b"", None),
        (b"-1", None),
        (b"+1", None),
        (b"0x", None),
        (b"1 2", None),
        (b"18446744073709551616", None),
        (b"0x10000000000000000", None),
        (b"12a", None),
        (b" 1", None),
        (b"0b1", None),
    ],
)
def test_firmware_numbers(lib: ctypes.CDLL, text: bytes, value: int | None) -> None:
    assert firmware_number(lib, text) == value


@given(
    st.one_of(
        st.integers(min_value=0, max_value=2**70).map(lambda n: str(n).encode()),
        st.integers(min_value=0, max_value=2**70).map(lambda n: hex(n).encode()),
        st.text(alphabet="0123456789abcdefxX+- ", max_size=24).map(str.encode),
    )
)
def test_firmware_and_harness_parse_numbers_alike(lib: ctypes.CDLL, text: bytes) -> None:
    assert firmware_number(lib, text) == harness_number(text)


def test_grammar_through_the_firmware(lib: ctypes.CDLL) -> None:
    ok = parse_reply(reply(lib, b"@12 t-args 0x10 7 num=3 name=abc flag"))
    assert ok is not None and ok.ok and ok.tag == 12
    assert (
        ok.keys == {"a": "0x10", "b": "0x7", "num": "0x3", "name": "abc", "flag": "1"} or ok.number("a") == 16
    )
    cases = {
        b"@1 t-args": "kIOReturnBadArgument",  # missing positional
        b"@2 t-args 1 2 3": "kIOReturnBadArgument",  # extra positional
        b"@3 t-args 1 colour=red": "kIOReturnBadArgument",  # unknown key
        b"@4 t-args 1 num=1 num=2": "kIOReturnBadArgument",  # repeated key
        b"@5 t-args num=1 1": "kIOReturnBadArgument",  # positional after a key
        b"@6 t-args zz": "kIOReturnBadArgument",  # bad number
        b"@7 nosuchverb": "kIOReturnUnsupported",
        b"@8 t-fam three": "kIOReturnUnsupported",
        b"@9": "kIOReturnBadArgument",  # tag without verb
    }
    for line, error in cases.items():
        got = parse_reply(reply(lib, line))
        assert got is not None and got.error == error, (line, got)
        assert got.tag == int(line.split()[0][1:]), line
    bad_tag = parse_reply(reply(lib, b"@12345678901 t-fam one"))
    assert bad_tag is not None and bad_tag.error == "kIOReturnBadArgument" and bad_tag.tag is None


def test_data_replies_carry_a_matching_crc(lib: ctypes.CDLL) -> None:
    got = parse_reply(reply(lib, b"t-data 300"))
    assert got is not None
    data = bytes.fromhex(got.value("data"))
    assert data == bytes(i & 0xFF for i in range(300))
    assert got.number("crc32") == zlib.crc32(data) and got.number("len") == 300


def test_line_editing_and_limits(lib: ctypes.CDLL) -> None:
    out = transcript(lib, b"@1 t-fam onX\x7fe\n")
    assert "\b \b" in out and "@1 ok sub=one" in out
    out = transcript(lib, b"@2 t-fam " + b"x" * 2000 + b"\n@3 t-fam two\n")
    assert "@2 err kIOReturnMessageTooLarge" in out and "@3 ok sub=two" in out
    out = transcript(lib, b"@4 t-f\xffam one\r\n")
    assert "@4 err kIOReturnBadArgument" in out and "0xff" in out.lower()
    out = transcript(lib, b"\n  \n@5 t-fam one\r\r\n")
    assert out.count(" ok ") + out.count(" ok\r") == 1 and "@5 ok sub=one" in out


def test_a_reply_can_be_cut_to_the_keys_asked_for(lib: ctypes.CDLL) -> None:
    """agent_reply_only (`stats keys=...`, `md info MD keys=...`): the keys named, in the verb's
    order whatever the order asked; an unknown or empty name is a bad argument, not an empty reply."""
    full = parse_reply(reply(lib, b"@1 t-only"))
    assert full is not None and full.ok and list(full.keys) == ["a", "b"]
    cut = parse_reply(reply(lib, b"@2 t-only keys=c,a"))
    assert cut is not None and cut.ok and list(cut.keys) == ["a", "c"] and cut.number("c") == 3
    one = parse_reply(reply(lib, b"@3 t-only keys=b"))
    assert one is not None and one.ok and list(one.keys) == ["b"]
    for line in (b"@4 t-only keys=d", b"@5 t-only keys=a,,b", b"@6 t-only keys=a,", b"@7 t-only keys=ab"):
        bad = parse_reply(reply(lib, line))
        assert bad is not None and bad.error == "kIOReturnBadArgument" and "unknown key" in bad.text, line
