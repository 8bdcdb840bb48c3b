"""Accesses to physical addresses with nothing behind them: synchronous external aborts.

On the virt board (and on QEMU) a load, store or instruction fetch that
reaches no RAM and no device gets a decode error from the interconnect, which
the PE takes as a synchronous external abort (Arm ARM D17.2.37 ESR_ELx:
DFSC/IFSC 0b010000; QEMU: arm_cpu_do_transaction_failed with EA = 0 for a
decode error). Unicorn instead ends uc_emu_start with UC_ERR_*_UNMAPPED; its
UC_HOOK_MEM_*_UNMAPPED hooks run first, with PC synced to the faulting
instruction (cputlb.c load_helper/store_helper call cpu_restore_state before
the callbacks), and for a fetch PC is the fetched address (a new block). The
core records the access there and delivers the abort here once
uc_emu_start has returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from unicorn import (UC_ERR_FETCH_UNMAPPED, UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED,
                     UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED)

from armvisor.cpu import syndrome as syn
from armvisor.cpu.decode import decode_memory_access
from armvisor.cpu.entry import take_exception_to_el1
from armvisor.cpu.host import TrapCore
from armvisor.cpu.mmu import Access

# How uc_emu_start reports an access to nothing, and how its hook names it.
UNMAPPED_ERRORS = frozenset({UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED})
HOOK_ACCESS = {UC_MEM_READ_UNMAPPED: Access.READ, UC_MEM_WRITE_UNMAPPED: Access.WRITE,
               UC_MEM_FETCH_UNMAPPED: Access.EXEC}

# ID_AA64MMFR0_EL1.PARange (D17.2.64): physical address size in bits.
PARANGE_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
PARANGE_MASK = 0xF
# The smallest translation granule: within one such page VA -> PA is linear.
SMALLEST_GRANULE = 4096
# uc_vmem_translate's protection argument (UC_PROT_READ / WRITE / EXEC).
TRANSLATE_PROT = {Access.READ: 1, Access.WRITE: 2, Access.EXEC: 4}


@dataclass(frozen=True)
class OutsideAccess:
    """What the unmapped-memory hook saw: the first such access of a slice."""

    access: Access
    pa: int              # the physical address Unicorn found nothing at
    size: int
    pc: int              # the faulting instruction, or the fetched address


def hook_ranges(ram_base: int, ram_size: int, pa_bits: int) -> List[Tuple[int, int]]:
    """Inclusive [begin, end] physical ranges for the unmapped-memory hooks.

    Everything below and above RAM, up to the PE's physical address size.
    RAM itself stays outside every hook: Unicorn asks whether a memory hook
    covers an address before it lets stores to a RAM page take the fast path
    (cputlb.c notdirty_write, uc_mem_hook_installed), so a hook over RAM
    would slow every store down (UNICORN-FACTS.md). Unicorn also asks it,
    with a block's *virtual* PC, when it translates a block
    (translate-all.c tb_gen_code): a block whose VA falls in these ranges
    skips tlb_reset_dirty_by_vaddr, as under any memory hook. Kernel VAs
    (0xffff...) lie above every physical address and are not affected.
    """
    ranges = []
    if ram_base > 0:
        ranges.append((0, ram_base - 1))
    top = (1 << pa_bits) - 1
    if ram_base + ram_size <= top:
        ranges.append((ram_base + ram_size, top))
    return ranges


def fault_address(outside: OutsideAccess, mmu_on: bool, insn: Optional[int],
                  read_x: Callable[[int], int],
                  translate: Callable[[int, int], Optional[int]]) -> int:
    """FAR for a data access: the virtual address of the byte Unicorn found nothing at.

    With the MMU off VA = PA. With it on, the instruction is decoded for the
    VA range it touches, and the page of that range whose translation holds
    the PA gives the VA (an access that crosses into a second page may fault
    only there). If none does, the decoded address is the best answer.
    """
    if not mmu_on:
        return outside.pa
    access = decode_memory_access(insn, read_x, pc=outside.pc) if insn is not None else None
    if access is None:
        return outside.pa
    start = access.address
    end = start + max(access.total_bytes, 1)
    chunk = start
    while chunk < end:
        chunk_end = min(end, (chunk // SMALLEST_GRANULE + 1) * SMALLEST_GRANULE)
        pa = translate(chunk, TRANSLATE_PROT[outside.access])
        if pa is not None and pa <= outside.pa < pa + (chunk_end - chunk):
            return chunk + (outside.pa - pa)
        chunk = chunk_end
    return start


def deliver_abort(core: TrapCore, outside: OutsideAccess, mmu_on: bool,
                  translate: Callable[[int, int], Optional[int]]) -> int:
    """Take the synchronous external abort at the guest's EL1; returns FAR."""
    same_el = core.el == 1
    if outside.access is Access.EXEC:
        # The preferred return address and FAR are both the fetched address.
        esr = syn.esr_instruction_abort(same_el=same_el, ifsc=syn.FSC_SYNC_EXTERNAL)
        take_exception_to_el1(core, esr, outside.pc, far=outside.pc)
        return outside.pc
    far = fault_address(outside, mmu_on, core.read_insn(outside.pc), core.read_x, translate)
    esr = syn.esr_data_abort(same_el=same_el, dfsc=syn.FSC_SYNC_EXTERNAL,
                             wnr=outside.access is Access.WRITE)
    take_exception_to_el1(core, esr, outside.pc, far=far)
    return far
