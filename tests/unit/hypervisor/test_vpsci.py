"""Virtual PSCI with KVM's semantics (arch/arm64/kvm/psci.c, hypercalls.c)."""

from __future__ import annotations

import threading
import time

import pytest

from armvisor.firmware.psci import constants as c
from armvisor.firmware.psci.constants import PsciReturn
from armvisor.firmware import smccc as s
from armvisor.hypervisor.vpsci import VcpuPower, VirtualPsci
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace import TraceBus

RAM = (0x4000_0000, 0x4000_0000 + (512 << 20))
ENTRY = 0x4008_0000
NOT_SUPPORTED = (1 << 64) - 1
ALL64 = (1 << 64) - 1


def reg(value: int) -> int:
    return value & ALL64


class Actions:
    """Records what the virtual PSCI asked the hypervisor to do."""

    def __init__(self, start_delay: float = 0.0):
        self.started: list[tuple[int, int, int]] = []
        self.stopped: list[int] = []
        self.waited: list[int] = []
        self.off = 0
        self.resets = 0
        self.start_delay = start_delay

    def start_vcpu(self, vcpu: int, entry: int, context_id: int) -> None:
        if self.start_delay:
            time.sleep(self.start_delay)    # widen any window between check and change
        self.started.append((vcpu, entry, context_id))

    def stop_vcpu(self, vcpu: int) -> None:
        self.stopped.append(vcpu)

    def wait_for_interrupt(self, vcpu: int) -> None:
        self.waited.append(vcpu)

    def system_off(self) -> None:
        self.off += 1

    def system_reset(self) -> None:
        self.resets += 1


def make(count: int = 4, actions: Actions | None = None, trace: TraceBus | None = None):
    actions = actions or Actions()
    psci = VirtualPsci(count, mpidr_affinity, actions,
                       entry_valid=lambda a: RAM[0] <= a < RAM[1], trace=trace, vm="vmA")
    return psci, actions


def x0(result) -> int:
    assert result is not None
    return result[0]


# -- versions, features ----------------------------------------------------------------------


def test_psci_version_is_1_1_and_clears_x1_to_x3():
    psci, _ = make()
    assert psci.call(0, [c.PSCI_VERSION, 7, 8, 9]) == [0x1_0001, 0, 0, 0]


def test_function_id_is_w0_only():
    psci, _ = make()
    assert x0(psci.call(0, [(0xDEAD << 32) | c.PSCI_VERSION])) == 0x1_0001


def test_unknown_function_is_not_supported_as_a_64_bit_register():
    psci, _ = make()
    for fid in (0xC400_0000, 0x8400_001F, 0xC600_0000, 0x8200_0001, 0x0400_0000,
                c.CPU_FREEZE, c.SYSTEM_SUSPEND_64, c.MEM_PROTECT):
        assert psci.call(0, [fid]) == [NOT_SUPPORTED, 0, 0, 0], hex(fid)


@pytest.mark.parametrize("fid", [
    c.PSCI_VERSION, c.CPU_SUSPEND_32, c.CPU_SUSPEND_64, c.CPU_OFF, c.CPU_ON_32, c.CPU_ON_64,
    c.AFFINITY_INFO_32, c.AFFINITY_INFO_64, c.MIGRATE_INFO_TYPE, c.SYSTEM_OFF, c.SYSTEM_RESET,
    c.PSCI_FEATURES, s.SMCCC_VERSION, c.SYSTEM_RESET2_32, c.SYSTEM_RESET2_64])
def test_psci_features_reports_what_kvm_implements(fid):
    psci, _ = make()
    assert psci.call(0, [c.PSCI_FEATURES, fid]) == [0, 0, 0, 0]


@pytest.mark.parametrize("fid", [
    c.MIGRATE_32, c.MIGRATE_64, c.MIGRATE_INFO_UP_CPU_32, c.MIGRATE_INFO_UP_CPU_64,
    c.CPU_FREEZE, c.SYSTEM_SUSPEND_32, c.SYSTEM_SUSPEND_64, c.CPU_DEFAULT_SUSPEND_64,
    c.PSCI_STAT_COUNT_64, s.SMCCC_ARCH_FEATURES, 0x8400_001F, 0x1234])
def test_psci_features_of_the_rest_is_not_supported(fid):
    psci, _ = make()
    assert x0(psci.call(0, [c.PSCI_FEATURES, fid])) == NOT_SUPPORTED


def test_psci_features_reads_a_32_bit_id():
    psci, _ = make()
    assert x0(psci.call(0, [c.PSCI_FEATURES, (1 << 32) | c.CPU_ON_64])) == 0


def test_smccc_version_is_1_1():
    psci, _ = make()
    assert psci.call(0, [s.SMCCC_VERSION]) == [0x1_0001, 0, 0, 0]


@pytest.mark.parametrize("feature, expected", [
    (s.SMCCC_ARCH_WORKAROUND_1, 1),
    (s.SMCCC_ARCH_WORKAROUND_2, reg(-2)),
    (s.SMCCC_ARCH_WORKAROUND_3, 1),
    (s.SMCCC_VERSION, 0),
    (s.SMCCC_ARCH_FEATURES, 0),
    (s.SMCCC_ARCH_SOC_ID, NOT_SUPPORTED),
    (c.PSCI_VERSION, NOT_SUPPORTED),
])
def test_smccc_arch_features_match_the_el3_firmware(feature, expected):
    psci, _ = make()
    assert x0(psci.call(0, [s.SMCCC_ARCH_FEATURES, feature])) == expected


@pytest.mark.parametrize("fid", [s.SMCCC_ARCH_WORKAROUND_1, s.SMCCC_ARCH_WORKAROUND_2,
                                 s.SMCCC_ARCH_WORKAROUND_3])
def test_calling_a_workaround_leaves_the_registers(fid):
    psci, _ = make()
    assert psci.call(0, [fid, 11, 22, 33, 44]) == [fid, 11, 22, 33]


# -- CPU_ON -------------------------------------------------------------------------------


def test_cpu_on_starts_an_off_vcpu():
    psci, actions = make()
    assert psci.state_of(2) is VcpuPower.OFF
    assert psci.call(0, [c.CPU_ON_64, 2, ENTRY, 0xC0FFEE]) == [0, 0, 0, 0]
    assert actions.started == [(2, ENTRY, 0xC0FFEE)]
    assert psci.state_of(2) is VcpuPower.ON


def test_cpu_on_finds_the_target_by_mpidr_across_clusters():
    psci, actions = make(count=20)
    assert x0(psci.call(0, [c.CPU_ON_64, 0x103, ENTRY, 0])) == 0     # Aff1=1, Aff0=3: vCPU 19
    assert actions.started == [(19, ENTRY, 0)]
    assert x0(psci.call(0, [c.CPU_ON_64, 0x13, ENTRY, 0])) == reg(PsciReturn.INVALID_PARAMETERS)


def test_cpu_on_32_truncates_its_arguments():
    psci, actions = make()
    result = psci.call(0, [c.CPU_ON_32, (5 << 32) | 1, (7 << 32) | ENTRY, (9 << 32) | 0x55])
    assert x0(result) == 0
    assert actions.started == [(1, ENTRY, 0x55)]


def test_cpu_on_64_keeps_all_bits_so_a_high_target_is_unknown():
    psci, actions = make()
    assert x0(psci.call(0, [c.CPU_ON_64, (1 << 32) | 1, ENTRY, 0])) == \
        reg(PsciReturn.INVALID_PARAMETERS)
    assert x0(psci.call(0, [c.CPU_ON_64, 1, (1 << 32) | ENTRY, 0])) == \
        reg(PsciReturn.INVALID_ADDRESS)
    assert actions.started == []


@pytest.mark.parametrize("target", [4, 0x100, 0x1_0000_0000, 0x8000_0001, 1 << 24])
def test_cpu_on_of_an_unknown_or_malformed_mpidr_is_invalid_parameters(target):
    psci, actions = make()
    assert x0(psci.call(0, [c.CPU_ON_64, target, ENTRY, 0])) == \
        reg(PsciReturn.INVALID_PARAMETERS)
    assert actions.started == []


@pytest.mark.parametrize("entry", [0, RAM[0] - 4, RAM[1], 0x0900_0000])
def test_cpu_on_outside_the_vm_ram_is_invalid_address(entry):
    psci, actions = make()
    assert x0(psci.call(0, [c.CPU_ON_64, 1, entry, 0])) == reg(PsciReturn.INVALID_ADDRESS)
    assert actions.started == [] and psci.state_of(1) is VcpuPower.OFF


def test_cpu_on_of_an_on_vcpu_is_already_on():
    psci, actions = make()
    assert x0(psci.call(0, [c.CPU_ON_64, 0, ENTRY, 0])) == reg(PsciReturn.ALREADY_ON)
    assert x0(psci.call(0, [c.CPU_ON_64, 3, ENTRY, 0])) == 0
    assert x0(psci.call(0, [c.CPU_ON_64, 3, ENTRY, 1])) == reg(PsciReturn.ALREADY_ON)
    assert actions.started == [(3, ENTRY, 0)]


def test_three_racing_cpu_ons_give_exactly_one_success_100_times():
    actions = Actions(start_delay=0.0002)
    psci, _ = make(actions=actions)
    for round_ in range(100):
        barrier = threading.Barrier(3)
        results: dict[int, int] = {}

        def caller(vcpu: int) -> None:
            barrier.wait()
            results[vcpu] = x0(psci.call(vcpu, [c.CPU_ON_64, 3, ENTRY, round_]))

        for vcpu in (1, 2):             # the callers are ON (no-op after round 0)
            psci.call(0, [c.CPU_ON_64, vcpu, ENTRY, 0])
        threads = [threading.Thread(target=caller, args=(v,)) for v in (0, 1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == sorted([0, reg(PsciReturn.ALREADY_ON),
                                                   reg(PsciReturn.ALREADY_ON)]), round_
        assert psci.state_of(3) is VcpuPower.ON
        assert psci.call(3, [c.CPU_OFF]) is None
        assert psci.state_of(3) is VcpuPower.OFF
    assert sum(1 for v, _, _ in actions.started if v == 3) == 100


# -- CPU_OFF, CPU_SUSPEND ---------------------------------------------------------------------


def test_cpu_off_stops_the_caller_and_does_not_return():
    psci, actions = make()
    psci.call(0, [c.CPU_ON_64, 1, ENTRY, 0])
    assert psci.call(1, [c.CPU_OFF]) is None
    assert actions.stopped == [1]
    assert psci.state_of(1) is VcpuPower.OFF
    assert x0(psci.call(0, [c.CPU_ON_64, 1, ENTRY + 8, 2])) == 0
    assert actions.started[-1] == (1, ENTRY + 8, 2)


def test_cpu_off_of_the_last_vcpu_is_allowed_and_does_not_end_the_vm():
    psci, actions = make(count=2)
    assert psci.call(0, [c.CPU_OFF]) is None
    assert [psci.state_of(v) for v in range(2)] == [VcpuPower.OFF, VcpuPower.OFF]
    assert actions.off == 0 and actions.resets == 0


@pytest.mark.parametrize("fid", [c.CPU_SUSPEND_32, c.CPU_SUSPEND_64])
@pytest.mark.parametrize("power_state", [0, 1 << 16, (1 << 16) | (2 << 24) | 5])
def test_cpu_suspend_is_wfi_and_returns_success(fid, power_state):
    psci, actions = make()
    assert psci.call(0, [fid, power_state, 0x1234, 0x99]) == [0, 0, 0, 0]
    assert actions.waited == [0]
    assert actions.started == [] and actions.stopped == []
    assert psci.state_of(0) is VcpuPower.ON


@pytest.mark.parametrize("fid", [c.CPU_SUSPEND_32, c.CPU_SUSPEND_64])
@pytest.mark.parametrize("power_state", [1 << 17, 1 << 30, 0xFFFF_FFFF])
def test_cpu_suspend_refuses_reserved_power_state_bits(fid, power_state):
    """Stricter than KVM (which sleeps on anything): DEN0022's INVALID_PARAMETERS, no WFI."""
    psci, actions = make()
    assert x0(psci.call(0, [fid, power_state, 0x1234, 0x99])) == reg(PsciReturn.INVALID_PARAMETERS)
    assert actions.waited == []


# -- AFFINITY_INFO -----------------------------------------------------------------------------


def affinity(psci, target, level, fid=c.AFFINITY_INFO_64, caller=0):
    return x0(psci.call(caller, [fid, target, level]))


def test_affinity_info_level_0_per_vcpu():
    psci, _ = make()
    assert affinity(psci, 0, 0) == 0
    assert affinity(psci, 1, 0) == 1
    psci.call(0, [c.CPU_ON_64, 1, ENTRY, 0])
    assert affinity(psci, 1, 0) == 0
    assert affinity(psci, 4, 0) == reg(PsciReturn.INVALID_PARAMETERS)


def test_affinity_info_higher_levels_are_on_if_any_vcpu_of_the_group_is():
    psci, _ = make(count=20)          # cluster 0: vCPUs 0-15, cluster 1: vCPUs 16-19
    assert affinity(psci, 0x100, 1) == 1
    assert affinity(psci, 0x107, 1) == 1            # Aff0 ignored at level 1
    psci.call(0, [c.CPU_ON_64, 0x102, ENTRY, 0])
    assert affinity(psci, 0x100, 1) == 0
    assert affinity(psci, 0x000, 1) == 0            # vCPU 0 is on
    psci.call(0, [c.CPU_OFF])
    assert affinity(psci, 0x000, 1, caller=18) == 1
    assert affinity(psci, 0, 2, caller=18) == 0     # the whole VM
    assert affinity(psci, 0, 3, caller=18) == 0
    assert affinity(psci, 0x200, 1, caller=18) == reg(PsciReturn.INVALID_PARAMETERS)
    assert affinity(psci, 0x1_0000, 2, caller=18) == reg(PsciReturn.INVALID_PARAMETERS)


@pytest.mark.parametrize("target, level", [(0, 4), (0, 0xFF), (0x8000_0000, 0), (1 << 24, 1)])
def test_affinity_info_bad_level_or_target_is_invalid_parameters(target, level):
    psci, _ = make()
    assert affinity(psci, target, level) == reg(PsciReturn.INVALID_PARAMETERS)


def test_affinity_info_32_truncates_its_arguments():
    psci, _ = make()
    assert affinity(psci, (1 << 32) | 1, (1 << 32), fid=c.AFFINITY_INFO_32) == 1
    assert affinity(psci, (1 << 32) | 1, 0) == reg(PsciReturn.INVALID_PARAMETERS)
    assert affinity(psci, 1, 1 << 32) == reg(PsciReturn.INVALID_PARAMETERS)


# -- MIGRATE --------------------------------------------------------------------------------


def test_migrate_info_type_is_tos_mp():
    psci, _ = make()
    assert psci.call(0, [c.MIGRATE_INFO_TYPE]) == [2, 0, 0, 0]


@pytest.mark.parametrize("fid", [c.MIGRATE_32, c.MIGRATE_64, c.MIGRATE_INFO_UP_CPU_32,
                                 c.MIGRATE_INFO_UP_CPU_64])
def test_migrate_and_migrate_info_up_cpu_are_not_supported(fid):
    psci, _ = make()
    assert psci.call(0, [fid, 1]) == [NOT_SUPPORTED, 0, 0, 0]


# -- system power -----------------------------------------------------------------------------


def test_system_off_stops_every_vcpu_and_does_not_return():
    psci, actions = make()
    psci.call(0, [c.CPU_ON_64, 2, ENTRY, 0])
    assert psci.call(2, [c.SYSTEM_OFF]) is None
    assert actions.off == 1 and actions.resets == 0
    assert all(psci.state_of(v) is VcpuPower.OFF for v in range(4))


def test_system_reset_stops_every_vcpu_and_reset_reboots_the_vm():
    psci, actions = make()
    psci.call(0, [c.CPU_ON_64, 1, ENTRY, 0])
    assert psci.call(1, [c.SYSTEM_RESET]) is None
    assert actions.resets == 1 and actions.off == 0
    assert all(psci.state_of(v) is VcpuPower.OFF for v in range(4))
    psci.reset()
    assert [psci.state_of(v) for v in range(4)] == [VcpuPower.ON] + [VcpuPower.OFF] * 3


@pytest.mark.parametrize("fid, reset_type", [
    (c.SYSTEM_RESET2_64, 0),                       # SYSTEM_WARM_RESET
    (c.SYSTEM_RESET2_32, 0),
    (c.SYSTEM_RESET2_64, 0x8000_0000),             # vendor-specific: a plain reset for a VM
    (c.SYSTEM_RESET2_64, 0x8000_1234),
    (c.SYSTEM_RESET2_64, 1 << 32),                 # reset_type is 32 bits even in SMC64
    (c.SYSTEM_RESET2_32, (3 << 32) | 0x8000_0001),
])
def test_system_reset2_architectural_and_vendor_resets(fid, reset_type):
    psci, actions = make()
    assert psci.call(0, [fid, reset_type, 0]) is None
    assert actions.resets == 1
    assert psci.state_of(0) is VcpuPower.OFF


@pytest.mark.parametrize("reset_type", [1, 0x7FFF_FFFF])
def test_system_reset2_reserved_type_is_invalid_parameters(reset_type):
    psci, actions = make()
    assert psci.call(0, [c.SYSTEM_RESET2_64, reset_type, 0]) == \
        [reg(PsciReturn.INVALID_PARAMETERS), 0, 0, 0]
    assert actions.resets == 0 and psci.state_of(0) is VcpuPower.ON


# -- reset, errors, trace ---------------------------------------------------------------------


def test_reset_powers_vcpu0_only():
    psci, _ = make()
    for v in (1, 2, 3):
        psci.call(0, [c.CPU_ON_64, v, ENTRY, 0])
    psci.call(0, [c.CPU_OFF])
    psci.reset()
    assert [psci.state_of(v) for v in range(4)] == [VcpuPower.ON] + [VcpuPower.OFF] * 3


def test_bad_vcpu_index_and_duplicate_mpidrs_are_refused():
    psci, _ = make()
    with pytest.raises(ValueError):
        psci.call(4, [c.PSCI_VERSION])
    with pytest.raises(ValueError):
        psci.state_of(-1)
    with pytest.raises(ValueError):
        VirtualPsci(2, lambda i: 0, Actions(), entry_valid=lambda a: True)


def test_trace_events_for_calls_and_power_changes():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    psci, _ = make(trace=bus)
    events.clear()
    psci.call(0, [c.CPU_ON_32, 1, ENTRY, 7])
    power = [e for e in events if e.kind == "vcpu.power"]
    calls = [e for e in events if e.kind == "vpsci.call"]
    assert [p.fields for p in power] == [dict(vm="vmA", vcpu=1, old="off", new="on")]
    assert calls[0].fields == dict(vm="vmA", vcpu=0, function="CPU_ON", args=(1, ENTRY, 7),
                                   result=0, target=1)
    # On the calling vCPU's track, and the power change on the target's.
    assert calls[0].cpu == 0 and power[0].cpu == 1
    events.clear()
    psci.call(1, [c.CPU_OFF])
    assert [e.kind for e in events] == ["vpsci.enter", "vcpu.power", "vpsci.call"]
    assert events[0].cpu == 1 and events[0].fields["function"] == "CPU_OFF"
    assert events[2].fields["result"] is None
    events.clear()
    psci.call(0, [0x8600_0001])
    assert events[1].fields["function"] == "unknown(0x86000001)"
    assert events[1].fields["result"] == -1
