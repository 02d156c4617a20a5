"""Model-based testing of IODMACommand and the edu engine on the guest (Hypothesis stateful).

Each example boots a fresh guest and runs a random sequence of dma create / prepare / complete /
preparation / perform / release, edu transfers into and out of live preparations (and, behind
the SMMU, into IOVAs already completed), good calls and bad. Every reply is checked against
:class:`harness.models.dma_model.Model`, written from §13 and the QEMU facts alone; every
prepare's segments against the model's rules and (SMMU) the host SMMU walker against the CPU
page walker; every transfer against QEMU's SMMU trace; after every step every byte of every
buffer, and the canaries around them, in guest RAM read by the host. At the end everything is
released and the allocator, descriptor and DMA counters (IOVA, bounce, IOMMU tables) must be
back at their starting point, and the guest's own ``check`` must pass.

CI budget: derandomized, no example database, 20 examples of up to 30 steps per profile.
Raise ``DMA_SM_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from dma_support import (
    BOUNCE_PROFILES,
    CANARY,
    ORACLE_COUNTS,
    SMMU_PROFILES,
    Buffer,
    DmaBaseline,
    DmaBench,
    command_bits,
)
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from state_machine_settings import state_machine_settings

from harness import ledger
from harness.guest import Guest
from harness.guest.dma import EDU_MAX_TRANSFER
from harness.link.protocol import Reply
from harness.models.dma_model import Memory, Model, Outcome
from harness.oracle.smmu import SmmuFault
from harness.qemu.profile import Profile, with_icount

STEPS = 30
SETTINGS = state_machine_settings("DMA_SM_EXAMPLES", examples=20, steps=STEPS)
PICK = st.integers(0, 2**16)
MAX_BUFFERS = 5
MAX_COMMANDS = 4
DIRECTIONS = {"in": 1, "out": 2, "inout": 3}


class DmaMachine(RuleBasedStateMachine):
    profile: Profile
    artifacts: Path
    firmware: Path
    examples = 0
    verbs: Counter[str]
    walks: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1
        self.guest = Guest(  # ~30 edu transfers per example: on the instruction-counted clock
            with_icount(self.profile),
            self.artifacts / f"example{type(self).examples}",
            firmware=self.firmware,
        ).boot()
        send = self.guest.request

        def counted(line: str, *, timeout: float | None = None) -> Reply:
            reply = send(line, timeout=timeout)
            verb = " ".join(line.split()[:2])
            self.verbs[f"{verb} -> {'ok' if reply.ok else reply.error}"] += 1
            return reply

        self.guest.request = counted  # type: ignore[method-assign]
        self.bench = DmaBench(self.guest)
        self.page = self.profile.granule
        self.model = Model(page=self.page, iommu=self.profile.smmu)
        self.baseline = DmaBaseline.take(self.guest)
        self.buffers: dict[int, tuple[Buffer, Memory]] = {}
        self.stale: list[tuple[int, int]] = []  # (IOVA, length) of completed preparations
        # A starting point every example shares, so the drawn rules spend their steps on DMA.
        self.new_buffer(200, "inout", 8)
        self.new_buffer(5000, "out", 100)
        self.new_buffer(3000, "in", 1)
        self.create("edu")
        self.create("edu")

    def teardown(self) -> None:
        try:
            if self.guest.console is not None and self.guest.machine.alive():
                for handle in self.model.live():
                    self.model.release(handle)
                    self.bench.dma.release(handle)
                self.bytes_match()
                for md in list(self.buffers):
                    self.bench.mds.release(md)
                self.baseline.check(self.guest)
                self.bench.dma.check_no_clamp()
        finally:
            self.guest.close()

    # ------------------------------------------------------------ helpers
    def _pick(self, items: list[int], pick: int) -> int:
        return sorted(items)[pick % len(items)]

    def _expect(self, line: str, outcome: Outcome) -> Reply:
        if outcome.error is not None:
            return self.guest.err(line, outcome.error)
        return self.guest.ok(line)

    # ------------------------------------------------------------ buffers
    @precondition(lambda self: len(self.buffers) < MAX_BUFFERS)
    @rule(
        length=st.one_of(st.integers(1, 300), st.integers(1, 3 * 4096)),
        direction=st.sampled_from(sorted(DIRECTIONS)),
        offset=st.integers(0, 100),
    )
    def new_buffer(self, length: int, direction: str, offset: int) -> None:
        buf = self.bench.buffer(length, direction, offset=offset, tail=offset // 3)
        data = bytearray(self.bench.host_read(buf, 0, buf.capacity))
        memory = Memory(buf.md, buf.capacity, DIRECTIONS[direction], buf.phys_runs(0, buf.capacity), data)
        self.buffers[buf.md] = (buf, memory)

    # ------------------------------------------------------------ create / release
    @precondition(lambda self: len(self.model.commands) < MAX_COMMANDS)
    @rule(kind=st.sampled_from(["edu", "edu", "edu", "nolimit", "small", "huge"]))
    def create(self, kind: str) -> None:
        shift = self.page.bit_length() - 1
        bits = {"edu": command_bits(self.profile), "nolimit": 0, "small": shift - 1, "huge": 256}[kind]
        line = self.bench.dma.create_line(bits)
        reply = self._expect(line, self.model.create_outcome(bits))
        if reply.ok:
            self.model.add_command(reply.number("dma"), bits)

    @precondition(lambda self: len(self.model.commands) > 1)
    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        handle = self._pick(self.model.live(), pick)
        self._remember_stale(handle)
        self.model.release(handle)
        self.bench.dma.release(handle)
        self.guest.err(f"dma preparation {handle:#x}", "kIOReturnBadArgument")

    def _remember_stale(self, handle: int) -> None:
        prep = self.model.commands[handle].prepared
        if prep is not None and self.profile.smmu:
            self.stale += [(a, n) for a, n in prep.segments]

    # ------------------------------------------------------------ prepare / complete
    @precondition(lambda self: bool(self.model.commands) and bool(self.buffers))
    @rule(
        pick=PICK,
        md_pick=PICK,
        null=st.sampled_from([False] * 15 + [True]),
        shape=st.sampled_from(["window", "window", "whole", "part", "beyond"]),
        cut=st.integers(0, 2**12),
        capacity=st.sampled_from([32] * 6 + [1, 2, 0, 33]),
    )
    def prepare(self, pick: int, md_pick: int, null: bool, shape: str, cut: int, capacity: int) -> None:
        handle = self._pick(self.model.live(), pick)
        buf, memory = self.buffers[self._pick(list(self.buffers), md_pick)]
        offset, length = {
            "window": (buf.offset, buf.length),
            "whole": (0, 0),
            "part": (cut % buf.capacity, 1 + cut % max(1, buf.capacity - cut % buf.capacity)),
            "beyond": (cut % buf.capacity, buf.capacity + 1 - cut % buf.capacity),
        }[shape]
        md = None if null else memory
        line = self.bench.dma.prepare_line(
            handle, 0 if md is None else buf.md, offset=offset, length=length, max=capacity
        )
        outcome = self.model.prepare_outcome(handle, md, offset, length, capacity)
        if outcome.error is not None:
            before = self.model.commands[handle].prepared
            self.guest.err(line, outcome.error)
            if before is not None and outcome.error not in ("kIOReturnBusy", "kIOReturnOverrun"):
                self._remember_stale(handle)
            self.model.prepare_failed(handle, outcome)
            return
        reply = self.guest.ok(line)
        prepared = self.bench.dma.parse_prepared(reply)
        segments = [(int(s.address), s.length) for s in prepared.segments]
        assert md is not None
        problems = self.model.check_segments(
            handle, md, offset, length, capacity, prepared.flags, segments, prepared.bounced
        )
        assert not problems, f"{line} -> {reply.line}: " + "; ".join(problems)
        self._remember_stale(handle)
        self.model.prepared(handle, md, offset, length, prepared.flags, segments, prepared.bounced)
        prep = self.model.commands[handle].prepared
        assert prep is not None
        if self.profile.smmu:
            view = Buffer(
                buf.md, buf.va, buf.capacity, prep.offset, prep.length, buf.direction, buf.runs, self.page
            )
            self.bench.check_segments_translate(view, prepared)
            self.walks["segments checked by the SMMU walker"] += len(segments)
        pre = self.bench.dma.preparation(handle)
        assert (pre.md, pre.offset, pre.length) == (buf.md, prep.offset, prep.length)

    @precondition(lambda self: bool(self.model.commands) and bool(self.buffers))
    @rule(pick=PICK, md_pick=PICK)
    def prepare_window(self, pick: int, md_pick: int) -> None:
        """The common case, drawn more often: a whole window, room for 32 segments."""
        self.prepare(pick, md_pick, False, "window", 0, 32)

    @precondition(lambda self: bool(self.model.commands))
    @rule(pick=PICK)
    def complete(self, pick: int) -> None:
        handle = self._pick(self.model.live(), pick)
        outcome = self.model.complete_outcome(handle)
        self._expect(f"dma complete {handle:#x}", outcome)
        if outcome.error is None:
            self._remember_stale(handle)
            self.model.complete(handle)

    @precondition(lambda self: bool(self.model.commands))
    @rule(pick=PICK)
    def preparation(self, pick: int) -> None:
        handle = self._pick(self.model.live(), pick)
        reply = self._expect(f"dma preparation {handle:#x}", self.model.preparation_outcome(handle))
        if reply.ok:
            prep = self.model.commands[handle].prepared
            assert prep is not None
            assert (reply.number("md"), reply.number("offset"), reply.number("length")) == (
                prep.md.handle,
                prep.offset,
                prep.length,
            )

    # ------------------------------------------------------------ PerformOperation
    @precondition(lambda self: bool(self.model.prepared_handles()))
    @rule(
        pick=PICK,
        op=st.sampled_from(["read", "write", "zero"]),
        at=st.integers(0, 2**13),
        size=st.integers(0, 400),
        data_pick=PICK,
        no_data=st.sampled_from([False] * 9 + [True]),
    )
    def perform(self, pick: int, op: str, at: int, size: int, data_pick: int, no_data: bool) -> None:
        handle = self._pick(self.model.prepared_handles(), pick)
        prep = self.model.commands[handle].prepared
        assert prep is not None
        dma_offset = at % (prep.length + 2)
        others = [md for md in self.buffers if md != prep.md.handle]
        data = None
        data_offset = 0
        if not no_data and others:
            data = self.buffers[self._pick(others, data_pick)][1]
            size = min(size, data.length + 1)
            data_offset = 0 if size > data.length else data_pick % (data.length - size + 1)
        line = self.bench.dma.perform_line(
            handle, op, dma_offset, size, None if data is None else data.handle, data_offset
        )
        outcome = self.model.perform_outcome(handle, op, dma_offset, size, data)
        reply = self._expect(line, outcome)
        if outcome.error in (None, "kIOReturnUnderrun"):
            copied = self.model.perform(handle, op, dma_offset, size, data, data_offset)
            if "length" in reply:
                assert reply.number("length") == copied, reply.line

    # ------------------------------------------------------------ edu
    def _reachable(self, address: int, length: int) -> bool:
        return address + length <= 1 << self.profile.edu_dma_bits

    @precondition(lambda self: bool(self.model.prepared_handles()) or bool(self.stale))
    @rule(
        pick=PICK,
        at=st.integers(0, 2**14),
        size=st.one_of(st.integers(1, 64), st.integers(1, EDU_MAX_TRANSFER)),
        to_device=st.booleans(),
        stale=st.sampled_from([False] * 4 + [True]),
    )
    def edu(self, pick: int, at: int, size: int, to_device: bool, stale: bool) -> None:
        if stale and self.stale:
            address, seg_len = self.stale[pick % len(self.stale)]
            if self.model.edu_target(address, 1) is not None:
                return  # the IOVA was handed out again
            walker = self.bench.smmu_walker()
            if not isinstance(walker.lookup(self.profile.edu_stream_id, address), SmmuFault):
                return
            at %= seg_len
            address += at
            size = min(size, seg_len - at)
        else:
            handles = self.model.prepared_handles()
            if not handles:
                return
            prep = self.model.commands[self._pick(handles, pick)].prepared
            assert prep is not None
            address, seg_len = prep.segments[pick % len(prep.segments)]
            at %= seg_len
            address += at
            size = min(size, seg_len - at)
        if not to_device:
            size = min(size, self.model.edu_known)
            if size == 0:
                return
        if not self._reachable(address, size):
            return
        if to_device:
            reached = self.model.to_device(address, size)
            result = self.bench.dma.to_device(address, size)
        else:
            reached = self.model.from_device(address, size)
            result = self.bench.dma.from_device(address, size)
        assert result.status & 0x100, result.reply.line
        if self.profile.smmu:
            assert bool(result.faults) == (not reached), (result.reply.line, result.faults, reached)
            self.walks["trace lines matched"] += self.bench.trace_agrees().checked
            self.walks["faulting transfers" if not reached else "transfers"] += 1
        else:
            assert not result.faults
            self.walks["transfers"] += 1

    @precondition(lambda self: bool(self.model.prepared_handles()))
    @rule(pick=PICK, at=st.integers(0, 2**14), size=st.integers(1, EDU_MAX_TRANSFER), to_device=st.booleans())
    def edu_live(self, pick: int, at: int, size: int, to_device: bool) -> None:
        """The common case, drawn more often: a transfer inside a live preparation."""
        self.edu(pick, at, size, to_device or self.model.edu_known == 0, False)

    # ------------------------------------------------------------ after every step
    @invariant()
    def bytes_match(self) -> None:
        for buf, memory in self.buffers.values():
            got = self.bench.host_read(buf, 0, buf.capacity)
            if got != bytes(memory.data):
                first = next(i for i, (a, b) in enumerate(zip(got, memory.data, strict=True)) if a != b)
                raise AssertionError(
                    f"buffer {buf.md:#x} byte {first}: RAM {got[first]:#04x}, model {memory.data[first]:#04x}"
                )
            slack = self.bench.host_read(buf, buf.capacity, buf.span - buf.capacity)
            assert slack == bytes([CANARY]) * len(slack), f"buffer {buf.md:#x}: canary after its end changed"
        if self.profile.smmu:
            self.smmu_maps_exactly_the_live_preparations()
        stats = self.guest.stats("dma_live", "dma_prepared")
        ledger.compare("stats", "dma_live", stats["dma_live"], len(self.model.commands), "model")
        prepared = len(self.model.prepared_handles())
        ledger.compare("stats", "dma_prepared", stats["dma_prepared"], prepared, "model")

    def smmu_maps_exactly_the_live_preparations(self) -> None:
        """Isolation, from the host: the edu's stage-1 tables map every page of every live
        preparation to the buffer's own page, with the direction's permission, and nothing else."""
        page = self.page
        want: dict[int, tuple[int, bool]] = {}
        for command in self.model.commands.values():
            prep = command.prepared
            if prep is None:
                continue
            writable = bool(prep.flags & 0x1)
            at = prep.offset
            for address, n in prep.segments:
                for iova in range(address & -page, address + n, page):
                    first = max(iova, address)
                    pa = prep.md.pa_at(at + first - address) & -page
                    want[iova] = (pa, writable)
                at += n
        walker = self.bench.smmu_walker()
        got: dict[int, tuple[int, bool]] = {}
        for leaf in walker.iter_mappings(self.profile.edu_stream_id):
            for iova in range(leaf.iova, leaf.iova + leaf.size, page):
                got[iova] = (leaf.pa + iova - leaf.iova, leaf.writable)
        stray = sorted(set(got) - set(want))
        missing = sorted(set(want) - set(got))
        wrong = sorted(i for i in set(got) & set(want) if got[i] != want[i])
        assert not (stray or missing or wrong), (
            f"SMMU mappings: stray IOVA pages {[hex(i) for i in stray]}, "
            f"missing {[hex(i) for i in missing]}, wrong {[(hex(i), got[i], want[i]) for i in wrong]}"
        )
        self.walks["IOVA pages swept by the SMMU walker"] += len(got)
        ORACLE_COUNTS[(self.profile.name, "IOVA pages swept: tables == live preps")] += len(got)


@pytest.mark.profiles(*SMMU_PROFILES, *BOUNCE_PROFILES)
def test_dma_verbs_follow_the_model(
    profile: Profile, artifacts: Path, firmware_elf: Path, record_property: pytest.RecordProperty
) -> None:
    DmaMachine.profile = profile
    DmaMachine.artifacts = artifacts
    DmaMachine.firmware = firmware_elf
    DmaMachine.examples = 0
    DmaMachine.verbs = Counter()
    DmaMachine.walks = Counter()
    run_state_machine_as_test(DmaMachine, settings=SETTINGS)
    verbs, walks = DmaMachine.verbs, DmaMachine.walks
    record_property("examples", DmaMachine.examples)
    record_property("verbs", dict(verbs))
    record_property("oracle", dict(walks))
    (artifacts / "verbs.txt").write_text(
        f"{DmaMachine.examples} examples\n"
        + "".join(f"{n:6} {k}\n" for k, n in sorted(verbs.items()))
        + "".join(f"{n:6} {k}\n" for k, n in sorted(walks.items()))
    )
    for outcome in (
        "dma create -> ok",
        "dma prepare -> ok",
        "dma complete -> ok",
        "dma perform -> ok",
        "dma release -> ok",
        "edu to-device -> ok",
        "edu from-device -> ok",
        "dma prepare -> kIOReturnBusy",
        "dma prepare -> kIOReturnBadArgument",
        "dma complete -> kIOReturnNotReady",
    ):
        assert verbs[outcome] > 0, f"never saw {outcome}: {sorted(verbs.items())}"
    if profile.smmu:
        assert walks["trace lines matched"] > 0 and walks["segments checked by the SMMU walker"] > 0
    assert DmaMachine.examples >= min(SETTINGS.max_examples, 10)
