"""The ``iomem`` command line (README.md, docs/harness.md): profiles, firmware, exec, console, bench.

Exit statuses: 0 success; 1 some reply was ``err``; 2 the harness could not boot the guest,
lost it, saw ``! panic``, or was given a bad profile or request (one line on stderr, with the
log paths when a guest was involved). No QEMU process outlives a command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from harness import PROJECT_ROOT, keep
from harness.errors import InvalidInput, IomemError, StateError
from harness.guest import Guest
from harness.image.build import ensure_firmware
from harness.link.protocol import Event, Reply
from harness.qemu import profile as profiles
from harness.tools.commands import Commands
from harness.tools.lines import HarnessCommand, Line, Refused, bounded_lines, classify

EXIT_OK, EXIT_ERR, EXIT_HARNESS = 0, 1, 2
LOG_ROOT = PROJECT_ROOT / "build" / "logs"


def _log_dir(requested: str | None, what: str) -> Path:
    if requested:
        return Path(requested).resolve()
    return LOG_ROOT / f"{what}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _fail(message: str, guest: Guest | None = None) -> int:
    first, _, rest = message.partition("\n")
    print(f"iomem: {first}", file=sys.stderr)
    if rest.strip():
        print(rest, file=sys.stderr)
    if guest is not None:
        print(f"iomem: logs in {guest.artifacts} (console.log, qemu-stderr.log, qmp.log)", file=sys.stderr)
    return EXIT_HARNESS


def _show(reply: Reply, as_json: bool) -> None:
    if as_json:
        print(json.dumps(reply.to_json()), flush=True)
    else:
        line = reply.line
        if reply.tag is not None and line.startswith("@"):
            line = line.split(" ", 1)[1]
        print(line, flush=True)


# ------------------------------------------------------------ commands
def cmd_profiles(args: argparse.Namespace) -> int:
    try:
        found = profiles.all_profiles()
    except IomemError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps([p.summary() for p in found], indent=2))
        return EXIT_OK
    print(f"{'name':<14} {'cpu':<11} {'granule':>7} {'ram':<20} {'iommu':<7} devices")
    for p in found:
        print(
            f"{p.name:<14} {p.cpu:<11} {p.granule:>7} {p.summary()['ram']!s:<20} {p.iommu:<7} "
            f"{','.join(p.devices)}"
        )
    return EXIT_OK


def cmd_firmware(args: argparse.Namespace) -> int:
    try:
        print(ensure_firmware(profiles.load(args.profile)))
    except IomemError as exc:
        return _fail(str(exc))
    return EXIT_OK


def _checked_args(lines: list[str]) -> list[Line]:
    """LINE arguments: a malformed one ends the command before any guest boots (exit 2)."""
    out: list[Line] = []
    for raw in lines:
        kind = classify(raw)
        if kind is None:
            raise InvalidInput("empty request")
        if isinstance(kind, Refused):
            raise InvalidInput(f"bad request: {kind.reply.text}")
        out.append(kind)
    return out


def _stdin_lines() -> Iterator[Line]:
    """stdin as a co-process feeds it: a malformed line becomes a local ``err`` reply."""
    for raw, dropped in bounded_lines(sys.stdin.buffer):
        kind = classify(raw, overflow=dropped)
        if kind is not None:
            yield kind


def run_line(guest: Guest, commands: Commands, kind: Line) -> list[Reply]:
    """The replies to one filtered line: refused locally, a ``:`` command, or the guest's."""
    if isinstance(kind, Refused):
        return [kind.reply]
    if isinstance(kind, HarnessCommand):
        return commands.run(kind)
    return [guest.request(kind.line)]


def cmd_exec(args: argparse.Namespace) -> int:
    try:
        profile = profiles.load(args.profile)
        lines: Iterable[Line] = _checked_args(args.lines) if args.lines else _stdin_lines()
        firmware = ensure_firmware(profile)
    except (IomemError, ValueError) as exc:
        return _fail(str(exc))
    status = EXIT_OK
    guest = Guest(profile, _log_dir(args.log_dir, "exec"), firmware=firmware)
    try:
        with guest:
            commands = Commands(guest)
            for kind in lines:
                for reply in run_line(guest, commands, kind):
                    _show(reply, args.json)
                    if not reply.ok:
                        status = EXIT_ERR
    except IomemError as exc:
        return _fail(str(exc), guest)
    except KeyboardInterrupt:
        return _fail("interrupted", guest)
    return status


def _console_loop(guest: Guest, log: TextIO | None = None) -> None:
    import readline

    from harness.link.completion import Completer, format_help
    from harness.link.describe import from_guest

    history = Path.home() / ".iomem_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    console = guest.console
    if console is None:
        raise StateError("the guest is not booted")
    busy = threading.Event()
    stop = threading.Event()
    completer = Completer(from_guest(console.request))  # the guest's own table, via help
    colour = sys.stdout.isatty()

    def complete(text: str, state: int) -> str | None:
        line = readline.get_line_buffer()
        before = line[: readline.get_begidx()]
        found = completer.candidates(before, text)
        if state >= len(found):
            return None
        return found[state] + ("" if found[state].endswith("=") else " ")

    readline.set_completer(complete)
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")

    def keep(text: str) -> None:
        if log is not None:
            log.write(text + "\n")
            log.flush()

    def show_event(event: Event) -> None:
        shown = f"\x1b[1;33m{event.line}\x1b[0m" if colour else event.line
        sys.stdout.write("\r" + shown + "\n")
        sys.stdout.flush()
        keep(event.line)
        if not busy.is_set():
            readline.redisplay()

    def watch() -> None:  # shows events while the person is typing
        while not stop.is_set():
            if not busy.is_set():
                try:
                    console.poll(0.05)
                except IomemError:
                    return
            time.sleep(0.05)

    console.on_event = show_event
    commands = Commands(guest)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    print(
        f"iomem console on {guest.profile.name} (page={guest.banner.page if guest.banner else '?'}); "
        "`help` lists verbs, `:help` the harness's commands, Ctrl-D or `quit` powers off."
    )
    try:
        while True:
            try:
                line = input("iomem> ")
            except EOFError:
                print()
                break
            if not line.strip():
                continue
            if line.strip() == "quit":
                break
            kind = classify(line)
            if kind is None:
                continue
            busy.set()
            try:
                replies = run_line(guest, commands, kind)
            finally:
                busy.clear()
            keep(f"iomem> {line}")
            for reply in replies:
                keep(reply.line.split(" ", 1)[1] if reply.line.startswith("@") else reply.line)
                completer.observe(line, reply)
                described = format_help(reply) if line.split()[0] == "help" else None
                if described is not None:
                    print(described, flush=True)
                    continue
                _show(reply, False)
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            readline.write_history_file(history)


def cmd_console(args: argparse.Namespace) -> int:
    try:
        profile = profiles.load(args.profile)
        firmware = ensure_firmware(profile)
    except IomemError as exc:
        return _fail(str(exc))
    guest = Guest(profile, _log_dir(args.log_dir, "console"), firmware=firmware)
    try:
        with guest, contextlib.ExitStack() as stack:
            log = stack.enter_context(Path(args.log).open("a")) if args.log else None
            _console_loop(guest, log)
    except IomemError as exc:
        return _fail(str(exc), guest)
    except KeyboardInterrupt:
        print()
    return EXIT_OK


def cmd_inject(args: argparse.Namespace) -> int:
    from harness.tools import inject

    try:
        profile = profiles.load(args.profile)
        known = inject.kinds_for(profile)
        kinds = args.kind or list(known)
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise InvalidInput(f"no injection kind {unknown[0]!r} on {profile.name} ({', '.join(known)})")
        ensure_firmware(profile)
        outcomes = inject.run(profile, _log_dir(args.log_dir, "inject"), kinds)
    except IomemError as exc:
        return _fail(str(exc))
    print(inject.table(outcomes))
    return EXIT_OK if all(o.detected for o in outcomes) else EXIT_ERR


def cmd_fuzz(args: argparse.Namespace) -> int:
    from harness.tools import fuzz

    try:
        profile = profiles.load(args.profile)
        ensure_firmware(profile)
        report = fuzz.run(profile, _log_dir(args.log_dir, "fuzz"), lines=args.lines, seed=args.seed)
    except IomemError as exc:
        return _fail(str(exc))
    print(
        f"{report.lines} lines ({report.raw_lines} raw) in {report.batches} batches, "
        f"{report.rate:.0f} lines/s, seed {args.seed}: {len(report.findings)} findings"
    )
    for finding in report.findings:
        print(f"  {finding}")
    return EXIT_ERR if report.findings else EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import run_benchmarks

    try:
        if args.check:
            from harness.heapbench import check_results

            problems = check_results(json.loads(Path(args.check).read_text()))
            print("\n".join(problems) if problems else f"{args.check}: every trace and allocator")
            return 1 if problems else 0
        return run_benchmarks(
            Path(args.out),
            quick=args.quick,
            heap_only=args.heap_only,
            readme=args.readme,
            junit=Path(args.junit) if args.junit else None,
        )
    except IomemError as exc:
        return _fail(str(exc))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="iomem", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profiles", help="list the machine profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("firmware", help="print the firmware ELF path (building it if needed)")
    p.add_argument("--profile", default=profiles.DEFAULT_PROFILE)
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("exec", help="boot a guest, send each LINE (or stdin lines), print the replies")
    p.add_argument("--profile", default=profiles.DEFAULT_PROFILE)
    p.add_argument("--json", action="store_true", help="one JSON object per reply")
    p.add_argument("--log-dir", help="where to keep console.log, qemu-stderr.log, qmp.log")
    p.add_argument("lines", nargs="*", metavar="LINE")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("console", help="interactive console on a fresh guest")
    p.add_argument("--profile", default=profiles.DEFAULT_PROFILE)
    p.add_argument("--log-dir")
    p.add_argument("--log", metavar="FILE", help="keep the session (requests, replies, events) in FILE")
    p.set_defaults(func=cmd_console)

    p = sub.add_parser("inject", help="corrupt guest RAM kind by kind; table of who detects each")
    p.add_argument("--profile", default=profiles.DEFAULT_PROFILE)
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument("--log-dir")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser(
        "fuzz", help="hostile lines and raw bytes; checks guest, oracles and markers per batch"
    )
    p.add_argument("--profile", default=profiles.DEFAULT_PROFILE)
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-dir")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("bench", help="run the benchmarks (JSON + table + plots)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--heap-only", action="store_true", help="only the allocator traces (guest and host)")
    p.add_argument("--junit", metavar="XML", help="add tests and wall_s per test file from pytest --junitxml")
    p.add_argument("--readme", action="store_true", help="rewrite README.md's heap tables from this run")
    p.add_argument("--check", metavar="JSON", help="only check that JSON has every trace and allocator")
    p.add_argument("--out", default=str(PROJECT_ROOT / "build" / "bench"))
    p.set_defaults(func=cmd_bench)

    keep.add_commands(sub)  # attach, reap: guests kept by pytest --iomem-keep
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result
