"""Firmware boots (-bios, -drive if=pflash) with tiny flat binaries, against QEMU 7.2.

Each program runs from flash0 at 0 as QEMU's `-M virt` runs firmware without
secure=on, prints what it finds on the PL011 and powers off with PSCI
SYSTEM_OFF over HVC (the conduit QEMU's DTB names for such a boot). Where QEMU
is installed the same binary runs there too and must print the same bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import fdt
import pytest

import armvisor
from armvisor.devtools import qemu
from armvisor.devtools.cross import FLASH0_ADDRESS, PRINT_HEX, build_program, flat_binary, \
    have_cross_tools
from tests.machine.test_cli import armvisor as run_cli
from tests.machine.test_cli import assert_one_line_error

BANK = 64 << 20                     # QEMU virt's flash banks: pflash files are this size exactly
FLASH1 = 0x0400_0000
RAM_BASE = 0x4000_0000
FDT_MAGIC = 0xD00DFEED

POWER_OFF = """
    ldr x0, =0x84000008         // PSCI SYSTEM_OFF, over HVC as the DTB says
    hvc #0
    b .
"""


def firmware(tmp_path: Path, body: str, name: str) -> Path:
    if not have_cross_tools():
        pytest.skip("needs Debian's binutils-aarch64-linux-gnu")
    elf = build_program(tmp_path, body + POWER_OFF + PRINT_HEX, name,
                        load_address=FLASH0_ADDRESS)
    return flat_binary(elf)


def qemu_output(*args, timeout=60) -> str:
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed: nothing to compare with")
    done = subprocess.run(qemu.virt_command(extra=[str(a) for a in args]), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def hexline(value: int) -> str:
    return f"{value:016x}\n"


# What the CPU finds at reset: x0, CurrentEL, SCTLR_EL1.M, the word at the RAM base, its PC.
BOOT_STATE = f"""
    mov x19, x0
    mov x0, x19
    bl print_hex
    mrs x0, CurrentEL
    lsr x0, x0, #2
    bl print_hex
    mrs x0, sctlr_el1
    and x0, x0, #1
    bl print_hex
    ldr x1, ={RAM_BASE:#x}
    ldr w0, [x1]
    rev w0, w0                  // the DTB header is big-endian
    bl print_hex
    adr x0, _start
    bl print_hex
"""


def test_bios_starts_at_flash_base_at_el1_with_x0_zero_and_the_dtb_at_ram_base(tmp_path):
    fw = firmware(tmp_path, BOOT_STATE, "state")
    proc = run_cli("run", "-bios", fw, "--timeout", "30")
    expected = hexline(0) + hexline(1) + hexline(0) + hexline(FDT_MAGIC) + hexline(0)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")
    assert qemu_output("-bios", fw) == expected


def test_api_bios_and_the_dtb_it_finds(tmp_path):
    fw = firmware(tmp_path, BOOT_STATE, "state")
    with armvisor.Machine(bios=str(fw), smp=2) as machine:
        assert machine.run(timeout=30) == 0
        assert machine.console.text.splitlines()[3] == f"{FDT_MAGIC:016x}"
        boot = machine.trace.events("machine.boot")[0].fields
        assert (boot["entry"], boot["dtb"], boot["kind"], boot["bios"]) == \
            (0, RAM_BASE, "firmware", str(fw))
        size = int.from_bytes(machine.memory.read(RAM_BASE + 4, 4), "big")
        tree = fdt.parse_dtb(machine.memory.read(RAM_BASE, size))
        assert tree.get_property("method", "/psci").value == "hvc"
        assert machine.cpus[1].power_state == "OFF"          # secondaries wait for CPU_ON


# The fw_cfg items QEMU adds for `-bios ... -kernel K -append TEXT` (hw/arm/boot.c),
# read through the MMIO interface: selector at +8 (big-endian), data at +0.
FW_CFG_READER = """
    ldr x21, =0x09020000
    mov w1, #0x0800             // FW_CFG_KERNEL_SIZE, big-endian
    strh w1, [x21, #8]
    ldr w0, [x21]
    bl print_hex
    mov w1, #0x1100             // FW_CFG_KERNEL_DATA: its first 8 bytes
    strh w1, [x21, #8]
    ldr x0, [x21]
    bl print_hex
    mov w1, #0x1400             // FW_CFG_CMDLINE_SIZE
    strh w1, [x21, #8]
    ldr w0, [x21]
    bl print_hex
    mov w1, #0x1500             // FW_CFG_CMDLINE_DATA, printed up to its NUL
    strh w1, [x21, #8]
1:  ldrb w1, [x21]
    cbz w1, 2f
    putc w1
    b 1b
2:  mov w1, #'\\n'
    putc w1
    mov w1, #0x0b00             // FW_CFG_INITRD_SIZE: none given
    strh w1, [x21, #8]
    ldr w0, [x21]
    bl print_hex
"""


def test_kernel_with_bios_goes_to_the_firmware_through_fw_cfg(tmp_path):
    fw = firmware(tmp_path, FW_CFG_READER, "fwcfg")
    kernel = tmp_path / "kernel.bin"
    kernel.write_bytes(bytes(range(8)) * 100)           # not loaded: the firmware reads it
    args = ["-bios", fw, "--kernel", kernel, "--append", "console=ttyAMA0 quiet"]
    proc = run_cli("run", *args, "--timeout", "30")
    expected = (hexline(800) + hexline(0x0706050403020100) + hexline(22)
                + "console=ttyAMA0 quiet\n" + hexline(0))
    assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr
    assert qemu_output("-bios", fw, "-kernel", kernel, "-append", "console=ttyAMA0 quiet") == \
        expected


# Stores into flash while running from flash0 (what EDK2's PEI modules do with their
# globals): a 64-bit store to flash1 is two 32-bit device writes, as is one into flash0
# itself, which the board carries out because Unicorn cannot fetch from MMIO.
STORES_INTO_FLASH = f"""
    ldr x2, ={FLASH1 + 0x1000:#x}
    mov x1, #0x84               // unknown command, then 0: back to read-array
    str x1, [x2]
    mov w1, #0x90               // read ID, then one 64-bit read: two device reads
    str w1, [x2]
    ldr x0, [x2]
    bl print_hex
    mov w1, #0xff
    str w1, [x2]
    adr x2, scratch
    ldr x1, =0x17384
    str x1, [x2]                // into the bank this code runs from: no effect, as on QEMU
    ldr x0, [x2]
    bl print_hex
    mov w1, #'.'
    putc w1
"""


def test_stores_into_flash_while_running_from_it_like_qemu(tmp_path):
    fw = firmware(tmp_path, STORES_INTO_FLASH + POWER_OFF + """
    .balign 8
scratch: .quad 0x1122334455667788
""", "stores")
    proc = run_cli("run", "-bios", fw, "--timeout", "30")
    expected = hexline(0x0018_0018_0089_0089) + hexline(0x1122_3344_5566_7788) + "."
    assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr
    assert qemu_output("-bios", fw) == expected


# Program one word into flash1 with the Intel command set, then read flash1 as memory
# long enough for the board to map it as memory again.
PROGRAM_FLASH1 = f"""
    ldr x2, ={FLASH1:#x}
    mov w1, #0x40               // word program
    str w1, [x2, #0x100]
    ldr w1, =0xcafebabe
    str w1, [x2, #0x100]
    mov w1, #0xff               // read array
    str w1, [x2]
    mov x3, #4096
1:  ldr w0, [x2, #0x100]
    subs x3, x3, #1
    b.ne 1b
    bl print_hex
"""


def padded(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    with open(path, "r+b") as handle:
        handle.truncate(BANK)                           # sparse: 64 MiB costs nothing
    return path


def test_pflash_files_get_the_guests_writes_like_qemu(tmp_path):
    fw = firmware(tmp_path, PROGRAM_FLASH1, "program")
    code = padded(tmp_path / "code.fd", fw.read_bytes())
    expected = hexline(0xCAFEBABE)
    outputs = {}
    for who in ("armvisor", "qemu"):
        variables = padded(tmp_path / f"vars-{who}.fd", b"")
        drives = ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                  "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        if who == "armvisor":
            proc = run_cli("run", *drives, "--timeout", "30")
            assert proc.returncode == 0, proc.stderr
            outputs[who] = proc.stdout
        else:
            outputs[who] = qemu_output(*drives)
        data = variables.read_bytes()
        assert len(data) == BANK and data[0x100:0x104] == bytes.fromhex("bebafeca"), who
        assert data[:0x100] == bytes(0x100) and not any(data[0x104:0x10000]), who
    assert outputs == {"armvisor": expected, "qemu": expected}


def test_snapshot_keeps_flash_writes_in_memory(tmp_path):
    fw = firmware(tmp_path, PROGRAM_FLASH1, "program")
    variables = padded(tmp_path / "vars.fd", b"")
    proc = run_cli("run", "-bios", fw, "-drive", f"if=pflash,unit=1,file={variables}", "--snapshot",
                   "--timeout", "30")
    assert (proc.returncode, proc.stdout) == (0, hexline(0xCAFEBABE)), proc.stderr
    assert not any(variables.read_bytes())


def test_flash_read_as_an_array_is_mapped_as_memory_again(tmp_path):
    fw = firmware(tmp_path, PROGRAM_FLASH1, "program")
    with armvisor.Machine(bios=str(fw)) as machine:
        assert machine.run(timeout=30) == 0
        maps = [e.fields["mode"] for e in machine.trace.events("flash.map", bank="flash1")]
        assert maps == ["mmio", "memory"]           # the program's store, then its reads
        exits = machine.board.exit_counts()
        assert exits["mmio:flash1"] < 1100           # not one exit for each of 4096 reads


@pytest.mark.skipif(not shutil.which("dtc"), reason="needs dtc (device-tree-compiler)")
@pytest.mark.parametrize("how", ["bios", "pflash"])
def test_dumpdtb_with_firmware_needs_no_kernel(tmp_path, how):
    fw = firmware(tmp_path, "", "nothing")
    out = tmp_path / "virt.dtb"
    flash0 = ["-bios", fw] if how == "bios" else \
        ["-drive", f"if=pflash,unit=0,readonly=on,file={padded(tmp_path / 'code.fd', b'')}"]
    proc = run_cli("run", *flash0, "--dumpdtb", out)
    assert proc.returncode == 0, proc.stderr
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(out)], capture_output=True,
                         text=True, check=True).stdout
    assert 'method = "hvc"' in dts and "bootargs" not in dts


def test_bios_goes_back_into_flash0_at_every_reset(tmp_path):
    """As QEMU's ROM blobs (rom_reset): the image's bytes are written again; the rest of
    the bank, zero at power-on, keeps what was written there."""
    fw = firmware(tmp_path, BOOT_STATE, "state")
    image = fw.read_bytes()
    with armvisor.Machine(bios=str(fw)) as machine:
        machine.boot()
        flash0 = machine.board.flash[0].device
        assert bytes(flash0.contents[:len(image)]) == image
        assert not any(flash0.contents[len(image):1 << 20])
        flash0.load(0, b"\0" * 16)
        flash0.load(0x10000, b"kept")
        machine.board.boot()                      # what SYSTEM_RESET does
        assert bytes(flash0.contents[:len(image)]) == image
        assert bytes(flash0.contents[0x10000:0x10004]) == b"kept"


# -- bad input ------------------------------------------------------------------------------

@pytest.fixture
def fw(tmp_path):
    return firmware(tmp_path, "", "nothing")


@pytest.mark.parametrize("make_args, words", [
    (lambda t, fw: ["-bios", t / "missing.fd"], ["-bios", "missing.fd"]),
    (lambda t, fw: ["-bios", t], ["-bios", "directory"]),
    (lambda t, fw: ["-bios", fifo(t / "fw.pipe")], ["-bios", "named pipe"]),
    (lambda t, fw: ["-bios", oversized(t / "big.fd")], ["-bios", "big.fd", "flash0", "64 MiB"]),
    (lambda t, fw: ["-drive", f"if=pflash,file={fw},unit=2"], ["unit", "not '2'"]),
    (lambda t, fw: ["-drive", f"if=pflash,file={fw},cache=none"], ["if=pflash", "cache"]),
    (lambda t, fw: ["-drive", f"if=pflash,file={fw}"], ["pflash unit 0", "64 MiB exactly"]),
    (lambda t, fw: ["-bios", fw, "-drive", f"if=pflash,unit=0,file={fw}"], ["flash0", "both"]),
    (lambda t, fw: ["-drive", f"if=pflash,unit=1,file={padded(t / 'v.fd', b'')}"],
     ["--kernel is required"]),
    (lambda t, fw: ["-bios", fw, "--hyp"], ["-bios", "--hyp"]),
])
def test_bad_firmware_input_is_one_line(tmp_path, fw, make_args, words):
    assert_one_line_error(run_cli("run", *make_args(tmp_path, fw), "--timeout", "10"), 2,
                          *words)


def test_qemu_refuses_bios_and_pflash_unit0_too(tmp_path, fw):
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed")
    code = padded(tmp_path / "code.fd", b"")
    done = subprocess.run(qemu.virt_command(extra=["-bios", str(fw), "-drive",
                                                   f"if=pflash,format=raw,unit=0,file={code}"]),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "cannot use both" in done.stderr


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def oversized(path: Path) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(BANK + 1)
    return path


def test_bios_not_readable(tmp_path, fw):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    fw.chmod(0)
    assert_one_line_error(run_cli("run", "-bios", fw), 2, "-bios", "Permission denied")


def test_snapshot_of_a_machine_with_flash_files(tmp_path):
    """A writable flash file must be in snapshot mode, as a writable disk; then the
    bank's contents go into the snapshot and come back with it."""
    fw = firmware(tmp_path, PROGRAM_FLASH1, "program")
    variables = padded(tmp_path / "vars.fd", b"")
    drive = f"if=pflash,unit=1,file={variables}"
    with armvisor.Machine(bios=str(fw), drives=[drive]) as machine:
        with pytest.raises(armvisor.ArmvisorError, match=f"the flash file {variables}"):
            machine.snapshot(str(tmp_path / "no.snap"))
    with armvisor.Machine(bios=str(fw), drives=[drive], disk_snapshot=True,
                          deterministic=True) as machine:
        machine.run(until=armvisor.Instructions(200), timeout=30)   # past the program
        machine.snapshot(str(tmp_path / "m.snap"))
    with armvisor.Machine.restore(str(tmp_path / "m.snap")) as restored:
        assert restored.board.flash[1].device.read(0x100, 4) == 0xCAFEBABE
        assert restored.run(timeout=30) == 0
        assert restored.console.text == hexline(0xCAFEBABE)
    assert not any(variables.read_bytes())
