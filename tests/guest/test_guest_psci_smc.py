"""psci_smc: PSCI over a hard-coded SMC, bare and as a VM (where the DTB says HVC and
the SMC traps to EL2 through HCR_EL2.TSC, as under KVM)."""

import pytest

LINES = ["PSCI_VERSION over smc: 0x10001 ok", "PSCI_VERSION, smc after an smc: got 65537 expect 65537 ok",
         "counter: got 600 expect 600 ok"]


@pytest.mark.guest
def test_psci_over_smc_whatever_the_dtb_says(run_guest, guest_mode):
    # The DTB names HVC; the program calls SMC anyway: the EL3 firmware answers
    # on the bare board, the hypervisor (SMC trapped by HCR_EL2.TSC) in a VM.
    # (QEMU makes SMC UNDEFINED when its conduit is HVC, so there the DTB says smc.)
    run = run_guest("psci_smc", 2, conduit=None if guest_mode == "qemu" else "hvc")
    run.assert_passed()
    run.assert_lines(LINES)
    if guest_mode != "qemu":
        assert "psci_smc: DTB says hvc, using smc" in run.lines, run.describe()
