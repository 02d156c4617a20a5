"""Lifecycle chaos (harness/tools/chaos.py): every way a guest or its harness can die is
reported as its own error class, with the console tail where there was a console, and
nothing of ours is left behind. CI runs each scenario once; ``make chaos`` runs 200 guests
(``IOMEM_CHAOS_GUESTS``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.guest import warm
from harness.qemu.profile import Profile
from harness.tools import chaos

GUESTS = int(os.environ.get("IOMEM_CHAOS_GUESTS", str(len(chaos.SCENARIOS))))
MIX = chaos.mix(GUESTS, seed=int(os.environ.get("IOMEM_CHAOS_SEED", "1")))


@pytest.mark.profiles("virt-4k")
@pytest.mark.parametrize(
    ("index", "scenario"), list(enumerate(MIX)), ids=[f"{i}-{s}" for i, s in enumerate(MIX)]
)
def test_chaos(profile: Profile, index: int, scenario: str, tmp_path: Path) -> None:
    del index
    warm.drain()  # chaos counts the RAM files and sockets this process holds: none may be parked
    if scenario == "full-filesystem" and os.geteuid() != 0:
        pytest.skip("mounting the full tmpfs needs root")
    result = chaos.run_one(scenario, profile, tmp_path / scenario)
    assert chaos.problems(result) == [], result


def test_the_mix_covers_every_scenario() -> None:
    assert set(chaos.mix(len(chaos.SCENARIOS))) == set(chaos.SCENARIOS)
    assert len(chaos.mix(200)) == 200
