"""The examples in the docs are tests: every ```python block of docs/oracles.md and
docs/tutorial.md that defines ``test_*`` functions is run here (on virt-4k), so a doc cannot
drift from the harness."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from harness import PROJECT_ROOT

DOCS = ["docs/oracles.md", "docs/tutorial.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for doc in DOCS:
        text = (PROJECT_ROOT / doc).read_text()
        for number, code in enumerate(BLOCK.findall(text)):
            if "def test_" not in code:
                continue
            namespace: dict[str, Any] = {"__name__": f"doc_{number}"}
            exec(compile(code, f"{doc} (block {number + 1})", "exec"), namespace)
            for name, value in namespace.items():
                if name.startswith("test_") and callable(value):
                    assert name not in found, f"{doc}: example {name} defined twice"
                    found[name] = value
    return found


for _name, _example in _examples().items():
    globals()[_name] = pytest.mark.profiles("virt-4k")(_example)
