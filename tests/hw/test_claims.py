"""Every fact key of every verb, compared once with an independent source (the claims
ledger, harness/ledger.py, records each comparison; ``make test-hw`` prints the table).

Other tests check the same claims more deeply; these make sure that no verb or reply key is
taken on the guest's word, on every profile, and that each verb's error replies are the
spec's."""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

from dma_support import (
    DIRS,
    EDU_BUFFER_ADDR,
    EDU_CMD_RUN,
    EDU_CMD_TO_PCI,
    EDU_IRQ_DMA_DONE,
    EDU_REG_DMA_CMD,
    EDU_REG_DMA_COUNT,
    EDU_REG_DMA_DST,
    EDU_REG_DMA_SRC,
    EDU_REG_ID,
    EDU_REG_IRQ_STATUS,
    Buffer,
    DmaBench,
    command_bits,
    device_segments,
)

from harness import ledger
from harness.addresses import PhysAddr, VirtAddr
from harness.guest import Guest
from harness.guest.descriptors import Descriptors
from harness.guest.dma import Dma, Prepared
from harness.link.protocol import Reply
from harness.models.descriptors import merge_runs
from harness.oracle import qemu_trace
from harness.oracle.descriptors import walk_runs
from harness.oracle.pagewalk import Fault, Translation
from harness.oracle.smmu import SmmuFault, SmmuTranslation
from harness.oracle.translation import perm_of
from harness.qemu.gdbstub import GdbStub, GdbTimeout
from harness.qemu.profile import EDU_SLOT, Profile

QEMU_MIDR = {"cortex-a57": 0x411FD070, "max": 0x000F0510}  # QEMU 7.2's CPU models (target/arm/cpu64.c)
TG0 = {0b00: 4096, 0b01: 65536, 0b10: 16384}
IPS_BITS = (32, 36, 40, 42, 44, 48, 52)
UNMAPPED = 0x7F_0000_0000
ESR_EC_DATA_ABORT_SAME_EL = 0x25
ESR_WNR = 1 << 6
WINDOW = 0x1_0000_0000  # the mapping window (docs/protocol-notes.md)

cmp = ledger.compare


def _free_page_blocks(guest: Guest) -> tuple[int, int]:
    snap = guest.heap_snapshot()
    free = snap.layouts.page_state["PAGE_STATE_FREE"]
    return (
        sum(b.pages for b in snap.pages.blocks if b.state == free),
        sum(1 for b in snap.pages.blocks if b.state >= snap.layouts.page_state["PAGE_STATE_OWNED"]),
    )


def test_identity_and_registers(guest: Guest, profile: Profile) -> None:
    regs = guest.registers()
    hello = guest.ok("hello")
    cmp("hello", "proto", hello.number("proto"), 1, "spec")
    cmp("hello", "build", hello.value("build"), guest.elf.build_id, "elf")
    cmp("hello", "page", hello.number("page"), profile.granule, "profile")
    cmp("hello", "page", hello.number("page"), TG0[(regs.tcr_el1 >> 14) & 3], "gdbstub")
    cmp("hello", "ram", hello.span("ram"), (profile.ram_base, profile.ram_size), "profile")
    cmp("pagesize", "page", guest.ok("pagesize").number("page"), profile.granule, "profile")

    info = guest.ok("info")
    cmp("info", "page", info.number("page"), profile.granule, "profile")
    cmp("info", "granule", info.number("granule"), TG0[(regs.tcr_el1 >> 14) & 3], "gdbstub")
    cmp("info", "ram", info.span("ram"), (profile.ram_base, profile.ram_size), "profile")
    cmp("info", "pa_bits", info.number("pa_bits"), IPS_BITS[(regs.tcr_el1 >> 32) & 7], "gdbstub")
    for key in ("ttbr0", "ttbr1", "tcr", "mair", "sctlr"):
        cmp("info", key, info.number(key), getattr(regs, f"{key}_el1"), "gdbstub")
    cmp("info", "el", info.number("el"), regs.current_el, "gdbstub")
    pages = guest.heap_snapshot().pages
    cmp("info", "heap", info.span("heap"), (pages.base, pages.page_count * pages.page_size), "heap-decoder")
    base, length = info.span("scratch")
    image_end = guest.elf.symbol("__image_end").address
    assert image_end <= base and base + length <= info.span("heap")[0], (hex(image_end), info.line)
    ledger.checked("info", "scratch", "elf")  # above the image the ELF lays out, below the heap
    ledger.checked("info", "heap", "elf")
    with guest.gdb.stopped():
        ctr = guest.gdb.read_register("ctr_el0")
        cntfrq = guest.gdb.read_register("cntfrq_el0")
    stats = guest.ok("stats")
    cmp("stats", "dline", stats.number("dline"), 4 << ((ctr >> 16) & 0xF), "gdbstub")
    cmp("info", "cpu", info.number("cpu"), QEMU_MIDR[profile.cpu], "profile")
    cmp("bench heap", "freq", guest.ok("bench heap 10").number("freq"), cntfrq, "gdbstub")
    pool = guest.elf.symbol("__page_tables_end").address - guest.elf.symbol("__page_tables_start").address
    cmp("stats", "pt_total", stats.number("pt_total"), pool // profile.granule, "elf")
    walker = guest.walker()
    tables: set[int] = set()
    read_table = walker._table

    def counting(pa: int, count: int) -> tuple[int, ...]:
        tables.add(pa)
        return read_table(pa, count)

    walker._table = counting  # type: ignore[method-assign]
    walker.clear_cache()
    for _ in walker.iter_mappings():
        pass
    cmp("stats", "pt_used", guest.ok("stats").number("pt_used"), len(tables), "walker", what="tables walked")


def test_stats_against_the_decoder_and_a_counting_model(guest: Guest) -> None:
    md = Descriptors(guest)
    guest.alloc(100)
    guest.alloc(70_000)
    before = guest.ok("stats")
    guest.err("nosuchverb", "kIOReturnUnsupported")
    guest.err(f"peek {UNMAPPED:#x}", "kIOReturnNotReadable")
    guest.err(f"alloc {1 << 62:#x}", "kIOReturnNoMemory")
    va = guest.alloc(32)
    guest.free(va, 32)
    buf = md.create(2 * md.page)
    mapping = md.map(buf.md, guard="none")
    obj = guest.obj_new("IOMemTestObject").number("obj")
    guest.obj_release(obj)
    after = guest.ok("stats")
    delta = {k: after.number(k) - before.number(k) for k in after.keys}
    # requests after the first stats, the second included: 10, 3 of them err, 1 fault
    for key, want in {
        "requests": 10,
        "errors": 3,
        "faults": 1,
        "allocs": 1 + 1,  # alloc 32 + the buffer's? no: only IOMalloc calls count
        "frees": 2,  # free 32, and the object's IOFree
        "alloc_failures": 1,
        "md_live": 1,
        "maps_live": 1,
        "va_ranges": 2,  # the buffer's own address range, and the map's
        # the buffer's [guard][2 pages][guard] and the map's 2 pages (guard=none): docs/descriptors.md
        "va_bytes": (2 + 2) * md.page + mapping.page_end(md.page) - mapping.page_start(md.page),
        "test_object_frees": 1,
    }.items():
        if key in ("allocs",):
            continue
        cmp("stats", key, delta[key], want, "model", what="change over the requests made")
    snap = guest.heap_verify()
    cmp("stats", "allocs", after.number("allocs"), snap.heap.counters["allocs"], "model")
    cmp("stats", "heap_used", after.number("heap_used"), snap.used_bytes, "heap-decoder")
    cmp("stats", "heap_free", after.number("heap_free"), snap.free_bytes, "heap-decoder")
    free_pages, _ = _free_page_blocks(guest)
    cmp("stats", "pages_free", after.number("pages_free"), free_pages, "heap-decoder")
    cmp("stats", "pages_total", after.number("pages_total"), snap.pages.managed_pages, "heap-decoder")
    cmp("stats", "heap_blocks", after.number("heap_blocks"), len(snap.live_blocks()), "heap-decoder")
    cmp(
        "stats", "heap_free_blocks", after.number("heap_free_blocks"), len(snap.free_blocks()), "heap-decoder"
    )
    cmp("stats", "heap_chunks", after.number("heap_chunks"), len(snap.heap.chunks), "heap-decoder")
    cmp("stats", "heap_large", after.number("heap_large"), len(snap.heap.large), "heap-decoder")
    cmp(
        "stats",
        "heap_large_pages",
        after.number("heap_large_pages"),
        sum(b.pages for b in snap.heap.large),
        "heap-decoder",
    )
    cmp("stats", "objects", after.number("objects"), snap.objects.live_count, "heap-decoder")


def _check_ram_verbs(guest: Guest) -> None:
    va, _ = guest.scratch()
    pa = guest.phys(va)
    r = guest.ok(f"fill {va:#x} 64 0x5a")
    cmp("fill", "crc32", r.number("crc32"), zlib.crc32(guest.ram.read(pa, 64)), "ram")
    cmp("fill", "len", r.number("len"), len(guest.ram.read(pa, 64).rstrip(b"\0")), "ram")
    data = bytes(range(48))
    r = guest.ok(f"write {va:#x} {data.hex()}")
    cmp("write", "crc32", r.number("crc32"), zlib.crc32(guest.ram.read(pa, 48)), "ram")
    cmp("write", "len", r.number("len"), 48 if guest.ram.read(pa, 48) == data else -1, "ram")
    r = guest.ok(f"read {va:#x} 48")
    cmp("read", "data", bytes.fromhex(r.value("data")), guest.ram.read(pa, 48), "ram")
    cmp("read", "crc32", r.number("crc32"), zlib.crc32(guest.ram.read(pa, 48)), "ram")
    cmp("read", "len", r.number("len"), 48, "spec")
    r = guest.ok(f"crc {va:#x} 40")
    cmp("crc", "crc32", r.number("crc32"), zlib.crc32(guest.ram.read(pa, 40)), "ram")
    cmp("crc", "len", r.number("len"), 40, "ram")
    cmp(
        "peek",
        "value",
        guest.ok(f"peek {va + 8:#x} 8").number("value"),
        int.from_bytes(guest.ram.read(PhysAddr(pa + 8), 8), "little"),
        "ram",
    )
    r = guest.ok(f"poke {va:#x} 0x1234 2")
    cmp("poke", "value", r.number("value"), int.from_bytes(guest.ram.read(pa, 2), "little"), "ram")


def test_memory_verbs_against_ram_and_their_faults_against_the_walker(guest: Guest) -> None:
    _check_ram_verbs(guest)
    walker = guest.walker()
    walk = walker.walk(UNMAPPED)
    assert isinstance(walk, Fault)
    for line, verb, write in (
        ("peek {va}", "peek", False),
        ("read {va} 16", "read", False),
        ("crc {va} 16", "crc", False),
        ("poke {va} 1", "poke", True),
        ("fill {va} 16 0", "fill", True),
        ("write {va} 00ff", "write", True),
    ):
        code = "kIOReturnNotWritable" if write else "kIOReturnNotReadable"
        r = guest.err(line.format(va=hex(UNMAPPED)), code)
        esr = r.number("esr")
        cmp(
            verb,
            "err.esr",
            ((esr >> 26) & 0x3F, bool(esr & ESR_WNR)),
            (ESR_EC_DATA_ABORT_SAME_EL, write),
            "spec",
        )
        cmp(verb, "err.far", r.number("far"), UNMAPPED, "spec")
        cmp(verb, "err.fault", r.value("fault"), str(walk.kind), "walker")
        cmp(verb, "err.level", r.number("level"), walk.level, "walker")
    guest.check_translation(VirtAddr(UNMAPPED), walker)
    guest.err(f"translate {UNMAPPED:#x}", "kIOReturnNotReadable")
    va, _ = guest.scratch()
    guest.check_translation(va, walker)


def test_vm_map_against_the_walker(guest: Guest) -> None:
    page = guest.pagesize()
    info = guest.info()
    pa = info.scratch[0]
    ram_end = info.ram[0] + info.ram[1]  # the window starts above RAM (virt-4k-dma32: 0x1_8000_0000)
    window = max(WINDOW, (ram_end + (1 << 30) - 1) & ~((1 << 30) - 1))
    r = guest.ok(f"vm map {window:#x} {pa:#x} {page:#x} cache=writethru perm=ro")
    leaf = guest.walker().walk(window)
    assert isinstance(leaf, Translation)
    cmp("vm map", "cache", r.value("cache"), leaf.cache, "walker")
    cmp("vm map", "perm", r.value("perm"), perm_of(leaf), "walker")
    guest.check_translation(VirtAddr(window))
    guest.ok(f"vm unmap {window:#x} {page:#x}")
    guest.err(f"vm map 0x1000 {pa:#x} {page:#x}", "kIOReturnNotPermitted")
    guest.err(f"vm unmap 0x1000 {page:#x}", "kIOReturnNotPermitted")


def test_heap_verbs_against_the_decoder_and_dwarf(guest: Guest) -> None:
    sizes = guest.heap_layouts.dwarf_sizes if hasattr(guest.heap_layouts, "dwarf_sizes") else None
    del sizes
    types = guest.ok("types")
    dwarf = guest.elf.dwarf
    for name in ("u8", "u16", "u32", "u64"):
        cmp("types", name, types.number(name), int(name[1:]) // 8, "elf", what="uintN_t")
    for name, struct in (("rec24", "iomem_rec24"), ("rec4096", "iomem_rec4096")):
        cmp("types", name, types.number(name), dwarf.struct(struct).size, "elf")
    for verb in ("alloc", "zalloc"):
        r = guest.ok(f"{verb} 200")
        cmp(verb, "va", guest.heap_snapshot().live_blocks().get(r.number("va")), 200, "heap-decoder")
    for verb in ("new", "newzero"):
        r = guest.ok(f"{verb} rec24 3")
        cmp(verb, "size", r.number("size"), 3 * dwarf.struct("iomem_rec24").size, "elf")
        cmp(verb, "size", r.number("size"), 3 * 24, "model")
        cmp(
            verb,
            "va",
            guest.heap_snapshot().live_blocks().get(r.number("va")),
            r.number("size"),
            "heap-decoder",
        )
        va = r.number("va")
        delete = "delete" if verb == "new" else "safedelete"
        d = guest.ok(f"{delete} {va:#x} rec24 3")
        cmp(delete, "ptr", d.number("ptr"), va if delete == "delete" else 0, "model")
        cmp(
            delete,
            "freed",
            d.number("freed"),
            int(va not in guest.heap_snapshot().live_blocks()),
            "heap-decoder",
        )
        cmp(delete, "freed", d.number("freed"), 1, "model")
        bad = guest.err(f"{delete} {va:#x} rec24 3", "kIOReturnBadArgument")
        cmp(delete, "err.ptr", bad.number("ptr"), va if delete == "delete" else 0, "model")
    guest.err("new nosuchtype 1", "kIOReturnBadArgument")
    guest.err("newzero u8", "kIOReturnBadArgument")
    guest.err("free 0x10 1", "kIOReturnBadArgument")
    guest.err("alloc", "kIOReturnBadArgument")
    guest.err("zalloc x", "kIOReturnBadArgument")
    guest.err("types 1", "kIOReturnBadArgument")


def test_objects_and_check_against_the_decoder(guest: Guest) -> None:
    snap = guest.heap_snapshot()
    classes = guest.ok("obj classes")
    decoded = {name: size for _, name, size in snap.objects.classes}
    got = dict(
        zip(classes.value("classes").split(","), map(int, classes.value("sizes").split(",")), strict=True)
    )
    cmp("obj classes", "classes", sorted(got), sorted(decoded), "elf")
    cmp("obj classes", "sizes", got, decoded, "elf")
    new = guest.ok("obj new IOMemTestObject")
    handle = new.number("obj")
    live = {o.handle: o for o in guest.heap_snapshot().objects.live}[handle]
    cmp("obj new", "size", new.number("size"), live.instance_size, "elf")
    cmp("obj new", "refs", new.number("refs"), live.refcount, "heap-decoder")
    cmp("obj new", "refs", new.number("refs"), 1, "model")
    cmp("obj new", "ptr", new.number("ptr"), live.address, "heap-decoder")
    r = guest.ok(f"obj retain {handle:#x}")
    live = {o.handle: o for o in guest.heap_snapshot().objects.live}[handle]
    cmp("obj retain", "refs", r.number("refs"), live.refcount, "heap-decoder")
    cmp("obj retain", "refs", r.number("refs"), 2, "model")
    cmp("obj retain", "freed", r.number("freed"), 0, "model")
    cmp(
        "obj retain",
        "freed",
        r.number("freed"),
        int(handle not in {o.handle for o in guest.heap_snapshot().objects.live}),
        "heap-decoder",
    )
    cmp("obj retain", "ptr", r.number("ptr"), live.address, "heap-decoder")
    classes = guest.ok("obj classes")
    cmp(
        "obj classes",
        "live",
        classes.number("live"),
        guest.heap_snapshot().objects.live_count,
        "heap-decoder",
    )
    frees_before = classes.number("test_frees")
    for refs_left in (1, 0):
        r = guest.ok(f"obj release {handle:#x}")
        objects = {o.handle: o for o in guest.heap_snapshot().objects.live}
        cmp(
            "obj release",
            "refs",
            r.number("refs"),
            objects[handle].refcount if handle in objects else 0,
            "heap-decoder",
        )
        cmp("obj release", "refs", r.number("refs"), refs_left, "model")
        cmp("obj release", "freed", r.number("freed"), int(handle not in objects), "heap-decoder")
        cmp("obj release", "freed", r.number("freed"), int(refs_left == 0), "model")
        cmp(
            "obj release",
            "ptr",
            r.number("ptr"),
            objects[handle].address if handle in objects else 0,
            "heap-decoder",
        )
        cmp("obj release", "inst", r.number("inst"), 0, "model")  # OSSafeReleaseNULL clears the variable
    cmp("obj classes", "test_frees", guest.ok("obj classes").number("test_frees"), frees_before + 1, "model")
    guest.err(f"obj retain {handle:#x}", "kIOReturnBadArgument")
    guest.err(f"obj release {handle:#x}", "kIOReturnBadArgument")
    guest.err("obj new NoSuchClass", "kIOReturnBadArgument")
    guest.err("obj classes 1", "kIOReturnBadArgument")
    guest.alloc(64)
    guest.alloc(100_000)
    check = guest.ok("check")
    snap = guest.heap_verify()
    free_pages, used_blocks = _free_page_blocks(guest)
    for key, want in {
        "blocks": len(snap.live_blocks()),
        "free": snap.free_bytes,
        "free_blocks": len(snap.free_blocks()),
        "chunks": len(snap.heap.chunks),
        "large": len(snap.heap.large),
        "objects": snap.objects.live_count,
        "pages_free": free_pages,
        "pages_used": used_blocks,
    }.items():
        cmp("check", key, check.number(key), want, "heap-decoder")
    guest.err("check now", "kIOReturnBadArgument")


def _mapping(guest: Guest, verb: str, r: Reply, md: Descriptors, length: int) -> None:
    va = r.number("va")
    walker = guest.walker()
    leaf = walker.walk(va)
    assert isinstance(leaf, Translation)
    if verb == "md map":
        guest.check_translation(VirtAddr(va), walker)
        cmp(verb, "va", guest.machine.gva2gpa(va), leaf.pa, "gva2gpa")
    ledger.checked(verb, "va", "walker")  # translated by the walker (and by gva2gpa, above)
    cmp(verb, "cache", r.value("cache"), leaf.cache, "walker")
    cmp(verb, "perm", r.value("perm"), perm_of(leaf), "walker")
    cmp(verb, "offset", r.number("offset"), 0, "model")
    cmp(verb, "length", r.number("length"), length, "model")
    guard = r.number("guard")
    if guard:
        start = va & ~(md.page - 1)
        assert isinstance(walker.walk(start - md.page), Fault)
        assert isinstance(walker.walk(start - guard), Fault)
    ledger.checked(verb, "guard", "walker")


def test_descriptor_verbs_against_the_walker_and_the_model(guest: Guest) -> None:
    md = Descriptors(guest)
    page = md.page
    r = guest.ok(f"bmd create {3 * page:#x} dir=inout")
    handle = r.number("md")
    assert isinstance(guest.walker().walk(r.number("va")), Translation)
    ledger.checked("bmd create", "va", "walker")
    assert r.number("va") - 0 not in guest.heap_snapshot().live_blocks()
    cmp("bmd create", "capacity", r.number("capacity"), 3 * page, "model")
    cmp("bmd create", "length", r.number("length"), 3 * page, "model")
    rng = guest.ok(f"bmd range {handle:#x}")
    cmp(
        "bmd range",
        "va",
        guest.translate(VirtAddr(rng.number("va"))).pa,
        guest.walker().walk(rng.number("va")).pa,
        "walker",
    )  # type: ignore[union-attr]
    cmp("bmd range", "length", rng.number("length"), 3 * page, "model")
    cmp(
        "md setlength",
        "length",
        guest.ok(f"md setlength {handle:#x} {2 * page:#x}").number("length"),
        2 * page,
        "model",
    )
    cmp("md length", "length", guest.ok(f"md length {handle:#x}").number("length"), 2 * page, "model")
    info = guest.ok(f"md info {handle:#x}")
    runs = walk_runs(guest.walker(), info.number("va"), 2 * page)
    for key, want, oracle in (
        ("kind", "buffer", "model"),
        ("dir", 3, "model"),
        ("length", 2 * page, "model"),
        ("depth", 1, "model"),
        ("refs", 1, "model"),
        ("capacity", 3 * page, "model"),
        ("pages", 3, "heap-decoder"),
    ):
        got = info.value(key) if key == "kind" else info.number(key)
        cmp("md info", key, got, want, oracle)
    ledger.checked("md info", "va", "walker")
    # contiguous=1 promises one physical run (0 allows any: the pages may still be adjacent)
    whole = walk_runs(guest.walker(), info.number("va"), 3 * page)
    assert not info.number("contiguous") or len(whole) == 1, whole
    ledger.checked("md info", "contiguous", "walker")
    segs = guest.ok(f"md segments {handle:#x}")
    cmp("md segments", "count", segs.number("count"), len(runs), "walker")
    cmp(
        "md segments",
        "seg<N>",
        [segs.span(f"seg{i}") for i in range(len(runs))],
        [(s.pa, s.length) for s in runs],
        "walker",
    )
    sub = guest.ok(f"md sub {handle:#x} {page // 2:#x} {page:#x}")
    cmp("md sub", "length", sub.number("length"), page, "model")
    multi = guest.ok(f"md multi {handle:#x},{sub.number('md'):#x}")
    cmp("md multi", "length", multi.number("length"), 3 * page, "model")
    cmp("md multi", "count", multi.number("count"), 2, "model")
    m = guest.ok(f"md map {handle:#x} cache=writecombine")
    _mapping(guest, "md map", m, md, 2 * page)
    mi = guest.ok(f"map info {m.number('map'):#x}")
    _mapping(guest, "map info", mi, md, 2 * page)
    rel = guest.ok(f"map release {m.number('map'):#x}")
    cmp("map release", "refs", rel.number("refs"), 0, "model")
    cmp(
        "map release",
        "freed",
        rel.number("freed"),
        int(isinstance(guest.walker().walk(m.number("va")), Fault)),
        "walker",
    )
    for h, refs in ((multi.number("md"), 0), (sub.number("md"), 0)):
        rel = guest.ok(f"md release {h:#x}")
        cmp("md release", "refs", rel.number("refs"), refs, "model")
        cmp("md release", "freed", rel.number("freed"), 1, "model")
    guest.err(f"md info {handle:#x} 1", "kIOReturnBadArgument")
    guest.err("md length 0x0", "kIOReturnBadArgument")
    guest.err("md segments 0x0", "kIOReturnBadArgument")
    guest.err(f"md setlength {handle:#x} {4 * page:#x}", "kIOReturnBadArgument")
    guest.err("md release 0x0", "kIOReturnBadArgument")
    guest.err(f"md sub {handle:#x} 0 {8 * page:#x}", "kIOReturnBadArgument")
    guest.err("md multi 0x5", "kIOReturnBadArgument")
    guest.err(f"md map {handle:#x} cache=X", "kIOReturnBadArgument")
    guest.err("map info 0x0", "kIOReturnBadArgument")
    guest.err("map release 0x0", "kIOReturnBadArgument")
    guest.err("bmd range 0x0", "kIOReturnBadArgument")
    guest.err("bmd create 0 dir=sideways", "kIOReturnBadArgument")


def test_bench_and_protocol_verbs(guest: Guest) -> None:
    r = guest.ok("bench heap 200 max=64 seed=3")
    calls = r.number("calls")
    cmp("bench heap", "calls", calls, r.number("picolibc_calls"), "model")
    cmp("bench heap", "stub_calls", r.number("stub_calls"), calls, "model")
    cmp("bench heap", "picolibc_calls", r.number("picolibc_calls"), calls, "model")
    cmp("bench heap", "iomem_failed", r.number("iomem_failed"), 0, "model")
    cmp("bench heap", "picolibc_failed", r.number("picolibc_failed"), 0, "model")
    # a trace (firmware/lib/bench_traces.c): `small` toggles 64 slots of at most 64 bytes
    ops = 3 * BENCH_PROBE_EVERY + 5
    room = guest.heap_snapshot().free_bytes
    t = guest.ok(f"bench heap trace=small allocator=iomem ops={ops} seed=5")
    cmp(
        "bench heap",
        "measured",
        t.number("measured"),
        ops,
        "model",
        what="the trace ends after OPS measured calls",
    )
    assert room >= SMALL_TRACE_SLOTS * SMALL_TRACE_MAX_BYTES, room  # so the model expects no failure
    cmp("bench heap", "failed", t.number("failed"), 0, "model", what="4 KiB live at most, heap free")
    assert t.number("calls") >= ops
    guest.err("bench heap 0", "kIOReturnBadArgument")
    guest.err("bench", "kIOReturnBadArgument")
    guest.err("help nosuchverb", "kIOReturnUnsupported")
    guest.err("echo sideways", "kIOReturnUnsupported")
    guest.err("hello 1", "kIOReturnBadArgument")
    guest.err("info 1", "kIOReturnBadArgument")
    guest.err("pagesize 1", "kIOReturnBadArgument")
    guest.err("stats 1", "kIOReturnBadArgument")
    guest.err("quit now", "kIOReturnBadArgument")
    guest.err("peek 0x40000000 3", "kIOReturnBadArgument")
    guest.err("echo on x", "kIOReturnBadArgument")
    guest.err("echo off x", "kIOReturnBadArgument")


def test_dma_and_edu_verbs_against_the_profile_and_their_errors(guest: Guest, profile: Profile) -> None:
    iommu = int(profile.iommu != "none")
    r = guest.ok("dma create")
    cmp("dma create", "iommu", r.number("iommu"), iommu, "profile")
    cmp("dma info", "iommu", guest.ok("dma info").number("iommu"), iommu, "profile")
    cmp("edu info", "iommu", guest.ok("edu info").number("iommu"), iommu, "profile")
    guest.ok(f"dma release {r.number('dma'):#x}")
    for line, code in (
        ("dma create bits=x", "kIOReturnBadArgument"),
        ("dma info 0x5", "kIOReturnBadArgument"),
        ("dma prepare 0x0 0x0", "kIOReturnBadArgument"),
        ("dma complete 0x0", "kIOReturnBadArgument"),
        ("dma preparation 0x0", "kIOReturnBadArgument"),
        ("dma perform 0x0 read 0 1", "kIOReturnBadArgument"),
        ("dma release 0x0", "kIOReturnBadArgument"),
        ("dma translate 0x1000", "kIOReturnNotReadable" if iommu else "kIOReturnUnsupported"),
        ("edu copy 0x0 0x0 0", "kIOReturnBadArgument"),
        ("edu to-device 0x0 0", "kIOReturnBadArgument"),
        ("edu from-device 0x0 0", "kIOReturnBadArgument"),
        ("edu info 1", "kIOReturnBadArgument"),
        ("wait 99999999999", "kIOReturnBadArgument"),
        ("task 0", "kIOReturnBadArgument"),
    ):
        guest.err(line, code)


# ---------------------------------------------------------------- DMA, edu, tasks
VIRT_SMMU_BASE = 0x0905_0000  # QEMU 7.2 hw/arm/virt.c memmap: VIRT_SMMU
VIRT_HIGH_PCIE_ECAM = 0x40_1000_0000  # VIRT_HIGH_PCIE_ECAM (highmem on: the ECAM the firmware finds)
VIRT_PCIE_FIRST_SPI = 3  # virt's PCIe INTA..INTD are SPIs 3..6; SPI n is INTID 32 + n
GIC_SPI_BASE = 32
PCI_BAR0 = 0x10  # config space offset of BAR0
PCI_BAR_MEM_ADDRESS = ~0xF  # a memory BAR's address bits
EDU_BAR0_SIZE = 1 << 20  # hw/misc/edu.c: the "edu-mmio" region is 1 MiB
EDU_ID_MAGIC = 0xED  # edu.txt: the identification register's low byte
SMMU_CMDQ_BASE = 0x90  # SMMUv3 register offsets (SMMU architecture §6.3)
SMMU_QUEUE_ADDRESS = 0x000F_FFFF_FFFF_FFE0  # Q_BASE.ADDR[51:5]
SMMU_STRTAB_ADDRESS = 0x000F_FFFF_FFFF_FFC0  # STRTAB_BASE.ADDR[51:6]
IOVA_LIMIT_BITS = 48  # docs/dma.md: the domain's IOVAs are [one granule page, 2^48)
EDU_BUSY_BYTES = 0x10
BUSY_ATTEMPTS = 5
BENCH_PROBE_EVERY = 64  # firmware/lib/bench_run.h
HEAP_BLOCK_HEADER_SIZE = 16  # firmware/mm/heap.h
PPM = 1_000_000
SMALL_TRACE_SLOTS, SMALL_TRACE_MAX_BYTES = 64, 64  # bench_traces.c: the `small` trace


def _kernel_pages(guest: Guest) -> int:
    """Pages the page allocator holds for the firmware itself (PAGE_OWNER_KERNEL): bounce
    pages are such pages (firmware/mm/bounce.c), nothing else takes them after boot."""
    snap = guest.heap_snapshot()
    kernel = snap.layouts.page_state["PAGE_STATE_OWNED"] + snap.layouts.page_owner["PAGE_OWNER_KERNEL"]
    return sum(b.pages for b in snap.pages.blocks if b.state == kernel)


def _check_dma_counters(bench: DmaBench, reply: Reply, verb: str, *, prepared: int) -> None:
    """IOVA ranges and bytes, in ``stats`` or ``dma info``: the prepared commands (model) and
    the bytes the SMMU's tables map (host SMMU walker); none without an IOMMU."""
    smmu = bench.profile.smmu
    cmp(verb, "iova_ranges", reply.number("iova_ranges"), prepared if smmu else 0, "model")
    footprint = bench.smmu_footprint() if smmu else None
    if footprint is not None:
        cmp(verb, "iova_bytes", reply.number("iova_bytes"), footprint.bytes, "smmu", what="bytes mapped")
    else:
        cmp(verb, "iova_bytes", reply.number("iova_bytes"), 0, "model", what="no IOMMU")


def _check_dma_stats(bench: DmaBench, *, live: int, prepared: int, bounce_pages: int) -> None:
    stats = bench.guest.ok("stats")
    cmp("stats", "dma_live", stats.number("dma_live"), live, "model")
    cmp("stats", "dma_prepared", stats.number("dma_prepared"), prepared, "model")
    _check_dma_counters(bench, stats, "stats", prepared=prepared)
    cmp("stats", "bounce_pages", stats.number("bounce_pages"), bounce_pages, "heap-decoder")
    if bench.profile.smmu:
        footprint = bench.smmu_footprint()
        cmp(
            "stats",
            "iopt_tables",
            stats.number("iopt_tables"),
            footprint.tables,
            "smmu",
            what="tables walked",
        )
        cmp("stats", "iopt_pages", stats.number("iopt_pages"), footprint.pages, "smmu", what="leaf pages")
    else:
        cmp("stats", "iopt_tables", stats.number("iopt_tables"), 0, "model", what="no IOMMU")
        cmp("stats", "iopt_pages", stats.number("iopt_pages"), 0, "model", what="no IOMMU")


def _check_domain(bench: DmaBench, info: Reply, *, prepared: int) -> None:
    """``dma info``'s domain keys against the profile, the SMMU's registers and its tables."""
    profile = bench.profile
    sid = profile.edu_stream_id
    cmp("dma info", "iommu", info.number("iommu"), int(profile.smmu), "profile")
    cmp("dma info", "sid", info.number("sid"), sid, "profile", what="edu's requester ID")
    if not profile.smmu:
        return
    walker = bench.smmu_walker()
    ste = walker.ste(sid)
    cd = walker.context(sid)
    assert not isinstance(ste, SmmuFault) and ste.config == "translate" and cd is not None, ste
    ledger.checked("dma info", "sid", "smmu")  # its STE translates: the stream is the edu's
    cmp("dma info", "ste", info.number("ste"), walker.ste_address(sid), "smmu")
    cmp("dma info", "cd", info.number("cd"), ste.cd_address, "smmu")
    cmp("dma info", "asid", info.number("asid"), cd.asid, "smmu")
    cmp("dma info", "granule", info.number("granule"), cd.granule, "smmu")
    cmp("dma info", "ias", info.number("ias"), cd.input_bits, "smmu")
    cmp("dma info", "root", info.number("root"), cd.ttb0, "smmu")
    cmp("dma info", "iova_base", info.number("iova_base"), profile.granule, "model")
    cmp("dma info", "iova_end", info.number("iova_end"), 1 << IOVA_LIMIT_BITS, "model")
    cmp("dma info", "iova_end", info.number("iova_end"), 1 << cd.input_bits, "smmu")
    _check_dma_counters(bench, info, "dma info", prepared=prepared)
    regs = bench.smmu_registers()
    cmp("dma info", "smmu", info.number("smmu"), VIRT_SMMU_BASE, "profile")
    cmp("dma info", "strtab", info.number("strtab"), regs.strtab_base & SMMU_STRTAB_ADDRESS, "smmu")
    cmp("dma info", "strtab_cfg", info.number("strtab_cfg"), regs.strtab_base_cfg, "smmu")
    cmdq = bench.xp(VIRT_SMMU_BASE + SMMU_CMDQ_BASE, 8) & SMMU_QUEUE_ADDRESS
    cmp("dma info", "cmdq", info.number("cmdq"), cmdq, "smmu")
    cmp("dma info", "eventq", info.number("eventq"), regs.eventq_address, "smmu")
    cmp("dma info", "gerror", info.number("gerror"), regs.gerror, "smmu")
    everything = qemu_trace.events(qemu_trace.TraceLog(bench.guest.machine.trace_path).new())
    cmp("dma info", "events", info.number("events"), len(everything), "trace", what="events since boot")
    recorded = bench.events_since(0)  # the queue in RAM from its first record (it never wraps here)
    cmp("dma info", "events", info.number("events"), len(recorded), "smmu", what="event records")


def _check_transfer(
    bench: DmaBench, verb: str, r: Reply, *, commands: int, last: tuple[int, int, int, int], prod: int
) -> None:
    """One edu reply against the spec, the model and the edu's DMA registers (``last``: the
    src, dst, count and direction the last command must have left in them)."""
    cmp(verb, "status", r.number("status"), EDU_IRQ_DMA_DONE, "spec", what="the DMA-done interrupt")
    cmp(verb, "commands", r.number("commands"), commands, "model")
    src, dst, count, direction = last
    registers = (
        bench.xp(bench.edu_bar + EDU_REG_DMA_SRC, 8),
        bench.xp(bench.edu_bar + EDU_REG_DMA_DST, 8),
        bench.xp(bench.edu_bar + EDU_REG_DMA_COUNT, 8),
        bench.xp(bench.edu_bar + EDU_REG_DMA_CMD) & (EDU_CMD_RUN | EDU_CMD_TO_PCI),
    )
    cmp(
        verb,
        "commands",
        registers,
        (src, dst, count, direction),
        "edu",
        what="the last command (src dst count cmd)",
    )
    assert bench.xp(bench.edu_bar + EDU_REG_IRQ_STATUS) == 0, "the driver left the interrupt unacknowledged"
    _check_faults(bench, verb, "faults", r.number("faults"), prod, expected=0)


def _check_faults(
    bench: DmaBench, verb: str, key: str, faults: int, prod: int, *, expected: int | None
) -> None:
    """``faults``: the SMMU event records since ``prod`` (RAM) and QEMU's record_event lines."""
    if bench.profile.smmu:
        cmp(verb, key, faults, len(bench.events_since(prod)), "smmu", what="event records")
        cmp(verb, key, faults, len(bench.trace_events()), "trace", what="smmuv3_record_event lines")
    if expected is not None:
        cmp(verb, key, faults, expected, "model")


def test_dma_and_edu_claims_against_the_smmu_ram_and_the_model(guest: Guest, profile: Profile) -> None:
    bench = DmaBench(guest)
    bench.edu_bar = _check_edu_info(bench, guest.ok("edu info"))
    kernel_pages = _kernel_pages(guest)
    _check_dma_stats(bench, live=0, prepared=0, bounce_pages=0)
    _check_domain(bench, guest.ok("dma info"), prepared=0)
    page = profile.granule
    bits = command_bits(profile)
    cmd = bench.dma.create(bits)
    buf = bench.buffer(2 * page + 0x100, "inout", offset=0x30, tail=0x50)
    prep = bench.prepare(cmd.handle, buf)
    cmp("dma prepare", "flags", prep.flags, DIRS["inout"], "model")
    cmp("dma prepare", "length", prep.reply.number("length"), buf.length, "model")
    reach = 1 << profile.edu_dma_bits
    bounce = not profile.smmu and any(pa + n > reach for pa, n in buf.phys_runs(buf.offset, buf.length))
    cmp("dma prepare", "bounced", prep.bounced, bounce, "model", what="a run beyond the edu's reach")
    segments = device_segments(prep)
    if profile.smmu:
        bench.check_segments_translate(buf, prep)
    elif bounce:
        pages = set(range(0, buf.span, page))
        for address, n in segments:  # below the reach, off the buffer, holding its bytes
            assert address + n <= reach and not any(buf.pa(p) <= address < buf.pa(p) + page for p in pages)
        held = b"".join(guest.ram.read(PhysAddr(a), n) for a, n in segments)
        cmp("dma prepare", "seg<N>", held, bytes(buf.content), "ram", what="bytes of the bounce pages")
        cmp("dma prepare", "count", len(segments), prep.count, "ram")
    else:
        runs = buf.phys_runs(buf.offset, buf.length)
        cmp("dma prepare", "seg<N>", segments, runs, "walker")
        cmp("dma prepare", "count", prep.count, len(runs), "walker")
    bounce_pages = _kernel_pages(guest) - kernel_pages  # the decoder's count of new firmware pages
    assert bounce_pages == (-(-buf.length // page) if bounce else 0), (bounce_pages, prep.reply.line)
    _check_dma_stats(bench, live=1, prepared=1, bounce_pages=bounce_pages)
    info = guest.ok(f"dma info {cmd.handle:#x}")
    _check_domain(bench, info, prepared=1)
    for key, want in (
        ("prepared", 1),
        ("offset", buf.offset),
        ("length", buf.length),
        ("flags", DIRS["inout"]),
        ("bounced", int(bounce)),
    ):
        cmp("dma info", key, info.number(key), want, "model")
    if profile.smmu:
        iova, size = info.span("iova")  # whole pages around the prepared bytes
        first = buf.offset // page * page
        got = bench.smmu_walker().runs(profile.edu_stream_id, iova, size)
        assert not isinstance(got, SmmuFault), got
        cmp(
            "dma info",
            "iova",
            [(m.pa, m.length) for m in merge_runs((r.pa, r.length) for r in got)],
            buf.phys_runs(first, size),
            "smmu",
        )
        assert iova <= segments[0][0] < iova + size
        for address in (segments[0][0], segments[-1][0] + segments[-1][1] - 1):
            said = guest.ok(f"dma translate {address:#x}")
            mine = bench.smmu_walker().lookup(profile.edu_stream_id, address)
            assert isinstance(mine, SmmuTranslation), mine
            cmp("dma translate", "pa", said.number("pa"), mine.pa, "smmu")
            cmp("dma translate", "perm", said.value("perm"), "rw" if mine.writable else "ro", "smmu")
    else:
        cmp("dma info", "iova", info.span("iova"), (0, 0), "model", what="no IOVA without an IOMMU")
    preparation = bench.dma.preparation(cmd.handle)
    cmp("dma preparation", "offset", preparation.offset, buf.offset, "model")
    cmp("dma preparation", "length", preparation.length, buf.length, "model")
    _perform(bench, cmd.handle, buf)
    _edu_transfers(bench, buf, prep)
    bench.dma.complete(cmd.handle)
    bench.check_bytes(buf)  # the device's writes, and nothing else (copied back when bounced)
    r = guest.ok(f"dma release {cmd.handle:#x}")
    cmp("dma release", "refs", r.number("refs"), 0, "model")
    cmp("dma release", "freed", r.number("freed"), 1, "model")
    _check_dma_stats(bench, live=0, prepared=0, bounce_pages=_kernel_pages(guest) - kernel_pages)
    assert _kernel_pages(guest) == kernel_pages
    if not profile.icount and not profile.smmu and profile.edu_dma_bits == 64:
        _edu_busy(bench, buf)  # a host-started command at a PA: the edu must reach it directly


def _perform(bench: DmaBench, handle: int, buf: Buffer) -> None:
    """PerformOperation read: the DMA memory's bytes land in a data descriptor (host RAM); past
    the preparation's end it copies what is left and answers Underrun with that length."""
    data = bench.buffer(0x200, "inout")
    n = bench.dma.perform(handle, "read", 0, 0x200, data.md, 0)
    landed = bench.host_read(data, 0, 0x200) == bytes(buf.content[:0x200])
    cmp("dma perform", "length", n, 0x200 if landed else -1, "ram", what="bytes that landed")
    left = 0x10
    r = bench.guest.err(
        Dma.perform_line(handle, "read", buf.length - left, 0x100, data.md, 0x100), "kIOReturnUnderrun"
    )
    cmp("dma perform", "err.length", r.number("length"), left, "model", what="bytes left in the preparation")
    tail = bench.host_read(data, 0x100, left) == bytes(buf.content[-left:])
    cmp(
        "dma perform", "err.length", r.number("length"), left if tail else -1, "ram", what="bytes that landed"
    )


def _edu_transfers(bench: DmaBench, buf: Buffer, prep: Prepared) -> None:
    """to-device, from-device and copy inside the first page of the window; ``buf.content``
    follows what the device writes."""
    a = bench.device_address(prep, 0)
    b = bench.device_address(prep, 0x200)
    c = bench.device_address(prep, 0x100)
    bench.trace.skip()
    prod = bench.eventq_prod() if bench.profile.smmu else 0
    r = bench.guest.ok(Dma.edu_line("to-device", a, 0x100))
    _check_transfer(bench, "edu to-device", r, commands=1, last=(a, EDU_BUFFER_ADDR, 0x100, 0), prod=prod)
    r = bench.guest.ok(Dma.edu_line("from-device", b, 0x100))
    _check_transfer(
        bench, "edu from-device", r, commands=1, last=(EDU_BUFFER_ADDR, b, 0x100, EDU_CMD_TO_PCI), prod=prod
    )
    buf.content[0x200:0x300] = buf.content[0:0x100]
    r = bench.guest.ok(f"edu copy {a:#x} {c:#x} 0x80")
    _check_transfer(
        bench, "edu copy", r, commands=2, last=(EDU_BUFFER_ADDR, c, 0x80, EDU_CMD_TO_PCI), prod=prod
    )
    buf.content[0x100:0x180] = buf.content[0:0x80]
    bench.dma.check_no_clamp()
    if bench.profile.smmu:  # a transfer to an IOVA nothing maps: the SMMU records faults
        unmapped = (1 << bench.profile.edu_dma_bits) - bench.profile.granule
        assert isinstance(bench.smmu_walker().lookup(bench.profile.edu_stream_id, unmapped), SmmuFault)
        prod = bench.eventq_prod()
        r = bench.guest.ok(Dma.edu_line("to-device", unmapped, 0x10))
        assert r.number("faults") > 0, r.line
        _check_faults(bench, "edu to-device", "faults", r.number("faults"), prod, expected=None)
        _check_domain(bench, bench.guest.ok("dma info"), prepared=1)


def _edu_busy(bench: DmaBench, buf: Buffer) -> None:
    """A command the host starts through the BAR (100 ms of real time on a profile without
    -icount) keeps the edu busy: each transfer verb answers Busy before touching it. On a
    machine too slow to ask within the 100 ms the guest's transfer simply runs: start again."""
    guest = bench.guest
    bar = bench.edu_bar
    address = int(buf.pa(0))
    guest.ok(f"poke {bar + EDU_REG_DMA_SRC:#x} {address:#x} 8")
    guest.ok(f"poke {bar + EDU_REG_DMA_DST:#x} {EDU_BUFFER_ADDR:#x} 8")
    guest.ok(f"poke {bar + EDU_REG_DMA_COUNT:#x} {EDU_BUSY_BYTES:#x} 8")
    for verb, line in (
        ("edu to-device", Dma.edu_line("to-device", address, EDU_BUSY_BYTES)),
        ("edu from-device", Dma.edu_line("from-device", address, EDU_BUSY_BYTES)),
        ("edu copy", f"edu copy {address:#x} {address:#x} {EDU_BUSY_BYTES:#x}"),
    ):
        for _ in range(BUSY_ATTEMPTS):
            guest.ok(f"poke {bar + EDU_REG_DMA_CMD:#x} {EDU_CMD_RUN:#x} 4")  # device -> its buffer
            running = bench.xp(bar + EDU_REG_DMA_CMD) & EDU_CMD_RUN
            r = guest.request(line)
            if running and r.error == "kIOReturnBusy":
                break
            assert r.ok, f"expected kIOReturnBusy or a transfer: {r.line}"
        else:
            raise AssertionError(f"{verb}: never asked within the host's command ({BUSY_ATTEMPTS} tries)")
        ledger.checked(verb, ledger.ERROR, "spec")  # Busy: a previous command is still running
        cmp(verb, "err.status", r.number("status"), 0, "model", what="no command ran")
        ledger.checked(verb, "err.status", "edu")  # the edu's RUN bit was set just before: busy indeed
        cmp(verb, "err.faults", r.number("faults"), 0, "model")
        guest.ok("wait 300000000")  # the host's command ends (100 ms)
        assert not bench.xp(bar + EDU_REG_DMA_CMD) & EDU_CMD_RUN


def _check_edu_info(bench: DmaBench, edu: Reply) -> int:
    """``edu info`` against the profile and the edu's config space; returns BAR0 as read there."""
    profile = bench.profile
    bdf = EDU_SLOT << 3
    cmp("edu info", "bdf", edu.number("bdf"), bdf, "profile", what="the edu's pinned slot")
    cmp("edu info", "sid", edu.number("sid"), profile.edu_stream_id, "profile")
    cmp("edu info", "ecam", edu.number("ecam"), VIRT_HIGH_PCIE_ECAM, "profile")
    bar0 = bench.xp(VIRT_HIGH_PCIE_ECAM + (bdf << 12) + PCI_BAR0) & PCI_BAR_MEM_ADDRESS
    cmp("edu info", "bar0", edu.span("bar0"), (bar0, EDU_BAR0_SIZE), "edu", what="BAR0 in config space")
    cmp("edu info", "id", edu.number("id"), bench.xp(bar0 + EDU_REG_ID), "edu")
    assert edu.number("id") & 0xFF == EDU_ID_MAGIC
    intid = GIC_SPI_BASE + VIRT_PCIE_FIRST_SPI + EDU_SLOT % 4  # INTA swizzled by the slot
    cmp("edu info", "intid", edu.number("intid"), intid, "profile")
    cmp("edu info", "iommu", edu.number("iommu"), int(profile.smmu), "profile")
    return bar0


def test_tasks_and_the_creator_a_buffer_records(guest: Guest) -> None:
    cmp("task", "task", guest.ok("task").number("task"), 1, "model", what="the driver's task")
    first = guest.ok("bmd create 0x100 dir=inout").number("md")
    cmp("task", "task", guest.ok("task 3").number("task"), 3, "model")
    cmp("task", "task", guest.ok("task").number("task"), 3, "model", what="stays switched")
    second = guest.ok("bmd create 0x100 dir=inout").number("md")
    for handle, creator in ((first, 1), (second, 3)):
        cmp("md info", "creator", guest.ok(f"md info {handle:#x}").number("creator"), creator, "model")
    guest.ok("task 1")
    guest.err(f"task {1 << 32:#x}", "kIOReturnBadArgument")


@dataclass(frozen=True)
class _Probe:
    """What the bench's probe of the iomem heap sees (heap_space), restated by the decoder."""

    frag_ppm: int
    meta_x100: int | None  # None: the bench skips this probe for metadata


def _probe_from_ram(guest: Guest, before: set[int], page: int) -> _Probe:
    """firmware/lib/bench_run.h's fragmentation and metadata figures for the heap as the host
    decoder reads it from RAM (Snapshot.space: held, free and the largest request served
    without growing); live = the trace's blocks."""
    snap = guest.heap_snapshot()
    held, free, largest = snap.space(page)
    frag = 0 if free == 0 else PPM - (PPM if largest >= free else largest * PPM // free)
    live = {va: n for va, n in snap.live_blocks().items() if va not in before}
    live_bytes = sum(live.values())
    meta = (held - free - live_bytes) * 100 // len(live) if live and held >= free + live_bytes else None
    return _Probe(frag, meta)


def _step_over(gdb: GdbStub, address: int) -> None:
    """Resume from the breakpoint at ``address``: lift it, step one instruction, set it again."""
    assert gdb.request(f"z1,{address:x},4") == b"OK"
    gdb.rsp.send_packet(b"s")
    assert gdb.rsp.recv_packet()[:1] in (b"T", b"S")
    assert gdb.request(f"Z1,{address:x},4") == b"OK"
    gdb.resume()


def test_bench_trace_heap_figures_against_the_decoder_at_every_probe(guest: Guest, profile: Profile) -> None:
    """The bench's fragmentation and metadata figures, probe by probe: a hardware breakpoint on
    heap_space (which only the bench's probe calls) stops the guest at each probe while the
    host decodes the heap from RAM; the request runs on a thread meanwhile."""
    probes = 5
    ops = probes * BENCH_PROBE_EVERY + 7
    before = set(guest.heap_snapshot().live_blocks())
    gdb = guest.gdb
    address = guest.elf.symbol("heap_space").address
    with gdb.stopped():
        assert gdb.request(f"Z1,{address:x},4") == b"OK"
    seen: list[_Probe] = []
    replies: list[Reply] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            replies.append(guest.ok(f"bench heap trace=churn allocator=iomem ops={ops} seed=9", timeout=60))
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while worker.is_alive() or len(seen) < probes:
            try:
                packet = gdb.rsp.recv_packet(timeout=0.2)
            except GdbTimeout:
                if not worker.is_alive():
                    break
                continue
            if packet[:1] in (b"T", b"S"):
                seen.append(_probe_from_ram(guest, before, profile.granule))
                _step_over(gdb, address)
    finally:
        with gdb.stopped():
            gdb.request(f"z1,{address:x},4")
        worker.join(timeout=30)
    if failures:
        raise failures[0]
    assert replies, f"the bench request did not finish ({len(seen)} probes seen)"
    r = replies[0]
    assert len(seen) == probes, f"{len(seen)} probes hit, the bench makes one per {BENCH_PROBE_EVERY} calls"
    series = [p.frag_ppm for p in seen]  # every probe is a point while ops / 64 / 32 == 0
    cmp("bench heap", "series", [int(v) for v in r.value("series").split(",")], series, "heap-decoder")
    cmp("bench heap", "frag_max_ppm", r.number("frag_max_ppm"), max(series), "heap-decoder")
    cmp("bench heap", "frag_avg_ppm", r.number("frag_avg_ppm"), sum(series) // probes, "heap-decoder")
    metas = [p.meta_x100 for p in seen if p.meta_x100 is not None]
    assert metas, "no probe with live blocks"
    cmp("bench heap", "meta_x100", r.number("meta_x100"), sum(metas) // len(metas), "heap-decoder")
