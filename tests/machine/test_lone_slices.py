"""On the host clock, a CPU that is the only one with code to run (the others off or
in WFI) keeps running past its slice (runloop.py, LONE_SLICE_TICKS): a turn of the
run loop costs 10-20 us of Python, and nothing else could have run in between."""

from __future__ import annotations

import pytest

from tests.machine.tinyguest import build, two_cpu_machine

SLICE = 2_000
LOOPS = 1_000_000                  # two instructions each: 1,000 slices of SLICE

PROGRAM = f"""
    ldr x0, =0xc4000003            // PSCI CPU_ON(cpu 1, parked, 0)
    mov x1, #1
    adr x2, parked
    mov x3, #0
    smc #0
    ldr x1, ={LOOPS}
1:  subs x1, x1, #1
    b.ne 1b
    system_off

parked:                            // CPU 1: waits for an interrupt that never comes
2:  wfi
    b 2b
"""


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_a_cpu_that_runs_alone_takes_few_turns(tmp_path, mode):
    m = two_cpu_machine(str(build(tmp_path, PROGRAM, "lone")), mode, SLICE)
    assert m.run(timeout=60) == 0
    # One turn per SLICE would be over 1,000. A lone slice lasts up to 5 ms of
    # the learnt rate: a few turns here, about 40 on a host 30 times slower.
    assert m.board.loop.turns < 200
