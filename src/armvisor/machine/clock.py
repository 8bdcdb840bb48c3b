"""The time every core and device of a machine agrees on.

The generic counter (CNTPCT/CNTVCT) runs on the host clock, as in QEMU, or,
in deterministic mode, on instructions: one tick per instruction the running
core retires (counted in C, see cpu/_hooks.c), with idle time jumping to the
next deadline. Timers, the RTC and trace timestamps read this clock, so a
deterministic run repeats exactly, timestamps included.

On the host clock, the clock also learns how many instructions the cores
retire per tick, so the run loop can size a slice in time (RunLoop: a CPU
that runs alone keeps going until the next deadline).
"""

from __future__ import annotations

import time
from typing import Optional

from armvisor.devices.timer import COUNTER_HZ, host_counter

# What the RTC says at power-on in deterministic mode: 2000-01-01T00:00:00Z
# (QEMU's -rtc clock=vm starts from the host's date; a fixed one repeats).
DETERMINISTIC_EPOCH = 946_684_800

# Host clock: the rate is learnt from at least this much running (50 us in 16
# ns ticks), one slice or several short ones together: a slice of a few
# instructions (a WFI, --slice 1) is mostly the clock read's granularity.
RATE_SAMPLE_MIN_TICKS = 3_125
# How much the newest slice moves the estimate: a quarter, so one slow slice
# (the JIT translating a new module, a burst of exits) pulls it down quickly
# and one fast one does not throw it up.
RATE_WEIGHT = 0.25


class Clock:
    def __init__(self, deterministic: bool = False):
        self.deterministic = deterministic
        self.vtime = 0                       # deterministic: the count between slices
        self._running = None                 # the core inside a slice (reads its own count)
        # Host mode: what the guest's counter adds to the host's, so a restored
        # machine's counter goes on from where the snapshot left it.
        self._offset = 0
        self._host_origin = host_counter()
        # Host mode: where the running core's slice started (its count, the counter)
        # and instructions per tick, learnt from slices (None until one is long enough).
        self._entered = (0, 0)
        self._unlearnt = (0, 0)              # instructions and ticks not yet in the rate
        self.rate: Optional[float] = None

    def counter(self) -> int:
        """CNTPCT as the guest sees it now."""
        if not self.deterministic:
            return host_counter() + self._offset
        if self._running is not None:
            return self._running.virtual_now()
        return self.vtime

    def wall(self) -> float:
        """Wall-clock seconds for the RTC: the host's, or virtual from a fixed epoch."""
        if not self.deterministic:
            return time.time()
        return DETERMINISTIC_EPOCH + self.counter() / COUNTER_HZ

    def seconds(self) -> float:
        """Seconds since the machine was made, for trace timestamps."""
        if not self.deterministic:
            return (host_counter() + self._offset - self._host_origin) / COUNTER_HZ
        return self.counter() / COUNTER_HZ

    # -- slices ------------------------------------------------------------------

    def enter(self, core) -> None:
        """`core` starts a slice; in deterministic mode its counter continues from vtime."""
        if self.deterministic:
            core.start_virtual_clock(self.vtime)
        else:
            if self._offset:
                core.offset_host_counter(self._offset)
            self._entered = (core.executed, host_counter())
        self._running = core

    def leave(self, core) -> None:
        self._running = None
        if self.deterministic:
            self.vtime = core.virtual_now()
            return
        executed, at = self._entered
        instructions, ticks = self._unlearnt
        instructions += core.executed - executed
        ticks += host_counter() - at
        if ticks < RATE_SAMPLE_MIN_TICKS:
            self._unlearnt = (instructions, ticks)
            return
        self._unlearnt = (0, 0)
        sample = instructions / ticks
        self.rate = sample if self.rate is None else self.rate + RATE_WEIGHT * (sample - self.rate)

    @property
    def running(self):
        return self._running

    def ticks_left(self, deadline: Optional[int]) -> Optional[int]:
        """Deterministic mode: instructions until `deadline` (a slice ends there)."""
        if not self.deterministic or deadline is None:
            return None
        return max(1, deadline - self.vtime)

    def instructions_within(self, ticks: int) -> Optional[int]:
        """About how many instructions a core retires in `ticks` counter ticks: exactly
        `ticks` in deterministic mode, the learnt rate on the host clock (None before
        a slice long enough to learn from)."""
        if self.deterministic:
            return ticks
        return None if self.rate is None else int(ticks * self.rate)

    def advance_to(self, deadline: int) -> None:
        """Deterministic mode, nothing runnable: jump to the next deadline."""
        self.vtime = max(self.vtime, deadline)

    def wall_to_counter(self, wall_deadline: float) -> int:
        """A wall-clock deadline (the RTC's) in counter ticks."""
        return self.counter() + max(0, int((wall_deadline - self.wall()) * COUNTER_HZ) + 1)

    def host_seconds_until(self, deadline: int) -> float:
        """Host mode: how long to sleep until the counter reaches `deadline`."""
        return max(deadline - self.counter(), 0) / COUNTER_HZ

    # -- snapshots (between slices) -------------------------------------------------

    def save_state(self) -> dict:
        return {"deterministic": self.deterministic, "counter": self.counter(),
                "origin": self._host_origin}

    def restore_state(self, state: dict) -> None:
        if state["deterministic"] != self.deterministic:
            kind = "deterministic" if state["deterministic"] else "host-clock"
            raise ValueError(f"the snapshot is of a {kind} run; restore it with the same "
                             "--deterministic setting")
        if self.deterministic:
            self.vtime = state["counter"]
        else:
            self._offset = state["counter"] - host_counter()
            self._host_origin = state["origin"]
