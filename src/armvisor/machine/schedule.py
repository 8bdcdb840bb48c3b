"""Schedules: what decides an interleaving, as data.

A run is deterministic given its inputs and the answers to a few questions
the machine asks while it runs. Each question is a *decision point* of one
kind, numbered in the order the run reaches it:

- `order`: at the start of each round, the order in which the lanes
  (pCPUs) take their turns. Default: 0, 1, ..., n-1 (round robin).
- `slice`: for each turn a lane is given, its instruction budget. Default:
  the slice budget (`--slice`), cut at the next deadline in deterministic
  mode (the cut is applied after the decision, so time stays exact).
- `power_on`: for each CPU_ON, how many instructions the caller runs before
  the new CPU's first one. Default: POWER_ON_LATENCY.
- `kick`: each time an interrupt becomes pending for a CPU other than the
  running one, how many more instructions the running CPU executes before
  its slice ends so the target can take it. Default: 0 (at once).
- `window`: only with a planted bug (see machine/planted.py): whether an
  unlocked window closes at the end of the caller's slice (0, the default:
  no other CPU runs inside it) or stays open until the caller's lane's next
  turn (1: every other lane may run inside it).
- `sync`: at each synchronization point of the running CPU (a PSCI call, an
  MMIO access; under the hypervisor, a CPU_ON that starts a vCPU; and the
  exclusive loads and stores that armvisor.explore hooks), how many
  more instructions it runs before its slice ends (0: at its next block).
  Default: NO_PREEMPTION (the slice goes on). MMIO accesses are frequent, so
  these points are asked (and counted) only by a schedule that watches them:
  one with sync decisions, or an explorer's that says so (`watch_sync`).

A Schedule answers every question: from an explicit decision for that
point if it has one, else from its chooser (an exploration strategy), else
the default. Every answer that differs from the default is logged in
`taken` and traced as `schedule.decision`, so a run's non-default decisions
are a complete description of its interleaving: a schedule built from them
replays the run exactly (the machine is otherwise deterministic). Removing
decisions from that list (shrinking) gives runs closer to the default one.

A schedule can start late: decision points are counted only once it is
armed (`arm()`), so a schedule explored from a snapshot replays from that
snapshot, or from a run that reaches the same point with the default
schedule first (`start` in the file says which point).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from armvisor.errors import ArmvisorError

KINDS = ("order", "slice", "power_on", "kick", "window", "sync")
FORMAT = "armvisor-schedule"
VERSION = 1
# The "sync" default: more than any slice, so shortening the slice to it changes nothing.
NO_PREEMPTION = 1 << 40

# The answer of a strategy: (kind, index, default, context) -> value.
Chooser = Callable[[str, int, object, dict], object]


@dataclass(frozen=True)
class Decision:
    kind: str
    index: int                 # the index-th decision point of this kind since the schedule armed
    value: object              # int, or a list of lane numbers for "order"

    def to_data(self) -> dict:
        return {"kind": self.kind, "index": self.index, "value": self.value}

    @classmethod
    def from_data(cls, data: dict) -> "Decision":
        kind, index, value = data.get("kind"), data.get("index"), data.get("value")
        if kind not in KINDS:
            raise ArmvisorError(f"unknown decision kind {kind!r} (one of {', '.join(KINDS)})")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ArmvisorError(f"decision index must be a non-negative integer, not {index!r}")
        if kind == "order":
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ArmvisorError(f"an order decision is a list of lanes, not {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ArmvisorError(f"a {kind} decision is a non-negative integer, not {value!r}")
        return cls(kind, index, value)


class Schedule:
    """The answers to a run's decision points (see the module docstring)."""

    def __init__(self, decisions: Tuple[Decision, ...] = (), chooser: Optional[Chooser] = None,
                 armed: bool = True, start: Optional[dict] = None, trace=None,
                 watch_sync: Optional[bool] = None):
        self.decisions: Dict[Tuple[str, int], object] = {(d.kind, d.index): d.value
                                                          for d in decisions}
        self.watch_sync = (any(d.kind == "sync" for d in decisions) if watch_sync is None
                           else watch_sync)
        self.chooser = chooser
        self.armed = armed
        self.start = start              # where the schedule arms, as the file says (None: reset)
        self.counts = {kind: 0 for kind in KINDS}
        self.taken: List[Decision] = []
        self.trace = trace

    @property
    def is_default(self) -> bool:
        return not self.decisions and self.chooser is None

    def arm(self) -> None:
        """Count decision points from here (a snapshot's point, or the file's `start`)."""
        self.armed = True
        self.counts = {kind: 0 for kind in KINDS}
        self.taken = []

    def decide(self, kind: str, default, **context):
        if not self.armed:
            return default
        index = self.counts[kind]
        self.counts[kind] = index + 1
        key = (kind, index)
        if key in self.decisions:
            value = self.decisions[key]
        elif self.chooser is not None:
            value = self.chooser(kind, index, default, context)
        else:
            return default
        if kind == "order":
            value = _valid_order(value, default)
        if value != default:
            self.taken.append(Decision(kind, index, value))
            if self.trace is not None:
                self.trace.emit("schedule.decision", context.get("cpu"), kind=kind, index=index,
                                value=value, default=default)
        return value

    def at_sync(self, core, point: str) -> None:
        """`core`, the running CPU, reached a synchronization point (`point`: "psci",
        "mmio"): a watching schedule may end its slice there."""
        if self.watch_sync:
            core.shorten_slice(self.decide("sync", NO_PREEMPTION, cpu=core.index, point=point))

    # -- the position, for snapshots ---------------------------------------------------

    def save_state(self) -> dict:
        return {"armed": self.armed, "counts": dict(self.counts)}

    def restore_state(self, state: dict) -> None:
        self.armed = state["armed"]
        self.counts = {kind: int(state["counts"].get(kind, 0)) for kind in KINDS}

    # -- files ---------------------------------------------------------------------------

    def to_data(self, **extra) -> dict:
        return dict({"format": FORMAT, "version": VERSION, "start": self.start,
                     "decisions": [d.to_data() for d in self.taken]}, **extra)

    def save(self, path: str, **extra) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_data(**extra), handle, indent=1)
            handle.write("\n")

    @classmethod
    def load(cls, path: str, trace=None) -> "Schedule":
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise ArmvisorError(f"cannot read schedule {path}: {exc.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArmvisorError(f"{path} is not a schedule file (not JSON: {exc})") from None
        return cls.from_data(data, path, trace)

    @classmethod
    def from_data(cls, data, where: str = "schedule", trace=None) -> "Schedule":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArmvisorError(f"{where} is not an armvisor schedule")
        if data.get("version") != VERSION:
            raise ArmvisorError(f"{where} is a version {data.get('version')!r} schedule; "
                                f"this armvisor reads version {VERSION}")
        items = data.get("decisions")
        if not isinstance(items, list):
            raise ArmvisorError(f"{where}: 'decisions' must be a list")
        decisions = tuple(Decision.from_data(d) if isinstance(d, dict) else
                          _bad(where, d) for d in items)
        start = data.get("start")
        if start is not None and not isinstance(start, dict):
            raise ArmvisorError(f"{where}: 'start' must be an object or null")
        return cls(decisions, start=start, armed=start is None, trace=trace)


def _bad(where: str, item) -> Decision:
    raise ArmvisorError(f"{where}: a decision must be an object, not {item!r}")


def _valid_order(value, default: List[int]) -> List[int]:
    """A permutation of the default's lanes; lanes missing from it keep their place at the end."""
    seen = [lane for i, lane in enumerate(value) if lane in default and lane not in value[:i]]
    return seen + [lane for lane in default if lane not in seen]
