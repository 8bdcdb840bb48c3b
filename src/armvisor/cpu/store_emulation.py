"""Carry out one plain store in Python, for the stores Unicorn cannot run itself.

A flash bank in read-array mode is mapped into the cores as read-only memory
so code runs from it at full speed (board.FlashBank); a store to it faults
and the board switches the bank to MMIO for the store to reach the device.
That cannot work when the storing instruction itself lies in the bank:
Unicorn does not fetch instructions from MMIO. EDK2 does exactly that: its
PEI modules run in place from flash0 and write their global variables there
(QEMU turns each write into a flash command, an unknown one that leaves the
bank in read-array mode, so the store simply has no effect).

So the board asks here for the writes such a store makes, hands them to the
device, and steps the PC past it. Only the plain forms are done: STR/STUR/
STTR of general registers (any size, immediate or register offset) and STP
without writeback. Anything else (writeback, exclusives, atomics, SIMD
registers) is left to the caller to refuse; none of it is seen in practice.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from armvisor.cpu.decode import decode_memory_access

XZR = 31                        # register 31 as a store's data register is XZR (Arm ARM C1.2.5)

Write = Tuple[int, int, int]    # (virtual address, size in bytes, value), in program order


def plain_store_writes(core) -> Optional[List[Write]]:
    """The writes of the store at the core's PC, or None if it is not a plain GPR store."""
    pc = core.pc
    insn = core.read_insn(pc)
    if insn is None:
        return None
    access = decode_memory_access(insn, core.read_x, pc=pc)
    if access is None or not access.is_write or access.is_read:
        return None
    if access.writeback or access.is_simd or access.is_exclusive or access.is_atomic or \
            access.is_tag_access or access.is_cache_maintenance:
        return None
    registers = [access.rt] + ([access.rt2] if access.is_pair else [])
    mask = (1 << (8 * access.size)) - 1
    return [(access.address + i * access.size, access.size,
             0 if reg == XZR else core.read_x(reg) & mask)
            for i, reg in enumerate(registers)]
