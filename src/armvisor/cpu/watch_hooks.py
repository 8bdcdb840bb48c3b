"""What a memory hook on watched bytes needs, for the debugger's watchpoints
(debug/points.py) and the guest's own (guest_watchpoints.py).

Unicorn's memory hooks see physical addresses, so a virtual range is cut
into pieces that each lie within one page (each translates on its own), and
a hook's range is widened below the bytes to catch an access that starts
before them. An exclusive store (STXR) reaches a hook as a READ from
Unicorn's compare-and-swap, so the instruction says which it is.
"""

from __future__ import annotations

from typing import Iterator, Tuple

from unicorn import UC_MEM_WRITE

from armvisor.cpu.decode import decode_memory_access

PAGE = 0x1000
# The widest single access (a 16-byte pair or Q register) may start this far
# before the watched bytes and still touch them.
WIDEST_ACCESS = 16


def page_pieces(va: int, length: int) -> Iterator[Tuple[int, int]]:
    """(va, length) pieces of [va, va + length), each within one page."""
    address, end = va, va + length
    while address < end:
        chunk = min(end, (address & ~(PAGE - 1)) + PAGE) - address
        yield address, chunk
        address += chunk


def hook_range(pa: int, length: int) -> Tuple[int, int]:
    """The inclusive (begin, end) of a hook that sees every access touching the bytes."""
    return max(0, pa - WIDEST_ACCESS + 1), pa + length - 1


def access_direction(core, access: int) -> Tuple[bool, bool]:
    """(reads, writes) of the access a hook sees, from inside the hook (PC is synced)."""
    if access == UC_MEM_WRITE:
        return False, True
    pc = core.pc
    insn = core.read_insn(pc)
    decoded = decode_memory_access(insn, core.read_x, pc=pc) if insn else None
    if decoded is not None and decoded.is_write:
        return decoded.is_read, True
    return True, False
