"""One CPU's Performance Monitors Unit (PMUv3): the cycle counter and six event counters.

Unicorn 2.1.4 has the PMU registers but compiled out their accumulation
(`pmccntr_op_finish`, `pmevcntr_op_finish`: PMCCNTR_EL0 jumps back and
forth, event counters never move; UNICORN-FACTS.md), so every PMU register
access is trapped in C (_hooks.c) and answered here. Arm ARM (DDI0487):
the chapter "The Performance Monitors Extension", the PMU registers in
"AArch64 System Register Descriptions" (cited below by register name: the
section numbers move between issues) and the shared pseudocode
(AArch64.CountPMUEvents, PMUSwIncrement, CheckForPMUOverflow).

What counts, and how exactly:
- CPU_CYCLES (0x11) and the cycle counter count one cycle per instruction,
  and INST_RETIRED (0x08) counts instructions, both from the core's
  instruction count. The C hook gives each access the exact number of
  instructions retired before it (the block's start count plus the
  instruction's position in the block), so two back-to-back reads differ
  by one. Counts come from instructions only, so they repeat exactly in
  --deterministic mode.
- SW_INCR (0x00) counts PMSWINC_EL0 writes, filtered by the writer's EL.
- The EL filters (PMEVTYPER<n>/PMCCFILTR P and U) cannot be honoured for
  the instruction-derived events: exception entry and return run natively
  in Unicorn, so nothing here sees the EL change. They are kept and read
  back; a counter that excludes both EL1 and EL0 counts nothing, any other
  setting counts at both.
- Other event numbers are accepted (PMEVTYPER is read/write) but never
  count, and PMCEID0/1 advertise only the three events above.

An overflow sets PMOVSSET at the exact instruction; its interrupt (PPI 23,
INTID 23 as QEMU virt's DTB `pmu` node says) is raised when the machine next
looks: after the access that causes it, or at the end of the slice the
machine shortens to the overflow point (`interrupt_due`), so up to one
translation block late.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from armvisor.cpu.models import PMU_COUNTERS
from armvisor.cpu.sysregs import SysReg

PMU_INTID = 23                 # PPI 7 (Arm BSA's PMU overflow interrupt, QEMU virt's DTB)
COUNTERS = PMU_COUNTERS         # PMCR_EL0.N
CYCLE_INDEX = 31               # the cycle counter's bit in PMCNTEN*, PMOVS*, PMINTEN*
# PMCR_EL0's read-only part for an A57 (PMCR_EL0.IMP, IDCODE, N): IMP 0x41 (Arm), IDCODE 0x01, N.
PMCR_ID = (0x41 << 24) | (0x01 << 16) | (COUNTERS << 11)

# PMCR_EL0 bits.
PMCR_E = 1 << 0                # enable every counter
PMCR_P = 1 << 1                # event counter reset (write-only)
PMCR_C = 1 << 2                # cycle counter reset (write-only)
PMCR_D = 1 << 3                # cycle counter counts every 64th cycle
PMCR_X = 1 << 4                # export events: RAZ/WI, there is no export bus
PMCR_DP = 1 << 5               # disable cycles where counting is prohibited: it never is
PMCR_LC = 1 << 6               # cycle counter overflows at 64 bits, not 32
PMCR_WRITABLE = PMCR_E | PMCR_D | PMCR_DP | PMCR_LC

# PMEVTYPER<n>_EL0 / PMCCFILTR_EL0: P excludes EL1, U EL0.
# NSK, NSU, NSH and M are RES0: the guest sees neither EL2 nor EL3.
FILTER_P = 1 << 31
FILTER_U = 1 << 30
EVTCOUNT_MASK = 0x3FF          # PMUv3 (PMUVer 1): 10-bit event numbers
EVTYPER_WRITABLE = FILTER_P | FILTER_U | EVTCOUNT_MASK
CCFILTR_WRITABLE = FILTER_P | FILTER_U

# PMUSERENR_EL0 bits: what EL0 may do.
USERENR_EN = 1 << 0            # everything but PMINTEN* and writing PMUSERENR
USERENR_SW = 1 << 1            # write PMSWINC_EL0
USERENR_CR = 1 << 2            # read PMCCNTR_EL0
USERENR_ER = 1 << 3            # read event counters, read/write PMSELR_EL0
USERENR_MASK = 0xF

# Common event numbers (the PMU chapter's "common events" list).
SW_INCR = 0x00
INST_RETIRED = 0x08
CPU_CYCLES = 0x11
INSTRUCTION_EVENTS = (INST_RETIRED, CPU_CYCLES)
# PMCEID0_EL0 bit n: common event n is counted. PMCEID1 (events
# 0x20-0x3F) is all zero.
PMCEID0 = (1 << SW_INCR) | (1 << INST_RETIRED) | (1 << CPU_CYCLES)
PMCEID1 = 0

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
EVENT_COUNTERS_MASK = (1 << COUNTERS) - 1
COUNTER_BITS = EVENT_COUNTERS_MASK | (1 << CYCLE_INDEX)
CYCLE_DIVIDER = 64             # PMCR_EL0.D


def _pmu(crm: int, op2: int, op1: int = 3) -> SysReg:
    return SysReg(3, op1, 9, crm, op2)


# The registers, as MRS/MSR encode them (their descriptions in D19): op0=3,
# op1=3 (op1=0 for the EL1-only PMINTEN*), CRn=9, CRm=12..14.
PMCR_EL0 = _pmu(12, 0)
PMCNTENSET_EL0 = _pmu(12, 1)
PMCNTENCLR_EL0 = _pmu(12, 2)
PMOVSCLR_EL0 = _pmu(12, 3)
PMSWINC_EL0 = _pmu(12, 4)
PMSELR_EL0 = _pmu(12, 5)
PMCEID0_EL0 = _pmu(12, 6)
PMCEID1_EL0 = _pmu(12, 7)
PMCCNTR_EL0 = _pmu(13, 0)
PMXEVTYPER_EL0 = _pmu(13, 1)
PMXEVCNTR_EL0 = _pmu(13, 2)
PMUSERENR_EL0 = _pmu(14, 0)
PMOVSSET_EL0 = _pmu(14, 3)
PMINTENSET_EL1 = _pmu(14, 1, op1=0)
PMINTENCLR_EL1 = _pmu(14, 2, op1=0)


def pmevcntr(n: int) -> SysReg:
    """PMEVCNTR<n>_EL0: op0=3 op1=3 CRn=14 CRm=0b10:n[4:3] op2=n[2:0]."""
    return SysReg(3, 3, 14, 8 | (n >> 3), n & 7)


def pmevtyper(n: int) -> SysReg:
    """PMEVTYPER<n>_EL0: CRm=0b11:n[4:3]; n = 31 is PMCCFILTR_EL0."""
    return SysReg(3, 3, 14, 12 | (n >> 3), n & 7)


PMCCFILTR_EL0 = pmevtyper(CYCLE_INDEX)
_EL1_ONLY = (PMINTENSET_EL1, PMINTENCLR_EL1)


def is_pmu_register(reg: SysReg) -> bool:
    """The registers this model answers (what _hooks.c passes up for the PMU)."""
    if reg.op0 != 3:
        return False
    if reg.op1 == 3 and reg.crn == 9:
        return 12 <= reg.crm <= 14
    if reg.op1 == 3 and reg.crn == 14:
        return reg.crm >= 8
    return reg in _EL1_ONLY


class Pmu:
    def __init__(self, set_level: Callable[[bool], None], trace=None, cpu: Optional[int] = None):
        """`set_level(level)` drives this CPU's PMU interrupt (PPI 23)."""
        self._set_level = set_level
        self._trace = trace
        self._cpu = cpu
        self.level = False
        self.reset()

    def reset(self, now: int = 0) -> None:
        """Warm reset: most PMU fields reset to UNKNOWN values; zero, as QEMU."""
        self.pmcr = 0
        self.cnten = 0
        self.ovs = 0
        self.inten = 0
        self.userenr = 0
        self.selr = 0
        self.evtyper: List[int] = [0] * COUNTERS
        self.evcntr: List[int] = [0] * COUNTERS
        self.ccntr = 0
        self.ccfiltr = 0
        self._cycle_residue = 0            # instructions toward the next tick when PMCR.D
        self._last = now                   # instruction count the counters are up to date at
        # interrupt_due(), kept current: the machine looks at it after every slice.
        self.due: Optional[int] = None
        self._update_level()

    # -- snapshots ------------------------------------------------------------
    def save_state(self) -> dict:
        """Registers as of `last`, the core's instruction count they were brought up to.

        The core saves its own count, so a restored PMU reads the same values
        at the same restored count. `due` is not saved: it is interrupt_due()
        at every return, and may need more than 64 bits (a 64-bit cycle
        counter counting every 64th instruction).
        """
        return {
            "pmcr": self.pmcr, "cnten": self.cnten, "ovs": self.ovs, "inten": self.inten,
            "userenr": self.userenr, "selr": self.selr, "evtyper": list(self.evtyper),
            "evcntr": list(self.evcntr), "ccntr": self.ccntr, "ccfiltr": self.ccfiltr,
            "cycle_residue": self._cycle_residue, "last": self._last, "level": self.level,
        }

    def restore_state(self, state: dict) -> None:
        if len(state["evcntr"]) != COUNTERS or len(state["evtyper"]) != COUNTERS:
            raise ValueError(f"the snapshot's PMU has {len(state['evcntr'])} event counters, "
                             f"this one {COUNTERS}")
        self.pmcr = state["pmcr"]
        self.cnten = state["cnten"]
        self.ovs = state["ovs"]
        self.inten = state["inten"]
        self.userenr = state["userenr"]
        self.selr = state["selr"]
        self.evtyper = list(state["evtyper"])
        self.evcntr = list(state["evcntr"])
        self.ccntr = state["ccntr"]
        self.ccfiltr = state["ccfiltr"]
        self._cycle_residue = state["cycle_residue"]
        self._last = state["last"]
        self.level = bool(state["level"])           # the line as last driven
        self.due = self.interrupt_due()

    # -- counting ---------------------------------------------------------------

    @staticmethod
    def _filtered_out(filt: int, el: int) -> bool:
        return bool(filt & (FILTER_P if el == 1 else FILTER_U))

    def _counts_instructions(self, index: int) -> bool:
        if not self.pmcr & PMCR_E or not self.cnten & (1 << index):
            return False
        if index == CYCLE_INDEX:
            filt = self.ccfiltr
        else:
            filt = self.evtyper[index]
            if filt & EVTCOUNT_MASK not in INSTRUCTION_EVENTS:
                return False
        return (filt & (FILTER_P | FILTER_U)) != (FILTER_P | FILTER_U)

    def _cycle_ticks(self, instructions: int) -> int:
        if not self.pmcr & PMCR_D:
            return instructions
        total = self._cycle_residue + instructions
        self._cycle_residue = total % CYCLE_DIVIDER
        return total // CYCLE_DIVIDER

    def sync(self, now: int) -> None:
        """Bring every counter up to `now` (the core's instructions retired), noting overflows."""
        delta = now - self._last
        self._last = now
        if delta <= 0:
            return
        overflowed = 0
        for index in range(COUNTERS):
            if self._counts_instructions(index):
                value = self.evcntr[index] + delta
                if value > MASK32:
                    overflowed |= 1 << index
                self.evcntr[index] = value & MASK32
        if self._counts_instructions(CYCLE_INDEX):
            ticks = self._cycle_ticks(delta)
            width = MASK64 if self.pmcr & PMCR_LC else MASK32
            if (self.ccntr & width) + ticks > width:
                overflowed |= 1 << CYCLE_INDEX
            self.ccntr = (self.ccntr + ticks) & MASK64
        self._overflow(overflowed)
        self.due = self.interrupt_due()

    def _overflow(self, bits: int) -> None:
        if not bits:
            return
        self.ovs |= bits
        if self._trace is not None:
            self._trace.emit("pmu.overflow", self._cpu, counters=bits)
        self._update_level()

    def _update_level(self) -> None:
        # CheckForPMUOverflow (pseudocode): PMCR.E and an enabled
        # interrupt for a counter whose overflow flag is set.
        level = bool(self.pmcr & PMCR_E) and bool(self.ovs & self.inten)
        if level != self.level:
            self.level = level
            if self._trace is not None:
                self._trace.emit("pmu.irq", self._cpu, level=level)
            self._set_level(level)

    def interrupt_due(self) -> Optional[int]:
        """The instruction count at which the next overflow interrupt would be raised, if any."""
        if not self.pmcr & PMCR_E:
            return None
        best: Optional[int] = None
        for index in range(COUNTERS):
            bit = 1 << index
            if self.inten & bit and not self.ovs & bit and self._counts_instructions(index):
                left = MASK32 + 1 - self.evcntr[index]
                best = left if best is None else min(best, left)
        bit = 1 << CYCLE_INDEX
        if self.inten & bit and not self.ovs & bit and self._counts_instructions(CYCLE_INDEX):
            width = MASK64 if self.pmcr & PMCR_LC else MASK32
            left = width + 1 - (self.ccntr & width)
            if self.pmcr & PMCR_D:
                left = left * CYCLE_DIVIDER - self._cycle_residue
            best = left if best is None else min(best, left)
        return None if best is None else self._last + best

    def _software_increment(self, mask: int, el: int) -> None:
        overflowed = 0
        for index in range(COUNTERS):
            bit = 1 << index
            if (mask & bit and self.pmcr & PMCR_E and self.cnten & bit
                    and self.evtyper[index] & EVTCOUNT_MASK == SW_INCR
                    and not self._filtered_out(self.evtyper[index], el)):
                value = self.evcntr[index] + 1
                if value > MASK32:
                    overflowed |= bit
                self.evcntr[index] = value & MASK32
        self._overflow(overflowed)

    # -- register access --------------------------------------------------------

    def access(self, reg: SysReg, el: int, is_write: bool, value: int,
               now: int) -> Optional[int]:
        """The value read (0 for a write), or None: UNDEFINED or trapped, left to Unicorn.

        `now` is the number of instructions the core retired before this one.
        """
        if el == 0 and not self._el0_may(reg, is_write):
            return None
        self.sync(now)
        result = self._write(reg, value, el) if is_write else self._read(reg)
        if result is not None:
            self._update_level()
            self.due = self.interrupt_due()
        return result

    def _el0_may(self, reg: SysReg, is_write: bool) -> bool:
        """PMUSERENR_EL0's controls (PMUSERENR_EL0 and each register's EL0 access rules)."""
        if reg in _EL1_ONLY:
            return False
        if reg == PMUSERENR_EL0:
            return not is_write                # always readable at EL0, never writable
        if self.userenr & USERENR_EN:
            return True
        if reg == PMSWINC_EL0:
            return bool(self.userenr & USERENR_SW)
        if reg == PMCCNTR_EL0:
            return not is_write and bool(self.userenr & USERENR_CR)
        if reg == PMSELR_EL0:
            return bool(self.userenr & USERENR_ER)
        if reg == PMXEVCNTR_EL0 or self._event_counter_index(reg) is not None:
            return not is_write and bool(self.userenr & USERENR_ER)
        return False

    @staticmethod
    def _event_counter_index(reg: SysReg) -> Optional[int]:
        if reg.op1 == 3 and reg.crn == 14 and 8 <= reg.crm <= 11:
            return ((reg.crm & 3) << 3) | reg.op2
        return None

    @staticmethod
    def _event_type_index(reg: SysReg) -> Optional[int]:
        if reg.op1 == 3 and reg.crn == 14 and reg.crm >= 12:
            return ((reg.crm & 3) << 3) | reg.op2
        return None

    def _read(self, reg: SysReg) -> Optional[int]:
        if reg == PMCR_EL0:
            return PMCR_ID | self.pmcr
        if reg in (PMCNTENSET_EL0, PMCNTENCLR_EL0):
            return self.cnten
        if reg in (PMOVSSET_EL0, PMOVSCLR_EL0):
            return self.ovs
        if reg in _EL1_ONLY:
            return self.inten
        if reg == PMSELR_EL0:
            return self.selr
        if reg == PMCEID0_EL0:
            return PMCEID0
        if reg == PMCEID1_EL0:
            return PMCEID1
        if reg == PMCCNTR_EL0:
            return self.ccntr
        if reg == PMUSERENR_EL0:
            return self.userenr
        if reg == PMXEVTYPER_EL0:
            return self._read_type(self.selr)
        if reg == PMXEVCNTR_EL0:
            # SEL >= N (or 31) is CONSTRAINED UNPREDICTABLE: RAZ, as QEMU.
            return self.evcntr[self.selr] if self.selr < COUNTERS else 0
        index = self._event_counter_index(reg)
        if index is not None:
            return self.evcntr[index] if index < COUNTERS else None
        index = self._event_type_index(reg)
        if index is not None and (index < COUNTERS or index == CYCLE_INDEX):
            return self._read_type(index)
        return None                            # PMSWINC is write-only: UNDEFINED

    def _read_type(self, index: int) -> int:
        if index == CYCLE_INDEX:
            return self.ccfiltr
        return self.evtyper[index] if index < COUNTERS else 0

    def _write(self, reg: SysReg, value: int, el: int) -> Optional[int]:
        if reg == PMCR_EL0:
            self._write_pmcr(value)
        elif reg == PMCNTENSET_EL0:
            self.cnten |= value & COUNTER_BITS
        elif reg == PMCNTENCLR_EL0:
            self.cnten &= ~value
        elif reg == PMOVSSET_EL0:
            self._overflow(value & COUNTER_BITS)
        elif reg == PMOVSCLR_EL0:
            self.ovs &= ~value
        elif reg == PMINTENSET_EL1:
            self.inten |= value & COUNTER_BITS
        elif reg == PMINTENCLR_EL1:
            self.inten &= ~value
        elif reg == PMSWINC_EL0:
            self._software_increment(value & EVENT_COUNTERS_MASK, el)
        elif reg == PMSELR_EL0:
            self.selr = value & 0x1F
        elif reg == PMCCNTR_EL0:
            self.ccntr = value & MASK64
            self._cycle_residue = 0
        elif reg == PMUSERENR_EL0:
            self.userenr = value & USERENR_MASK
        elif reg == PMXEVTYPER_EL0:
            self._write_type(self.selr, value)
        elif reg == PMXEVCNTR_EL0:
            if self.selr < COUNTERS:
                self.evcntr[self.selr] = value & MASK32
        else:
            return self._write_numbered(reg, value)
        return 0

    def _write_numbered(self, reg: SysReg, value: int) -> Optional[int]:
        index = self._event_counter_index(reg)
        if index is not None:
            if index >= COUNTERS:
                return None
            self.evcntr[index] = value & MASK32
            return 0
        index = self._event_type_index(reg)
        if index is not None and (index < COUNTERS or index == CYCLE_INDEX):
            self._write_type(index, value)
            return 0
        return None                            # PMCEID0/1 are read-only: UNDEFINED

    def _write_type(self, index: int, value: int) -> None:
        if index == CYCLE_INDEX:
            self.ccfiltr = value & CCFILTR_WRITABLE
        elif index < COUNTERS:
            self.evtyper[index] = value & EVTYPER_WRITABLE

    def _write_pmcr(self, value: int) -> None:
        if value & PMCR_P:
            self.evcntr = [0] * COUNTERS
        if value & PMCR_C:
            self.ccntr = 0
            self._cycle_residue = 0
        self.pmcr = value & PMCR_WRITABLE
