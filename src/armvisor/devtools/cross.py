"""Assemble and link small AArch64 programs with Debian's cross binutils."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

AS = "aarch64-linux-gnu-as"
LD = "aarch64-linux-gnu-ld"
OBJCOPY = "aarch64-linux-gnu-objcopy"
LOAD_ADDRESS = 0x4008_0000
FLASH0_ADDRESS = 0x0                 # where -bios firmware runs from

# x20 = UART data register; `putc wN`; `system_off` (PSCI over SMC).
PRELUDE = """
    .macro putc reg
    str \\reg, [x20]
    .endm
    .macro system_off
    ldr x0, =0x84000008
    smc #0
    .endm
    .global _start
    .text
_start:
    ldr x20, =0x09000000
"""


# `bl print_hex`: x0 as 16 hex digits and a newline on the UART; clobbers x9-x12.
PRINT_HEX = """
print_hex:
    mov x9, #60
1:  lsr x10, x0, x9
    and x10, x10, #0xf
    cmp x10, #10
    add x11, x10, #'0'
    add x12, x10, #('a' - 10)
    csel x10, x11, x12, lt
    putc w10
    subs x9, x9, #4
    b.ge 1b
    mov w10, #'\\n'
    putc w10
    ret
"""


class CrossToolsMissing(RuntimeError):
    pass


def have_cross_tools() -> bool:
    return shutil.which(AS) is not None and shutil.which(LD) is not None


def build_program(workdir: Path, body: str, name: str = "guest", march: str = "armv8.2-a",
                  load_address: int = LOAD_ADDRESS) -> Path:
    """`body` follows PRELUDE (after _start); returns the linked ELF at `load_address`."""
    if not have_cross_tools():
        raise CrossToolsMissing("needs Debian's binutils-aarch64-linux-gnu")
    workdir.mkdir(parents=True, exist_ok=True)
    source, obj, elf = (workdir / f"{name}{ext}" for ext in (".S", ".o", ".elf"))
    source.write_text(PRELUDE + body + "\n    .ltorg\n")
    subprocess.run([AS, f"-march={march}", "-o", str(obj), str(source)], check=True)
    subprocess.run([LD, f"-Ttext={load_address:#x}", "-o", str(elf), str(obj)], check=True)
    return elf


def flat_binary(elf: Path) -> Path:
    """The ELF's loaded bytes as a flat file (what -bios takes), next to it as .bin."""
    binary = elf.with_suffix(".bin")
    subprocess.run([OBJCOPY, "-O", "binary", str(elf), str(binary)], check=True)
    return binary
