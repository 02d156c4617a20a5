"""Lifecycle chaos: guests that die every way they can, each reported as its own error class
with the console tail, and nothing of ours left behind (no QEMU process, no RAM file, no
socket). ``make chaos`` runs 200 guests; CI runs a short slice (tests/hw/test_chaos.py).

Scenarios (``SCENARIOS``):

* ``harness-sigkill``: a harness process is SIGKILLed mid-request; its QEMU dies with it
  (parent-death signal) and nothing stays.
* ``qemu-sigkill``: QEMU is SIGKILLed mid-request -> :class:`QemuKilled`.
* ``qemu-abort``: QEMU aborts (SIGABRT, what ``hw_error()`` does) mid-request -> :class:`QemuAborted`.
* ``guest-spin``: the guest masks interrupts and spins (``msr daifset; b .`` written over a
  handler from the host) -> :class:`GuestHung` with the PC sampled by QEMU, symbolized.
* ``guest-crash``: an undefined instruction in a handler -> :class:`GuestPanic` with
  ESR/FAR/ELR and the ELR's DWARF file:line.
* ``full-filesystem``: the artifact directory is on a full tmpfs -> :class:`ArtifactsUnwritable`.
* ``xdist-worker-killed``: a pytest-xdist worker running a hardware test is SIGKILLed; the
  controller reports the crashed worker and its QEMU is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import PROJECT_ROOT
from harness.addresses import PhysAddr
from harness.errors import IomemError
from harness.guest import Guest
from harness.qemu.profile import Profile
from harness.tools.commands import Commands

SPIN = bytes.fromhex("df4303d5") + bytes.fromhex("00000014")  # msr daifset, #0xf ; b .
UDF = bytes(4)  # udf #0
VICTIM = "cmd_hello"  # a handler no boot runs: its code is not in QEMU's translation cache yet


@dataclass
class Result:
    scenario: str
    error_class: str
    message: str
    console_tail: str
    qemu_pids: list[int] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    where: str = ""

    @property
    def first_line(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


def addr2line(elf: Path, address: int) -> str:
    """``file:line`` of an address from the ELF's DWARF line table (binutils' addr2line)."""
    try:
        out = subprocess.run(
            ["aarch64-linux-gnu-addr2line", "-e", str(elf), f"{address:#x}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        return "?"
    return out.replace(str(PROJECT_ROOT) + "/", "") or "?"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _our_fds() -> tuple[int, list[str]]:
    """Sockets and pipes this process holds (QMP, gdbstub, the serial line), and fds open on
    guest RAM files."""
    sockets, ram = 0, []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(("socket:", "pipe:")):
                sockets += 1
            elif "iomem-ram-" in target:
                ram.append(target)
    return sockets, ram


def leftovers(pids: list[int], sockets_before: int) -> list[str]:
    found: list[str] = []
    deadline = time.monotonic() + 5.0
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            found.append(f"QEMU pid {pid} is still running")
    sockets, ram = _our_fds()
    if sockets > sockets_before:
        found.append(f"{sockets - sockets_before} sockets or pipes left open")
    found += [f"RAM file still open: {r}" for r in ram]
    return found


def _patch(guest: Guest, code: bytes) -> int:
    address = guest.elf.symbol(VICTIM).address
    Commands(guest).poke_ram(address, code)  # identity mapped: the VA is the PA
    if guest.ram.read(PhysAddr(address), len(code)) != code:
        raise IomemError("chaos: the patch did not land")
    return address


def _in_guest(profile: Profile, artifacts: Path, act: Callable[[Guest], None]) -> Result:
    sockets_before, _ = _our_fds()
    guest = Guest(profile, artifacts)
    pids: list[int] = []
    try:
        with guest:
            if guest.machine.pid:
                pids.append(guest.machine.pid)
            act(guest)
        raise IomemError("chaos: the scenario did not fail")
    except IomemError as exc:
        result = Result("", type(exc).__name__, str(exc), exc.console_tail, pids)
        if getattr(exc, "pc", None) is not None:
            result.where = f"{guest.elf.symbolize(exc.pc)} {addr2line(guest.elf.path, exc.pc)}"  # type: ignore[attr-defined]
        elr = getattr(exc, "registers", {}).get("elr")
        if elr is not None:
            result.where = f"{guest.elf.symbolize(elr)} {addr2line(guest.elf.path, elr)}"
    finally:
        guest.close()
    result.leftovers = leftovers(pids, sockets_before)
    return result


def _signal_mid_request(sig: int) -> Callable[[Guest], None]:
    def act(guest: Guest) -> None:
        pid = guest.machine.pid
        if pid is None:
            raise IomemError("no QEMU")
        guest.ok("pagesize")
        threading.Timer(0.02, os.kill, (pid, sig)).start()
        while True:  # requests until the signal lands in the middle of one
            guest.request("read 0x40000000 4096", timeout=5.0)

    return act


def qemu_sigkill(profile: Profile, artifacts: Path) -> Result:
    return _in_guest(profile, artifacts, _signal_mid_request(signal.SIGKILL))


def qemu_abort(profile: Profile, artifacts: Path) -> Result:
    return _in_guest(profile, artifacts, _signal_mid_request(signal.SIGABRT))


def guest_spin(profile: Profile, artifacts: Path) -> Result:
    def act(guest: Guest) -> None:
        _patch(guest, SPIN)
        guest.request("hello", timeout=1.0)

    return _in_guest(profile, artifacts, act)


def guest_crash(profile: Profile, artifacts: Path) -> Result:
    def act(guest: Guest) -> None:
        _patch(guest, UDF)
        guest.request("hello", timeout=5.0)

    return _in_guest(profile, artifacts, act)


@contextlib.contextmanager
def full_tmpfs() -> Iterator[Path]:
    """A 256 KiB tmpfs filled to the last byte (needs root to mount)."""
    mount = Path(tempfile.mkdtemp(prefix="iomem-full-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True, capture_output=True
    )
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            mount.rmdir()


def full_filesystem(profile: Profile, artifacts: Path) -> Result:
    del artifacts
    with full_tmpfs() as mount:

        def act(guest: Guest) -> None:
            for _ in range(200):  # the console log fills up at once; a reply or two may fit first
                guest.request("read 0x40000000 4096")

        sockets_before, _ = _our_fds()
        try:
            result = _in_guest(profile, mount / "artifacts", act)
        except OSError as exc:  # pragma: no cover - reported so the table shows it
            result = Result("", f"unclassified {type(exc).__name__}", str(exc), "")
            result.leftovers = leftovers([], sockets_before)
    return result


_CHILD = """
import sys, time
from pathlib import Path
from harness.guest import Guest
from harness.qemu import profile as profiles
guest = Guest(profiles.load(sys.argv[1]), Path(sys.argv[2]))
guest.boot()
print(guest.machine.pid, flush=True)
while True:
    guest.request("read 0x40000000 4096")
"""


def harness_sigkill(profile: Profile, artifacts: Path) -> Result:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, profile.name, str(artifacts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert_pipe = child.stdout
    pid_line = assert_pipe.readline() if assert_pipe else ""
    time.sleep(0.05)  # mid-request
    child.kill()
    child.wait()
    pids = [int(pid_line)] if pid_line.strip().isdigit() else []
    tail = (
        (artifacts / "console.log").read_text(errors="replace")[-400:]
        if (artifacts / "console.log").exists()
        else ""
    )
    result = Result("", "HarnessKilled", f"harness exited {child.returncode}", tail, pids)
    result.leftovers = leftovers(pids, 0) if pids else ["the child never reported its QEMU"]
    result.leftovers = [x for x in result.leftovers if not x.endswith("sockets or pipes left open")]
    return result


_XDIST_TEST = """
import os, signal
from pathlib import Path

def test_killed(guest):
    Path(os.environ["IOMEM_CHAOS_PIDS"]).write_text(str(guest.machine.pid))
    guest.ok("pagesize")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def xdist_worker_killed(profile: Profile, artifacts: Path) -> Result:
    artifacts.mkdir(parents=True, exist_ok=True)
    test = artifacts / "test_chaos_worker.py"
    test.write_text(textwrap.dedent(_XDIST_TEST))
    pid_file = artifacts / "qemu.pid"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test),
            "-n",
            "1",
            "-q",
            "-p",
            "no:cacheprovider",
            "--profile",
            profile.name,
            "--rootdir",
            str(artifacts),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=artifacts,
        check=False,
        env={**os.environ, "IOMEM_CHAOS_PIDS": str(pid_file)},
    )
    pids = [int(pid_file.read_text())] if pid_file.exists() else []
    crashed = re.search(r"worker '?gw\d'? crashed|node down|crashed while running", run.stdout + run.stderr)
    result = Result(
        "",
        "WorkerCrashed" if crashed and run.returncode != 0 else f"unexpected (exit {run.returncode})",
        (crashed.group(0) if crashed else run.stdout[-300:]),
        run.stdout[-400:],
        pids,
    )
    result.leftovers = leftovers(pids, 0) if pids else ["the worker never reported its QEMU"]
    result.leftovers = [x for x in result.leftovers if not x.endswith("sockets or pipes left open")]
    return result


SCENARIOS: dict[str, tuple[Callable[[Profile, Path], Result], str]] = {
    "harness-sigkill": (harness_sigkill, "HarnessKilled"),
    "qemu-sigkill": (qemu_sigkill, "QemuKilled"),
    "qemu-abort": (qemu_abort, "QemuAborted"),
    "guest-spin": (guest_spin, "GuestHung"),
    "guest-crash": (guest_crash, "GuestPanic"),
    "full-filesystem": (full_filesystem, "ArtifactsUnwritable"),
    "xdist-worker-killed": (xdist_worker_killed, "WorkerCrashed"),
}


def run_one(name: str, profile: Profile, artifacts: Path) -> Result:
    scenario, _ = SCENARIOS[name]
    result = scenario(profile, artifacts)
    result.scenario = name
    return result


def problems(result: Result) -> list[str]:
    """What is wrong with how a scenario ended: the wrong class, no console tail, leftovers."""
    _, want = SCENARIOS[result.scenario]
    out = []
    if result.error_class != want:
        out.append(f"{result.scenario}: reported as {result.error_class}, want {want}: {result.first_line}")
    if (
        want not in ("HarnessKilled", "WorkerCrashed", "ArtifactsUnwritable")
        and not result.console_tail.strip()
    ):
        out.append(f"{result.scenario}: no console tail")
    if want in ("GuestHung", "GuestPanic") and ":" not in result.where:
        out.append(f"{result.scenario}: no symbolized location ({result.where!r})")
    out += [f"{result.scenario}: {left}" for left in result.leftovers]
    return out


def mix(count: int, seed: int = 1) -> list[str]:
    """``count`` scenario names, every scenario at least once when count allows, shuffled."""
    import random

    rng = random.Random(seed)
    names = list(SCENARIOS)
    picks = (names * (count // len(names) + 1))[:count]
    rng.shuffle(picks)
    return picks
