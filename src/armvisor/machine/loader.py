"""Place guest images in RAM the way QEMU's `-kernel`/`-initrd` do (hw/arm/boot.c).

Three kinds of kernel file, told apart as QEMU tells them apart:
- "elf": an ELF64 AArch64 file; every PT_LOAD segment goes to its physical
  address (p_paddr) and the entry point is e_entry. QEMU does not treat these
  as Linux: the CPU jumps straight to the entry. A segment linked into flash0
  (U-Boot's uboot.elf is linked at 0) goes into the flash contents, as QEMU's
  ROM loader puts it there, and the entry may then lie in flash.
- "linux": an arm64 Image (magic "ARM\\x64" at byte 56, Linux
  Documentation/arch/arm64/booting.rst), placed at RAM + text_offset.
- "raw": any other file, copied to RAM + 0x80000. QEMU boots these with the
  Linux protocol too (x0 = DTB address), and so do we.

The caller supplies `write(address, data)` (and `flash_write(offset, data)`
for flash0); the loader never touches RAM or flash itself.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from armvisor.errors import ArmvisorError
from armvisor.machine import memmap
from armvisor.machine.dtb import check_dtb
from armvisor.machine.memory import (host_memory_available, open_input_file, read_input_file,
                                     read_opened_file)

Writer = Callable[[int, bytes], None]

MiB = 1024 * 1024

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2                     # ELF e_ident[EI_CLASS]
ELFDATA2LSB = 1                    # ELF e_ident[EI_DATA]
EM_AARCH64 = 183                   # ELF e_machine for AArch64 (ELF for the Arm 64-bit Architecture)

# arm64 Image header (Linux Documentation/arch/arm64/booting.rst section 4).
IMAGE_MAGIC = b"ARM\x64"
IMAGE_MAGIC_OFFSET = 56
IMAGE_TEXT_OFFSET_OFFSET = 8
IMAGE_SIZE_OFFSET = 16
IMAGE_FLAGS_OFFSET = 24
IMAGE_HEADER_SIZE = 64

# QEMU hw/arm/boot.c: KERNEL64_LOAD_ADDR is where a file without a usable
# header goes; an Image asking for an offset inside the first
# BOOTLOADER_MAX_SIZE bytes (where QEMU writes its boot stub) is moved up 2 MiB.
KERNEL64_LOAD_OFFSET = 0x0008_0000
BOOTLOADER_MAX_SIZE = 4096
IMAGE_LOW_OFFSET_BUMP = 2 * MiB

# QEMU puts the initrd at RAM + min(RAM/2, 128 MiB), page aligned, never below the kernel's end.
INITRD_MAX_OFFSET = 128 * MiB
PAGE_SIZE = 4096
# AArch64 Linux maps the DTB as the 2 MiB block that holds it, so QEMU aligns it to 2 MiB.
DTB_ALIGN = 2 * MiB


@dataclass
class LoadedImage:
    entry: int
    # RAM the image owns, (address, size): for ELF the PT_LOAD memsz, for
    # an Image the header's image_size (which counts the BSS) or the file size.
    segments: list[tuple[int, int]] = field(default_factory=list)
    kind: str = "raw"                              # "elf" | "linux" | "raw"
    # Where QEMU would put the DTB before knowing its size: RAM base for an
    # ELF that leaves the start of RAM free; None when choose_dtb_address decides.
    dtb_address_hint: Optional[int] = None
    # ELF segments written into flash0, (guest physical address, size).
    flash_segments: list[tuple[int, int]] = field(default_factory=list)
    ram_base: Optional[int] = None                 # what low/end fall back to with no RAM segment

    @property
    def is_linux(self) -> bool:
        """QEMU boots Image and raw files with the Linux protocol (x0 = DTB)."""
        return self.kind in ("linux", "raw")

    @property
    def low(self) -> int:
        """Lowest RAM address of the image (RAM base when it lives in flash only)."""
        return min((addr for addr, _ in self.segments), default=self.ram_base)

    @property
    def end(self) -> int:
        """First byte after the image in RAM (RAM base when it lives in flash only)."""
        return max((addr + size for addr, size in self.segments), default=self.ram_base)


def read_kernel_file(path: str, ram_size: int) -> bytes:
    """The --kernel file, refused before reading when it cannot fit.

    An Image or raw file is copied whole into RAM, so it may not be larger
    than RAM. An ELF file also carries what is never loaded (symbols, DWARF:
    a vmlinux with debug info is many times its loaded size), so only the
    host's free memory bounds it; its PT_LOAD segments are checked against
    RAM once parsed.
    """
    with open_input_file(path, "kernel") as handle:
        is_elf = handle.read(len(ELF_MAGIC)) == ELF_MAGIC
        handle.seek(0)
        if not is_elf:
            return read_opened_file(handle, path, "kernel", ram_size)
        return read_opened_file(handle, path, "kernel", host_memory_available(),
                                "the host's MemAvailable")


def read_initrd_file(path: str, ram_size: int) -> bytes:
    """The --initrd file: copied whole into RAM, so no larger than RAM."""
    return read_input_file(path, "initrd", ram_size)


def read_dtb_file(path: str, ram_size: int) -> bytes:
    """The --dtb file: no larger than RAM, and a device tree blob (magic, header, structure)."""
    data = read_input_file(path, "DTB", ram_size)
    check_dtb(data, path)
    return data


def load_kernel(data: bytes, ram_base: int, ram_size: int, write: Writer,
                flash_write: Optional[Writer] = None, flash_base: int = memmap.FLASH_BASE,
                flash_size: int = memmap.FLASH_BANK_SIZE) -> LoadedImage:
    """Copy a kernel file into RAM through `write` and say where it starts.

    With `flash_write(offset, data)`, ELF segments lying wholly in
    [flash_base, flash_base + flash_size) go to flash0 at that offset instead.
    """
    if not data:
        raise ArmvisorError("kernel image is empty")
    if data[:4] == ELF_MAGIC:
        flash = (flash_base, flash_size, flash_write) if flash_write is not None else None
        return _load_elf(data, ram_base, ram_size, write, flash)
    if len(data) >= IMAGE_HEADER_SIZE and \
            data[IMAGE_MAGIC_OFFSET:IMAGE_MAGIC_OFFSET + 4] == IMAGE_MAGIC:
        return _load_image(data, ram_base, ram_size, write)
    return _load_raw(data, ram_base, ram_size, write)


def initrd_address(ram_base: int, ram_size: int, kernel_end: int) -> int:
    """QEMU's initrd start: RAM + min(RAM/2, 128 MiB), pushed past the kernel, page aligned."""
    start = max(ram_base + min(ram_size // 2, INITRD_MAX_OFFSET), kernel_end)
    return _align_up(start, PAGE_SIZE)


def load_initrd(data: bytes, ram_base: int, ram_size: int, kernel_end: int,
                write: Writer) -> tuple[int, int]:
    """Copy an initrd to QEMU's place for it; returns (start, end), end exclusive."""
    ram_end = ram_base + ram_size
    start = initrd_address(ram_base, ram_size, kernel_end)
    if start >= ram_end:
        raise ArmvisorError(f"no room for the initrd: the kernel ends at {kernel_end:#x}, "
                            f"RAM ends at {ram_end:#x}")
    end = start + len(data)
    if end > ram_end:
        raise ArmvisorError(f"initrd of {len(data)} bytes does not fit in RAM after the kernel "
                            f"({start:#x}..{end:#x}, RAM ends at {ram_end:#x})")
    if data:
        write(start, bytes(data))
    return start, end


def choose_dtb_address(ram_base: int, ram_size: int, dtb_size: int,
                       occupied: list[tuple[int, int]], kind: str) -> int:
    """Where the DTB goes, given what the kernel and initrd occupy ((address, size) pairs).

    Linux protocol ("linux", "raw"): QEMU's rule, after the initrd (or where
    the initrd would have gone, RAM + min(RAM/2, 128 MiB)) aligned up to 2 MiB.
    "elf": RAM base when the DTB fits below the lowest segment, as QEMU does.
    QEMU leaves an ELF that covers the start of RAM without a DTB in RAM (and
    fails when the DTB does not fit below the image); we put the DTB after
    everything instead, 2 MiB aligned, so the program still gets one.
    """
    if dtb_size <= 0:
        raise ArmvisorError(f"DTB size must be positive, not {dtb_size}")
    ram_end = ram_base + ram_size
    ends = [addr + size for addr, size in occupied if size > 0]
    top = max(ends, default=ram_base)
    if kind == "elf":
        in_ram = [addr for addr, size in occupied if size > 0 and addr + size > ram_base]
        low = min(in_ram, default=ram_end)
        if low >= ram_base + dtb_size:
            return ram_base
        address = _align_up(max(top, ram_base), DTB_ALIGN)
    elif kind in ("linux", "raw"):
        address = _align_up(max(initrd_address(ram_base, ram_size, top), top), DTB_ALIGN)
    else:
        raise ArmvisorError(f"unknown image kind {kind!r}")
    if address + dtb_size > ram_end:
        raise ArmvisorError(f"no room for the {dtb_size}-byte DTB after the kernel/initrd "
                            f"(would start at {address:#x}, RAM ends at {ram_end:#x})")
    return address


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


def _check_in_ram(what: str, address: int, size: int, ram_base: int, ram_size: int) -> None:
    ram_end = ram_base + ram_size
    if address < ram_base or address + size > ram_end:
        raise ArmvisorError(f"{what} at {address:#x}..{address + size:#x} lies outside RAM "
                            f"{ram_base:#x}..{ram_end:#x}")


def _load_elf(data: bytes, ram_base: int, ram_size: int, write: Writer,
              flash: Optional[tuple[int, int, Writer]]) -> LoadedImage:
    ident = data[:16]
    if len(ident) < 16:
        raise ArmvisorError("kernel ELF file is truncated (no complete ELF header)")
    if ident[4] != ELFCLASS64:
        raise ArmvisorError("kernel is a 32-bit ELF file; armvisor needs an ELF64 AArch64 image")
    if ident[5] != ELFDATA2LSB:
        raise ArmvisorError("kernel ELF file is big-endian; armvisor needs little-endian AArch64")
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf.header["e_machine"]
        if machine not in ("EM_AARCH64", EM_AARCH64):
            raise ArmvisorError(f"kernel ELF file is for {machine}, not AArch64 (EM_AARCH64)")
        entry = elf.header["e_entry"]
        loads = [seg.header for seg in elf.iter_segments() if seg.header["p_type"] == "PT_LOAD"]
        contents = []
        for index, ph in enumerate(loads):
            if ph["p_filesz"] > ph["p_memsz"]:
                raise ArmvisorError(f"kernel ELF segment {index} is corrupt: "
                                    f"file size {ph['p_filesz']:#x} > memory size {ph['p_memsz']:#x}")
            if ph["p_offset"] + ph["p_filesz"] > len(data):
                raise ArmvisorError(f"kernel ELF file is truncated: segment {index} needs bytes "
                                    f"up to {ph['p_offset'] + ph['p_filesz']:#x}, "
                                    f"the file has {len(data):#x}")
            contents.append(data[ph["p_offset"]:ph["p_offset"] + ph["p_filesz"]])
    except ArmvisorError:
        raise
    except (ELFError, struct.error, ValueError, EOFError, OverflowError, KeyError,
            IndexError) as exc:
        # pyelftools reports garbage offsets and counts in any of these ways.
        raise ArmvisorError(f"kernel ELF file is corrupt or truncated: {exc}") from None

    segments: list[tuple[int, int]] = []
    flash_segments: list[tuple[int, int]] = []
    pending: list[tuple[Writer, int, bytes, int]] = []
    for index, (ph, blob) in enumerate(zip(loads, contents)):
        memsz = ph["p_memsz"]
        if memsz == 0:
            continue
        address = ph["p_paddr"]
        if flash is not None and flash[0] <= address and address + memsz <= flash[0] + flash[1]:
            flash_segments.append((address, memsz))
            pending.append((flash[2], address - flash[0], blob, memsz))
        else:
            _check_in_ram(f"kernel ELF segment {index} (p_paddr)", address, memsz,
                          ram_base, ram_size)
            segments.append((address, memsz))
            pending.append((write, address, blob, memsz))
        # The header's entry is virtual; when the executable segment holding
        # it is linked at a different physical address, QEMU's ELF loader
        # translates the entry the same way (include/hw/elf_ops.h).
        vaddr = ph["p_vaddr"]
        if vaddr != address and (ph["p_flags"] & P_FLAGS.PF_X) and \
                vaddr <= elf.header["e_entry"] < vaddr + ph["p_filesz"]:
            entry = elf.header["e_entry"] - vaddr + address
    if not segments and not flash_segments:
        raise ArmvisorError("kernel ELF file has no loadable (PT_LOAD) segment")
    for writer, address, blob, memsz in pending:
        # Zero the BSS explicitly: RAM (or flash) may hold a previous image.
        writer(address, bytes(blob) + bytes(memsz - len(blob)))
    # QEMU (hw/arm/boot.c) puts the DTB at the RAM base when the image leaves
    # it free, which an image wholly in flash does.
    low = min((addr for addr, _ in segments), default=ram_base + ram_size)
    hint = ram_base if low > ram_base else None
    return LoadedImage(entry=entry, segments=segments, kind="elf", dtb_address_hint=hint,
                       flash_segments=flash_segments, ram_base=ram_base)


def _load_image(data: bytes, ram_base: int, ram_size: int, write: Writer) -> LoadedImage:
    text_offset, image_size, _flags = struct.unpack_from(
        "<QQQ", data, IMAGE_TEXT_OFFSET_OFFSET)
    offset = KERNEL64_LOAD_OFFSET
    # text_offset is meaningful only with a non-zero image_size (kernels since
    # 3.17); older kernels load at the default like a raw file.
    if image_size != 0:
        offset = text_offset
        if offset < BOOTLOADER_MAX_SIZE:
            offset += IMAGE_LOW_OFFSET_BUMP
    reserved = max(image_size, len(data))
    if reserved > ram_size:
        raise ArmvisorError(f"kernel Image needs {reserved:#x} bytes, more than RAM ({ram_size:#x})")
    entry = ram_base + offset
    _check_in_ram("kernel Image", entry, reserved, ram_base, ram_size)
    write(entry, bytes(data))
    return LoadedImage(entry=entry, segments=[(entry, reserved)], kind="linux")


def _load_raw(data: bytes, ram_base: int, ram_size: int, write: Writer) -> LoadedImage:
    if len(data) > ram_size:
        raise ArmvisorError(f"kernel file of {len(data):#x} bytes is larger than RAM ({ram_size:#x})")
    entry = ram_base + KERNEL64_LOAD_OFFSET
    _check_in_ram("kernel file", entry, len(data), ram_base, ram_size)
    write(entry, bytes(data))
    return LoadedImage(entry=entry, segments=[(entry, len(data))], kind="raw")


def place_images(ram, kernel: bytes, initrd: Optional[bytes],
                 dtb_for: Callable[[Optional[tuple[int, int]]], bytes],
                 flash_write: Optional[Writer] = None) -> tuple[LoadedImage, int]:
    """Kernel, initrd and DTB into `ram` (base, size, write) as QEMU's boot.c places them.

    `dtb_for(initrd_range)` makes the DTB once the initrd's place is known.
    Returns the loaded image and the DTB's address (what x0 gets).
    """
    image = load_kernel(kernel, ram.base, ram.size, ram.write, flash_write=flash_write)
    occupied = list(image.segments)
    initrd_range = None
    if initrd is not None:
        initrd_range = load_initrd(initrd, ram.base, ram.size, image.end, ram.write)
        occupied.append((initrd_range[0], initrd_range[1] - initrd_range[0]))
    dtb = dtb_for(initrd_range)
    address = choose_dtb_address(ram.base, ram.size, len(dtb), occupied, image.kind)
    ram.write(address, dtb)
    return image, address
