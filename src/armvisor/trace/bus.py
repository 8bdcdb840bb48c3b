"""An in-process event bus.

Models call `bus.emit(kind, cpu, **fields)`; they never print. Subscribers
(the Chrome trace writer, tests, the console reporter) receive every event.
The bus also keeps the last events in a ring so error reports can show them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional

# Fields that hold a guest code address: named `symbol+offset` when symbols are known.
CODE_FIELDS = ("pc", "elr", "entry", "vector")


@dataclass(slots=True)
class Event:
    # Not frozen: a frozen dataclass's __init__ sets each field through
    # object.__setattr__, which made every emit cost 0.8 us on the interrupt path.
    kind: str                 # e.g. "psci.call", "power", "cpu.start", "exception"
    cpu: Optional[int]        # CPU index, or None for machine-wide events
    ts_us: float              # microseconds since the bus was created
    fields: dict = field(default_factory=dict)

    def describe(self, symbols: Optional[Callable[[Optional[str]], object]] = None) -> str:
        """One line; `symbols(vm)` (None: the bare board) gives the table (with a
        `lookup(address)`) that names the code addresses of that guest."""
        vm = self.fields.get("vm")
        if self.cpu is None:
            where = "machine"
        elif isinstance(vm, str):             # a VM's models: `cpu` is the vCPU
            where = f"{vm}/vcpu{self.cpu}"
        else:
            where = f"cpu{self.cpu}"
        table = symbols(vm if isinstance(vm, str) else None) if symbols is not None else None
        args = " ".join(f"{k}={_fmt(v, table if k in CODE_FIELDS else None)}"
                        for k, v in self.fields.items()
                        if not (k == "vm" and self.cpu is not None and isinstance(v, str)))
        return f"{self.ts_us / 1e6:10.6f}s {where:8s} {self.kind} {args}".rstrip()


def _fmt(value, table=None) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        name = table.lookup(value) if table is not None else None
        return hex(value) if name is None else f"{value:#x}<{name}>"
    return str(value)


class TraceBus:
    """Collects events; `recent` keeps the last `ring_size` for diagnostics."""

    def __init__(self, ring_size: int = 64, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._t0 = clock()
        self._subscribers: List[Callable[[Event], None]] = []
        self.recent: Deque[Event] = deque(maxlen=ring_size)
        self.muted = False           # a debugger replaying the past: its events were seen

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Take timestamps from `clock` (seconds) from now on, e.g. a machine's virtual
        clock, so a deterministic run gives byte-identical traces."""
        self._clock = clock
        self._t0 = clock()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    @property
    def watched(self) -> bool:
        """Whether a subscriber sees every event; if not, only the last `recent` ones are
        ever read, and a producer with a batch of events may emit just those."""
        return bool(self._subscribers)

    def emit(self, kind: str, cpu: Optional[int] = None, /, **fields) -> Event:
        event = Event(kind, cpu, (self._clock() - self._t0) * 1e6, fields)
        if self.muted:
            return event
        self.recent.append(event)
        for callback in self._subscribers:
            callback(event)
        return event

    def scoped(self, **fixed) -> "ScopedTrace":
        """A view of this bus that adds `fixed` to every event, e.g. vm=name for the
        models of one VM: their `cpu` is then a vCPU index, and readers tell the two
        apart by the `vm` field."""
        return ScopedTrace(self, fixed)


class ScopedTrace:
    """What a VM's models emit through (see TraceBus.scoped); the rest is the bus's."""

    def __init__(self, bus: TraceBus, fixed: dict):
        self._bus = bus
        self._fixed = fixed

    def emit(self, kind: str, cpu: Optional[int] = None, /, **fields) -> Event:
        return self._bus.emit(kind, cpu, **{**self._fixed, **fields})

    def __getattr__(self, name: str):
        return getattr(self._bus, name)
