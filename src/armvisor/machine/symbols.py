"""Addresses as `symbol+offset`, from an ELF's symbol table or a System.map.

A guest ELF with symbols names its own PCs; Linux's Image has none, so its
System.map (or vmlinux) is given with --symbols. Tables are read only when
an address is first looked up: a run that never crashes never pays for it.
"""

from __future__ import annotations

import bisect
import re
from typing import List, Optional, Tuple

from armvisor.errors import ArmvisorError

ELF_MAGIC = b"\x7fELF"
# System.map lines: address, type letter, name (nm's output format).
_MAP_LINE = re.compile(r"^([0-9a-fA-F]+)\s+([a-zA-Z])\s+(\S+)")
# Symbols that name no code or data: ARM mapping symbols ($x, $d) and nm's
# absolute, undefined or debugging entries.
_SKIPPED_TYPES = set("aAUwWNn")
# Without a size (System.map), an address this far past the last symbol is named by nothing.
MAX_UNSIZED_OFFSET = 1 << 20


class SymbolTable:
    def __init__(self, entries: List[Tuple[int, int, str]]):
        """entries: (address, size or 0 when unknown, name)."""
        entries = sorted(set(entries))
        self._starts = [a for a, _, _ in entries]
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, address: int) -> Optional[str]:
        """`name+0x10` (`name` at its start), or None when no symbol covers the address."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        start, size, name = self._entries[i]
        offset = address - start
        limit = size if size else (self._starts[i + 1] - start if i + 1 < len(self._starts)
                                   else MAX_UNSIZED_OFFSET)
        if offset >= max(limit, 1):
            return None
        return name if offset == 0 else f"{name}+{offset:#x}"

    def describe(self, address: int) -> str:
        """`0x40080010 <main+0x10>`, or the bare address."""
        name = self.lookup(address)
        return f"{address:#x}" if name is None else f"{address:#x} <{name}>"


EMPTY = SymbolTable([])


def read_symbols(path: str) -> SymbolTable:
    """An ELF's symbol table or a System.map; anything else is a one-line error."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            if head == ELF_MAGIC:
                return _from_elf(handle, path)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ArmvisorError(f"cannot read the symbols {path!r}: {exc.strerror or exc}") from None
    table = _from_system_map(text)
    if not len(table):
        raise ArmvisorError(f"{path!r} is neither an ELF with symbols nor a System.map")
    return table


def _from_elf(handle, path: str) -> SymbolTable:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
    try:
        elf = ELFFile(handle)
        entries = []
        for section in elf.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for symbol in section.iter_symbols():
                kind = symbol["st_info"]["type"]
                if kind not in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE") or \
                        symbol["st_shndx"] == "SHN_UNDEF":
                    continue
                name = symbol.name
                if not name or name.startswith("$"):
                    continue
                entries.append((symbol["st_value"], symbol["st_size"], name))
    except ELFError as exc:
        raise ArmvisorError(f"{path!r}: not a readable ELF ({exc})") from None
    return SymbolTable(entries)


def _from_system_map(text: str) -> SymbolTable:
    entries = []
    for line in text.splitlines():
        match = _MAP_LINE.match(line)
        if match and match.group(2) not in _SKIPPED_TYPES and not match.group(3).startswith("$"):
            entries.append((int(match.group(1), 16), 0, match.group(3)))
    return SymbolTable(entries)


class KernelSymbols:
    """A guest's symbols, read on first use: from --symbols (checked now, since a bad
    file is the user's mistake) or from the kernel if it is an ELF (quietly none if not)."""

    def __init__(self, kernel: Optional[str], symbols: Optional[str] = None):
        self._kernel = kernel
        self._table: Optional[SymbolTable] = read_symbols(symbols) if symbols else None

    @property
    def table(self) -> SymbolTable:
        if self._table is None:
            self._table = EMPTY
            try:
                with open(self._kernel or "", "rb") as handle:
                    is_elf = handle.read(4) == ELF_MAGIC
                if is_elf:
                    self._table = read_symbols(self._kernel or "")
            except (OSError, ArmvisorError):
                pass                     # a report must not fail over its decoration
        return self._table

    def describe(self, address: int) -> str:
        return self.table.describe(address)
