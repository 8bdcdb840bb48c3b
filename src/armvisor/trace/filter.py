"""Cut a saved trace down: `armvisor trace filter`, and `select(records, ...)` in Python.

The result is a valid trace again: power spans ("B"/"E") become complete
slices so a time window can clip them, and a flow stays only if both its
ends are kept and still sit in a slice.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Dict, Iterable, List, Optional, Sequence

from armvisor.errors import ArmvisorError
from armvisor.trace.model import Lane, lanes_of
from armvisor.trace.schema import Cover


def parse_cpu(spec: str) -> Lane:
    """'2' is CPU (pCPU) 2; 'vm0/1' or 'vm0/vcpu1' is vCPU 1 of VM vm0."""
    vm, _, cpu = spec.strip().rpartition("/")
    digits = cpu[4:] if cpu.startswith("vcpu") else cpu[3:] if cpu.startswith("cpu") else cpu
    if not digits.isdigit():
        raise ArmvisorError(f"--cpu {spec!r}: give a CPU number, or VM/vCPU such as vm0/1")
    return Lane(vm or None, int(digits))


def _complete(records: List[dict]) -> List[dict]:
    """B/E pairs as X slices (what a window can clip); other records unchanged."""
    out: List[dict] = []
    stacks: Dict[tuple, List[dict]] = {}
    for r in sorted(records, key=lambda r: r.get("ts", 0)):
        ph = r.get("ph")
        if ph == "B":
            stacks.setdefault((r["pid"], r["tid"]), []).append(r)
        elif ph == "E":
            stack = stacks.get((r["pid"], r["tid"]))
            if stack:
                begin = stack.pop()
                out.append({**begin, "ph": "X", "dur": r["ts"] - begin["ts"]})
        else:
            out.append(r)
    return out


def select(records: Sequence[dict], cpus: Iterable[str] = (), names: Iterable[str] = (),
           start_s: Optional[float] = None, end_s: Optional[float] = None) -> List[dict]:
    lane_of, _ = lanes_of(list(records))
    wanted = {parse_cpu(c) for c in cpus}
    patterns = list(names)
    lo = float("-inf") if start_s is None else start_s * 1e6
    hi = float("inf") if end_s is None else end_s * 1e6
    if lo > hi:
        raise ArmvisorError("--from is after --to")

    def track_ok(r: dict) -> bool:
        return not wanted or lane_of.get((r.get("pid"), r.get("tid"))) in wanted

    def name_ok(r: dict) -> bool:
        return not patterns or any(fnmatchcase(str(r.get("name")), p) for p in patterns)

    kept: List[dict] = []
    flows: Dict[object, dict] = {}
    for r in _complete(list(records)):
        ph = r.get("ph")
        if ph == "M":
            kept.append(r)
        elif ph == "X":
            start, end = r["ts"], r["ts"] + r.get("dur", 0)
            if end < lo or start > hi or not track_ok(r) or not name_ok(r):
                continue
            start, end = max(start, lo), min(end, hi)
            kept.append({**r, "ts": start, "dur": end - start})
        elif ph in ("s", "f"):
            if lo <= r["ts"] <= hi and track_ok(r) and name_ok(r):
                flows.setdefault(r.get("id"), {})[ph] = r
        elif ph == "C":
            if lo <= r["ts"] <= hi and not wanted and name_ok(r):
                kept.append(r)
        elif lo <= r.get("ts", 0) <= hi and track_ok(r) and name_ok(r):
            kept.append(r)
    slices: Dict[tuple, list] = {}
    for r in kept:
        if r.get("ph") == "X":
            slices.setdefault((r["pid"], r["tid"]), []).append((r["ts"], r["ts"] + r["dur"]))
    covers = {key: Cover(pairs) for key, pairs in slices.items()}
    for ends in flows.values():
        if set(ends) == {"s", "f"} and all(
                (e["pid"], e["tid"]) in covers and covers[(e["pid"], e["tid"])].contains(e["ts"])
                for e in ends.values()):
            kept += [ends["s"], ends["f"]]
    return kept
