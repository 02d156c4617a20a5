"""iomem harness: boots arm64 QEMU guests running the iomem firmware, drives them over the
serial protocol and QMP, and checks what the guest claims against independent sources.

The package map is in ``docs/harness.md``; in one line each:

* ``qemu/``: one QEMU process and the host's eyes on it (machine, QMP, gdbstub, RAM,
  registers) and the machine profiles it is built from.
* ``link/``: the serial protocol (grammar) and the console client that speaks it.
* ``image/``: the firmware image: building it, its ELF (build-id, symbols) and DWARF.
* ``oracle/``: independent readings of guest state, pure functions over bytes.
* ``models/``: reference models of the spec; pure Python, nothing of QEMU.
* ``guest/``: :class:`~harness.guest.Guest`, the typed verb clients tests use.
* ``cli.py``, ``pytest_plugin.py``, ``bench.py``: the entry points.
"""

from pathlib import Path

__all__ = ["PROJECT_ROOT", "__version__"]
__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout the harness runs from (firmware sources, ``guest/`` profiles, ``build/``)."""
