"""Addresses as symbol+offset from a System.map or an ELF."""

import pytest

from armvisor.errors import ArmvisorError
from armvisor.machine.symbols import KernelSymbols, SymbolTable, read_symbols

SYSTEM_MAP = """\
ffff800008000000 T _text
ffff800008010000 T __do_softirq
ffff800008010000 t $x
ffff800008010400 T secondary_entry
ffff800008020000 A _etext_abs
ffff800008030000 D some_data
"""


def test_system_map_lookup(tmp_path):
    path = tmp_path / "System.map"
    path.write_text(SYSTEM_MAP)
    table = read_symbols(str(path))
    assert len(table) == 4                                   # mapping and absolute symbols go
    assert table.lookup(0xFFFF800008010400) == "secondary_entry"
    assert table.lookup(0xFFFF800008010408) == "secondary_entry+0x8"
    assert table.lookup(0xFFFF80000801FFFC) == "secondary_entry+0xfbfc"
    assert table.lookup(0xFFFF800007FFFFFF) is None
    assert table.describe(0xFFFF800008000010) == "0xffff800008000010 <_text+0x10>"


def test_sized_symbols_do_not_reach_past_their_end():
    table = SymbolTable([(0x1000, 0x10, "small"), (0x2000, 0, "unsized")])
    assert table.lookup(0x100C) == "small+0xc"
    assert table.lookup(0x1010) is None
    assert table.lookup(0x2004) == "unsized+0x4"


def test_elf_symbols_and_bad_files(tmp_path):
    table = read_symbols("guests/build/smp_demo.elf")
    assert table.lookup(0x40200000) in ("_start", "__image_start")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01 nothing")
    with pytest.raises(ArmvisorError, match="neither an ELF"):
        read_symbols(str(junk))
    with pytest.raises(ArmvisorError, match="cannot read"):
        read_symbols(str(tmp_path / "missing"))
    # A kernel that is not an ELF simply has no symbols; a named file must be good.
    assert len(KernelSymbols(str(junk)).table) == 0
    with pytest.raises(ArmvisorError):
        KernelSymbols(None, str(junk))
