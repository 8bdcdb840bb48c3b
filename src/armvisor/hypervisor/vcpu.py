"""A virtual CPU: a core of its own (one Unicorn instance mapped to its VM's RAM) and its state."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Sequence

from armvisor.cpu.core import Core
from armvisor.devices.timer import GenericTimer

if TYPE_CHECKING:
    from armvisor.hypervisor.pcpu import PerCpu
    from armvisor.hypervisor.vm import Vm


class VcpuState(enum.Enum):
    OFF = "off"              # PSCI: not started, or CPU_OFF
    RUNNABLE = "runnable"
    BLOCKED = "blocked"      # WFI or CPU_SUSPEND: waits for a virtual interrupt


class Vcpu:
    def __init__(self, vm: "Vm", index: int, core: Core, timer: GenericTimer):
        self.vm = vm
        self.index = index
        self.core = core
        self.timer = timer               # its EL1 virtual and physical timers (virtual PPIs)
        self.state = VcpuState.OFF
        self.pcpu = None                 # the PerCpu it is placed on (set by the hypervisor)
        self.first_run_pending = False   # started, not yet run: its first instruction is traced

    def save_state(self) -> dict:
        """Its core between slices, its timers, and where it is placed (a pCPU index)."""
        return {"state": self.state.value,
                "pcpu": None if self.pcpu is None else self.pcpu.index,
                "first_run_pending": self.first_run_pending,
                "core": self.core.save_state(),
                "timer": self.timer.save_state()}

    def restore_state(self, state: dict, pcpus: Sequence["PerCpu"]) -> None:
        """`pcpus` are the restored machine's, for the saved pCPU index."""
        self.state = VcpuState(state["state"])
        self.pcpu = None if state["pcpu"] is None else pcpus[state["pcpu"]]
        self.first_run_pending = state["first_run_pending"]
        self.core.restore_state(state["core"])
        self.timer.restore_state(state["timer"])

    @property
    def name(self) -> str:
        return f"{self.vm.name}/vcpu{self.index}"

    def __repr__(self) -> str:
        return f"<Vcpu {self.name} {self.state.value}>"
