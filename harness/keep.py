"""Kept guests: ``pytest --iomem-keep`` leaves a failing test's guest paused instead of
reaping it, so a person can get in (``iomem attach DIR``, ``gdb-multiarch``) and end it
later (``iomem reap``). Every other guest is still reaped as usual.

With ``--iomem-keep`` the plugin launches QEMU without the parent-death signal (a kept guest
must outlive pytest). When a test fails, :func:`keep` for each of its guests:

1. pauses the CPU (QMP ``stop``);
2. moves the gdbstub to a Unix socket ``DIR/gdb.sock`` (HMP ``gdbserver``);
3. hands the harness's ends of the serial pipes to a small relay process
   (``python -m harness.keep relay``) that serves it on ``DIR/console.sock``, keeps the
   output in ``DIR/console-kept.log`` and replays it to whoever attaches;
4. writes ``DIR/kept.json`` (QEMU and relay pids, ELF, artifacts, test id) and lets go of
   the machine without killing it.

``DIR`` is ``build/kept/<QEMU pid>`` (short: Unix socket paths are limited to 107 bytes),
distinct per guest, so xdist workers never share one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import PROJECT_ROOT
from harness.errors import StateError
from harness.qemu.serial import SerialPipes

if TYPE_CHECKING:
    from harness.guest import Guest

KEEP_ROOT = PROJECT_ROOT / "build" / "kept"
BACKLOG = 64 * 1024


@dataclass
class Kept:
    directory: str
    qemu_pid: int
    relay_pid: int
    profile: str
    elf: str
    artifacts: str
    test: str

    @property
    def gdb_socket(self) -> Path:
        return Path(self.directory) / "gdb.sock"

    @property
    def console_socket(self) -> Path:
        return Path(self.directory) / "console.sock"

    def gdb_command(self) -> str:
        return f"gdb-multiarch {self.elf} -ex 'target remote {self.gdb_socket}'"

    def how_to_get_in(self) -> str:
        return "\n".join(
            [
                f"kept guest: QEMU pid {self.qemu_pid} ({self.profile}), paused, in {self.directory}",
                f"  console:  iomem attach {self.directory}",
                f"  gdb:      {self.gdb_command()}",
                "  end it:   iomem reap",
            ]
        )


def keep(guest: Guest, test: str) -> Kept:
    """Pause ``guest``, serve its console and gdbstub on Unix sockets, and let go of it."""
    machine = guest.machine
    if machine.qmp is None or machine.serial is None or machine.pid is None:
        raise StateError("only a running guest can be kept")
    directory = KEEP_ROOT / str(machine.pid)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    machine.qmp.execute("stop")
    gdb_socket = directory / "gdb.sock"
    machine.qmp.hmp(f"gdbserver unix:{gdb_socket},server=on,wait=off")
    read_fd, write_fd = machine.serial.read_fd, machine.serial.write_fd
    with (directory / "relay.log").open("wb") as log:
        relay = subprocess.Popen(
            [sys.executable, "-m", "harness.keep", "relay", str(directory), str(read_fd), str(write_fd)],
            pass_fds=[read_fd, write_fd],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while not (directory / "console.sock").exists():
        if time.monotonic() > deadline or relay.poll() is not None:
            relay.kill()
            raise StateError(f"the console relay did not start: {(directory / 'relay.log').read_text()}")
        time.sleep(0.02)
    kept = Kept(
        directory=str(directory),
        qemu_pid=machine.pid,
        relay_pid=relay.pid,
        profile=guest.profile.name,
        elf=str(guest.elf.path),
        artifacts=str(guest.artifacts),
        test=test,
    )
    (directory / "kept.json").write_text(json.dumps(asdict(kept), indent=2) + "\n")
    machine.detach()
    return kept


def load(directory: Path) -> Kept:
    return Kept(**json.loads((Path(directory) / "kept.json").read_text()))


def kept_guests() -> list[Kept]:
    if not KEEP_ROOT.is_dir():
        return []
    found = []
    for path in sorted(KEEP_ROOT.glob("*/kept.json")):
        with contextlib.suppress(OSError, ValueError, TypeError):
            found.append(load(path.parent))
    return found


def _is_process(pid: int, name: bytes) -> bool:
    try:
        return name in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def reap() -> list[Kept]:
    """End every kept guest (QEMU and its relay) and remove its directory."""
    ended = kept_guests()
    for kept in ended:
        for pid, name in ((kept.qemu_pid, b"qemu-system"), (kept.relay_pid, b"harness.keep")):
            if _is_process(pid, name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(kept.directory, ignore_errors=True)
    return ended


def resume(kept: Kept) -> None:
    """Start the paused CPU: a gdb ``c`` on the kept gdbstub (ack or no-ack mode alike)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(kept.gdb_socket))
        time.sleep(0.05)  # QEMU pauses the VM when a debugger connects: let it, then continue
        sock.sendall(b"+$c#63")
        time.sleep(0.05)


def attach(kept: Kept, *, stdin: int = 0, stdout: int = 1, paused: bool = False) -> int:
    """Bridge the terminal (or any fds) to the kept guest's console until EOF on ``stdin``
    or the guest goes away. The guest stays kept: `iomem reap` ends it."""
    if not paused:
        resume(kept)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(kept.console_socket))
        os.write(stdout, f"[attached to {kept.directory}; Ctrl-D detaches, `iomem reap` ends it]\n".encode())
        while True:
            ready, _, _ = select.select([sock.fileno(), stdin], [], [])
            if sock.fileno() in ready:
                data = sock.recv(4096)
                if not data:
                    os.write(stdout, b"\n[the guest is gone]\n")
                    return 1
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:
                    return 0
                sock.sendall(data.replace(b"\r\n", b"\n"))


def relay(directory: Path, read_fd: int, write_fd: int) -> int:
    """Serve the serial line (its two pipes) on ``directory/console.sock``: one client at a time,
    the output kept in a backlog (replayed on connect) and in ``console-kept.log``."""
    serial = SerialPipes(read_fd, write_fd)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = directory / "console.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server.bind(str(path))
    server.listen(1)
    backlog = bytearray()
    client: socket.socket | None = None
    with (directory / "console-kept.log").open("ab", buffering=0) as log:
        while True:
            watched: list[socket.socket | SerialPipes] = [serial, server]
            if client is not None:
                watched.append(client)
            ready, _, _ = select.select(watched, [], [])
            if serial in ready:
                data = os.read(serial.read_fd, 4096)
                if not data:
                    return 0  # QEMU is gone
                log.write(data)
                backlog += data
                del backlog[:-BACKLOG]
                if client is not None:
                    try:
                        client.sendall(data)
                    except OSError:
                        client = None
            if server in ready:
                new, _ = server.accept()
                if client is not None:
                    client.close()
                client = new
                with contextlib.suppress(OSError):
                    client.sendall(bytes(backlog))
            if client is not None and client in ready:
                try:
                    data = client.recv(4096)
                except OSError:
                    data = b""
                if data:
                    serial.sendall(data)
                else:
                    client.close()
                    client = None


# ------------------------------------------------------------------ the iomem commands
def cmd_attach(args: argparse.Namespace) -> int:
    try:
        kept = load(Path(args.dir))
    except (OSError, ValueError, TypeError) as exc:
        print(f"iomem attach: {args.dir} is not a kept guest ({exc})", file=sys.stderr)
        return 2
    print(kept.how_to_get_in(), file=sys.stderr)
    try:
        return attach(kept, paused=args.paused)
    except OSError as exc:
        print(f"iomem attach: {exc}", file=sys.stderr)
        return 2


def cmd_reap(args: argparse.Namespace) -> int:
    ended = reap()
    for kept in ended:
        print(f"reaped QEMU pid {kept.qemu_pid} ({kept.test})")
    print(f"{len(ended)} kept guest(s) ended")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`iomem attach DIR` and `iomem reap` (registered by harness/cli.py)."""
    p = sub.add_parser("attach", help="open the console of a guest kept by pytest --iomem-keep")
    p.add_argument("dir", metavar="DIR", help="the kept guest's directory (printed by the failing test)")
    p.add_argument("--paused", action="store_true", help="do not resume the CPU (e.g. gdb is driving)")
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("reap", help="end every guest kept by pytest --iomem-keep")
    p.set_defaults(func=cmd_reap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.keep")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("relay")
    p.add_argument("dir", type=Path)
    p.add_argument("read_fd", type=int)
    p.add_argument("write_fd", type=int)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return relay(args.dir, args.read_fd, args.write_fd)


if __name__ == "__main__":
    sys.exit(main())
