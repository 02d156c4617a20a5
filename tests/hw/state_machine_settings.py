"""Hypothesis settings shared by the hardware state machines: derandomized (CI sees the same
sequences every run), no example database, no deadline (each example boots a guest), and an
environment variable to run a longer hunt by hand."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def state_machine_settings(env: str, examples: int, steps: int) -> settings:
    return settings(
        max_examples=int(os.environ.get(env, str(examples))),
        stateful_step_count=steps,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
