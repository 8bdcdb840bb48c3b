"""Where a trapped timer or GIC CPU-interface register access goes, for a board or a VM.

The C hooks (cpu/_hooks.c) pass up only the MRS/MSR of the EL1 generic
timers (Arm ARM D11.2) and the ICC_* registers (IHI0069 12.2); everything
else runs natively. One router serves the physical board's CPUs and each
VM's vCPUs, so both see the same register behaviour.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from armvisor.cpu.sysregs import SysReg
from armvisor.devices.timer import GenericTimer


class SysregRouter:
    def __init__(self, gic, timers: Sequence[GenericTimer],
                 timer_written: Callable[[object], None]):
        """`timer_written(core)` runs after a write to `core`'s timer: new deadlines."""
        self.gic = gic
        self.timers = timers
        self._timer_written = timer_written

    def access(self, core, reg: SysReg, el: int, is_write: bool, value: int) -> Optional[int]:
        """The value read (0 for a write), or None when the access is UNDEFINED."""
        if el == 0:
            return None              # EL1 registers; Unicorn raises the EL0 trap itself
        cpu = core.index
        if GenericTimer.is_timer_register(reg):
            timer = self.timers[cpu]
            if is_write:
                timer.write(reg, value)
                self._timer_written(core)
                return 0
            return timer.read(reg)
        if is_write:
            return 0 if self.gic.icc_write(cpu, reg, value) else None
        return self.gic.icc_read(cpu, reg)
