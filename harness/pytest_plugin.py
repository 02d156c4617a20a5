"""pytest plugin: a fresh guest per test, on every profile unless a marker restricts it.

* ``guest``: a booted :class:`~harness.guest.Guest` for the test's ``profile``; reaped after.
* ``profile``: parametrized over the selected profiles (``--profile`` may be repeated; the
  default is every profile in ``guest/``), filtered by ``@pytest.mark.profiles(...)``.
* ``make_guest``: builds extra (un-booted) guests, with custom profiles or firmware, that are
  reaped after the test whatever happens.

Each test gets one artifact directory (console log, QEMU stderr, QMP trace, command line);
on failure the paths and the console tail are added to the report.

The per-profile summary at the end is built from pytest's own reports
(``pytest_runtest_logreport``), which under pytest-xdist the controller receives from every
worker: each test's report carries its profile and boot time as ``user_properties``, so the
totals are exact whatever the number of workers. Nothing is kept in module globals.

The claims ledger (:mod:`harness.ledger`) travels the same way: the claims a test compared
against an oracle are one user property of its call report, and the controller ends the run
with the claims table (per verb: facts stated / facts checked on every profile, the unchecked
keys), writes it to ``build/claims.json`` and into the JUnit XML's global properties.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import PROJECT_ROOT, ledger
from harness.errors import StateError
from harness.guest import Guest, warm
from harness.image.build import ensure_firmware
from harness.junit import JunitLogs, artifact_properties
from harness.qemu import profile as profiles
from harness.qemu.profile import Profile

ARTIFACT_ROOT = PROJECT_ROOT / "build" / "test-artifacts"
_GUESTS_KEY = pytest.StashKey[list[Guest]]()
PROFILE_PROPERTY = "iomem_profile"
BOOT_PROPERTY = "iomem_boot_seconds"
WARM_PROPERTY = "iomem_boot_warm"
_CALL_REPORT_KEY = pytest.StashKey[pytest.TestReport]()
CLAIMS_PROPERTY = "iomem_claims"
CLAIMS_JSON = PROJECT_ROOT / "build" / "claims.json"


@dataclass
class Summary:
    """Outcomes and boot times per profile, from the test reports (one per pytest session)."""

    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    boots: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    claims: dict[str, set[ledger.Record]] = field(default_factory=lambda: defaultdict(set))

    def add(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        profile = properties.get(PROFILE_PROPERTY)
        if not isinstance(profile, str):
            return  # a host test
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.outcomes[profile][report.outcome] += 1
        for name, value in report.user_properties:
            if name == CLAIMS_PROPERTY and isinstance(value, str):
                self.claims[profile].update(ledger.decode(value))
        if report.when == "setup":
            self.boots[profile].extend(
                float(value)
                for name, value in report.user_properties
                if name == BOOT_PROPERTY and isinstance(value, int | float)
            )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("iomem")
    group.addoption(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="run hardware tests on this profile (repeatable; default: every profile)",
    )
    group.addoption(
        "--iomem-cold",
        action="store_true",
        default=False,
        help="start a new QEMU for every guest (default: a clean guest's QEMU is rebooted in "
        "place for the next guest of its profile; harness/guest/warm.py)",
    )
    group.addoption(
        "--iomem-keep",
        action="store_true",
        default=False,
        help="leave a failing test's guests paused (not reaped) and print how to get in "
        "(iomem attach DIR, gdb-multiarch); `iomem reap` ends them",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "profiles(*names): run only on the named machine profiles")
    config.pluginmanager.register(SummaryReporter(config), "iomem-summary")
    config.pluginmanager.register(JunitLogs(config), "iomem-junit")
    warm.enable(not config.getoption("--iomem-cold") and not config.getoption("--iomem-keep"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    warm.drain()  # the parked QEMUs end with the session (xdist: with each worker's)


def _selected(config: pytest.Config) -> list[str]:
    chosen: list[str] = config.getoption("--profile") or profiles.profile_names()
    for name in chosen:
        profiles.load(name)  # an unknown name fails the run with the known names listed
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "profile" not in metafunc.fixturenames:
        return
    names = _selected(metafunc.config)
    marker = metafunc.definition.get_closest_marker("profiles")
    if marker is not None:
        unknown = set(marker.args) - set(profiles.profile_names())
        if unknown:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown profiles {sorted(unknown)}")
        names = [n for n in names if n in marker.args]
    metafunc.parametrize("profile", [profiles.load(n) for n in names], ids=names, scope="function")


def pytest_itemcollected(item: pytest.Item) -> None:
    profile = getattr(getattr(item, "callspec", None), "params", {}).get("profile")
    if isinstance(profile, Profile):
        item.user_properties.append((PROFILE_PROPERTY, profile.name))


def _artifact_dir(nodeid: str) -> Path:
    """One directory per test id, so tests (and xdist workers) never share one; a long id is
    cut and suffixed with a hash of the whole id so that cutting cannot merge two."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    if len(safe) > 150:
        safe = safe[:140] + "-" + hashlib.sha1(nodeid.encode()).hexdigest()[:9]
    path = ARTIFACT_ROOT / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def firmware_elf() -> Path:
    return ensure_firmware()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    return _artifact_dir(request.node.nodeid)


@pytest.fixture
def make_guest(
    request: pytest.FixtureRequest, artifacts: Path, firmware_elf: Path
) -> Iterator[Callable[..., Guest]]:
    """Factory for un-booted guests; all are closed after the test."""
    made: list[Guest] = []
    request.node.stash[_GUESTS_KEY] = made
    keeping = bool(request.config.getoption("--iomem-keep"))

    def make(profile: Profile, *, name: str | None = None, **kwargs: Any) -> Guest:
        kwargs.setdefault("firmware", firmware_elf)
        directory = artifacts / (name or f"guest{len(made)}")
        guest = Guest(profile, directory, **kwargs)
        guest.machine.die_with_parent = not keeping  # a kept guest must outlive pytest
        made.append(guest)
        request.node.user_properties.extend(artifact_properties(directory))
        return guest

    yield make
    report = request.node.stash.get(_CALL_REPORT_KEY, None)
    passed = report is not None and report.passed and not keeping
    for guest in made:
        guest.close(reuse=passed)
        if guest.machine.alive() and not guest.parked:  # a parked QEMU lives on by design
            raise StateError(f"QEMU pid {guest.machine.pid} survived teardown")
    # edu silently redirects a DMA whose bus address its dma_mask changes; QEMU's only sign is
    # a line on its stdout. Any such line means a DMA went somewhere nobody asked for.
    clamps = {g.profile.name: g.machine.edu_clamps() for g in made}
    if any(clamps.values()):
        pytest.fail(f"QEMU's edu clamped DMA addresses (asked, used): {clamps}", pytrace=False)


@pytest.fixture
def guest(request: pytest.FixtureRequest, profile: Profile, make_guest: Callable[..., Guest]) -> Guest:
    """A freshly booted guest on ``profile``."""
    booted = make_guest(profile, name="guest").boot()
    request.node.user_properties.append((BOOT_PROPERTY, booted.boot_seconds))
    request.node.user_properties.append((WARM_PROPERTY, booted.warm))
    return booted


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    ledger.begin()  # the guest fixture's own checks (banner build-id) count for the test
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    if call.when == "call":
        records = ledger.end()
        if records:
            item.user_properties.append((CLAIMS_PROPERTY, ledger.encode(records)))
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_REPORT_KEY] = report  # make_guest's teardown parks only a passed test's guests
    if report.failed:
        for guest in item.stash.get(_GUESTS_KEY, []):
            lines = [f"artifacts: {guest.artifacts}"]
            for path in [guest.artifacts / "console.log", guest.artifacts / "qemu.txt"] + [
                guest.machine.artifacts / name for name in ("qemu-stderr.log", "qmp.log", "cmdline.txt")
            ]:
                if path.exists():
                    lines.append(f"  {path}")
            lines.extend(_where_is_the_cpu(guest, report))
            if guest.console is not None:
                lines.append("console tail:\n" + guest.console.tail())
            report.sections.append((f"iomem {guest.profile.name}", "\n".join(lines)))
        if item.config.getoption("--iomem-keep"):
            _keep_guests(item, report)


def _keep_guests(item: pytest.Item, report: pytest.TestReport) -> None:
    """--iomem-keep: the failing test's live guests stay, paused (the fixture's teardown then
    finds them let go of); the report says how to get in."""
    from harness import keep

    for guest in item.stash.get(_GUESTS_KEY, []):
        if not guest.machine.alive() or guest.console is None:
            continue
        try:
            kept = keep.keep(guest, item.nodeid)
        except Exception as exc:  # keeping is a convenience: the failure report must survive
            report.sections.append(("iomem keep", f"could not keep the guest: {exc}"))
            continue
        report.sections.append((f"iomem kept {guest.profile.name}", kept.how_to_get_in()))


def _where_is_the_cpu(guest: Guest, report: pytest.TestReport) -> list[str]:
    """The guest's PC as QEMU sees it (and its symbol), first of all for a test that
    pytest-timeout ended: a hang is reported with where the CPU was, not killed silently."""
    timed_out = "from pytest-timeout" in str(report.longrepr)
    pc = guest.machine.program_counter()
    if pc is None:
        return ["timed out; QEMU is gone (no PC)"] if timed_out else []
    try:
        where = guest.elf.symbolize(pc)
    except Exception:  # a symbol is a nicety; the PC is the fact
        where = "?"
    prefix = "timed out: " if timed_out else ""
    return [f"{prefix}guest PC {pc:#x} ({where}), QEMU {guest.machine.qemu_status()}"]


class SummaryReporter:
    """The per-profile table at the end of the run, registered as a plugin of the session.

    ``pytest_runtest_logreport`` sees every report: the local ones, and on the xdist
    controller those of every worker; a worker does not print its own partial table."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.summary = Summary()
        self.figure: dict[str, Any] | None = None
        self.drift: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.summary.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        _write_summary(terminalreporter, self.summary)
        _write_claims(terminalreporter, self.figure, self.drift)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The claims figure, before junitxml writes its file (and before the terminal summary)."""
        if hasattr(self.config, "workerinput") or not self.summary.outcomes:
            return
        from harness.image.build import FIRMWARE_ELF
        from harness.link.describe import from_elf

        try:
            description = from_elf(FIRMWARE_ELF)
            claims = ledger.load_claims()
        except (OSError, ValueError) as exc:
            self.drift = [f"no claims table: {exc}"]
            return
        by_profile = {p: self.summary.claims.get(p, set()) for p in self.summary.outcomes}
        self.figure = ledger.table(description, claims, by_profile)
        self.drift = ledger.drift(description, claims)
        ledger.write_json(self.figure, CLAIMS_JSON)
        xml = self.config.stash.get(_junit_key(), None) if _junit_key() is not None else None
        if xml is not None:
            total: dict[str, int] = self.figure["total"]
            verbs: dict[str, Any] = self.figure["verbs"]
            xml.add_global_property("iomem_facts", total["facts"])
            xml.add_global_property("iomem_facts_checked", total["checked"])
            for verb, row in verbs.items():
                xml.add_global_property(f"iomem_claims[{verb}]", f"{row['checked']}/{row['facts']}")


def _write_summary(tr: Any, summary: Summary) -> None:
    rows = summary.outcomes
    if not rows:
        return
    tr.section("iomem hardware summary")
    tr.write_line(
        f"{'profile':<14} {'passed':>6} {'failed':>6} {'skipped':>7} {'boots':>5} {'boot ms (median)':>17}"
    )
    for name in sorted(rows):
        counts = rows[name]
        boots = sorted(summary.boots.get(name, []))
        median = f"{boots[len(boots) // 2] * 1000:.0f}" if boots else "-"
        tr.write_line(
            f"{name:<14} {counts['passed']:>6} {counts['failed']:>6} {counts['skipped']:>7} "
            f"{len(boots):>5} {median:>17}"
        )
    tr.write_line(f"artifacts: {ARTIFACT_ROOT}  ({time.strftime('%H:%M:%S')})")


def _write_claims(tr: Any, figure: dict[str, Any] | None, drift: list[str]) -> None:
    if figure is None and not drift:
        return
    tr.section("iomem claims (facts checked against an oracle)")
    if figure is not None:
        for line in ledger.format_table(figure):
            tr.write_line(line)
        tr.write_line(f"written to {CLAIMS_JSON}")
    for problem in drift:
        tr.write_line(f"claims: {problem}")


def _junit_key() -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest internals moved
        return None
    return xml_key
