"""One PE's GICv3 virtualization interface: ICH_*_EL2 for its EL2, ICV_* for its EL1.

IHI0069 (GICv3/v4 architecture specification) chapter 6 "Virtual interrupt
handling and prioritization" and 12.4/12.5 (the ICH_* and ICV_* registers).
The shape is QEMU 7.2's for a Cortex-A57-class CPU (hw/intc/arm_gicv3_cpuif.c):
4 list registers, 5 virtual priority bits and 5 preemption bits (so only
ICH_AP0R0/ICH_AP1R0 exist), 24-bit virtual INTIDs (ICH_VTR_EL2 = 0x90a80003).

The guest's hypervisor at EL2 fills the list registers; while HCR_EL2.IMO
(FMO) is set, EL1's ICC_* group-1 (group-0) accesses are ICV_* accesses and
act on them. What this model decides and the machine carries out:
`virq()`/`vfiq()`, the levels of the CPU's virtual IRQ/FIQ inputs, and
`maintenance()`, the level of the maintenance interrupt (PPI 25 on QEMU's
virt) the machine feeds to the redistributor.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

# -- registers: (op0, op1, CRn, CRm, op2) -------------------------------------------------
LIST_REGISTERS = 4
PRI_BITS = 5                       # virtual priority bits (ICH_VTR_EL2.PRIbits + 1)
PRE_BITS = 5                       # virtual preemption bits (ICH_VTR_EL2.PREbits + 1)
PRIORITY_MASK = (0xFF << (8 - PRI_BITS)) & 0xFF
APR_SHIFT = 8 - PRE_BITS           # one ICH_APxR0 bit per group priority

ICH_AP0R0_EL2 = (3, 4, 12, 8, 0)
ICH_AP1R0_EL2 = (3, 4, 12, 9, 0)
ICC_SRE_EL2 = (3, 4, 12, 9, 5)
ICH_HCR_EL2 = (3, 4, 12, 11, 0)
ICH_VTR_EL2 = (3, 4, 12, 11, 1)
ICH_MISR_EL2 = (3, 4, 12, 11, 2)
ICH_EISR_EL2 = (3, 4, 12, 11, 3)
ICH_ELRSR_EL2 = (3, 4, 12, 11, 5)
ICH_VMCR_EL2 = (3, 4, 12, 11, 7)


def ich_lr(n: int) -> Tuple[int, int, int, int, int]:
    """ICH_LR<n>_EL2: CRm 12 for LR0-7, 13 for LR8-15."""
    return (3, 4, 12, 12 + (n >> 3), n & 7)


# ICC_SRE_EL2 (12.2.22): SRE, DFB, DIB fixed at 1; Enable (EL1 may use ICC_SRE_EL1.SRE) RAO.
ICC_SRE_EL2_VALUE = 0xF

# ICH_VTR_EL2 (12.4.9): ListRegs [4:0], TDS [19], A3V [21], IDbits [25:23] (1: 24 bits),
# PREbits [28:26], PRIbits [31:29].
ICH_VTR_VALUE = ((LIST_REGISTERS - 1) | (1 << 19) | (1 << 21) | (1 << 23)
                 | ((PRE_BITS - 1) << 26) | ((PRI_BITS - 1) << 29))

# ICH_HCR_EL2 (12.4.4).
HCR_EN = 1 << 0
HCR_UIE = 1 << 1
HCR_LRENPIE = 1 << 2
HCR_NPIE = 1 << 3
HCR_VGRP0EIE = 1 << 4
HCR_VGRP0DIE = 1 << 5
HCR_VGRP1EIE = 1 << 6
HCR_VGRP1DIE = 1 << 7
HCR_EOICOUNT_SHIFT = 27
HCR_WRITABLE = 0x7C00_7CFF       # En..VGrp1DIE, TC, TALL0, TALL1, TSEI, TDIR, EOIcount

# ICH_MISR_EL2 (12.4.6).
MISR_EOI, MISR_U, MISR_LRENP, MISR_NP = 1 << 0, 1 << 1, 1 << 2, 1 << 3
MISR_VGRP0E, MISR_VGRP0D, MISR_VGRP1E, MISR_VGRP1D = 1 << 4, 1 << 5, 1 << 6, 1 << 7

# ICH_VMCR_EL2 (12.4.8).
VMCR_VENG0 = 1 << 0
VMCR_VENG1 = 1 << 1
VMCR_VACKCTL = 1 << 2
VMCR_VFIQEN = 1 << 3
VMCR_VCBPR = 1 << 4
VMCR_VEOIM = 1 << 9
VMCR_VBPR1_SHIFT = 18
VMCR_VBPR0_SHIFT = 21
VMCR_VPMR_SHIFT = 24
VMCR_WRITABLE = (VMCR_VENG0 | VMCR_VENG1 | VMCR_VACKCTL | VMCR_VFIQEN | VMCR_VCBPR
                 | VMCR_VEOIM | (7 << VMCR_VBPR1_SHIFT) | (7 << VMCR_VBPR0_SHIFT)
                 | (0xFF << VMCR_VPMR_SHIFT))
MIN_VBPR0 = 7 - PRE_BITS           # 2: the smallest binary point with 5 preemption bits
MIN_VBPR1 = MIN_VBPR0 + 1

# ICH_LR<n>_EL2 (12.4.5).
LR_VINTID_MASK = 0xFFFF_FFFF
LR_PINTID_SHIFT = 32
LR_PINTID_MASK = 0x1FFF
LR_EOI = 1 << 41                   # (HW = 0) maintenance interrupt when deactivated
LR_PRIORITY_SHIFT = 48
LR_GROUP = 1 << 60
LR_HW = 1 << 61
LR_STATE_SHIFT = 62
STATE_INVALID, STATE_PENDING, STATE_ACTIVE, STATE_PENDING_ACTIVE = 0, 1, 2, 3
LR_WRITABLE = (LR_VINTID_MASK | (LR_PINTID_MASK << LR_PINTID_SHIFT)
               | (PRIORITY_MASK << LR_PRIORITY_SHIFT) | (0xF << 60))

# The EL1 registers (the ICC_* encodings; ICV_* when HCR_EL2.IMO/FMO route them here).
ICV_PMR = (3, 0, 4, 6, 0)
ICV_IAR0, ICV_EOIR0, ICV_HPPIR0, ICV_BPR0, ICV_AP0R0 = ((3, 0, 12, 8, i) for i in range(5))
ICV_AP1R0 = (3, 0, 12, 9, 0)
ICV_DIR, ICV_RPR = (3, 0, 12, 11, 1), (3, 0, 12, 11, 3)
ICV_IAR1, ICV_EOIR1, ICV_HPPIR1, ICV_BPR1, ICV_CTLR, _SRE, ICV_IGRPEN0, ICV_IGRPEN1 = \
    ((3, 0, 12, 12, i) for i in range(8))
GROUP0_REGISTERS = {ICV_IAR0, ICV_EOIR0, ICV_HPPIR0, ICV_BPR0, ICV_AP0R0, ICV_IGRPEN0}
GROUP1_REGISTERS = {ICV_IAR1, ICV_EOIR1, ICV_HPPIR1, ICV_BPR1, ICV_AP1R0, ICV_IGRPEN1}
COMMON_REGISTERS = {ICV_PMR, ICV_DIR, ICV_RPR, ICV_CTLR}
# ICV_CTLR_EL1 (12.3.8): CBPR [0], EOImode [1], PRIbits [10:8], IDbits [13:11] (1: 24),
# A3V [15].
ICV_CTLR_FIXED = ((PRI_BITS - 1) << 8) | (1 << 11) | (1 << 15)
INTID_SPURIOUS = 1023
IDLE_PRIORITY = 0xFF


def is_ich_register(reg: tuple) -> bool:
    """op0=3 op1=4 CRn=12 CRm=8..13: ICH_* and ICC_SRE_EL2."""
    return reg[0] == 3 and reg[1] == 4 and reg[2] == 12 and 8 <= reg[3] <= 13


def icv_routing(reg: tuple) -> Optional[str]:
    """Which of HCR_EL2.IMO ("irq") / FMO ("fiq") makes an EL1 ICC_* access an ICV_* one,
    "either" for the registers both groups share, None for the rest (SRE, SGIs)."""
    if reg in GROUP1_REGISTERS:
        return "irq"
    if reg in GROUP0_REGISTERS:
        return "fiq"
    if reg in COMMON_REGISTERS:
        return "either"
    return None


def lr_state(lr: int) -> int:
    return (lr >> LR_STATE_SHIFT) & 3


def lr_fields(lr: int) -> dict:
    """A list register as words, for the trace."""
    fields = {"vintid": lr & LR_VINTID_MASK, "state": ("invalid", "pending", "active",
                                                       "pending+active")[lr_state(lr)],
              "priority": (lr >> LR_PRIORITY_SHIFT) & 0xFF,
              "group": 1 if lr & LR_GROUP else 0}
    if lr & LR_HW:
        fields["pintid"] = (lr >> LR_PINTID_SHIFT) & LR_PINTID_MASK
    return fields


class VirtualCpuInterface:
    """ICH_*_EL2 and ICV_*_EL1 of one PE.

    `deactivate_physical(intid)` deactivates a physical interrupt when a
    hardware-backed (HW = 1) virtual one is deactivated; `changed()` runs
    after anything that may move the virtual lines or the maintenance
    interrupt; `trace(kind, **fields)` emits a trace event for this CPU.
    """

    def __init__(self, cpu: int, deactivate_physical: Callable[[int], None] = lambda intid: None,
                 changed: Callable[[], None] = lambda: None,
                 trace: Optional[Callable[..., None]] = None):
        self.cpu = cpu
        self._deactivate_physical = deactivate_physical
        self._changed = changed
        self._trace = trace
        self.reset()

    def reset(self) -> None:
        self.hcr = 0
        self.vmcr = (MIN_VBPR0 << VMCR_VBPR0_SHIFT) | (MIN_VBPR1 << VMCR_VBPR1_SHIFT)
        self.lr = [0] * LIST_REGISTERS
        self.ap0r = 0
        self.ap1r = 0

    def save_state(self) -> dict:
        return {"hcr": self.hcr, "vmcr": self.vmcr, "lr": list(self.lr),
                "ap0r": self.ap0r, "ap1r": self.ap1r}

    def restore_state(self, state: dict) -> None:
        self.hcr, self.vmcr = state["hcr"], state["vmcr"]
        self.lr = list(state["lr"])
        self.ap0r, self.ap1r = state["ap0r"], state["ap1r"]

    # -- ICH_*_EL2 ----------------------------------------------------------------------

    def ich_read(self, reg: tuple) -> Optional[int]:
        """The value, or None for a register this interface does not have (UNDEFINED)."""
        reg = tuple(reg)
        if reg == ICC_SRE_EL2:
            return ICC_SRE_EL2_VALUE
        if reg == ICH_AP0R0_EL2:
            return self.ap0r
        if reg == ICH_AP1R0_EL2:
            return self.ap1r
        if reg == ICH_HCR_EL2:
            return self.hcr
        if reg == ICH_VTR_EL2:
            # What a hypervisor learns of the interface when it probes it (once per boot
            # for KVM): traced, unlike the reads of a world switch.
            if self._trace is not None:
                self._trace("gic.ich_probe", reg="ICH_VTR_EL2", value=ICH_VTR_VALUE,
                            list_registers=LIST_REGISTERS)
            return ICH_VTR_VALUE
        if reg == ICH_MISR_EL2:
            return self.misr()
        if reg == ICH_EISR_EL2:
            return self.eisr()
        if reg == ICH_ELRSR_EL2:
            return self.elrsr()
        if reg == ICH_VMCR_EL2:
            return self.vmcr
        n = self._lr_index(reg)
        return None if n is None else self.lr[n]

    def ich_write(self, reg: tuple, value: int) -> bool:
        """False for a register that cannot be written (UNDEFINED)."""
        reg = tuple(reg)
        value &= 0xFFFF_FFFF_FFFF_FFFF
        if reg == ICC_SRE_EL2:
            return True                               # SRE, DFB, DIB, Enable: RAO/WI
        if reg == ICH_AP0R0_EL2:
            self.ap0r = value & 0xFFFF_FFFF
        elif reg == ICH_AP1R0_EL2:
            self.ap1r = value & 0xFFFF_FFFF
        elif reg == ICH_HCR_EL2:
            self.hcr = value & HCR_WRITABLE
        elif reg == ICH_VMCR_EL2:
            vmcr = value & VMCR_WRITABLE
            bpr0 = max((vmcr >> VMCR_VBPR0_SHIFT) & 7, MIN_VBPR0)
            bpr1 = max((vmcr >> VMCR_VBPR1_SHIFT) & 7, MIN_VBPR1)
            vpmr = (vmcr >> VMCR_VPMR_SHIFT) & PRIORITY_MASK
            vmcr &= ~((7 << VMCR_VBPR0_SHIFT) | (7 << VMCR_VBPR1_SHIFT) | (0xFF << VMCR_VPMR_SHIFT))
            self.vmcr = vmcr | (bpr0 << VMCR_VBPR0_SHIFT) | (bpr1 << VMCR_VBPR1_SHIFT) \
                | (vpmr << VMCR_VPMR_SHIFT)
        else:
            n = self._lr_index(reg)
            if n is None:
                return False                          # read-only or absent
            self.lr[n] = value & LR_WRITABLE
            if self._trace is not None:
                self._trace("gic.ich_lr", lr=n, **lr_fields(self.lr[n]))
        self._changed()
        return True

    @staticmethod
    def _lr_index(reg: tuple) -> Optional[int]:
        if reg[:3] != (3, 4, 12) or reg[3] not in (12, 13):
            return None
        n = ((reg[3] - 12) << 3) | reg[4]
        return n if n < LIST_REGISTERS else None

    def eisr(self) -> int:
        """ICH_EISR_EL2: the LRs that hold an EOI maintenance request (invalid, HW=0, EOI=1)."""
        return sum(1 << n for n, lr in enumerate(self.lr)
                   if lr_state(lr) == STATE_INVALID and not lr & LR_HW and lr & LR_EOI)

    def elrsr(self) -> int:
        """ICH_ELRSR_EL2: the LRs free for a new interrupt."""
        return sum(1 << n for n, lr in enumerate(self.lr)
                   if lr_state(lr) == STATE_INVALID and (lr & LR_HW or not lr & LR_EOI))

    def misr(self) -> int:
        """ICH_MISR_EL2 (12.4.6): why a maintenance interrupt is asserted."""
        hcr, vmcr, misr = self.hcr, self.vmcr, 0
        if self.eisr():
            misr |= MISR_EOI
        if hcr & HCR_UIE and sum(1 for lr in self.lr if lr_state(lr) != STATE_INVALID) <= 1:
            misr |= MISR_U
        if hcr & HCR_LRENPIE and hcr >> HCR_EOICOUNT_SHIFT:
            misr |= MISR_LRENP
        if hcr & HCR_NPIE and not any(lr_state(lr) == STATE_PENDING for lr in self.lr):
            misr |= MISR_NP
        for enabled, eie, die, e_bit, d_bit in (
                (vmcr & VMCR_VENG0, HCR_VGRP0EIE, HCR_VGRP0DIE, MISR_VGRP0E, MISR_VGRP0D),
                (vmcr & VMCR_VENG1, HCR_VGRP1EIE, HCR_VGRP1DIE, MISR_VGRP1E, MISR_VGRP1D)):
            if hcr & (eie if enabled else die):
                misr |= e_bit if enabled else d_bit
        return misr

    def maintenance(self) -> bool:
        """The maintenance interrupt's level: ICH_HCR_EL2.En and a reason in ICH_MISR_EL2."""
        return bool(self.hcr & HCR_EN) and self.misr() != 0

    # -- priorities (IHI0069 4.8, the virtual versions) ----------------------------------

    def _vpmr(self) -> int:
        return (self.vmcr >> VMCR_VPMR_SHIFT) & 0xFF

    def running_priority(self) -> int:
        active = self.ap0r | self.ap1r
        if not active:
            return IDLE_PRIORITY
        return ((active & -active).bit_length() - 1) << APR_SHIFT

    def _group_mask(self, group: int) -> int:
        bpr0 = (self.vmcr >> VMCR_VBPR0_SHIFT) & 7
        if group == 1 and not self.vmcr & VMCR_VCBPR:
            bpr = ((self.vmcr >> VMCR_VBPR1_SHIFT) & 7) - 1
        else:
            bpr = bpr0
        return (0xFF << (bpr + 1)) & 0xFF

    def _enabled(self, group: int) -> bool:
        return bool(self.vmcr & (VMCR_VENG1 if group else VMCR_VENG0))

    def _highest_pending(self) -> Optional[Tuple[int, int, int]]:
        """(LR index, priority, group) of the highest-priority pending LR of an enabled group."""
        best = None
        for n, lr in enumerate(self.lr):
            if lr_state(lr) not in (STATE_PENDING, STATE_PENDING_ACTIVE):
                continue
            group = 1 if lr & LR_GROUP else 0
            if not self._enabled(group):
                continue
            priority = (lr >> LR_PRIORITY_SHIFT) & 0xFF
            if best is None or priority < best[1]:
                best = (n, priority, group)
        return best

    def _can_signal(self, priority: int, group: int) -> bool:
        if priority >= self._vpmr():
            return False
        running = self.running_priority()
        if running == IDLE_PRIORITY:
            return True
        mask = self._group_mask(group)
        return (priority & mask) < (running & mask)

    def _signalled(self) -> Optional[Tuple[int, int, int]]:
        if not self.hcr & HCR_EN:
            return None
        best = self._highest_pending()
        if best is None or not self._can_signal(best[1], best[2]):
            return None
        return best

    def virq(self) -> bool:
        """The virtual IRQ input: a group-1 interrupt (or group 0 without VFIQEn) is signalled."""
        best = self._signalled()
        return best is not None and (best[2] == 1 or not self.vmcr & VMCR_VFIQEN)

    def vfiq(self) -> bool:
        best = self._signalled()
        return best is not None and best[2] == 0 and bool(self.vmcr & VMCR_VFIQEN)

    # -- ICV_*_EL1 ----------------------------------------------------------------------

    def icv_read(self, reg: tuple) -> Optional[int]:
        reg = tuple(reg)
        if reg == ICV_PMR:
            return self._vpmr()
        if reg in (ICV_IAR0, ICV_IAR1):
            return self._acknowledge(0 if reg == ICV_IAR0 else 1)
        if reg in (ICV_HPPIR0, ICV_HPPIR1):
            best = self._highest_pending()
            group = 0 if reg == ICV_HPPIR0 else 1
            if best is None or best[2] != group:
                return INTID_SPURIOUS
            return self.lr[best[0]] & LR_VINTID_MASK
        if reg == ICV_BPR0:
            return (self.vmcr >> VMCR_VBPR0_SHIFT) & 7
        if reg == ICV_BPR1:
            if self.vmcr & VMCR_VCBPR:
                return min(((self.vmcr >> VMCR_VBPR0_SHIFT) & 7) + 1, 7)
            return (self.vmcr >> VMCR_VBPR1_SHIFT) & 7
        if reg == ICV_AP0R0:
            return self.ap0r
        if reg == ICV_AP1R0:
            return self.ap1r
        if reg == ICV_RPR:
            return self.running_priority()
        if reg == ICV_CTLR:
            return ICV_CTLR_FIXED | (1 if self.vmcr & VMCR_VCBPR else 0) \
                | (2 if self.vmcr & VMCR_VEOIM else 0)
        if reg == ICV_IGRPEN0:
            return int(self._enabled(0))
        if reg == ICV_IGRPEN1:
            return int(self._enabled(1))
        return None

    def icv_write(self, reg: tuple, value: int) -> bool:
        reg = tuple(reg)
        vmcr = self.vmcr
        if reg == ICV_PMR:
            vmcr = vmcr & ~(0xFF << VMCR_VPMR_SHIFT) | ((value & PRIORITY_MASK) << VMCR_VPMR_SHIFT)
        elif reg in (ICV_EOIR0, ICV_EOIR1):
            self._end_of_interrupt(0 if reg == ICV_EOIR0 else 1, value & 0xFF_FFFF)
            vmcr = self.vmcr
        elif reg == ICV_DIR:
            if self.vmcr & VMCR_VEOIM:
                self._deactivate(value & 0xFF_FFFF)
        elif reg == ICV_BPR0:
            vmcr = vmcr & ~(7 << VMCR_VBPR0_SHIFT) | (max(value & 7, MIN_VBPR0) << VMCR_VBPR0_SHIFT)
        elif reg == ICV_BPR1:
            if not vmcr & VMCR_VCBPR:
                vmcr = vmcr & ~(7 << VMCR_VBPR1_SHIFT) \
                    | (max(value & 7, MIN_VBPR1) << VMCR_VBPR1_SHIFT)
        elif reg == ICV_AP0R0:
            self.ap0r = value & 0xFFFF_FFFF
        elif reg == ICV_AP1R0:
            self.ap1r = value & 0xFFFF_FFFF
        elif reg == ICV_CTLR:
            vmcr = vmcr & ~(VMCR_VCBPR | VMCR_VEOIM) | (VMCR_VCBPR if value & 1 else 0) \
                | (VMCR_VEOIM if value & 2 else 0)
        elif reg == ICV_IGRPEN0:
            vmcr = vmcr & ~VMCR_VENG0 | (VMCR_VENG0 if value & 1 else 0)
        elif reg == ICV_IGRPEN1:
            vmcr = vmcr & ~VMCR_VENG1 | (VMCR_VENG1 if value & 1 else 0)
        else:
            return False
        self.vmcr = vmcr
        self._changed()
        return True

    def _acknowledge(self, group: int) -> int:
        best = self._highest_pending()
        if best is None or best[2] != group or not self.hcr & HCR_EN or \
                not self._can_signal(best[1], group):
            return INTID_SPURIOUS
        n, priority, _ = best
        lr = self.lr[n]
        # Pending -> active (a pending+active LR keeps its active state and loses the pending).
        self.lr[n] = lr & ~(3 << LR_STATE_SHIFT) | (STATE_ACTIVE << LR_STATE_SHIFT)
        bit = 1 << ((priority & self._group_mask(group)) >> APR_SHIFT)
        if group:
            self.ap1r |= bit
        else:
            self.ap0r |= bit
        intid = lr & LR_VINTID_MASK
        if self._trace is not None:
            self._trace("gic.vack", intid=intid, lr=n)
        self._changed()
        return intid

    def _end_of_interrupt(self, group: int, intid: int) -> None:
        active = self.ap0r | self.ap1r
        if active:
            lowest = active & -active
            if group == 1 and self.ap1r & lowest:
                self.ap1r &= ~lowest
            elif group == 0 and self.ap0r & lowest:
                self.ap0r &= ~lowest
        if self._trace is not None:
            self._trace("gic.veoi", intid=intid)
        if not self.vmcr & VMCR_VEOIM:
            self._deactivate(intid)

    def _deactivate(self, intid: int) -> None:
        """Deactivate the LR holding `intid`; with none, count it in ICH_HCR_EL2.EOIcount."""
        for n, lr in enumerate(self.lr):
            if lr & LR_VINTID_MASK == intid and lr_state(lr) in (STATE_ACTIVE, STATE_PENDING_ACTIVE):
                state = STATE_PENDING if lr_state(lr) == STATE_PENDING_ACTIVE else STATE_INVALID
                self.lr[n] = lr & ~(3 << LR_STATE_SHIFT) | (state << LR_STATE_SHIFT)
                if lr & LR_HW:
                    self._deactivate_physical((lr >> LR_PINTID_SHIFT) & LR_PINTID_MASK)
                return
        count = ((self.hcr >> HCR_EOICOUNT_SHIFT) + 1) & 0x1F
        self.hcr = self.hcr & ((1 << HCR_EOICOUNT_SHIFT) - 1) | (count << HCR_EOICOUNT_SHIFT)


class VirtualInterfaces:
    """The machine's virtualization interfaces, one per CPU, and what they drive."""

    def __init__(self, cpu_count: int, set_ppi: Callable[[int, int, bool], None],
                 deactivate_physical: Callable[[int, int], None],
                 lines_changed: Callable[[int], None], trace=None):
        self._set_ppi = set_ppi
        self._lines_changed = lines_changed
        self._trace_bus = trace
        self.maintenance_level = [False] * cpu_count
        self.cpus: Dict[int, VirtualCpuInterface] = {}
        self.interfaces = [VirtualCpuInterface(
            cpu, deactivate_physical=lambda intid, c=cpu: deactivate_physical(c, intid),
            changed=lambda c=cpu: self._changed(c),
            trace=None if trace is None else (lambda kind, c=cpu, **f: trace.emit(kind, c, **f)))
            for cpu in range(cpu_count)]

    def __getitem__(self, cpu: int) -> VirtualCpuInterface:
        return self.interfaces[cpu]

    def _changed(self, cpu: int) -> None:
        level = self.interfaces[cpu].maintenance()
        if level != self.maintenance_level[cpu]:
            self.maintenance_level[cpu] = level
            self._set_ppi(cpu, MAINTENANCE_INTID, level)
            if self._trace_bus is not None:
                self._trace_bus.emit("gic.maintenance", cpu, level=level,
                                     misr=self.interfaces[cpu].misr())
        self._lines_changed(cpu)

    def reset_cpu(self, cpu: int) -> None:
        """One CPU's interface back to reset (CPU_ON), its outputs with it."""
        self.interfaces[cpu].reset()
        self._changed(cpu)

    def reset(self) -> None:
        for cpu, interface in enumerate(self.interfaces):
            interface.reset()
            self.maintenance_level[cpu] = False

    def save_state(self) -> list:
        return [interface.save_state() for interface in self.interfaces]

    def restore_state(self, state: list) -> None:
        for interface, saved in zip(self.interfaces, state):
            interface.restore_state(saved)
        self.maintenance_level = [i.maintenance() for i in self.interfaces]


# The maintenance interrupt's INTID on QEMU's virt (ARCH_GIC_MAINT_IRQ = PPI 9).
MAINTENANCE_INTID = 25
