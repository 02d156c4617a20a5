"""The protocol's description is one source: the firmware's verb table (read from the ELF)
and harness/link/claims.toml name the same verbs and reply keys, and every key is annotated
(a fact with its oracles, or not a fact and why). Also the ledger's arithmetic."""

from __future__ import annotations

import ctypes
from dataclasses import replace
from pathlib import Path

import pytest
from hostlib import load

from harness import ledger
from harness.image.build import ensure_firmware
from harness.link.describe import Description, Key, from_elf, from_guest
from harness.link.protocol import parse_reply


@pytest.fixture(scope="module")
def description() -> Description:
    return from_elf(ensure_firmware())


def test_every_verb_and_key_of_the_firmware_is_annotated_and_no_other(description: Description) -> None:
    problems = ledger.drift(description, ledger.load_claims())
    assert not problems, "\n".join(problems)


def test_a_key_added_to_the_firmware_alone_is_caught(description: Description) -> None:
    peek = description.verbs["peek"]
    grown = Description({**description.verbs, "peek": replace(peek, replies=(*peek.replies, Key("width")))})
    assert ledger.drift(grown, ledger.load_claims()) == [
        "'peek' key 'width' is in the firmware's table but not in claims.toml"
    ]
    fewer = {v: k for v, k in description.verbs.items() if v != "quit"}
    assert ledger.drift(Description(fewer), ledger.load_claims()) == [
        "verb 'quit' is in claims.toml but not in the firmware's table"
    ]


def test_every_fact_names_a_known_oracle() -> None:
    for verb, keys in ledger.load_claims().items():
        for key, claim in keys.items():
            assert claim.fact or claim.reason, (verb, key)
            assert all(o in ledger.ORACLES for o in claim.oracles), (verb, key)


def test_the_table_counts_facts_checked_on_every_profile(description: Description) -> None:
    claims = ledger.load_claims()
    records = {
        "virt-4k": [("peek", "value", "ram"), ("peek", "err", "spec"), ("peek", "err.esr", "spec")],
        "virt-16k": [("peek", "value", "ram")],
    }
    figure = ledger.table(description, claims, records)
    peek = figure["verbs"]["peek"]  # type: ignore[index]
    assert peek == {
        "facts": 5,
        "checked": 1,
        "unchecked": ["err.esr", "err.far", "err.fault", "err.level"],
        "error_checked": True,  # on some profile
    }
    # A key a profile's replies never stated (an SMMU key on a machine without one) is not
    # asked of that profile; one it stated but did not check is unchecked.
    smmu = {
        "virt-4k": [("translate", "pa", "stated")],
        "virt-4k-smmu": [("translate", "pa", "stated"), ("translate", "pa", "walker")],
    }
    only_smmu = {
        "virt-4k": [("peek", "value", "stated"), ("peek", "value", "ram")],
        "virt-4k-smmu": smmu["virt-4k-smmu"],
    }
    assert "pa" not in ledger.table(description, claims, only_smmu)["verbs"]["translate"]["unchecked"]
    assert "pa" in ledger.table(description, claims, smmu)["verbs"]["translate"]["unchecked"]
    # not-a-fact keys are not counted: bmd create's md handle
    assert figure["verbs"]["bmd create"]["facts"] == 3  # type: ignore[index]
    lines = ledger.format_table(figure)
    assert any(line.startswith("peek ") and "err.esr" in line for line in lines)
    assert ledger.decode(ledger.encode(records["virt-4k"])) == records["virt-4k"]


def _host_reply(lib: ctypes.CDLL, line: str) -> str:
    out = ctypes.create_string_buffer(8192)
    lib.agent_host_reply(line.encode(), out, len(out))
    return out.value.decode()


def test_help_prints_the_same_table_the_elf_holds() -> None:
    """The host build's verbs through `help`, parsed as the console parses a guest's."""
    lib = load()
    lib.agent_host_reply.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]

    def request(line: str) -> object:
        return parse_reply(_host_reply(lib, line))

    described = from_guest(request)
    assert described.verbs["t-args"].usage == "A [B] [num=N] [name=S] [flag]"
    assert [str(k) for k in described.verbs["t-args"].replies] == ["a", "[b]", "[num]", "[name]", "[flag]"]
    assert [str(k) for k in described.verbs["t-fault"].errors] == ["esr", "far", "fault", "[level]"]
    assert described.subverbs("t-fam") == ["one", "two"]


def test_error_texts_name_the_valid_choices() -> None:
    lib = load()
    lib.agent_host_reply.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    assert _host_reply(lib, "t-fam 100") == (
        "err kIOReturnUnsupported unknown subverb '100' of 't-fam' (one,two)"
    )
    assert _host_reply(lib, "help t-fam three").endswith("unknown subverb 'three' of 't-fam' (one,two)")
    assert _host_reply(lib, "t-args 1 foo=2") == "err kIOReturnBadArgument unknown key 'foo' (num=,name=)"
    assert _host_reply(lib, "t-fault x=1").endswith("unknown key 'x' ('t-fault' takes no keys)")
    unknown = _host_reply(lib, "nosuch")
    assert unknown.startswith("err kIOReturnUnsupported unknown verb 'nosuch' (echo,help,t-args")


def test_the_readme_table_is_generated_from_the_annotations(description: Description) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    begin, end = readme.index(ledger.README_BEGIN), readme.index(ledger.README_END) + len(ledger.README_END)
    assert readme[begin:end] == ledger.readme_table(description, ledger.load_claims()), (
        "README.md's claims table is stale: paste the output of `python -m harness.ledger`"
    )


def test_a_fact_added_but_never_compared_shows_up_unchecked(description: Description) -> None:
    """A new fact key, annotated in claims.toml and stated by the guest but only read by the
    tests (no comparison helper recorded it), is listed unchecked in the figure and the
    printed table, on the profile that stated it; a key no reply ever stated counts too."""
    info = description.verbs["dma info"]
    grown = Description(
        {**description.verbs, "dma info": replace(info, replies=(*info.replies, Key("ats"), Key("pri")))}
    )
    claims = {verb: dict(keys) for verb, keys in ledger.load_claims().items()}
    claims["dma info"]["ats"] = ledger.Claim("dma info", "ats", "register", ("smmu",))
    claims["dma info"]["pri"] = ledger.Claim("dma info", "pri", "register", ("smmu",))
    checked = [(v, k, "smmu") for v, k in (("dma info", "iommu"), ("dma info", "sid"))]
    records = {
        "virt-4k-smmu": [*checked, ("dma info", "ats", "stated"), ("dma info", "iommu", "stated")],
        "virt-4k": [*checked, ("dma info", "iommu", "stated")],
    }
    figure = ledger.table(grown, claims, records)
    row = figure["verbs"]["dma info"]
    assert "ats" in row["unchecked"] and "pri" in row["unchecked"], row
    assert (
        row["facts"]
        == ledger.table(description, ledger.load_claims(), records)["verbs"]["dma info"]["facts"] + 2
    )
    line = next(x for x in ledger.format_table(figure) if x.startswith("dma info "))
    assert {"ats", "pri"} <= set(line.split()), line
    # once a comparison records it, on the profile that stated it, it is no longer listed
    records["virt-4k-smmu"].append(("dma info", "ats", "smmu"))
    assert "ats" not in ledger.table(grown, claims, records)["verbs"]["dma info"]["unchecked"]
