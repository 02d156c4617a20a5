"""JUnit XML (``pytest --junitxml``) carrying what a hardware test left behind.

Each guest a test makes adds its artifact paths to the test's ``user_properties``
(``iomem_artifacts``, ``iomem_console``, ``iomem_qemu_stderr``, ...), which pytest writes as
``<property>`` elements of the ``<testcase>`` (xdist carries them from the workers). When pytest
has written the file, :func:`attach_logs` adds to each such test case its console log as
``<system-out>`` and QEMU's stderr as ``<system-err>``, read from those paths, whatever
``junit_logging`` says. The paths are per test id, so workers never share one.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InvalidInput

ARTIFACTS_PROPERTY = "iomem_artifacts"
CONSOLE_PROPERTY = "iomem_console"
STDERR_PROPERTY = "iomem_qemu_stderr"
FILES = {
    CONSOLE_PROPERTY: "console.log",
    STDERR_PROPERTY: "qemu-stderr.log",
    "iomem_qmp": "qmp.log",
    "iomem_cmdline": "cmdline.txt",
}
MAX_LOG = 256 * 1024  # per log in the XML; the whole file stays in the artifacts


def artifact_properties(directory: Path) -> list[tuple[str, str]]:
    """The user properties naming one guest's artifacts."""
    props = [(ARTIFACTS_PROPERTY, str(directory))]
    props += [(name, str(directory / filename)) for name, filename in FILES.items()]
    return props


def _read(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    if len(data) > MAX_LOG:
        data = b"[... cut: see the artifact file ...]\n" + data[-MAX_LOG:]
    # XML 1.0 cannot carry most control characters: keep tab and newline only.
    text = data.decode("utf-8", errors="replace")
    return "".join(c if c in "\t\n" or c >= " " else "\ufffd" for c in text.replace("\r\n", "\n"))


def _logs(case: ET.Element, name: str) -> str:
    parts = []
    for prop in case.iter("property"):
        if prop.get("name") == name:
            path = prop.get("value", "")
            text = _read(path)
            if text:
                parts.append(f"==> {path} <==\n{text}")
    return "\n".join(parts)


def attach_logs(xml_path: Path) -> int:
    """Add console logs (system-out) and QEMU stderr (system-err) to the test cases of a JUnit
    file that name them; returns how many test cases got one."""
    tree = ET.parse(xml_path)
    changed = 0
    for case in tree.iter("testcase"):
        for prop_name, tag in ((CONSOLE_PROPERTY, "system-out"), (STDERR_PROPERTY, "system-err")):
            text = _logs(case, prop_name)
            if not text:
                continue
            element = case.find(tag)
            if element is None:
                element = ET.SubElement(case, tag)
                element.text = text
            else:
                element.text = (element.text or "") + "\n" + text
            changed += 1
    if changed:
        tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return changed


class JunitLogs:
    """Registered by the plugin: rewrites the ``--junitxml`` file once pytest has written it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        xmlpath = self.config.getoption("xmlpath", None)
        if xmlpath and Path(xmlpath).exists():
            attach_logs(Path(xmlpath))


def merge(inputs: list[Path], output: Path) -> tuple[int, int]:
    """Merge JUnit files (one per CI shard) into one report with junitparser; returns (test
    cases, failures + errors). A test id met twice is an error: shards must be disjoint."""
    from junitparser import JUnitXml, TestSuite

    merged = JUnitXml()
    seen: set[tuple[str, str]] = set()
    for path in inputs:
        xml = JUnitXml.fromfile(str(path))
        suites = [xml] if isinstance(xml, TestSuite) else list(xml)
        for suite in suites:
            for case in suite:
                key = (str(case.classname), str(case.name))
                if key in seen:
                    raise InvalidInput(f"{path}: test {key[0]}::{key[1]} is in two shards")
                seen.add(key)
            merged.add_testsuite(suite)
    merged.update_statistics()  # type: ignore[no-untyped-call]
    merged.write(str(output))
    return int(merged.tests), int(merged.failures) + int(merged.errors)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.junit merge OUT IN...``: merge the shards' JUnit files."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.junit")
    sub = parser.add_subparsers(dest="command", required=True)
    p_merge = sub.add_parser("merge", help="merge JUnit XML files into one")
    p_merge.add_argument("output", type=Path)
    p_merge.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    tests, failed = merge(args.inputs, args.output)
    print(f"{args.output}: {tests} tests from {len(args.inputs)} files, {failed} failed or errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
