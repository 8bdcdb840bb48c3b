import shutil
import struct
import subprocess

import pytest

from armvisor.errors import ArmvisorError
from armvisor.machine.loader import (choose_dtb_address, initrd_address, load_initrd,
                                     load_kernel)

MiB = 1 << 20
RAM_BASE = 0x4000_0000
RAM_SIZE = 512 * MiB


class Ram:
    """A sparse RAM that records writes and refuses any outside [base, base+size)."""

    def __init__(self, base=RAM_BASE, size=RAM_SIZE):
        self.base, self.size = base, size
        self.writes: list[tuple[int, bytes]] = []

    def write(self, address: int, data: bytes) -> None:
        assert self.base <= address and address + len(data) <= self.base + self.size
        self.writes.append((address, bytes(data)))

    def read(self, address: int, size: int) -> bytes:
        out = bytearray(size)
        for start, data in self.writes:
            for i, b in enumerate(data):
                if address <= start + i < address + size:
                    out[start + i - address] = b
        return bytes(out)


def make_elf(segments, entry, machine=183, elf_class=2, data_enc=1) -> bytes:
    """A minimal ELF: segments are (paddr, vaddr, payload, memsz, flags)."""
    ehsize, phentsize = 64, 56
    phoff = ehsize
    offset = phoff + phentsize * len(segments)
    phdrs, blobs = b"", b""
    for paddr, vaddr, payload, memsz, flags in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, flags, offset + len(blobs), vaddr, paddr,
                             len(payload), memsz, 0x1000)
        blobs += payload
    ident = b"\x7fELF" + bytes([elf_class, data_enc, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, entry, phoff, 0, 0,
                                 ehsize, phentsize, len(segments), 64, 0, 0)
    return header + phdrs + blobs


def make_image(text_offset: int, image_size: int, body: bytes = b"\x11" * 200) -> bytes:
    header = struct.pack("<IIQQQQQQ", 0x14000010, 0, text_offset, image_size, 0xA, 0, 0, 0)
    header += b"ARM\x64" + struct.pack("<I", 0)
    return header + body


# ------------------------------------------------------------------------- ELF
def test_elf_segments_loaded_at_paddr_with_bss_zeroed():
    text = b"\x1f\x20\x03\xd5" * 4                      # nops
    data = b"DATA"
    elf = make_elf([(0x4010_0000, 0x4010_0000, text, len(text), 5),
                    (0x4020_0000, 0x4020_0000, data, 0x100, 6)], entry=0x4010_0004)
    ram = Ram()
    img = load_kernel(elf, RAM_BASE, RAM_SIZE, ram.write)
    assert img.kind == "elf" and not img.is_linux
    assert img.entry == 0x4010_0004
    assert img.segments == [(0x4010_0000, 16), (0x4020_0000, 0x100)]
    assert ram.read(0x4010_0000, 16) == text
    assert dict(ram.writes)[0x4020_0000] == data + bytes(0x100 - 4)
    assert img.dtb_address_hint == RAM_BASE
    assert img.end == 0x4020_0100


def test_elf_uses_paddr_and_translates_entry():
    code = b"\x00" * 32
    elf = make_elf([(0x4008_0000, 0xFFFF_0000_0008_0000, code, 32, 5)],
                   entry=0xFFFF_0000_0008_0010)
    ram = Ram()
    img = load_kernel(elf, RAM_BASE, RAM_SIZE, ram.write)
    assert img.entry == 0x4008_0010
    assert ram.writes[0][0] == 0x4008_0000


def test_elf_segment_outside_ram():
    elf = make_elf([(0x1000, 0x1000, b"x" * 8, 8, 5)], entry=0x1000)
    with pytest.raises(ArmvisorError, match=r"segment 0.*0x1000.*outside RAM 0x40000000"):
        load_kernel(elf, RAM_BASE, RAM_SIZE, Ram().write)
    # memsz running past the end of RAM counts too.
    elf = make_elf([(RAM_BASE + RAM_SIZE - 4, 0, b"x" * 4, 8, 6)], entry=0)
    with pytest.raises(ArmvisorError, match="outside RAM"):
        load_kernel(elf, RAM_BASE, RAM_SIZE, Ram().write)


def test_elf_wrong_machine_and_class():
    with pytest.raises(ArmvisorError, match="not AArch64"):
        load_kernel(make_elf([(RAM_BASE, RAM_BASE, b"x", 1, 5)], RAM_BASE, machine=62),
                    RAM_BASE, RAM_SIZE, Ram().write)
    with pytest.raises(ArmvisorError, match="32-bit"):
        load_kernel(make_elf([(RAM_BASE, RAM_BASE, b"x", 1, 5)], RAM_BASE, elf_class=1),
                    RAM_BASE, RAM_SIZE, Ram().write)
    with pytest.raises(ArmvisorError, match="big-endian"):
        load_kernel(make_elf([(RAM_BASE, RAM_BASE, b"x", 1, 5)], RAM_BASE, data_enc=2),
                    RAM_BASE, RAM_SIZE, Ram().write)


@pytest.mark.parametrize("cut", [4, 10, 40, 64, 100, 130])
def test_truncated_elf(cut):
    elf = make_elf([(0x4010_0000, 0x4010_0000, b"z" * 64, 64, 5)], entry=0x4010_0000)
    ram = Ram()
    with pytest.raises(ArmvisorError):
        load_kernel(elf[:cut], RAM_BASE, RAM_SIZE, ram.write)
    assert ram.writes == []


def test_elf_with_absurd_program_header_offset():
    elf = bytearray(make_elf([(0x4010_0000, 0x4010_0000, b"z" * 8, 8, 5)], entry=0x4010_0000))
    elf[32:40] = (0xFFFF_FFFF_FFFF_FF00).to_bytes(8, "little")     # e_phoff
    with pytest.raises(ArmvisorError, match="corrupt or truncated"):
        load_kernel(bytes(elf), RAM_BASE, RAM_SIZE, Ram().write)


def test_three_bytes_of_elf_magic_is_a_raw_file():
    assert load_kernel(b"\x7fEL", RAM_BASE, RAM_SIZE, Ram().write).kind == "raw"


def test_elf_without_load_segments():
    with pytest.raises(ArmvisorError, match="PT_LOAD"):
        load_kernel(make_elf([], entry=0), RAM_BASE, RAM_SIZE, Ram().write)


def test_elf_filesz_above_memsz_is_corrupt():
    elf = make_elf([(0x4010_0000, 0x4010_0000, b"z" * 64, 8, 5)], entry=0x4010_0000)
    with pytest.raises(ArmvisorError, match="corrupt"):
        load_kernel(elf, RAM_BASE, RAM_SIZE, Ram().write)


TOOLS = ("aarch64-linux-gnu-as", "aarch64-linux-gnu-ld")


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="cross binutils missing")
def test_elf_built_by_binutils(tmp_path):
    (tmp_path / "t.S").write_text(
        ".section .text\n.global _start\n_start: mov x0, #42\n b .\n"
        ".section .data\nvalue: .quad 0x1122334455667788\n"
        ".section .bss\n.space 0x1000\n")
    (tmp_path / "t.ld").write_text(
        "ENTRY(_start)\nSECTIONS {\n . = 0x40080000;\n .text : { *(.text) }\n"
        " . = 0x40200000;\n .data : { *(.data) }\n .bss : { *(.bss) }\n}\n")
    subprocess.run(["aarch64-linux-gnu-as", "-o", str(tmp_path / "t.o"), str(tmp_path / "t.S")],
                   check=True, timeout=60)
    subprocess.run(["aarch64-linux-gnu-ld", "-T", str(tmp_path / "t.ld"), "-o",
                    str(tmp_path / "t.elf"), str(tmp_path / "t.o")], check=True, timeout=60)
    ram = Ram()
    img = load_kernel((tmp_path / "t.elf").read_bytes(), RAM_BASE, RAM_SIZE, ram.write)
    assert img.kind == "elf" and img.entry == 0x4008_0000
    assert ram.read(0x4008_0000, 4) == bytes.fromhex("400580d2")      # mov x0, #42
    assert ram.read(0x4020_0000, 8) == (0x1122334455667788).to_bytes(8, "little")
    assert any(addr <= 0x4020_0000 < addr + size and size >= 0x1008
               for addr, size in img.segments)


# ----------------------------------------------------------------- Linux Image
def test_image_text_offset_zero_goes_two_mib_up():
    data = make_image(text_offset=0, image_size=0x2010000)
    ram = Ram()
    img = load_kernel(data, RAM_BASE, RAM_SIZE, ram.write)
    assert img.kind == "linux" and img.is_linux
    assert img.entry == 0x4020_0000
    assert img.segments == [(0x4020_0000, 0x2010000)]
    assert ram.writes == [(0x4020_0000, data)]


def test_image_with_classic_text_offset():
    img = load_kernel(make_image(0x80000, 0x100000), RAM_BASE, RAM_SIZE, Ram().write)
    assert img.entry == 0x4008_0000
    # Below 4 KiB the offset is bumped; at 4 KiB it is kept.
    assert load_kernel(make_image(0xFFF, 0x1000), RAM_BASE, RAM_SIZE,
                       Ram().write).entry == RAM_BASE + 0xFFF + 2 * MiB
    assert load_kernel(make_image(0x1000, 0x1000), RAM_BASE, RAM_SIZE,
                       Ram().write).entry == RAM_BASE + 0x1000


def test_image_size_zero_uses_default_and_file_size():
    data = make_image(text_offset=0x1234000, image_size=0)
    img = load_kernel(data, RAM_BASE, RAM_SIZE, Ram().write)
    assert img.entry == RAM_BASE + 0x80000
    assert img.segments == [(RAM_BASE + 0x80000, len(data))]


def test_image_too_big_for_ram():
    with pytest.raises(ArmvisorError, match="more than RAM"):
        load_kernel(make_image(0, 64 * MiB), RAM_BASE, 32 * MiB, Ram(size=32 * MiB).write)
    # Fits in RAM but not at its offset.
    with pytest.raises(ArmvisorError, match="outside RAM"):
        load_kernel(make_image(0, 31 * MiB), RAM_BASE, 32 * MiB, Ram(size=32 * MiB).write)


# ------------------------------------------------------------------------- raw
def test_raw_binary():
    data = b"\xaa" * 100
    ram = Ram()
    img = load_kernel(data, RAM_BASE, RAM_SIZE, ram.write)
    assert img.kind == "raw" and img.is_linux
    assert img.entry == RAM_BASE + 0x80000
    assert ram.writes == [(RAM_BASE + 0x80000, data)]


def test_short_file_with_image_magic_offset_is_raw():
    data = b"\x00" * 56 + b"ARM"
    assert load_kernel(data, RAM_BASE, RAM_SIZE, Ram().write).kind == "raw"


def test_raw_too_big_and_empty():
    with pytest.raises(ArmvisorError, match="larger than RAM"):
        load_kernel(b"\x01" * (2 * MiB), RAM_BASE, MiB, Ram(size=MiB).write)
    with pytest.raises(ArmvisorError, match="outside RAM"):
        load_kernel(b"\x01" * (MiB - 0x1000), RAM_BASE, MiB, Ram(size=MiB).write)
    with pytest.raises(ArmvisorError, match="empty"):
        load_kernel(b"", RAM_BASE, RAM_SIZE, Ram().write)


# ---------------------------------------------------------------------- initrd
def test_initrd_at_128_mib_for_big_ram():
    ram = Ram()
    start, end = load_initrd(b"i" * 5000, RAM_BASE, RAM_SIZE, 0x4220_0000, ram.write)
    assert (start, end) == (0x4800_0000, 0x4800_0000 + 5000)
    assert ram.writes == [(0x4800_0000, b"i" * 5000)]


def test_initrd_at_half_of_small_ram():
    start, _ = load_initrd(b"i", RAM_BASE, 64 * MiB, RAM_BASE + MiB, Ram(size=64 * MiB).write)
    assert start == RAM_BASE + 32 * MiB


def test_initrd_pushed_past_a_big_kernel():
    kernel_end = RAM_BASE + 200 * MiB + 5
    start, _ = load_initrd(b"i", RAM_BASE, RAM_SIZE, kernel_end, Ram().write)
    assert start == RAM_BASE + 200 * MiB + 0x1000
    assert initrd_address(RAM_BASE, RAM_SIZE, kernel_end) == start


def test_initrd_does_not_fit():
    with pytest.raises(ArmvisorError, match="does not fit"):
        load_initrd(b"i" * (400 * MiB), RAM_BASE, RAM_SIZE, RAM_BASE + MiB, Ram().write)
    with pytest.raises(ArmvisorError, match="no room"):
        load_initrd(b"i", RAM_BASE, RAM_SIZE, RAM_BASE + RAM_SIZE, Ram().write)


# ------------------------------------------------------------------------- DTB
def test_dtb_after_initrd_two_mib_aligned():
    occupied = [(0x4020_0000, 0x2010000), (0x4800_0000, 5000)]
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x10000, occupied, "linux") == 0x4820_0000


def test_dtb_without_initrd_goes_where_initrd_would():
    occupied = [(0x4020_0000, 0x2010000)]
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x10000, occupied, "linux") == 0x4800_0000
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x10000, [(RAM_BASE + 0x80000, 100)],
                              "raw") == 0x4800_0000


def test_dtb_for_elf_at_ram_base_when_free():
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x10000, [(0x4008_0000, 0x1000)],
                              "elf") == RAM_BASE
    # Too big to fit below the image: after it, aligned.
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x90000, [(0x4008_0000, 0x1000)],
                              "elf") == 0x4020_0000
    # The image covers the start of RAM.
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x1000, [(RAM_BASE, 0x30_0000)],
                              "elf") == 0x4040_0000


def test_dtb_no_room():
    with pytest.raises(ArmvisorError, match="no room"):
        choose_dtb_address(RAM_BASE, 4 * MiB, 0x1000, [(RAM_BASE, 4 * MiB)], "elf")
    with pytest.raises(ArmvisorError, match="no room"):
        choose_dtb_address(RAM_BASE, 64 * MiB, 0x1000, [(RAM_BASE + 32 * MiB, 31 * MiB)], "linux")


# ----------------------------------------------------------------------- flash
class Flash:
    def __init__(self, size=64 * MiB):
        self.size = size
        self.writes: list[tuple[int, bytes]] = []

    def write(self, offset: int, data: bytes) -> None:
        assert 0 <= offset and offset + len(data) <= self.size
        self.writes.append((offset, bytes(data)))


def test_elf_segments_in_flash0_go_to_the_flash():
    # Like U-Boot's uboot.elf: linked at 0, text + data, BSS beyond the file.
    code = b"\x1f\x20\x03\xd5" * 4
    elf = make_elf([(0x0, 0x0, code, 0x20, 5), (0x1000, 0x1000, b"DATA", 8, 6)], entry=0x0)
    ram, flash = Ram(), Flash()
    img = load_kernel(elf, RAM_BASE, RAM_SIZE, ram.write, flash_write=flash.write)
    assert img.entry == 0
    assert img.flash_segments == [(0, 0x20), (0x1000, 8)]
    assert img.segments == [] and ram.writes == []
    assert flash.writes == [(0, code + bytes(16)), (0x1000, b"DATA" + bytes(4))]
    # The DTB goes at the RAM base, as QEMU does; the initrd where it always goes.
    assert img.dtb_address_hint == RAM_BASE and img.end == RAM_BASE
    assert choose_dtb_address(RAM_BASE, RAM_SIZE, 0x10000, img.segments, img.kind) == RAM_BASE
    assert initrd_address(RAM_BASE, RAM_SIZE, img.end) == RAM_BASE + 128 * MiB


def test_elf_split_between_flash_and_ram():
    elf = make_elf([(0x0, 0x0, b"x" * 8, 8, 5), (0x4010_0000, 0x4010_0000, b"y" * 8, 8, 6)],
                   entry=0)
    ram, flash = Ram(), Flash()
    img = load_kernel(elf, RAM_BASE, RAM_SIZE, ram.write, flash_write=flash.write)
    assert img.flash_segments == [(0, 8)] and img.segments == [(0x4010_0000, 8)]
    assert ram.writes == [(0x4010_0000, b"y" * 8)] and flash.writes == [(0, b"x" * 8)]
    assert img.dtb_address_hint == RAM_BASE


def test_flash_segments_rejected_without_a_flash_or_past_flash0():
    elf = make_elf([(0x0, 0x0, b"x" * 8, 8, 5)], entry=0)
    with pytest.raises(ArmvisorError, match="outside RAM"):
        load_kernel(elf, RAM_BASE, RAM_SIZE, Ram().write)
    # Straddling the end of flash0 (into flash1) is neither flash0 nor RAM.
    elf = make_elf([(64 * MiB - 4, 0, b"x" * 8, 8, 5)], entry=0)
    flash = Flash()
    with pytest.raises(ArmvisorError, match="outside RAM"):
        load_kernel(elf, RAM_BASE, RAM_SIZE, Ram().write, flash_write=flash.write)
    assert flash.writes == []
