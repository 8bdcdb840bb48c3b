"""Write TraceBus events as a Chrome trace-event JSON file (chrome://tracing, Perfetto).

Tracks: process 1 is the machine, with a "machine" thread for events without
a CPU and, per CPU (per pCPU under --hyp), an activity thread "cpuN" and a
power thread "cpuN power". Each VM is a process of its own with the same
pair of threads per vCPU ("vcpuN", "vcpuN power"): a VM's models emit with
vm=name and their `cpu` is the vCPU.

Every event is written as an instant with its fields, as it arrives (the
raw record `armvisor trace` reads back). What the events imply is added by
the causal layer (trace/causal.py): durations ("X": PSCI calls, WFI and
idle, interrupt handling from acknowledge to EOI, vCPU runs on a pCPU),
power states as "B"/"E" spans on the power threads (kept apart so that the
activity slices never straddle a power change), "s"/"f" flows from a cause
to its effect, and "C" interrupt-rate counters.

The file is the JSON Array Format, which viewers accept even without the
closing bracket, so a run that dies before `close()` still leaves a readable
trace; `close()` ends the open spans and makes the file strict JSON. Events
are written in batches (half the cost of one at a time): a process killed
outright loses the last batch, as it would lose a file buffer.
"""

from __future__ import annotations

import json
from typing import Any, Optional, TextIO

from armvisor.errors import ArmvisorError
from armvisor.trace.bus import Event
from armvisor.trace.causal import CausalLayer
from armvisor.trace.tracks import MACHINE_PID, MACHINE_TID, Tracks, cpu_tid

__all__ = ["ChromeTraceWriter", "cpu_tid", "MACHINE_TID"]

PID = MACHINE_PID


# Events are turned into records and written this many at a time: one call
# into the C encoder for many small dicts costs far less than one call each.
BATCH = 1024
_PLAIN = (str, float, bool, type(None))


def _json_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # Addresses and IDs read best in hex, as Event.describe shows them;
        # JSON numbers would also lose precision above 2^53.
        return hex(value) if value > 9 or value < -9 else value
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _open_trace_file(path: str) -> TextIO:
    """Open (create or truncate) the trace file now, so that a missing or unwritable
    directory is a one-line error before the guest runs, not after it."""
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise ArmvisorError(f"cannot write the trace file {path!r}: "
                            f"{exc.strerror or exc}") from None
    except ValueError as exc:      # a path with a NUL byte in it
        raise ArmvisorError(f"cannot write the trace file {path!r}: {exc}") from None


class ChromeTraceWriter:
    """Subscribe `on_event` to a TraceBus; call `close()` (from a finally) at the end."""

    def __init__(self, path: str, process_name: str = "armvisor"):
        self.path = path
        self._file: Optional[TextIO] = _open_trace_file(path)
        self._first = True
        self._file.write("[\n")
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode
        self._batch: list = []              # records made, not yet written
        self._events: list = []             # events queued, not yet made records
        self._cats: dict = {}
        self._tracks = Tracks(self._emit, process_name)
        self._causal = CausalLayer(self._tracks, self._emit)

    @property
    def closed(self) -> bool:
        return self._file is None

    def on_event(self, event: Event) -> None:
        # Only queued here: turning events into records in one tight loop per
        # batch costs half as much as doing it between guest slices, whose
        # JIT code has pushed the writer's code and data out of the caches.
        if self._file is not None:
            self._events.append(event)
            if len(self._events) >= BATCH:
                self._drain()

    def _drain(self) -> None:
        events, self._events = self._events, []
        track_of, cats, batch, causal = self._tracks.track, self._cats, self._batch, self._causal
        for event in events:
            fields = event.fields
            vm = fields.get("vm")
            # Only a VM's own models name it (vm=str); other events say vm=index.
            track = track_of(vm if type(vm) is str else None, event.cpu)
            ts = event.ts_us
            kind = event.kind
            cat = cats.get(kind)
            if cat is None:
                cat = cats[kind] = kind.split(".", 1)[0]
            args = {k: v if type(v) in _PLAIN else _json_value(v) for k, v in fields.items()}
            batch.append({"name": kind, "cat": cat, "ph": "i", "s": "t", "ts": ts,
                          "pid": track.pid, "tid": track.tid, "args": args})
            causal.on_event(event, track, ts)
        self._flush()

    def close(self) -> None:
        """End the open spans and terminate the JSON array; safe to call twice."""
        if self._file is None:
            return
        try:
            self._drain()
            self._causal.close()
            self._flush()
            self._file.write("\n]\n")
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> "ChromeTraceWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _emit(self, record: dict) -> None:
        self._batch.append(record)

    def _flush(self) -> None:
        """Write the records made so far, one line of them."""
        assert self._file is not None
        if not self._batch:
            return
        text = self._dumps(self._batch)[1:-1]
        self._batch.clear()
        self._file.write(text if self._first else ",\n" + text)
        self._first = False
