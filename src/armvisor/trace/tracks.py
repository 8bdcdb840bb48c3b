"""Which Chrome trace track (pid, tid) an event belongs to, and the tracks' names.

The layout is shared by the writer and by the readers in this package
(trace/model.py): process 1 is the machine, tid 0 its machine-wide thread,
tid 1+N the activity of CPU N and POWER_TID_BASE+N its power states; a VM
is process 2, 3, ... (in order of first appearance) with the same layout for
its vCPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

MACHINE_PID = 1
MACHINE_TID = 0
POWER_TID_BASE = 1001


def cpu_tid(cpu: int) -> int:
    return cpu + 1                     # tid 0 is the machine-wide track


def power_tid(cpu: int) -> int:
    return POWER_TID_BASE + cpu


@dataclass(frozen=True)
class Track:
    pid: int
    tid: int
    vm: Optional[str]          # None: the machine's own CPUs (pCPUs under --hyp)
    cpu: Optional[int]         # None: the machine-wide (or VM-wide) thread

    @property
    def label(self) -> str:
        if self.cpu is None:
            return self.vm or "machine"
        return f"{self.vm}/vcpu{self.cpu}" if self.vm else f"cpu{self.cpu}"


class Tracks:
    """Hands out tracks, naming each (metadata events) the first time it is used."""

    def __init__(self, emit: Callable[[dict], None], process_name: str = "armvisor"):
        self._emit = emit
        self._by_key: Dict[Tuple[Optional[str], Optional[int]], Track] = {}
        self._power: Dict[Track, Track] = {}
        self._vm_pids: Dict[str, int] = {}
        self._process(MACHINE_PID, process_name, -1)
        self._thread(MACHINE_PID, MACHINE_TID, "machine", -1)

    def track(self, vm: Optional[str], cpu: Optional[int]) -> Track:
        key = (vm, cpu)
        found = self._by_key.get(key)
        if found is not None:
            return found
        if vm is not None and cpu is None:
            # A VM-wide event (vm.boot, a device of the VM): the machine's thread,
            # where VM-wide events have always been.
            found = self.track(None, None)
        else:
            pid = MACHINE_PID if vm is None else self._vm_pid(vm)
            tid = MACHINE_TID if cpu is None else cpu_tid(cpu)
            found = Track(pid, tid, vm, cpu)
            if cpu is not None:
                name = f"vcpu{cpu}" if vm else f"cpu{cpu}"
                self._thread(pid, tid, name, 2 * cpu)
        self._by_key[key] = found
        return found

    def power(self, track: Track) -> Track:
        """The power-state thread next to a CPU's activity thread."""
        found = self._power.get(track)
        if found is None:
            assert track.cpu is not None
            found = Track(track.pid, power_tid(track.cpu), track.vm, track.cpu)
            self._thread(track.pid, found.tid, f"{track.label.split('/')[-1]} power",
                         2 * track.cpu + 1)
            self._power[track] = found
        return found

    def _vm_pid(self, vm: str) -> int:
        pid = self._vm_pids.get(vm)
        if pid is None:
            pid = self._vm_pids[vm] = MACHINE_PID + 1 + len(self._vm_pids)
            self._process(pid, vm, pid)
        return pid

    def _process(self, pid: int, name: str, sort_index: int) -> None:
        self._emit({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                    "args": {"name": name}})
        self._emit({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                    "args": {"sort_index": sort_index}})

    def _thread(self, pid: int, tid: int, name: str, sort_index: int) -> None:
        self._emit({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                    "args": {"name": name}})
        self._emit({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                    "args": {"sort_index": sort_index}})
