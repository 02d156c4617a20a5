"""The firmware's layering, checked from the source text (no compiler, no QEMU).

firmware/README.md's layer table is the one statement of the order: this test parses its
`order`, `directory` and `may include` columns, reads every `#include "..."` of every file
under firmware/, and fails on an include that goes up a layer (or, for a layer whose
`may include` says `only ...`, on one outside that list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
README = FIRMWARE / "README.md"
SOURCE_SUFFIXES = {".c", ".h", ".S", ".ld"}
INCLUDE_DIR = "include"  # -Ifirmware/include: "IOReturn.h" names firmware/include/IOReturn.h

_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([^`]+)/`\s*\|\s*([^|]*?)\s*\|")
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


@dataclass(frozen=True)
class Layer:
    directory: str  # relative to firmware/, no trailing slash
    order: int
    only: tuple[str, ...] | None  # the directories it may include, when restricted


def parse_layers(text: str) -> list[Layer]:
    """The rows `| N | \\`dir/\\` | lower or only \\`a/\\`, \\`b/\\` | ... |` of the layer table."""
    layers = []
    for line in text.splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        order, directory, may_include = int(match[1]), match[2], match[3]
        only = None
        if may_include.startswith("only"):
            only = tuple(d.rstrip("/") for d in re.findall(r"`([^`]+)`", may_include))
        elif may_include != "lower":
            raise ValueError(f"README layer row for {directory}/: 'may include' is '{may_include}'")
        layers.append(Layer(directory, order, only))
    if not layers:
        raise ValueError("no layer table in firmware/README.md")
    return layers


def layer_of(path: Path, layers: list[Layer]) -> Layer | None:
    """The layer of the longest directory that holds `path` (relative to firmware/)."""
    holders = [layer for layer in layers if path.is_relative_to(layer.directory)]
    return max(holders, key=lambda layer: len(layer.directory), default=None)


def resolve(root: Path, name: str, includer: Path) -> Path | None:
    """Where the compiler finds `#include "name"` (-Ifirmware/include -Ifirmware), relative to root."""
    for candidate in (includer.parent / name, Path(INCLUDE_DIR) / name, Path(name)):
        if (root / candidate).is_file():
            return (root / candidate).resolve().relative_to(root.resolve())
    return None


def violations(root: Path, layers: list[Layer]) -> list[str]:
    """Every include under root that breaks the table, as 'file:line: message'."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES):
        rel = path.relative_to(root)
        own = layer_of(rel, layers)
        text = path.read_text(errors="replace")
        if own is None:
            found.append(f"{rel}: in no layer of firmware/README.md")
            continue
        for match in _INCLUDE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            target = resolve(root, match[1], rel)
            if target is None:
                found.append(f'{rel}:{line}: #include "{match[1]}" is not a firmware file')
                continue
            other = layer_of(target, layers)
            if other is None:
                found.append(f'{rel}:{line}: #include "{match[1]}" is in no layer')
            elif own.only is not None and other.directory not in own.only:
                allowed = ", ".join(f"{d}/" for d in own.only)
                found.append(
                    f'{rel}:{line}: #include "{match[1]}": {own.directory}/ may include only {allowed}, '
                    f"not {other.directory}/"
                )
            elif other.order > own.order:
                found.append(
                    f'{rel}:{line}: #include "{match[1]}" goes up: {own.directory}/ (layer {own.order}) '
                    f"includes {other.directory}/ (layer {other.order})"
                )
    return found


def test_readme_table_names_every_directory() -> None:
    layers = parse_layers(README.read_text())
    assert [layer.order for layer in layers] == sorted(layer.order for layer in layers)
    for layer in layers:
        assert (FIRMWARE / layer.directory).is_dir(), f"{layer.directory}/ in the README does not exist"
    sources = {p.relative_to(FIRMWARE) for p in FIRMWARE.rglob("*") if p.suffix in SOURCE_SUFFIXES}
    assert sources, "no firmware sources found"
    assert [str(p) for p in sources if layer_of(p, layers) is None] == []


def test_no_include_goes_up_a_layer() -> None:
    problems = violations(FIRMWARE, parse_layers(README.read_text()))
    assert not problems, "includes against firmware/README.md's layer table:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("file", "include", "expected"),
    [
        ("lib/bits.h", "mm/pages.h", "goes up: lib/ (layer 1) includes mm/ (layer 4)"),
        ("drivers/pl011.c", "agent/agent.h", "goes up: drivers/ (layer 3) includes agent/ (layer 5)"),
        ("include/IOLib.h", "mm/heap.h", "include/ may include only include/, lib/, not mm/"),
    ],
)
def test_a_wrong_include_is_caught(tmp_path: Path, file: str, include: str, expected: str) -> None:
    """The checker itself: a copy of firmware/ with one bad include fails, naming it."""
    copy = tmp_path / "firmware"
    for path in FIRMWARE.rglob("*"):
        if path.is_file() and path.suffix in SOURCE_SUFFIXES:
            target = copy / path.relative_to(FIRMWARE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(errors="replace"))
    bad = copy / file
    bad.write_text(f'#include "{include}"\n' + bad.read_text())
    problems = violations(copy, parse_layers(README.read_text()))
    assert len(problems) == 1 and f"{file}:1:" in problems[0] and expected in problems[0], problems
