"""The protocol's description, from the firmware's own verb table (one source).

Every ``AGENT_COMMAND`` in ``firmware/agent/`` names its usage and its reply keys
(``agent/agent.h``); ``AGENT_STATS`` hooks name the ``stats`` keys they add. The table is
read here two ways, which must agree:

* from the ELF (:func:`from_elf`): the linker sections ``agent_commands`` and
  ``agent_stats``, their string pointers resolved in the image; no guest needed;
* from a running guest (:func:`from_guest`): ``help`` and ``help VERB [SUB]``, which print
  the same table (and the values of placeholders such as ``MODE``, the cache modes).

:mod:`harness.ledger` joins it with ``claims.toml`` (what each key states and which oracle
checks it); the console completes from it; ``tests/host/test_claims.py`` fails when a verb
or key exists on one side only.

Key notation (``agent.h``): ``[k]`` a key that is not always there, ``seg<N>`` a family of
keys with a decimal index, ``<PLACEHOLDER>`` keys named after the placeholders of the usage.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.errors import NotFound, ProtocolError

COMMAND_SECTION = "agent_commands"
STATS_SECTION = "agent_stats"
COMMAND_SIZE = 40  # struct agent_command: name, usage, handler, replies, errors (5 pointers)
STATS_SIZE = 16  # struct agent_stats_hook: fn, keys


@dataclass(frozen=True)
class Key:
    """One reply key as the table declares it."""

    name: str  # "value", "seg<N>", "<PLACEHOLDER>"
    optional: bool = False

    @classmethod
    def parse(cls, word: str) -> Key:
        if word.startswith("[") and word.endswith("]"):
            return cls(word[1:-1], True)
        return cls(word)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """What reply key names this declared key covers (built once: every reply's keys are
        matched against it)."""
        parts = re.split(r"(<[A-Za-z]+>)", self.name)
        regex = "".join(
            ("[0-9]+" if p == "<N>" else "[A-Z][A-Z0-9_]*") if p.startswith("<") else re.escape(p)
            for p in parts
        )
        return re.compile(f"^{regex}$")

    def __str__(self) -> str:
        return f"[{self.name}]" if self.optional else self.name


@dataclass(frozen=True)
class Arg:
    """One word of a usage string: a positional (``VA``), a key (``cache=MODE``) or a flag (``ro``)."""

    kind: str  # "positional", "key", "flag"
    name: str  # "VA", "cache", "ro"
    value: str | None  # for a key: its placeholder ("MODE"); "ro|rw|rx" lists choices inline
    optional: bool

    @property
    def choices_inline(self) -> tuple[str, ...]:
        return tuple(self.value.split("|")) if self.value and "|" in self.value else ()


def parse_usage(usage: str) -> tuple[Arg, ...]:
    out: list[Arg] = []
    for word in usage.split():
        optional = word.startswith("[") and word.endswith("]")
        if optional:
            word = word[1:-1]
        name, eq, value = word.partition("=")
        if eq:
            out.append(Arg("key", name, value, optional))
        elif word[:1].isupper():
            out.append(Arg("positional", word, None, optional))
        else:
            out.append(Arg("flag", word, None, True))
    return tuple(out)


@dataclass(frozen=True)
class Verb:
    """One entry of the verb table: ``name`` is ``"peek"`` or ``"md map"`` for a family member."""

    name: str
    usage: str
    replies: tuple[Key, ...]
    errors: tuple[Key, ...]
    declared: bool = True  # False: the C entry names no reply keys (agent.h: NULL)

    @property
    def family(self) -> str | None:
        word, space, _ = self.name.partition(" ")
        return word if space else None

    @property
    def args(self) -> tuple[Arg, ...]:
        return parse_usage(self.usage)

    def reply_key(self, name: str, *, error: bool = False) -> Key | None:
        """The declared key that covers reply key ``name``, or None."""
        for key in self.errors if error else self.replies:
            if key.pattern.match(name):
                return key
        return None


@dataclass(frozen=True)
class Description:
    """The whole verb table, by verb name."""

    verbs: dict[str, Verb]
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # from a live guest only

    @property
    def families(self) -> set[str]:
        return {v.family for v in self.verbs.values() if v.family}

    def first_words(self) -> list[str]:
        return sorted({name.split()[0] for name in self.verbs})

    def subverbs(self, family: str) -> list[str]:
        return sorted(n.split()[1] for n, v in self.verbs.items() if v.family == family)

    def verb_of(self, line: str) -> str | None:
        """The verb a request line calls (``md map 0x3 ro`` -> ``md map``), if the table has it."""
        words = line.split()
        if not words:
            return None
        if words[0] in self.verbs:
            return words[0]
        if len(words) > 1 and f"{words[0]} {words[1]}" in self.verbs:
            return f"{words[0]} {words[1]}"
        return None


def _keys(text: str | None) -> tuple[Key, ...]:
    return tuple(Key.parse(w) for w in (text or "").replace(",", " ").split())


# ---------------------------------------------------------------- from the ELF
def _reader(path: Path) -> tuple[Callable[[int], str], dict[str, bytes]]:
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as handle:
        elf = ELFFile(handle)
        loaded: list[tuple[int, bytes]] = []
        wanted: dict[str, bytes] = {}
        for section in elf.iter_sections():
            if section["sh_type"] == "SHT_NOBITS" or not section["sh_addr"]:
                continue
            data = section.data()
            loaded.append((int(section["sh_addr"]), data))
            if section.name in (COMMAND_SECTION, STATS_SECTION):
                wanted[section.name] = data

    def string(address: int) -> str:
        for base, data in loaded:
            if base <= address < base + len(data):
                end = data.index(b"\0", address - base)
                return data[address - base : end].decode("ascii")
        raise NotFound(f"string at {address:#x} is not in any loaded section of {path}")

    return string, wanted


@functools.cache
def _from_elf(path: Path, mtime: float) -> Description:
    string, sections = _reader(path)
    if COMMAND_SECTION not in sections:
        raise NotFound(f"{path} has no {COMMAND_SECTION} section")
    verbs: dict[str, Verb] = {}
    stats_keys: list[Key] = []
    data = sections.get(STATS_SECTION, b"")
    for offset in range(0, len(data), STATS_SIZE):
        _fn, keys = struct.unpack_from("<QQ", data, offset)
        stats_keys += _keys(string(keys)) if keys else [Key("<undeclared stats hook>")]
    data = sections[COMMAND_SECTION]
    for offset in range(0, len(data), COMMAND_SIZE):
        name, usage, _handler, replies, errors = struct.unpack_from("<5Q", data, offset)
        verb_name = string(name)
        reply_keys = _keys(string(replies)) if replies else ()
        if verb_name == "stats":
            reply_keys += tuple(stats_keys)
        verbs[verb_name] = Verb(
            verb_name,
            string(usage),
            reply_keys,
            _keys(string(errors)) if errors else (),
            declared=bool(replies) and bool(errors),
        )
    return Description(dict(sorted(verbs.items())))


def from_elf(path: Path) -> Description:
    """The verb table of a firmware ELF (cached per path and modification time)."""
    path = Path(path).resolve()
    return _from_elf(path, path.stat().st_mtime)


# ---------------------------------------------------------------- from a running guest
def from_guest(request: Callable[[str], object]) -> Description:
    """The verb table as a running guest's ``help`` prints it. ``request(line)`` returns a
    :class:`~harness.link.protocol.Reply` (any object with ``ok``, ``keys``, ``line``)."""
    from harness.link.protocol import Reply

    def ask(line: str) -> Reply:
        reply = request(line)
        if not isinstance(reply, Reply) or not reply.ok:
            raise ProtocolError(f"{line!r} failed: {getattr(reply, 'line', reply)!r}", command=line)
        return reply

    verbs: dict[str, Verb] = {}
    choices: dict[str, tuple[str, ...]] = {}

    def describe(reply: Reply, name: str) -> None:
        verbs[name] = Verb(
            name,
            reply.keys.get("usage", "").replace(",", " "),
            _keys(reply.keys.get("keys")),
            _keys(reply.keys.get("errkeys")),
        )
        for key, value in reply.keys.items():
            if key.isupper():
                choices[key] = tuple(v for v in value.split(",") if v)

    for word in ask("help").value("verbs").split(","):
        top = ask(f"help {word}")
        if "subverbs" in top.keys:
            for sub in top.value("subverbs").split(","):
                describe(ask(f"help {word} {sub}"), f"{word} {sub}")
        else:
            describe(top, word)
    return Description(dict(sorted(verbs.items())), choices)


def undeclared_keys(verb: Verb, keys: Iterable[str], *, error: bool = False) -> list[str]:
    """Reply keys the table does not declare for ``verb``."""
    return [k for k in keys if verb.reply_key(k, error=error) is None]
