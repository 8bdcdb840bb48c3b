"""The system registers a guest that owns EL2 reaches and Unicorn lacks (--virtualization).

The C hooks pass these up only when the core runs with `virt_regs` set
(_hooks.c wanted()); SysregRouter hands them here first:

- ICC_SRE_EL2 and the ICH_*_EL2 virtualization interface, at EL2
  (devices/gic/virtual_interface.py); at EL1 they are UNDEFINED;
- EL1's ICC_* accesses while the guest's HCR_EL2.IMO (group 1) or FMO
  (group 0) is set: they are ICV_* accesses to the virtual interface
  (IHI0069 12.3, "ICV_* registers");
- the EL2 physical timer CNTHP_*_EL2 (PPI 26), which Unicorn drops, and
  CNTVOFF_EL2 for the virtual timer model (the counter itself honours it
  natively);
- the identification registers: MIDR_EL1 and MPIDR_EL1 read at EL2 (Unicorn
  gives every instance the same MPIDR, and its `max` MIDR), and the ID space
  read at EL1/EL2 as the CPU model has it, with what Unicorn cannot do hidden
  (ID_AA64MMFR1_EL1.VH: its VHE is broken, UNICORN-FACTS.md), since
  HCR_EL2.TID3, which the bare board uses, is the guest's now.

`access` returns NOT_MINE for anything else, so the router goes on as without
--virtualization.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from armvisor.cpu import sysregs as sr
from armvisor.cpu.models import ID_AA64MMFR1_EL1, ID_AA64PFR0_EL1, CpuModel
from armvisor.devices.gic.virtual_interface import (ICV_DIR, VirtualInterfaces, icv_routing,
                                                    is_ich_register)
from armvisor.devices.timer import GenericTimer

NOT_MINE = object()
# ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1.
SGI_REGISTERS = {(3, 0, 12, 11, 5), (3, 0, 12, 11, 6), (3, 0, 12, 11, 7)}

# ID_AA64MMFR1_EL1.VH [11:8] (FEAT_VHE).
MMFR1_VH_MASK = 0xF << 8
# ID_AA64PFR0_EL1.EL2 [11:8], EL3 [15:12]: 1 = implemented, AArch64 only.
PFR0_EL2_MASK = 0xF << 8
PFR0_EL2_EL3_MASK = 0xFF << 8
PFR0_EL2_EL3_AARCH64 = 0x11 << 8
# ID_AA64PFR0_EL1.GIC [27:24]: 1 = GICv3/v4 CPU interface system registers.
PFR0_GIC_MASK = 0xF << 24
PFR0_GIC_SYSREGS = 1 << 24
MPIDR_RES1 = 1 << 31
# CNTHCTL_EL2.EL1PCEN (bit 1, without FEAT_VHE's E2H): EL1 may use CNTP_*_EL0.
CNTHCTL_EL1PCEN = 1 << 1
# ICH_HCR_EL2 trap bits (IHI0069 12.4.4).
ICH_HCR_TC, ICH_HCR_TALL0, ICH_HCR_TALL1, ICH_HCR_TDIR = 1 << 10, 1 << 11, 1 << 12, 1 << 14
CNTP_CRM = 2                       # CNTP_* are op0=3 op1=3 CRn=14 CRm=2


def _is_id_space(reg) -> bool:
    return reg[0] == 3 and reg[1] == 0 and reg[2] == 0


class El2Registers:
    def __init__(self, model: CpuModel, vifs: VirtualInterfaces, timers: Sequence[GenericTimer],
                 timer_written: Callable[[object], None], mpidr_of: Callable[[int], int],
                 el2: bool = True):
        """`el2` False: the firmware at EL3 (--secure without --virtualization) is told
        there is no EL2, as QEMU's secure=on alone has none; Unicorn's CPU keeps it, but
        nothing enters it when the ID registers say it is absent."""
        self.el2 = el2
        self.model = model
        self.vifs = vifs
        self.timers = timers
        self._timer_written = timer_written
        self._mpidr_of = mpidr_of

    def access(self, core, reg: sr.SysReg, el: int, is_write: bool, value: int):
        """The value read (0 for a write), None for UNDEFINED / let Unicorn do it,
        or NOT_MINE."""
        if _is_id_space(reg):
            return None if is_write else self._identification(core, reg, el)
        if is_ich_register(reg):
            if el < 2:
                return None
            vif = self.vifs[core.index]
            if is_write:
                return 0 if vif.ich_write(reg, value) else None
            return vif.ich_read(reg)
        if GenericTimer.is_el2_timer_register(reg):
            if el < 2:
                return None
            return self._timer(core, reg, is_write, value)
        if GenericTimer.is_timer_register(reg):
            if el == 1 and reg[3] == CNTP_CRM and \
                    not core.read_sysreg(sr.CNTHCTL_EL2) & CNTHCTL_EL1PCEN:
                # The guest's EL2 traps EL1's physical timer (KVM does, around its
                # guests): Unicorn checks CNTHCTL_EL2 and takes the trap to EL2 itself.
                return None
            # The virtual timer compares CNTVCT = CNTPCT - CNTVOFF_EL2 with its CVAL.
            self.timers[core.index].set_virtual_offset(core.read_sysreg(sr.CNTVOFF_EL2))
            return NOT_MINE
        if el == 1 and tuple(reg) in SGI_REGISTERS:
            # IHI0069 12.2.19-21: with HCR_EL2.IMO or FMO set, EL1's SGI register writes
            # trap to EL2 (the hypervisor sends the vCPU's SGIs itself).
            if core.read_sysreg(sr.HCR_EL2) & (sr.HCR_IMO | sr.HCR_FMO):
                return core.trap_access_to_el2()
            return NOT_MINE
        if el == 1:
            routing = icv_routing(tuple(reg))
            if routing is not None:
                hcr = core.read_sysreg(sr.HCR_EL2)
                virtual = {"irq": hcr & sr.HCR_IMO, "fiq": hcr & sr.HCR_FMO,
                           "either": hcr & (sr.HCR_IMO | sr.HCR_FMO)}[routing]
                if virtual:
                    if self._trapped_by_ich_hcr(core, reg, routing):
                        return core.trap_access_to_el2()
                    vif = self.vifs[core.index]
                    if is_write:
                        return 0 if vif.icv_write(reg, value) else None
                    return vif.icv_read(reg)
        return NOT_MINE

    def _trapped_by_ich_hcr(self, core, reg, routing: str) -> bool:
        """ICH_HCR_EL2.TALL1/TALL0/TC/TDIR (IHI0069 12.4.4): the hypervisor traps EL1's
        ICV_* accesses of group 1, group 0, the common registers, or ICV_DIR_EL1."""
        hcr = self.vifs[core.index].hcr
        if not hcr & (ICH_HCR_TALL0 | ICH_HCR_TALL1 | ICH_HCR_TC | ICH_HCR_TDIR):
            return False
        if routing == "irq":
            return bool(hcr & ICH_HCR_TALL1)
        if routing == "fiq":
            return bool(hcr & ICH_HCR_TALL0)
        if tuple(reg) == ICV_DIR and hcr & ICH_HCR_TDIR:
            return True
        return bool(hcr & ICH_HCR_TC)

    def _timer(self, core, reg, is_write: bool, value: int):
        answer = self.timers[core.index].access(reg, is_write, value)
        if is_write:
            self._timer_written(core)
        return answer

    def _identification(self, core, reg, el: int) -> Optional[int]:
        if reg == sr.MIDR_EL1:
            # At EL1 Unicorn answers VPIDR_EL2 itself.
            return self.model.midr if el >= 2 and self.model.midr is not None else None
        if reg == sr.MPIDR_EL1:
            return MPIDR_RES1 | self._mpidr_of(core.index) if el >= 2 else None   # EL1: VMPIDR
        if el == 1 and core.read_sysreg(sr.HCR_EL2) & sr.HCR_TID3:
            return None                  # the guest's EL2 traps it: Unicorn takes it there
        if reg in core.id_overrides:
            value = core.id_overrides[reg]
        elif self.model.trap_id_registers:
            value = self.model.id_register(reg)
            if reg == ID_AA64PFR0_EL1:
                value = value & ~PFR0_EL2_EL3_MASK | PFR0_EL2_EL3_AARCH64
        else:
            value = core.read_sysreg(reg)
        if reg == ID_AA64MMFR1_EL1:
            value &= ~MMFR1_VH_MASK
        if reg == ID_AA64PFR0_EL1:
            # The GICv3 CPU interface's system registers are there (this module), as
            # QEMU's PFR0 says with gic-version=3; Unicorn's `max` says none.
            value = value & ~PFR0_GIC_MASK | PFR0_GIC_SYSREGS
            if not self.el2:
                value &= ~PFR0_EL2_MASK
        return value
