"""Arm PrimeCell real time clock PL031 (DDI0224), register level, as QEMU's virt has it.

RTCDR counts seconds of the host wall clock (`clock`, injectable) plus the
offset the guest sets by writing RTCLR. When the counter reaches RTCMR the
match interrupt latches in RTCRIS. The model has no timer thread: the machine
asks `next_deadline()` when the match will happen (in `clock` seconds) and
calls `tick()` once that time has come; every register access also checks.

As in QEMU, the RTC is always running: RTCCR reads 1 and writes are ignored.
"""

from __future__ import annotations

import time
from armvisor.devices.primecell import PrimeCell
from typing import Callable, Optional

# Register offsets (DDI0224 3.2, table 3-1).
RTCDR = 0x000
RTCMR = 0x004
RTCLR = 0x008
RTCCR = 0x00C
RTCIMSC = 0x010
RTCRIS = 0x014
RTCMIS = 0x018
RTCICR = 0x01C

# PeriphID0..3: part 0x031, designer 0x41 (Arm), revision 1, as QEMU reports.
PL031_ID_BYTES = (0x31, 0x10, 0x14, 0x00)

RTC_INT = 1 << 0                   # the single match interrupt bit (DDI0224 3.3.5-8)
RTCCR_START = 1 << 0               # RTC enabled (DDI0224 3.3.4)
COUNTER_MASK = 0xFFFF_FFFF         # 32-bit counter


class Pl031(PrimeCell):
    PERIPH_ID_BYTES = PL031_ID_BYTES

    def __init__(self, clock: Callable[[], float] = time.time,
                 on_irq_change: Optional[Callable[[bool], None]] = None,
                 trace=None, name: str = "rtc"):
        self._clock = clock
        super().__init__(name, trace, on_irq_change)
        self.reset()

    def reset(self) -> None:
        self.offset = 0                # added to the host seconds; set through RTCLR
        self.mr = 0
        self.lr = 0
        self.imsc = 0
        self.ris = 0
        self.irq_level = False
        self._deadline: Optional[float] = None
        self._update_irq()

    def save_state(self) -> dict:
        # The deadline is in `clock` seconds, as next_deadline() gives it.
        state = super().save_state()
        state.update(offset=self.offset, mr=self.mr, lr=self.lr, imsc=self.imsc, ris=self.ris,
                     deadline=self._deadline)
        return state

    def restore_state(self, state: dict) -> None:
        super().restore_state(state)
        self.offset = state["offset"]
        self.mr = state["mr"]
        self.lr = state["lr"]
        self.imsc = state["imsc"]
        self.ris = state["ris"]
        self._deadline = state["deadline"]

    # ------------------------------------------------------------------ time
    def counter(self) -> int:
        return (int(self._clock()) + self.offset) & COUNTER_MASK

    def next_deadline(self) -> Optional[float]:
        """Host-clock time at which RTCDR will equal RTCMR, or None if no match is pending."""
        return self._deadline

    def tick(self) -> None:
        """Latch the match interrupt if its time has come."""
        if self._deadline is not None and self._clock() >= self._deadline:
            self._deadline = None
            self._raise_match()

    def _arm_alarm(self) -> None:
        now = self._clock()
        # Seconds until the counter next equals MR; the counter wraps at 2^32.
        ticks = (self.mr - ((int(now) + self.offset) & COUNTER_MASK)) & COUNTER_MASK
        if ticks == 0:
            self._deadline = None
            self._raise_match()
        else:
            self._deadline = float(int(now) + ticks)

    def _raise_match(self) -> None:
        self.ris |= RTC_INT
        if self._trace is not None:
            self._trace.emit("rtc.match", None, device=self._name, value=self.mr)
        self._update_irq()

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        if size not in (1, 2, 4) or offset % 4:
            self.bad_access("read", offset, size)
            return 0
        self.tick()
        return self._read_reg(offset) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if size not in (1, 2, 4) or offset % 4:
            self.bad_access("write", offset, size)
            return
        self.tick()
        self._write_reg(offset, value & ((1 << (8 * size)) - 1))

    def _read_reg(self, offset: int) -> int:
        if offset == RTCDR:
            return self.counter()
        if offset == RTCMR:
            return self.mr
        if offset == RTCLR:
            return self.lr
        if offset == RTCCR:
            return RTCCR_START
        if offset == RTCIMSC:
            return self.imsc
        if offset == RTCRIS:
            return self.ris
        if offset == RTCMIS:
            return self.ris & self.imsc
        ident = self.id_register(offset)
        if ident is not None:
            return ident
        self.bad_access("read", offset, 4)
        return 0

    def _write_reg(self, offset: int, value: int) -> None:
        if offset == RTCLR:
            # Loading the counter keeps it ticking with the host clock from the new value.
            self.lr = value
            self.offset = (value - int(self._clock())) & COUNTER_MASK
            self._arm_alarm()
        elif offset == RTCMR:
            self.mr = value
            self._arm_alarm()
        elif offset == RTCCR:
            pass                       # always enabled, as in QEMU
        elif offset == RTCIMSC:
            self.imsc = value & RTC_INT
            self._update_irq()
        elif offset == RTCICR:
            self.ris &= ~value
            self._update_irq()
        elif offset in (RTCDR, RTCRIS, RTCMIS):
            pass                       # read-only registers
        else:
            self.bad_access("write", offset, 4)

    # -------------------------------------------------------------- interrupt
    def _update_irq(self) -> None:
        self.set_irq(bool(self.ris & self.imsc))
