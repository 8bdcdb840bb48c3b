"""Which vCPU runs on which pCPU, and which of a pCPU's vCPUs runs now.

Two policies, freely mixed on one machine:
- PINNED: vCPU i of the VM always runs on pcpus[i], and no other VM's vCPU is
  pinned there (the multi-pCPU mode: one vCPU per pCPU, nothing to slice).
- SHARED: the VM's vCPUs are spread over a set of pCPUs and time-sliced with
  whatever else runs there (the multi-VM mode). Each vCPU goes to the least
  loaded pCPU of the set, ties broken round-robin after the previous choice,
  so 2 VMs x 4 vCPUs on 4 pCPUs puts one vCPU of each VM on every pCPU.
  Without an explicit set, a SHARED VM takes the pCPUs nobody is pinned to
  (all pCPUs when every one has a pinned vCPU).

Each pCPU keeps a run queue in placement order. `pick` keeps the current vCPU
while it is runnable and its quantum lasts, else moves round-robin to the
next runnable one; the quantum is only ever needed (and the EL2 physical
timer only armed, `needs_quantum`) when two or more are runnable there.

A vCPU placed by `add_vm` is not runnable until `set_runnable(ref, True)`:
the hypervisor says so when the vCPU is powered on and not waiting in WFI.
Not thread-safe: the hypervisor schedules from its one host thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional, Sequence

from armvisor.errors import ArmvisorError
from armvisor.trace.bus import TraceBus


class Policy(enum.Enum):
    PINNED = "pinned"
    SHARED = "shared"


@dataclass(frozen=True)
class VcpuRef:
    vm: int
    vcpu: int

    def __str__(self) -> str:
        return f"vm{self.vm}.vcpu{self.vcpu}"


@dataclass
class _RunQueue:
    """One pCPU's vCPUs in placement order, and where round-robin stands."""

    vcpus: list[VcpuRef] = field(default_factory=list)
    current: Optional[VcpuRef] = None   # what the last pick returned (None = idle)
    cursor: int = -1                    # index of the vCPU picked last; the search starts after it
    expired: bool = False               # the current vCPU's quantum is used up


class Placement:
    """vCPU-to-pCPU placement and per-pCPU round-robin scheduling."""

    def __init__(self, pcpu_count: int, trace: Optional[TraceBus] = None):
        if pcpu_count < 1:
            raise ArmvisorError(f"the machine needs at least one pCPU, not {pcpu_count}")
        self._pcpu_count = pcpu_count
        self._trace = trace
        self._queues = [_RunQueue() for _ in range(pcpu_count)]
        self._pcpu_of: dict[VcpuRef, int] = {}
        self._policy: dict[int, Policy] = {}
        self._pinned: dict[int, VcpuRef] = {}        # pCPU -> the vCPU pinned there
        self._names: dict[int, str] = {}              # VM number -> its name, for messages
        self._runnable: set[VcpuRef] = set()
        self._last_shared = -1                       # round-robin position for SHARED placement

    @property
    def pcpu_count(self) -> int:
        return self._pcpu_count

    # -- placement ---------------------------------------------------------------------

    def add_vm(self, vm: int, vcpu_count: int, policy: Policy,
               pcpus: Optional[Sequence[int]] = None, name: Optional[str] = None) -> None:
        """Place a VM's vCPUs; `name` is what error messages call it (default: its number)."""
        if vm in self._policy:
            raise ArmvisorError(f"VM {vm} is already placed")
        if vcpu_count < 1:
            raise ArmvisorError(f"VM {vm} needs at least one vCPU, not {vcpu_count}")
        self._names[vm] = name if name is not None else str(vm)
        if pcpus is not None:
            self._check_pcpu_set(vm, pcpus)
        if policy is Policy.PINNED:
            chosen = self._pinned_pcpus(vm, vcpu_count, pcpus)
        else:
            chosen = self._shared_pcpus(vcpu_count, pcpus)
        self._policy[vm] = policy
        for index, pcpu in enumerate(chosen):
            ref = VcpuRef(vm, index)
            self._pcpu_of[ref] = pcpu
            self._queues[pcpu].vcpus.append(ref)
            if policy is Policy.PINNED:
                self._pinned[pcpu] = ref
            if self._trace is not None:
                self._trace.emit("placement", pcpu, vm=vm, vcpu=index, pcpu=pcpu,
                                 policy=policy.value)

    def _check_pcpu_set(self, vm: int, pcpus: Sequence[int]) -> None:
        if not pcpus:
            raise ArmvisorError(f"VM {self._names[vm]}: the pCPU list is empty")
        for pcpu in pcpus:
            if not 0 <= pcpu < self._pcpu_count:
                raise ArmvisorError(f"VM {self._names[vm]}: pCPU {pcpu} does not exist "
                                    f"(the machine has pCPUs 0-{self._pcpu_count - 1})")
        if len(set(pcpus)) != len(pcpus):
            raise ArmvisorError(f"VM {self._names[vm]}: a pCPU appears twice in {list(pcpus)}")

    def _pinned_pcpus(self, vm: int, vcpu_count: int,
                      pcpus: Optional[Sequence[int]]) -> list[int]:
        if pcpus is None:
            # The lowest pCPUs nobody has pinned yet, so pinned VMs sit side by side.
            free = [p for p in range(self._pcpu_count) if p not in self._pinned]
            if vcpu_count > len(free):
                raise ArmvisorError(f"VM {self._names[vm]}: {vcpu_count} pinned vCPUs need {vcpu_count} "
                                    f"free pCPUs, {len(free)} of {self._pcpu_count} are free")
            pcpus = free
        if vcpu_count > len(pcpus):
            raise ArmvisorError(f"VM {self._names[vm]}: {vcpu_count} pinned vCPUs but only "
                                f"{len(pcpus)} pCPUs given")
        chosen = list(pcpus[:vcpu_count])
        for pcpu in chosen:
            owner = self._pinned.get(pcpu)
            if owner is not None:
                raise ArmvisorError(f"VM {self._names[vm]}: pCPU {pcpu} is already pinned to "
                                    f"VM {self._names[owner.vm]} vCPU {owner.vcpu}")
        return chosen

    def _shared_pcpus(self, vcpu_count: int, pcpus: Optional[Sequence[int]]) -> list[int]:
        if pcpus is None:
            free = [p for p in range(self._pcpu_count) if p not in self._pinned]
            pcpus = free or list(range(self._pcpu_count))
        pool = list(pcpus)
        load = {p: len(self._queues[p].vcpus) for p in pool}
        chosen = []
        for _ in range(vcpu_count):
            # Least loaded first; among equals, the next one after the last choice.
            pcpu = min(pool, key=lambda p, last=self._last_shared:
                       (load[p], (p - last - 1) % self._pcpu_count))
            chosen.append(pcpu)
            load[pcpu] += 1
            self._last_shared = pcpu
        return chosen

    def remove_vm(self, vm: int) -> None:
        """The VM ended: its vCPUs leave their pCPUs (and free their pins)."""
        if vm not in self._policy:
            raise ValueError(f"VM {vm} is not placed")
        del self._policy[vm]
        gone = {ref for ref in self._pcpu_of if ref.vm == vm}
        for ref in gone:
            del self._pcpu_of[ref]
            self._runnable.discard(ref)
        self._pinned = {p: ref for p, ref in self._pinned.items() if ref.vm != vm}
        for queue in self._queues:
            kept = [ref for ref in queue.vcpus if ref not in gone]
            # Round-robin resumes with the vCPU that followed the last one picked.
            queue.cursor = sum(1 for i, ref in enumerate(queue.vcpus)
                               if i <= queue.cursor and ref not in gone) - 1
            queue.vcpus = kept
            if queue.current in gone:
                queue.current = None
                queue.expired = False

    # -- snapshots ---------------------------------------------------------------------

    def save_state(self) -> dict:
        """Everything `pick` and a later `add_vm` look at; a vCPU is [vm, vcpu]."""
        return {
            "pcpu_count": self._pcpu_count,
            "queues": [{"vcpus": [_ref_out(ref) for ref in q.vcpus],
                        "current": None if q.current is None else _ref_out(q.current),
                        "cursor": q.cursor, "expired": q.expired} for q in self._queues],
            "pcpu_of": [[ref.vm, ref.vcpu, pcpu] for ref, pcpu in self._pcpu_of.items()],
            "policy": {str(vm): policy.value for vm, policy in self._policy.items()},
            "pinned": [[pcpu, ref.vm, ref.vcpu] for pcpu, ref in self._pinned.items()],
            "names": {str(vm): name for vm, name in self._names.items()},
            # Sorted: a set's order is the host's, and only membership matters.
            "runnable": sorted(_ref_out(ref) for ref in self._runnable),
            "last_shared": self._last_shared,
        }

    def restore_state(self, state: dict) -> None:
        if state["pcpu_count"] != self._pcpu_count:
            raise ValueError(f"the snapshot places vCPUs on {state['pcpu_count']} pCPUs, "
                             f"this machine has {self._pcpu_count}")
        self._queues = [_RunQueue(vcpus=[_ref_in(r) for r in q["vcpus"]],
                                  current=None if q["current"] is None else _ref_in(q["current"]),
                                  cursor=q["cursor"], expired=q["expired"])
                        for q in state["queues"]]
        self._pcpu_of = {VcpuRef(vm, vcpu): pcpu for vm, vcpu, pcpu in state["pcpu_of"]}
        self._policy = {int(vm): Policy(value) for vm, value in state["policy"].items()}
        self._pinned = {pcpu: VcpuRef(vm, vcpu) for pcpu, vm, vcpu in state["pinned"]}
        self._names = {int(vm): name for vm, name in state["names"].items()}
        self._runnable = {_ref_in(r) for r in state["runnable"]}
        self._last_shared = state["last_shared"]

    # -- queries -----------------------------------------------------------------------

    def pcpu_of(self, ref: VcpuRef) -> int:
        try:
            return self._pcpu_of[ref]
        except KeyError:
            raise ValueError(f"{ref} is not placed") from None

    def vcpus_on(self, pcpu: int) -> list[VcpuRef]:
        return list(self._queue(pcpu).vcpus)

    def policy_of(self, vm: int) -> Policy:
        return self._policy[vm]

    def running(self, pcpu: int) -> Optional[VcpuRef]:
        """What the last `pick` on that pCPU returned (None = idle)."""
        return self._queue(pcpu).current

    def is_runnable(self, ref: VcpuRef) -> bool:
        return ref in self._runnable

    def _queue(self, pcpu: int) -> _RunQueue:
        if not 0 <= pcpu < self._pcpu_count:
            raise ValueError(f"no pCPU {pcpu}")
        return self._queues[pcpu]

    # -- scheduling --------------------------------------------------------------------

    def set_runnable(self, ref: VcpuRef, runnable: bool) -> None:
        self.pcpu_of(ref)       # only placed vCPUs
        if runnable:
            self._runnable.add(ref)
        else:
            self._runnable.discard(ref)

    def pick(self, pcpu: int) -> Optional[VcpuRef]:
        queue = self._queue(pcpu)
        current = queue.current
        if current is not None and current in self._runnable and not queue.expired:
            return current
        queue.expired = False
        chosen: Optional[VcpuRef] = None
        count = len(queue.vcpus)
        for step in range(1, count + 1):
            index = (queue.cursor + step) % count
            if queue.vcpus[index] in self._runnable:
                chosen = queue.vcpus[index]
                queue.cursor = index
                break
        if chosen != current:
            queue.current = chosen
            if self._trace is not None:
                self._trace.emit("vcpu.switch", pcpu, pcpu=pcpu,
                                 **{"from": str(current) if current else "idle",
                                    "to": str(chosen) if chosen else "idle"})
        return chosen

    def quantum_expired(self, pcpu: int) -> None:
        """The current vCPU's quantum is used up: the next `pick` rotates."""
        self._queue(pcpu).expired = True

    def has_runnable(self, pcpu: int) -> bool:
        """A vCPU placed on `pcpu` can run (what `pick` would find), without picking."""
        return any(ref in self._runnable for ref in self._queue(pcpu).vcpus)

    def needs_quantum(self, pcpu: int) -> bool:
        return sum(1 for ref in self._queue(pcpu).vcpus if ref in self._runnable) > 1


def _ref_out(ref: VcpuRef) -> list[int]:
    return [ref.vm, ref.vcpu]


def _ref_in(saved: list[int]) -> VcpuRef:
    return VcpuRef(saved[0], saved[1])
