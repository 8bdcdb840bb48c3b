"""cpu_suspend: CPU_SUSPEND standby and power-down woken by a GICv3 SGI."""

import pytest


@pytest.mark.guest
def test_cpu_suspend_2cpus(run_guest, guest_mode):
    run = run_guest("cpu_suspend", 2)
    run.assert_passed()
    run.assert_lines([
        "standby CPU_SUSPEND return: got 0 expect 0 ok",
        "standby woken by SGI: got 1 expect 1 ok",
        "power-down woken by SGI: got 1 expect 1 ok",
        "cpu 1 powered off: got 0 expect 0 ok",
    ])
    resumed = "power-down: resumed at the entry point" in run.lines
    in_place = "power-down: returned in place (treated as standby)" in run.lines
    assert resumed != in_place, run.describe()
    if guest_mode == "bare":
        # TF-A semantics: a power-down suspend resumes at the entry point.
        assert resumed, run.describe()
    elif guest_mode == "hyp":
        # KVM's: CPU_SUSPEND is a WFI, so the call returns in place.
        assert in_place, run.describe()
