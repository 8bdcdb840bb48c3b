"""psci_codes: every PSCI return code a caller can provoke on purpose."""

import pytest

# Lines every PSCI 1.1 implementation (QEMU's and armvisor's) must print.
COMMON = [
    "PSCI_VERSION: got 0x10001 expect 0x10001 ok",
    "FEATURES(CPU_ON64): got 0 expect 0 ok",
    "FEATURES(AFFINITY_INFO64): got 0 expect 0 ok",
    "FEATURES(0x8400001f unassigned): got -1 expect -1 ok",
    "FEATURES(0x12345678 not PSCI): got -1 expect -1 ok",
    "unknown fid 0x8400001f: got -1 expect -1 ok",
    "MIGRATE_INFO_TYPE: got 2 expect 2 ok",
    "AFFINITY_INFO(self): got 0 expect 0 ok",
    "AFFINITY_INFO(never started): got 1 expect 1 ok",
    "AFFINITY_INFO(bad mpidr): got -2 expect -2 ok",
    "CPU_ON(mpidr 0xffffffff): got -2 expect -2 ok",
    "CPU_ON(absent mpidr): got -2 expect -2 ok",
    "CPU_ON(self): got -4 expect -4 ok",
    "CPU_SUSPEND(reserved bit 17): got -2 expect -2 ok",
    "CPU_ON(context probe): got 0 expect 0 ok",
    "context_id in x0: got 0x123456789abcdef expect 0x123456789abcdef ok",
    "CPU_OFF then AFFINITY_INFO OFF: got 0 expect 0 ok",
    "CPU_ON(off cpu): got 0 expect 0 ok",
    "AFFINITY_INFO(running): got 0 expect 0 ok",
    "CPU_ON(running cpu): got -4 expect -4 ok",
]

# Trusted Firmware-A answers, which armvisor's firmware gives and QEMU's
# TCG PSCI does not (the guest prints "DIFF accepted" there).
TF_A_ONLY = [
    "AFFINITY_INFO(level 4): got -2 expect -2 ok",
    "CPU_ON(same cpu again): got -5 expect -5 ok",
    "AFFINITY_INFO(just started): got 2 expect 2 ok",
    "CPU_ON(entry 0x1000): got -9 expect -9 ok",
    "CPU_ON(entry 0x0): got -9 expect -9 ok",
    "CPU_ON(entry with bit 0 set): got -9 expect -9 ok",
    "AFFINITY_INFO(after rejected CPU_ON): got 1 expect 1 ok",
]


# KVM's virtual PSCI (a VM under --hyp) has no ON_PENDING state: a CPU_ON'd
# vCPU is ON at once, and a second CPU_ON finds it ALREADY_ON.
KVM_RULES = [
    "CPU_ON(same cpu again): got -4 ",
    "AFFINITY_INFO(just started): got 0 ",
]
KVM_DIFFS = 2


def check(run, guest_mode, conduit):
    run.assert_passed()
    assert f"guest: 4 cpus, psci {conduit}, " in run.line_starting("guest: "), run.describe()
    run.assert_lines(COMMON)
    diffs = [line for line in run.lines if "DIFF" in line]
    if guest_mode == "bare":
        run.assert_lines(TF_A_ONLY)
        assert not diffs, run.describe()
    elif guest_mode == "hyp":
        for prefix in KVM_RULES:
            run.line_starting(prefix)
        assert len(diffs) == KVM_DIFFS, run.describe()


@pytest.mark.guest
def test_psci_codes_smc(run_guest, guest_mode):
    check(run_guest("psci_codes", 4), guest_mode, "smc")


@pytest.mark.guest
def test_psci_codes_hvc(run_guest, guest_mode):
    # armvisor: --psci-conduit hvc; QEMU: no virtualization=on (EL1 start, HVC).
    check(run_guest("psci_codes", 4, conduit="hvc"), guest_mode, "hvc")
