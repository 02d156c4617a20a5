"""Tab completion and ``help`` display for the console, from the guest's own verb table
(:mod:`harness.link.describe`, read with ``help`` from the guest): verbs, subverbs, ``key=``
names, flag words, placeholder values (cache modes, directions, types...) and the live
handles the session was handed (``md=``, ``map=``, ``obj=`` of earlier replies). Nothing
here is a second list: a verb or key the firmware adds is completed at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from harness.link.describe import Arg, Description
from harness.link.protocol import Reply

# Positional placeholders that name a handle, and the reply keys that hand one out.
HANDLE_KINDS = {"MD": "md", "MAP": "map", "OBJ": "obj"}
_INDEXED = re.compile(r"^([A-Z]+)[0-9]*$")


class Completer:
    """Completion candidates for a partly typed request line."""

    def __init__(self, description: Description) -> None:
        self.description = description
        self.handles: dict[str, list[str]] = {kind: [] for kind in HANDLE_KINDS.values()}

    def observe(self, line: str, reply: Reply) -> None:
        """Learn the handles a reply hands out, and forget those a release freed."""
        if not reply.ok:
            return
        for kind, known in self.handles.items():
            value = reply.keys.get(kind)
            if value is not None and value not in known and value != "0x0":
                known.append(value)
        words = line.split()
        if len(words) >= 3 and words[1] == "release" and reply.keys.get("freed") == "1":
            known = self.handles.get(words[0], [])
            if words[2] in known:
                known.remove(words[2])

    def candidates(self, before: str, word: str) -> list[str]:
        """Completions of ``word``, the token being typed, after the text ``before`` it."""
        done = before.split()
        d = self.description
        if not done:
            return _starting(d.first_words(), word)
        if len(done) == 1 and done[0] in d.families:
            return _starting(d.subverbs(done[0]), word)
        if done[0] == "help":
            if len(done) == 1:
                return _starting(d.first_words(), word)
            if len(done) == 2 and done[1] in d.families:
                return _starting(d.subverbs(done[1]), word)
            return []
        verb = d.verb_of(" ".join(done))
        if verb is None:
            return []
        given = done[len(verb.split()) :]
        return self._arguments(d.verbs[verb].args, given, word)

    def _arguments(self, args: Iterable[Arg], given: list[str], word: str) -> list[str]:
        args = tuple(args)
        if "=" in word:  # a key's value
            name, _, partial = word.partition("=")
            for arg in args:
                if arg.kind == "key" and arg.name == name:
                    return [f"{name}={v}" for v in self._values(arg.value or "") if v.startswith(partial)]
            return []
        used_keys = {g.partition("=")[0] for g in given if "=" in g}
        out = [f"{a.name}=" for a in args if a.kind == "key" and a.name not in used_keys]
        out += [a.name for a in args if a.kind == "flag" and a.name not in given]
        positionals = [a for a in args if a.kind == "positional"]
        index = len(
            [g for g in given if "=" not in g and g not in {a.name for a in args if a.kind == "flag"}]
        )
        if index < len(positionals) and not used_keys:
            out = self._values(positionals[index].name) + out
        return _starting(out, word)

    def _values(self, placeholder: str) -> list[str]:
        if "|" in placeholder:
            return placeholder.split("|")
        match = _INDEXED.match(placeholder)
        base = match.group(1) if match else placeholder
        if base in HANDLE_KINDS:
            return list(self.handles[HANDLE_KINDS[base]])
        return list(self.description.choices.get(placeholder, ()))


def _starting(words: Iterable[str], prefix: str) -> list[str]:
    return sorted({w for w in words if w.startswith(prefix)})


def format_help(reply: Reply) -> str | None:
    """A ``help VERB [SUB]`` reply as a person reads it; None for other replies."""
    keys = reply.keys
    if not reply.ok or "usage" not in keys:
        if reply.ok and "subverbs" in keys:
            return f"{keys.get('verb', '')} " + "|".join(keys["subverbs"].split(",")) + " ..."
        return None
    name = " ".join(keys[k] for k in ("verb", "subverb") if k in keys)
    lines = [f"{name} {keys['usage'].replace(',', ' ')}".rstrip()]
    lines.append("  ok replies:  " + (keys.get("keys", "").replace(",", " ") or "(no keys)"))
    lines.append(
        "  err replies: the error code"
        + (", " + keys["errkeys"].replace(",", " ") if keys.get("errkeys") else "")
    )
    for key, value in keys.items():
        if key.isupper():
            lines.append(f"  {key}: {value.replace(',', ' ')}")
    return "\n".join(lines)
