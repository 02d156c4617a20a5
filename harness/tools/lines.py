"""The line filter in front of ``iomem exec`` and the console: what a line a person or a
script typed is (a guest request, a ``:`` harness command, or a line refused on the spot),
as pure functions so ``tests/host`` covers all of it.

A refused line gets a local ``err`` :class:`~harness.link.protocol.Reply` in the same shape
as a guest's (``err kIOReturnX by=harness <why>``): the session goes on. Messages quote at
most :data:`QUOTE` bytes of the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from harness.errors import InvalidInput
from harness.link.protocol import MAX_LINE, Reply, parse_reply

QUOTE = 60
MAX_REQUEST = MAX_LINE - 12  # room for "@4294967295 " and the newline


@dataclass(frozen=True)
class GuestRequest:
    line: str


@dataclass(frozen=True)
class HarnessCommand:
    name: str
    args: tuple[str, ...]
    line: str


@dataclass(frozen=True)
class Refused:
    reply: Reply


Line = GuestRequest | HarnessCommand | Refused


def quote(text: str | bytes, limit: int = QUOTE, *, length: int | None = None) -> str:
    """``text`` for an error message: printable, at most ``limit`` characters of it
    (``length``: the whole line's length when ``text`` is already a cut)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    total = len(text) if length is None else length
    shown = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[:limit])
    more = f"... ({total} bytes)" if total > limit else ""
    return f"'{shown}'{more}"


def local_reply(error: str | None, message: str = "", **keys: object) -> Reply:
    """A reply made by the harness, parsed exactly like a guest's."""
    words = ["ok"] if error is None else ["err", error, "by=harness"]
    words += [f"{k}={v}" for k, v in keys.items()]
    line = " ".join(words) + (f" {message}" if message else "")
    reply = parse_reply(line)
    if reply is None:  # pragma: no cover - the words above always parse
        raise InvalidInput(f"not a reply: {line!r}")
    return reply


def refuse(error: str, why: str, line: str | bytes, length: int | None = None) -> Refused:
    return Refused(local_reply(error, f"{why}: {quote(line, length=length)}"))


def classify(raw: str | bytes, *, overflow: int = 0) -> Line | None:
    """What one input line is; None for a blank line (no reply, as the guest does).

    ``raw`` is the line without its newline (a trailing CR is dropped: CRLF input is fine);
    bytes are taken as Latin-1 so that a non-ASCII byte is refused, never a crash.
    ``overflow`` is how many bytes of the line the reader already threw away.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if text.endswith("\r"):
        text = text[:-1]
    length = len(text) + overflow
    if length > MAX_REQUEST:
        return refuse(
            "kIOReturnMessageTooLarge", f"line of {length} bytes, the limit is {MAX_REQUEST}", text, length
        )
    bad = next((c for c in text if not (" " <= c <= "~" or c == "\t")), None)
    if bad is not None:
        return refuse("kIOReturnBadArgument", f"non-ASCII or control byte {ord(bad):#04x}", text)
    text = text.replace("\t", " ").strip()
    if not text:
        return None
    if text.startswith("@"):
        return refuse(
            "kIOReturnBadArgument", "requests are tagged by the harness; leave out the '@TAG'", text
        )
    if text.startswith(":"):
        words = text[1:].split()
        if not words:
            return refuse("kIOReturnBadArgument", "':' needs a harness command (:help lists them)", text)
        return HarnessCommand(words[0].lower(), tuple(words[1:]), text)
    return GuestRequest(text)


def bounded_lines(stream: BinaryIO, keep: int = MAX_REQUEST + 2) -> Iterator[tuple[bytes, int]]:
    """Lines of a byte stream without their newline, each as (first ``keep`` bytes, bytes
    dropped): a line of a gigabyte costs ``keep`` bytes of memory. A last line without a
    newline is still a line."""
    while True:
        head = stream.readline(keep)
        if not head:
            return
        dropped = 0
        if not head.endswith(b"\n"):
            while True:
                more = stream.readline(1 << 16)
                if not more:
                    break
                if more.endswith(b"\n"):
                    dropped += len(more) - 1
                    break
                dropped += len(more)
        else:
            head = head[:-1]
        yield head, dropped
