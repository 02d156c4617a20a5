"""bench/proto: the checked-slab prototype that docs/allocators.md measures against mimalloc
must refuse every invalid free it claims to (its own reject test, built and run here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "bench" / "proto"


def test_the_prototype_refuses_every_invalid_free(tmp_path: Path) -> None:
    binary = tmp_path / "reject_test"
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-DPM_COUNT_REJECTS",
            f"-I{ROOT / 'firmware' / 'include'}",
            "-o",
            str(binary),
            str(PROTO / "reject_test.c"),
            str(PROTO / "checked_slab.c"),
        ],
        check=True,
    )
    run = subprocess.run([str(binary)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout
    assert run.stdout.strip() == "rejected 27497 invalid frees, 0 missed; valid frees after: rejected 0 extra"
