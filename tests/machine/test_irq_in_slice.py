"""An interrupt that becomes pending for the running CPU (an SGI to itself, the
next interrupt after an EOI) is taken where the block ends, in the same slice:
the other CPUs do not run in between."""

from __future__ import annotations

import pytest

import armvisor
from tests.machine.tinyguest import build, enable_ppi, two_cpu_machine

SLICE = 1_000_000
GICR_WAKER = 0x080A_0000 + 0x14             # CPU 0's redistributor (IHI0069 12.11.44)
SGI = 1

PROGRAM = f"""
    ldr x1, ={GICR_WAKER:#x}
    str wzr, [x1]                  // ProcessorSleep = 0
{enable_ppi(SGI)}
    adr x1, vectors
    msr vbar_el1, x1
    ldr x0, =0xc4000003            // PSCI CPU_ON(cpu 1, counter, 0)
    mov x1, #1
    adr x2, counter
    mov x3, #0
    smc #0
    adr x4, count
1:  ldr x6, [x4]                   // wait until CPU 1 counts
    cbz x6, 1b
    msr daifclr, #2                // IRQs unmasked
    ldr x6, [x4]                   // CPU 1's count when the SGI is sent
    ldr x2, =0x01000001            // ICC_SGI1R_EL1: INTID 1 to Aff0 0, this CPU
    msr s3_0_c12_c11_5, x2
    isb
2:  b 2b

counter:                           // CPU 1: counts in memory, never stops
    adr x4, count
3:  ldr x5, [x4]
    add x5, x5, #1
    str x5, [x4]
    b 3b

    .balign 2048
vectors:
    .skip 0x280                    // current EL with SPx, IRQ
    ldr x7, [x4]                   // CPU 1's count when the SGI is taken
    mrs x8, s3_0_c12_c12_0         // ICC_IAR1_EL1
4:  b 4b
    .balign 8
count: .quad 0
"""


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_an_interrupt_raised_for_the_running_cpu_is_taken_in_its_slice(tmp_path, mode):
    m = two_cpu_machine(str(build(tmp_path, PROGRAM, "irq_in_slice")), mode, SLICE)
    m.run(until=armvisor.Event("gic.ack", intid=SGI), timeout=30)
    regs = m.cpus[0].regs
    assert regs.x[8] == SGI
    # Ending the slice to raise the line gave CPU 1 a whole slice of counting
    # (hundreds of thousands) before CPU 0 took its own SGI.
    assert regs.x[7] == regs.x[6]
