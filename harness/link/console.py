"""The serial protocol client: tagged requests, exactly one reply each, ``!`` events, and the
bad patterns that fail at once (``! panic``, a second banner, a reply with the wrong tag).

It runs on pexpect over the harness's end of the serial line (two pipes), with pexpect's 50 ms
send delay and its sleep after each read both off. Every byte the guest sends is teed to
the console log, whether or not anyone is waiting for it. When the guest stops answering,
``diagnose`` (supplied by the owner, who can see QEMU) turns the timeout into
:class:`GuestCrashed` or :class:`GuestHung`.
"""

from __future__ import annotations

import collections
import errno
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import pexpect
from pexpect import fdpexpect

from harness.errors import ArtifactsUnwritable, GuestPanic, IomemError, ProtocolError
from harness.link.protocol import (
    PROMPT,
    Banner,
    Event,
    Reply,
    check_request,
    format_request,
    parse_banner,
    parse_event,
    parse_reply,
    strip_prompt,
)

DEFAULT_TIMEOUT = 10.0
TAIL_LINES = 60
PIPELINE_REQUESTS = 64
"""At most this many pipelined requests are sent and not yet answered ..."""
PIPELINE_BYTES = 16 * 1024
"""... and at most this many bytes of them: far below a pipe's buffer (64 KiB), so a send
never blocks while QEMU, its PL011 output unread, waits for the harness (no deadlock)."""

DEVICE_VERBS = frozenset({b"dma", b"edu", b"poke"})
"""Words that, anywhere in what is sent, mean the guest may have driven a device whose state
outlives a reset (QEMU 7.2's edu has no reset handler) or written device registers: such a
guest is never rebooted in place for another (``touched_devices``; harness/guest/warm.py)."""

# diagnose(what, command) -> the error to raise when the guest stopped answering.
Diagnose = Callable[[str, str | None], IomemError]


class SerialLine(Protocol):
    """What the console needs of the serial line: an fd to read the guest's output from and a
    way to write its input (the machine's pipes, harness/qemu/serial.py; a socket in tests)."""

    def fileno(self) -> int: ...

    def sendall(self, data: bytes, /) -> None: ...


class Console:
    """Request/reply over the guest's serial line."""

    def __init__(
        self,
        sock: SerialLine,
        log_path: Path,
        *,
        diagnose: Diagnose | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._sock = sock
        self._log: BinaryIO = log_path.open("wb", buffering=0)  # every byte, at once
        self._child = fdpexpect.fdspawn(sock.fileno(), timeout=timeout, encoding=None, use_poll=True)
        self._child.delaybeforesend = None  # pexpect sleeps 50 ms before every send otherwise
        self._child.delayafterread = None  # ... and 0.1 ms after every read (20k+ reads a suite)
        self._child.logfile_read = self._log
        # compiled once, not on every line (pexpect's expect() compiles its list each call)
        self._line_patterns = self._child.compile_pattern_list([b"\n", pexpect.TIMEOUT, pexpect.EOF])
        self._diagnose = diagnose
        self._lock = threading.RLock()
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._next_tag = 1
        self.timeout = timeout
        self.echo = True
        self.banner: Banner | None = None
        self.events: list[Event] = []
        self.stray: list[str] = []
        self.on_event: Callable[[Event], None] | None = None
        self.log_path = log_path
        self.touched_devices = False
        # Why the guest stopped answering (a panic, silence, a closed line), once it has: then
        # nobody waits for it to answer again (Guest.close skips its power-off request).
        self.failure: str | None = None

    # ------------------------------------------------------------ lines
    def tail(self) -> str:
        return "\n".join(self._tail)

    def _fail(self, what: str, command: str | None) -> IomemError:
        self.failure = what
        if self._diagnose is not None:
            return self._diagnose(what, command)
        return ProtocolError(what, command=command, console_tail=self.tail())

    def _next_line(self, deadline: float, command: str | None) -> str:
        """The next complete line (CR and leading prompts removed)."""
        remaining = deadline - time.monotonic()
        try:
            index = self._child.expect_list(self._line_patterns, timeout=max(remaining, 0))
        except OSError as exc:  # ECONNRESET when QEMU dies with bytes unread
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                what = f"cannot write {self.log_path} ({exc.strerror})"
                raise ArtifactsUnwritable(what, command=command, console_tail=self.tail()) from exc
            raise self._fail(f"the serial line closed ({exc.strerror})", command) from exc
        if index == 1:
            raise self._fail("no reply from the guest", command)
        if index == 2:
            raise self._fail("the serial line closed (QEMU exited?)", command)
        raw = bytes(self._child.before)
        line = strip_prompt(raw.decode("ascii", errors="replace").replace("\r", ""))
        if line:
            self._tail.append(line)
        return line

    def _handle_unsolicited(self, line: str, command: str | None) -> bool:
        """Events and banners; True if ``line`` was one (and was dealt with)."""
        event = parse_event(line)
        if event is not None:
            self.events.append(event)
            if event.kind == "panic":
                self.failure = f"panic: {event.text}"
                raise GuestPanic(
                    f"guest panic: {event.text}",
                    reason=event.text,
                    command=command,
                    console_tail=self.tail(),
                    registers={
                        k: int(v, 16)
                        for k, v in event.keys.items()
                        if k in ("esr", "far", "elr") and v.startswith("0x")
                    },
                )
            if self.on_event is not None:
                self.on_event(event)
            return True
        banner = parse_banner(line)
        if banner is not None:
            if self.banner is not None:
                raise ProtocolError(
                    "second banner: the guest reset unexpectedly", command=command, console_tail=self.tail()
                )
            self.banner = banner
            return True
        return False

    # ------------------------------------------------------------ start-up
    def wait_banner(self, timeout: float = DEFAULT_TIMEOUT) -> Banner:
        """Wait for the boot banner and the first prompt."""
        with self._lock:
            deadline = time.monotonic() + timeout
            while self.banner is None:
                line = self._next_line(deadline, "boot")
                if not self._handle_unsolicited(line, "boot") and line:
                    self.stray.append(line)
            index = self._child.expect_exact(
                [b"iomem> ", pexpect.TIMEOUT, pexpect.EOF], timeout=max(deadline - time.monotonic(), 0)
            )
            if index != 0:
                raise self._fail("banner but no prompt", "boot")
            return self.banner

    # ------------------------------------------------------------ requests
    def request(self, line: str, *, timeout: float | None = None) -> Reply:
        """Send one request, tagged, and return its reply (``ok`` or ``err``)."""
        line = check_request(line)
        with self._lock:
            tag = self._next_tag
            self._next_tag = self._next_tag % 0xFFFF_FFFF + 1
            self._send(format_request(tag, line), line)
            return self._await_reply(tag, line, timeout)

    def pipeline(self, lines: Sequence[str], *, timeout: float | None = None) -> list[Reply]:
        """Many requests without a round trip each: up to :data:`PIPELINE_REQUESTS` (and
        :data:`PIPELINE_BYTES`) are on the wire at once, and every reply is read in order
        and matched to its request's tag exactly as :meth:`request` does. Nothing is lost:
        QEMU takes input from the pipe only as far as the guest has room (the virtio
        console's posted buffers, or the UART's FIFO), the rest waits in the pipe, and the
        guest handles one line at a time. ``timeout`` is per reply."""
        checked = [check_request(line) for line in lines]
        replies: list[Reply] = []
        with self._lock:
            tags: list[int] = []
            for _ in checked:
                tags.append(self._next_tag)
                self._next_tag = self._next_tag % 0xFFFF_FFFF + 1
            sent = 0  # requests written
            in_flight = 0  # bytes written and not yet answered
            encoded = [format_request(tag, line) for tag, line in zip(tags, checked, strict=True)]
            while len(replies) < len(checked):
                if sent - len(replies) <= PIPELINE_REQUESTS // 2:  # refill in batches
                    batch: list[bytes] = []
                    while sent < len(checked) and sent - len(replies) < PIPELINE_REQUESTS:
                        size = len(encoded[sent])
                        if sent > len(replies) and in_flight + size > PIPELINE_BYTES:
                            break  # (one request always goes, whatever its size)
                        batch.append(encoded[sent])
                        in_flight += size
                        sent += 1
                    if batch:
                        self._send(b"".join(batch), checked[len(replies)])
                index = len(replies)
                replies.append(self._await_reply(tags[index], checked[index], timeout))
                in_flight -= len(encoded[index])
        return replies

    def _send(self, data: bytes, command: str | None) -> None:
        if not self.touched_devices and DEVICE_VERBS.intersection(data.split()):
            self.touched_devices = True
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._fail(f"the serial line closed ({exc.strerror})", command) from exc

    def _await_reply(self, tag: int | None, line: str, timeout: float | None) -> Reply:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        echo = f"@{tag} {line}" if tag is not None else line
        while True:
            got = self._next_line(deadline, line)
            if not got or self._handle_unsolicited(got, line):
                continue
            reply = parse_reply(got)
            if reply is None:
                if self.echo and got.strip() == echo.strip():
                    continue
                raise ProtocolError(
                    f"unexpected line from the guest: {got!r}", command=line, console_tail=self.tail()
                )
            if reply.tag != tag:
                raise ProtocolError(
                    f"reply tag {reply.tag} does not match request tag {tag}",
                    command=line,
                    console_tail=self.tail(),
                )
            if line in ("echo off", "echo on") and reply.ok:
                self.echo = line == "echo on"
            return reply

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for testing the guest's handling of bad input)."""
        with self._lock:
            self._send(data, None)

    def exchange_raw(self, data: bytes, *, timeout: float | None = None) -> tuple[list[Reply], Reply]:
        """Send bytes as they are, then a tagged ``echo off`` to resynchronise; return the
        replies the bytes provoked (in order) and the ``echo off`` reply. A half line is ended
        with a newline first, so the harness's own request stands alone; whatever the bytes did
        to echo, it is off again afterwards."""
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            tag = self._next_tag
            self._next_tag = self._next_tag % 0xFFFF_FFFF + 1
            self._send(data + format_request(tag, "echo off"), None)
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            provoked: list[Reply] = []
            while True:
                got = self._next_line(deadline, "(raw bytes) then echo off")
                if not got or self._handle_unsolicited(got, None):
                    continue
                reply = parse_reply(got)
                if reply is None:
                    continue  # the echo of what was sent, if the bytes turned echo on
                if reply.tag == tag and reply.ok:
                    self.echo = False
                    return provoked, reply
                provoked.append(reply)

    def raw_exchange(self, data: bytes, *, timeout: float | None = None) -> Reply:
        """Send raw bytes and return the next reply, whatever its tag."""
        with self._lock:
            self._send(data, None)
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            shown = data.decode("ascii", errors="replace").strip()
            while True:
                got = self._next_line(deadline, shown)
                if not got or self._handle_unsolicited(got, shown):
                    continue
                reply = parse_reply(got)
                if reply is not None:
                    return reply
                if not self.echo:
                    raise ProtocolError(
                        f"unexpected line from the guest: {got!r}", command=shown, console_tail=self.tail()
                    )

    def expect_prompt(self, timeout: float = 1.0) -> bool:
        """True if a prompt arrives within ``timeout`` (the agent is idle and ready)."""
        with self._lock:
            index: int = self._child.expect_exact([b"iomem> ", pexpect.TIMEOUT, pexpect.EOF], timeout=timeout)
            return index == 0

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Read whatever the guest sent while nobody was waiting; return the new events."""
        before = len(self.events)
        with self._lock:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    index = self._child.expect(
                        [b"\n", pexpect.TIMEOUT, pexpect.EOF], timeout=max(deadline - time.monotonic(), 0)
                    )
                except OSError:
                    break
                if index != 0:
                    break
                line = strip_prompt(bytes(self._child.before).decode("ascii", "replace").replace("\r", ""))
                if line:
                    self._tail.append(line)
                    if not self._handle_unsolicited(line, None):
                        self.stray.append(line)
        return self.events[before:]

    def quiet(self, timeout: float = 1.0) -> bool:
        """Whether the guest, done answering, has written its prompt and nothing after it
        (which is then consumed): the line holds no byte of this session any more."""
        with self._lock:
            try:
                index = self._child.expect_exact(
                    [PROMPT.encode(), pexpect.TIMEOUT, pexpect.EOF], timeout=timeout
                )
            except OSError:
                return False
            return index == 0 and not self._child.buffer

    def close(self) -> None:
        with self._lock:
            try:
                self._log.flush()
                self._log.close()
            except ValueError:
                pass
