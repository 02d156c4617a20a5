"""The harness's names for the firmware's data formats hold the firmware's values.

The page walker (:mod:`harness.oracle.pte`) and the page-byte decoder
(:mod:`harness.oracle.pages`) restate a few numbers the firmware defines in C. Here each one
is compared with the firmware's own definition, read from its header: the ``#define`` is
evaluated, not copied. (When the host library exports its table of format fields, this
test reads that instead: only :func:`firmware_defines` changes.) Headers are found by name
anywhere under ``firmware/``, so moving them does not break the check.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from harness.oracle import pages, pte

_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+(.+?)\s*(?:/\*.*)?$")
_LITERAL_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b")
_BUILTINS = {"UINT32_MAX": (1 << 32) - 1, "UINT64_MAX": (1 << 64) - 1}
_BINARY: dict[type, Callable[[int, int], int]] = {
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}


def header(name: str) -> Path:
    found = sorted((PROJECT_ROOT / "firmware").rglob(name))
    assert len(found) == 1, f"expected one {name} under firmware/, found {found}"
    return found[0]


@functools.cache
def firmware_defines(name: str) -> dict[str, str]:
    """Object-like ``#define NAME body`` of a header (continuation lines joined)."""
    text = header(name).read_text().replace("\\\n", " ")
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _DEFINE.match(line)
        if m and "(" not in m.group(1):
            out[m.group(1)] = m.group(2)
    return out


def evaluate(body: str, defines: dict[str, str]) -> int:
    """A C integer constant expression of literals, UINT64_C() and other defines."""
    expr = re.sub(r"\bUINT(?:8|16|32|64)_C\(([^()]*)\)", r"(\1)", body)
    expr = _LITERAL_SUFFIX.sub(r"\1", expr)
    expr = re.sub(r"\(\s*(?:uint(?:8|16|32|64)_t|unsigned)\s*\)", "", expr)

    def value(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in _BUILTINS:
                return _BUILTINS[node.id]
            return evaluate(defines[node.id], defines)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return ~value(node.operand) & ((1 << 64) - 1)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        raise AssertionError(f"cannot evaluate {ast.unparse(node)!r} (from {body!r})")

    return value(ast.parse(expr, mode="eval").body)


CASES = [("pte.h", pte, name) for name in pte.FIRMWARE_NAMES] + [
    ("pages.h", pages, name) for name in pages.FIRMWARE_NAMES
]


@pytest.mark.parametrize(("header_name", "module", "name"), CASES, ids=[c[2] for c in CASES])
def test_harness_constant_matches_the_firmware(header_name: str, module: object, name: str) -> None:
    defines = firmware_defines(header_name)
    assert name in defines, f"{header(header_name)} no longer defines {name}"
    assert getattr(module, name) == evaluate(defines[name], defines), name


def test_the_evaluator_reads_the_forms_the_headers_use() -> None:
    defines = {"A": "(UINT64_C(1) << 3)", "B": "0x1fu", "C": "(((UINT64_C(1) << 48) - 1) & ~UINT64_C(0xfff))"}
    assert evaluate(defines["A"], defines) == 8
    assert evaluate("A | B", defines) == 0x1F
    assert evaluate(defines["C"], defines) == 0xFFFF_FFFF_F000
    assert evaluate("UINT32_MAX", defines) == 0xFFFF_FFFF
