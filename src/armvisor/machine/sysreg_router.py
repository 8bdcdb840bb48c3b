"""Where a trapped timer, GIC CPU-interface or PMU register access goes, for a board or a VM.

The C hooks (cpu/_hooks.c) pass up only the MRS/MSR of the EL1 generic
timers (Arm ARM D11.2), the ICC_* registers (IHI0069 12.2) and the PMU's
(devices/pmu.py); everything else runs natively. One router serves the
physical board's CPUs and each VM's vCPUs, so both see the same register
behaviour.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Dict, Optional, Sequence

from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic.registers import EL3_ICC_REGISTERS
from armvisor.devices.pmu import Pmu, is_pmu_register
from armvisor.devices.timer import GenericTimer
from armvisor.machine.el2_registers import NOT_MINE

# handler(core, el, is_write, value): the value read (0 for a write), None if UNDEFINED.
SysregHandler = Callable[[object, int, bool, int], Optional[int]]


class SysregRouter:
    def __init__(self, gic, timers: Sequence[GenericTimer],
                 timer_written: Callable[[object], None], pmus: Sequence[Pmu], el2=None):
        """`timer_written(core)` runs after a write to `core`'s timer: new deadlines.
        `el2` (machine/el2_registers.py) answers first when the guest owns EL2."""
        self.gic = gic
        self.timers = timers
        self._timer_written = timer_written
        self.pmus = pmus
        self.el2 = el2
        self._handlers: Dict[SysReg, SysregHandler] = {}

    def handler(self, reg: SysReg) -> SysregHandler:
        """What answers `reg`'s accesses: `handler(core, el, is_write, value)` gives the
        value read (0 for a write), or None when the access is UNDEFINED.

        Resolved once per register, since the cores call it on every trapped
        access (the ICC registers of every interrupt): deciding what a
        register is took most of an access's time in Python.
        """
        found = self._handlers.get(reg)
        if found is None:
            found = self._handlers[reg] = self._resolve(reg)
        return found

    def _resolve(self, reg: SysReg) -> SysregHandler:
        if is_pmu_register(reg):
            return partial(self._pmu_access, reg)
        if GenericTimer.is_timer_register(reg):
            own = partial(self._timer_access, reg)
        elif reg in EL3_ICC_REGISTERS:
            own = partial(self._el3_icc_access, reg)
        else:
            own = partial(self._icc_access, reg)
        if self.el2 is None:
            return own
        return partial(self._el2_first, reg, own)

    def _el2_first(self, reg: SysReg, own: SysregHandler, core, el: int, is_write: bool,
                   value: int) -> Optional[int]:
        if el == 0:
            return None
        answer = self.el2.access(core, reg, el, is_write, value)
        return own(core, el, is_write, value) if answer is NOT_MINE else answer

    def _timer_access(self, reg: SysReg, core, el: int, is_write: bool,
                      value: int) -> Optional[int]:
        if el == 0:
            return None              # EL1 registers; Unicorn raises the EL0 trap itself
        answer = self.timers[core.index].access(reg, is_write, value)
        if is_write:
            self._timer_written(core)           # new deadlines
        return answer

    def _icc_access(self, reg: SysReg, core, el: int, is_write: bool,
                    value: int) -> Optional[int]:
        if el == 0:
            return None
        if is_write:
            return 0 if self.gic.icc_write(core.index, reg, value) else None
        return self.gic.icc_read(core.index, reg)

    def _el3_icc_access(self, reg: SysReg, core, el: int, is_write: bool,
                        value: int) -> Optional[int]:
        if el < 3:
            return None
        return self._icc_access(reg, core, el, is_write, value)

    def _pmu_access(self, reg: SysReg, core, el: int, is_write: bool,
                    value: int) -> Optional[int]:
        pmu = self.pmus[core.index]
        now = core.retired_at_access
        answer = pmu.access(reg, el, is_write, value, now)
        if pmu.due is not None:
            # End the slice where the overflow interrupt is due (after_slice raises it).
            core.shorten_slice(max(0, pmu.due - now))
        return answer

    # -- around each slice (the board's and the hypervisor's run turns) ---------

    def slice_budget(self, core, budget: int) -> int:
        """`budget`, cut short where `core`'s PMU overflow interrupt is due."""
        due = self.pmus[core.index].due
        return budget if due is None else min(budget, max(0, due - core.executed))

    def after_slice(self, core) -> None:
        """Raise a PMU overflow interrupt that fell due in the slice (a safe point)."""
        pmu = self.pmus[core.index]
        if pmu.due is not None and core.executed >= pmu.due:
            pmu.sync(core.executed)
