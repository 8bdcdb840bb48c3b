"""The EL1 generic timers of one CPU: virtual (PPI 27) and physical (PPI 30).

Unicorn counts CNTVCT/CNTPCT natively (host monotonic clock at 62.5 MHz) but
drops the guest's writes to CNTV_/CNTP_ CTL, CVAL and TVAL and never raises
an interrupt (UNICORN-FACTS.md). So these registers are trapped and kept here;
the machine compares the counter with the deadlines and drives the PPIs.
Arm ARM D11.2 "The AArch64 view of the Generic Timer" and D19.11 (registers).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Tuple


# Unicorn's counter frequency (CNTFRQ_EL0 reads 62.5 MHz) and what it counts.
COUNTER_HZ = 62_500_000
NS_PER_TICK = 1_000_000_000 // COUNTER_HZ


def host_counter() -> int:
    """The count CNTVCT_EL0/CNTPCT_EL0 read natively: QEMU's clock in 16 ns ticks."""
    return time.monotonic_ns() // NS_PER_TICK


# CNT*_CTL_EL0 bits (D19.11.14 CNTV_CTL_EL0).
CTL_ENABLE = 1 << 0
CTL_IMASK = 1 << 1
CTL_ISTATUS = 1 << 2
MASK64 = (1 << 64) - 1

# The registers, as (op0, op1, CRn, CRm, op2).
CNTP_TVAL_EL0 = (3, 3, 14, 2, 0)
CNTP_CTL_EL0 = (3, 3, 14, 2, 1)
CNTP_CVAL_EL0 = (3, 3, 14, 2, 2)
CNTV_TVAL_EL0 = (3, 3, 14, 3, 0)
CNTV_CTL_EL0 = (3, 3, 14, 3, 1)
CNTV_CVAL_EL0 = (3, 3, 14, 3, 2)
# The EL2 physical timer (D19.11, CNTHP_*_EL2), for a guest that owns EL2.
CNTHP_TVAL_EL2 = (3, 4, 14, 2, 0)
CNTHP_CTL_EL2 = (3, 4, 14, 2, 1)
CNTHP_CVAL_EL2 = (3, 4, 14, 2, 2)

# The timers' interrupt IDs recommended by the Arm Base System Architecture
# (DEN0094, "PPI assignments"), which QEMU's virt board uses.
VIRT_TIMER_INTID = 27          # EL1 virtual timer
PHYS_TIMER_INTID = 30          # EL1 non-secure physical timer
HYP_TIMER_INTID = 26           # EL2 physical timer


def _sign_extend32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


class TimerChannel:
    """One comparator: CTL, CVAL, the TVAL view of them, and its interrupt line."""

    def __init__(self, intid: int, set_level: Callable[[bool], None]):
        self.intid = intid
        self._set_level = set_level
        self.ctl = 0
        self.cval = 0
        self.level = False
        # What this timer's count lags the physical count by: CNTVOFF_EL2 for
        # the virtual timer (D11.2.4), 0 for the others.
        self.offset = 0

    def condition_met(self, now: int) -> bool:
        """ISTATUS: enabled and the counter has reached CVAL (an unsigned comparison)."""
        return bool(self.ctl & CTL_ENABLE) and ((now - self.offset) & MASK64) >= self.cval

    def read(self, field: int, now: int) -> int:
        # ISTATUS is the state of the timer's output (D11.2.4), so the line must
        # agree with what the guest reads now, not only at the next slice: a
        # guest that sees ISTATUS=1 and then asks the GIC finds the PPI pending.
        # A rising line ends the slice; the interrupt is taken at that safe point.
        self.update(now)
        if field == 1:
            return self.ctl | (CTL_ISTATUS if self.condition_met(now) else 0)
        if field == 2:
            return self.cval
        return (self.cval - now + self.offset) & 0xFFFF_FFFF    # TVAL: a signed 32-bit downcount

    def write(self, field: int, value: int, now: int) -> None:
        if field == 1:
            self.ctl = value & (CTL_ENABLE | CTL_IMASK)  # ISTATUS is read-only
        elif field == 2:
            self.cval = value & MASK64
        else:
            self.cval = (now - self.offset + _sign_extend32(value)) & MASK64
        self.update(now)

    def update(self, now: int) -> None:
        level = self.condition_met(now) and not self.ctl & CTL_IMASK
        if level != self.level:
            self.level = level
            self._set_level(level)

    def deadline(self) -> Optional[int]:
        """The count at which the line will rise, if it is armed and low."""
        if self.ctl & (CTL_ENABLE | CTL_IMASK) == CTL_ENABLE and not self.level:
            return (self.cval + self.offset) & MASK64
        return None

    def reset(self) -> None:
        self.ctl = 0
        self.cval = 0
        self.update(0)

    def save_state(self) -> dict:
        # `level` is the line as last driven: the GIC keeps its own view of it.
        state = {"ctl": self.ctl, "cval": self.cval, "level": self.level}
        if self.offset:
            state["offset"] = self.offset
        return state

    def restore_state(self, state: dict) -> None:
        self.ctl = state["ctl"]
        self.cval = state["cval"]
        self.level = bool(state["level"])
        self.offset = state.get("offset", 0)


class GenericTimer:
    """A CPU's EL1 virtual and physical timers, and the EL2 physical timer (CNTHP_*), which
    only a guest that owns EL2 reaches (--virtualization)."""

    def __init__(self, set_ppi: Callable[[int, bool], None],
                 counter: Callable[[], int] = host_counter):
        self.counter = counter
        self.virt = TimerChannel(VIRT_TIMER_INTID, lambda lv: set_ppi(VIRT_TIMER_INTID, lv))
        self.phys = TimerChannel(PHYS_TIMER_INTID, lambda lv: set_ppi(PHYS_TIMER_INTID, lv))
        self.hyp = TimerChannel(HYP_TIMER_INTID, lambda lv: set_ppi(HYP_TIMER_INTID, lv))
        # register -> (channel, field: 0 TVAL, 1 CTL, 2 CVAL)
        self._registers: Dict[Tuple[int, ...], Tuple[TimerChannel, int]] = {
            CNTV_TVAL_EL0: (self.virt, 0), CNTV_CTL_EL0: (self.virt, 1),
            CNTV_CVAL_EL0: (self.virt, 2), CNTP_TVAL_EL0: (self.phys, 0),
            CNTP_CTL_EL0: (self.phys, 1), CNTP_CVAL_EL0: (self.phys, 2),
            CNTHP_TVAL_EL2: (self.hyp, 0), CNTHP_CTL_EL2: (self.hyp, 1),
            CNTHP_CVAL_EL2: (self.hyp, 2),
        }

    @staticmethod
    def is_timer_register(reg: Tuple[int, ...]) -> bool:
        return reg[:3] == (3, 3, 14) and reg[3] in (2, 3) and reg[4] <= 2

    @staticmethod
    def is_el2_timer_register(reg: Tuple[int, ...]) -> bool:
        return reg[:3] == (3, 4, 14) and reg[3] == 2 and reg[4] <= 2

    def set_virtual_offset(self, offset: int) -> None:
        """CNTVOFF_EL2 as the guest's EL2 set it: the virtual timer compares CNTVCT with it."""
        offset &= MASK64
        if offset != self.virt.offset:
            self.virt.offset = offset
            self.virt.update(self.counter())

    def read(self, reg: Tuple[int, ...]) -> int:
        channel, field = self._registers[tuple(reg)]
        return channel.read(field, self.counter())

    def write(self, reg: Tuple[int, ...], value: int) -> None:
        channel, field = self._registers[tuple(reg)]
        channel.write(field, value, self.counter())

    def access(self, reg: Tuple[int, ...], is_write: bool, value: int) -> int:
        """An MRS (the value read) or an MSR (0) of one of this CPU's timer registers."""
        if is_write:
            self.write(reg, value)
            return 0
        return self.read(reg)

    def update(self, now: int) -> None:
        self.virt.update(now)
        self.phys.update(now)
        self.hyp.update(now)

    def next_deadline(self) -> Optional[int]:
        deadlines = [d for d in (self.virt.deadline(), self.phys.deadline(),
                                 self.hyp.deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def reset(self) -> None:
        self.virt.reset()
        self.phys.reset()
        self.hyp.reset()
        self.virt.offset = 0

    def save_state(self) -> dict:
        """The comparators only: the counter they compare with is the clock's."""
        state = {"virt": self.virt.save_state(), "phys": self.phys.save_state()}
        if self.hyp.ctl or self.hyp.cval:
            state["hyp"] = self.hyp.save_state()
        return state

    def restore_state(self, state: dict) -> None:
        self.virt.restore_state(state["virt"])
        self.phys.restore_state(state["phys"])
        if "hyp" in state:
            self.hyp.restore_state(state["hyp"])
        else:
            self.hyp.ctl = self.hyp.cval = 0
            self.hyp.level = False
