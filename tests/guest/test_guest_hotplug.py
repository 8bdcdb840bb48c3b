"""hotplug: CPU_OFF / CPU_ON of every secondary, 100 times each."""

import pytest

ROUNDS = 100
# Sum over rounds r of sum(i * (r + 1), i = 1..64): the work each boot does.
WORK = sum(i * (r + 1) for r in range(ROUNDS) for i in range(1, 65))


@pytest.mark.guest
def test_hotplug_4cpus(run_guest):
    run = run_guest("hotplug", 4)
    run.assert_passed()
    run.assert_lines([f"cpu {cpu}: boots {ROUNDS} work {WORK} CPU_ON failures 0" for cpu in (1, 2, 3)])
    finals = [line for line in run.lines if line.strip().startswith("final AFFINITY_INFO")]
    assert finals == ["  final AFFINITY_INFO: got 1 expect 1 ok"] * 3, run.describe()
