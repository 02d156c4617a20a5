"""JUnit XML (``pytest --junitxml``) carrying what a hardware test left behind.

Each guest a test makes adds its artifact paths to the test's ``user_properties``
(``iomem_artifacts``, ``iomem_console``, ``iomem_qemu_stderr``, ...), which pytest writes as
``<property>`` elements of the ``<testcase>`` (xdist carries them from the workers). When pytest
has written the file, :func:`attach_logs` adds to each such test case its console log as
``<system-out>`` and QEMU's stderr as ``<system-err>``, read from those paths, whatever
``junit_logging`` says. The paths are per test id, so workers never share one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

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
