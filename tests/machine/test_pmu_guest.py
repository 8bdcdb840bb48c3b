"""The PMU as a guest sees it, on the board and in a VM, with and without --deterministic.

One program checks, printing a letter for each check that holds ('-' if not):
B  two back-to-back PMCCNTR_EL0 reads differ by exactly one instruction
   (the C hook counts to the instruction inside a block, not to its end);
C  PMCCNTR_EL0 around a 100-iteration loop counts its 201 instructions;
E  the same with INST_RETIRED on event counter 5 (a counter Unicorn itself
   lacks, so skipping its access must move PC on);
S  three PMSWINC_EL0 writes count 3 on a SW_INCR counter;
I  an INST_RETIRED counter preset 1000 below overflow, with its interrupt
   enabled (PMINTENSET_EL1: a register Unicorn has, so PC must not move on
   twice), makes PPI 23 pending in the redistributor and ICC_IAR1_EL1 gives 23;
O  PMOVSCLR_EL0 shows that counter's overflow.
"""

from __future__ import annotations

import pytest

from armvisor.cpu.models import PMU_COUNTERS
from armvisor.cpu.sysregs import MDCR_EL2
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from tests.machine.test_cli import armvisor
from tests.machine.tinyguest import GICR_ISPENDR0, build, enable_ppi

MODES = {"bare": ["--psci-conduit", "hvc"], "hyp": ["--hyp"]}
PMU_INTID = 23
EXPECTED = "BCESIO"


def check(letter: str, cond: str) -> str:
    """Print `letter` if the flags say `cond` (after a cmp), '-' otherwise."""
    return f"""
    mov w6, #'-'
    mov w7, #'{letter}'
    csel w7, w7, w6, {cond}
    putc w7
"""


PROGRAM = f"""
    // Cycle counter and counter 5 (INST_RETIRED) on, everything reset.
    ldr x1, =(1 << 31) | (1 << 5)
    msr pmcntenset_el0, x1
    mov x1, #0x08                 // INST_RETIRED
    msr s3_3_c14_c12_5, x1        // PMEVTYPER5_EL0
    mov x1, #0x7                  // E | P | C
    msr pmcr_el0, x1
    isb
    mrs x3, pmccntr_el0
    mrs x4, pmccntr_el0
    sub x5, x4, x3
    cmp x5, #1
{check('B', 'eq')}
    mov x2, #100
    mrs x3, pmccntr_el0
    mrs x8, s3_3_c14_c8_5         // PMEVCNTR5_EL0, one instruction later
1:  subs x2, x2, #1
    b.ne 1b
    mrs x4, pmccntr_el0
    mrs x9, s3_3_c14_c8_5
    sub x5, x4, x3
    cmp x5, #202                  // the loop, the first PMEVCNTR5 read and the first read
{check('C', 'eq')}
    sub x5, x9, x8
    cmp x5, #202
{check('E', 'eq')}
    // SW_INCR on counter 0.
    msr pmevtyper0_el0, xzr
    mov x1, #1
    msr pmcntenset_el0, x1
    msr pmswinc_el0, x1
    msr pmswinc_el0, x1
    msr pmswinc_el0, x1
    mrs x5, pmevcntr0_el0
    cmp x5, #3
{check('S', 'eq')}
    // Overflow interrupt: PPI 23 enabled in the GIC, IRQs stay masked.
{enable_ppi(PMU_INTID)}    mov x2, #0x08
    msr pmevtyper1_el0, x2        // INST_RETIRED
    ldr x2, =0xFFFFFC17           // 1000 below overflow
    msr pmevcntr1_el0, x2
    mov x2, #2
    msr pmintenset_el1, x2
    msr pmcntenset_el0, x2
    isb
    ldr x3, =200000
2:  ldr w4, [x1, #{GICR_ISPENDR0}]
    tst w4, #{1 << PMU_INTID:#x}
    b.ne 3f
    subs x3, x3, #1
    b.ne 2b
3:  mrs x5, s3_0_c12_c12_0        // ICC_IAR1_EL1
    cmp x5, #{PMU_INTID}
{check('I', 'eq')}
    mrs x5, pmovsclr_el0
    cmp x5, #2
{check('O', 'eq')}
    ldr x0, =0x84000008           // SYSTEM_OFF over HVC, the conduit of both modes here
    hvc #0
"""


@pytest.mark.parametrize("deterministic", [False, True], ids=["host-clock", "deterministic"])
@pytest.mark.parametrize("mode", list(MODES))
def test_pmu_counts_instructions_sw_incr_and_interrupts(tmp_path, mode, deterministic):
    guest = build(tmp_path, PROGRAM, "pmu")
    extra = ["--deterministic"] if deterministic else []
    proc = armvisor("run", "--kernel", guest, *MODES[mode], *extra, "--timeout", "30")
    assert (proc.returncode, proc.stdout) == (0, EXPECTED), proc.stderr


def test_mdcr_el2_gives_every_counter_to_el1_and_el0(tmp_path):
    # Unicorn resets MDCR_EL2 to 0 (HPMN = 0: every event counter EL2's);
    # anything Unicorn executes natively must see the guest own all N.
    guest = build(tmp_path, "    system_off\n", "off")
    machine = BareBoard(MachineConfig(kernel=str(guest), smp=1))
    try:
        assert machine.lanes[0].core.read_sysreg(MDCR_EL2) == PMU_COUNTERS
    finally:
        machine.close()
