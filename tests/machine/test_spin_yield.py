"""A CPU that spins on WFE or YIELD gives the rest of its slice to the CPUs that can
run (patches/unicorn/0006 reports both instructions to the C interrupt hook), so
the CPU it waits for runs now rather than after the rest of a long slice."""

from __future__ import annotations

import pytest

import armvisor
from armvisor.cpu.core import YIELD_WINDOW
from tests.machine.test_unicorn_patches import require_patch
from tests.machine.tinyguest import build

SLICE = 1_000_000


def program(hint: str) -> str:
    """CPU 1 comes up and waits for `go`; CPU 0 sets it and spins on `hint` until CPU 1
    says `done`, counting its rounds in x5."""
    return f"""
    ldr x0, =0xc4000003            // PSCI CPU_ON(cpu 1, secondary, 0)
    mov x1, #1
    adr x2, secondary
    mov x3, #0
    smc #0
    adr x6, flags
1:  ldr w7, [x6]                   // ready
    cbz w7, 1b
    mov w7, #1
    str w7, [x6, #4]               // go
    mov x5, #0
2:  {hint}
    add x5, x5, #1
    ldr w7, [x6, #8]               // done
    cbz w7, 2b
    system_off

secondary:
    adr x6, flags
    mov w7, #1
    str w7, [x6]                   // ready
3:  ldr w7, [x6, #4]               // go
    cbz w7, 3b
    str w7, [x6, #8]               // done
4:  wfi
    b 4b
    .balign 8
flags: .word 0, 0, 0
"""


def _patched():
    require_patch("yield-reports", "0006")


@pytest.mark.parametrize("hint", ["wfe", "yield"])
@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_a_spinning_cpu_lets_the_other_cpu_run(tmp_path, mode, hint):
    _patched()
    kernel = str(build(tmp_path, program(hint), f"spin_{hint}"))
    if mode == "bare":
        m = armvisor.Machine(kernel=kernel, smp=2, slice=SLICE)
    else:                          # two vCPUs pinned on two pCPUs
        m = armvisor.Machine(vms=[armvisor.VM(kernel=kernel, smp=2)], slice=SLICE)
    assert m.run(timeout=30) == 0
    # It spins for YIELD_WINDOW instructions (about 500 rounds); without the
    # early end it would spin through the rest of its million-instruction
    # slice (about 200,000 rounds) before CPU 1 ran.
    assert m.cpus[0].regs.x[5] <= YIELD_WINDOW // 4 + 10


def test_a_cpu_alone_spins_on_without_leaving_its_slice(tmp_path):
    """With no other CPU to run, WFE/YIELD do not end the slice (no exit to Python)."""
    _patched()
    kernel = str(build(tmp_path, """
    mov x5, #0
1:  yield
    add x5, x5, #1
    cmp x5, #1000
    b.ne 1b
    system_off
""", "spin_alone"))
    m = armvisor.Machine(kernel=kernel, smp=1, slice=SLICE)
    m.run(timeout=30)
    core = m.cpus[0].core
    assert core.yields == 1000
    assert core.exits.get("yield", 0) == 0
