"""The pure layers stay pure: reference models and oracles import nothing of QEMU, the serial
link or the guest (so ``tests/host`` can drive them, and data flows one way)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("harness.qemu", "harness.link.console", "harness.guest", "qemu", "pexpect")


@pytest.mark.parametrize(
    "package", ["harness.models.descriptors", "harness.models.heap", "harness.oracle", "harness.image"]
)
def test_pure_layer_imports_nothing_of_qemu(package: str) -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(getattr(root, '__path__', []), root.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"{package} pulls in {bad}"
