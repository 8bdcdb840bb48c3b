"""smp_demo: Linux-style bring-up of every CPU and a shared LDXR/STXR counter."""

import pytest

ROUNDS = 1000


def virt_mpidr(cpu: int) -> int:
    # QEMU virt with GICv3: 16 CPUs per cluster (Aff0 = n % 16, Aff1 = n / 16).
    return ((cpu // 16) << 8) | (cpu % 16)


@pytest.mark.guest
@pytest.mark.parametrize("smp", [1, 2, 4, 8, 64])
def test_smp_demo(run_guest, smp):
    run = run_guest("smp_demo", smp)
    run.assert_passed()
    expected = [f"smp_demo: bringing up {smp} cpus"]
    expected += [f"cpu {cpu} (mpidr 0x{virt_mpidr(cpu):x}) online at EL1" for cpu in range(1, smp)]
    expected += [
        f"counter: {smp * ROUNDS} (expect {smp * ROUNDS} = {smp} cpus x {ROUNDS})",
        f"shared counter: got {smp * ROUNDS} expect {smp * ROUNDS} ok",
        f"secondaries powered off: got {smp - 1} expect {smp - 1} ok",
        f"all {smp} cpus done",
    ]
    run.assert_lines(expected)
    # The boot CPU prints the per-CPU lines in logical order.
    online = [line for line in run.lines if line.startswith("cpu ") and "online at EL1" in line]
    assert [int(line.split()[1]) for line in online] == list(range(smp)), run.describe()
