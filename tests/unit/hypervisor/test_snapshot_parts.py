"""Snapshots of the hypervisor's own parts: placement and virtual PSCI, saved and restored."""

from __future__ import annotations

import json

import pytest

from armvisor.firmware.psci import constants as c
from armvisor.hypervisor.placement import Placement, Policy, VcpuRef
from armvisor.hypervisor.vpsci import VcpuPower, VirtualPsci
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace import TraceBus

ENTRY = 0x4008_0000


def busy_placement(trace: TraceBus | None = None) -> Placement:
    """A pinned VM, shared VMs rotating on pCPUs 2-3 (pCPU 2's quantum used up), and a
    VM gone, which leaves the loads even: the next VM's place then depends on where the
    last shared placement went."""
    p = Placement(4, trace)
    p.add_vm(0, 2, Policy.PINNED, name="pinned")
    p.add_vm(1, 3, Policy.SHARED, name="a")
    p.add_vm(2, 1, Policy.SHARED, name="b")
    p.add_vm(3, 1, Policy.SHARED, pcpus=[2], name="gone")
    for ref in [VcpuRef(0, 0), VcpuRef(1, 0), VcpuRef(1, 1), VcpuRef(1, 2), VcpuRef(2, 0),
                VcpuRef(3, 0)]:
        p.set_runnable(ref, True)
    for pcpu in range(4):
        p.pick(pcpu)
    p.quantum_expired(2)
    p.remove_vm(3)
    p.set_runnable(VcpuRef(1, 1), False)
    return p


def schedule(p: Placement, turns: int = 12) -> list:
    """What the placement decides from here: picks, expiries, a new VM, wake-ups."""
    out = []
    for turn in range(turns):
        for pcpu in range(4):
            out.append(str(p.pick(pcpu)))
            if p.needs_quantum(pcpu):
                p.quantum_expired(pcpu)
        if turn == 3:
            p.add_vm(4, 1, Policy.SHARED, name="late")
            p.set_runnable(VcpuRef(4, 0), True)
            p.set_runnable(VcpuRef(1, 1), True)
    out.append(p.pcpu_of(VcpuRef(4, 0)))
    return out


def traced() -> tuple[TraceBus, list]:
    trace = TraceBus(ring_size=16)
    events: list = []
    trace.subscribe(events.append)
    return trace, events


def test_a_restored_placement_schedules_as_the_saved_one():
    trace, saved_events = traced()
    saved = busy_placement(trace)
    state = saved.save_state()
    assert json.loads(json.dumps(state)) == state
    trace, restored_events = traced()
    restored = Placement(4, trace)
    restored.restore_state(state)
    assert restored.save_state() == state
    saved_events.clear()
    assert schedule(restored) == schedule(saved)
    # The switches name what ran before, so the current vCPU must come back too.
    assert [(e.kind, e.cpu, e.fields) for e in restored_events] == \
        [(e.kind, e.cpu, e.fields) for e in saved_events]


def test_a_placement_for_another_pcpu_count_is_refused():
    with pytest.raises(ValueError, match="4 pCPUs"):
        Placement(2).restore_state(busy_placement().save_state())


class Actions:
    def __init__(self):
        self.log: list = []

    def start_vcpu(self, vcpu, entry, context_id):
        self.log.append(("start", vcpu, entry, context_id))

    def stop_vcpu(self, vcpu):
        self.log.append(("stop", vcpu))

    def wait_for_interrupt(self, vcpu):
        self.log.append(("wait", vcpu))

    def system_off(self):
        self.log.append(("off",))

    def system_reset(self):
        self.log.append(("reset",))


def vpsci(events: list | None = None) -> tuple[VirtualPsci, Actions]:
    trace = TraceBus(ring_size=16)
    if events is not None:
        trace.subscribe(events.append)
    actions = Actions()
    return VirtualPsci(4, mpidr_affinity, actions, entry_valid=lambda e: e % 4 == 0,
                       trace=trace), actions


def test_a_restored_virtual_psci_answers_as_the_saved_one():
    saved, _ = vpsci()
    for target in (1, 3):
        assert saved.call(0, [c.CPU_ON_64, mpidr_affinity(target), ENTRY, target])[0] == 0
    assert saved.call(3, [c.CPU_OFF]) is None
    state = saved.save_state()
    assert state == {"power": ["on", "on", "off", "off"]}
    events: list = []
    restored, actions = vpsci(events)
    events.clear()                          # the constructor's reset: vcpu0 ON
    restored.restore_state(state)
    assert events == []
    assert restored.save_state() == state

    def after(v: VirtualPsci) -> list:
        return [v.call(0, [c.AFFINITY_INFO_64, mpidr_affinity(i), 0])[0] for i in range(4)] + [
            v.call(0, [c.CPU_ON_64, mpidr_affinity(i), ENTRY, 0])[0] for i in range(4)]

    assert after(restored) == after(saved)
    assert [vcpu for kind, vcpu, *_ in actions.log if kind == "start"] == [2, 3]
    assert restored.state_of(2) is VcpuPower.ON


def test_a_virtual_psci_of_another_size_is_refused():
    saved, _ = vpsci()
    small = VirtualPsci(2, mpidr_affinity, Actions(), entry_valid=lambda e: True)
    with pytest.raises(ValueError, match="4 vCPUs"):
        small.restore_state(saved.save_state())
