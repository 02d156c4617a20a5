"""The QEMU command line and the machine runstate, without starting QEMU."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import StateError
from harness.qemu import profile as profiles
from harness.qemu.machine import SMMU_TRACE_EVENTS, Machine, Runstate, qemu_command


def _cmd(
    name: str,
    *,
    gdb_fd: int | None = 7,
    trace_path: str | None = None,
    ram_path: str = "/proc/self/fd/9",
    directory: str = "/a",
) -> list[str]:
    return qemu_command(
        profiles.load(name),
        Path("/fw.elf"),
        ram_path=ram_path,
        serial_path=f"{directory}/serial",
        console_path=f"{directory}/console",
        qmp_fd=6,
        gdb_fd=gdb_fd,
        trace_path=trace_path,
    )


CONSOLE_DEVICES = ["virtio-serial-device,max_ports=1", "virtconsole,chardev=console0"]


def _devices(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-device"]


def test_command_line_is_paused_isolated_and_complete() -> None:
    cmd = _cmd("virt-16k")
    for flag in ("-S", "-no-reboot", "-nodefaults"):
        assert flag in cmd
    assert cmd[cmd.index("-nic") + 1] == "none"
    assert cmd[cmd.index("-display") + 1] == "none"
    assert cmd[cmd.index("-cpu") + 1] == "max"
    assert "name=opt/iomem/granule,string=16384" in cmd
    assert (
        "pipe,id=serial0,path=/a/serial" in cmd
        and "pipe,id=console0,path=/a/console" in cmd
        and "virtconsole,chardev=console0" in cmd
        and "virtio-mmio.force-legacy=false" in cmd
        and "socket,id=qmp0,fd=6" in cmd
        and "socket,id=gdb0,fd=7" in cmd
    )
    assert any("memory-backend-file" in a and "share=on" in a and "size=256M" in a for a in cmd)
    assert cmd[cmd.index("-kernel") + 1] == "/fw.elf"
    assert _devices(cmd) == [*CONSOLE_DEVICES, "edu,addr=0x01,dma_mask=0xffffffffffffffff"]
    assert "-icount" not in cmd and "-trace" not in cmd  # no SMMU: nothing to trace


def test_dma_profiles_pin_edu_and_set_its_mask() -> None:
    smmu = _cmd("virt-4k-smmu")
    assert _devices(smmu) == [*CONSOLE_DEVICES, "edu,addr=0x01,dma_mask=0xfffffff"]  # QEMU's 28-bit default
    dma32 = _cmd("virt-4k-dma32")
    assert _devices(dma32) == [*CONSOLE_DEVICES, "edu,addr=0x01,dma_mask=0xffffffff"]
    assert "name=opt/iomem/dma-high,string=1" in dma32
    assert any("size=4608M" in a for a in dma32) and dma32[dma32.index("-m") + 1] == "4608M"
    assert "iommu=smmuv3" in _cmd("virt-64k-smmu")[_cmd("virt-64k-smmu").index("-machine") + 1]


def test_smmu_profiles_trace_translations_into_the_artifacts() -> None:
    cmd = _cmd("virt-4k-smmu", gdb_fd=None, trace_path="/a,b/t.log")
    traces = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-trace"]
    assert traces == [f"enable={e},file=/a,,b/t.log" for e in SMMU_TRACE_EVENTS]
    assert "smmuv3_translate_success" in SMMU_TRACE_EVENTS
    plain = _cmd("virt-4k", gdb_fd=None, trace_path="/t")
    assert "-trace" not in plain


def test_smmu_profile_turns_on_the_iommu() -> None:
    assert "iommu=smmuv3" in _cmd("virt-4k-smmu")[_cmd("virt-4k-smmu").index("-machine") + 1]
    assert "iommu" not in _cmd("virt-4k")[_cmd("virt-4k").index("-machine") + 1]


def test_runstate_guards(tmp_path: Path) -> None:
    machine = Machine(profiles.load("virt-4k"), tmp_path / "fw.elf", tmp_path)
    assert machine.state is Runstate.CREATED
    with pytest.raises(StateError, match="created"):
        machine.cont()
    assert machine.shutdown() is None
    assert machine.state is Runstate.OFF
    assert machine.shutdown() is None  # idempotent
    with pytest.raises(StateError, match="off"):
        machine.start()


def test_qemu_fatal_lines_and_edu_clamps_are_read_from_qemus_output(tmp_path: Path) -> None:
    from harness.qemu.machine import qemu_fatal_lines

    stderr = (
        "EDU: clamping DMA 0x10001000 to 0x1000!\n"
        "qemu: hardware error: EDU: DMA range 0x40000-0x41000 out of bounds (0x40000-0x40fff)!\n"
        "CPU #0:\n PC=0000000040201134 X00=00000000ffffffff\n"
    )
    assert qemu_fatal_lines(stderr) == [
        "qemu: hardware error: EDU: DMA range 0x40000-0x41000 out of bounds (0x40000-0x40fff)!"
    ]
    machine = Machine(profiles.load("virt-4k-smmu"), tmp_path / "fw.elf", tmp_path)
    machine.stderr_path.write_text(stderr)
    assert machine.edu_clamps() == [(0x1000_1000, 0x1000)]


def test_a_comma_in_an_artifacts_path_is_escaped_in_every_option() -> None:
    """`iomem bench` names directories after what it measures ("virt-4k-smmu, icount off"):
    QEMU would read the rest of such a path as another option."""
    cmd = _cmd("virt-4k-smmu", gdb_fd=None, trace_path="/a, b/t.log", ram_path="/r,1", directory="/a, b")
    assert "pipe,id=serial0,path=/a,, b/serial" in cmd
    assert "pipe,id=console0,path=/a,, b/console" in cmd
    assert any("mem-path=/r,,1,share=on" in a for a in cmd)
    assert all(",, b/t.log" in a for a in cmd if a.startswith("enable="))
