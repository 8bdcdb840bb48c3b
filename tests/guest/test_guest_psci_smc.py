"""psci_smc: PSCI over a hard-coded SMC, bare and as a VM (where the DTB says HVC and
the SMC traps to EL2 through HCR_EL2.TSC, as under KVM)."""

import pytest

LINES = ["PSCI_VERSION over smc: 0x10001 ok", "PSCI_VERSION, smc after an smc: got 65537 expect 65537 ok",
         "counter: got 600 expect 600 ok"]


@pytest.mark.guest
@pytest.mark.parametrize("mode", [(), ("--hyp",)], ids=["bare", "vm"])
def test_psci_over_smc(run_guest, on_armvisor, mode):
    if mode and not on_armvisor:
        pytest.skip("--hyp is armvisor's")
    run = run_guest("psci_smc", 2, extra_args=mode)
    run.assert_passed()
    run.assert_lines(LINES)
    if mode:
        assert "psci_smc: DTB says hvc, using smc" in run.lines, run.describe()
