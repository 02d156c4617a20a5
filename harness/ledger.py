"""The claims ledger: which claims of the guest a run really compared against an oracle.

Every reply key of the protocol is described in the firmware's verb table
(:mod:`harness.link.describe`) and annotated in ``harness/link/claims.toml``: a *fact*
(an address, a translation, a length, heap state, data, an error...) with the oracles that
can check it, or *not a fact* (a handle, an echo of the request, a description). A
comparison helper that checks a fact calls :func:`checked` (or :func:`compare`, which
compares and records); a value that is only read is not recorded.

Recording is per test: the pytest plugin opens a record before each test
(:func:`begin`), takes it after (:func:`end`) and ships it on the test's report as a user
property, so the totals are exact under pytest-xdist. At the end it prints the claims
table and writes ``build/claims.json`` (:func:`table`, :func:`write_json`).

Ledger keys: an ok key is its name (``va``), an err key ``err.NAME``, and :data:`ERROR`
(``err``) stands for the error code of an err reply checked against a model or the spec.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput, OracleMismatch
from harness.link.describe import Description

CLAIMS_PATH = Path(__file__).resolve().parent / "link" / "claims.toml"
ERROR = "err"
STATED = "stated"  # not an oracle: the key appeared in a reply

ORACLES = {
    "ram": "guest RAM read from the host (shared RAM file)",
    "walker": "the host page walker over guest RAM (CPU's translation regime)",
    "gva2gpa": "QEMU's own gva2gpa",
    "gdbstub": "registers read through QEMU's gdbstub",
    "elf": "the firmware ELF and its DWARF",
    "heap-decoder": "the host decoder of the allocators' state in guest RAM",
    "model": "a reference model of the spec (harness/models)",
    "spec": "the spec's tables and constants",
    "profile": "the machine profile QEMU was started with",
    "smmu": "the host SMMU walker",
    "trace": "QEMU's trace",
    "edu": "the edu device's bytes",
}
FACT_KINDS = (
    "address",
    "translation",
    "attributes",
    "length",
    "count",
    "heap",
    "data",
    "error",
    "identity",
    "register",
)


@dataclass(frozen=True)
class Claim:
    verb: str
    key: str  # ledger key: "va", "err.esr"
    kind: str | None  # None: not a fact
    oracles: tuple[str, ...]
    reason: str = ""

    @property
    def fact(self) -> bool:
        return self.kind is not None


def load_claims(path: Path = CLAIMS_PATH) -> dict[str, dict[str, Claim]]:
    """claims.toml as verb -> ledger key -> :class:`Claim`; raises InvalidInput on a bad entry."""
    raw = tomllib.loads(path.read_text())
    out: dict[str, dict[str, Claim]] = {}
    for verb, table in raw.items():
        keys: dict[str, Claim] = {}
        for name, value in table.items():
            if isinstance(value, dict) and name == "err":
                for err_name, err_value in value.items():
                    keys[f"err.{err_name}"] = _claim(verb, f"err.{err_name}", err_value)
            else:
                keys[name] = _claim(verb, name, value)
        out[verb] = keys
    return out


def _claim(verb: str, key: str, value: object) -> Claim:
    if not isinstance(value, str) or ":" not in value:
        raise InvalidInput(f"claims.toml: {verb} {key}: want 'KIND: oracles' or 'not-a-fact: why'")
    kind, _, rest = (p.strip() for p in value.partition(":"))
    if kind == "not-a-fact":
        return Claim(verb, key, None, (), rest)
    oracles = tuple(o.strip() for o in rest.split(",") if o.strip())
    if kind not in FACT_KINDS:
        raise InvalidInput(f"claims.toml: {verb} {key}: unknown kind {kind!r} (one of {FACT_KINDS})")
    bad = [o for o in oracles if o not in ORACLES]
    if bad or not oracles:
        raise InvalidInput(
            f"claims.toml: {verb} {key}: unknown or no oracle {bad} (one of {sorted(ORACLES)})"
        )
    return Claim(verb, key, kind, oracles)


def ledger_keys(description: Description, verb: str) -> list[str]:
    """The ledger keys of a verb of the table: ok keys, then ``err.KEY``."""
    v = description.verbs[verb]
    return [k.name for k in v.replies] + [f"err.{k.name}" for k in v.errors]


def drift(description: Description, claims: Mapping[str, Mapping[str, Claim]]) -> list[str]:
    """Where the firmware's table and claims.toml disagree (empty when they match)."""
    problems: list[str] = []
    for verb in sorted(set(description.verbs) | set(claims)):
        if verb not in claims:
            problems.append(f"verb {verb!r} is in the firmware's table but not in claims.toml")
            continue
        if verb not in description.verbs:
            problems.append(f"verb {verb!r} is in claims.toml but not in the firmware's table")
            continue
        if not description.verbs[verb].declared:
            problems.append(f"verb {verb!r} declares no reply keys in its AGENT_COMMAND (agent.h)")
        table = ledger_keys(description, verb)
        for key in table:
            if key not in claims[verb]:
                problems.append(f"{verb!r} key {key!r} is in the firmware's table but not in claims.toml")
        for key in claims[verb]:
            if key not in table:
                problems.append(f"{verb!r} key {key!r} is in claims.toml but not in the firmware's table")
    return problems


# ---------------------------------------------------------------- recording
Record = tuple[str, str, str]  # (verb, ledger key, oracle)
_current: set[Record] | None = None


def begin() -> None:
    """Start recording (the plugin calls this before each test)."""
    global _current
    _current = set()


def end() -> list[Record]:
    """Stop recording; what was checked since :func:`begin`."""
    global _current
    got, _current = _current or set(), None
    return sorted(got)


def checked(verb: str, key: str, oracle: str) -> None:
    """Record that claim (verb, key) was compared against ``oracle`` (and agreed)."""
    if oracle not in ORACLES:
        raise InvalidInput(f"unknown oracle {oracle!r} (one of {sorted(ORACLES)})")
    if _current is not None:
        _current.add((verb, key, oracle))


def stated(verb: str, key: str) -> None:
    """Record that a reply stated (verb, key): the table asks for a check wherever one was."""
    if _current is not None:
        _current.add((verb, key, STATED))


def undeclared(verb: str, key: str) -> None:
    """Record a reply key that the firmware's table does not declare for ``verb``."""
    if _current is not None:
        _current.add((verb, key, "undeclared"))


def compare(verb: str, key: str, claimed: object, truth: object, oracle: str, *, what: str = "") -> None:
    """Assert that the guest's claim equals the oracle's value, and record the check."""
    if claimed != truth:
        raise OracleMismatch(
            f"{verb} {key}{' (' + what + ')' if what else ''}: "
            f"the guest says {claimed!r}, {oracle} says {truth!r}",
            {"guest": claimed, oracle: truth},
        )
    checked(verb, key, oracle)


def encode(records: Iterable[Record]) -> str:
    """Records as one user-property string (``verb|key|oracle;...``)."""
    return ";".join("|".join(r) for r in records)


def decode(text: str) -> list[Record]:
    out: list[Record] = []
    for item in text.split(";"):
        parts = item.split("|")
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
    return out


# ---------------------------------------------------------------- the table
def table(
    description: Description,
    claims: Mapping[str, Mapping[str, Claim]],
    by_profile: Mapping[str, Iterable[Record]],
) -> dict[str, Any]:
    """The claims figure: per verb, fact keys and those checked on every profile of the run
    whose replies stated them (a key only some profiles have, such as the SMMU's, counts on those).

    ``{"profiles": [...], "verbs": {VERB: {"facts": N, "checked": M, "unchecked": [KEY...],
    "error_checked": bool}}, "total": {...}, "undeclared": [...]}``
    """
    profiles = sorted(by_profile)
    by_profile = {p: list(recs) for p, recs in by_profile.items()}
    seen = {
        p: {(v, k) for v, k, o in recs if o not in (STATED, "undeclared")} for p, recs in by_profile.items()
    }
    stated_on = {p: {(v, k) for v, k, o in recs if o == STATED} for p, recs in by_profile.items()}
    verbs: dict[str, object] = {}
    facts_total = checked_total = 0
    for verb in sorted(description.verbs):
        annotated = claims.get(verb, {})
        keys = [k for k in ledger_keys(description, verb) if (c := annotated.get(k)) is None or c.fact]
        done = [k for k in keys if _checked_everywhere(verb, k, profiles, seen, stated_on)]
        unchecked = [k for k in keys if k not in done]
        errors = any((verb, ERROR) in seen[p] for p in profiles)
        verbs[verb] = {
            "facts": len(keys),
            "checked": len(done),
            "unchecked": unchecked,
            "error_checked": errors,
        }
        facts_total += len(keys)
        checked_total += len(done)
    undeclared = sorted({f"{v} {k}" for recs in by_profile.values() for v, k, o in recs if o == "undeclared"})
    return {
        "profiles": profiles,
        "verbs": verbs,
        "total": {"facts": facts_total, "checked": checked_total},
        "undeclared": undeclared,
    }


def _checked_everywhere(
    verb: str,
    key: str,
    profiles: list[str],
    seen: Mapping[str, set[tuple[str, str]]],
    stated_on: Mapping[str, set[tuple[str, str]]],
) -> bool:
    """Checked on every profile whose replies stated the key (a profile that recorded no
    statements at all counts as stating everything), and on at least one."""
    where = [p for p in profiles if not stated_on[p] or (verb, key) in stated_on[p] | seen[p]]
    return bool(where) and all((verb, key) in seen[p] for p in where)


def format_table(figure: Mapping[str, Any]) -> list[str]:
    verbs: dict[str, Any] = figure["verbs"]
    total: dict[str, int] = figure["total"]
    lines = [f"{'verb':<14} {'facts':>5} {'checked':>7} {'err':>3}  unchecked"]
    for verb, row in verbs.items():
        lines.append(
            f"{verb:<14} {row['facts']:>5} {row['checked']:>7} {'yes' if row['error_checked'] else 'no':>3}  "
            + " ".join(row["unchecked"])
        )
    facts, done = total["facts"], total["checked"]
    percent = 100.0 * done / facts if facts else 100.0
    no_error = [v for v, row in verbs.items() if not row["error_checked"]]
    lines.append(
        f"facts checked: {done}/{facts} ({percent:.1f} %) on every profile of {figure['profiles']}; "
        f"verbs with no error reply checked: {len(no_error)}"
    )
    undeclared: list[str] = figure.get("undeclared") or []
    if undeclared:
        lines.append("reply keys the firmware's table does not declare: " + ", ".join(undeclared))
    return lines


def write_json(figure: Mapping[str, object], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figure, indent=2) + "\n")


# ---------------------------------------------------------------- the README's table
README_BEGIN = "<!-- claims table: generated from harness/link/claims.toml (python -m harness.ledger) -->"
README_END = "<!-- end of claims table -->"
SHORT = {
    "ram": "guest RAM",
    "walker": "page walker",
    "gva2gpa": "QEMU gva2gpa",
    "gdbstub": "gdbstub registers",
    "elf": "ELF/DWARF",
    "heap-decoder": "heap decoder",
    "model": "reference model",
    "spec": "spec table",
    "profile": "machine profile",
    "smmu": "SMMU walker",
    "trace": "QEMU trace",
    "edu": "edu bytes",
}


def readme_table(description: Description, claims: Mapping[str, Mapping[str, Claim]]) -> str:
    """The README's "what the tests check" table, one row per verb, from the annotations."""
    rows = [
        README_BEGIN,
        "| verb | facts it states (reply keys) | checked against | not facts |",
        "|---|---|---|---|",
    ]
    for verb in sorted(description.verbs):
        annotated = claims.get(verb, {})
        keys = ledger_keys(description, verb)
        facts = [k for k in keys if (c := annotated.get(k)) is not None and c.fact]
        others = [k for k in keys if (c := annotated.get(k)) is not None and not c.fact]
        oracles: list[str] = []
        for k in facts:
            for o in annotated[k].oracles:
                if SHORT[o] not in oracles:
                    oracles.append(SHORT[o])
        shown = " ".join(f"`{k}`" for k in facts) or "-"
        rest = " ".join(f"`{k}`" for k in others) or "-"
        rows.append(f"| `{verb}` | {shown} | {', '.join(oracles) or '-'} | {rest} |")
    rows.append(README_END)
    return "\n".join(rows)


def main() -> None:
    from harness.image.build import ensure_firmware
    from harness.link.describe import from_elf

    print(readme_table(from_elf(ensure_firmware()), load_claims()))


if __name__ == "__main__":
    main()
