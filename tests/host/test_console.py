"""The serial client against a scripted fake guest on a socketpair (no QEMU).

The fake plays the agent's side of the wire byte for byte, so tag matching, echo skipping,
events, panics, second banners and silence are each tested on their own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import GuestCrashed, GuestHung, IomemError, ProtocolError
from harness.link.console import Console

BANNER = b"iomem ready proto=1 build=00ff page=4096 ram=0x40000000+0x10000000\r\niomem> "


class FakeGuest:
    """Answers each request line with what ``respond`` returns (raw bytes)."""

    def __init__(self, sock: socket.socket, respond: Callable[[str], bytes]) -> None:
        self.sock = sock
        self.respond = respond
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode()
                self.seen.append(text)
                out = self.respond(text)
                if out:
                    try:
                        self.sock.sendall(out)
                    except OSError:  # the test is over and closed the socket
                        return


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[socket.socket, socket.socket, Path]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs, tmp_path / "console.log"
    ours.close()
    theirs.close()


def _tag_and_body(line: str) -> tuple[str, str]:
    tag, _, body = line.partition(" ")
    return tag, body


def test_banner_then_tagged_requests(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)

    guest = FakeGuest(theirs, lambda line: f"{_tag_and_body(line)[0]} ok n={len(line)}\r\niomem> ".encode())
    console = Console(ours, log, timeout=2)
    banner = console.wait_banner()
    assert banner.page == 4096 and banner.build == "00ff"
    first = console.request("hello")
    second = console.request("pagesize")
    assert (first.tag, second.tag) == (1, 2)
    assert guest.seen == ["@1 hello", "@2 pagesize"]
    console.close()
    assert b"iomem ready" in log.read_bytes()  # every byte is in the log


def test_echo_is_skipped_while_on(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: f"{line}\r\n{_tag_and_body(line)[0]} ok\r\niomem> ".encode())
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    assert console.request("hello").ok


def test_wrong_tag_is_a_protocol_error(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: b"@99 ok\r\niomem> ")
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    with pytest.raises(ProtocolError, match="tag 99"):
        console.request("hello")


def test_panic_raises_with_registers(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: b"! panic sync exception esr=0x96000045 far=0x10 elr=0x40200000\r\n")
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    with pytest.raises(GuestCrashed) as caught:
        console.request("poke 0 0")
    assert caught.value.registers == {"esr": 0x96000045, "far": 0x10, "elr": 0x40200000}
    assert "panic" in caught.value.console_tail


def test_second_banner_means_reset(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: BANNER)
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    with pytest.raises(ProtocolError, match="second banner"):
        console.request("hello")


def test_events_are_kept_and_do_not_end_the_wait(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: f"! fault smmu ste=3\r\n{_tag_and_body(line)[0]} ok\r\niomem> ".encode())
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    assert console.request("hello").ok
    assert [e.kind for e in console.events] == ["fault"]


def test_silence_is_diagnosed_by_the_owner(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: b"")
    asked: list[str | None] = []

    def diagnose(what: str, command: str | None) -> IomemError:
        asked.append(command)
        return GuestHung(what, command=command, pc=0x40200000, runstate="running")

    console = Console(ours, log, diagnose=diagnose, timeout=0.2)
    console.wait_banner()
    with pytest.raises(GuestHung):
        console.request("hello")
    assert asked == ["hello"]


def test_closed_line_is_reported(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    theirs.close()
    with pytest.raises(ProtocolError, match="closed"):
        console.request("hello")


def test_stray_lines_with_echo_off_are_errors(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: f"{_tag_and_body(line)[0]} ok echo=0\r\niomem> garbage\r\n".encode())
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    assert console.request("echo off").ok and console.echo is False
    with pytest.raises(ProtocolError, match="garbage"):
        console.request("hello")


def test_pipeline_reads_every_reply_in_order(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    guest = FakeGuest(theirs, lambda line: f"{_tag_and_body(line)[0]} ok n={len(line)}\r\niomem> ".encode())
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    lines = [f"peek {i:#x} " + "x" * (1 + i % 900) for i in range(600)]
    replies = console.pipeline(lines)
    assert [r.tag for r in replies] == list(range(1, 601))
    assert [r.number("n") for r in replies] == [len(f"@{i + 1} {line}") for i, line in enumerate(lines)]
    assert guest.seen == [f"@{i + 1} {line}" for i, line in enumerate(lines)]
    assert console.request("after").tag == 601  # the session goes on in step


def test_pipeline_a_lost_request_is_a_tag_mismatch(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    """A request the guest never answered shows as the next reply's tag in its place."""
    ours, theirs, log = pair
    theirs.sendall(BANNER)

    def respond(line: str) -> bytes:
        tag, _ = _tag_and_body(line)
        return b"" if tag == "@3" else f"{tag} ok\r\niomem> ".encode()

    FakeGuest(theirs, respond)
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    with pytest.raises(ProtocolError, match="reply tag 4 does not match request tag 3"):
        console.pipeline(["stats"] * 10)


def test_pipeline_keeps_a_bounded_window(pair: tuple[socket.socket, socket.socket, Path]) -> None:
    """No more than PIPELINE_REQUESTS requests (and PIPELINE_BYTES bytes) go out unanswered."""
    from harness.link.console import PIPELINE_BYTES, PIPELINE_REQUESTS

    ours, theirs, log = pair
    theirs.sendall(BANNER)
    console = Console(ours, log, timeout=0.5)
    console.wait_banner()
    for width, most in ((10, PIPELINE_REQUESTS), (1000, PIPELINE_BYTES // 1010)):
        with pytest.raises(ProtocolError, match="no reply"):
            console.pipeline(["y" * width] * 500)
        theirs.settimeout(0.2)
        got = b""
        with contextlib.suppress(TimeoutError):
            while chunk := theirs.recv(65536):
                got += chunk
        assert 0 < got.count(b"\n") <= most and len(got) <= max(PIPELINE_BYTES, 1100)


def test_device_verbs_anywhere_in_what_is_sent_mark_the_console(
    pair: tuple[socket.socket, socket.socket, Path],
) -> None:
    """What harness/guest/warm.py relies on to never reuse a guest that drove a device."""
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    FakeGuest(theirs, lambda line: f"{_tag_and_body(line)[0]} ok\r\niomem> ".encode())
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    console.request("alloc 16")
    console.pipeline(["read 0x40000000 8", "stats"])
    assert not console.touched_devices
    console.request("edu info")
    assert console.touched_devices
    for sent in (b"@7 dma create\n", b"garbage poke 1 2\n"):
        other = Console(ours, log.with_suffix(".2"), timeout=2)
        assert not other.touched_devices
        other.send_raw(sent)
        assert other.touched_devices


def test_quiet_consumes_the_last_prompt_and_sees_anything_after_it(
    pair: tuple[socket.socket, socket.socket, Path],
) -> None:
    ours, theirs, log = pair
    theirs.sendall(BANNER)
    console = Console(ours, log, timeout=2)
    console.wait_banner()
    theirs.sendall(b"iomem> ")
    assert console.quiet(timeout=1)
    theirs.sendall(b"iomem> ! event kind=x\r\n")
    assert not console.quiet(timeout=1)  # bytes after the prompt: the line is not quiet
    assert not console.quiet(timeout=0.1)  # no prompt at all
