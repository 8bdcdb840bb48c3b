"""A firmware boot's parts: -bios and -drive if=pflash options, the fw_cfg items for a
kernel handed to firmware, the files behind the flash banks, and when a bank left as MMIO
is mapped as memory again."""

from __future__ import annotations

import gzip
import os
import struct

import pytest

from armvisor.devices.pflash import CfiFlash
from armvisor.errors import ArmvisorError
from armvisor.machine.board import ARRAY_READS_BEFORE_REMAP, FlashBank
from armvisor.machine.config import (DriveSpec, MachineConfig, PflashSpec, parse_any_drive,
                                     parse_drive, split_drives)
from armvisor.machine.firmware_boot import (FW_CFG_CMDLINE_DATA, FW_CFG_CMDLINE_SIZE,
                                            FW_CFG_INITRD_DATA, FW_CFG_INITRD_SIZE,
                                            FW_CFG_KERNEL_DATA, FW_CFG_KERNEL_SIZE,
                                            fw_cfg_boot_items, read_bios_file)
from armvisor.machine.flash_files import map_flash_file

BANK = 1 << 20                       # small banks keep the files small; the board's are 64 MiB
SECTOR = 256 << 10


def one_line(call, *args, match, **kwargs) -> str:
    with pytest.raises(ArmvisorError, match=match) as err:
        call(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


# -- -drive ---------------------------------------------------------------------------------

def test_virtio_drive_syntax_unchanged():
    assert parse_any_drive("file=d.img") == DriveSpec("d.img")
    assert parse_any_drive("file=d.img,format=raw,if=virtio,readonly=on") == \
        DriveSpec("d.img", read_only=True)
    assert parse_drive("file=d.img,readonly=off") == DriveSpec("d.img")


def test_pflash_drives_and_their_units():
    assert parse_any_drive("if=pflash,format=raw,file=code.fd,unit=0,readonly=on") == \
        PflashSpec("code.fd", 0, read_only=True)
    assert parse_any_drive("if=pflash,file=vars.fd,unit=1") == PflashSpec("vars.fd", 1)
    # Without unit=, the next free unit, as QEMU numbers drives of one interface.
    disks, banks = split_drives(["if=pflash,file=a.fd", "file=disk.img",
                                 "if=pflash,file=b.fd"])
    assert disks == (DriveSpec("disk.img"),)
    assert banks == (PflashSpec("a.fd", 0), PflashSpec("b.fd", 1))
    assert split_drives(["if=pflash,file=b.fd,unit=1", "if=pflash,file=a.fd"])[1] == \
        (PflashSpec("b.fd", 1), PflashSpec("a.fd", 0))


@pytest.mark.parametrize("drives, match", [
    (["if=pflash,file=a.fd,unit=2"], "unit must be 0 .code. or 1 .variables., not '2'"),
    (["if=pflash,file=a.fd,unit=x"], "unit must be 0"),
    (["if=pflash,file=a.fd,unit=1", "if=pflash,file=b.fd,unit=1"], "unit 1 is given twice"),
    (["if=pflash,file=a", "if=pflash,file=b", "if=pflash,file=c"], "both flash units"),
    (["if=pflash,file=a.fd,cache=none"], "unknown option.*cache"),
    (["if=pflash,file=a.fd,readonly=yes"], "readonly must be on or off"),
    (["if=pflash,file=a.fd,format=qcow2"], "only format=raw"),
    (["if=pflash,unit=0"], "if=pflash needs file=PATH"),
    (["if=scsi,file=a"], "if=scsi is not supported"),
    (["if=pflash,file=a.fd,unit"], "expected key=value"),
    ([PflashSpec("a", 0), PflashSpec("b", 0)], "unit 0 is given twice"),
])
def test_bad_pflash_drives(drives, match):
    one_line(split_drives, drives, match=match)


def test_virtio_only_parser_refuses_pflash():
    one_line(parse_drive, "if=pflash,file=a.fd", match="only if=virtio")


# -- the machine's configuration -------------------------------------------------------------

def test_firmware_boot_configuration():
    assert not MachineConfig(kernel="k").runs_firmware
    assert MachineConfig(kernel="k").psci_conduit == "smc"
    bios = MachineConfig(bios="QEMU_EFI.fd")
    assert bios.runs_firmware and bios.kernel is None
    assert bios.psci_conduit == "hvc"            # QEMU virt's DTB without virtualization=on
    assert MachineConfig(bios="b", psci_conduit="smc").psci_conduit == "smc"
    code = MachineConfig(pflash=(PflashSpec("code.fd", 0, True), PflashSpec("vars.fd", 1)))
    assert code.runs_firmware and code.pflash_read_only(0) and not code.pflash_read_only(1)
    assert not MachineConfig(kernel="k", pflash=(PflashSpec("vars.fd", 1),)).runs_firmware


def test_bad_firmware_configurations():
    one_line(MachineConfig, match="--kernel is required .or -bios")
    one_line(MachineConfig, pflash=(PflashSpec("vars.fd", 1),), match="--kernel is required")
    one_line(MachineConfig, bios="b", pflash=(PflashSpec("code.fd", 0),),
             match="either -bios or -drive if=pflash,unit=0")


# -- -bios -----------------------------------------------------------------------------------

def test_bios_file_fits_flash0(tmp_path):
    path = tmp_path / "fw.bin"
    path.write_bytes(b"\x01" * BANK)
    assert len(read_bios_file(str(path), BANK)) == BANK
    path.write_bytes(b"\x01" * (BANK + 1))
    one_line(read_bios_file, str(path), BANK, match="more than flash0")
    path.write_bytes(b"")
    one_line(read_bios_file, str(path), BANK, match="is empty")
    one_line(read_bios_file, str(tmp_path / "nope"), BANK, match="cannot read the -bios file")
    one_line(read_bios_file, str(tmp_path), BANK, match="is a directory")


# -- fw_cfg for a kernel handed to firmware ------------------------------------------------------

def test_no_kernel_no_items():
    assert fw_cfg_boot_items(None, b"initrd", "console=ttyAMA0") == {}


def test_kernel_initrd_and_command_line_items():
    items = fw_cfg_boot_items(b"KERNEL", b"INITRD", "console=ttyAMA0")
    assert items == {
        FW_CFG_KERNEL_SIZE: struct.pack("<I", 6), FW_CFG_KERNEL_DATA: b"KERNEL",
        FW_CFG_INITRD_SIZE: struct.pack("<I", 6), FW_CFG_INITRD_DATA: b"INITRD",
        FW_CFG_CMDLINE_SIZE: struct.pack("<I", 16), FW_CFG_CMDLINE_DATA: b"console=ttyAMA0\0",
    }
    # No --append: the command line item is still there, one NUL (QEMU's "" default).
    items = fw_cfg_boot_items(b"K", None, "")
    assert items[FW_CFG_CMDLINE_SIZE] == struct.pack("<I", 1)
    assert items[FW_CFG_CMDLINE_DATA] == b"\0" and FW_CFG_INITRD_SIZE not in items


def test_gzip_kernel_goes_decompressed_like_qemu():
    image = b"ARM\x64" * 1000
    items = fw_cfg_boot_items(gzip.compress(image), None, "")
    assert items[FW_CFG_KERNEL_DATA] == image
    assert items[FW_CFG_KERNEL_SIZE] == struct.pack("<I", len(image))
    broken = b"\x1f\x8b not really gzip"
    assert fw_cfg_boot_items(broken, None, "")[FW_CFG_KERNEL_DATA] == broken


# -- files behind the flash banks -------------------------------------------------------------

def bank_file(tmp_path, name="vars.fd", size=BANK, fill=b"\xa5"):
    path = tmp_path / name
    path.write_bytes(fill * size)
    return path


def erase_first_sector(contents) -> CfiFlash:
    flash = CfiFlash("flash1", size=BANK, contents=contents)
    flash.write(0, 2, 0x20)
    flash.write(0, 2, 0xD0)
    flash.flush()
    return flash


def test_writable_file_gets_the_guests_writes(tmp_path):
    path = bank_file(tmp_path)
    erase_first_sector(map_flash_file(PflashSpec(str(path), 1), BANK, snapshot=False))
    data = path.read_bytes()
    assert data[:SECTOR] == b"\xff" * SECTOR and data[SECTOR:] == b"\xa5" * (BANK - SECTOR)


@pytest.mark.parametrize("read_only, snapshot", [(True, False), (False, True)])
def test_readonly_or_snapshot_file_never_changes(tmp_path, read_only, snapshot):
    path = bank_file(tmp_path)
    contents = map_flash_file(PflashSpec(str(path), 1, read_only), BANK, snapshot=snapshot)
    assert contents[:2] == b"\xa5\xa5"
    contents[0:2] = b"zz"                        # what the board's loader may do
    assert path.read_bytes() == b"\xa5" * BANK


def test_readonly_file_may_be_unwritable(tmp_path):
    path = bank_file(tmp_path, "code.fd")
    os.chmod(path, 0o444)
    assert map_flash_file(PflashSpec(str(path), 0, True), BANK, snapshot=False)[:1] == b"\xa5"


def test_flash_file_must_be_the_banks_size(tmp_path):
    small = bank_file(tmp_path, "QEMU_EFI.fd", size=BANK // 2)
    message = one_line(map_flash_file, PflashSpec(str(small), 0), BANK, snapshot=False,
                       match="pflash unit 0 file .* is 512 KiB .524288 bytes.; a flash bank "
                             "is 1 MiB exactly")
    assert "truncate -s 1M" in message
    one_line(map_flash_file, PflashSpec(str(tmp_path / "missing.fd"), 1), BANK, snapshot=False,
             match="cannot read the pflash unit 1 file")
    one_line(map_flash_file, PflashSpec(str(tmp_path), 1), BANK, snapshot=False,
             match="is a directory")


# -- a bank left as MMIO -----------------------------------------------------------------------

def test_bank_asks_to_be_memory_again_after_many_array_reads():
    calls = []
    bank = FlashBank(0x0400_0000, CfiFlash("flash1", size=BANK), on_many_array_reads=calls.append)
    bank.mapped_as_memory = False                # as after a store
    bank.window.write(0, 2, 0x70, 0)             # read status: not the array
    for _ in range(ARRAY_READS_BEFORE_REMAP * 2):
        bank.window.read(0, 4, 0)
    assert bank.array_reads == 0 and not bank.wants_memory and calls == []
    bank.window.write(0, 2, 0xFF, 1)             # back to read-array
    for _ in range(ARRAY_READS_BEFORE_REMAP - 1):
        bank.window.read(8, 4, 1)
    assert not bank.wants_memory and calls == []
    bank.window.read(8, 4, 1)
    assert bank.wants_memory and calls == [1]    # once, from the CPU that read
    bank.window.read(8, 4, 1)
    assert calls == [1]
    bank.window.write(0, 2, 0xFF, 1)             # any write starts the count again
    assert not bank.wants_memory
