"""Assemble and link small AArch64 programs with Debian's cross binutils."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

AS = "aarch64-linux-gnu-as"
LD = "aarch64-linux-gnu-ld"
LOAD_ADDRESS = 0x4008_0000

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


class CrossToolsMissing(RuntimeError):
    pass


def have_cross_tools() -> bool:
    return shutil.which(AS) is not None and shutil.which(LD) is not None


def build_program(workdir: Path, body: str, name: str = "guest", march: str = "armv8.2-a") -> Path:
    """`body` follows PRELUDE (after _start); returns the linked ELF at LOAD_ADDRESS."""
    if not have_cross_tools():
        raise CrossToolsMissing("needs Debian's binutils-aarch64-linux-gnu")
    workdir.mkdir(parents=True, exist_ok=True)
    source, obj, elf = (workdir / f"{name}{ext}" for ext in (".S", ".o", ".elf"))
    source.write_text(PRELUDE + body + "\n    .ltorg\n")
    subprocess.run([AS, f"-march={march}", "-o", str(obj), str(source)], check=True)
    subprocess.run([LD, f"-Ttext={LOAD_ADDRESS:#x}", "-o", str(elf), str(obj)], check=True)
    return elf
