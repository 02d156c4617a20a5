"""Model-based testing of the descriptor verbs on the guest (Hypothesis stateful).

Each example boots a fresh guest and runs a random sequence of bmd create / md setlength /
md sub / md multi / md map (both the DriverKit option word and the cache= extension) /
map release / md release, plus writes and reads through buffers and mappings, good calls and
bad. Every reply is checked against :class:`harness.models.descriptors.Model`, which is written
from the spec alone. The model learns only what the hardware decides (the physical pages of
a new buffer, from the host page walker); after that it predicts every segment list, every
mapping's physical pages (checked with the walker), every byte (checked through the guest
and in guest RAM read by the host), every reference count and which objects live. At the
end everything is released and the allocators must be back at their starting point (stats
keys, and the page allocator's free count read from RAM).

CI budget: derandomized, no example database, 40 examples of up to 25 steps per profile
(160 in all). Raise ``MD_SM_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from state_machine_settings import state_machine_settings

from harness.addresses import VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import Baseline, Descriptors
from harness.link.protocol import Reply
from harness.models.descriptors import CACHE_MODES, MapNode, Model, Segment
from harness.oracle.descriptors import unmapped, walk_runs
from harness.oracle.pages import PageBytes
from harness.oracle.pagewalk import PageWalker
from harness.qemu.profile import Profile

STEPS = 50
SETTINGS = state_machine_settings("MD_SM_EXAMPLES", examples=40, steps=STEPS)

PICK = st.integers(0, 2**16)  # an index into a run-time list: strategies never see handles
STEP_STATS = ("md_live", "maps_live")  # the stats keys compared after every step, in reply order
STEP_INFO = ("kind", "length", "depth", "refs")  # the md info keys compared, in reply order
DIRS = st.sampled_from([0, 1, 2, 3, 3, 4])  # 4: a bad option bit
FIXED_BASE = 0x30_0000_0000  # fixed mappings go here, one 16 MiB slot each (never reused)
FIXED_STRIDE = 0x100_0000
OPTION_CACHE = st.sampled_from([0x000, 0x100, 0x200, 0x400, 0x800, 0x000, 0x200, 0x300, 0x600])
OPTION_GUARD = st.sampled_from([0x0, 0x4, 0x8, 0xC, 0x10, 0x1C])


def _near(limit: int, page: int) -> st.SearchStrategy[int]:
    """Offsets and lengths around the interesting values of a descriptor of length ``limit``."""
    return st.one_of(
        st.integers(0, limit + 2),
        st.sampled_from(sorted({0, 1, limit, max(limit - 1, 0), limit + 1, page, page + 16})),
    )


MAX_HELD = 10  # keeps every example small and the rules other than create busy

has_held = precondition(lambda self: bool(self.model.held_handles()))
has_room = precondition(lambda self: len(self.model.held_handles()) < MAX_HELD)
has_bytes = precondition(
    lambda self: (
        bool(self.model.maps) or any(n.kind == "buffer" and n.held for n in self.model.nodes.values())
    )
)
has_maps = precondition(lambda self: bool(self.model.held_maps()))
has_stale = precondition(lambda self: bool(self.stale))


class DescriptorMachine(RuleBasedStateMachine):
    """One fresh guest per example, driven against the model."""

    profile: Profile
    artifacts: Path
    firmware: Path
    examples = 0
    verbs: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1
        self.guest = Guest(
            self.profile, self.artifacts / f"example{type(self).examples}", firmware=self.firmware
        ).boot()
        send = self.guest.request

        def counted(line: str, *, timeout: float | None = None) -> Reply:
            reply = send(line, timeout=timeout)
            self._count(line, reply)
            return reply

        self.guest.request = counted  # type: ignore[method-assign]
        self.mds = Descriptors(self.guest)
        self.page = self.profile.granule
        self.model = Model(self.page)
        self.baseline = Baseline.take(self.guest)
        self.owners = PageBytes(self.guest)
        self._walker: PageWalker | None = None
        self.fixed_slots = 0
        self.stale: list[int] = []
        self.map_va: dict[int, int] = {}
        self.buffer_va: dict[int, int] = {}

    def teardown(self) -> None:
        clean = False
        try:
            if self.guest.console is not None and self.guest.machine.alive():
                for handle in self.model.held_maps():
                    self._release_map(handle)
                for handle in self.model.held_handles():
                    self._release_md(handle)
                assert not self.model.nodes and not self.model.maps
                self.baseline.check(self.guest)
                clean = True
        finally:
            self.guest.close(reuse=clean)  # a clean guest's QEMU reboots for the next example

    # ------------------------------------------------------------ helpers
    def _count(self, line: str, reply: Reply) -> None:
        words = line.split()
        verb = " ".join(words[:2]) if words[0] in ("bmd", "md", "map") else words[0]
        self.verbs[f"{verb} -> {'ok' if reply.ok else reply.error}"] += 1

    def _all_ok(self, lines: list[str]) -> list[Reply]:
        """Independent requests that must all succeed, pipelined (no round trip each)."""
        replies = self.guest.pipeline(lines)
        for line, reply in zip(lines, replies, strict=True):
            self._count(line, reply)
            assert reply.ok, f"{line}: {reply.line}"
        return replies

    @property
    def walker(self) -> PageWalker:
        if self._walker is None:
            self._walker = self.guest.walker()
        self._walker.clear_cache()
        return self._walker

    def _pick(self, items: list[int], pick: int) -> int:
        return sorted(items)[pick % len(items)]

    def _check_runs(self, va: int, length: int, runs: list[Segment] | tuple[Segment, ...]) -> None:
        assert walk_runs(self.walker, va, length) == list(runs), f"pages behind {va:#x}+{length:#x}"

    # ------------------------------------------------------------ §11 buffers
    @has_room
    @rule(
        capacity=st.one_of(
            st.integers(1, 3 * 4096),
            st.integers(1, 6).map(lambda n: n * 4096 + 1),
            st.integers(1, 6).map(lambda n: n * 4096),
        ),
        zero=st.sampled_from([False] * 15 + [True]),
        direction=DIRS,
        align=st.sampled_from([0, 0, 16, 4096, 3, -2, -4, -3]),
    )
    def create(self, capacity: int, zero: bool, direction: int, align: int) -> None:
        # Sizes in 4 KiB units stay small on every granule; negative aligns are page multiples.
        if zero:
            capacity = 0
        if align < 0:
            align = -align * self.page
        line = self.mds.create_line(capacity, dir=direction, align=align)
        error = self.model.create_error(capacity, direction, align)
        if error is not None:
            self.guest.err(line, error)
            return
        reply = self.guest.ok(line)
        md, va = reply.number("md"), reply.number("va")
        assert (reply.number("capacity"), reply.number("length")) == (capacity, capacity)
        assert va % self.page == 0
        pages_needed = -(-capacity // self.page)
        pages = [r.pa for p in range(pages_needed) for r in walk_runs(self.walker, va + p * self.page, 1)]
        if align > self.page:
            assert pages[0] % align == 0 and pages == [pages[0] + i * self.page for i in range(len(pages))]
        assert {self.owners.owner(pa) for pa in pages} <= {"buffer", "continuation"}
        assert not self.model.buffer_pages() & set(pages), "pages shared with a live buffer"
        size = pages_needed * self.page
        assert self.guest.crc(VirtAddr(va), size) == zlib.crc32(bytes(size)), "not zero-filled"
        self.model.add_buffer(md, capacity, direction, pages)
        self.buffer_va[md] = va
        assert self.mds.segments(md) == self.model.segments(md)

    @has_held
    @rule(pick=PICK, length=st.integers(0, 7 * 4096), exact=st.sampled_from([None, 0, 1, -1]))
    def setlength(self, pick: int, length: int, exact: int | None) -> None:
        md = self._pick(self.model.held_handles(), pick)
        node = self.model.nodes[md]
        if exact is not None and node.kind == "buffer":
            length = node.capacity + exact
        length = max(length, 0)
        line = f"md setlength {md:#x} {length}"
        error = self.model.setlength_error(md, length)
        if error is not None:
            self.guest.err(line, error)
        else:
            assert self.guest.ok(line).number("length") == length
            self.model.setlength(md, length)
        assert self.mds.length(md) == self.model.nodes[md].length

    # ------------------------------------------------------------ §10.3 / §10.4 composites
    @has_held
    @has_room
    @rule(pick=PICK, data=st.data(), direction=DIRS, null=st.booleans())
    def sub(self, pick: int, data: st.DataObject, direction: int, null: bool) -> None:
        held = self.model.held_handles()
        parent = None if null and pick % 4 == 0 else self._pick(held, pick)
        limit = self.model.nodes[parent].length if parent is not None else 100
        offset = data.draw(_near(limit, self.page), label="offset")
        length = data.draw(_near(limit - min(offset, limit), self.page), label="length")
        if data.draw(st.sampled_from([False] * 20 + [True]), label="overflow"):
            offset = 2**64 - 1
        line = self.mds.sub_line(parent or 0, offset, length, dir=direction)
        error = self.model.sub_error(parent, offset, length, direction)
        if error is not None:
            self.guest.err(line, error)
            return
        reply = self.guest.ok(line)
        assert parent is not None
        node = self.model.add_sub(reply.number("md"), parent, offset, length, direction)
        assert reply.number("length") == length
        assert self.mds.segments(node.handle) == self.model.segments(node.handle)

    @has_held
    @rule(
        picks=st.lists(PICK, min_size=0, max_size=4),
        direction=DIRS,
        shape=st.sampled_from(["plain"] * 10 + ["33", "null"]),
    )
    def multi(self, picks: list[int], direction: int, shape: str) -> None:
        held = self.model.held_handles()
        parts: list[int | None] = [self._pick(held, p) for p in picks]
        if shape == "33":
            parts = [parts[0] if parts else held[0]] * 33
        elif shape == "null":
            parts.append(None)
        line = self.mds.multi_line([p or 0 for p in parts], dir=direction)
        error = self.model.multi_error(parts, direction)
        if error is not None:
            self.guest.err(line, error)
            return
        reply = self.guest.ok(line)
        node = self.model.add_multi(reply.number("md"), [p for p in parts if p is not None], direction)
        assert reply.number("length") == node.length
        assert self.mds.segments(node.handle) == self.model.segments(node.handle)

    # ------------------------------------------------------------ §10.2 CreateMapping
    @has_held
    @rule(
        pick=PICK,
        data=st.data(),
        dk=st.booleans(),
        cache=st.sampled_from(CACHE_MODES),
        ro=st.booleans(),
        guard=st.sampled_from(["small", "large", "none", "default"]),
        fixed=st.sampled_from([False] * 9 + [True]),
    )
    def map(
        self, pick: int, data: st.DataObject, dk: bool, cache: str, ro: bool, guard: str, fixed: bool
    ) -> None:
        md = self._pick(self.model.held_handles(), pick)
        limit = self.model.nodes[md].length
        offset = data.draw(_near(limit, self.page), label="offset")
        length = data.draw(_near(max(limit - offset, 0), self.page), label="length")
        address = None
        if fixed:
            address = FIXED_BASE + self.fixed_slots * FIXED_STRIDE
            self.fixed_slots += 1
            first = self.model.first_pa(md, offset)
            if first is not None:  # the first byte's in-page position (the model knows its PA)
                address += first % self.page
        if dk:
            options = data.draw(OPTION_CACHE, label="cache bits") | data.draw(
                OPTION_GUARD, label="guard bits"
            )
            options |= (0x2 if ro else 0) | (0x1 if address is not None else 0)
            line = self.mds.map_line(md, options=options, offset=offset, length=length, address=address)
            prediction = self.model.predict_map(
                md, offset=offset, length=length, options=options, address=address
            )
        else:
            line = self.mds.map_line(
                md,
                cache=cache,
                offset=offset,
                length=length,
                address=address,
                guard=None if address is not None else guard,
                ro=ro,
            )
            prediction = self.model.predict_map(
                md,
                offset=offset,
                length=length,
                cache=cache,
                read_only=ro,
                guard=guard,
                fixed=address is not None,
                address=address,
            )
        if prediction.error is not None:
            self.guest.err(line, prediction.error)
            return
        reply = self.guest.ok(line)
        got = (
            reply.number("offset"),
            reply.number("length"),
            reply.value("cache"),
            reply.value("perm"),
            reply.number("guard"),
        )
        assert got == (
            prediction.offset,
            prediction.length,
            prediction.cache,
            prediction.perm,
            prediction.guard,
        )
        va = reply.number("va")
        if prediction.reuse is not None or prediction.share is not None:
            self.verbs["md map -> reused" if prediction.reuse is not None else "md map -> shared"] += 1
        if prediction.reuse is not None:  # §10.2: the same map, +1
            assert (reply.number("map"), va) == (prediction.reuse, self.map_va[prediction.reuse])
        elif prediction.share is not None:  # a new map on the old one's VA
            old = self.model.maps[prediction.share]
            assert va == self.map_va[old.handle] + (offset - old.offset)
        if address is not None:
            assert va == address
        assert va % self.page == prediction.runs[0].pa % self.page
        self._check_runs(va, prediction.length, prediction.runs)
        start = va & ~(self.page - 1)
        end = (va + prediction.length + self.page - 1) & ~(self.page - 1)
        if prediction.guard and prediction.share is None:
            assert unmapped(self.walker, start - prediction.guard, start)
            assert unmapped(self.walker, end, end + prediction.guard)
        leaf = self.walker.walk(va)
        assert getattr(leaf, "el1", None) == prediction.perm
        node = self.model.add_map(reply.number("map"), md, prediction, fixed=address is not None, va=va)
        self.map_va[node.handle] = va
        if node.handle in self.stale:  # a map kept alive by a sharer, held again through reuse
            self.stale.remove(node.handle)
        assert self.model.refs(md) == self.mds.info(md).refs

    # ------------------------------------------------------------ bytes
    def _target(self, pick: int, through_map: bool) -> tuple[int, int, int, MapNode | None] | None:
        """(va, descriptor, descriptor offset of va, map) of something writable/readable."""
        if through_map and self.model.maps:  # any live map, held or kept alive by a sharer
            m = self.model.maps[self._pick(list(self.model.maps), pick)]
            return self.map_va[m.handle], m.md.handle, m.offset, m
        buffers = [h for h in self.model.held_handles() if self.model.nodes[h].kind == "buffer"]
        if not buffers:
            return None
        md = self._pick(buffers, pick)
        return self.buffer_va[md], md, 0, None

    def _span(self, target: tuple[int, int, int, MapNode | None], at: int, size: int) -> tuple[int, int]:
        _, md, _, m = target
        limit = m.length if m is not None else self.model.nodes[md].capacity
        at %= limit
        return at, min(size, limit - at)

    @has_bytes
    @rule(
        pick=PICK,
        through_map=st.booleans(),
        at=st.integers(0, 2**20),
        data=st.binary(min_size=1, max_size=48),
    )
    def write(self, pick: int, through_map: bool, at: int, data: bytes) -> None:
        target = self._target(pick, through_map)
        if target is None:
            return
        va, md, base, m = target
        at, size = self._span(target, at, len(data))
        data = data[:size]
        if m is not None and self.model.device_unaligned(m, va + at, size):
            # §9.3 [Rec]: the agent's first access is unaligned Device memory: nothing is written
            reply = self.guest.err(f"write {va + at:#x} {data.hex()}", "kIOReturnNotWritable")
            assert reply.value("fault") == "alignment"
            return
        if m is not None and m.read_only:
            reply = self.guest.err(f"write {va + at:#x} {data.hex()}", "kIOReturnNotWritable")
            assert reply.value("fault") == "permission"
            return
        self.guest.write(VirtAddr(va + at), data)
        if m is not None:
            self.model.write_map(m, at, data)
        else:
            self.model.write(md, base + at, data)

    @has_bytes
    @rule(pick=PICK, through_map=st.booleans(), at=st.integers(0, 2**20), size=st.integers(1, 64))
    def read(self, pick: int, through_map: bool, at: int, size: int) -> None:
        target = self._target(pick, through_map)
        if target is None:
            return
        va, md, base, _ = target
        at, size = self._span(target, at, size)
        _, _, _, m = target
        if m is not None and self.model.device_unaligned(m, va + at, size):
            reply = self.guest.err(f"read {va + at:#x} {size}", "kIOReturnNotReadable")
            assert reply.value("fault") == "alignment"
            return
        expected = self.model.read_map(m, at, size) if m is not None else self.model.read(md, base + at, size)
        assert self.guest.read(VirtAddr(va + at), size) == expected
        runs = (
            self.model.map_runs(m, at, size) if m is not None else self.model.buffer_runs(md, base + at, size)
        )
        ram = b"".join(self.guest.ram.read(s.pa, s.length) for s in runs)
        assert ram == expected

    # ------------------------------------------------------------ releases
    def _release_md(self, md: int) -> None:
        reply = self.guest.ok(f"md release {md:#x}")
        pages = self.model.buffer_pages()
        refs, freed = self.model.release(md)
        assert (reply.number("refs"), bool(reply.number("freed"))) == (refs, freed)
        self.stale.append(md)
        gone = pages - self.model.buffer_pages()
        assert {self.owners.owner(pa) for pa in gone} <= {"free"}

    def _release_map(self, handle: int) -> None:
        pages = self.model.buffer_pages()
        reply = self.guest.ok(f"map release {handle:#x}")
        refs, freed, unmapped_maps = self.model.release_map(handle)
        assert (reply.number("refs"), bool(reply.number("freed"))) == (refs, freed)
        if handle not in self.model.maps or self.model.maps[handle].held == 0:
            self.stale.append(handle)
        for gone in unmapped_maps:  # maps with a VA range of their own: unmapped now
            va = self.map_va[gone.handle]
            assert self.guest.machine.gva2gpa(va) is None and unmapped(self.walker, va, va + 1)
        for h in [h for h in self.map_va if h not in self.model.maps]:
            del self.map_va[h]
        gone_pages = pages - self.model.buffer_pages()
        assert {self.owners.owner(pa) for pa in gone_pages} <= {"free"}

    @rule(task=st.sampled_from([1, 1, 2]))
    def switch_task(self, task: int) -> None:
        """§10.2 [Rec]: the current task; buffers remember their creator, maps their task."""
        assert self.guest.ok(f"task {task}").number("task") == task
        self.model.task = task

    @has_held
    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        self._release_md(self._pick(self.model.held_handles(), pick))

    @has_maps
    @rule(pick=PICK)
    def release_map(self, pick: int) -> None:
        self._release_map(self._pick(self.model.held_maps(), pick))

    @has_stale
    @rule(
        pick=PICK, verb=st.sampled_from(["md length", "md release", "map release", "md map", "md sub {} 0 0"])
    )
    def stale_handle(self, pick: int, verb: str) -> None:
        handle = self.stale[pick % len(self.stale)]
        line = verb.format(f"{handle:#x}") if "{}" in verb else f"{verb} {handle:#x}"
        self.guest.err(line, "kIOReturnBadArgument")

    # ------------------------------------------------------------ after every step
    @invariant()
    def accounting_matches(self) -> None:
        # check: the allocators' own integrity walk (H1); then stats and every held descriptor's
        # info, all in one pipeline, each reply cut to the keys compared here (keys=: the rest
        # of a full reply is hundreds of bytes per step over the UART, and checked elsewhere).
        held = self.model.held_handles()
        _, stats_reply, *infos = self._all_ok(
            [
                "check",
                f"stats keys={','.join(STEP_STATS)}",
                *[f"md info {md:#x} keys={','.join(STEP_INFO)}" for md in held],
            ]
        )
        assert tuple(stats_reply.keys) == STEP_STATS
        assert (stats_reply.number("md_live"), stats_reply.number("maps_live")) == (
            self.model.live_descriptors(),
            self.model.live_maps(),
        )
        for md, reply in zip(held, infos, strict=True):
            assert tuple(reply.keys) == STEP_INFO
            node = self.model.nodes[md]
            assert (
                reply.value("kind"),
                reply.number("length"),
                reply.number("depth"),
                reply.number("refs"),
            ) == (
                node.kind,
                node.length,
                node.depth,
                node.refs,
            )
        for pa in self.model.buffer_pages():
            assert self.owners.owner(pa) in ("buffer", "continuation"), f"page {pa:#x} of a live buffer"


def test_descriptor_verbs_follow_the_model(
    profile: Profile, artifacts: Path, firmware_elf: Path, record_property: pytest.RecordProperty
) -> None:
    DescriptorMachine.profile = profile
    DescriptorMachine.artifacts = artifacts
    DescriptorMachine.firmware = firmware_elf
    DescriptorMachine.examples = 0
    DescriptorMachine.verbs = Counter()
    run_state_machine_as_test(DescriptorMachine, settings=SETTINGS)
    verbs = DescriptorMachine.verbs
    record_property("examples", DescriptorMachine.examples)
    record_property("verbs", dict(verbs))
    (artifacts / "verbs.txt").write_text(
        f"{DescriptorMachine.examples} examples\n" + "".join(f"{n:6} {k}\n" for k, n in sorted(verbs.items()))
    )
    # The run must have exercised the interesting outcomes, or it shows little.
    for outcome in (
        "bmd create -> ok",
        "md map -> ok",
        "md sub -> ok",
        "md multi -> ok",
        "map release -> ok",
        "md release -> ok",
        "md map -> kIOReturnError",
        "md map -> kIOReturnBadArgument",
        "md multi -> kIOReturnOverrun",
        "md setlength -> kIOReturnBadArgument",
    ):
        assert verbs[outcome] > 0, f"never saw {outcome}: {sorted(verbs.items())}"
    assert DescriptorMachine.examples >= min(SETTINGS.max_examples, 10)
