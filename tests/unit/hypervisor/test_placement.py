"""vCPU placement over pCPUs (pinned, shared, mixed) and per-pCPU round-robin."""

from __future__ import annotations

from collections import Counter

import pytest

from armvisor.errors import ArmvisorError
from armvisor.hypervisor.placement import Placement, Policy, VcpuRef
from armvisor.trace import TraceBus


def refs(vm: int, count: int) -> list[VcpuRef]:
    return [VcpuRef(vm, i) for i in range(count)]


def all_runnable(placement: Placement, *vms: tuple[int, int]) -> None:
    for vm, count in vms:
        for ref in refs(vm, count):
            placement.set_runnable(ref, True)


# -- placement ----------------------------------------------------------------------------


def test_pinned_default_is_vcpu_i_on_pcpu_i():
    p = Placement(4)
    p.add_vm(0, 4, Policy.PINNED)
    assert [p.pcpu_of(r) for r in refs(0, 4)] == [0, 1, 2, 3]
    assert p.vcpus_on(2) == [VcpuRef(0, 2)]


def test_pinned_with_an_explicit_pcpu_list():
    p = Placement(4)
    p.add_vm(0, 2, Policy.PINNED, pcpus=[3, 1])
    assert [p.pcpu_of(r) for r in refs(0, 2)] == [3, 1]
    assert p.vcpus_on(0) == []


def test_pinned_errors_are_one_line_armvisor_errors():
    p = Placement(4)
    with pytest.raises(ArmvisorError, match="need 5 free pCPUs"):
        p.add_vm(0, 5, Policy.PINNED)
    with pytest.raises(ArmvisorError, match="only 2 pCPUs given"):
        p.add_vm(0, 3, Policy.PINNED, pcpus=[0, 1])
    p.add_vm(0, 2, Policy.PINNED)
    with pytest.raises(ArmvisorError, match="pCPU 1 is already pinned to VM 0 vCPU 1") as err:
        p.add_vm(1, 2, Policy.PINNED, pcpus=[2, 1])
    assert "\n" not in str(err.value)
    assert p.vcpus_on(2) == []              # nothing of the refused VM was placed
    with pytest.raises(ArmvisorError, match="already placed"):
        p.add_vm(0, 1, Policy.SHARED)
    with pytest.raises(ArmvisorError, match="does not exist"):
        p.add_vm(2, 1, Policy.SHARED, pcpus=[4])
    with pytest.raises(ArmvisorError, match="twice"):
        p.add_vm(2, 1, Policy.SHARED, pcpus=[2, 2])
    with pytest.raises(ArmvisorError, match="at least one vCPU"):
        p.add_vm(2, 0, Policy.SHARED)


def test_shared_spreads_two_vms_of_four_over_four_pcpus():
    p = Placement(4)
    p.add_vm(0, 4, Policy.SHARED)
    p.add_vm(1, 4, Policy.SHARED)
    for pcpu in range(4):
        assert sorted(r.vm for r in p.vcpus_on(pcpu)) == [0, 1]


def test_shared_single_vcpu_vms_do_not_pile_onto_pcpu0():
    p = Placement(2)
    p.add_vm(0, 1, Policy.SHARED)
    p.add_vm(1, 1, Policy.SHARED)
    assert {p.pcpu_of(VcpuRef(0, 0)), p.pcpu_of(VcpuRef(1, 0))} == {0, 1}


def test_shared_more_vcpus_than_pcpus_wraps_round_robin():
    p = Placement(4)
    p.add_vm(0, 5, Policy.SHARED, pcpus=[2, 3])
    assert [p.pcpu_of(r) for r in refs(0, 5)] == [2, 3, 2, 3, 2]


def test_mix_pinned_and_shared_keeps_shared_off_the_pinned_pcpus():
    p = Placement(4)
    p.add_vm(0, 2, Policy.PINNED)               # pCPUs 0-1
    p.add_vm(1, 2, Policy.SHARED)               # default: the pCPUs nobody is pinned to
    assert [p.pcpu_of(r) for r in refs(1, 2)] == [2, 3]
    p.add_vm(2, 2, Policy.SHARED, pcpus=[2, 3])
    assert Counter(p.pcpu_of(r) for r in refs(2, 2)) == {2: 1, 3: 1}
    assert p.policy_of(0) is Policy.PINNED and p.policy_of(1) is Policy.SHARED


def test_shared_on_a_fully_pinned_machine_uses_every_pcpu():
    p = Placement(2)
    p.add_vm(0, 2, Policy.PINNED)
    p.add_vm(1, 2, Policy.SHARED)
    assert [p.pcpu_of(r) for r in refs(1, 2)] == [0, 1]


def test_placement_trace_events():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    p = Placement(4, trace=bus)
    p.add_vm(0, 2, Policy.PINNED, pcpus=[1, 3])
    placed = [e for e in events if e.kind == "placement"]
    assert [(e.cpu, e.fields) for e in placed] == [
        (1, dict(vm=0, vcpu=0, pcpu=1, policy="pinned")),
        (3, dict(vm=0, vcpu=1, pcpu=3, policy="pinned")),
    ]


def test_unknown_refs_and_pcpus_are_refused():
    p = Placement(2)
    with pytest.raises(ValueError):
        p.pcpu_of(VcpuRef(0, 0))
    with pytest.raises(ValueError):
        p.set_runnable(VcpuRef(0, 0), True)
    with pytest.raises(ValueError):
        p.pick(2)
    with pytest.raises(ValueError):
        p.remove_vm(0)


# -- scheduling ---------------------------------------------------------------------------


def test_idle_when_nothing_is_runnable():
    p = Placement(2)
    assert p.pick(0) is None                # no vCPU at all
    p.add_vm(0, 2, Policy.PINNED)
    assert p.pick(0) is None                # placed but not runnable yet
    assert not p.needs_quantum(0)


def test_pinned_vcpu_runs_while_runnable_without_a_quantum():
    p = Placement(2)
    p.add_vm(0, 2, Policy.PINNED)
    all_runnable(p, (0, 2))
    assert p.pick(0) == VcpuRef(0, 0) and p.pick(1) == VcpuRef(0, 1)
    assert not p.needs_quantum(0)
    p.quantum_expired(0)
    assert p.pick(0) == VcpuRef(0, 0)       # alone: the rotation comes back to it
    p.set_runnable(VcpuRef(0, 0), False)    # WFI
    assert p.pick(0) is None
    p.set_runnable(VcpuRef(0, 0), True)
    assert p.pick(0) == VcpuRef(0, 0)


def test_current_vcpu_keeps_the_pcpu_until_its_quantum_expires():
    p = Placement(1)
    p.add_vm(0, 1, Policy.SHARED)
    p.add_vm(1, 1, Policy.SHARED)
    all_runnable(p, (0, 1), (1, 1))
    assert p.needs_quantum(0)
    first = p.pick(0)
    assert [p.pick(0) for _ in range(5)] == [first] * 5
    p.quantum_expired(0)
    second = p.pick(0)
    assert second != first and second is not None
    assert p.running(0) == second


def test_round_robin_is_fair_over_many_quanta():
    p = Placement(1)
    for vm in range(3):
        p.add_vm(vm, 1, Policy.SHARED)
    all_runnable(p, (0, 1), (1, 1), (2, 1))
    ran = []
    for _ in range(300):
        ran.append(p.pick(0))
        p.quantum_expired(0)
    assert Counter(ran) == {VcpuRef(0, 0): 100, VcpuRef(1, 0): 100, VcpuRef(2, 0): 100}
    assert ran[:6] == [VcpuRef(0, 0), VcpuRef(1, 0), VcpuRef(2, 0)] * 2


def test_blocked_vcpus_are_skipped_and_come_back_in_turn():
    p = Placement(1)
    for vm in range(3):
        p.add_vm(vm, 1, Policy.SHARED)
    a, b, c = VcpuRef(0, 0), VcpuRef(1, 0), VcpuRef(2, 0)
    all_runnable(p, (0, 1), (1, 1), (2, 1))
    p.set_runnable(b, False)
    seq = []
    for _ in range(4):
        seq.append(p.pick(0))
        p.quantum_expired(0)
    assert seq == [a, c, a, c]
    p.set_runnable(b, True)
    assert p.pick(0) == a
    p.quantum_expired(0)
    assert p.pick(0) == b                   # the turn after a is b's again
    p.set_runnable(b, False)                # b waits in WFI: yields at once
    assert p.pick(0) == c
    p.set_runnable(a, False)
    p.set_runnable(c, False)
    assert p.pick(0) is None
    assert not p.needs_quantum(0)
    p.set_runnable(a, True)
    assert p.pick(0) == a


def test_needs_quantum_counts_runnable_vcpus_only():
    p = Placement(2)
    p.add_vm(0, 2, Policy.SHARED, pcpus=[0])
    assert not p.needs_quantum(0)
    p.set_runnable(VcpuRef(0, 0), True)
    assert not p.needs_quantum(0)
    p.set_runnable(VcpuRef(0, 1), True)
    assert p.needs_quantum(0)
    assert not p.needs_quantum(1)


def test_two_vms_of_four_on_four_pcpus_each_pcpu_alternates():
    p = Placement(4)
    p.add_vm(0, 4, Policy.SHARED)
    p.add_vm(1, 4, Policy.SHARED)
    all_runnable(p, (0, 4), (1, 4))
    for pcpu in range(4):
        seen = []
        for _ in range(4):
            seen.append(p.pick(pcpu).vm)
            p.quantum_expired(pcpu)
        assert seen in ([0, 1, 0, 1], [1, 0, 1, 0])


def test_mixed_machine_pinned_pcpus_never_run_shared_vcpus():
    p = Placement(4)
    p.add_vm(0, 2, Policy.PINNED)
    p.add_vm(1, 4, Policy.SHARED, pcpus=[2, 3])
    all_runnable(p, (0, 2), (1, 4))
    for _ in range(20):
        for pcpu in range(4):
            ref = p.pick(pcpu)
            assert (ref.vm == 0) == (pcpu < 2)
            p.quantum_expired(pcpu)
    assert not p.needs_quantum(0) and p.needs_quantum(2)


def test_remove_vm_frees_its_pcpus_and_scheduling_goes_on():
    p = Placement(2)
    p.add_vm(0, 2, Policy.PINNED)
    p.add_vm(1, 2, Policy.SHARED)
    all_runnable(p, (0, 2), (1, 2))
    assert p.pick(0) == VcpuRef(0, 0)
    p.remove_vm(0)
    assert p.vcpus_on(0) == [VcpuRef(1, 0)]
    assert p.pick(0) == VcpuRef(1, 0)
    assert not p.needs_quantum(0)
    with pytest.raises(ValueError):
        p.pcpu_of(VcpuRef(0, 0))
    p.add_vm(0, 2, Policy.PINNED)           # the pins are free again
    assert p.pcpu_of(VcpuRef(0, 1)) == 1


def test_remove_vm_keeps_the_round_robin_position():
    p = Placement(1)
    for vm in range(4):
        p.add_vm(vm, 1, Policy.SHARED)
    all_runnable(p, *[(vm, 1) for vm in range(4)])
    assert p.pick(0) == VcpuRef(0, 0)
    p.quantum_expired(0)
    assert p.pick(0) == VcpuRef(1, 0)
    p.remove_vm(1)                          # the running one ends
    assert p.pick(0) == VcpuRef(2, 0)       # its successor, not a restart from the head
    p.quantum_expired(0)
    assert p.pick(0) == VcpuRef(3, 0)


def test_switch_trace_events():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    p = Placement(1, trace=bus)
    p.add_vm(0, 1, Policy.SHARED)
    p.add_vm(1, 1, Policy.SHARED)
    all_runnable(p, (0, 1), (1, 1))
    p.pick(0)
    p.pick(0)                               # no change: no event
    p.quantum_expired(0)
    p.pick(0)
    p.set_runnable(VcpuRef(0, 0), False)
    p.set_runnable(VcpuRef(1, 0), False)
    p.pick(0)
    switches = [(e.cpu, e.fields) for e in events if e.kind == "vcpu.switch"]
    assert switches == [
        (0, {"pcpu": 0, "from": "idle", "to": "vm0.vcpu0"}),
        (0, {"pcpu": 0, "from": "vm0.vcpu0", "to": "vm1.vcpu0"}),
        (0, {"pcpu": 0, "from": "vm1.vcpu0", "to": "idle"}),
    ]
