# ruff: noqa: E501  (generator tables read best one case per line)
"""``iomem fuzz``: hostile input on the serial line, and after every batch the proof that
nothing broke: the guest still answers, every reply was a well-formed ``ok``/``err``,
``check`` and :func:`harness.tools.verify.verify` are clean, and the marker allocations and
mappings planted before the first line still hold their bytes (read by the host).

The generator is grammar-aware (every verb, with tracked, stale and forged handles and
pointers, wrapping and huge numbers, wrong types, valid-but-hostile sequences such as a
release while mapped, a double release, a sub-descriptor of a released one) plus raw bytes
through :meth:`Console.exchange_raw` (NULs, binary, over-long and half lines, CR/LF mixes,
forged tags). Seeded: the same seed gives the same lines. Writes go only to the scratch
area or to addresses that must fault, so a finding is the firmware's fault, not the fuzzer's.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.addresses import PhysAddr, VirtAddr
from harness.errors import GuestError, IomemError, StateError
from harness.guest import Guest
from harness.link.protocol import Reply
from harness.qemu.profile import Profile
from harness.tools.lines import quote
from harness.tools.structs import md_pa
from harness.tools.verify import verify

NUMBERS = [
    "0",
    "1",
    "0x0",
    "0xffffffffffffffff",
    "18446744073709551615",
    "18446744073709551616",
    "0x10000000000000000",
    "-1",
    "0x",
    "1e3",
    "0x7fffffff",
    "4294967296",
    "0x8000000000000000",
]
TYPES = ["uint8_t", "uint16_t", "uint32_t", "uint64_t", "char", "IOMemTestObject", "struct", "void", "int"]
CLASSES = [
    "OSObject",
    "IOMemTestObject",
    "IOMemoryDescriptor",
    "IOBufferMemoryDescriptor",
    "IOMemoryMap",
    "Nope",
]
# A line may ask for real work: `crc HEAP_VA 0xffffffff` checksums the whole mapped heap
# (245 MiB on virt-16k: 4.4 s idle, over the console's 10 s under load; GiBs on
# virt-4k-dma32) and then faults at the end of the mapping, correctly. So a fuzz line may
# take up to LINE_TIMEOUT (a guest that stops answering is still GuestHung, later); a line
# slower than SLOW is listed in the report.
LINE_TIMEOUT = 300.0
SLOW = 10.0
SAFE_VERBS = ["hello", "info", "pagesize", "stats", "help", "help md", "types", "obj classes", "check"]


@dataclass
class Marker:
    what: str
    pa: int
    data: bytes


@dataclass
class State:
    pointers: list[tuple[int, int]] = field(default_factory=list)  # (va, size) live
    freed: list[tuple[int, int]] = field(default_factory=list)
    objects: list[int] = field(default_factory=list)
    mds: list[int] = field(default_factory=list)
    maps: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


@dataclass
class Report:
    lines: int = 0
    raw_lines: int = 0
    batches: int = 0
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)  # (seconds, line): correct, but long

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


class Fuzzer:
    def __init__(self, guest: Guest, seed: int) -> None:
        self.guest = guest
        self.rng = random.Random(seed)
        self.state = State()
        self.markers: list[Marker] = []
        info = guest.info()
        self.scratch = info.scratch
        self.page = info.page
        self.marker_handles: set[int] = set()
        self.marker_pointers: set[int] = set()

    # ------------------------------------------------------------ markers
    def plant(self) -> None:
        g = self.guest
        for size, byte in ((0x40, 0x5A), (0x300, 0xC3), (0x20000, 0x96)):
            va = g.alloc(size)
            g.fill(va, size, byte)
            self.marker_pointers.add(int(va))
            self.markers.append(Marker(f"alloc {size:#x}", int(va), bytes([byte]) * size))
        md = g.ok(f"bmd create {2 * self.page:#x}").number("md")
        mapped = g.ok(f"md map {md:#x}")
        g.fill(VirtAddr(mapped.number("va")), 2 * self.page, 0x3C)
        self.marker_handles |= {md, mapped.number("map")}
        for index in range(2):
            pa = md_pa(g, _object(g, md), index * self.page)
            if pa is None:
                raise IomemError(f"fuzz: marker buffer {md:#x} has no page {index}")
            self.markers.append(Marker(f"buffer page {index}", pa, b"\x3c" * self.page))

    def markers_hold(self) -> list[str]:
        bad = []
        for m in self.markers:
            got = self.guest.ram.read(PhysAddr(m.pa), len(m.data))
            if got != m.data:
                first = next(i for i, (a, b) in enumerate(zip(got, m.data, strict=True)) if a != b)
                bad.append(f"marker {m.what} at {m.pa:#x}: byte {first} is {got[first]:#x}")
        return bad

    # ------------------------------------------------------------ generation
    def number(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(NUMBERS)
        if r < 0.6:
            return hex(self.rng.getrandbits(self.rng.choice((8, 16, 32, 48, 64))))
        return str(self.rng.randrange(0, 1 << 20))

    def handle(self) -> str:
        s, r = self.state, self.rng.random()
        pools = [p for p in (s.objects, s.mds, s.maps, s.stale) if p]
        if r < 0.6 and pools:
            return hex(self.rng.choice(self.rng.choice(pools)))
        if r < 0.8:
            return hex(self.rng.getrandbits(32) << 32 | self.rng.randrange(1, 2048))
        return self.number()

    def pointer(self) -> tuple[str, int]:
        s, r = self.state, self.rng.random()
        if r < 0.5 and s.pointers:
            va, size = self.rng.choice(s.pointers)
            return hex(va), size
        if r < 0.7 and s.freed:
            va, size = self.rng.choice(s.freed)
            return hex(va), size
        va = self.rng.choice([0, 1, 0x40000000, self.rng.getrandbits(40), self.scratch[0] + 8])
        return hex(va), self.rng.randrange(0, 0x1000)

    def write_target(self) -> str:
        base, length = self.scratch
        choice = self.rng.random()
        if choice < 0.7:
            return hex(base + self.rng.randrange(0, max(length - 0x1000, 1)))
        return hex(self.rng.choice([0, 0x7F_0000_0000, self.guest.elf.symbol("__text_start").address]))

    def request(self) -> str:
        rng = self.rng
        kind = rng.randrange(20)
        if kind == 0:
            return rng.choice(SAFE_VERBS)
        if kind == 1:
            return f"{rng.choice(['peek', 'read', 'crc', 'translate'])} {self.number()} {rng.choice(['', '8', '4', '3', self.number()])}".strip()
        if kind == 2:
            return f"{rng.choice(['fill', 'write', 'poke'])} {self.write_target()} " + rng.choice(
                [f"{rng.randrange(0, 64)} {rng.randrange(256):#x}", "00ff", "zz", "0x1234 8", "abc"]
            )
        if kind in (3, 4):
            return f"{rng.choice(['alloc', 'zalloc'])} {rng.choice([hex(rng.randrange(0, 0x3000)), self.number()])}"
        if kind == 5:
            va, size = self.pointer()
            return f"free {va} {rng.choice([hex(size), self.number()])}"
        if kind == 6:
            return f"{rng.choice(['new', 'newzero'])} {rng.choice(TYPES)} {rng.choice(['1', '16', self.number()])}"
        if kind == 7:
            va, _ = self.pointer()
            return f"{rng.choice(['delete', 'safedelete'])} {va} {rng.choice(TYPES)} {rng.choice(['1', self.number()])}"
        if kind == 8:
            return f"obj new {rng.choice(CLASSES)}"
        if kind == 9:
            return f"obj {rng.choice(['retain', 'release', 'info'])} {self.handle()}"
        if kind == 10:
            return (
                f"bmd create {rng.choice([hex(rng.randrange(1, 4 * self.page)), self.number()])}"
                + rng.choice(["", " dir=in", " dir=9", " align=0x3", f" align={self.page:#x}"])
            )
        if kind == 11:
            return f"md {rng.choice(['length', 'info', 'segments', 'release'])} {self.handle()}"
        if kind == 12:
            return f"md sub {self.handle()} {rng.choice(['0', hex(self.page), self.number()])} {rng.choice(['1', hex(self.page), self.number()])}"
        if kind == 13:
            return f"md multi {self.handle()},{self.handle()}"
        if kind == 14:
            return f"md map {self.handle()}" + rng.choice(
                ["", " guard=large", " cache=inhibit", " options=0xffff", f" offset={self.number()}"]
            )
        if kind == 15:
            return f"map {rng.choice(['info', 'release'])} {self.handle()}"
        if kind == 16:
            return f"md setlength {self.handle()} {self.number()}"
        if kind == 17:
            return rng.choice(
                ["echo off", "frobnicate", "peek", "md", "obj", "map", "vm", "vm unmap 0x1 0x1"]
            ) + " " * rng.randrange(3)
        return f"{rng.choice(['hello', 'stats', 'pagesize'])} {self.number()}"

    def raw(self) -> bytes:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80))) + b"\n"
        if kind == 1:
            return b"@" + str(rng.randrange(0, 1 << 34)).encode() + b" " + self.request().encode() + b"\n"
        if kind == 2:
            return self.request().encode() + rng.choice([b"\r\n", b"\r\r\n", b"\n\n", b"\r"])
        if kind == 3:
            return b"@1 read " + b"9" * rng.randrange(1000, 3000) + b"\n"
        if kind == 4:
            return self.request().encode()[: rng.randrange(1, 12)]  # a half line
        return b"\x00" * rng.randrange(1, 10) + b"pagesize\n"

    # ------------------------------------------------------------ bookkeeping
    def track(self, line: str, reply: Reply) -> None:
        s, words = self.state, line.split()
        if not reply.ok:
            return
        verb = words[0]
        if verb in ("alloc", "zalloc") and "va" in reply:
            s.pointers.append((reply.number("va"), int(words[1], 0) if words[1][:1].isdigit() else 0))
        elif verb == "free" and s.pointers:
            va = int(words[1], 16)
            s.freed += [p for p in s.pointers if p[0] == va]
            s.pointers = [p for p in s.pointers if p[0] != va]
        elif verb == "obj" and words[1] == "new" and "obj" in reply:
            s.objects.append(reply.number("obj"))
        elif verb in ("bmd", "md") and "md" in reply:
            s.mds.append(reply.number("md"))
        elif verb == "md" and words[1] == "map" and "map" in reply:
            s.maps.append(reply.number("map"))
        elif words[1:2] == ["release"] and "freed" in reply:
            s.stale.append(int(words[2], 0) if words[2][:1].isdigit() else 0)

    def hostile(self, line: str) -> bool:
        """A line the fuzzer must not send: it would touch a marker or end the session."""
        words = line.split()
        if not words or words[0] == "quit" or line.startswith("echo on"):
            return True
        for word in words[1:]:
            try:
                value = int(word.split(",")[0], 0)
            except ValueError:
                continue
            if value in self.marker_handles or value in self.marker_pointers:
                return True
        return False

    # ------------------------------------------------------------ batches
    def batch(self, count: int, report: Report) -> None:
        console = self.guest.console
        if console is None:
            raise StateError("the guest is not booted")
        for _ in range(count):
            if self.rng.random() < 0.15:
                data = self.raw()
                if any(
                    self.hostile(part.decode("latin-1"))
                    for part in data.replace(b"\r", b"\n").split(b"\n")
                    if part.strip()
                ):
                    continue
                start = time.monotonic()
                console.exchange_raw(data, timeout=LINE_TIMEOUT)
                self.timed(start, repr(data)[:120], report)
                report.raw_lines += 1
            else:
                line = self.request()
                if self.hostile(line):
                    continue
                start = time.monotonic()
                reply = self.guest.request(line, timeout=LINE_TIMEOUT)
                self.timed(start, line[:120], report)
                if reply.status not in ("ok", "err") or (
                    not reply.ok and not (reply.error or "").startswith("kIOReturn")
                ):
                    report.findings.append(f"malformed reply to {quote(line)}: {quote(reply.line)}")
                self.track(line, reply)
            report.lines += 1

    @staticmethod
    def timed(start: float, what: str, report: Report) -> None:
        took = time.monotonic() - start
        if took > SLOW:
            report.slow.append(f"{took:.1f} s: {what}")

    def release_all(self) -> None:
        """Give back everything the batch made (maps first), so the state stays bounded; the
        handles become stale ones for the next batch."""
        s, g = self.state, self.guest
        for line in (
            [f"map release {h:#x}" for h in s.maps]
            + [f"md release {h:#x}" for h in reversed(s.mds)]
            + [f"obj release {h:#x}" for h in s.objects]
            + [f"free {va:#x} {size:#x}" for va, size in s.pointers]
        ):
            g.request(line)
        s.stale = (s.stale + s.maps + s.mds + s.objects)[-64:]
        s.freed = (s.freed + s.pointers)[-64:]
        s.maps, s.mds, s.objects, s.pointers = [], [], [], []

    def after_batch(self, report: Report) -> None:
        g = self.guest
        if g.pagesize() != self.page:
            report.findings.append("pagesize changed")
        try:
            g.ok("check")
        except GuestError as exc:
            report.findings.append(f"guest check: {exc.message}")
        verdict = verify(g)
        report.findings += [f"verify: {f}" for f in verdict.findings[:5]]
        report.findings += self.markers_hold()
        report.batches += 1


def _object(guest: Guest, handle: int) -> int:
    return next(o.address for o in guest.heap_snapshot().objects.live if o.handle == handle)


def run(
    profile: Profile,
    artifacts: Path,
    *,
    lines: int,
    seed: int,
    batch: int = 500,
    firmware: Path | None = None,
) -> Report:
    """``firmware``: an ELF other than the tree's build (a copy, so a rebuild mid-run cannot
    change the image under a long run)."""
    report = Report()
    with Guest(profile, artifacts, firmware=firmware) as guest:
        fuzzer = Fuzzer(guest, seed)
        fuzzer.plant()
        fuzzer.after_batch(report)
        if report.findings:
            raise IomemError(f"fuzz: not clean before the first line: {report.findings[:3]}")
        start = time.monotonic()
        while report.lines < lines and not report.findings:
            fuzzer.batch(min(batch, lines - report.lines), report)
            fuzzer.after_batch(report)
            fuzzer.release_all()
        report.seconds = time.monotonic() - start
    return report
