"""The ELF/DWARF reader on a small program built here with the cross compiler."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.image.elf import Firmware

SOURCE = r"""
#include <stdint.h>
typedef uint32_t u32_alias;
enum colour { RED = 3, GREEN = 0xF4EE };
struct inner { uint8_t a; uint64_t b; };
struct sample {
    uint16_t small;
    u32_alias aliased;
    struct inner nested;
    uint32_t table[4][8];
    const volatile uint64_t *pointer;
};
struct sample sample_global;
extern struct inner declared_first;
struct inner declared_first;
enum colour colour_global = GREEN;
void _start(void) { for (;;) { } }
"""


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("aarch64-linux-gnu-gcc is not installed (make deps)")
    work = tmp_path_factory.mktemp("elf")
    (work / "sample.c").write_text(SOURCE)
    subprocess.run(
        [
            "aarch64-linux-gnu-gcc",
            "-g",
            "-O0",
            "-ffreestanding",
            "-nostdlib",
            "-static",
            "-Wl,--build-id=sha1",
            "-o",
            str(work / "sample.elf"),
            str(work / "sample.c"),
        ],
        check=True,
        cwd=work,
    )
    return Firmware(work / "sample.elf")


def test_build_id_matches_readelf(elf: Firmware) -> None:
    out = subprocess.run(
        ["aarch64-linux-gnu-readelf", "-n", str(elf.path)], capture_output=True, text=True, check=True
    ).stdout
    assert f"Build ID: {elf.build_id}" in out
    assert len(elf.build_id) == 40


def test_struct_layout(elf: Firmware) -> None:
    layout = elf.dwarf.struct("sample")
    assert layout["small"].offset == 0 and layout["small"].size == 2
    assert layout["aliased"].offset == 4 and layout["aliased"].type_name == "unsigned int"
    assert layout["nested"].offset == 8 and layout["nested"].size == 16
    assert layout["table"].offset == 24 and layout["table"].count == 32 and layout["table"].size == 128
    assert layout["pointer"].type_name == "pointer" and layout["pointer"].size == 8
    assert layout.size == 160
    blob = bytearray(layout.size)
    blob[24 + 4 * 9 : 24 + 4 * 10] = (0xABCD).to_bytes(4, "little")
    assert layout.read(bytes(blob), "table", 9) == 0xABCD
    with pytest.raises(KeyError, match="no member"):
        layout["missing"]


def test_enums_variables_typedefs_symbols(elf: Firmware) -> None:
    assert elf.dwarf.enum("colour") == {"RED": 3, "GREEN": 0xF4EE}
    assert elf.dwarf.variable_type("sample_global") == "sample"
    assert elf.dwarf.variable_type("declared_first") == "inner"
    assert elf.dwarf.base_type_sizes()["u32_alias"] == 4
    assert elf.symbol("sample_global").size == 160
    start = elf.symbol("_start").address
    assert elf.symbolize(start) == "_start+0x0"
    assert elf.symbolize(0x10) == "0x10"
    assert any(s.executable for s in elf.sections)
