"""A check of a trace against the Chrome trace-event format, as far as Perfetto relies on it.

`problems(records)` lists what a viewer would drop or misdraw: missing keys
for a phase, unbalanced "B"/"E" on a thread, flow ids without both ends or
ends outside any slice of their thread (Perfetto binds a flow end to the
slice enclosing it), counters with values that are not numbers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from typing import Dict, Iterable, List

# Keys every record of a phase must have (Trace Event Format, Google doc, 2016).
REQUIRED = {
    "M": ("name", "pid", "tid", "args"),
    "X": ("name", "ts", "dur", "pid", "tid"),
    "B": ("name", "ts", "pid", "tid"),
    "E": ("ts", "pid", "tid"),
    "i": ("name", "ts", "pid", "tid", "s"),
    "s": ("name", "id", "ts", "pid", "tid"),
    "f": ("name", "id", "ts", "pid", "tid"),
    "C": ("name", "ts", "pid", "args"),
}


def problems(records: Iterable[dict], limit: int = 20) -> List[str]:
    found: List[str] = []
    spans: Dict[tuple, list] = defaultdict(list)           # thread -> [(start, end)]
    flows: Dict[object, dict] = defaultdict(dict)          # id -> {"s": rec, "f": rec}
    begun: Dict[tuple, list] = defaultdict(list)           # thread -> open B records
    # Viewers sort by timestamp and keep the file's order for equal ones.
    ordered = sorted((r for r in records if r.get("ph") != "M"), key=lambda r: r.get("ts", 0))
    for record in records if isinstance(records, list) else []:
        if record.get("ph") == "M":
            _required(record, found)
    for record in ordered:
        ph = record.get("ph")
        if ph not in REQUIRED:
            found.append(f"unknown phase {ph!r}: {record}")
            continue
        if not _required(record, found):
            continue
        thread = (record["pid"], record.get("tid"))
        if ph == "X":
            if record["dur"] < 0:
                found.append(f"negative duration: {record}")
            spans[thread].append((record["ts"], record["ts"] + record["dur"]))
        elif ph == "B":
            begun[thread].append(record)
        elif ph == "E":
            if not begun[thread]:
                found.append(f"'E' without a 'B' on {thread}: {record}")
            else:
                start = begun[thread].pop()
                if "name" in record and record["name"] != start["name"]:
                    found.append(f"'E' {record['name']!r} closes 'B' {start['name']!r}")
                spans[thread].append((start["ts"], record["ts"]))
        elif ph in "sf":
            if ph == "f" and record.get("bp") != "e":
                found.append(f"flow end without bp=e (binds to the next slice): {record}")
            if ph in flows[record["id"]]:
                found.append(f"flow id {record['id']} has two {ph!r} records")
            flows[record["id"]][ph] = record
        elif ph == "C":
            if not all(isinstance(v, (int, float)) for v in record["args"].values()):
                found.append(f"counter with a value that is not a number: {record}")
    for thread, open_ in begun.items():
        if open_:
            found.append(f"{len(open_)} 'B' without 'E' on {thread}")
    covers = {thread: Cover(pairs) for thread, pairs in spans.items()}
    for flow_id, ends in flows.items():
        if set(ends) != {"s", "f"}:
            found.append(f"flow id {flow_id} has only {sorted(ends)}")
            continue
        if ends["f"]["ts"] < ends["s"]["ts"]:
            found.append(f"flow id {flow_id} ends before it starts")
        for end in ends.values():
            thread = (end["pid"], end["tid"])
            cover = covers.get(thread)
            if cover is None or not cover.contains(end["ts"]):
                found.append(f"flow {end['ph']!r} id {flow_id} is in no slice of {thread}")
    return found[:limit]


def _required(record: dict, found: List[str]) -> bool:
    missing = [k for k in REQUIRED[record["ph"]] if k not in record]
    if missing:
        found.append(f"{record['ph']!r} record without {', '.join(missing)}: {record}")
    return not missing


class Cover:
    """Is a timestamp inside any of a thread's slices (many flows, many slices)?"""

    def __init__(self, pairs: list):
        pairs = sorted(pairs)
        self._starts = [a for a, _ in pairs]
        self._reach = []                      # the furthest end among slices started so far
        furthest = float("-inf")
        for _, b in pairs:
            furthest = max(furthest, b)
            self._reach.append(furthest)

    def contains(self, ts: float) -> bool:
        i = bisect_right(self._starts, ts)
        return i > 0 and self._reach[i - 1] >= ts
