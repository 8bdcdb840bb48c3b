"""How far a boot has got, from the trace events: the console's status line reads it.

Subscribe `on_event` to the bus; `text()` says how many CPUs are online, how
many PSCI calls were made, how many instructions ran (when given a count:
the machine exists only after the bus) and how long the run has taken
(host time).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Set, Tuple

from armvisor.trace.bus import Event

Cpu = Tuple[object, int]          # (VM name or None, CPU index)


class BootProgress:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._start = clock()
        self.cpus = 0
        self.online: Set[Cpu] = set()
        self.psci_calls = 0
        self.vms = False             # under the hypervisor, the guests' vCPUs are what count
        self._vm_cpus: dict = {}
        # All CPUs' instructions so far (e.g. Machine.instructions), read only when shown.
        self.instructions: Optional[Callable[[], int]] = None

    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind in ("psci.call", "vpsci.call"):
            self.psci_calls += 1
        elif kind in ("power.state", "vcpu.power"):
            cpu = (event.fields.get("vm"), event.cpu)
            if str(event.fields.get("new")).upper() == "ON":
                self.online.add(cpu)
            elif str(event.fields.get("new")).upper() == "OFF":
                self.online.discard(cpu)
        elif kind == "cpu.start" and event.fields.get("reason") == "cold boot":
            self.online.add((None, event.cpu))     # the boot CPU never changes state
        elif kind == "machine.boot":
            self.cpus = int(event.fields.get("cpus", 0))
        elif kind == "vm.boot":
            self.vms = True
            self._vm_cpus[event.fields.get("vm")] = int(event.fields.get("vcpus", 0))
            self.cpus = sum(self._vm_cpus.values())
            self.online.add((event.fields.get("vm"), 0))

    def text(self) -> str:
        total = f"/{self.cpus}" if self.cpus else ""
        online = [cpu for cpu in self.online if cpu[0] is not None] if self.vms else self.online
        ran = "" if self.instructions is None else f"{_count(self.instructions())} instructions, "
        return (f"armvisor: {len(online)}{total} CPUs online, {self.psci_calls} PSCI calls, "
                f"{ran}{self._clock() - self._start:.1f} s")


def _count(n: int) -> str:
    """Short enough for one line: 950,123 or 1,028 M."""
    return f"{n:,}" if n < 10 ** 6 else f"{n // 10 ** 6:,} M"
