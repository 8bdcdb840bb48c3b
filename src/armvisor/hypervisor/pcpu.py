"""Per-physical-CPU hypervisor context: what TPIDR_EL2 points to on real hardware.

Each pCPU has its own object; nothing in the hypervisor keeps a global
"current vCPU". The run loop passes the PerCpu of the pCPU it is running.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from armvisor.hypervisor.vcpu import Vcpu


class PcpuState(enum.Enum):
    OFF = "off"              # powered off (reset; not yet started by the hypervisor)
    BOOTING = "booting"      # CPU_ON accepted by the EL3 firmware; secondary init not run yet
    ONLINE = "online"        # runs vCPUs
    IDLE = "idle"            # in WFI at EL2: only a physical interrupt wakes it


@dataclass
class PerCpu:
    index: int
    mpidr: int
    state: PcpuState = PcpuState.OFF
    current: Optional[Vcpu] = None          # the vCPU loaded on this pCPU
    # What the secondary init set up (names of the steps done, in order).
    init_steps: list = field(default_factory=list)
    quantum_deadline: Optional[int] = None  # EL2 physical timer: end of the current vCPU's slice
    counters: Dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def save_state(self) -> dict:
        """The loaded vCPU is saved as [vm, vcpu]."""
        current = self.current
        return {"state": self.state.value,
                "current": None if current is None else [current.vm.index, current.index],
                "init_steps": list(self.init_steps),
                "quantum_deadline": self.quantum_deadline,
                "counters": dict(self.counters)}

    def restore_state(self, state: dict, vcpu_at: Callable[[int, int], Vcpu]) -> None:
        """`vcpu_at(vm, vcpu)` finds the restored machine's vCPU for a saved reference."""
        self.state = PcpuState(state["state"])
        current = state["current"]
        self.current = None if current is None else vcpu_at(current[0], current[1])
        self.init_steps = list(state["init_steps"])
        self.quantum_deadline = state["quantum_deadline"]
        self.counters = dict(state["counters"])
