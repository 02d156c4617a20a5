"""A small synchronous facade over ``qemu.qmp``'s asyncio client.

The client runs on a private event loop in a daemon thread; callers block on each command
with a timeout. Every command, reply and event is written to a trace file, and events are
kept (nothing is dropped) so the machine can tell a guest reset or panic from a hang.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import socket
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from harness.errors import IomemError

T = TypeVar("T")


class QmpError(IomemError):
    """A QMP command failed or the monitor went away."""


@dataclass(frozen=True)
class Pending:
    """Commands submitted to QEMU and not yet waited for (:meth:`QmpSession.finish`)."""

    future: concurrent.futures.Future[list[object]]
    what: str


class QmpSession:
    """One QMP connection on an already-connected socket (one end of a socketpair)."""

    def __init__(self, sock: socket.socket, trace_path: Path, *, connect_timeout: float = 10.0) -> None:
        self._trace: TextIO = trace_path.open("w", buffering=1)
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qmp", daemon=True)
        self._thread.start()
        self._client = QMPClient("iomem")
        self._event_task: concurrent.futures.Future[None] | None = None
        try:
            self._run(self._client.connect(sock), connect_timeout, "connect")
        except BaseException:
            self._stop_loop()
            raise
        self._event_task = asyncio.run_coroutine_threadsafe(self._pump_events(), self._loop)

    def _log(self, direction: str, payload: object) -> None:
        stamp = time.monotonic() - self._t0
        with contextlib.suppress(ValueError):  # the trace is closed during teardown
            self._trace.write(f"{stamp:10.6f} {direction} {json.dumps(payload, default=str)}\n")

    async def _pump_events(self) -> None:
        async for event in self._client.events:
            record = dict(event)
            with self._lock:
                self.events.append(record)
            self._log("event", record)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        return self._result(asyncio.run_coroutine_threadsafe(coro, self._loop), timeout, what)

    def _result(self, future: concurrent.futures.Future[T], timeout: float, what: str) -> T:
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise QmpError(f"QMP {what} timed out after {timeout:g} s", command=what) from None
        except QMPError as exc:
            raise QmpError(f"QMP {what} failed: {exc}", command=what) from exc
        except (OSError, EOFError) as exc:
            raise QmpError(f"QMP {what}: connection lost ({exc})", command=what) from exc

    def execute(
        self, command: str, arguments: dict[str, object] | None = None, *, timeout: float = 10.0
    ) -> Any:
        """Run one QMP command and return its ``return`` value."""
        self._log("->", {"execute": command, "arguments": arguments or {}})
        try:
            result = self._run(self._client.execute(command, arguments), timeout, command)
        except QmpError as exc:
            self._log("!!", str(exc))
            raise
        self._log("<-", result)
        return result

    def submit_in_order(self, commands: Sequence[tuple[str, dict[str, object] | None]]) -> Pending:
        """Several commands, each sent when the one before has answered, on the client's
        thread, without waiting: :meth:`finish` waits for their ``return`` values."""
        for command, arguments in commands:
            self._log("->", {"execute": command, "arguments": arguments or {}})

        async def run_in_order() -> list[object]:
            return [await self._client.execute(c, a) for c, a in commands]

        what = " then ".join(c for c, _ in commands)
        return Pending(asyncio.run_coroutine_threadsafe(run_in_order(), self._loop), what)

    def finish(self, pending: Pending, *, timeout: float = 10.0) -> list[Any]:
        """The ``return`` values of submitted commands; the first failure raises."""
        try:
            results = self._result(pending.future, timeout, pending.what)
        except QmpError as exc:
            self._log("!!", str(exc))
            raise
        for result in results:
            self._log("<-", result)
        return results

    def hmp(self, command_line: str, *, timeout: float = 10.0) -> str:
        """Run a human-monitor command through QMP and return its text output."""
        return str(self.execute("human-monitor-command", {"command-line": command_line}, timeout=timeout))

    def hmp_many(self, command_lines: Sequence[str], *, timeout: float = 10.0) -> list[str]:
        """Several human-monitor commands sent at once (QEMU runs them in order): one hand-off
        to the client's thread instead of one per command. Their text outputs, in order."""
        commands = [("human-monitor-command", {"command-line": line}) for line in command_lines]
        for command, arguments in commands:
            self._log("->", {"execute": command, "arguments": arguments})

        async def run_all() -> list[object]:
            return list(await asyncio.gather(*(self._client.execute(c, a) for c, a in commands)))

        try:
            results = self._run(run_all(), timeout, "human-monitor-command (batch)")
        except QmpError as exc:
            self._log("!!", str(exc))
            raise
        for result in results:
            self._log("<-", result)
        return [str(result) for result in results]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=2)
        if not self._loop.is_running():
            self._loop.close()

    def close(self) -> None:
        """Disconnect (never raises: teardown must always get to the kill)."""
        if self._event_task is not None:
            self._event_task.cancel()
        with contextlib.suppress(QmpError, RuntimeError):
            self._run(self._client.disconnect(), 2.0, "disconnect")
        self._stop_loop()
        self._trace.close()
