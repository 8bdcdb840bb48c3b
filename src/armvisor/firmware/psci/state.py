"""The per-CPU power state machine (TF-A's aff_info_state plus local suspend state).

Each core has one state and one lock. The machine runs cores one at a time,
so the lock can never be contended by a second thread; it is still modelled
because TF-A's CPU_ON semantics are defined by it (the state test and the
ON_PENDING write happen under the target's lock), and because holding it
across a platform callback lets the tests see that a second caller arriving
then is detected instead of silently interleaved.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterator, Optional

from armvisor.firmware.psci.constants import (
    CLUSTER_POWER_LEVEL,
    CPU_POWER_LEVEL,
    SYSTEM_POWER_LEVEL,
    AffinityInfo,
)
from armvisor.trace.bus import TraceBus


class PowerState(Enum):
    OFF = "OFF"
    ON_PENDING = "ON_PENDING"
    ON = "ON"
    STANDBY = "STANDBY"          # CPU_SUSPEND standby/retention: wakes in place
    POWERDOWN = "POWERDOWN"      # CPU_SUSPEND / SYSTEM_SUSPEND power-down: wakes at entry


# A suspended core is still ON as far as AFFINITY_INFO and CPU_ON are
# concerned (TF-A leaves aff_info_state at ON while suspended).
_AFFINITY: dict[PowerState, AffinityInfo] = {
    PowerState.OFF: AffinityInfo.OFF,
    PowerState.ON_PENDING: AffinityInfo.ON_PENDING,
    PowerState.ON: AffinityInfo.ON,
    PowerState.STANDBY: AffinityInfo.ON,
    PowerState.POWERDOWN: AffinityInfo.ON,
}

# Every edge the firmware may take; anything else is a bug in the caller of
# the state machine (the machine or the firmware), never a guest error.
_ALLOWED: frozenset[tuple[PowerState, PowerState]] = frozenset({
    (PowerState.OFF, PowerState.ON_PENDING),        # CPU_ON accepted
    (PowerState.ON_PENDING, PowerState.OFF),        # power controller failed
    (PowerState.ON_PENDING, PowerState.ON),         # warm boot finished
    (PowerState.ON, PowerState.OFF),                # CPU_OFF
    (PowerState.ON, PowerState.STANDBY),
    (PowerState.STANDBY, PowerState.ON),
    (PowerState.ON, PowerState.POWERDOWN),
    (PowerState.POWERDOWN, PowerState.ON),
})


class PsciStateError(RuntimeError):
    """The machine asked for a transition TF-A would panic on (e.g. warm boot of an OFF core)."""


class LockContention(RuntimeError):
    """A PSCI operation needed a core's lock while another operation held it.

    On hardware the second caller would spin; a single-threaded model can only
    get here through re-entry from a platform callback, which is a bug.
    """


class CpuLock:
    """TF-A's per-CPU spinlock (psci_cpu_pd_nodes[i].cpu_lock), with its holder visible."""

    def __init__(self, cpu: int):
        self.cpu = cpu
        self.holder: Optional[int] = None   # CPU index of the caller holding it

    @property
    def locked(self) -> bool:
        return self.holder is not None

    @contextmanager
    def held_by(self, caller: int) -> Iterator[None]:
        if self.holder is not None:
            raise LockContention(
                f"cpu{caller} wants the PSCI lock of cpu{self.cpu}, held by cpu{self.holder}")
        self.holder = caller
        try:
            yield
        finally:
            self.holder = None


@dataclass
class CpuPower:
    cpu: int
    state: PowerState = PowerState.OFF
    # The highest power level the core asked to suspend (None when not suspended).
    suspend_level: Optional[int] = None
    lock: CpuLock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = CpuLock(self.cpu)


class LocalState(Enum):
    """A power domain's coordinated state, ordered shallow to deep (TF-A plat_local_state)."""

    RUN = 0
    RETENTION = 1
    OFF = 2


class PowerStateMachine:
    """Holds every core's PowerState; every change goes through `transition`."""

    def __init__(self, cpu_count: int, trace: TraceBus, cluster_of: Callable[[int], int]):
        if cpu_count < 1:
            raise ValueError("cpu_count must be at least 1")
        self._trace = trace
        self._cluster_of = cluster_of
        self._cpus = [CpuPower(i) for i in range(cpu_count)]

    @property
    def cpu_count(self) -> int:
        return len(self._cpus)

    def record(self, cpu: int) -> CpuPower:
        return self._cpus[cpu]

    def state_of(self, cpu: int) -> PowerState:
        return self._cpus[cpu].state

    def lock_of(self, cpu: int) -> CpuLock:
        return self._cpus[cpu].lock

    def affinity_info(self, cpu: int) -> AffinityInfo:
        return _AFFINITY[self._cpus[cpu].state]

    def transition(self, cpu: int, new: PowerState, suspend_level: Optional[int] = None) -> None:
        rec = self._cpus[cpu]
        old = rec.state
        if (old, new) not in _ALLOWED:
            raise PsciStateError(f"cpu{cpu}: no PSCI transition {old.value} -> {new.value}")
        self._set(rec, new, suspend_level)

    def reset(self, boot_cpu: int) -> None:
        """Cold boot: the boot core ON, every other core OFF, whatever they were."""
        if not 0 <= boot_cpu < len(self._cpus):
            raise ValueError(f"boot cpu {boot_cpu} out of range")
        for rec in self._cpus:
            rec.lock.holder = None
            self._set(rec, PowerState.ON if rec.cpu == boot_cpu else PowerState.OFF, None)

    # -- snapshots -----------------------------------------------------------------

    def save_state(self) -> dict:
        # A lock is only held inside one PSCI call, so between calls every
        # holder is None; it is saved all the same, since it is state.
        return {"cpus": [{"state": rec.state.value, "suspend_level": rec.suspend_level,
                          "lock_holder": rec.lock.holder} for rec in self._cpus]}

    def restore_state(self, state: dict) -> None:
        """Set every core's record as saved; not through `transition`, which would
        refuse edges the saved machine took in several steps and trace each one."""
        cpus = state["cpus"]
        if len(cpus) != len(self._cpus):
            raise ValueError(f"the snapshot's PSCI firmware has {len(cpus)} cores, "
                             f"this one {len(self._cpus)}")
        for rec, saved in zip(self._cpus, cpus):
            rec.state = PowerState(saved["state"])
            rec.suspend_level = saved["suspend_level"]
            rec.lock.holder = saved["lock_holder"]

    def _set(self, rec: CpuPower, new: PowerState, suspend_level: Optional[int]) -> None:
        old = rec.state
        rec.state = new
        rec.suspend_level = suspend_level if new in (PowerState.STANDBY, PowerState.POWERDOWN) else None
        if old is not new:
            self._trace.emit("power.state", rec.cpu, old=old.value, new=new.value)

    # -- topology and coordination -------------------------------------------------

    def others_all_off(self, cpu: int) -> bool:
        """TF-A psci_is_last_on_cpu: every other core's affinity is OFF."""
        return all(r.state is PowerState.OFF for r in self._cpus if r.cpu != cpu)

    def domain_members(self, level: int, cpu: int) -> list[int]:
        if level == CPU_POWER_LEVEL:
            return [cpu]
        if level == CLUSTER_POWER_LEVEL:
            cluster = self._cluster_of(cpu)
            return [r.cpu for r in self._cpus if self._cluster_of(r.cpu) == cluster]
        if level == SYSTEM_POWER_LEVEL:
            return [r.cpu for r in self._cpus]
        raise ValueError(f"no power level {level}")

    def requested_local_state(self, cpu: int, level: int) -> LocalState:
        """What `cpu` asks of its domain at `level` (TF-A psci_req_local_pwr_states)."""
        rec = self._cpus[cpu]
        if rec.state is PowerState.OFF:
            return LocalState.OFF
        reaches = rec.suspend_level is not None and rec.suspend_level >= level
        if rec.state is PowerState.POWERDOWN and reaches:
            return LocalState.OFF
        if rec.state is PowerState.STANDBY and reaches:
            return LocalState.RETENTION
        return LocalState.RUN

    def domain_state(self, level: int, cpu: int) -> LocalState:
        """The coordinated state of the domain at `level` holding `cpu`: the
        shallowest state any member asks for (TF-A's default plat_get_target_pwr_state)."""
        members = self.domain_members(level, cpu)
        return min((self.requested_local_state(m, level) for m in members), key=lambda s: s.value)
