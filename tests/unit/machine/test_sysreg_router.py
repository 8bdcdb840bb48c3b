"""Where a trapped timer or GIC CPU-interface register access goes (machine/sysreg_router.py)."""

from __future__ import annotations

from types import SimpleNamespace

from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic.registers import ICC_CTLR_EL3, ICC_IAR1_EL1
from armvisor.devices.timer import CNTV_CTL_EL0, GenericTimer
from armvisor.machine.el2_registers import NOT_MINE
from armvisor.machine.sysreg_router import SysregRouter

IAR1, CTLR_EL3, CNTV_CTL = SysReg(*ICC_IAR1_EL1), SysReg(*ICC_CTLR_EL3), SysReg(*CNTV_CTL_EL0)
CORE = SimpleNamespace(index=1)


class Gic:
    def __init__(self):
        self.calls = []

    def icc_read(self, cpu, reg):
        self.calls.append(("read", cpu, reg))
        return 27

    def icc_write(self, cpu, reg, value):
        self.calls.append(("write", cpu, reg, value))
        return True


def timer():
    return GenericTimer(set_ppi=lambda intid, level: None, counter=lambda: 1000)


class El2:
    """The guest's EL2 registers: answers CNTV_CTL_EL0 reads, nothing else."""

    def access(self, core, reg, el, is_write, value):
        return 99 if reg == CNTV_CTL and not is_write else NOT_MINE


def router(el2=None):
    timer_writes = []
    r = SysregRouter(Gic(), [timer(), timer()], timer_writes.append, pmus=[], el2=el2)
    return r, timer_writes


def test_a_registers_handler_is_worked_out_once():
    r, _ = router()
    assert r.handler(IAR1) is r.handler(SysReg(3, 0, 12, 12, 0))


def test_icc_accesses_go_to_the_accessing_cpus_interface():
    r, _ = router()
    assert r.handler(IAR1)(CORE, 1, False, 0) == 27
    assert r.handler(IAR1)(CORE, 1, True, 5) == 0
    assert r.gic.calls == [("read", 1, IAR1), ("write", 1, IAR1, 5)]


def test_el0_and_el3_only_registers_are_undefined_below_their_level():
    r, _ = router()
    assert r.handler(IAR1)(CORE, 0, False, 0) is None
    assert r.handler(CNTV_CTL)(CORE, 0, False, 0) is None
    assert r.handler(CTLR_EL3)(CORE, 2, False, 0) is None
    assert r.handler(CTLR_EL3)(CORE, 3, False, 0) == 27
    assert r.gic.calls == [("read", 1, CTLR_EL3)]


def test_a_timer_write_reaches_the_cpus_timer_and_rearms_it():
    r, timer_writes = router()
    assert r.handler(CNTV_CTL)(CORE, 1, True, 1) == 0          # ENABLE
    assert timer_writes == [CORE]
    assert r.handler(CNTV_CTL)(CORE, 1, False, 0) & 1 == 1
    assert r.timers[0].read(CNTV_CTL) & 1 == 0                # CPU 0's untouched


def test_the_guests_el2_answers_first_and_passes_on_what_is_not_its():
    r, _ = router(el2=El2())
    assert r.handler(CNTV_CTL)(CORE, 1, False, 0) == 99
    assert r.handler(CNTV_CTL)(CORE, 1, True, 1) == 0          # NOT_MINE: the timer's
    assert r.timers[1].read(CNTV_CTL) & 1 == 1
    assert r.handler(IAR1)(CORE, 0, False, 0) is None
