"""Synchronous exception entry to EL1, done by hand.

Unicorn reports a synchronous exception to a hook and then carries on as if
nothing happened (UNICORN-FACTS.md). The C hook normally has QEMU take the
guest's exceptions itself (native_exceptions.py); the ones it cannot (an
access to nothing, which Unicorn reports as a failed uc_emu_start, and every
exception while native delivery is off) get the architectural entry (Arm
ARM D1.10 "Exception entry") rebuilt here: ESR/FAR/ELR/SPSR, SP banking, the
new PSTATE and the vector offset.
"""

from __future__ import annotations

from typing import Optional, Tuple

from armvisor.cpu import sysregs as sr
from armvisor.cpu.syndrome import ESR_EC_SHIFT
from armvisor.cpu.host import ExceptionCore

# Vector table offsets from VBAR_EL1 (D1.10.2, Table D1-7); synchronous = +0.
VECTOR_CURRENT_EL_SP0 = 0x000
VECTOR_CURRENT_EL_SPX = 0x200
VECTOR_LOWER_EL_AARCH64 = 0x400
VECTOR_IRQ = 0x080


def vector_offset(pstate: int) -> int:
    """The vector group for an exception taken to EL1 from the state `pstate`."""
    if sr.pstate_el(pstate) == 0:
        return VECTOR_LOWER_EL_AARCH64
    return VECTOR_CURRENT_EL_SPX if pstate & sr.PSTATE_SP else VECTOR_CURRENT_EL_SP0


def entry_pstate(old_pstate: int, sctlr: int, pan_implemented: bool) -> int:
    """PSTATE on entry to EL1h: DAIF masked, IL/SS/BTYPE cleared, PAN per SCTLR_EL1.SPAN.

    NZCV read as zero, as QEMU's arm_cpu_do_interrupt_aarch64 leaves them.
    """
    new = sr.PSTATE_DAIF | sr.PSTATE_MODE_EL1H
    if pan_implemented:
        if old_pstate & sr.PSTATE_PAN or not sctlr & sr.SCTLR_SPAN:
            new |= sr.PSTATE_PAN
    if sctlr & sr.SCTLR_DSSBS:
        new |= sr.PSTATE_SSBS
    return new


def take_exception_to_el1(core: ExceptionCore, esr: int, return_address: int,
                          far: Optional[int] = None) -> int:
    """Enter the guest's EL1 synchronous exception vector; returns the vector address.

    `return_address` is the preferred return address (ELR_EL1): the faulting
    instruction for aborts and UNDEFINED, the next one for SVC.
    """
    state = core.exception_state()             # PSTATE, SP, SP_EL1, VBAR_EL1 in one call
    pstate, sp, sp_el1, vbar = state
    sctlr = core.read_sysreg(sr.SCTLR_EL1)
    vector = vbar + vector_offset(pstate)
    new_pstate = entry_pstate(pstate, sctlr, core.model.pan)
    from_sp_el1 = sr.pstate_el(pstate) == 1 and pstate & sr.PSTATE_SP
    if from_sp_el1:
        sp_el0, new_sp = None, sp
    else:
        # The live SP is SP_EL0; Unicorn keeps SP_EL1 banked until we switch.
        sp_el0, new_sp = sp, sp_el1
    _check_not_looping(core, esr, return_address, far, vector)
    core.write_exception_entry(esr=esr, far=far, elr=return_address, sp_el0=sp_el0,
                               sp=new_sp, pstate=new_pstate, pc=vector)
    if core.trace is not None:
        core.trace.emit("exception", core.index, ec=esr >> ESR_EC_SHIFT, esr=esr, elr=return_address,
                        far=far, vector=vector)
    # The SPSR write goes through CP_REG, which also makes QEMU rebuild its
    # cached EL flags after the PSTATE change (UNICORN-FACTS.md).
    core.write_sysreg(sr.SPSR_EL1, pstate)
    return vector


# A vector that faults on its own first instruction (VBAR_EL1 never set, a
# table full of zeros) would make the machine deliver exceptions forever.
# The same count applies to the exceptions the C hook delivers natively
# (_hooks.c note_exception), which share this state with the core.
VECTOR_LOOP_LIMIT = 64


class ExceptionLoop(RuntimeError):
    pass


def exception_loop(vector: int, first: Optional[Tuple[int, int, Optional[int]]],
                   el: int = 1) -> ExceptionLoop:
    """The error for a core whose vector at `vector` (of EL `el`) keeps faulting on itself.

    The loop's own exceptions say little; the one that first sent the core to
    this vector (`first`: ESR, ELR, FAR) is what the guest did wrong.
    """
    return ExceptionLoop(f"exception loop: the EL{el} vector at {vector:#x} takes an "
                         f"exception on its first instruction (is VBAR_EL{el} set?); "
                         f"the first exception: "
                         f"{describe_exception(*first) if first else 'unknown'}")


def _check_not_looping(core: ExceptionCore, esr: int, return_address: int, far: Optional[int],
                       vector: int) -> None:
    if return_address == core.last_vector:
        core.vector_faults += 1
        if core.vector_faults >= VECTOR_LOOP_LIMIT:
            raise exception_loop(vector, core.first_fault)
    else:
        core.vector_faults = 0
        # Kept as numbers: the crash report names the addresses' symbols.
        core.first_fault = (esr, return_address, far)
    core.last_vector = vector


def describe_exception(esr: int, elr: int, far: Optional[int]) -> str:
    text = f"EC {esr >> ESR_EC_SHIFT:#04x} (ESR {esr:#x}) ELR {elr:#x}"
    return text if far is None else f"{text} FAR {far:#x}"
