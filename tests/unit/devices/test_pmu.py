"""The PMU model: counters from instruction counts, SW_INCR, overflow and its interrupt, EL0 rules."""

from __future__ import annotations

import pytest

from armvisor.devices.pmu import (COUNTERS, CPU_CYCLES, CYCLE_INDEX, FILTER_P, FILTER_U,
                                  INST_RETIRED, PMCCFILTR_EL0, PMCCNTR_EL0, PMCEID0_EL0,
                                  PMCEID1_EL0, PMCNTENCLR_EL0, PMCNTENSET_EL0, PMCR_C, PMCR_D,
                                  PMCR_E, PMCR_EL0, PMCR_LC, PMCR_P, PMCR_X, PMINTENCLR_EL1,
                                  PMINTENSET_EL1, PMOVSCLR_EL0, PMOVSSET_EL0, PMSELR_EL0,
                                  PMSWINC_EL0, PMUSERENR_EL0, PMXEVCNTR_EL0, PMXEVTYPER_EL0,
                                  SW_INCR, USERENR_CR, USERENR_EN, USERENR_ER, USERENR_SW, Pmu,
                                  is_pmu_register, pmevcntr, pmevtyper)
from armvisor.cpu.sysregs import SysReg

CYCLES = 1 << CYCLE_INDEX


class Cpu:
    """A PMU and the instruction count it is read at."""

    def __init__(self):
        self.lines = []
        self.now = 0
        self.pmu = Pmu(self.lines.append)
        self.lines.clear()

    def read(self, reg, el=1):
        return self.pmu.access(reg, el, False, 0, self.now)

    def write(self, reg, value, el=1):
        return self.pmu.access(reg, el, True, value, self.now)

    def run(self, instructions):
        self.now += instructions


def test_the_encodings_match_the_arm_arm():
    assert PMCR_EL0 == SysReg(3, 3, 9, 12, 0)
    assert PMCCNTR_EL0 == SysReg(3, 3, 9, 13, 0)
    assert PMINTENSET_EL1 == SysReg(3, 0, 9, 14, 1)
    assert pmevcntr(0) == SysReg(3, 3, 14, 8, 0)
    assert pmevcntr(30) == SysReg(3, 3, 14, 11, 6)
    assert pmevtyper(9) == SysReg(3, 3, 14, 13, 1)
    assert PMCCFILTR_EL0 == SysReg(3, 3, 14, 15, 7)


def test_which_registers_are_the_pmu_s():
    assert all(is_pmu_register(r) for r in (PMCR_EL0, PMUSERENR_EL0, PMINTENCLR_EL1,
                                            pmevcntr(5), PMCCFILTR_EL0))
    # The timers (CRn 14, CRm 2/3), the counters (CRm 0) and PMMIR_EL1 are not.
    assert not any(is_pmu_register(r) for r in (SysReg(3, 3, 14, 3, 1), SysReg(3, 3, 14, 0, 2),
                                                SysReg(3, 0, 9, 14, 6), SysReg(3, 0, 4, 6, 0)))


def test_pmcr_reads_the_a57_id_and_six_counters():
    cpu = Cpu()
    pmcr = cpu.read(PMCR_EL0)
    assert pmcr >> 24 == 0x41 and (pmcr >> 11) & 0x1F == COUNTERS == 6
    cpu.write(PMCR_EL0, PMCR_E | PMCR_LC | PMCR_X | PMCR_P | PMCR_C)
    assert cpu.read(PMCR_EL0) & 0xFF == PMCR_E | PMCR_LC     # P, C write-only; X RAZ/WI


def test_pmceid_advertises_only_what_counts():
    cpu = Cpu()
    assert cpu.read(PMCEID0_EL0) == (1 << SW_INCR) | (1 << INST_RETIRED) | (1 << CPU_CYCLES)
    assert cpu.read(PMCEID1_EL0) == 0
    assert cpu.write(PMCEID0_EL0, 0) is None                 # read-only: UNDEFINED


def test_cycle_counter_counts_instructions_only_while_enabled():
    cpu = Cpu()
    cpu.write(PMCNTENSET_EL0, CYCLES)
    cpu.run(100)
    assert cpu.read(PMCCNTR_EL0) == 0                        # PMCR.E clear
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.run(250)
    assert cpu.read(PMCCNTR_EL0) == 250
    cpu.run(1)
    assert cpu.read(PMCCNTR_EL0) == 251                      # back-to-back reads increase
    cpu.write(PMCNTENCLR_EL0, CYCLES)
    cpu.run(50)
    assert cpu.read(PMCCNTR_EL0) == 251
    assert cpu.read(PMCNTENSET_EL0) == 0


def test_cycle_counter_divider_and_reset():
    cpu = Cpu()
    cpu.write(PMCNTENSET_EL0, CYCLES)
    cpu.write(PMCR_EL0, PMCR_E | PMCR_D)
    cpu.run(64 * 3 + 10)
    assert cpu.read(PMCCNTR_EL0) == 3
    cpu.run(54)
    assert cpu.read(PMCCNTR_EL0) == 4                        # the 10 left over were kept
    cpu.write(PMCR_EL0, PMCR_E | PMCR_C)
    assert cpu.read(PMCCNTR_EL0) == 0


def test_event_counters_count_inst_retired_and_cpu_cycles_not_other_events():
    cpu = Cpu()
    cpu.write(pmevtyper(0), INST_RETIRED)
    cpu.write(pmevtyper(1), CPU_CYCLES)
    cpu.write(pmevtyper(2), 0x13)                             # MEM_ACCESS: not modelled
    cpu.write(PMCNTENSET_EL0, 0b111)
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.run(1000)
    assert [cpu.read(pmevcntr(i)) for i in range(3)] == [1000, 1000, 0]
    cpu.write(PMCR_EL0, PMCR_E | PMCR_P)                      # P resets event counters only
    assert cpu.read(pmevcntr(0)) == 0


def test_a_filter_excluding_el1_and_el0_stops_counting():
    cpu = Cpu()
    cpu.write(pmevtyper(0), INST_RETIRED | FILTER_P | FILTER_U)
    cpu.write(pmevtyper(1), INST_RETIRED | FILTER_U)          # EL0 only excluded: still counts
    cpu.write(PMCNTENSET_EL0, 0b11)
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.run(10)
    assert [cpu.read(pmevcntr(0)), cpu.read(pmevcntr(1))] == [0, 10]


def test_selected_counter_views_and_type_write_mask():
    cpu = Cpu()
    cpu.write(PMSELR_EL0, 3)
    cpu.write(PMXEVTYPER_EL0, 0xFFFF_FFFF)
    assert cpu.read(pmevtyper(3)) == FILTER_P | FILTER_U | 0x3FF   # NSK/NSU/NSH/M RES0
    cpu.write(PMXEVCNTR_EL0, 0x1_DEAD_BEEF)
    assert cpu.read(pmevcntr(3)) == 0xDEAD_BEEF                      # 32-bit counters
    cpu.write(PMSELR_EL0, 31)
    cpu.write(PMXEVTYPER_EL0, FILTER_P)
    assert cpu.read(PMCCFILTR_EL0) == FILTER_P
    assert cpu.read(PMXEVCNTR_EL0) == 0


def test_counters_beyond_n_are_undefined():
    cpu = Cpu()
    assert cpu.read(pmevcntr(COUNTERS)) is None
    assert cpu.write(pmevtyper(COUNTERS), 0) is None
    assert cpu.read(PMSWINC_EL0) is None                      # write-only


def test_sw_incr_counts_writes_when_enabled_and_not_filtered():
    cpu = Cpu()
    cpu.write(pmevtyper(0), SW_INCR | FILTER_U)
    cpu.write(pmevtyper(1), SW_INCR | FILTER_P)
    cpu.write(PMCNTENSET_EL0, 0b11)
    cpu.write(PMSWINC_EL0, 0b11)
    assert cpu.read(pmevcntr(0)) == 0                         # PMCR.E clear
    cpu.write(PMCR_EL0, PMCR_E)
    for _ in range(100):
        cpu.write(PMSWINC_EL0, 0b11)
    cpu.run(500)                                              # instructions do not count
    assert [cpu.read(pmevcntr(0)), cpu.read(pmevcntr(1))] == [100, 0]   # EL1 filtered on #1


def test_sw_incr_overflow_sets_the_flag():
    cpu = Cpu()
    cpu.write(pmevtyper(0), SW_INCR)
    cpu.write(PMCNTENSET_EL0, 1)
    cpu.write(pmevcntr(0), 0xFFFF_FFF0)
    cpu.write(PMCR_EL0, PMCR_E)
    for _ in range(100):
        cpu.write(PMSWINC_EL0, 1)
    assert cpu.read(pmevcntr(0)) == 0x54
    assert cpu.read(PMOVSCLR_EL0) == 1
    cpu.write(PMOVSCLR_EL0, 1)
    assert cpu.read(PMOVSSET_EL0) == 0


def test_overflow_raises_the_interrupt_only_when_enabled():
    cpu = Cpu()
    cpu.write(pmevtyper(0), INST_RETIRED)
    cpu.write(pmevcntr(0), 0xFFFF_FF00)
    cpu.write(PMCNTENSET_EL0, 1)
    cpu.write(PMCR_EL0, PMCR_E)
    assert cpu.pmu.interrupt_due() is None                    # no interrupt enabled
    cpu.write(PMINTENSET_EL1, 1)
    assert cpu.pmu.interrupt_due() == cpu.now + 0x100
    cpu.run(0xFF)
    cpu.pmu.sync(cpu.now)
    assert cpu.lines == [] and cpu.pmu.ovs == 0
    cpu.run(1)
    cpu.pmu.sync(cpu.now)
    assert cpu.pmu.ovs == 1 and cpu.lines == [True]
    assert cpu.read(PMINTENCLR_EL1) == 1
    cpu.write(PMOVSCLR_EL0, 1)
    assert cpu.lines == [True, False]


def test_disabling_the_pmu_lowers_the_line_and_pmovsset_raises_it():
    cpu = Cpu()
    cpu.write(PMINTENSET_EL1, CYCLES)
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.write(PMOVSSET_EL0, CYCLES)
    assert cpu.lines == [True]
    cpu.write(PMCR_EL0, 0)
    assert cpu.lines == [True, False]


def test_cycle_counter_overflows_at_32_bits_unless_lc():
    cpu = Cpu()
    cpu.write(PMCNTENSET_EL0, CYCLES)
    cpu.write(PMCCNTR_EL0, 0xFFFF_FFFF)
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.run(1)
    assert cpu.read(PMCCNTR_EL0) == 1 << 32 and cpu.read(PMOVSSET_EL0) == CYCLES
    cpu.write(PMOVSCLR_EL0, CYCLES)
    cpu.write(PMCCNTR_EL0, 0xFFFF_FFFF)
    cpu.write(PMCR_EL0, PMCR_E | PMCR_LC)
    cpu.run(1)
    assert cpu.read(PMOVSSET_EL0) == 0
    cpu.write(PMINTENSET_EL1, CYCLES)
    assert cpu.pmu.interrupt_due() == cpu.now + (1 << 64) - (1 << 32)


@pytest.mark.parametrize("reg,is_write,bit", [
    (PMSWINC_EL0, True, USERENR_SW), (PMCCNTR_EL0, False, USERENR_CR),
    (pmevcntr(0), False, USERENR_ER), (PMSELR_EL0, True, USERENR_ER),
    (PMCR_EL0, False, USERENR_EN), (PMCR_EL0, True, USERENR_EN)])
def test_el0_access_follows_pmuserenr(reg, is_write, bit):
    cpu = Cpu()
    access = (lambda: cpu.write(reg, 0, el=0)) if is_write else (lambda: cpu.read(reg, el=0))
    assert access() is None                                   # trapped: Unicorn raises it
    cpu.write(PMUSERENR_EL0, bit)
    assert access() is not None


def test_el0_never_reaches_pminten_or_writes_pmuserenr():
    cpu = Cpu()
    cpu.write(PMUSERENR_EL0, USERENR_EN)
    assert cpu.read(PMUSERENR_EL0, el=0) == USERENR_EN
    assert cpu.write(PMUSERENR_EL0, 0, el=0) is None
    assert cpu.read(PMINTENSET_EL1, el=0) is None
    assert cpu.read(PMCCNTR_EL0, el=0) == 0
    assert cpu.write(pmevcntr(0), 5, el=0) == 0               # EN allows writes too
    cpu.write(PMUSERENR_EL0, USERENR_ER)
    assert cpu.write(pmevcntr(0), 5, el=0) is None            # ER is read-only access


def test_reset_clears_counters_and_lowers_the_line():
    cpu = Cpu()
    cpu.write(PMINTENSET_EL1, 1)
    cpu.write(PMCR_EL0, PMCR_E)
    cpu.write(PMOVSSET_EL0, 1)
    cpu.pmu.reset(now=cpu.now)
    assert cpu.lines[-1] is False and cpu.read(PMOVSSET_EL0) == 0 and cpu.read(PMCR_EL0) & 1 == 0


def test_trace_reports_overflow_and_interrupt():
    events = []

    class Trace:
        def emit(self, kind, cpu, **fields):
            events.append((kind, cpu, fields))

    pmu = Pmu(lambda level: None, trace=Trace(), cpu=2)
    pmu.access(PMINTENSET_EL1, 1, True, 1, 0)
    pmu.access(PMCR_EL0, 1, True, PMCR_E, 0)
    pmu.access(PMOVSSET_EL0, 1, True, 1, 0)
    assert ("pmu.overflow", 2, {"counters": 1}) in events
    assert ("pmu.irq", 2, {"level": True}) in events
