"""The machine as a debugger sees it: threads, memory through a CPU's MMU, resuming, stops.

All-stop (GDB manual, "All-Stop Mode"): when one CPU stops, every CPU is
stopped, and everything here runs in the machine's own thread between
slices. While the guest runs, `RunUntilStop.met` is asked after every slice
and looks at the debugger's socket every POLL_INTERVAL of host time, so an
interrupt (0x03) or a new debugger stops the machine at the next slice
boundary without a second host thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from armvisor.api import Condition, Machine
from armvisor.debug.points import Breakpoints, Watchpoints, WatchHit
from armvisor.errors import ArmvisorError

POLL_INTERVAL = 0.005          # host seconds between looks at the socket while the guest runs
SIGINT, SIGTRAP, SIGSEGV = 2, 5, 11
PAGE = 0x1000


@dataclass
class StopInfo:
    """Why the machine stopped, as a `T` stop reply says it (GDB manual, "Stop Reply Packets")."""

    signal: int
    cpu: int                         # index into machine.cpus
    reason: str = ""                 # "swbreak", "hwbreak", "watch", "rwatch", "awatch"
    address: Optional[int] = None    # the data address of a watchpoint hit


class RunUntilStop(Condition):
    """The condition a debugger's `continue` runs under: a breakpoint, a watchpoint, or input."""

    def __init__(self, target: "Target", wake: Callable[[], bool], frozen: List[int]):
        self.target = target
        self._wake = wake             # polls the socket: True if the debugger wants the machine
        self.frozen = set(frozen)     # lanes that do not run (vCont with per-thread actions)
        self.breakpoint: Optional[tuple] = None
        self.woken = False
        self._next_poll = 0.0

    def clip(self, lane, budget):
        return 0 if lane in self.frozen else budget

    def breakpoint_hit(self, cpu, address):
        if self.breakpoint is None:
            self.breakpoint = (cpu, address)

    def met(self):
        if self.breakpoint is not None or self.target.watch.hit is not None:
            return True
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL
            self.woken = self.woken or self._wake()
        return self.woken


class Target:
    def __init__(self, machine: Machine):
        self.machine = machine
        self.cpus = machine.cpus
        self.breaks = Breakpoints(self.cpus)
        self.watch = Watchpoints(self.group)
        self.host = None             # the console (HostIO) the machine polls between slices
        self.history = None          # debug.history.History: kept on a deterministic machine

    def keep_history(self) -> None:
        """Record what the debugger does from now on, for reverse execution."""
        from armvisor.debug.history import History
        self.history = History(self.machine, self)

    # -- threads: thread id N is machine.cpus[N - 1] --------------------------------------

    def group(self, cpu) -> list:
        """The CPUs that share `cpu`'s memory (all of them, or the vCPUs of its VM)."""
        for view in self.machine.vms:
            if cpu in view.cpus:
                return view.cpus
        return self.cpus

    def memory_of(self, cpu):
        for view in self.machine.vms:
            if cpu in view.cpus:
                return view.memory
        return self.machine.memory

    def describe(self, cpu) -> str:
        """qThreadExtraInfo: name, power state as the API reports it, exception level."""
        return f"{cpu.name} {cpu.power_state} EL{cpu.el}"

    # -- memory: virtual, through the CPU's current translation ---------------------------

    def _pieces(self, cpu, va: int, size: int):
        address, end = va, va + size
        while address < end:
            chunk = min(end, (address & ~(PAGE - 1)) + PAGE) - address
            pa = cpu.translate(address)
            if pa is None:
                raise ArmvisorError(f"{address:#x} does not translate on {cpu.name}")
            yield pa, chunk
            address += chunk

    def read_memory(self, cpu, va: int, size: int) -> bytes:
        memory = self.memory_of(cpu)
        return b"".join(memory.read(pa, chunk) for pa, chunk in self._pieces(cpu, va, size))

    def write_memory(self, cpu, va: int, data: bytes) -> None:
        memory = self.memory_of(cpu)
        pieces = list(self._pieces(cpu, va, len(data)))       # all of it translates, or nothing
        offset = 0
        for pa, chunk in pieces:
            memory.read(pa, chunk)                            # RAM only: raises otherwise
            memory.write(pa, data[offset:offset + chunk])
            offset += chunk
        if self.history is not None and not self.machine.console.muted:
            self.history.note_memory(cpu.index, va, data)

    def registers_written(self, cpu) -> None:
        """The debugger changed `cpu`'s registers (a replay must do it again)."""
        if self.history is not None:
            self.history.note_registers(cpu.index)

    # -- resuming -----------------------------------------------------------------------

    def step(self, cpu, current: Optional[StopInfo]) -> StopInfo:
        """One instruction on `cpu` only; the others stay where they are."""
        if cpu.runnable:
            self._leave_stop(cpu, current)
            try:
                self.machine.step(cpu.index, 1)
            finally:
                hit = self.watch.settle(self.cpus)    # before noting: it may undo the step
                if self.history is not None:
                    self.history.note_step(cpu.index, 1)
        else:
            hit = self.watch.settle(self.cpus)
        if hit is not None:
            return self._watch_stop(hit)
        return StopInfo(SIGTRAP, cpu.index)

    def run(self, resumed: List[int], wake: Callable[[], bool], current: Optional[StopInfo],
            timeout: Optional[float]) -> tuple:
        """Run the CPUs in `resumed` until something stops them.

        Returns (exit status or None, StopInfo or None, woken by the debugger).
        """
        for index in resumed:
            self._leave_stop(self.cpus[index], current)
        frozen = self._frozen_lanes(resumed)
        condition = RunUntilStop(self, wake, frozen)
        host = self.history.input if self.history is not None and self.history.input else self.host
        stop = None
        try:
            status = self.machine.run(until=condition, timeout=timeout, host=host)
            hit = self.watch.settle(self.cpus)
            if status is not None:
                return status, None, False
            if hit is not None:
                stop = self._watch_stop(hit)
            elif condition.breakpoint is not None:
                cpu, address = condition.breakpoint
                stop = StopInfo(SIGTRAP, cpu, self.breaks.reason(address))
            else:
                stop = StopInfo(SIGINT, self._last_cpu(resumed))
            return None, stop, condition.woken and not stop.reason
        finally:
            self.watch.settle(self.cpus)
            if self.history is not None:
                self.history.note_run(frozen, stop)

    def _leave_stop(self, cpu, current: Optional[StopInfo]) -> None:
        """Resuming a CPU where it stopped: what stopped it there must not stop it again."""
        self.breaks.resume_from(cpu)
        if current is not None and current.cpu == cpu.index and current.reason.endswith("watch") \
                and self.watch.watches and cpu.runnable:
            # Its access has not happened yet (the hit undid it): do it with the hooks quiet.
            self.watch.suppressed = cpu.core
            try:
                self._step(cpu.index, 1)
            finally:
                self.watch.suppressed = None

    def _step(self, index: int, count: int) -> None:
        try:
            self.machine.step(index, count)
        finally:
            if self.history is not None:
                self.history.note_step(index, count)

    def _frozen_lanes(self, resumed: List[int]) -> List[int]:
        """The run loop's lanes that must not run: a bare CPU is a lane; a vCPU's pCPU is."""
        if len(resumed) == len(self.cpus):
            return []
        if self.machine.hypervisor is None:
            return [i for i in range(len(self.cpus)) if i not in resumed]
        # A pCPU stays still only if no resumed vCPU lives on it (shared pCPUs keep going).
        busy = set()
        for vm in self.machine.hypervisor.vms:
            base = self.cpus.index(next(c for c in self.cpus if c.core is vm.vcpus[0].core))
            for vcpu in vm.vcpus:
                if base + vcpu.index in resumed and vcpu.pcpu is not None:
                    busy.add(vcpu.pcpu.index)
        return [p for p in range(self.machine.board.lane_count) if p not in busy]

    def _last_cpu(self, resumed: List[int]) -> int:
        running = [i for i in resumed if self.cpus[i].runnable]
        return running[0] if running else (resumed[0] if resumed else 0)

    def _watch_stop(self, hit: WatchHit) -> StopInfo:
        reason = {2: "watch", 3: "rwatch", 4: "awatch"}[hit.kind]
        return StopInfo(SIGTRAP, hit.cpu, reason, hit.va)

    def detach(self) -> None:
        self.breaks.clear()
        self.watch.clear()


def thread_ids(cpus) -> Dict[int, object]:
    return {n + 1: cpu for n, cpu in enumerate(cpus)}
