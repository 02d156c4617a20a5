"""pytest as its users know it: JUnit XML with the guest's logs, and a hang ended by
pytest-timeout that reports where the guest's CPU was."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.profiles("virt-4k")

INNER = textwrap.dedent("""
    import time
    import pytest

    def test_u1_junit_passes(guest):
        guest.ok("info")

    @pytest.mark.timeout(3)
    def test_u1_junit_hangs(guest):
        guest.ok("info")
        time.sleep(30)  # a hang: pytest-timeout must end it and the plugin must say where
""")


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "xdist"])
def test_junit_carries_logs_and_a_timeout_is_reported(
    pytester: pytest.Pytester, profile: object, workers: int
) -> None:
    # A module name per variant: artifact directories are per test id, under this checkout's build/.
    pytester.makepyfile(**{f"test_u1_inner_{workers}": INNER})
    xml_path = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "--profile", "virt-4k", "-p", "no:cacheprovider", f"--junitxml={xml_path}", "-n", str(workers)
    )
    result.assert_outcomes(passed=1, failed=1)
    # The hang: ended by pytest-timeout, reported with the guest's PC and its console tail.
    result.stdout.fnmatch_lines(
        ["*Timeout (>3.0s) from pytest-timeout*", "*timed out: guest PC 0x*", "*console tail:*"]
    )

    cases = {c.get("name"): c for c in ET.parse(xml_path).iter("testcase")}
    assert set(cases) == {"test_u1_junit_passes[virt-4k]", "test_u1_junit_hangs[virt-4k]"}
    for case in cases.values():
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        for name in ("iomem_artifacts", "iomem_console", "iomem_qemu_stderr", "iomem_qmp", "iomem_cmdline"):
            assert props.get(name), f"{case.get('name')}: no {name} property"
        assert props["iomem_console"].endswith("/guest/console.log")
        out = case.find("system-out")  # the console log itself, under its path
        assert out is not None and out.text is not None
        assert "iomem ready" in out.text and "page=" in out.text and "console.log" in out.text
        err = case.find("system-err")
        assert err is None or "qemu-stderr.log" in (err.text or "")
    assert cases["test_u1_junit_hangs[virt-4k]"].find("failure") is not None
