"""What to do with each exception Unicorn reports to the core's UC_HOOK_INTR.

The C hook has QEMU take the exceptions routed to the guest's EL1 itself
(native_exceptions.py); what reaches Python is the rest: SMC, HVC, traps to
EL2 (WFI under HCR_EL2.TWI, ID registers under TID3, SMC under TSC), SVE
traps on a model without SVE, and every exception while native delivery is
off. Unicorn gives only QEMU's EXCP_* number and leaves PC at a known place
(UNICORN-FACTS.md). Each handler works out the architectural exception from
the instruction and the CPU state and either delivers it to the guest's EL1
(entry.py) or passes it to the host for EL2/EL3 (SMC, HVC, WFI, system
registers the machine emulates).
"""

from __future__ import annotations

from unicorn import arm64_const as A

from armvisor.cpu import syndrome as syn
from armvisor.cpu import sysregs as sr
from armvisor.cpu.decode import decode_memory_access
from armvisor.cpu.entry import take_exception_to_el1
from armvisor.cpu.host import Stop, TrapCore
from armvisor.cpu.mmu import Access, Stage1Regs, walk_stage1
from armvisor.cpu.sysregs import SysReg

# QEMU's exception numbers as Unicorn passes them (target/arm/cpu.h).
EXCP_UDEF = 1
EXCP_SWI = 2
EXCP_PREFETCH_ABORT = 3
EXCP_DATA_ABORT = 4
EXCP_BKPT = 7
EXCP_HVC = 11
EXCP_HYP_TRAP = 12       # a trap to EL2; Unicorn raises it for SMC under HCR_EL2.TSC
EXCP_SMC = 13

INSN_SMC_MASK, INSN_SMC = 0xFFE0_001F, 0xD400_0003    # SMC #imm16 (C6.2.279)

INSN_WFI = 0xD503_207F
# op1 = 3 is where the registers and operations usable from EL0 live (D19.1.3,
# "op1 ... 0b011: accessible from EL0"): CTR_EL0, DCZID_EL0, CNTVCT_EL0, DC ZVA...
OP1_EL0_SPACE = 3
# The smallest translation granule: an access that crosses one of these
# boundaries may fault in its second page.
SMALLEST_GRANULE = 4096
SCTLR_NTWI = 1 << 16          # SCTLR_EL1.nTWI: 0 traps EL0 WFI to EL1


def is_system_insn(insn: int) -> bool:
    """MRS, MSR (register) and SYS/SYSL: C4.1.66 'System instructions' group, L/op0 form."""
    return insn & 0xFFC0_0000 == 0xD500_0000 and (insn >> 19) & 3 != 0


def is_sve_insn(insn: int) -> bool:
    """op0 = 0b0010 in the top-level encoding table (C4.1): the SVE space."""
    return (insn >> 25) & 0xF == 0b0010


def is_fp_simd_insn(insn: int) -> bool:
    """Data processing SIMD&FP (op0 = x111) or SIMD&FP loads/stores (op0 = x1x0 with V=1)."""
    op0 = (insn >> 25) & 0xF
    if op0 & 0b0111 == 0b0111:
        return True
    return op0 & 0b0101 == 0b0100 and bool(insn & (1 << 26))


class TrapHandler:
    def __init__(self, core: TrapCore):
        self.core = core
        self._table = {
            EXCP_SWI: self._svc,
            EXCP_HVC: self._hvc,
            EXCP_SMC: self._smc,
            EXCP_HYP_TRAP: self._hyp_trap,
            EXCP_BKPT: self._brk,
            EXCP_UDEF: self._udef,
            EXCP_DATA_ABORT: self._data_abort,
            EXCP_PREFETCH_ABORT: self._prefetch_abort,
        }

    def handle(self, intno: int) -> None:
        handler = self._table.get(intno)
        if handler is None:
            raise RuntimeError(f"Unicorn reported an unexpected exception number {intno}")
        handler()

    # -- calls: PC is the next instruction ------------------------------------

    def _svc(self) -> None:
        core = self.core
        core.count_exit("svc")
        pc = core.pc
        insn = core.read_insn(pc - 4) or 0
        take_exception_to_el1(core, syn.esr_svc((insn >> 5) & 0xFFFF), pc)

    def _hvc(self) -> None:
        core = self.core
        core.count_exit("hvc")
        pc = core.pc
        insn = core.read_insn(pc - 4) or 0
        if core.el == 0 or not core.host.hvc(core, (insn >> 5) & 0xFFFF):
            self._undefined(pc - 4)

    def _smc(self) -> None:
        core = self.core
        core.count_exit("smc")
        pc = core.pc
        if core.el == 0:
            self._undefined(pc - 4)
            return
        insn = core.read_insn(pc - 4) or 0
        core.host.smc(core, (insn >> 5) & 0xFFFF)

    def _hyp_trap(self) -> None:
        """An EL1 SMC trapped to EL2 by HCR_EL2.TSC (a hypervisor's VM): the host handles it."""
        core = self.core
        # Unlike an untrapped SMC (EXCP_SMC), the trap leaves PC on the SMC
        # itself (measured), as the preferred return address of a trap to
        # EL2 is (Arm ARM D1.10.4: ELR_EL2 = the SMC for a TSC trap).
        pc = core.pc
        insn = core.read_insn(pc)
        if insn is None or insn & INSN_SMC_MASK != INSN_SMC:
            raise RuntimeError(f"unexpected trap to EL2 at {pc:#x} (instruction "
                               f"{insn if insn is None else hex(insn)})")
        core.count_exit("smc")
        # Step over it before the host runs: a PC write inside this hook would
        # cancel a stop the host requests (CPU_OFF, SYSTEM_OFF), and the host
        # may also move PC itself (a reset).
        core.set_pc(pc + 4)
        core.host.smc(core, (insn >> 5) & 0xFFFF)

    # -- PC is the faulting instruction ---------------------------------------

    def _brk(self) -> None:
        core = self.core
        core.count_exit("brk")
        pc = core.pc
        insn = core.read_insn(pc) or 0
        take_exception_to_el1(core, syn.esr_brk((insn >> 5) & 0xFFFF), pc)

    def _undefined(self, pc: int) -> None:
        take_exception_to_el1(self.core, syn.esr_unknown(), pc)

    def _udef(self) -> None:
        core = self.core
        pc = core.pc
        insn = core.read_insn(pc)
        if insn is None:
            raise RuntimeError(f"UNDEFINED at {pc:#x}, and the instruction cannot be read")
        if insn == INSN_WFI:
            self._wfi(pc)
        elif is_system_insn(insn):
            self._system(pc, insn)
        elif is_sve_insn(insn) and core.model.sve and not self._cpacr_allows(sr.CPACR_ZEN_SHIFT):
            core.count_exit("trap")
            take_exception_to_el1(core, syn.esr_sve_access_trap(), pc)
        elif is_fp_simd_insn(insn) and not self._cpacr_allows(sr.CPACR_FPEN_SHIFT):
            core.count_exit("trap")
            take_exception_to_el1(core, syn.esr_fp_access_trap(), pc)
        else:
            core.count_exit("undef")
            self._undefined(pc)

    def _cpacr_allows(self, shift: int) -> bool:
        core = self.core
        return sr.cpacr_allows(core.read_reg(A.UC_ARM64_REG_CPACR_EL1), shift, core.el)

    def _wfi(self, pc: int) -> None:
        core = self.core
        if core.el == 0 and not core.read_sysreg(sr.SCTLR_EL1) & SCTLR_NTWI:
            take_exception_to_el1(core, syn.esr_wfx(is_wfe=False), pc)
            return
        core.count_exit("wfi")
        core.stop(Stop.WFI, resume_pc=pc + 4)

    def _system(self, pc: int, insn: int) -> None:
        """A trapped or UNDEFINED MRS/MSR/SYS (the timer and GIC registers the
        machine models never get here: the MRS/MSR hooks in _hooks.c take them)."""
        core = self.core
        reg = SysReg.from_insn(insn)
        is_read = bool(insn & (1 << 21))
        rt = insn & 0x1F
        el = core.el
        if el == 1 and is_read and core.model.trap_id_registers and _is_id_register(reg):
            core.count_exit("idreg")
            core.write_x(rt, core.model.id_register(reg))
            core.set_pc(pc + 4)
            return
        core.count_exit("undef")
        if el == 0 and (_is_id_register(reg) or reg.op1 == OP1_EL0_SPACE):
            # An EL0 register or operation that EL1 has trapped (SCTLR_EL1.UCT,
            # UCI, DZE, UMA, CNTKCTL_EL1...) and, with FEAT_IDST, the ID space:
            # both are reported as trapped system register accesses (EC 0x18),
            # which Linux emulates. Anything else is simply UNDEFINED.
            # The ISS's Op0 is the instruction's bits [20:19]: 1 for SYS (DC ZVA,
            # IC IVAU...), which SysReg.from_insn, made for MRS/MSR, reads as 3.
            take_exception_to_el1(core, syn.esr_sysreg_trap_for_insn(insn), pc)
        else:
            self._undefined(pc)

    # -- aborts ------------------------------------------------------------------

    def _stage1_regs(self) -> Stage1Regs:
        core = self.core
        return Stage1Regs(sctlr=core.read_sysreg(sr.SCTLR_EL1), tcr=core.read_sysreg(sr.TCR_EL1),
                          ttbr0=core.read_reg(A.UC_ARM64_REG_TTBR0_EL1),
                          ttbr1=core.read_reg(A.UC_ARM64_REG_TTBR1_EL1),
                          pan=bool(core.pstate & sr.PSTATE_PAN))

    def _read_phys64(self, pa: int) -> int:
        return int.from_bytes(self.core.read_phys(pa, 8), "little")

    def _prefetch_abort(self) -> None:
        core = self.core
        core.count_exit("abort")
        va = core.pc
        el = core.el
        walk = walk_stage1(va, Access.EXEC, el, self._stage1_regs(), self._read_phys64)
        fsc = walk.fsc if not walk.ok else syn.FSC_SYNC_EXTERNAL
        take_exception_to_el1(core, syn.esr_instruction_abort(same_el=el == 1, ifsc=fsc), va, far=va)

    def _data_abort(self) -> None:
        core = self.core
        core.count_exit("abort")
        pc = core.pc
        el = core.el
        insn = core.read_insn(pc)
        access = decode_memory_access(insn, core.read_x, pc=pc) if insn is not None else None
        if access is None:
            raise RuntimeError(f"data abort at {pc:#x} on an instruction that is not a load/store"
                               f" ({insn if insn is None else hex(insn)})")
        kind = Access.WRITE if access.is_write and not access.is_cache_maintenance else Access.READ
        # LDTR/STTR are checked with EL0 permissions whatever the current EL.
        walk_el = 0 if access.is_unprivileged else el
        far, fsc = self._locate_data_fault(access, kind, walk_el)
        # ISV stays 0: the Arm ARM makes it 0 for every fault reported in ESR_EL1.
        esr = syn.esr_data_abort(same_el=el == 1, dfsc=fsc, wnr=access.is_write,
                                 cm=access.is_cache_maintenance)
        take_exception_to_el1(core, esr, pc, far=far)

    def _locate_data_fault(self, access, kind, el: int) -> tuple:
        """(FAR, fault status) for a faulting access, which may span two pages.

        A misaligned access that runs into a second page faults there when that
        page is the unmapped one; the FAR is then that page's first byte, as
        QEMU reports it. An access whose pages all translate faulted for its
        alignment, or on something outside the guest's view (external abort).
        """
        regs = self._stage1_regs()
        first = access.address
        last = first + max(access.total_bytes, 1) - 1
        addresses = [first]
        if last // SMALLEST_GRANULE != first // SMALLEST_GRANULE:
            addresses.append(last & ~(SMALLEST_GRANULE - 1))
        for address in addresses:
            walk = walk_stage1(address, kind, el, regs, self._read_phys64)
            if not walk.ok:
                return address, walk.fsc
        aligned = first % max(access.size, 1) == 0
        return first, syn.FSC_SYNC_EXTERNAL if aligned else syn.FSC_ALIGNMENT


def _is_id_register(reg: SysReg) -> bool:
    """op0=3, op1=0, CRn=0, CRm=1..7: the feature ID space trapped by HCR_EL2.TID3."""
    return reg.op0 == 3 and reg.op1 == 0 and reg.crn == 0 and 1 <= reg.crm <= 7
