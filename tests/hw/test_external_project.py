"""The plugin is an installed ``pytest11`` entry point: another project's tests get the
``guest`` fixture with no conftest, no ``-p`` and nothing of this repository's tests/."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness import PROJECT_ROOT

pytestmark = pytest.mark.profiles("virt-4k")

THEIR_TEST = textwrap.dedent('''
    """A driver team's own hardware test, in their own repository."""
    from harness.guest import Guest


    def test_fill_reaches_ram(guest: Guest) -> None:
        va, _ = guest.scratch()
        guest.fill(va, 4096, 0x5A)                                    # the guest's claim...
        assert guest.ram.read(guest.phys(va), 4096) == b"\\x5a" * 4096  # ...checked from the host
''')


def test_plugin_is_a_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("iomem") == "harness.pytest_plugin"


def test_another_project_runs_a_hardware_test(tmp_path: Path, profile: object) -> None:
    project = tmp_path / "their-driver"
    (project / "checks").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["checks"]\n')
    (project / "checks" / "test_their_driver.py").write_text(THEIR_TEST)
    assert not (project / "conftest.py").exists() and not (project / "checks" / "conftest.py").exists()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--profile",
            "virt-4k",
            "-p",
            "no:cacheprovider",
            "-v",
            f"--junitxml={project / 'junit.xml'}",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"rootdir: {project}" in out
    assert "checks/test_their_driver.py::test_fill_reaches_ram[virt-4k] PASSED" in out
    assert "iomem hardware summary" in out
    assert str(PROJECT_ROOT) not in (project / "checks" / "test_their_driver.py").read_text()
    assert "iomem_console" in (project / "junit.xml").read_text()
