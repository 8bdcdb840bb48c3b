"""Hypervisor snapshots: two VMs sharing two pCPUs, saved mid-run, restored into a fresh
hypervisor of the same configuration, which then saves the same state and runs on alike."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.pl011 import Pl011
from armvisor.devices.pl031 import Pl031
from armvisor.devices.pmu import Pmu
from armvisor.devices.timer import GenericTimer, TimerChannel
from armvisor.devices.virtio.mmio import VirtioMmioBank
from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.hyp import Hypervisor
from armvisor.trace import TraceBus

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "guests" / "build"

# Every device model these VMs and the hypervisor hold; they gain snapshots separately.
DEVICES = (GicV3, GenericTimer, TimerChannel, Pmu, Pl011, Pl031, VirtioMmioBank)
pytestmark = pytest.mark.skipif(
    not all(hasattr(cls, "save_state") and hasattr(cls, "restore_state") for cls in DEVICES),
    reason="the device models cannot save their state yet")


@pytest.fixture(scope="module", autouse=True)
def guests_built():
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs Debian's gcc-aarch64-linux-gnu to build the guest programs")
    subprocess.run(["make", "-s", "-C", str(REPO / "guests")], check=True)


class Until:
    """A run loop stop condition (runloop.Condition) from a predicate."""

    def __init__(self, predicate):
        self.predicate = predicate

    def clip(self, lane: int, budget: int) -> int:
        return budget

    def met(self) -> bool:
        return self.predicate()


def not_plain(value, where: str = "state") -> list[str]:
    """Where `value` holds something other than machine/snapshot.py's plain data."""
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return []
    if isinstance(value, int):
        return [] if -(1 << 63) <= value < (1 << 64) else [f"{where}: {value} is over 64 bits"]
    if isinstance(value, list):
        return [bad for i, item in enumerate(value) for bad in not_plain(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [f"{where}: key {key!r}" for key in value if not isinstance(key, str)] + \
            [bad for key, item in value.items() for bad in not_plain(item, f"{where}.{key}")]
    return [f"{where}: {type(value).__name__}"]


def build() -> tuple[Hypervisor, bytearray, list]:
    """Two VMs of two vCPUs time-sliced on two pCPUs: run queues, quanta and kicks all move."""
    trace = TraceBus(ring_size=64)
    events: list = []
    trace.subscribe(events.append)
    out = bytearray()
    vms = [VmConfig(name=name, kernel=str(BUILD / "smp_demo.elf"), smp=2, memory=64 << 20,
                    placement="shared") for name in ("a", "b")]
    return Hypervisor(2, vms, trace, out.extend, slice_budget=5000,
                      deterministic=True), out, events


def test_a_hypervisor_restored_mid_run_saves_the_same_state_and_runs_on_alike():
    saved, saved_out, saved_events = build()
    # Part way: pCPU 1 has run a first slice of a's vCPU 1, pCPU 0 time-slices the two
    # boot vCPUs under a quantum, and b's vCPU 1 is not started yet.
    assert saved.run(timeout=60, until=Until(lambda: saved.pcpus[1].current is not None)) is None
    assert [vcpu.state.value for vm in saved.vms for vcpu in vm.vcpus] == \
        ["runnable", "runnable", "runnable", "off"]
    assert saved.pcpus[0].quantum_deadline is not None
    state = saved.save_state()
    assert not_plain(state) == []

    restored, restored_out, restored_events = build()
    restored_events.clear()
    restored.clock.restore_state(saved.clock.save_state())   # the caller saves the clock
    restored.restore_state(state)
    assert restored_events == []                   # a restore traces nothing
    assert restored.save_state() == state

    # The same next turns: the same events (each vCPU load and switch, each
    # interrupt, at the same virtual time), the same output, the same machine at the end.
    printed = len(saved_out)
    saved_events.clear()
    assert saved.run(timeout=60) == 0
    assert restored.run(timeout=60) == 0
    assert [(e.kind, e.cpu, e.ts_us, e.fields) for e in restored_events] == \
        [(e.kind, e.cpu, e.ts_us, e.fields) for e in saved_events]
    assert bytes(restored_out) == bytes(saved_out[printed:])
    assert b"[a] RESULT: PASS" in restored_out and b"[b] RESULT: PASS" in restored_out
    assert restored.save_state() == saved.save_state()
    saved.close()
    restored.close()


def test_a_snapshot_of_another_machine_is_refused():
    saved, _, _ = build()
    state = saved.save_state()                     # never booted: still a snapshot
    trace = TraceBus(ring_size=16)
    one_vm = Hypervisor(2, [VmConfig(name="a", kernel=str(BUILD / "smp_demo.elf"), smp=2,
                                     memory=64 << 20)], trace, lambda data: None)
    with pytest.raises(ValueError, match="VMs"):
        one_vm.restore_state(state)
    three_pcpus = Hypervisor(3, [VmConfig(name=n, kernel=str(BUILD / "smp_demo.elf"), smp=2,
                                          memory=64 << 20, placement="shared")
                                 for n in ("a", "b")], trace, lambda data: None)
    with pytest.raises(ValueError, match="pCPUs"):
        three_pcpus.restore_state(state)
    for hyp in (saved, one_vm, three_pcpus):
        hyp.close()
