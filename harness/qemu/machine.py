"""One QEMU process: its command line, runstate, QMP, serial line and gdbstub, guest RAM
and guaranteed teardown. Nothing else in the harness starts or kills QEMU.

Runstate: ``CREATED -> PAUSED -> RUNNING -> OFF``. QEMU starts paused (``-S``) with the
serial port on pipes (harness/qemu/serial.py), QMP and gdbstub on socketpairs, all owned by
the harness, so no boot output can be lost and no socket path can race; ``cont`` then starts
the CPU. Teardown is graceful then hard (wait, QMP ``quit``, SIGKILL), and QEMU also dies with
the harness (parent-death signal).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import enum
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ArtifactsUnwritable, LaunchError, StateError
from harness.qemu.gdbstub import GdbStub
from harness.qemu.profile import EDU_SLOT, Profile
from harness.qemu.qmp import Pending, QmpError, QmpSession
from harness.qemu.ram import RamFile, SharedRam
from harness.qemu.serial import SerialPipes, SerialPlumbing

QEMU_BINARY = "qemu-system-aarch64"
PR_SET_PDEATHSIG = 1

_live: weakref.WeakSet[Machine] = weakref.WeakSet()


class Runstate(enum.Enum):
    CREATED = "created"
    PAUSED = "paused"
    RUNNING = "running"
    OFF = "off"


_UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _unwritable(where: Path, exc: OSError) -> ArtifactsUnwritable:
    return ArtifactsUnwritable(f"cannot write the artifacts in {where} ({exc.strerror})")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@atexit.register
def _reap_all() -> None:
    for machine in list(_live):
        machine.shutdown(graceful_timeout=0.2)


SMMU_TRACE_EVENTS = ("smmuv3_translate_success", "smmuv3_translate_abort", "smmuv3_record_event")
"""QEMU 7.2 trace events the harness records on SMMU profiles (``-trace help`` lists them)."""
TRACE_FILE = "qemu-trace.log"


QEMU_IDLE_WARNING = "qemu-system-aarch64: warning: icount sleep disabled and no active timers"
"""What QEMU 7.2 prints once on the icount profiles when the guest waits in wfi with no timer
armed (``sleep=off``): expected, and the only output a machine may have to be parked."""
EDU_CLAMP = re.compile(r"EDU: clamping DMA (0x[0-9a-fA-F]+) to (0x[0-9a-fA-F]+)!")
"""What QEMU 7.2's edu prints (to stdout) when ``dma_mask`` changes a bus address (dma-facts §1.3)."""
_QEMU_FATAL = re.compile(r"^(qemu: hardware error:.*|qemu-system-aarch64: .*|\*\*.*(ERROR|assert).*)$", re.M)


def qemu_fatal_lines(stderr: str) -> list[str]:
    """QEMU's own error lines (``qemu: hardware error: ...``, ``qemu-system-aarch64: ...``)
    from its stderr, without the CPU register dump ``hw_error`` prints after them."""
    return [m.group(1).strip() for m in _QEMU_FATAL.finditer(stderr)]


def device_option(profile: Profile, device: str) -> str:
    """The ``-device`` value: edu pinned at slot 1 (StreamID 8) with the profile's DMA mask."""
    if device == "edu":
        return f"edu,addr={EDU_SLOT:#04x},dma_mask={profile.edu_dma_mask:#x}"
    return device


def _opt_value(value: str) -> str:
    """``value`` inside a QEMU option string, where a comma separates options: doubled."""
    return value.replace(",", ",,")


def qemu_command(
    profile: Profile,
    firmware: Path,
    *,
    ram_path: str,
    serial_path: str,
    console_path: str,
    qmp_fd: int,
    gdb_fd: int | None,
    extra_args: Sequence[str] = (),
    trace_path: str | None = None,
) -> list[str]:
    """The QEMU command line for ``profile`` (pure: tested in tests/host).

    ``trace_path``: where QEMU's SMMU trace events go (SMMU profiles only; see
    :data:`SMMU_TRACE_EVENTS` and ``harness/oracle/qemu_trace.py``)."""
    machine_opts = [profile.machine, "gic-version=2", "memory-backend=ram"]
    if profile.iommu == "smmuv3":
        machine_opts.append("iommu=smmuv3")
    cmd = [
        QEMU_BINARY,
        "-machine",
        ",".join(machine_opts),
        "-cpu",
        profile.cpu,
        "-smp",
        "1",
        "-m",
        f"{profile.ram_mib}M",
        "-object",
        f"memory-backend-file,id=ram,size={profile.ram_mib}M,mem-path={_opt_value(ram_path)},share=on",
        "-nodefaults",
        "-nic",
        "none",
        "-display",
        "none",
        "-no-reboot",
        "-S",
        "-kernel",
        str(firmware),
        "-fw_cfg",
        f"name=opt/iomem/granule,string={profile.granule}",
        *[arg for name, value in profile.fw_cfg for arg in ("-fw_cfg", f"name={name},string={value}")],
        "-chardev",  # the PL011: what the guest prints (harness/qemu/serial.py)
        f"pipe,id=serial0,path={_opt_value(serial_path)}",
        "-serial",
        "chardev:serial0",
        # What the guest reads: a virtio console, which takes a posted buffer's worth per turn
        # of QEMU's main loop where the PL011 takes one byte (firmware/drivers/virtio_console.h).
        "-chardev",
        f"pipe,id=console0,path={_opt_value(console_path)}",
        "-global",
        "virtio-mmio.force-legacy=false",
        "-device",
        "virtio-serial-device,max_ports=1",
        "-device",
        "virtconsole,chardev=console0",
        "-chardev",
        f"socket,id=qmp0,fd={qmp_fd}",
        "-mon",
        "chardev=qmp0,mode=control",
    ]
    if gdb_fd is not None:
        cmd += ["-chardev", f"socket,id=gdb0,fd={gdb_fd}", "-gdb", "chardev:gdb0"]
    for device in profile.devices:
        cmd += ["-device", device_option(profile, device)]
    if profile.icount:
        cmd += ["-icount", profile.icount]
    if trace_path is not None and profile.smmu:
        for event in SMMU_TRACE_EVENTS:
            cmd += ["-trace", f"enable={event},file={_opt_value(trace_path)}"]
    cmd += list(profile.qemu_args) + list(extra_args)
    return cmd


class Machine:
    """A QEMU process for one profile and firmware; artifacts go to ``artifacts``."""

    def __init__(
        self,
        profile: Profile,
        firmware: Path,
        artifacts: Path,
        *,
        extra_args: Sequence[str] = (),
        gdb: bool = True,
        uart_input: bool = False,
    ) -> None:
        self.profile = profile
        self.firmware = Path(firmware)
        self.artifacts = Path(artifacts)
        self.extra_args = tuple(extra_args)
        self.want_gdb = gdb
        # Requests written to the PL011 instead of the virtio console (harness/qemu/serial.py).
        self.uart_input = uart_input
        # False only for guests that may be kept after the harness exits (pytest --iomem-keep).
        self.die_with_parent = True
        self.state = Runstate.CREATED
        self.cmdline: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.qmp: QmpSession | None = None
        self.ram: SharedRam | None = None
        self.serial: SerialPipes | None = None
        self.gdb: socket.socket | None = None
        self.gdbstub: GdbStub | None = None  # the session on ``gdb``, once a guest opened one
        self._reboot: Pending | None = None  # a warm reboot begun and not yet waited for
        self._ram_file: RamFile | None = None
        self.stderr_path = self.artifacts / "qemu-stderr.log"
        self.qmp_trace_path = self.artifacts / "qmp.log"
        self.trace_path = self.artifacts / TRACE_FILE
        self.started_at = 0.0

    # ------------------------------------------------------------ lifecycle
    def _require(self, *states: Runstate) -> None:
        if self.state not in states:
            wanted = " or ".join(s.value for s in states)
            raise StateError(f"machine is {self.state.value}, needs to be {wanted}")

    def start(self) -> None:
        """Launch QEMU paused and connect QMP: CREATED -> PAUSED."""
        self._require(Runstate.CREATED)
        if shutil.which(QEMU_BINARY) is None:
            raise LaunchError(
                f"{QEMU_BINARY} is not installed (run `make setup`)",
                cmdline=[QEMU_BINARY],
                stderr="",
                returncode=None,
            )
        try:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            self.trace_path.unlink(missing_ok=True)  # QEMU appends to its trace file: start empty
        except OSError as exc:
            raise _unwritable(self.artifacts, exc) from exc
        ours: list[socket.socket] = []
        theirs: list[socket.socket] = []
        serial: SerialPlumbing | None = None
        try:
            for _ in range(2 if self.want_gdb else 1):
                a, b = socket.socketpair()
                ours.append(a)
                theirs.append(b)
            qmp_sock = ours[0]
            serial = SerialPlumbing(self.artifacts, uart_input=self.uart_input)
            self._ram_file = RamFile(self.profile.ram_size)
            self.cmdline = qemu_command(
                self.profile,
                self.firmware,
                ram_path=self._ram_file.qemu_path,
                serial_path=str(serial.path),
                console_path=str(serial.console_path),
                qmp_fd=theirs[0].fileno(),
                gdb_fd=theirs[1].fileno() if self.want_gdb else None,
                extra_args=self.extra_args,
                trace_path=str(self.trace_path),
            )
            (self.artifacts / "cmdline.txt").write_text(" ".join(self.cmdline) + "\n")
            pass_fds = [s.fileno() for s in theirs] + [self._ram_file.fd, *serial.theirs]
            # Line-buffer QEMU's stdout (it shares the log with stderr): edu's clamp warning is a
            # printf to stdout, otherwise block-buffered and lost if QEMU is killed.
            stdbuf = shutil.which("stdbuf")
            argv = [stdbuf, "-oL", *self.cmdline] if stdbuf else self.cmdline
            with self.stderr_path.open("wb") as stderr:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    pass_fds=pass_fds,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if self.die_with_parent else None,
                )
        except BaseException as exc:  # nothing of ours may outlive a failed start
            for sock in ours + theirs:
                sock.close()
            if serial is not None:
                serial.close()
            if self._ram_file is not None:
                self._ram_file.close()
            if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:
                raise _unwritable(self.artifacts, exc) from exc
            raise
        _live.add(self)
        self.started_at = time.monotonic()
        for s in theirs:
            s.close()
        self.serial = serial.ours
        self.gdb = ours[1] if self.want_gdb else None
        self.state = Runstate.PAUSED
        try:
            self.qmp = QmpSession(qmp_sock, self.qmp_trace_path)
        except QmpError as exc:
            self._fail_launch(f"QEMU did not answer on QMP ({exc.message})")
        finally:
            serial.qemu_opened()  # its chardevs exist before its monitor answers (or it is gone)
        if self.process.poll() is not None:
            self._fail_launch("QEMU exited during start-up")
        self.ram = SharedRam(self._ram_file, self.profile.ram_base)

    def _fail_launch(self, message: str) -> None:
        self.shutdown(graceful_timeout=0)
        raise LaunchError(
            message,
            cmdline=self.cmdline,
            stderr=self.stderr_text(),
            returncode=self.process.returncode if self.process else None,
        )

    def _qmp(self) -> QmpSession:
        if self.qmp is None:
            raise StateError(f"machine is {self.state.value}: no QMP connection")
        return self.qmp

    def cont(self) -> None:
        """Start the CPU: PAUSED -> RUNNING."""
        self._require(Runstate.PAUSED)
        self._qmp().execute("cont")
        self.state = Runstate.RUNNING

    def shutdown(self, *, graceful_timeout: float = 2.0) -> int | None:
        """End the machine whatever its state: wait for a guest power-off, QMP ``quit``,
        then SIGKILL. Idempotent, never raises. Returns QEMU's exit status."""
        if self.state is Runstate.OFF:
            return self.process.returncode if self.process else None
        process = self.process
        # Close the serial line first: QEMU blocks writing to a pipe nobody drains.
        for sock in (self.serial, self.gdb):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        if process is not None:
            if not self._wait(process, graceful_timeout) and self.qmp is not None:
                with contextlib.suppress(Exception):
                    self.qmp.execute("quit", timeout=1.0)
                self._wait(process, 1.0)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        if self.qmp is not None:
            self.qmp.close()
        if self.ram is not None:
            self.ram.close()
        if self._ram_file is not None:
            self._ram_file.close()
        self.state = Runstate.OFF
        _live.discard(self)
        return process.returncode if process else None

    def detach(self) -> None:
        """Let go of a running QEMU without ending it (harness/keep.py has handed its serial
        pipes on): close the harness's ends and forget it, so no teardown kills it."""
        for sock in (self.serial, self.gdb):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        if self.qmp is not None:
            self.qmp.close()
        if self.ram is not None:
            self.ram.close()
        if self._ram_file is not None:
            self._ram_file.close()
        self.state = Runstate.OFF
        self.process = None
        _live.discard(self)

    def start_reboot(self) -> Pending:
        """Begin a warm reboot of a RUNNING machine (``harness/guest/warm.py``) and return at
        once: the guest boots while the harness goes on; :meth:`reboot_in_place` waits for it.

        QMP ``system_reset`` resets the CPU and every device and reloads the firmware image
        (QEMU's ROM reset: its loaded segments rewritten, its bss zeroed); the rest of RAM
        keeps what the last guest left, as after a reset button. ``-no-reboot`` would turn
        the reset into a power-off, so the reboot action is ``reset`` for this one request
        (QEMU decides when the request is made) and ``shutdown`` again right after it: a
        reboot the guest asks for still ends QEMU."""
        self._require(Runstate.RUNNING)
        self._reboot = self._qmp().submit_in_order(
            [
                ("set-action", {"reboot": "reset"}),
                ("system_reset", None),
                ("set-action", {"reboot": "shutdown"}),
            ]
        )
        return self._reboot

    def reboot_in_place(self) -> None:
        """A warm reboot (begun by :meth:`start_reboot` if it was not already): returns once
        QEMU has reset the machine and the reboot action is ``shutdown`` again."""
        pending = self._reboot or self.start_reboot()
        self._reboot = None
        qmp = self._qmp()
        try:
            qmp.finish(pending)
        except QmpError:
            with contextlib.suppress(QmpError):
                qmp.execute("set-action", {"reboot": "shutdown"})
            raise

    def said_nothing(self) -> bool:
        """Whether QEMU has written nothing to its trace file and nothing but
        :data:`QEMU_IDLE_WARNING` to its output: a machine whose logs say nothing can serve
        the next guest without mixing their logs."""
        try:
            if self.trace_path.exists() and self.trace_path.stat().st_size:
                return False
            said = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        except OSError:
            return False
        return all(line == QEMU_IDLE_WARNING for line in said.splitlines())

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], timeout: float) -> bool:
        try:
            process.wait(timeout=max(timeout, 0))
            return True
        except subprocess.TimeoutExpired:
            return False

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------ inspection
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit status once it has exited (waiting up to ``timeout``), else None."""
        if self.process is None:
            return None
        self._wait(self.process, timeout)
        return self.process.poll()

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def edu_clamps(self) -> list[tuple[int, int]]:
        """Every ``EDU: clamping DMA A to B!`` QEMU printed so far, as (asked, used) addresses."""
        return [(int(a, 16), int(b, 16)) for a, b in EDU_CLAMP.findall(self.stderr_text())]

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used (user + system): lets timeouts tell a slow host from a hang."""
        if self.process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def qemu_status(self) -> str:
        """QMP runstate (``running``, ``paused``, ``shutdown``, ``guest-panicked``...) or ``gone``."""
        if not self.alive() or self.qmp is None:
            return "gone"
        try:
            return str(self.qmp.execute("query-status", timeout=2.0)["status"])
        except (QmpError, KeyError, TypeError):
            return "gone"

    def program_counter(self) -> int | None:
        """Where the CPU is, read by QEMU (HMP ``info registers``), not by the guest."""
        if not self.alive() or self.qmp is None:
            return None
        try:
            text = self.qmp.hmp("info registers", timeout=2.0)
        except QmpError:
            return None
        match = re.search(r"PC=([0-9a-fA-F]+)", text)
        return int(match.group(1), 16) if match else None

    def gva2gpa(self, va: int) -> int | None:
        """QEMU's own translation of a guest virtual address (HMP ``gva2gpa``); None if unmapped."""
        text = self._qmp().hmp(f"gva2gpa {va:#x}")
        match = re.search(r"gpa:\s*(0x[0-9a-fA-F]+)", text)
        return int(match.group(1), 16) if match else None
