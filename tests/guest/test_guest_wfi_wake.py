"""wfi_wake: WFI ends on an SGI with IRQs unmasked and with PSTATE.I set."""

import pytest

ROUNDS = 50


@pytest.mark.guest
def test_wfi_wake(run_guest):
    run = run_guest("wfi_wake", 2)
    run.assert_passed()
    run.assert_lines([
        f"unmasked: woken: got {ROUNDS} expect {ROUNDS} ok",
        f"masked: woken: got {ROUNDS} expect {ROUNDS} ok",
        f"masked: SGI pending after WFI: got {ROUNDS} expect {ROUNDS} ok",
        "masked: handler ran before unmask: got 0 expect 0 ok",
        f"masked: handler ran after unmask: got {ROUNDS} expect {ROUNDS} ok",
        f"handler runs: got {2 * ROUNDS} expect {2 * ROUNDS} ok",
        "handler on the wrong cpu: got 0 expect 0 ok",
    ])
    # The sleeper must really have gone through WFI, not only spun.
    slept = run.line_starting("WFI executed ")
    rounds_slept = int(slept.split(", ")[1].split()[0])
    assert 0 < rounds_slept <= 2 * ROUNDS, run.describe()
