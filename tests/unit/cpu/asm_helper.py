"""Assemble A64 snippets with Debian's cross binutils, for decoder tests."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

AS = "aarch64-linux-gnu-as"
# Every extension whose memory instructions the decoder handles.
MARCH = "armv8.5-a+sve+lse+rcpc+memtag+pauth"


def have_assembler() -> bool:
    return shutil.which(AS) is not None


def require_assembler() -> None:
    if not have_assembler():
        pytest.skip(f"{AS} is not installed")


@functools.lru_cache(maxsize=None)
def assemble(lines: tuple[str, ...]) -> tuple[int, ...]:
    """Assemble one instruction per line; return one 32-bit word per line."""
    from elftools.elf.elffile import ELFFile

    require_assembler()
    src = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        s, o = Path(tmp) / "t.s", Path(tmp) / "t.o"
        s.write_text(src)
        proc = subprocess.run([AS, f"-march={MARCH}", "-o", str(o), str(s)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"assembler failed:\n{proc.stderr}")
        elf = ELFFile(io.BytesIO(o.read_bytes()))
        text = elf.get_section_by_name(".text").data()
    words = tuple(int.from_bytes(text[i:i + 4], "little") for i in range(0, len(text), 4))
    if len(words) != len(lines):
        raise AssertionError(f"{len(lines)} lines gave {len(words)} instructions")
    return words


def assemble_one(line: str) -> int:
    return assemble((line,))[0]
