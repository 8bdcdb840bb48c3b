"""A firmware boot, as QEMU's virt machine does one without secure=on.

QEMU boots firmware instead of a kernel when flash0 holds one: `-bios FILE`
copied into flash0 (hw/arm/virt.c virt_firmware_init, load_image_mr) or a
`-drive if=pflash,unit=0` file behind it. hw/arm/boot.c then
(arm_setup_firmware_boot, checked against QEMU 7.2):

- writes the DTB at the start of RAM ("copy the DTB to the base of RAM for
  the bootloader to pick up"; EDK2's ArmVirtQemu looks for it there, its
  PcdDeviceTreeInitialBaseAddress);
- leaves the boot CPU at its reset state: PC at the flash base, the highest
  EL the CPU has (EL1 here, without virtualization=on), MMU off, and x0 = 0,
  not the DTB address (a flat binary printing x0 under `-bios` prints 0);
- hands a --kernel, --initrd and --append to the firmware through fw_cfg
  instead of loading them (the firmware reads them from there).

The -bios image goes back into flash0 at every reset, as QEMU's ROM blobs do
(rom_reset); a pflash file is the bank itself and is never reloaded.
"""

from __future__ import annotations

import struct
import zlib
from typing import Dict, Optional

from armvisor.errors import ArmvisorError
from armvisor.machine.config import format_size
from armvisor.machine.memory import read_input_file

# QEMU leaves x0 at its reset value for a firmware boot (env->boot_info is NULL).
FIRMWARE_BOOT_X0 = 0

# fw_cfg keys for a kernel handed to the firmware (QEMU docs/specs/fw_cfg.rst,
# include/standard-headers/linux/qemu_fw_cfg.h). Sizes are 32-bit little-endian.
FW_CFG_KERNEL_SIZE = 0x08
FW_CFG_INITRD_SIZE = 0x0B
FW_CFG_KERNEL_DATA = 0x11
FW_CFG_INITRD_DATA = 0x12
FW_CFG_CMDLINE_SIZE = 0x14
FW_CFG_CMDLINE_DATA = 0x15

# hw/arm/boot.c: an AArch64 kernel that is a gzip file goes to fw_cfg
# decompressed, up to LOAD_IMAGE_MAX_GUNZIP_BYTES (include/hw/loader.h).
LOAD_IMAGE_MAX_GUNZIP_BYTES = 256 << 20
GZIP_MAGIC = b"\x1f\x8b"


def read_bios_file(path: str, bank_size: int) -> bytes:
    """The -bios image: any regular file that fits in flash0 (the rest of the bank reads 0)."""
    data = read_input_file(path, "-bios", bank_size, "flash0")
    if not data:
        raise ArmvisorError(f"the -bios file {path!r} is empty")
    return data


def fw_cfg_boot_items(kernel: Optional[bytes], initrd: Optional[bytes],
                      cmdline: str) -> Dict[int, bytes]:
    """The fw_cfg items QEMU adds for a kernel given with firmware (load_image_to_fw_cfg).

    Nothing without a kernel. The command line item is always there with a
    kernel, even empty (virt's kernel_cmdline is "" rather than NULL).
    """
    if kernel is None:
        return {}
    kernel = _maybe_gunzip(kernel)
    items = {FW_CFG_KERNEL_SIZE: struct.pack("<I", len(kernel)), FW_CFG_KERNEL_DATA: kernel}
    if initrd is not None:
        items[FW_CFG_INITRD_SIZE] = struct.pack("<I", len(initrd))
        items[FW_CFG_INITRD_DATA] = initrd
    text = cmdline.encode() + b"\0"
    items[FW_CFG_CMDLINE_SIZE] = struct.pack("<I", len(text))
    items[FW_CFG_CMDLINE_DATA] = text
    return items


def _maybe_gunzip(data: bytes) -> bytes:
    """A gzip file decompressed, as QEMU's load_image_gzipped_buffer; anything else as is."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
            data, LOAD_IMAGE_MAX_GUNZIP_BYTES + 1)
    except zlib.error:
        return data                      # QEMU too falls back to the file's bytes
    if len(out) > LOAD_IMAGE_MAX_GUNZIP_BYTES:
        raise ArmvisorError(f"the gzip kernel decompresses to more than "
                            f"{format_size(LOAD_IMAGE_MAX_GUNZIP_BYTES)}")
    return out

