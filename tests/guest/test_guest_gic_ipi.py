"""gic_ipi: SGIs by target list, to self and by broadcast between every pair of CPUs."""

import pytest

ROUNDS = 10


@pytest.mark.guest
@pytest.mark.parametrize("smp", [2, 4, 8])
def test_gic_ipi(run_guest, smp):
    run = run_guest("gic_ipi", smp)
    run.assert_passed()
    others = (smp - 1) * ROUNDS
    expected = [f"cpu {cpu} received: unicast {others} self {ROUNDS} broadcast {others} unclaimed 0"
                for cpu in range(smp)]
    expected += [
        f"unicast SGIs received: got {smp * others} expect {smp * others} ok",
        f"self SGIs received: got {smp * ROUNDS} expect {smp * ROUNDS} ok",
        f"broadcast SGIs received: got {smp * others} expect {smp * others} ok",
        "sender/receiver pairs wrong: got 0 expect 0 ok",
        "SGIs with an empty mailbox: got 0 expect 0 ok",
        f"secondaries powered off: got {smp - 1} expect {smp - 1} ok",
    ]
    run.assert_lines(expected)
