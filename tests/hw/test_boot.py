"""Boot, banner and the identity verbs, checked against the ELF and QEMU."""

from __future__ import annotations

from harness.guest import Guest
from harness.image.elf import Firmware
from harness.qemu.profile import Profile

TG0_GRANULE = {0b00: 4096, 0b01: 65536, 0b10: 16384}


def test_banner_matches_the_booted_elf_and_profile(guest: Guest, profile: Profile, firmware_elf) -> None:  # type: ignore[no-untyped-def]
    banner = guest.banner
    assert banner is not None
    assert banner.proto == 1
    assert banner.build == Firmware(firmware_elf).build_id
    assert banner.page == profile.granule
    assert (banner.ram_base, banner.ram_size) == (profile.ram_base, profile.ram_size)


def test_hello_repeats_the_banner(guest: Guest) -> None:
    reply = guest.ok("hello")
    assert guest.banner is not None
    assert reply.number("proto") == 1
    assert reply.value("build") == guest.banner.build
    assert reply.number("page") == guest.banner.page
    assert reply.span("ram") == (guest.banner.ram_base, guest.banner.ram_size)


def test_info_is_consistent(guest: Guest, profile: Profile) -> None:
    info = guest.info()
    assert info.page == info.granule == profile.granule == guest.pagesize()
    assert info.ram == (profile.ram_base, profile.ram_size)
    assert TG0_GRANULE[(info.tcr >> 14) & 3] == profile.granule
    ram_end = profile.ram_base + profile.ram_size
    scratch_base, scratch_len = info.scratch
    heap_base, heap_len = info.heap
    assert scratch_len >= 64 * 1024
    assert profile.ram_base <= scratch_base and scratch_base + scratch_len <= ram_end
    assert profile.ram_base <= heap_base and heap_base + heap_len <= ram_end
    assert scratch_base + scratch_len <= heap_base or heap_base + heap_len <= scratch_base
    assert 32 <= info.pa_bits <= 52
    assert info.reply.number("el") == 1


def test_scratch_does_not_overlap_the_image(guest: Guest) -> None:
    base, length = guest.info().scratch
    for section in guest.elf.sections:
        assert section.end <= base or section.address >= base + length, section


def test_help_lists_the_verbs(guest: Guest) -> None:
    verbs = set(guest.ok("help").value("verbs").split(","))
    assert {
        "hello",
        "info",
        "echo",
        "help",
        "pagesize",
        "peek",
        "poke",
        "read",
        "write",
        "fill",
        "crc",
        "stats",
    } <= verbs
    echo = guest.ok("help echo")
    assert set(echo.value("subverbs").split(",")) == {"on", "off"}
    assert guest.ok("help peek").value("verb") == "peek"
    assert guest.err("help nosuchverb", "kIOReturnUnsupported")


def test_stats_count_requests_and_errors(guest: Guest) -> None:
    before = guest.ok("stats")
    guest.err("nosuchverb", "kIOReturnUnsupported")
    guest.ok("pagesize")
    after = guest.ok("stats")
    # stats itself, the unknown verb and pagesize happened in between
    assert after.number("requests") - before.number("requests") == 3
    assert after.number("errors") - before.number("errors") == 1
