"""F2: real stage-1 tables on every granule, checked from the host.

Sources the guest does not control: the registers (QEMU's gdbstub), the tables (guest RAM
read from the host, walked by harness/oracle/pagewalk.py), QEMU's own ``gva2gpa``, and the
firmware ELF's section and symbol addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from harness.addresses import PhysAddr, VirtAddr
from harness.errors import GuestCrashed
from harness.guest import Guest
from harness.oracle.pagewalk import Fault, FaultKind, PageWalker, Translation
from harness.oracle.translation import perm_of
from harness.qemu.profile import Profile

TG0 = {0b00: 4096, 0b01: 65536, 0b10: 16384}
MAIR_RECOMMENDED = 0x0C0804FF00BB44FF
UART = 0x0900_0000
GIC_DIST = 0x0800_0000


def _pages(start: int, end: int, granule: int) -> range:
    return range(start & ~(granule - 1), end, granule)


def _walk(walker: PageWalker, va: int) -> Translation:
    result = walker.walk(va)
    assert isinstance(result, Translation), f"{va:#x}: {result}"
    return result


def test_iovmpagesize_is_the_granule_the_hardware_uses(guest: Guest, profile: Profile) -> None:
    regs = guest.registers()  # from QEMU, not from the guest
    assert TG0[(regs.tcr_el1 >> 14) & 3] == profile.granule == guest.pagesize() == guest.info().page
    assert regs.mair_el1 == MAIR_RECOMMENDED
    assert regs.mmu_on
    walker = guest.walker()
    text = guest.elf.section(".text")
    leaf = _walk(walker, text.address)
    assert leaf.granule == profile.granule and leaf.size == profile.granule and leaf.kind == "page"


def test_sections_are_mapped_w_xor_x(guest: Guest, profile: Profile) -> None:
    """Every allocated section lies in the text, rodata or data range the linker script
    names, and each of its pages has that range's permissions: rx, ro, rw (never W+X)."""
    walker = guest.walker()
    sym = {
        n: guest.elf.symbol(n).address
        for n in (
            "__text_start",
            "__text_end",
            "__rodata_start",
            "__rodata_end",
            "__data_start",
            "__data_end",
        )
    }
    ranges = {
        "rx": (sym["__text_start"], sym["__text_end"]),
        "ro": (sym["__rodata_start"], sym["__rodata_end"]),
        "rw": (sym["__data_start"], sym["__data_end"]),
    }
    checked = 0
    for section in guest.elf.sections:
        if section.name in (".exception_stack", ".stack", ".page_tables"):
            continue
        homes = [perm for perm, (lo, hi) in ranges.items() if lo <= section.address and section.end <= hi]
        assert len(homes) == 1, f"{section.name} [{section.address:#x}, {section.end:#x}) is in {homes}"
        want = homes[0]
        if section.executable:
            assert want == "rx", f"{section.name} holds code but is mapped {want}"
        for va in _pages(section.address, section.end, profile.granule):
            leaf = _walk(walker, va)
            assert perm_of(leaf) == want, f"{section.name} page {va:#x}: {perm_of(leaf)}, want {want}"
            assert leaf.uxn, f"{section.name} page {va:#x} is executable at EL0"
            assert leaf.mair_byte == 0xFF and leaf.af
            checked += 1
    assert checked >= 3
    # And nothing anywhere is both writable and executable at EL1.
    for leaf in walker.iter_mappings():
        assert not (leaf.el1 == "rw" and not leaf.pxn), f"W+X mapping at {leaf.va:#x}"


def test_image_symbols_bound_the_sections(guest: Guest) -> None:
    sym = {
        n: guest.elf.symbol(n).address
        for n in (
            "__text_start",
            "__text_end",
            "__rodata_start",
            "__rodata_end",
            "__stack_guard_start",
            "__stack_guard_end",
        )
    }
    text = guest.elf.section(".text")
    assert sym["__text_start"] <= text.address and text.end <= sym["__text_end"]
    assert sym["__stack_guard_end"] > sym["__stack_guard_start"]


def test_stack_guard_is_unmapped_and_faults(guest: Guest, profile: Profile) -> None:
    walker = guest.walker()
    start = guest.elf.symbol("__stack_guard_start").address
    end = guest.elf.symbol("__stack_guard_end").address
    assert end - start >= profile.granule
    for va in (start, end - 8):
        result = walker.walk(va)
        assert isinstance(result, Fault) and result.kind is FaultKind.TRANSLATION
        reply = guest.err(f"peek {va:#x}", "kIOReturnNotReadable")
        assert reply.value("fault") == "translation"
        assert reply.number("level") == result.level
        assert guest.machine.gva2gpa(va) is None
    stack = _walk(walker, end)  # the first page above the guard is the stack itself
    assert perm_of(stack) == "rw"


@pytest.mark.parametrize("device", [UART, GIC_DIST])
def test_devices_are_device_ngnrne_and_never_executable(guest: Guest, device: int) -> None:
    leaf = _walk(guest.walker(), device)
    assert leaf.mair_byte == 0x00 and leaf.memtype == "Device-nGnRnE"
    assert leaf.uxn and leaf.pxn and leaf.pa == device
    seen = guest.translate(VirtAddr(device))
    assert (seen.pa, seen.attr, seen.cache) == (device, 0x00, "inhibit")


def test_ram_beyond_the_image_is_normal_write_back(guest: Guest) -> None:
    walker = guest.walker()
    heap_base, heap_len = guest.info().heap
    for va in (heap_base, heap_base + heap_len // 2, heap_base + heap_len - 8):
        leaf = _walk(walker, va)
        assert leaf.pa == va and leaf.mair_byte == 0xFF and leaf.cache == "copyback"
        assert leaf.el1 == "rw" and leaf.pxn and leaf.uxn and leaf.sh == "outer"  # §9.3: WB is SH=outer


@pytest.mark.parametrize(("section", "symbol"), [(".text", "__text_start"), (".rodata", "__rodata_start")])
def test_writes_to_read_only_sections_fault(guest: Guest, section: str, symbol: str) -> None:
    va = guest.elf.symbol(symbol).address + 64
    before = guest.ram.read(PhysAddr(va), 8)
    for line in (f"poke {va:#x} 0x1234", f"fill {va:#x} 8 0", f"write {va:#x} 00"):
        reply = guest.err(line, "kIOReturnNotWritable")
        assert reply.value("fault") == "permission"
        assert reply.number("far") == va
    assert guest.ram.read(PhysAddr(va), 8) == before
    assert guest.pagesize() > 0


def test_three_sources_agree_on_every_image_and_scratch_page(guest: Guest, profile: Profile) -> None:
    walker = guest.walker()
    image_start = guest.elf.symbol("__image_start").address
    image_end = guest.elf.symbol("__image_end").address
    scratch, length = guest.scratch()
    checked = 0
    for start, end in ((image_start, image_end), (scratch, scratch + length)):
        for va in _pages(start, end, profile.granule):
            guest.check_translation(VirtAddr(va + 0x18), walker)  # raises naming the source that diverged
            checked += 1
    assert checked >= (image_end - image_start + length) // profile.granule


def test_unmapped_va_faults_in_all_three_sources(guest: Guest) -> None:
    for va in (0x7F_0000_0000, max(0x1_0000_0000, guest.profile.ram_end)):  # 4 GiB, or past RAM
        result = guest.check_translation(VirtAddr(va))
        assert isinstance(result, Fault)
        seen = guest.translate(VirtAddr(va))
        assert seen.fault == "translation"
        assert seen.reply.number("level") == result.level


def test_write_translation_of_text_is_a_permission_fault(guest: Guest) -> None:
    va = guest.elf.symbol("__text_start").address
    seen = guest.translate(VirtAddr(va), write=True)
    assert seen.fault == "permission"
    assert guest.translate(VirtAddr(va)).perm == "rx"


@pytest.mark.profiles("virt-4k")
def test_cpu_without_the_granule_is_refused_at_boot(
    profile: Profile, make_guest: Callable[..., Guest]
) -> None:
    no16k = replace(profile, name="virt-16k-a57", cpu="cortex-a57", granule=16384)
    guest = make_guest(no16k)
    with pytest.raises(GuestCrashed, match="granule 16384 not implemented"):
        guest.boot()
