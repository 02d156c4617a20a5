"""The serial protocol, version 1, as pure functions: request formatting, reply, banner and
event parsing, and the number grammar. No I/O here, so ``tests/host`` covers all of it.

See ``../shared/spec/protocol.md`` and ``docs/protocol-notes.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.errors import InvalidInput, NotFound

PROTO_VERSION = 1
PROMPT = "iomem> "
BANNER_PREFIX = "iomem ready "
MAX_LINE = 1024
MAX_DATA = 4096
MAX_TAG = 0xFFFF_FFFF

_DEC = re.compile(r"^[0-9]+$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]+$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$")
_TAGGED = re.compile(r"^@([0-9]{1,10}) (.*)$")


def parse_number(text: str) -> int:
    """Parse a protocol number (decimal, or 0x hex), up to 64 bits; :class:`~harness.errors.InvalidInput`
    (a ``ValueError``) otherwise.

    Mirrors the firmware's rules: no sign, no spaces, no empty ``0x``, no value above 2^64-1.
    """
    if _DEC.match(text):
        value = int(text, 10)
    elif _HEX.match(text):
        value = int(text, 16)
    else:
        raise InvalidInput(f"bad number {text!r}")
    if value > 0xFFFF_FFFF_FFFF_FFFF:
        raise InvalidInput(f"bad number {text!r}: above 2^64-1")
    return value


def try_number(text: str) -> int | None:
    try:
        return parse_number(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Reply:
    """One reply line: ``[@TAG ](ok|err NAME) [key=value ...] [text]``."""

    status: str
    tag: int | None = None
    error: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    text: str = ""
    line: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def value(self, key: str) -> str:
        try:
            return self.keys[key]
        except KeyError:
            raise NotFound(f"reply has no key {key!r}: {self.line!r}") from None

    def number(self, key: str) -> int:
        """The value of ``key`` as a number (decimal or hex, per the protocol)."""
        raw = self.value(key)
        try:
            return parse_number(raw)
        except ValueError:
            raise InvalidInput(f"key {key!r} is not a number in {self.line!r}") from None

    def span(self, key: str) -> tuple[int, int]:
        """A ``BASE+LEN`` value as (base, length)."""
        base, sep, length = self.value(key).partition("+")
        if not sep:
            raise InvalidInput(f"key {key!r} is not BASE+LEN in {self.line!r}")
        return parse_number(base), parse_number(length)

    def parsed_keys(self) -> dict[str, object]:
        """Keys with numbers already parsed (for ``--json``); other values stay strings."""
        out: dict[str, object] = {}
        for key, raw in self.keys.items():
            number = try_number(raw)
            out[key] = number if number is not None else raw
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "status": self.status,
            "error": self.error,
            "keys": self.parsed_keys(),
            "text": self.text,
        }


@dataclass(frozen=True)
class Banner:
    proto: int
    build: str
    page: int
    ram_base: int
    ram_size: int
    line: str


@dataclass(frozen=True)
class Event:
    """An unsolicited ``!`` line: ``kind`` is its first word (``panic``, ``fault``...)."""

    kind: str
    text: str
    keys: dict[str, str]
    line: str


def strip_prompt(line: str) -> str:
    """Remove prompts that precede a line's content (the prompt has no newline of its own)."""
    while line.startswith(PROMPT):
        line = line[len(PROMPT) :]
    return line


def split_keys(words: list[str]) -> tuple[dict[str, str], str]:
    """Leading ``key=value`` words as a dict, and the rest of the line as free text."""
    keys: dict[str, str] = {}
    for index, word in enumerate(words):
        match = _KEY.match(word)
        if not match:
            return keys, " ".join(words[index:])
        keys[match.group(1)] = match.group(2)
    return keys, ""


def parse_reply(line: str) -> Reply | None:
    """Parse a reply line; None if the line is not a reply (an echo, an event, noise)."""
    body = line
    tag: int | None = None
    tagged = _TAGGED.match(line)
    if tagged:
        tag = int(tagged.group(1))
        body = tagged.group(2)
    words = body.split()
    if not words or words[0] not in ("ok", "err"):
        return None
    if words[0] == "ok":
        keys, text = split_keys(words[1:])
        return Reply(status="ok", tag=tag, keys=keys, text=text, line=line)
    if len(words) < 2 or not words[1].startswith("kIOReturn"):
        return None
    keys, text = split_keys(words[2:])
    return Reply(status="err", tag=tag, error=words[1], keys=keys, text=text, line=line)


def parse_banner(line: str) -> Banner | None:
    if not line.startswith(BANNER_PREFIX):
        return None
    keys, _ = split_keys(line[len(BANNER_PREFIX) :].split())
    try:
        base, _, size = keys["ram"].partition("+")
        return Banner(
            proto=parse_number(keys["proto"]),
            build=keys["build"].lower(),
            page=parse_number(keys["page"]),
            ram_base=parse_number(base),
            ram_size=parse_number(size),
            line=line,
        )
    except (KeyError, ValueError):
        return None


def parse_event(line: str) -> Event | None:
    if not line.startswith("!"):
        return None
    words = line[1:].split()
    if not words:
        return Event(kind="", text="", keys={}, line=line)
    keys = {m.group(1): m.group(2) for w in words[1:] if (m := _KEY.match(w))}
    return Event(kind=words[0], text=" ".join(words[1:]), keys=keys, line=line)


def check_request(line: str) -> str:
    """Validate a request line a person or script typed; returns it or raises InvalidInput (a ``ValueError``).

    The harness tags every request itself, so a line may not carry its own tag.
    """
    if not line.strip():
        raise InvalidInput("empty request")
    if "\n" in line or "\r" in line:
        raise InvalidInput("a request is one line")
    bad = next((c for c in line if not (" " <= c <= "~")), None)
    if bad is not None:
        raise InvalidInput(f"non-ASCII or control character {bad!r} in request")
    if line.lstrip().startswith("@"):
        raise InvalidInput("requests are tagged by the harness; leave out the '@TAG'")
    if len(line) + 12 > MAX_LINE:
        raise InvalidInput(f"request longer than {MAX_LINE - 12} bytes")
    return line.strip()


def format_request(tag: int, line: str) -> bytes:
    if not 0 <= tag <= MAX_TAG:
        raise InvalidInput(f"tag {tag} out of range")
    return f"@{tag} {line}\n".encode("ascii")
