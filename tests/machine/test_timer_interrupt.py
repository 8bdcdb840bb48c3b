"""A timer the guest has seen fire has its interrupt pending, on the board and in a VM.

The Arm ARM ties ISTATUS to the timer's output signal (D11.2.4: "the
interrupt is asserted when ... ISTATUS is 1 and IMASK is 0"), so a guest
that reads ISTATUS=1 and then asks the GIC must find the PPI pending.
kvm-unit-tests' `timer` does exactly that (spin on ISTATUS, then check that
its handler ran). Each program below spins on CNT*_CTL_EL0 until ISTATUS
and then, without ending its slice in any other way, reads GICR_ISPENDR0
and ICC_IAR1_EL1 with interrupts masked. QEMU prints the same ("PI").
"""

from __future__ import annotations

import subprocess

import pytest

from armvisor.devtools import qemu
from tests.machine.test_cli import armvisor
from tests.machine.tinyguest import GICR_ISPENDR0, build, enable_ppi

MODES = {"bare": ["--psci-conduit", "hvc"], "hyp": ["--hyp"]}

# (timer, its CTL and CVAL registers, its PPI: Arm BSA's assignments, as on QEMU virt)
TIMERS = {"virtual": ("cntv_ctl_el0", "cntv_cval_el0", 27),
          "physical": ("cntp_ctl_el0", "cntp_cval_el0", 30)}


def program(ctl: str, cval: str, intid: int) -> str:
    return enable_ppi(intid) + f"""
    isb
    // Fire in 2000 ticks (32 us), then poll: IRQs stay masked (DAIF from reset).
    mrs x3, cntvct_el0
    add x3, x3, #2000
    msr {cval}, x3
    mov x3, #1
    msr {ctl}, x3
1:  mrs x3, {ctl}
    tbz x3, #2, 1b
    ldr w4, [x1, #{GICR_ISPENDR0}]
    mrs x5, s3_0_c12_c12_0        // ICC_IAR1_EL1
    // 'P' if the PPI is pending in the redistributor, 'I' if IAR1 gives it.
    mov w6, #'-'
    mov w7, #'P'
    tst w4, #{1 << intid:#x}
    csel w7, w7, w6, ne
    putc w7
    mov w7, #'I'
    cmp x5, #{intid}
    csel w7, w7, w6, eq
    putc w7
    ldr x0, =0x84000008           // SYSTEM_OFF over HVC, the conduit of both modes here
    hvc #0
"""


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("timer", list(TIMERS))
def test_istatus_seen_means_the_interrupt_is_pending(tmp_path, mode, timer):
    guest = build(tmp_path, program(*TIMERS[timer]), f"{timer}_istatus")
    # A long slice: nothing but the timer itself may end it before the checks.
    proc = armvisor("run", "--kernel", guest, *MODES[mode], "--slice", "10000000",
                    "--timeout", "30")
    assert (proc.returncode, proc.stdout) == (0, "PI"), proc.stderr


@pytest.mark.parametrize("timer", list(TIMERS))
def test_the_program_prints_the_same_on_qemu(tmp_path, timer):
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed: nothing to compare with")
    guest = build(tmp_path, program(*TIMERS[timer]), f"{timer}_istatus")
    # Without virtualization=on QEMU's PSCI conduit is HVC, as in the runs above.
    proc = subprocess.run(qemu.virt_command(kernel=guest), capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "PI"), proc.stderr
