"""The guest's request line as two pipes the harness owns (QEMU ``-chardev pipe``).

Two chardevs: ``serial`` (the PL011) and ``console`` (a ``virtconsole`` on
``virtio-serial-device``). The harness writes its requests to the console, and both chardevs
write into the one pipe it reads: the guest answers a request on the device it came in on,
and prints its banner, events and panics on the UART (docs/protocol-notes.md, Transport).
QEMU 7.2's PL011 takes its input one byte per turn of QEMU's main loop and gives out each byte
with its own system call; the virtio console moves a posted buffer or a whole line per turn
(docs/harness.md, Suite speed). With ``uart_input`` the requests go to the PL011 instead and
the console reads ``/dev/null``: a person on the UART alone, the protocol's own transport.

``-chardev pipe,path=P`` opens ``P.in`` (what the guest reads) and ``P.out`` (what it
writes). The harness makes both pipes anonymous, passes QEMU their far ends as inherited fds,
and names them for QEMU with symlinks to ``/proc/self/fd/N``, which QEMU resolves in its own
fd table; the links are removed as soon as QEMU has opened them. No FIFO exists on disk and
nothing can connect in between, as with the socketpairs of QMP and the gdbstub. Over pipes the
per-byte calls cost less than ``sendmsg``/``recvmsg`` on a socket (20 % less wall time for
8,000 pipelined ``obj new`` + ``obj release`` when both directions were on the PL011).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class SerialPipes:
    """The harness's ends: ``fileno()`` reads what the guest writes, ``sendall`` writes what it
    reads. QEMU's exit closes its ends, so a read then sees end of file."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def fileno(self) -> int:
        return self.read_fd

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1


class SerialPlumbing:
    """Both pipes, QEMU's ends and their names, for one QEMU start."""

    def __init__(self, directory: Path, *, uart_input: bool = False) -> None:
        self.path = directory / "serial"  # the PL011's chardev
        self.console_path = directory / "console"  # the virtio console's
        # uart_input: the harness writes to the PL011 instead and the virtio console reads
        # /dev/null, as for a person on the UART alone (the protocol's own transport).
        self.uart_input = uart_input
        guest_in_r, guest_in_w = os.pipe()
        guest_out_r, guest_out_w = os.pipe()
        self.ours = SerialPipes(guest_out_r, guest_in_w)
        self.theirs: tuple[int, ...] = (guest_in_r, guest_out_w)
        try:
            for link, target in self._links(guest_in_r, guest_out_w):
                link.unlink(missing_ok=True)
                link.symlink_to(target)
        except OSError:
            self.close()
            raise

    def _links(self, guest_in: int, guest_out: int) -> list[tuple[Path, str]]:
        def named(path: Path, suffix: str) -> Path:
            return path.with_name(path.name + suffix)

        requests, replies = f"/proc/self/fd/{guest_in}", f"/proc/self/fd/{guest_out}"
        return [
            (named(self.path, ".in"), requests if self.uart_input else os.devnull),
            (named(self.path, ".out"), replies),
            (named(self.console_path, ".in"), os.devnull if self.uart_input else requests),
            (named(self.console_path, ".out"), replies),  # QEMU writes both into the one pipe
        ]

    def qemu_opened(self) -> None:
        """QEMU holds its ends: drop the harness's copies (so QEMU's exit is end of file) and
        the names."""
        for fd in self.theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.theirs = ()
        self.unlink()

    def unlink(self) -> None:
        for path in (self.path, self.console_path):
            for suffix in (".in", ".out"):
                with contextlib.suppress(OSError):
                    path.with_name(path.name + suffix).unlink()

    def close(self) -> None:
        """Everything, after a failed start."""
        self.ours.close()
        for fd in self.theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.theirs = ()
        self.unlink()
