"""An interrupt made pending for another CPU ends the sender's slice at its next block,
so the target takes it now rather than after the rest of a long slice."""

from __future__ import annotations

import pytest

import armvisor
from tests.machine.tinyguest import GICD_BASE, GICD_CTLR_ARE_NS_GRP1, build, two_cpu_machine

SLICE = 1_000_000
GICR_CPU1 = 0x080A_0000 + 0x2_0000          # CPU 1's redistributor (IHI0069 12.10)
GICR_WAKER = 0x14

PROGRAM = f"""
    ldr x1, ={GICD_BASE:#x}
    mov w2, #{GICD_CTLR_ARE_NS_GRP1}
    str w2, [x1]
    ldr x0, =0xc4000003            // PSCI CPU_ON(cpu 1, secondary, 0)
    mov x1, #1
    adr x2, secondary
    mov x3, #0
    smc #0
    adr x6, ready
1:  ldr w7, [x6]                   // wait until CPU 1 can take the SGI
    cbz w7, 1b
    mov x5, #0                     // counts from the SGI until CPU 1 acknowledges
    ldr x2, =0x01000002            // ICC_SGI1R_EL1: INTID 1 to Aff0 1
    msr s3_0_c12_c11_5, x2
    isb
2:  add x5, x5, #1
    b 2b

secondary:
    ldr x1, ={GICR_CPU1:#x}
    str wzr, [x1, #{GICR_WAKER}]   // ProcessorSleep = 0
    add x1, x1, #0x10000           // SGI/PPI frame
    mov w2, #2
    str w2, [x1, #0x80]            // GICR_IGROUPR0: SGI 1 group 1
    str w2, [x1, #0x100]           // GICR_ISENABLER0
    mov x2, #0xff
    msr s3_0_c4_c6_0, x2           // ICC_PMR_EL1
    mov x2, #1
    msr s3_0_c12_c12_7, x2         // ICC_IGRPEN1_EL1
    isb
    adr x6, ready
    mov w7, #1
    str w7, [x6]
3:  mrs x3, s3_0_c12_c12_0         // ICC_IAR1_EL1, IRQs masked: poll
    cmp x3, #1023
    b.eq 3b
4:  wfi
    b 4b
    .balign 8
ready: .word 0
"""


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_the_target_takes_the_sgi_before_the_senders_slice_ends(tmp_path, mode):
    m = two_cpu_machine(str(build(tmp_path, PROGRAM, "ipi_yield")), mode, SLICE)
    m.run(until=armvisor.Event("gic.ack", intid=1), timeout=30)
    # Without the early end CPU 0 would count through the rest of its
    # million-instruction slice before CPU 1 ran.
    assert m.cpus[0].regs.x[5] < 10_000
