"""The harness raises only from its own exception family, and ``errors.py`` draws all of it."""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
from pathlib import Path

import harness
from harness import errors
from harness.errors import IomemError

HARNESS = Path(harness.__file__).parent
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _all_modules() -> list[str]:
    found = pkgutil.walk_packages(harness.__path__, "harness.")
    return [m.name for m in found if m.name != "harness.__main__"]


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_error_class_is_drawn_in_the_errors_docstring() -> None:
    for name in _all_modules():
        importlib.import_module(name)
    drawing = errors.__doc__ or ""
    family = {cls for cls in _subclasses(IomemError) if cls.__module__.startswith("harness.")}
    missing = sorted(cls.__name__ for cls in family if f" {cls.__name__} " not in drawing)
    assert not missing, f"errors.py's tree does not show {missing}"


def test_nothing_in_the_harness_raises_outside_the_family_or_asserts() -> None:
    bad = []
    for path in sorted(HARNESS.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(HARNESS.parent)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Assert):
                bad.append(f"{where}: assert")
            elif isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                    bad.append(f"{where}: raise {target.id}")
    assert not bad, "outside the IomemError family:\n" + "\n".join(bad)
