"""PSCI behaviour through Firmware.smc, against a fake platform."""

from __future__ import annotations

import pytest

from armvisor.errors import ArmvisorError
from armvisor.firmware import Firmware, LockContention, PowerState, PsciReturn, PsciStateError
from armvisor.firmware.psci import constants as c
from armvisor.firmware.psci.cpu_suspend import decode_power_state
from armvisor.firmware.psci.state import LocalState
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace import TraceBus

RAM = 0x4000_0000
RAM_END = 0x8000_0000
ENTRY = 0x4008_0000
M64 = (1 << 64) - 1


def reg(value: int) -> int:
    return value & M64


class FakePlatform:
    """QEMU-virt-like affinity (16 cores per Aff1 cluster) and a call log."""

    def __init__(self, cpu_count: int = 4):
        self.cpu_count = cpu_count
        self.calls: list[tuple] = []
        self.power_on_ok = True
        self.on_power_on = None     # optional hook run inside power_on

    def mpidr_of(self, cpu: int) -> int:
        return mpidr_affinity(cpu)

    def cpu_of_mpidr(self, mpidr: int) -> int | None:
        aff = mpidr & 0xFF_00FF_FFFF
        for cpu in range(self.cpu_count):
            if mpidr_affinity(cpu) == aff:
                return cpu
        return None

    def entry_point_valid(self, entry: int) -> bool:
        return RAM <= entry < RAM_END

    def power_on(self, cpu: int, entry: int, context_id: int) -> bool:
        self.calls.append(("power_on", cpu, entry, context_id))
        if self.on_power_on is not None:
            self.on_power_on(cpu)
        return self.power_on_ok

    def power_off(self, cpu: int) -> None:
        self.calls.append(("power_off", cpu))

    def suspend_standby(self, cpu: int) -> None:
        self.calls.append(("standby", cpu))

    def suspend_powerdown(self, cpu: int, entry: int, context_id: int) -> None:
        self.calls.append(("powerdown", cpu, entry, context_id))

    def system_off(self) -> None:
        self.calls.append(("system_off",))

    def system_reset(self) -> None:
        self.calls.append(("system_reset",))


@pytest.fixture
def plat() -> FakePlatform:
    return FakePlatform()


@pytest.fixture
def trace() -> TraceBus:
    return TraceBus(ring_size=4096)


@pytest.fixture
def fw(plat: FakePlatform, trace: TraceBus) -> Firmware:
    f = Firmware(plat, trace, psci_version=(1, 1))
    f.cold_boot(0)
    return f


def x0(result: list[int] | None) -> int:
    assert result is not None
    return result[0]


def call(fw: Firmware, cpu: int, *regs: int) -> list[int] | None:
    return fw.smc(cpu, list(regs))


def cpu_on(fw: Firmware, caller: int, target: int, entry: int = ENTRY, ctx: int = 0,
           fid: int = c.CPU_ON_64) -> int:
    return x0(call(fw, caller, fid, mpidr_affinity(target), entry, ctx))


def affinity(fw: Firmware, caller: int, target_mpidr: int, level: int = 0,
             fid: int = c.AFFINITY_INFO_64) -> int:
    return x0(call(fw, caller, fid, target_mpidr, level))


def power_events(trace: TraceBus, cpu: int) -> list[tuple[str, str]]:
    return [(e.fields["old"], e.fields["new"]) for e in trace.recent
            if e.kind == "power.state" and e.cpu == cpu]


# -- boot and VERSION -----------------------------------------------------------------

def test_cold_boot_sets_boot_cpu_on_and_others_off(plat, trace):
    fw = Firmware(plat, trace)
    fw.cold_boot(2)
    assert [fw.state_of(i) for i in range(4)] == [
        PowerState.OFF, PowerState.OFF, PowerState.ON, PowerState.OFF]


@pytest.mark.parametrize("version,word", [((1, 1), 0x10001), ((1, 0), 0x10000), ((0, 2), 2)])
def test_version(plat, trace, version, word):
    fw = Firmware(plat, trace, psci_version=version)
    fw.cold_boot()
    assert x0(call(fw, 0, c.PSCI_VERSION)) == word


def test_unsupported_version_is_a_user_error(plat, trace):
    with pytest.raises(ArmvisorError):
        Firmware(plat, trace, psci_version=(2, 0))


def test_results_preserve_x1_to_x3(fw):
    assert call(fw, 0, c.PSCI_VERSION, 11, 22, 33, 44) == [0x10001, 11, 22, 33]


# -- CPU_ON ---------------------------------------------------------------------------

def test_cpu_on_success_passes_entry_and_context(fw, plat):
    assert cpu_on(fw, 0, 1, ENTRY, 0x1234_5678_9ABC) == PsciReturn.SUCCESS
    assert plat.calls == [("power_on", 1, ENTRY, 0x1234_5678_9ABC)]
    assert fw.state_of(1) is PowerState.ON_PENDING
    fw.warm_boot_finished(1)
    assert fw.state_of(1) is PowerState.ON


def test_cpu_on_unknown_mpidr(fw, plat):
    assert cpu_on(fw, 0, 7) == reg(PsciReturn.INVALID_PARAMETERS)  # only 4 cores
    assert x0(call(fw, 0, c.CPU_ON_64, 0xFFFF_FFFF, ENTRY, 0)) == reg(-2)
    assert plat.calls == []


def test_cpu_on_ignores_non_affinity_mpidr_bits(fw):
    # Bit 31 (RES1) and bits [63:40] are not affinity.
    assert x0(call(fw, 0, c.CPU_ON_64, (1 << 31) | (0xAB << 48) | 1, ENTRY, 0)) == 0
    assert fw.state_of(1) is PowerState.ON_PENDING


@pytest.mark.parametrize("entry", [0x1000, RAM_END, ENTRY | 1, RAM - 4])
def test_cpu_on_invalid_entry(fw, plat, entry):
    assert cpu_on(fw, 0, 1, entry) == reg(PsciReturn.INVALID_ADDRESS)
    assert fw.state_of(1) is PowerState.OFF
    assert plat.calls == []


def test_cpu_on_mpidr_checked_before_entry(fw):
    assert cpu_on(fw, 0, 9, entry=0x10) == reg(PsciReturn.INVALID_PARAMETERS)


def test_cpu_on_already_on_and_self(fw):
    assert cpu_on(fw, 0, 0) == reg(PsciReturn.ALREADY_ON)


def test_cpu_on_power_failure_restores_off(fw, plat, trace):
    plat.power_on_ok = False
    assert cpu_on(fw, 0, 1) == reg(PsciReturn.INTERNAL_FAILURE)
    assert fw.state_of(1) is PowerState.OFF
    assert power_events(trace, 1) == [("OFF", "ON_PENDING"), ("ON_PENDING", "OFF")]
    plat.power_on_ok = True
    assert cpu_on(fw, 0, 1) == 0


def test_two_callers_race_for_one_target(fw):
    fw.cold_boot(0)
    assert cpu_on(fw, 0, 3) == 0
    fw.warm_boot_finished(3)
    # cpu0 and cpu3 both try to start cpu2.
    assert cpu_on(fw, 0, 2, ctx=1) == PsciReturn.SUCCESS
    assert cpu_on(fw, 3, 2, ctx=2) == reg(PsciReturn.ON_PENDING)
    assert cpu_on(fw, 0, 2) == reg(PsciReturn.ON_PENDING)
    fw.warm_boot_finished(2)
    assert cpu_on(fw, 3, 2) == reg(PsciReturn.ALREADY_ON)
    assert cpu_on(fw, 0, 2) == reg(PsciReturn.ALREADY_ON)


def test_cpu_on_holds_target_lock_during_power_on(fw, plat):
    seen = []

    def reenter(cpu):
        seen.append(fw.power.lock_of(cpu).holder)
        # A second caller arriving while the first holds the lock: it would
        # spin on hardware; here it is detected.
        with pytest.raises(LockContention):
            fw.smc(0, [c.CPU_ON_64, mpidr_affinity(cpu), ENTRY, 0])

    plat.on_power_on = reenter
    assert cpu_on(fw, 0, 1) == 0
    assert seen == [0]
    assert not fw.power.lock_of(1).locked


def test_lock_released_after_errors(fw, plat):
    plat.power_on_ok = False
    cpu_on(fw, 0, 1)
    assert not fw.power.lock_of(1).locked
    assert cpu_on(fw, 0, 0) == reg(PsciReturn.ALREADY_ON)
    assert not fw.power.lock_of(0).locked


def test_cpu_on_target_in_suspend_is_already_on(fw):
    cpu_on(fw, 0, 1)
    fw.warm_boot_finished(1)
    assert x0(call(fw, 1, c.CPU_SUSPEND_64, 0, 0, 0)) == 0   # standby
    assert fw.state_of(1) is PowerState.STANDBY
    assert cpu_on(fw, 0, 1) == reg(PsciReturn.ALREADY_ON)


def test_warm_boot_of_off_cpu_is_an_error(fw):
    with pytest.raises(PsciStateError):
        fw.warm_boot_finished(1)
    fw.warm_boot_finished(0)        # already ON: nothing happens
    assert fw.state_of(0) is PowerState.ON


def test_smc_from_off_cpu_is_an_error(fw):
    with pytest.raises(PsciStateError):
        fw.smc(2, [c.PSCI_VERSION])


def test_smc_from_on_pending_cpu_finishes_its_warm_boot(fw):
    cpu_on(fw, 0, 1)
    assert x0(call(fw, 1, c.PSCI_VERSION)) == 0x10001
    assert fw.state_of(1) is PowerState.ON


# -- CPU_OFF --------------------------------------------------------------------------

def test_cpu_off_does_not_return(fw, plat, trace):
    cpu_on(fw, 0, 1)
    fw.warm_boot_finished(1)
    assert call(fw, 1, c.CPU_OFF) is None
    assert fw.state_of(1) is PowerState.OFF
    assert plat.calls[-1] == ("power_off", 1)
    assert affinity(fw, 0, mpidr_affinity(1)) == c.AffinityInfo.OFF
    assert power_events(trace, 1) == [("OFF", "ON_PENDING"), ("ON_PENDING", "ON"), ("ON", "OFF")]


def test_cpu_off_then_on_100_times(fw, plat):
    for i in range(100):
        assert cpu_on(fw, 0, 1, ctx=i) == 0
        assert affinity(fw, 0, mpidr_affinity(1)) == c.AffinityInfo.ON_PENDING
        fw.warm_boot_finished(1)
        assert affinity(fw, 0, mpidr_affinity(1)) == c.AffinityInfo.ON
        assert call(fw, 1, c.CPU_OFF) is None
        assert affinity(fw, 0, mpidr_affinity(1)) == c.AffinityInfo.OFF
    assert sum(1 for k in plat.calls if k[0] == "power_on") == 100
    assert sum(1 for k in plat.calls if k[0] == "power_off") == 100
    assert plat.calls[-2] == ("power_on", 1, ENTRY, 99)


def test_last_cpu_off_is_allowed_as_in_tf_a(fw):
    assert call(fw, 0, c.CPU_OFF) is None
    assert fw.state_of(0) is PowerState.OFF


def test_smc64_cpu_off_id_is_unknown(fw):
    assert x0(call(fw, 0, 0xC400_0002)) == reg(-1)
    assert fw.state_of(0) is PowerState.ON


# -- AFFINITY_INFO --------------------------------------------------------------------

def test_affinity_info_states(fw):
    assert affinity(fw, 0, mpidr_affinity(0)) == 0
    assert affinity(fw, 0, mpidr_affinity(1)) == 1
    cpu_on(fw, 0, 1)
    assert affinity(fw, 0, mpidr_affinity(1), fid=c.AFFINITY_INFO_32) == 2


@pytest.mark.parametrize("level", [1, 2, 3])
def test_affinity_info_levels_above_zero_are_invalid(fw, level):
    assert affinity(fw, 0, mpidr_affinity(0), level) == reg(PsciReturn.INVALID_PARAMETERS)


def test_affinity_info_bad_mpidr(fw):
    assert affinity(fw, 0, 0xFFFF_FFFF) == reg(PsciReturn.INVALID_PARAMETERS)
    assert affinity(fw, 0, mpidr_affinity(4)) == reg(PsciReturn.INVALID_PARAMETERS)


def test_affinity_info_level_is_32_bit_in_smc64(fw):
    # TF-A reads lowest_affinity_level as unsigned int even in the SMC64 call.
    assert affinity(fw, 0, mpidr_affinity(0), level=1 << 32) == 0


# -- CPU_SUSPEND ----------------------------------------------------------------------

def power_state(state_id: int = 0, powerdown: bool = False, level: int = 0) -> int:
    return (state_id | (int(powerdown) << c.POWER_STATE_TYPE_SHIFT)
            | (level << c.POWER_STATE_LEVEL_SHIFT))


def test_decode_power_state():
    p = decode_power_state(power_state(0x1234, True, 2))
    assert (p.state_id, p.powerdown, p.level) == (0x1234, True, 2)
    assert decode_power_state(1 << 17) is None
    assert decode_power_state(1 << 26) is None
    assert decode_power_state(1 << 31) is None


@pytest.mark.parametrize("level", [0, 1, 2])
def test_standby_returns_in_place(fw, plat, trace, level):
    r = call(fw, 0, c.CPU_SUSPEND_64, power_state(5, False, level), 0xDEAD, 7)
    assert r is not None and r[0] == 0
    assert plat.calls == [("standby", 0)]
    assert fw.state_of(0) is PowerState.STANDBY
    assert fw.wake(0) is True
    assert fw.state_of(0) is PowerState.ON
    assert fw.wake(0) is False
    assert power_events(trace, 0)[-2:] == [("ON", "STANDBY"), ("STANDBY", "ON")]


@pytest.mark.parametrize("level", [0, 1, 2])
def test_powerdown_suspend_resumes_at_entry(fw, plat, level):
    assert call(fw, 0, c.CPU_SUSPEND_64, power_state(1, True, level), ENTRY, 0x77) is None
    assert plat.calls == [("powerdown", 0, ENTRY, 0x77)]
    assert fw.state_of(0) is PowerState.POWERDOWN
    assert affinity_state_is_on_while_suspended(fw)
    fw.warm_boot_finished(0)
    assert fw.state_of(0) is PowerState.ON


def affinity_state_is_on_while_suspended(fw: Firmware) -> bool:
    return fw.power.affinity_info(0) is c.AffinityInfo.ON


def test_powerdown_bad_entry(fw, plat):
    r = call(fw, 0, c.CPU_SUSPEND_64, power_state(0, True, 0), 0x10, 0)
    assert x0(r) == reg(PsciReturn.INVALID_ADDRESS)
    assert x0(call(fw, 0, c.CPU_SUSPEND_64, power_state(0, True), ENTRY + 1, 0)) == reg(-9)
    assert fw.state_of(0) is PowerState.ON
    assert plat.calls == []


def test_standby_ignores_entry(fw):
    assert x0(call(fw, 0, c.CPU_SUSPEND_32, power_state(0, False), 0x1, 0)) == 0


@pytest.mark.parametrize("ps", [1 << 17, 1 << 23, 1 << 26, 1 << 31, power_state(level=3)])
def test_suspend_bad_power_state(fw, plat, ps):
    assert x0(call(fw, 0, c.CPU_SUSPEND_64, ps, ENTRY, 0)) == reg(PsciReturn.INVALID_PARAMETERS)
    assert fw.state_of(0) is PowerState.ON
    assert plat.calls == []


def test_suspend_power_state_is_32_bit_in_smc64(fw):
    assert x0(call(fw, 0, c.CPU_SUSPEND_64, (1 << 40) | power_state(), ENTRY, 0)) == 0


def test_smc_from_suspended_cpu_wakes_it(fw):
    call(fw, 0, c.CPU_SUSPEND_64, power_state(), 0, 0)
    assert x0(call(fw, 0, c.PSCI_VERSION)) == 0x10001
    assert fw.state_of(0) is PowerState.ON


def test_cluster_coordination(plat, trace):
    plat.cpu_count = 18     # cluster 0 = cpus 0-15, cluster 1 = cpus 16-17
    fw = Firmware(plat, trace)
    fw.cold_boot(0)
    for t in (16, 17):
        assert cpu_on(fw, 0, t) == 0
        fw.warm_boot_finished(t)
    m = fw.power
    assert m.domain_state(1, 16) is LocalState.RUN
    call(fw, 16, c.CPU_SUSPEND_64, power_state(0, True, 1), ENTRY, 0)
    assert m.domain_state(0, 16) is LocalState.OFF
    assert m.domain_state(1, 16) is LocalState.RUN       # cpu17 still runs
    call(fw, 17, c.CPU_SUSPEND_64, power_state(0, False, 1), 0, 0)
    assert m.domain_state(1, 16) is LocalState.RETENTION  # shallowest member
    fw.wake(17)
    call(fw, 17, c.CPU_OFF)
    assert m.domain_state(1, 16) is LocalState.OFF
    assert m.domain_state(1, 0) is LocalState.RUN         # the other cluster
    assert m.domain_state(2, 0) is LocalState.RUN


# -- SYSTEM_SUSPEND, SYSTEM_OFF, SYSTEM_RESET(2) --------------------------------------

def test_system_suspend_denied_while_others_on(fw, plat):
    cpu_on(fw, 0, 1)
    assert x0(call(fw, 0, c.SYSTEM_SUSPEND_64, ENTRY, 0)) == reg(PsciReturn.DENIED)
    assert plat.calls == [("power_on", 1, ENTRY, 0)]


def test_system_suspend_last_cpu(fw, plat):
    assert x0(call(fw, 0, c.SYSTEM_SUSPEND_64, 0x10, 0)) == reg(PsciReturn.INVALID_ADDRESS)
    assert call(fw, 0, c.SYSTEM_SUSPEND_64, ENTRY, 3) is None
    assert plat.calls == [("powerdown", 0, ENTRY, 3)]
    assert fw.power.domain_state(2, 0) is LocalState.OFF


def test_system_off_and_reset(fw, plat):
    assert call(fw, 0, c.SYSTEM_OFF) is None
    assert call(fw, 0, c.SYSTEM_RESET) is None
    assert plat.calls == [("system_off",), ("system_reset",)]


def test_system_reset2(fw, plat):
    assert x0(call(fw, 0, c.SYSTEM_RESET2_64, 1, 0)) == reg(PsciReturn.INVALID_PARAMETERS)
    assert x0(call(fw, 0, c.SYSTEM_RESET2_64, 1 << 31, 0)) == reg(PsciReturn.INVALID_PARAMETERS)
    assert plat.calls == []
    assert call(fw, 0, c.SYSTEM_RESET2_32, 0, 0) is None
    assert plat.calls == [("system_reset",)]


def test_system_reset2_absent_before_1_1(plat, trace):
    fw = Firmware(plat, trace, psci_version=(1, 0))
    fw.cold_boot()
    assert x0(call(fw, 0, c.SYSTEM_RESET2_64, 0, 0)) == reg(-1)
    assert plat.calls == []


# -- MIGRATE* -------------------------------------------------------------------------

def test_migrate_family(fw):
    assert x0(call(fw, 0, c.MIGRATE_INFO_TYPE)) == c.MigrateInfoType.NOT_PRESENT_OR_MP == 2
    assert x0(call(fw, 0, c.MIGRATE_64, 1)) == reg(PsciReturn.NOT_SUPPORTED)
    assert x0(call(fw, 0, c.MIGRATE_32, 1)) == reg(PsciReturn.NOT_SUPPORTED)
    assert x0(call(fw, 0, c.MIGRATE_INFO_UP_CPU_64)) == reg(PsciReturn.NOT_SUPPORTED)


# -- PSCI_FEATURES --------------------------------------------------------------------

@pytest.mark.parametrize("fid", [
    c.PSCI_VERSION, c.CPU_OFF, c.CPU_ON_32, c.CPU_ON_64, c.AFFINITY_INFO_32,
    c.AFFINITY_INFO_64, c.MIGRATE_INFO_TYPE, c.SYSTEM_OFF, c.SYSTEM_RESET, c.PSCI_FEATURES,
    c.SYSTEM_SUSPEND_32, c.SYSTEM_SUSPEND_64, c.SYSTEM_RESET2_32, c.SYSTEM_RESET2_64,
    0x8000_0000,        # SMCCC_VERSION: SMCCC 1.1 discovery goes through PSCI_FEATURES
])
def test_features_implemented(fw, fid):
    assert x0(call(fw, 0, c.PSCI_FEATURES, fid)) == 0


def test_features_cpu_suspend_flags(fw):
    # Original power_state format (bit 1 = 0), no OS-initiated mode (bit 0 = 0).
    assert x0(call(fw, 0, c.PSCI_FEATURES, c.CPU_SUSPEND_64)) == 0
    assert x0(call(fw, 0, c.PSCI_FEATURES, c.CPU_SUSPEND_32)) == 0


@pytest.mark.parametrize("fid", [
    c.MIGRATE_32, c.MIGRATE_64, c.MIGRATE_INFO_UP_CPU_32, c.NODE_HW_STATE_64, c.CPU_FREEZE,
    c.MEM_PROTECT, c.PSCI_STAT_COUNT_64, 0xC400_0000, 0xC400_0002, 0x8400_001F,
    0x8000_0001, 0x0400_0000, 0x8400_FF00, 0x1234_5678,
])
def test_features_not_supported(fw, fid):
    assert x0(call(fw, 0, c.PSCI_FEATURES, fid)) == reg(PsciReturn.NOT_SUPPORTED)


def test_features_argument_is_32_bit(fw):
    assert x0(call(fw, 0, c.PSCI_FEATURES, (0xFF << 32) | c.CPU_OFF)) == 0


def test_features_absent_in_psci_0_2(plat, trace):
    fw = Firmware(plat, trace, psci_version=(0, 2))
    fw.cold_boot()
    assert x0(call(fw, 0, c.PSCI_FEATURES, c.CPU_OFF)) == reg(-1)
    assert x0(call(fw, 0, c.SYSTEM_SUSPEND_64, ENTRY, 0)) == reg(-1)


# -- SMC32 truncation ------------------------------------------------------------------

def test_smc32_cpu_on_truncates_arguments(fw, plat):
    r = call(fw, 0, c.CPU_ON_32, (0xFFFF_FFFF << 32) | 1, (0x1 << 32) | ENTRY,
             (0xAB << 32) | 0x55)
    assert x0(r) == 0
    assert plat.calls == [("power_on", 1, ENTRY, 0x55)]


def test_smc64_cpu_on_keeps_64_bit_arguments(fw, plat):
    # The same high bits in SMC64 make the entry point leave RAM.
    r = call(fw, 0, c.CPU_ON_64, 1, (0x1 << 32) | ENTRY, 0)
    assert x0(r) == reg(PsciReturn.INVALID_ADDRESS)
    assert cpu_on(fw, 0, 1, ctx=(0xAB << 32) | 0x55) == 0
    assert plat.calls == [("power_on", 1, ENTRY, (0xAB << 32) | 0x55)]


def test_smc32_results_are_sign_extended(fw):
    assert x0(call(fw, 0, c.CPU_ON_32, 0xFFFF_FFFF, ENTRY, 0)) == 0xFFFF_FFFF_FFFF_FFFE


def test_function_id_upper_half_of_x0_ignored(fw):
    assert x0(call(fw, 0, (0xFFFF_FFFF << 32) | c.PSCI_VERSION)) == 0x10001


# -- trace ----------------------------------------------------------------------------

def test_psci_call_events(fw, trace):
    cpu_on(fw, 0, 1, ctx=9)
    call(fw, 0, c.CPU_ON_32, 0xFFFF_FFFF, ENTRY, 0)
    calls = [e for e in trace.recent if e.kind == "psci.call"]
    assert [(e.cpu, e.fields["function"], e.fields["result"]) for e in calls] == [
        (0, "CPU_ON", 0), (0, "CPU_ON", -2)]
    assert calls[0].fields["args"] == (mpidr_affinity(1), ENTRY, 9)


def test_no_return_calls_are_traced_with_no_result(fw, trace):
    call(fw, 0, c.SYSTEM_OFF)
    ev = [e for e in trace.recent if e.kind == "psci.call"][-1]
    assert ev.fields["function"] == "SYSTEM_OFF" and ev.fields["result"] is None


def test_no_return_call_traced_even_if_platform_raises(plat, trace):
    class Stop(Exception):
        pass

    def boom():
        raise Stop

    plat.system_off = boom
    fw = Firmware(plat, trace)
    fw.cold_boot()
    with pytest.raises(Stop):
        fw.smc(0, [c.SYSTEM_OFF])
    assert [e.fields["function"] for e in trace.recent if e.kind == "psci.call"] == ["SYSTEM_OFF"]


def test_power_state_events_for_every_change(plat, trace):
    fw = Firmware(plat, trace)
    fw.cold_boot(0)
    cpu_on(fw, 0, 1)
    fw.warm_boot_finished(1)
    call(fw, 1, c.CPU_SUSPEND_64, power_state(0, True), ENTRY, 0)
    fw.wake(1)
    call(fw, 1, c.CPU_OFF)
    fw.cold_boot(1)
    assert power_events(trace, 1) == [
        ("OFF", "ON_PENDING"), ("ON_PENDING", "ON"), ("ON", "POWERDOWN"),
        ("POWERDOWN", "ON"), ("ON", "OFF"), ("OFF", "ON")]
    assert power_events(trace, 0) == [("OFF", "ON"), ("ON", "OFF")]
