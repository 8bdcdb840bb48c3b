"""smc_tlb: cross-CPU self-modifying code and TLB shootdown, 200 rounds each."""

import pytest


@pytest.mark.guest
@pytest.mark.parametrize("smp", [2, 4])
def test_smc_tlb(run_guest, smp):
    run = run_guest("smc_tlb", smp)
    run.assert_passed()
    run.assert_lines(["cpu 0 own checks bad: got 0 expect 0 ok"] + [
        f"cpu {cpu}: code rounds 200 stale 0, remap rounds 200 stale 0" for cpu in range(1, smp)])
