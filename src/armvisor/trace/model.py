"""A saved trace read back: its tracks, events, slices and flows, for `armvisor trace`.

The Chrome file holds every bus event as an instant with its fields (ints
above 9 written in hex) and the slices and flows the writer derived; this
module turns it back into plain Python values keyed by CPU, so the report,
the filter and the timeline need not know the file's layout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from armvisor.errors import ArmvisorError
from armvisor.trace.tracks import MACHINE_PID, POWER_TID_BASE

Key = Tuple[int, int]                      # (pid, tid)


@dataclass(frozen=True)
class Lane:
    """A CPU as the trace shows it: a pCPU/bare CPU (vm None) or a VM's vCPU."""
    vm: Optional[str]
    cpu: int

    @property
    def label(self) -> str:
        return f"{self.vm}/vcpu{self.cpu}" if self.vm else f"cpu{self.cpu}"


@dataclass
class Instant:
    kind: str
    ts: float                              # microseconds
    lane: Optional[Lane]                   # None: machine-wide
    args: dict


@dataclass
class Span:
    name: str
    cat: str
    start: float
    end: float
    lane: Lane
    args: dict = field(default_factory=dict)


@dataclass
class Flow:
    name: str
    source: Lane
    source_ts: float
    target: Lane
    target_ts: float


def number(value):
    """A field as written by the trace writer (hex strings for ints > 9) as an int."""
    if isinstance(value, str) and value.startswith(("0x", "-0x")):
        try:
            return int(value, 16)
        except ValueError:
            return value
    return value


@dataclass
class Trace:
    records: List[dict]
    lanes: List[Lane]
    instants: List[Instant]
    spans: List[Span]                      # X slices and power states (cat "power")
    flows: List[Flow]
    start: float
    end: float

    @property
    def vms(self) -> List[str]:
        return sorted({lane.vm for lane in self.lanes if lane.vm}, key=self._vm_order)

    @property
    def hyp(self) -> bool:
        return bool(self.vms)

    def cpus(self, vm: Optional[str] = None) -> List[Lane]:
        return sorted((lane for lane in self.lanes if lane.vm == vm), key=lambda lane: lane.cpu)

    def events(self, *kinds: str) -> List[Instant]:
        return [e for e in self.instants if e.kind in kinds]

    def _vm_order(self, vm: str) -> int:
        return self._pids.get(vm, 0)

    _pids: Dict[str, int] = field(default_factory=dict)


def read_records(path: str) -> List[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ArmvisorError(f"cannot read the trace {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ArmvisorError(f"{path!r} is not a trace (not text)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # A run that died leaves the array open: what it wrote is still good.
        try:
            data = json.loads(text.rstrip().rstrip(",") + "]")
        except json.JSONDecodeError:
            raise ArmvisorError(f"{path!r} is not a Chrome trace (not JSON)") from None
    if isinstance(data, dict):
        data = data.get("traceEvents")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ArmvisorError(f"{path!r} is not a Chrome trace (no array of events)")
    return data


def load(path: str) -> Trace:
    return from_records(read_records(path))


def lanes_of(records: List[dict]) -> Tuple[Dict[Key, Lane], Dict[int, str]]:
    """Each CPU thread's lane (activity and power threads alike), and the processes' names."""
    processes: Dict[int, str] = {}
    threads: Dict[Key, str] = {}
    for r in records:
        if r.get("ph") == "M" and r.get("name") == "process_name":
            processes[r.get("pid")] = str(r.get("args", {}).get("name"))
        elif r.get("ph") == "M" and r.get("name") == "thread_name":
            threads[(r.get("pid"), r.get("tid"))] = str(r.get("args", {}).get("name"))
    lane_of: Dict[Key, Lane] = {}
    for (pid, tid), name in threads.items():
        match = re.fullmatch(r"v?cpu(\d+)( power)?", name)
        if match is None:
            continue
        vm = None if pid == MACHINE_PID else processes.get(pid, f"vm{pid}")
        lane_of[(pid, tid)] = Lane(vm, int(match.group(1)))
    return lane_of, processes


def from_records(records: List[dict]) -> Trace:
    lane_of, processes = lanes_of(records)
    instants, spans, flows = [], [], []
    open_power: Dict[Key, dict] = {}
    flow_ends: Dict[object, dict] = {}
    stamps = [r["ts"] for r in records if isinstance(r.get("ts"), (int, float))]
    for r in records:
        ph = r.get("ph")
        key = (r.get("pid"), r.get("tid"))
        lane = lane_of.get(key)
        if ph == "i":
            args = {k: number(v) for k, v in (r.get("args") or {}).items()}
            instants.append(Instant(str(r.get("name")), float(r.get("ts", 0)), lane, args))
        elif ph == "X" and lane is not None:
            start = float(r["ts"])
            spans.append(Span(str(r.get("name")), str(r.get("cat", "")), start,
                              start + float(r.get("dur", 0)), lane,
                              {k: number(v) for k, v in (r.get("args") or {}).items()}))
        elif ph == "B" and lane is not None:
            open_power[key] = r
        elif ph == "E" and key in open_power and lane is not None:
            begin = open_power.pop(key)
            cat = "power" if key[1] >= POWER_TID_BASE else str(begin.get("cat", ""))
            spans.append(Span(str(begin.get("name")), cat, float(begin["ts"]), float(r["ts"]),
                              lane))
        elif ph in ("s", "f") and lane is not None:
            flow_ends.setdefault(r.get("id"), {})[ph] = (r, lane)
    for ends in flow_ends.values():
        if "s" in ends and "f" in ends:
            (s, source), (f, target) = ends["s"], ends["f"]
            flows.append(Flow(str(s.get("name")), source, float(s["ts"]), target, float(f["ts"])))
    instants.sort(key=lambda e: e.ts)
    spans.sort(key=lambda s: s.start)
    flows.sort(key=lambda f: f.source_ts)
    lanes = sorted(set(lane_of.values()), key=lambda lane: (lane.vm or "", lane.cpu))
    pids = {name: pid for pid, name in processes.items()}
    return Trace(records, lanes, instants, spans, flows, min(stamps, default=0.0),
                 max(stamps, default=0.0), pids)
