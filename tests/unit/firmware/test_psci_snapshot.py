"""Firmware snapshots: the PSCI state machine saved mid-flight answers the same afterwards."""

from __future__ import annotations

import json

import pytest

from armvisor.firmware import Firmware, PowerState
from armvisor.firmware.psci import constants as c
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace import TraceBus
from tests.unit.firmware.test_psci import FakePlatform

ENTRY = 0x4008_0000
STANDBY_CLUSTER = 1 << 24                         # standby, power level 1
POWERDOWN_CORE = 1 << 16                          # power-down, power level 0


def build(version=(1, 1)) -> tuple[Firmware, FakePlatform, list]:
    trace = TraceBus(ring_size=256)
    events: list = []
    trace.subscribe(events.append)
    platform = FakePlatform()
    return Firmware(platform, trace, psci_version=version), platform, events


def mid_flight() -> tuple[Firmware, FakePlatform]:
    """cpu0 ON, cpu1 powered down (core level), cpu2 in cluster standby, cpu3 ON_PENDING."""
    fw, platform, _ = build()
    fw.cold_boot(0)
    for target in (1, 2, 3):
        assert fw.smc(0, [c.CPU_ON_64, mpidr_affinity(target), ENTRY, target])[0] == 0
    assert fw.smc(1, [c.CPU_SUSPEND_64, POWERDOWN_CORE, ENTRY, 0x11]) is None
    assert fw.smc(2, [c.CPU_SUSPEND_64, STANDBY_CLUSTER, 0, 0])[0] == 0
    assert [fw.state_of(i) for i in range(4)] == [
        PowerState.ON, PowerState.POWERDOWN, PowerState.STANDBY, PowerState.ON_PENDING]
    platform.calls.clear()
    return fw, platform


def signed(x0: int) -> int:
    return x0 - (1 << 64) if x0 >> 63 else x0


def next_calls(fw: Firmware) -> list:
    """What the firmware answers next, from every state mid_flight left."""
    answers: list = [[fw.power.domain_state(level, cpu).name for level in (0, 1, 2)]
                     for cpu in range(4)]
    answers += [fw.smc(0, [c.AFFINITY_INFO_64, mpidr_affinity(i), 0])[0] for i in range(4)]
    answers.append(signed(fw.smc(0, [c.CPU_ON_64, mpidr_affinity(3), ENTRY, 0])[0]))
    answers.append(signed(fw.smc(0, [c.CPU_ON_64, mpidr_affinity(1), ENTRY, 0])[0]))
    answers.append(fw.wake(2))
    answers.append(fw.smc(3, [c.PSCI_VERSION])[0])            # cpu3's warm boot ends here
    answers.append(fw.smc(1, [c.CPU_OFF]))                     # cpu1 wakes, then goes OFF
    answers.append(signed(fw.smc(0, [c.SYSTEM_SUSPEND_64, ENTRY, 0])[0]))  # cpu2, 3 are ON
    answers.append([fw.state_of(i).value for i in range(4)])
    return answers


def test_a_restored_firmware_answers_as_the_saved_one():
    saved_fw, saved_platform = mid_flight()
    state = saved_fw.save_state()
    assert json.loads(json.dumps(state)) == state          # plain data only
    fresh, platform, events = build()
    fresh.restore_state(state)
    assert events == []                                    # a restore traces nothing
    assert fresh.save_state() == state
    assert next_calls(fresh) == next_calls(saved_fw)
    assert platform.calls == saved_platform.calls


def test_the_saved_state_names_each_core_and_its_suspend_level():
    cpus = mid_flight()[0].save_state()["power"]["cpus"]
    assert [(s["state"], s["suspend_level"], s["lock_holder"]) for s in cpus] == [
        ("ON", None, None), ("POWERDOWN", 0, None), ("STANDBY", 1, None),
        ("ON_PENDING", None, None)]


def test_a_restore_replaces_every_core_of_a_booted_firmware():
    booted, _, _ = build()
    booted.cold_boot(2)
    booted.restore_state(mid_flight()[0].save_state())
    assert booted.state_of(2) is PowerState.STANDBY and booted.state_of(0) is PowerState.ON


def test_a_snapshot_of_another_shape_is_refused():
    state = mid_flight()[0].save_state()
    other_version, _, _ = build(version=(1, 0))
    with pytest.raises(ValueError, match="PSCI 1.1"):
        other_version.restore_state(state)
    fewer = dict(state, power={"cpus": state["power"]["cpus"][:2]})
    fresh, _, _ = build()
    with pytest.raises(ValueError, match="2 cores"):
        fresh.restore_state(fewer)
